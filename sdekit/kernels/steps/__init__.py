"""Front door of the fused sampling steps: one call, the backend chosen by :mod:`dispatch`.

    affine_step:     x_out[b] = A[b] x[b] + C[b] y[b] + S[b] score[b] + N[b] z[b](seed, step)
    sample_sq_norms: per sample (sum score^2, sum z^2), for the Langevin step size

Importing this module registers the torch reference and, where importable, the Triton and
CUDA implementations.  Solvers call these two functions and never name a backend.
"""
from __future__ import annotations

import torch

from . import steps_reference  # noqa: F401  (registers "torch")
from .dispatch import resolve

try:  # noqa: SIM105
    from . import steps_triton  # noqa: F401  (registers "triton")
except ImportError:  # pragma: no cover - triton absent
    pass
from . import steps_cuda  # noqa: F401,E402  (registers "cuda"; the extension loads on first use)

__all__ = ["affine_step", "sample_sq_norms", "step_impl"]


def step_impl(op: str, backend: str, device: torch.device | str):
    """The implementation of ``op`` ("affine_step" or "sample_sq_norms") for ``backend`` on ``device``."""
    return resolve(op, backend, device)


def affine_step(x, coef, *, backend="auto", **kwargs):
    return resolve("affine_step", backend, x.device)(x, coef, **kwargs)


def sample_sq_norms(score, *, backend="auto", **kwargs):
    return resolve("sample_sq_norms", backend, score.device)(score, **kwargs)
