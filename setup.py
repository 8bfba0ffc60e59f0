"""Build script for fastmlp's compiled kernels.

Everything declarative lives in pyproject.toml; this file only describes the
Cython extension, because its compiler flags depend on the environment:

* Cython directives are set once here for all kernels: bounds, wraparound and
  initialisation checks off, C division.  ``FASTMLP_DEBUG_CHECKS=1`` turns
  the checks back on (and compiles with -O0 -g) for debugging.
* ``FASTMLP_SANITIZE=1`` builds with -fsanitize=address,undefined.
* No -march=native and no -ffast-math: the wheel must run on any x86-64 and
  NaN checks must keep working.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


debug = _flag("FASTMLP_DEBUG_CHECKS")
sanitize = _flag("FASTMLP_SANITIZE")

compile_args = ["-O0", "-g"] if debug else ["-O3"]
link_args = []
if sanitize:
    compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    link_args += ["-fsanitize=address,undefined"]

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": not debug,
    "embedsignature": True,
}

extensions = [
    Extension(
        "fastmlp._kernels",
        ["fastmlp/_kernels.pyx"],
        include_dirs=["csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
