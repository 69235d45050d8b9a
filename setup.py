"""Build script.

Pure-Python build by default.  When a CUDA build of torch and ``nvcc`` are both
present (or ``SDEKIT_BUILD_CUDA=1`` is set), the kernels in ``csrc/`` are compiled
ahead of time into the extension ``sdekit._C``; otherwise they are compiled just in
time on first use (see ``sdekit/kernels/cuda_ext.py``).  ``SDEKIT_BUILD_CUDA=0``
forces the pure-Python build.

torch must be importable while building, so build the extension without pip's
build isolation: ``pip install --no-build-isolation -e .`` (an isolated build
environment has no torch and falls back to the pure-Python build).
"""
import glob
import os
import shutil

from setuptools import setup


def _want_cuda() -> bool:
    flag = os.environ.get("SDEKIT_BUILD_CUDA")
    if flag is not None:
        return flag not in ("", "0")
    try:
        import torch
    except ImportError:
        return False
    return torch.version.cuda is not None and (shutil.which("nvcc") is not None or bool(os.environ.get("CUDA_HOME")))


def _cuda_setup_kwargs() -> dict:
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension

    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(glob.glob("csrc/*.cu") + glob.glob("csrc/*.cpp"))
    ext = CUDAExtension(
        name="sdekit._C",
        sources=sources,
        include_dirs=[os.path.join(here, "csrc")],
        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
    )
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


setup(**(_cuda_setup_kwargs() if _want_cuda() else {}))
