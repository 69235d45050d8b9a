"""Triton fused sampling steps.

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)      (affine_step)
    (z[b]: the normals of the global sample sample_offset + b)
    part[b, p] = (sum score[b]^2, sum z[b]^2) over tile p                      (sample_sq_norms)

One program handles a tile of ``BLOCK`` consecutive logical elements of one sample, as a
``[BLOCK / G, G]`` tile whose rows are the generator's groups (G = 4 float32, 2 float64), so
each Philox call serves G elements; the grid is (tiles, samples), at most 65535 samples a launch
(larger batches go in chunks: ``layout.batch_chunks``).  Bytes moved by ``affine_step``: read x, score, y once,
write x_out once (``4 * numel * itemsize``; 3 without y) plus 4 coefficients per sample;
``sample_sq_norms`` reads score once and writes 2 numbers per tile.  Strided tensors are read
in place through per-tensor ``(B, D1, D2, D3)`` strides (see ``layout.py``).  The torch
reference and specification is ``reference.py``; the normals are ``sdekit/kernels/rng.py``'s.
"""
from __future__ import annotations

import inspect

import torch
import triton
import triton.language as tl

from ..dispatch import register, triton_interpreting
from ..rng import as_i32, group_size, kernel_words, philox_normal_grouped_tl
from .layout import batch_chunks, step_layout


def _one_variant(*names: str) -> dict:
    """``triton.jit`` options that compile one variant for ``names`` whatever their values.

    A sampling loop passes a new step counter, flags word and coefficient row every step.  By
    default Triton compiles a variant per value class (an int equal to 1 or divisible by 16, a
    16-byte-aligned pointer), and a compile during a CUDA-graph capture fails the capture.
    (``do_not_specialize_on_alignment`` is newer than ``do_not_specialize``: used when present.)
    """
    options = {"do_not_specialize": list(names)}
    if "do_not_specialize_on_alignment" in inspect.signature(triton.jit).parameters:
        options["do_not_specialize_on_alignment"] = list(names)
    return options


_SEED_AND_STEP = ("off", "k0", "k1", "t0", "t1")  # the RNG words: sample offset, seed, step


