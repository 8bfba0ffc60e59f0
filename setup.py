"""Build script for fastmlp's compiled kernels.

Everything declarative lives in pyproject.toml; this file only describes the
Cython extension, because its compiler flags depend on the environment:

* Cython directives are set once here for all kernels: bounds, wraparound and
  initialisation checks off, C division.  ``FASTMLP_DEBUG_CHECKS=1`` turns
  the checks back on (and compiles with -O0 -g) for debugging.
* ``FASTMLP_SANITIZE=1`` builds with -fsanitize=address,undefined (and
  -fno-wrapv, so that UBSan sees signed overflow); see .ci/sanitize.
* OpenMP is used when the compiler supports it (probed by compiling a small
  program); ``FASTMLP_NO_OPENMP=1`` builds without it.  Without OpenMP the
  kernels run single-threaded and ``fastmlp.build_info()`` says so.
* No -march=native and no -ffast-math: the wheel must run on any x86-64 and
  NaN checks must keep working.
"""

import os
import shlex
import subprocess
import sysconfig
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _compiler_accepts(flags, source):
    """True if the C compiler Python was built with compiles and links
    `source` with `flags` (used to detect OpenMP and -fopenmp-simd)."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        try:
            res = subprocess.run(cc + flags + [src, "-o", os.path.join(tmp, "probe")],
                                 capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return res.returncode == 0


OPENMP_PROBE = """
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+:n)
  n += 1;
  return omp_get_max_threads() > 0 && n > 0 ? 0 : 1; }
"""

debug = _flag("FASTMLP_DEBUG_CHECKS")
sanitize = _flag("FASTMLP_SANITIZE")
use_openmp = not _flag("FASTMLP_NO_OPENMP") and _compiler_accepts(["-fopenmp"], OPENMP_PROBE)

# -ffp-contract=off: no fused multiply-add contraction, so the instruction-set
# variants of the elementwise loops (csrc/fastmlp_elementwise.h) round alike
# and the compiled kernels stay close to their NumPy twins.
compile_args = ["-O0", "-g"] if debug else ["-O3"]
compile_args += ["-ffp-contract=off", "-fno-math-errno"]
link_args = []
if use_openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
elif _compiler_accepts(["-fopenmp-simd"], "int main(void){return 0;}"):
    compile_args += ["-fopenmp-simd", "-DFM_OMP_SIMD"]
if sanitize:
    # -fno-wrapv: Python's own CFLAGS carry -fwrapv, which makes signed
    # overflow defined and so hides it from UBSan; undo it for this build.
    # float-cast-overflow (not part of gcc's "undefined"): float-to-int
    # conversions of NaN or out-of-range values.  -fno-sanitize-recover:
    # undefined behaviour aborts instead of printing a line that a passing
    # test run would hide.
    sanitizers = "-fsanitize=address,undefined,float-cast-overflow"
    compile_args += [sanitizers, "-fno-sanitize-recover=undefined,float-cast-overflow",
                     "-fno-wrapv", "-fno-omit-frame-pointer", "-g"]
    link_args += [sanitizers]

print(f"fastmlp build: OpenMP {'on' if use_openmp else 'off'}, "
      f"debug checks {'on' if debug else 'off'}, sanitizers {'on' if sanitize else 'off'}")

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": not debug,
    "embedsignature": True,
}

# The compiled backend: aligned buffers and a dense X's nonzeros (_arrays),
# layer-level kernels (_layers), the output layer's
# kernel and targets (_output), the sparse first layer (_sparse_layer: its
# state; _sparse_batch: a batch through it) and its checked kernels
# (_sparse_kernels), the checked kernels that mirror the
# NumPy twin (_compiled), the update by panels of weight rows (_panels) and
# the training step (_step); the later modules
# cimport the earlier ones (see fastmlp/backends/*.pxd).
extensions = [
    Extension(
        f"fastmlp.backends.{name}",
        [f"fastmlp/backends/{name}.pyx"],
        include_dirs=["csrc"],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=[("FASTMLP_OPENMP", "1" if use_openmp else "0")],
    )
    for name in ("_arrays", "_layers", "_output", "_sparse_layer", "_sparse_batch",
                 "_sparse_kernels", "_compiled", "_panels", "_step")
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives,
                            compile_time_env={"FASTMLP_OPENMP": use_openmp}))
