"""CPU backend of Dawson's integral: the op ``torch.ops.sdekit.dawsn`` with the kernel of ``sdekit._cpu``.

``sdekit/csrc/cpu/ops.cpp``: threads only above a size threshold; in each thread, on an AVX-512
build (``-march`` of ``setup.py``, ``native`` by default), the vector kernel of
``sdekit/csrc/cpu/dawson_avx512.h``, otherwise an ``omp simd`` loop over ``sdekit/csrc/dawson.cuh``.

Contract beyond the op's (:mod:`sdekit.kernels.dawsn`): float32 results are bitwise the torch
reference's (:mod:`.reference`) on every build -- the same arithmetic in the same order without
FMA.  float64 results are bitwise the reference's without AVX-512; with it they come from the same
Taylor-plus-tail algorithm on a coarser 16-point grid (its constants: ``FLOAT64_VECTOR_TAYLOR`` in
:mod:`.coefficients`) with fused multiply-adds, so they may differ from the reference's, each
within the 4-ulp bound of the exact value that every backend honours.
"""
from __future__ import annotations

import torch

from .. import cpu_ext
from ..dispatch import register


_OP = torch.ops.sdekit.dawsn.default  # looked up once: torch.ops attribute access costs microseconds per call


@register("dawsn", "cpu")
def dawsn_cpu(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the compiled CPU kernel; needs a CPU tensor."""
    cpu_ext.load()
    return _OP(x)