@triton.jit
def _offsets(bb, j, D2, D3, sb, s1, s2, s3, CONTIG: tl.constexpr, SB_UNIT: tl.constexpr):
    # the batch stride arrives divided by SB_UNIT (G when every batch stride is a whole
    # number of groups), so the compiler knows each sample starts 16-byte aligned
    if CONTIG:
        off = bb * (sb * SB_UNIT) + j * s3
    else:
        i3 = j % D3
        r = j // D3
        off = bb * (sb * SB_UNIT) + (r // D2) * s1 + (r % D2) * s2 + i3 * s3
    return off


@triton.jit
def _in_range(q, j, N, G: tl.constexpr, SB_UNIT: tl.constexpr):
    # With N a multiple of G (SB_UNIT == G) the mask is per group, constant along a row of
    # the [Q, G] tile, so the body keeps 128-bit accesses whatever N mod 16 is; else per element.
    if SB_UNIT == G:
        mask = (q < N // G)[:, None] & (j >= 0)
    else:
        mask = j < N
    return mask


@triton.jit(**_one_variant("coef_ptr", "flag_ptr", *_SEED_AND_STEP))
def _affine_step_kernel(
    out_ptr, x_ptr, s_ptr, y_ptr, coef_ptr, flag_ptr,
    N, D2, D3,
    o_sb, o_s1, o_s2, o_s3,
    x_sb, x_s1, x_s2, x_s3,
    s_sb, s_s1, s_s2, s_s3,
    y_sb, y_s1, y_s2, y_s3,
    coef_sk, coef_sb,
    off, k0, k1, t0, t1,
    HAS_SCORE: tl.constexpr, HAS_Y: tl.constexpr, NOISE: tl.constexpr, HAS_FLAGS: tl.constexpr,
    CONTIG: tl.constexpr, SB_UNIT: tl.constexpr, IS_FP64: tl.constexpr, G: tl.constexpr, BLOCK: tl.constexpr,
):
    Q: tl.constexpr = BLOCK // G
    b = tl.program_id(1)
    bb = b.to(tl.int64)
    q = tl.program_id(0).to(tl.int64) * Q + tl.arange(0, Q)
    j = q[:, None] * G + tl.arange(0, G)[None, :]
    mask = _in_range(q, j, N, G, SB_UNIT)
    cp = coef_ptr + bb * coef_sb
    A = tl.load(cp)
    x = tl.load(x_ptr + _offsets(bb, j, D2, D3, x_sb, x_s1, x_s2, x_s3, CONTIG, SB_UNIT), mask=mask, other=0.0)
    acc = A * x
    if HAS_Y:
        C = tl.load(cp + coef_sk)
        yv = tl.load(y_ptr + _offsets(bb, j, D2, D3, y_sb, y_s1, y_s2, y_s3, CONTIG, SB_UNIT), mask=mask, other=0.0)
        acc += C * yv
    if HAS_SCORE:
        S = tl.load(cp + 2 * coef_sk)
        sv = tl.load(s_ptr + _offsets(bb, j, D2, D3, s_sb, s_s1, s_s2, s_s3, CONTIG, SB_UNIT), mask=mask, other=0.0)
        acc += S * sv
    if NOISE:
        Nc = tl.load(cp + 3 * coef_sk)
        z = philox_normal_grouped_tl(q, b, off, k0, k1, t0, t1, IS_FP64)
        acc += Nc * z
    tl.store(out_ptr + _offsets(bb, j, D2, D3, o_sb, o_s1, o_s2, o_s3, CONTIG, SB_UNIT), acc, mask=mask)
    if HAS_FLAGS:
        one = tl.full([], 1, tl.int32)
        if HAS_SCORE:
            bad_s = tl.max(tl.max(tl.where(mask & ((sv - sv) != 0), 1, 0), axis=1), axis=0)
            tl.store(flag_ptr, one, mask=bad_s > 0)
        bad_o = tl.max(tl.max(tl.where(mask & ((acc - acc) != 0), 1, 0), axis=1), axis=0)
        tl.store(flag_ptr + 1, one, mask=bad_o > 0)


@triton.jit(**_one_variant(*_SEED_AND_STEP))
def _sq_norms_kernel(
    s_ptr, part_ptr, N, D2, D3, s_sb, s_s1, s_s2, s_s3, off, k0, k1, t0, t1,
    CONTIG: tl.constexpr, SB_UNIT: tl.constexpr, IS_FP64: tl.constexpr, G: tl.constexpr, BLOCK: tl.constexpr,
):
    Q: tl.constexpr = BLOCK // G
    b = tl.program_id(1)
    bb = b.to(tl.int64)
    p = tl.program_id(0)
    q = p.to(tl.int64) * Q + tl.arange(0, Q)
    j = q[:, None] * G + tl.arange(0, G)[None, :]
    mask = _in_range(q, j, N, G, SB_UNIT)
    sv = tl.load(s_ptr + _offsets(bb, j, D2, D3, s_sb, s_s1, s_s2, s_s3, CONTIG, SB_UNIT), mask=mask, other=0.0)
    z = philox_normal_grouped_tl(q, b, off, k0, k1, t0, t1, IS_FP64)
    z = tl.where(mask, z, 0.0)
    ss = tl.sum(tl.sum(sv * sv, axis=1), axis=0)
    zz = tl.sum(tl.sum(z * z, axis=1), axis=0)
    base = part_ptr + (bb * tl.num_programs(0) + p) * 2
    tl.store(base, ss)
    tl.store(base + 1, zz)


def _block(dtype: torch.dtype, contig: bool) -> tuple[int, int]:
    """(BLOCK, num_warps): small tiles in the interpreter, bandwidth-sized tiles on a GPU.

    16 bytes per tensor per thread twice over (two groups) on the contiguous paths; one group
    on the strided paths, whose offsets (int64 divisions per tensor) would otherwise take
    over 200 registers (see tools/gpu_compile.py and benchmarks/RESULTS.md).
    """
    if triton_interpreting():
        return 1024, 4
    per_thread = 2 if contig else 1
    return 256 * per_thread * (16 // dtype.itemsize), 8


def _batch_stride_unit(N: int, G: int, strides) -> int:
    """G when N and every batch stride are whole groups (the kernel then masks per group and
    is told each sample starts on a group, keeping 128-bit accesses), else 1."""
    return G if N % G == 0 and all(s[0] % G == 0 for s in strides) else 1


def _launch_strides(strides, unit: int) -> list[int]:
    return [v for s in strides for v in (s[0] // unit, *s[1:])]


# Compile options pinned per launch.  Multiply-adds are contracted to FMAs as nvcc does by
# default, so results do not follow TRITON_DEFAULT_FP_FUSION (whose default changes in Triton
# 3.10).  Without a register ceiling ptxas aims at 64-80 registers and spills 4-8 bytes in the
# flagged and odd-N variants; with one at 128 they fit in 71-104 without spills.
_OPTIONS = {"enable_fp_fusion": True, "maxnreg": 128}


@register("affine_step", "triton")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """Triton twin of :func:`sdekit.kernels.steps.reference.affine_step` (one kernel launch per
    65535 samples, see :func:`.layout.batch_chunks`)."""
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    N = dims[0] * dims[1] * dims[2]
    if x.numel() == 0:
        return target
    BLOCK, warps = _block(x.dtype, contig)
    G = group_size(x.dtype)
    unit = _batch_stride_unit(N, G, [st for t, st in zip((o, xx, s, yy), strides) if t is not None])
    for (o_b, x_b, s_b, y_b), coef_b, first in batch_chunks([o, xx, s, yy], coef, sample_offset):
        _affine_step_kernel[(triton.cdiv(N, BLOCK), x_b.shape[0])](
            o_b, x_b, s_b if s_b is not None else x_b, y_b if y_b is not None else x_b, coef_b,
            flags if flags is not None else coef_b,
            N, dims[1], dims[2], *_launch_strides(strides, unit),
            coef_b.stride(0), coef_b.stride(1) if coef_b.shape[1] > 1 else 0,
            as_i32(first), *kernel_words(seed, step),
            HAS_SCORE=score is not None, HAS_Y=y is not None, NOISE=bool(noise), HAS_FLAGS=flags is not None,
            CONTIG=contig, SB_UNIT=unit, IS_FP64=x.dtype == torch.float64, G=G, BLOCK=BLOCK, num_warps=warps,
            **_OPTIONS,
        )
    if o is not target:  # the output needed a contiguous stand-in
        target.copy_(o)
    return target


@register("sample_sq_norms", "triton")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """Triton twin of :func:`sdekit.kernels.steps.reference.sample_sq_norms` (deterministic: no atomics;
    one kernel launch per 65535 samples)."""
    (s,), dims, strides, contig = step_layout([score])
    N = dims[0] * dims[1] * dims[2]
    BLOCK, warps = _block(score.dtype, contig)
    G = group_size(score.dtype)
    unit = _batch_stride_unit(N, G, strides)
    P = max(triton.cdiv(N, BLOCK), 1)
    part = torch.zeros(score.shape[0], P, 2, dtype=score.dtype, device=score.device)
    if score.numel():
        for (s_b, part_b), _, first in batch_chunks([s, part], None, sample_offset):
            _sq_norms_kernel[(P, s_b.shape[0])](
                s_b, part_b, N, dims[1], dims[2], *_launch_strides(strides, unit), as_i32(first),
                *kernel_words(seed, step),
                CONTIG=contig, SB_UNIT=unit, IS_FP64=score.dtype == torch.float64, G=G,
                BLOCK=BLOCK, num_warps=warps, **_OPTIONS)
    return part.sum(1)
