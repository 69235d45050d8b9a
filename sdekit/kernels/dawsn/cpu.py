"""CPU backend of Dawson's integral: the op ``torch.ops.sdekit.dawsn`` with the kernel of ``sdekit._cpu``.

``sdekit/csrc/cpu/ops.cpp``: threads only above a size threshold; in each thread, on an AVX-512 or
an AVX2 + FMA build (``-march`` of ``setup.py``: ``native`` by default, ``SDEKIT_CPU_ARCH=x86-64-v3``
for a wheel meant for other machines), the vector kernel of ``sdekit/csrc/cpu/dawson_simd.h``
(16 or 8 floats, 8 or 4 doubles a vector), otherwise an ``omp simd`` loop over
``sdekit/csrc/dawson.cuh``.

Contract beyond the op's (:mod:`sdekit.kernels.dawsn`): float32 results are bitwise the torch
reference's (:mod:`.reference`) on every build -- the same arithmetic in the same order without
FMA.  float64 results are bitwise the reference's on builds without the vector kernel; with it
(both widths giving the same bits) they come from the same Taylor-plus-tail algorithm on a coarser
16-point grid (its constants: ``FLOAT64_VECTOR_TAYLOR`` in :mod:`.coefficients`) with fused
multiply-adds, so they may differ from the reference's, each within the 4-ulp bound of the exact
value that every backend honours.
"""
from __future__ import annotations

import torch

from ..dispatch import register


# The op overload itself is the backend: no Python frame between the front door and the dispatcher
# (about 0.3 us of a 3 us call at 256 elements).  The extension that registers its CPU kernel is loaded by
# ``resolve``, which asks ``cpu_ext.unavailable_reason()`` before returning it.
dawsn_cpu = register("dawsn", "cpu")(torch.ops.sdekit.dawsn.default)
