"""Triton fused sampling steps.

    x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)      (affine_step)
    (z[b]: the normals of the global sample sample_offset + b)
    part[b, p] = (sum score[b]^2, sum z[b]^2) over tile p                      (sample_sq_norms)

One program handles a tile of ``BLOCK`` consecutive logical elements of one sample, as a
``[BLOCK / G, G]`` tile whose rows are the generator's groups (G = 4 float32, 2 float64), so
each Philox call serves G elements.  Bytes moved by ``affine_step``: read x, score, y once,
write x_out once (``4 * numel * itemsize``; 3 without y) plus 4 coefficients per sample;
``sample_sq_norms`` reads score once and writes 2 numbers per tile.  Strided tensors are read
in place through per-tensor ``(B, D1, D2, D3)`` strides (see ``steps_layout``).  The torch
reference and specification is ``steps_reference.py``; the normals are ``rng.py``'s.
"""
from __future__ import annotations

import inspect

import torch
import triton
import triton.language as tl

from .._checks import check_batched_float
from .dispatch import register, triton_interpreting
from .rng import group_size, kernel_words, offset_word, philox_normal_grouped_tl
from .steps_layout import step_layout
from .steps_reference import check_step_args


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


_SEED_AND_STEP = ("off", "k0", "k1", "t0", "t1")  # the RNG words: offset, seed, step


@triton.jit
def _offsets(bb, j, D2, D3, sb, s1, s2, s3, CONTIG: tl.constexpr):
    if CONTIG:
        off = bb * sb + j * s3
    else:
        i3 = j % D3
        r = j // D3
        off = bb * sb + (r // D2) * s1 + (r % D2) * s2 + i3 * s3
    return off


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
    CONTIG: tl.constexpr, IS_FP64: tl.constexpr, G: tl.constexpr, BLOCK: tl.constexpr,
):
    Q: tl.constexpr = BLOCK // G
    b = tl.program_id(1)
    bb = b.to(tl.int64)
    q = tl.program_id(0).to(tl.int64) * Q + tl.arange(0, Q)
    j = q[:, None] * G + tl.arange(0, G)[None, :]
    mask = j < N
    cp = coef_ptr + bb * coef_sb
    A = tl.load(cp)
    x = tl.load(x_ptr + _offsets(bb, j, D2, D3, x_sb, x_s1, x_s2, x_s3, CONTIG), mask=mask, other=0.0)
    acc = A * x
    if HAS_Y:
        C = tl.load(cp + coef_sk)
        yv = tl.load(y_ptr + _offsets(bb, j, D2, D3, y_sb, y_s1, y_s2, y_s3, CONTIG), mask=mask, other=0.0)
        acc += C * yv
    if HAS_SCORE:
        S = tl.load(cp + 2 * coef_sk)
        sv = tl.load(s_ptr + _offsets(bb, j, D2, D3, s_sb, s_s1, s_s2, s_s3, CONTIG), mask=mask, other=0.0)
        acc += S * sv
    if NOISE:
        Nc = tl.load(cp + 3 * coef_sk)
        z = philox_normal_grouped_tl(q, b, off, k0, k1, t0, t1, IS_FP64)
        acc += Nc * z
    tl.store(out_ptr + _offsets(bb, j, D2, D3, o_sb, o_s1, o_s2, o_s3, CONTIG), acc, mask=mask)
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
    CONTIG: tl.constexpr, IS_FP64: tl.constexpr, G: tl.constexpr, BLOCK: tl.constexpr,
):
    Q: tl.constexpr = BLOCK // G
    b = tl.program_id(1)
    bb = b.to(tl.int64)
    p = tl.program_id(0)
    q = p.to(tl.int64) * Q + tl.arange(0, Q)
    j = q[:, None] * G + tl.arange(0, G)[None, :]
    mask = j < N
    sv = tl.load(s_ptr + _offsets(bb, j, D2, D3, s_sb, s_s1, s_s2, s_s3, CONTIG), mask=mask, other=0.0)
    z = philox_normal_grouped_tl(q, b, off, k0, k1, t0, t1, IS_FP64)
    z = tl.where(mask, z, 0.0)
    ss = tl.sum(tl.sum(sv * sv, axis=1), axis=0)
    zz = tl.sum(tl.sum(z * z, axis=1), axis=0)
    base = part_ptr + (bb * tl.num_programs(0) + p) * 2
    tl.store(base, ss)
    tl.store(base + 1, zz)


def _block(dtype: torch.dtype) -> tuple[int, int]:
    """(BLOCK, num_warps): small tiles in the interpreter, bandwidth-sized tiles on a GPU."""
    if triton_interpreting():
        return 1024, 4
    return (4096, 8) if dtype == torch.float32 else (2048, 8)


def _check_grid(B: int) -> None:
    if B > 65535:
        raise ValueError(f"the fused steps launch one grid row per sample; batch {B} exceeds 65535")


@register("affine_step", "triton")
def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None):
    """Triton twin of :func:`sdekit.kernels.steps_reference.affine_step` (one kernel launch)."""
    check_step_args(x, coef, score, y, out, flags)
    B = x.shape[0]
    off = offset_word(sample_offset, B)
    _check_grid(B)
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    N = dims[0] * dims[1] * dims[2]
    if x.numel() == 0:
        return target
    BLOCK, warps = _block(x.dtype)
    G = group_size(x.dtype)
    grid = (triton.cdiv(N, BLOCK), B)
    _affine_step_kernel[grid](
        o, xx, s if s is not None else xx, yy if yy is not None else xx, coef,
        flags if flags is not None else coef,
        N, dims[1], dims[2], *strides[0], *strides[1], *strides[2], *strides[3],
        coef.stride(0), coef.stride(1) if coef.shape[1] > 1 else 0,
        off, *kernel_words(seed, step),
        HAS_SCORE=score is not None, HAS_Y=y is not None, NOISE=bool(noise), HAS_FLAGS=flags is not None,
        CONTIG=contig, IS_FP64=x.dtype == torch.float64, G=G, BLOCK=BLOCK, num_warps=warps,
    )
    if o is not target:  # the output needed a contiguous stand-in
        target.copy_(o)
    return target


@register("sample_sq_norms", "triton")
def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0):
    """Triton twin of :func:`sdekit.kernels.steps_reference.sample_sq_norms` (deterministic: no atomics)."""
    check_batched_float("score", score)
    B = score.shape[0]
    off = offset_word(sample_offset, B)
    _check_grid(B)
    (s,), dims, strides, contig = step_layout([score])
    N = dims[0] * dims[1] * dims[2]
    BLOCK, warps = _block(score.dtype)
    P = max(triton.cdiv(N, BLOCK), 1)
    part = torch.zeros(B, P, 2, dtype=score.dtype, device=score.device)
    if score.numel():
        _sq_norms_kernel[(P, B)](
            s, part, N, dims[1], dims[2], *strides[0], off, *kernel_words(seed, step),
            CONTIG=contig, IS_FP64=score.dtype == torch.float64, G=group_size(score.dtype),
            BLOCK=BLOCK, num_warps=warps)
    return part.sum(1)
