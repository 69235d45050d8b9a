"""Fused sampling steps: the contract, the checks and the front door; the backend is :mod:`..dispatch`'s choice.

    affine_step:     x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)
    sample_sq_norms: per sample (sum score[b]^2, sum z[b]^2), for the Langevin step size

``z`` are the counter-based normals of :mod:`sdekit.kernels.rng`, row ``b`` those of the global
sample ``sample_offset + b``.  Files of this folder:
``reference.py`` (torch, the specification), ``triton.py``, ``cuda.py`` and ``cpu.py``
(launchers of the compiled ops ``torch.ops.sdekit.sde_affine_step`` /
``sde_sample_sq_norms``, whose one schema is defined here and whose kernels are
``sdekit/csrc/sde_steps.cu`` and ``sdekit/csrc/cpu/ops.cpp``), and ``layout.py`` (the
``(B, D1, D2, D3)`` view the launchers share, and the GPU launchers' batch chunks).

Contract every backend honours (arguments are checked once, here, by :func:`check_step_args`):

* ``x``: float32 or float64, at least one dimension, the first the batch ``B``: every backend
  takes any ``B``, ``0`` and empty samples included (the GPU launchers, Triton and CUDA, run one
  grid row per sample and launch batches over 65535 in chunks, each told its first sample's global
  index, with the numbers of one launch: ``layout.batch_chunks``); ``score``, ``y``, ``out``:
  ``x``'s shape, dtype and device, any strides; ``coef``: ``(4, 1)`` or ``(4, B)`` rows
  ``(A, C, S, N)``, any strides.
* ``seed``, ``step``: ints, taken modulo ``2^64``; ``sample_offset``: an int in ``[0, 2^32 - B]``
  (the global index of the batch's first sample; checked here, once).
* ``flags``: an int32 tensor of 2 entries; ``flags[0]`` is set to 1 when ``score`` holds a
  non-finite value, ``flags[1]`` when the output does; never reset.
* The result is ``out`` (written in place; ``out`` may be ``x``) or a new tensor shaped like ``x``.
* Normals within the ulps stated in :mod:`sdekit.kernels.rng` of the reference's; the rest of
  the arithmetic in the reference's order (GPU kernels may contract it into FMAs).
* No autograd: the steps are sampling updates, not differentiated.
"""
from __future__ import annotations

import torch

from ..._checks import check_batched_float, check_like
from ..dispatch import resolve
from ..rng import check_sample_offset

__all__ = ["affine_step", "sample_sq_norms", "check_step_args", "resolve"]

torch.library.define(
    "sdekit::sde_affine_step",
    "(Tensor(a!) out, Tensor x, Tensor? score, Tensor? y, Tensor coef, Tensor(b!)? flags, int[] dims, "
    "int[] strides, int seed, int step, int sample_offset, bool noise, bool contig) -> ()")
torch.library.define(
    "sdekit::sde_sample_sq_norms",
    "(Tensor score, int[] dims, int[] strides, int seed, int step, int sample_offset, bool contig) -> Tensor")


@torch.library.register_fake("sdekit::sde_affine_step")
def _affine_step_fake(out, x, score, y, coef, flags, dims, strides, seed, step, sample_offset, noise, contig):
    return None


@torch.library.register_fake("sdekit::sde_sample_sq_norms")
def _sample_sq_norms_fake(score, dims, strides, seed, step, sample_offset, contig):
    return score.new_empty(score.shape[0], 2)


def check_step_args(x, coef, score, y, out, flags) -> None:
    """Validate the arguments of :func:`affine_step`; errors name the argument."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.dim() < 1:
        raise ValueError("x must have a leading batch dimension")
    B = x.shape[0]
    for name, t in (("score", score), ("y", y), ("out", out)):
        if t is not None:
            check_like(name, t, x)
    if not isinstance(coef, torch.Tensor) or coef.dim() != 2 or coef.shape[0] != 4 or coef.shape[1] not in (1, B):
        shape = tuple(coef.shape) if isinstance(coef, torch.Tensor) else type(coef).__name__
        raise ValueError(f"coef must be a (4, 1) or (4, {B}) tensor of rows (A, C, S, N), got {shape}")
    if coef.dtype != x.dtype or coef.device != x.device:
        raise TypeError(f"coef must have x's dtype and device ({x.dtype}, {x.device}), got ({coef.dtype}, {coef.device})")
    if flags is not None and (flags.dtype != torch.int32 or flags.numel() != 2 or flags.device != x.device):
        raise ValueError("flags must be an int32 tensor of 2 entries on x's device")


def affine_step(x, coef, *, score=None, y=None, seed=0, step=0, sample_offset=0, noise=True, out=None, flags=None,
                backend="auto"):
    """``out = A x + C y + S score + N z(seed, step)`` (terms with ``None``, or ``noise=False``, skipped),
    by the backend ``backend`` picks for ``x``'s device; arguments as in the module docstring."""
    check_step_args(x, coef, score, y, out, flags)
    sample_offset = check_sample_offset(sample_offset, x.shape[0])
    return resolve("affine_step", backend, x.device)(x, coef, score=score, y=y, seed=seed, step=step,
                                                     sample_offset=sample_offset, noise=noise, out=out, flags=flags)


def sample_sq_norms(score, *, seed=0, step=0, sample_offset=0, backend="auto"):
    """``(B, 2)``: per sample, ``sum(score^2)`` and ``sum(z^2)`` of the normals of ``(seed, step)``
    (row ``b``: the global sample ``sample_offset + b``)."""
    check_batched_float("score", score)
    sample_offset = check_sample_offset(sample_offset, score.shape[0])
    return resolve("sample_sq_norms", backend, score.device)(score, seed=seed, step=step,
                                                             sample_offset=sample_offset)


# Every backend registers itself with the dispatcher on import.
from . import cpu, cuda, reference  # noqa: E402,F401

try:  # noqa: SIM105
    from . import triton  # noqa: F401  (registers "triton")
except ImportError:  # pragma: no cover - triton absent
    pass
