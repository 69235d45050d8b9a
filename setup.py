"""Build script.

Pure-Python build by default.  When a CUDA build of torch and ``nvcc`` are both
present (or ``SDEKIT_BUILD_CUDA=1`` is set), the kernels in ``csrc/`` are compiled
ahead of time into the extension ``sdekit._C``; otherwise they are compiled just in
time on first use (see ``sdekit/kernels/cuda_ext.py``).
"""
from setuptools import setup

setup()
