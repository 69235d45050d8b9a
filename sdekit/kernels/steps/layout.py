"""Memory layout of the tensors a fused step reads and writes, shared by the Triton, CUDA and CPU launchers
(and the call of the compiled ops, shared by the CUDA and CPU ones).

A step sees every tensor as ``(B, D1, D2, D3)``: the batch axis and at most three inner axes,
each tensor with its own strides.  Inner axes of size 1 are dropped and adjacent axes that
are contiguous with each other *in every tensor* are merged, so a contiguous tensor becomes
``(B, 1, 1, N)`` with inner stride 1 (the fast path) and most strided views (batch slices,
channel slices, transposed images) keep their memory in place.  Only layouts that need more
than three inner axes are copied to contiguous memory first.
"""
from __future__ import annotations

import functools

import torch

from ..rng import split_seed


@functools.lru_cache(maxsize=1024)  # a sampling loop asks the same question every step
def _collapse(shape, strides_list):
    inner = list(shape[1:])
    st = [list(s[1:]) for s in strides_list]
    keep = [i for i, d in enumerate(inner) if d != 1]
    inner = [inner[i] for i in keep]
    st = [[s[i] for i in keep] for s in st]
    i = len(inner) - 2
    while i >= 0:
        if all(s[i] == s[i + 1] * inner[i + 1] for s in st):
            inner[i] *= inner[i + 1]
            del inner[i + 1]
            for s in st:
                s[i] = s[i + 1]
                del s[i + 1]
        i -= 1
    if len(inner) > 3:
        return None
    pad = 3 - len(inner)
    dims = tuple([1] * pad + inner)
    strides = tuple(tuple([s0[0]] + [0] * pad + s) for s0, s in zip(strides_list, st))
    return dims, strides


def step_layout(tensors: list[torch.Tensor | None]):
    """``(tensors, dims, strides, inner_contiguous)`` for the non-``None`` tensors, copying if needed.

    The first tensor is the output; when it must be copied, the caller writes the copy back.
    """
    present = [t for t in tensors if t is not None]
    shape = present[0].shape
    res = _collapse(tuple(shape), tuple(t.stride() for t in present))
    if res is None:
        present = [t.contiguous() for t in present]
        res = _collapse(tuple(shape), tuple(t.stride() for t in present))
    dims, strides = res
    it = iter(zip(present, strides))
    out_t, out_s = [], []
    for t in tensors:
        if t is None:
            out_t.append(None)
            out_s.append((0, 0, 0, 0))
        else:
            tt, ss = next(it)
            out_t.append(tt)
            out_s.append(ss)
    inner_contig = dims[0] == 1 and dims[1] == 1 and all(s[3] == 1 or dims[2] == 1 for s in strides)
    return out_t, dims, out_s, inner_contig


def _i64(v: int) -> int:
    """A 64-bit word as the int64 with the same bits."""
    v %= 1 << 64
    return v - (1 << 64) if v >= (1 << 63) else v


def launch_words(seed: int, step: int, sample_offset: int = 0) -> tuple[int, int, int]:
    """``(seed, step, sample_offset)`` as the int64s the compiled ops receive (seed and step as bit
    patterns, taken modulo 2^64; the offset, already checked to lie in ``[0, 2^32)``, as is)."""
    k0, k1 = split_seed(seed)
    return _i64(k0 | (k1 << 32)), _i64(int(step)), int(sample_offset)


GPU_MAX_BATCH = 65535  # CUDA's limit on the second grid dimension


def check_grid_rows(B: int) -> None:
    """The GPU launchers (Triton, CUDA) run one grid row per sample: at most 65535 samples."""
    if B > GPU_MAX_BATCH:
        raise ValueError(f"the GPU fused steps launch one grid row per sample; batch {B} exceeds {GPU_MAX_BATCH}")


def run_affine_step_op(ops, x, coef, *, score, y, seed, step, sample_offset, noise, out, flags):
    """``torch.ops.sdekit.sde_affine_step`` called through ``ops`` (the CPU and CUDA backends' launcher).

    Lays the tensors out as ``(B, D1, D2, D3)`` (:func:`step_layout`), passes the 64-bit words of
    :func:`launch_words`, and writes back the output when the layout had to copy it.
    """
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    flat = [v for st in strides for v in st]
    ops.sde_affine_step(o, xx, s, yy, coef, flags, dims, flat, *launch_words(seed, step, sample_offset),
                        bool(noise), contig)
    if o is not target:
        target.copy_(o)
    return target


def run_sample_sq_norms_op(ops, score, *, seed, step, sample_offset):
    """``torch.ops.sdekit.sde_sample_sq_norms`` called through ``ops`` (the CPU and CUDA backends' launcher)."""
    (s,), dims, strides, contig = step_layout([score])
    return ops.sde_sample_sq_norms(s, dims, strides[0], *launch_words(seed, step, sample_offset), contig)
