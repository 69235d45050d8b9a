"""Counter-based normal random numbers: Philox4x32-10 + Box-Muller, keyed by (seed, step, index).

Normals are drawn for a tensor seen as ``(B, N)``: sample ``b``, element ``j`` of that
sample (its logical row-major index, not its memory offset).  The sample's *global* index
is ``i = sample_offset + b``: ``sample_offset`` (default 0) is the global index of the
batch's first sample, so a process drawing samples ``[k, k + B)`` of a larger run passes
``sample_offset = k`` and gets rows ``[k, k + B)`` of the one big draw (issue 18,
:mod:`sdekit.distributed`).  ``i`` is the counter's 32-bit sample word: ``i < 2^32``.
Elements are taken in groups of ``G`` (4 in float32, 2 in float64) that share one Philox call:

    q = j // G,   (o0, o1, o2, o3) = Philox4x32-10(counter = (q, i, step_lo, step_hi),
                                                 key     = (seed_lo, seed_hi))
    float32, G = 4:  (o0, o1) -> z[4q], z[4q+1];  (o2, o3) -> z[4q+2], z[4q+3]
        u1 = ((o_even >> 8) + 1) 2^-24,  u2 = (o_odd >> 8) 2^-24
    float64, G = 2:  u1 = ((o0 << 21 | o2 >> 11) + 1) 2^-53,  u2 = (o1 << 21 | o3 >> 11) 2^-53
    Box-Muller:      r = sqrt(-2 log u1),  (z[G q + 2k], z[G q + 2k + 1]) = r (cos 2 pi u2, sin 2 pi u2)

So a draw is a pure function of (seed, step, i, j): strided and contiguous tensors,
and any launch configuration, get the same numbers.  ``u1`` lies in ``(0, 1]`` so the
logarithm is finite; the uniforms are exact in their dtype (24 or 53 bits), so backends
differ only by the last-ulp differences of ``log``/``cos``/``sin``/``sqrt``.  The tails
are cut at ``sqrt(48 log 2) = 5.77`` (float32) and ``sqrt(106 log 2) = 8.57`` (float64).
The angle is the dtype's ``fl(2 pi) * u2`` as written above, evaluated with the precise ``log``,
``cos`` and ``sin`` of each backend (no fast intrinsics: their absolute errors of about 2^-21
exceed last-ulp differences).  A cheaper transform (``sincospi(2 u2)``, exact argument) changes
every draw, so it changes this spec and the three backends together (cost and accuracy measured
in ``benchmarks/RESULTS.md``, "RNG cost study").
Sharing one Philox call among G elements keeps the generator's cost (about 100 integer
operations per call) below the memory traffic of a fused step.

Philox4x32-10 is Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC 2011),
the generator of ``curand_Philox4x32_10`` and ``tl.philox``.  This module is the torch
reference (32-bit arithmetic emulated in int64); the Triton twin is in this file and the
CUDA twin is ``sdekit/csrc/philox.cuh``.
"""
from __future__ import annotations

import math
import numbers

import torch

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9  # key bump (golden ratio)
PHILOX_W1 = 0xBB67AE85  # key bump (sqrt(3) - 1)
MASK32 = 0xFFFFFFFF
ROUNDS = 10

SAMPLE_WORDS = 1 << 32  # global sample indices live in the counter's 32-bit sample word

__all__ = ["SAMPLE_WORDS", "check_sample_offset", "group_size", "philox4x32", "philox_normal", "philox_normal_like",
           "split_seed"]


