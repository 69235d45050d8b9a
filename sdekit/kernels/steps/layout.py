"""Memory layout of the tensors a fused step reads and writes, shared by the Triton, CUDA and CPU launchers
(with the call of the compiled ops, shared by the CUDA and CPU ones, and the batch chunks of the GPU
launchers, Triton and CUDA).

A step sees every tensor as ``(B, D1, D2, D3)``: the batch axis and at most three inner axes,
each tensor with its own strides.  Inner axes of size 1 are dropped and adjacent axes that
are contiguous with each other *in every tensor* are merged, so a contiguous tensor becomes
``(B, 1, 1, N)`` with inner stride 1 (the fast path) and most strided views (batch slices,
channel slices, transposed images) keep their memory in place.  Only layouts that need more
than three inner axes are copied to contiguous memory first.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import torch

from ..grid import row_chunks
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


_NONE = (0, 0, 0, 0)  # the strides of an absent tensor


def step_layout(tensors: list[torch.Tensor | None]):
    """``(tensors, dims, strides, inner_contiguous)`` for the non-``None`` tensors, copying if needed.

    The first tensor is the output; when it must be copied, the caller writes the copy back.
    ``strides`` holds one 4-tuple per tensor (zeros for ``None``).
    """
    first = tensors[0]
    if all(t is None or t.is_contiguous() for t in tensors):  # the common case, without the general merge
        n = math.prod(first.shape[1:])
        if n > 0:
            row = (n, 0, 0, 1)
            return tensors, (1, 1, n), [_NONE if t is None else row for t in tensors], True
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
            out_s.append(_NONE)
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
    return _seed_word(seed), _i64(int(step)), int(sample_offset)


@functools.lru_cache(maxsize=64, typed=True)  # a loop passes the same seed every step (typed: True is no seed)
def _seed_word(seed: int) -> int:
    k0, k1 = split_seed(seed)
    return _i64(k0 | (k1 << 32))


def batch_chunks(tensors: list[torch.Tensor | None], coef: torch.Tensor | None,
                 sample_offset: int) -> Iterator[tuple[list[torch.Tensor | None], torch.Tensor | None, int]]:
    """The launches of a GPU step: per chunk of at most ``MAX_GRID_ROWS`` samples (one grid row
    each, see :mod:`..grid`), ``(row views of tensors, coef's columns, first sample)``.

    ``tensors`` (``None`` kept) have the batch on their first axis; ``coef`` is ``(4, B)`` (its
    columns of the chunk's samples) or ``(4, 1)``/``None`` (shared, passed as is); the first sample
    is the chunk's global index ``sample_offset + start``, so that row ``b`` of a chunk draws the
    normals of the sample it would draw in one launch.  A flags word is shared by all chunks.
    """
    per_sample = coef is not None and coef.shape[1] > 1
    for rows in row_chunks(tensors[0].shape[0]):
        views = [None if t is None else t[rows] for t in tensors]
        yield views, coef[:, rows] if per_sample else coef, sample_offset + rows.start


def _launches(tensors, coef, sample_offset, grid_rows: bool):
    """:func:`batch_chunks` for an op that runs one grid row per sample (``grid_rows``), else one
    launch on the whole batch."""
    return batch_chunks(tensors, coef, sample_offset) if grid_rows else [(tensors, coef, sample_offset)]


def run_affine_step_op(ops, x, coef, *, score, y, seed, step, sample_offset, noise, out, flags, grid_rows=False):
    """``torch.ops.sdekit.sde_affine_step`` called through ``ops`` (the CPU and CUDA backends' launcher).

    Lays the tensors out as ``(B, D1, D2, D3)`` (:func:`step_layout`), passes the 64-bit words of
    :func:`launch_words`, and writes back the output when the layout had to copy it.  ``grid_rows``:
    the op runs one grid row per sample (CUDA), so batches over 65535 go in :func:`batch_chunks`.
    """
    target = torch.empty_like(x) if out is None else out
    (o, xx, s, yy), dims, strides, contig = step_layout([target, x, score, y])
    flat = [*strides[0], *strides[1], *strides[2], *strides[3]]
    for (o_b, x_b, s_b, y_b), coef_b, first in _launches([o, xx, s, yy], coef, sample_offset, grid_rows):
        ops.sde_affine_step(o_b, x_b, s_b, y_b, coef_b, flags, dims, flat, *launch_words(seed, step, first),
                            bool(noise), contig)
    if o is not target:
        target.copy_(o)
    return target


def run_sample_sq_norms_op(ops, score, *, seed, step, sample_offset, grid_rows=False):
    """``torch.ops.sdekit.sde_sample_sq_norms`` called through ``ops`` (the CPU and CUDA backends' launcher;
    ``grid_rows`` as in :func:`run_affine_step_op`)."""
    (s,), dims, strides, contig = step_layout([score])
    norms = [ops.sde_sample_sq_norms(s_b, dims, strides[0], *launch_words(seed, step, first), contig)
             for (s_b,), _, first in _launches([s], None, sample_offset, grid_rows)]
    return norms[0] if len(norms) == 1 else torch.cat(norms)
