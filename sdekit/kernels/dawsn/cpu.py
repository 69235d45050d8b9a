"""CPU backend of Dawson's integral: the op ``torch.ops.sdekit.dawsn`` with the kernel of ``sdekit._cpu``.

The arithmetic is ``sdekit/csrc/dawson.cuh`` compiled for the host (``sdekit/csrc/cpu/ops.cpp``)
without contraction of multiply-adds, so the results are bitwise the torch reference's
(:mod:`.reference`); one ``omp simd`` loop, threads above a size threshold.
"""
from __future__ import annotations

import torch

from .. import cpu_ext
from ..dispatch import register


@register("dawsn", "cpu")
def dawsn_cpu(x: torch.Tensor) -> torch.Tensor:
    """``D(x)`` by the compiled CPU kernel; needs a CPU tensor."""
    cpu_ext.load()
    return torch.ops.sdekit.dawsn(x)