def split_seed(seed: int) -> tuple[int, int]:
    """The Philox key ``(lo, hi)`` of a 64-bit seed (negative seeds wrap modulo 2^64)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    s = seed % (1 << 64)
    return s & MASK32, s >> 32


def philox4x32(c0, c1, c2, c3, k0: int, k1: int, rounds: int = ROUNDS):
    """Philox4x32-``rounds`` on int64 tensors holding uint32 values; returns four such tensors.

    The two multiplications of a round run on one stacked ``(2, ...)`` tensor (the reference
    is bound by per-op overhead on small tensors); constants enter as Python scalars, so no
    host-to-device copy (and no host sync) happens on a GPU.
    """
    even = torch.stack([c0, c2])  # the multiplied words (c0, c2)
    odd = torch.stack([c3, c1])   # (c3, c1), xored into the hi word of the *other* product
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W0) & MASK32
            k1 = (k1 + PHILOX_W1) & MASK32
        p_lo = even & 0xFFFF
        p_hi = even >> 16
        for q, m in ((0, PHILOX_M0), (1, PHILOX_M1)):  # products < 2^48: no int64 overflow
            p_lo[q] *= m
            p_hi[q] *= m
        hi = (p_hi + (p_lo >> 16)) >> 16                       # (hi0, hi1)
        lo = (((p_hi & 0xFFFF) << 16) + p_lo) & MASK32          # (lo0, lo1) = new (c3, c1)
        even = hi.flip(0) ^ odd.flip(0)                         # (hi1 ^ c1, hi0 ^ c3)
        even[0] ^= k0
        even[1] ^= k1
        odd = lo
    return even[0], odd[1], even[1], odd[0]


def as_i32(v: int) -> int:
    """The int32 with the bit pattern of the uint32 ``v`` (how kernels receive 32-bit words)."""
    return v - (1 << 32) if v >= (1 << 31) else v


def kernel_words(seed: int, step: int) -> tuple[int, int, int, int]:
    """``(seed_lo, seed_hi, step_lo, step_hi)`` as int32 bit patterns, the kernels' RNG arguments."""
    k0, k1 = split_seed(seed)
    s = int(step) % (1 << 64)
    return as_i32(k0), as_i32(k1), as_i32(s & MASK32), as_i32(s >> 32)


def check_sample_offset(sample_offset, batch: int = 0) -> int:
    """``sample_offset`` as an int, checked so that the global sample indices
    ``[sample_offset, sample_offset + batch)`` fit the counter's 32-bit sample word."""
    if isinstance(sample_offset, bool) or not isinstance(sample_offset, numbers.Integral):
        raise TypeError(f"sample_offset must be an int, got {type(sample_offset).__name__}")
    if not 0 <= sample_offset <= SAMPLE_WORDS - max(batch, 1):
        raise ValueError(f"sample_offset must be in [0, 2**32 - batch] = [0, {SAMPLE_WORDS - max(batch, 1)}] "
                         f"(global sample indices are 32-bit), got {sample_offset}")
    return int(sample_offset)


def offset_word(sample_offset: int, batch: int) -> int:
    """The checked ``sample_offset`` of a batch of ``batch`` samples as an int32 bit pattern (the kernels' argument)."""
    return as_i32(check_sample_offset(sample_offset, batch))


def _check_dtype(dtype: torch.dtype) -> None:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"counter-based normals are defined for float32 and float64, got {dtype}")


def group_size(dtype: torch.dtype) -> int:
    """Elements sharing one Philox call: 4 in float32, 2 in float64."""
    _check_dtype(dtype)
    return 4 if dtype == torch.float32 else 2


