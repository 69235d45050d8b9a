"""CPU backend of Dawson's integral: the op ``torch.ops.sdekit.dawsn`` with the kernel of ``sdekit._cpu``.

``sdekit/csrc/cpu/ops.cpp``: threads only above a size threshold; in each thread, on an AVX-512 or
an AVX2 + FMA build (``-march`` of ``setup.py``: ``native`` by default, ``SDEKIT_CPU_ARCH=x86-64-v3``
for a wheel meant for other machines), the vector kernel of ``sdekit/csrc/cpu/dawson_simd.h``
(16 or 8 floats, 8 or 4 doubles a vector), otherwise an ``omp simd`` loop over
``sdekit/csrc/dawson.cuh``.

Contract beyond the op's (:mod:`sdekit.kernels.dawsn`): float32 results are bitwise the torch
reference's (:mod:`.reference`) on every build -- the same arithmetic in the same order without
FMA.  float64 results are bitwise the reference's on builds without the vector kernel; with it
they may differ from the reference's (fused multiply-adds, other constants), each within the
4-ulp bound of the exact value that every backend honours.  AVX-512: the same Taylor-plus-tail
algorithm on a coarser 16-point grid (``FLOAT64_VECTOR_TAYLOR`` in :mod:`.coefficients`). AVX2
+ FMA: no table, every lane evaluating ``D = x P(x^2)/Q(x^2)`` (``|x| < 2.25``,
``FLOAT64_VECTOR_INNER_P``/``_Q``), ``D = h/(2|x|)`` with ``h = 2xD`` a polynomial in
``|x| - 3.625`` (``2.25 <= |x| < 5``, ``FLOAT64_VECTOR_MID_H``) and the tail, and keeping the
one its ``|x|`` falls in; so the two widths give different float64 bits.
"""
from __future__ import annotations

import torch

from ..dispatch import register


# The op overload itself is the backend: no Python frame between the front door and the dispatcher
# (about 0.3 us of a 3 us call at 256 elements).  The extension that registers its CPU kernel is loaded by
# ``resolve``, which asks ``cpu_ext.unavailable_reason()`` before returning it.
dawsn_cpu = register("dawsn", "cpu")(torch.ops.sdekit.dawsn.default)
