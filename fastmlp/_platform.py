"""The machine and the optional libraries: what every report and plot needs.

* :func:`build_info` -- how the compiled kernels were built;
* :func:`cpu_name` and :func:`machine` -- the CPU, cores, BLAS and library
  versions, written beside every figure (``fastmlp info``, the benchmarks'
  JSON);
* :func:`pyplot` -- matplotlib's pyplot on the file-only Agg backend, or an
  ImportError with the install hint.
"""

import os
import platform

__all__ = ["build_info", "cpu_name", "limits_path", "machine", "measured_limits", "pyplot"]


def build_info():
    """Describe the compiled extension: present or not, OpenMP or not, threads.

    Returns a dict with ``compiled`` (bool), ``openmp`` (bool: without OpenMP
    the compiled backend runs single-threaded), ``max_threads`` (OpenMP's
    default team size), ``gemm`` ("avx512": the step's large products use
    fastmlp's own kernels; "blas": sgemm) and ``module`` (the extension's file).
    """
    try:
        from .backends import _compiled
    except ImportError as exc:  # pragma: no cover - reported, not hidden
        return {"compiled": False, "openmp": False, "error": str(exc)}
    return {"compiled": True, "openmp": _compiled.HAVE_OPENMP,
            "max_threads": _compiled.max_threads(), "gemm": _compiled.gemm_kind(),
            "module": _compiled.__file__}


def cpu_name():
    """The CPU's model name, with its family and model numbers on x86 Linux
    (two CPUs sold under one name, such as "AMD EPYC", differ there)."""
    name, family, model = None, None, None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "model name" and name is None:
                    name = value
                elif key == "cpu family" and family is None:
                    family = value
                elif key == "model" and model is None:
                    model = value
                if not line.strip() and name:
                    break
    except OSError:
        pass
    if name is None:
        return platform.processor() or platform.machine()
    return f"{name} (family {family}, model {model})" if family and model else name


def machine():
    """CPU, cores, BLAS, fastmlp's build and library versions, as a dict."""
    import numpy as np
    from threadpoolctl import threadpool_info

    from ._version import __version__
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version(), "numpy": np.__version__,
                "fastmlp": __version__}
    # the installed versions, read without importing (TensorFlow takes seconds)
    for key, dist in (("scipy", "scipy"), ("sklearn", "scikit-learn"),
                      ("tensorflow", "tensorflow"), ("tensorflow", "tensorflow-cpu"),
                      ("keras", "keras"), ("torch", "torch")):
        try:
            versions.setdefault(key, version(dist))
        except PackageNotFoundError:
            pass
    blas = [{k: i.get(k) for k in ("internal_api", "version", "num_threads",
                                     "architecture", "filepath")}
            for i in threadpool_info()]
    return dict(cpu=cpu_name(), cores=os.cpu_count(), platform=platform.platform(),
                blas=blas, versions=versions, build=build_info())


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no screen needed);
    ImportError with the install hint when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError('plots need matplotlib: pip install "fastmlp[plot]"') from exc
    return plt


def limits_path():
    """Where bench/roofline.py keeps the limits it measured on this machine."""
    return os.path.join(os.path.expanduser("~"), ".cache", "fastmlp", "machine.json")


def measured_limits():
    """The figures bench/roofline.py measured on this CPU (its cache file),
    or None when there are none, for another CPU, or unreadable."""
    import json
    try:
        with open(limits_path()) as f:
            limits = json.load(f)
        keys = ("gemm_gflops_1_thread", "gemm_gflops_all_threads", "add_gbs", "measured")
        if limits.get("cpu") != cpu_name() or limits.get("cores") != os.cpu_count() or \
                not all(isinstance(limits.get(k), (int, float, str)) for k in keys):
            return None
        return limits
    except (OSError, ValueError, AttributeError):
        return None