def philox_normal(B: int, N: int, seed: int, step: int, dtype: torch.dtype = torch.float32,
                  device: torch.device | str = "cpu", sample_offset: int = 0) -> torch.Tensor:
    """The ``(B, N)`` standard normals of ``(seed, step)`` for the global samples
    ``[sample_offset, sample_offset + B)``: the specification of every backend."""
    G = group_size(dtype)
    sample_offset = check_sample_offset(sample_offset, B)
    k0, k1 = split_seed(seed)
    s = int(step) % (1 << 64)
    Q = -(-N // G)
    shape = (B, Q)
    c0 = torch.arange(Q, device=device, dtype=torch.int64).expand(shape)
    c1 = torch.arange(sample_offset, sample_offset + B, device=device, dtype=torch.int64)[:, None].expand(shape)
    c2 = torch.full(shape, s & MASK32, device=device, dtype=torch.int64)
    c3 = torch.full(shape, s >> 32, device=device, dtype=torch.int64)
    o0, o1, o2, o3 = philox4x32(c0, c1, c2, c3, k0, k1)
    two_pi = torch.tensor(2.0 * math.pi, dtype=dtype)
    if dtype == torch.float32:
        pairs = [(o0, o1), (o2, o3)]
        u = [(((a >> 8) + 1).to(dtype) * 2.0 ** -24, (b >> 8).to(dtype) * 2.0 ** -24) for a, b in pairs]
    else:
        u = [((((o0 << 21) | (o2 >> 11)) + 1).to(dtype) * 2.0 ** -53,
              ((o1 << 21) | (o3 >> 11)).to(dtype) * 2.0 ** -53)]
    z = []
    for u1, u2 in u:
        r = torch.sqrt(-2.0 * torch.log(u1))
        theta = two_pi * u2
        z += [r * torch.cos(theta), r * torch.sin(theta)]
    return torch.stack(z, dim=-1).reshape(B, Q * G)[:, :N]


def philox_normal_like(x: torch.Tensor, seed: int, step: int, sample_offset: int = 0) -> torch.Tensor:
    """Normals shaped like ``x`` (contiguous), with ``x.shape[0]`` as the sample axis and
    ``sample_offset`` the global index of its first sample."""
    B = x.shape[0] if x.dim() > 0 else 1
    N = x.numel() // B if B else 0
    return philox_normal(B, N, seed, step, x.dtype, x.device, sample_offset).reshape(x.shape)


# ----------------------------------------------------------------------------------------
# Triton twin.  Kept in this file so the two implementations are read side by side.
try:  # pragma: no cover - exercised when triton is installed
    import triton
    import triton.language as tl

    @triton.jit
    def philox4x32_tl(c0, c1, c2, c3, k0, k1):
        """Philox4x32-10 on uint32 tensors (same rounds as :func:`philox4x32`)."""
        for r in tl.static_range(10):
            if r > 0:
                k0 = k0 + 0x9E3779B9
                k1 = k1 + 0xBB67AE85
            _c0 = c0
            _c2 = c2
            c0 = tl.umulhi(0xCD9E8D57, _c2) ^ c1 ^ k0
            c2 = tl.umulhi(0xD2511F53, _c0) ^ c3 ^ k1
            c1 = _c2 * 0xCD9E8D57
            c3 = _c0 * 0xD2511F53
        return c0, c1, c2, c3

    @triton.jit
    def philox_normal_tl(q, b, off, k0, k1, s0, s1, IS_FP64: tl.constexpr):
        """Box-Muller normals of group ``q`` (int64 tensor) of the global sample ``off + b``.

        Returns four float32 tensors (z[4q], ..., z[4q+3]) or, in float64, two
        (z[2q], z[2q+1]); the caller places them.  ``k*``/``s*`` are the 32-bit halves
        of seed and step, ``off`` the sample offset's 32-bit word (see :func:`offset_word`).
        """
        c0 = q.to(tl.uint32)
        # Scalars arrive as int32 bit patterns (see as_i32): widen in int32, then bitcast.
        zero = tl.zeros(c0.shape, tl.int32)
        c1 = (zero + b).to(tl.uint32, bitcast=True) + (zero + off).to(tl.uint32, bitcast=True)
        c2 = (zero + s0).to(tl.uint32, bitcast=True)
        c3 = (zero + s1).to(tl.uint32, bitcast=True)
        k0 = (zero + k0).to(tl.uint32, bitcast=True)
        k1 = (zero + k1).to(tl.uint32, bitcast=True)
        o0, o1, o2, o3 = philox4x32_tl(c0, c1, c2, c3, k0, k1)
        if IS_FP64:
            a = (((o0.to(tl.uint64) << 21) | (o2 >> 11).to(tl.uint64)) + 1).to(tl.float64)
            c = ((o1.to(tl.uint64) << 21) | (o3 >> 11).to(tl.uint64)).to(tl.float64)
            u1 = a * 1.1102230246251565e-16  # 2^-53
            u2 = c * 1.1102230246251565e-16
            # 2 pi as an exact sum of three float32 constants: Triton materialises float
            # literals in float32, so a plain 6.283185307179586 would lose 29 bits.
            two_pi = (tl.full([], 6.2831854820251465, tl.float64) + (-1.7484555314695172e-07)) + (-6.8604980400235275e-15)
            r = tl.sqrt(-2.0 * tl.log(u1))
            th = two_pi * u2
            return r * tl.cos(th), r * tl.sin(th), r * tl.cos(th), r * tl.sin(th)
        else:
            u1a = ((o0 >> 8) + 1).to(tl.float32) * 5.9604644775390625e-08  # 2^-24
            u2a = (o1 >> 8).to(tl.float32) * 5.9604644775390625e-08
            u1b = ((o2 >> 8) + 1).to(tl.float32) * 5.9604644775390625e-08
            u2b = (o3 >> 8).to(tl.float32) * 5.9604644775390625e-08
            two_pi = 6.2831854820251465  # float32(2 pi)
            ra = tl.sqrt(-2.0 * tl.log(u1a))
            rb = tl.sqrt(-2.0 * tl.log(u1b))
            tha = two_pi * u2a
            thb = two_pi * u2b
            return ra * tl.cos(tha), ra * tl.sin(tha), rb * tl.cos(thb), rb * tl.sin(thb)

    @triton.jit
    def philox_normal_at_tl(j, b, off, k0, k1, s0, s1, IS_FP64: tl.constexpr):
        """The normal of element ``j`` (int64 tensor, any order) of the global sample ``off + b``.

        Computes the Philox call of each element's group; used where elements are not
        laid out in whole groups (the generic strided path computes G-fold redundant calls).
        """
        if IS_FP64:
            z0, z1, z2, z3 = philox_normal_tl(j // 2, b, off, k0, k1, s0, s1, IS_FP64)
            z = tl.where((j % 2) == 0, z0, z1)
        else:
            z0, z1, z2, z3 = philox_normal_tl(j // 4, b, off, k0, k1, s0, s1, IS_FP64)
            r = j % 4
            z = tl.where(r == 0, z0, tl.where(r == 1, z1, tl.where(r == 2, z2, z3)))
        return z

    @triton.jit
    def philox_normal_grouped_tl(q, b, off, k0, k1, s0, s1, IS_FP64: tl.constexpr):
        """Normals of whole groups ``q`` (1-D int64 tensor of length Q) of the global sample
        ``off + b`` as a ``[Q, G]`` tile."""
        z0, z1, z2, z3 = philox_normal_tl(q, b, off, k0, k1, s0, s1, IS_FP64)
        if IS_FP64:
            col = tl.arange(0, 2)[None, :]
            z = tl.where(col == 0, z0[:, None], z1[:, None])
        else:
            col = tl.arange(0, 4)[None, :]
            z = tl.where(col == 0, z0[:, None], tl.where(col == 1, z1[:, None],
                         tl.where(col == 2, z2[:, None], z3[:, None])))
        return z

    @triton.jit
    def _philox_normal_kernel(out_ptr, N, off, k0, k1, s0, s1, IS_FP64: tl.constexpr, BLOCK: tl.constexpr):
        b = tl.program_id(1)
        j = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        z = philox_normal_at_tl(j, b, off, k0, k1, s0, s1, IS_FP64)
        tl.store(out_ptr + b.to(tl.int64) * N + j, z, mask=j < N)

except ImportError:  # pragma: no cover
    pass


def philox_normal_triton(B: int, N: int, seed: int, step: int, dtype=torch.float32, device="cpu",
                         sample_offset: int = 0) -> torch.Tensor:
    """:func:`philox_normal` drawn by the Triton twin (element-wise path; for tests)."""
    _check_dtype(dtype)
    out = torch.empty(B, N, dtype=dtype, device=device)
    BLOCK = 1024
    _philox_normal_kernel[(triton.cdiv(N, BLOCK), B)](
        out, N, offset_word(sample_offset, B), *kernel_words(seed, step), IS_FP64=dtype == torch.float64, BLOCK=BLOCK)
    return out
