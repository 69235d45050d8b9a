"""The DMPS noise-perturbed pseudo-likelihood score (Meng & Kabashima 2022, arXiv:2211.12343).

For ``y = A x0 + n``, ``n ~ N(0, sigma_y^2 I)``, and a linear SDE without ``y``-drift,
``x_t = s x0 + std z`` (``s = mean_scale = mx(t)``, ``std = marginal_std(t)``), DMPS
approximates ``p(x0 | x_t)`` by ``N(x_t / s, (std/s)^2 I)``, giving

    p(y | x_t) ~= N(y; A x_t / s, sigma_y^2 I + (std/s)^2 A A^T)

whose score in ``x_t`` is, with ``A = U diag(S) V^T``,

    grad log p(y | x_t) = (1/s) A^T (sigma_y^2 I + (std/s)^2 A A^T)^-1 (y - A x_t / s)
                        = (1/s) V S (sigma_y^2 I + (std/s)^2 S^2)^-1 (U^T y - S V^T x_t / s)
                        = V add_zeros( S (s U^T y - S V^T x_t) / (s^2 sigma_y^2 + std^2 S^2) ).

The last line (numerator and denominator multiplied by ``s^2``) is what is evaluated:
it needs no ``1/s`` and stays finite as ``s -> 0``.  Entries with ``S = 0`` contribute
nothing (the pseudo-inverse convention; ``A^T`` annihilates them).  The DDPM form of the
paper is ``s = sqrt(abar_t)``, ``std = sqrt(1 - abar_t)``.  The formula is singular when
``std = 0`` and ``sigma_y = 0`` together (a noiseless measurement of a clean image).

Cost: ``V^T`` and ``V`` restricted to the range (``_Vt_range``, ``_V_range``), ``U^T y``
restricted likewise, and one fused elementwise pass (``sdekit.kernels.spectral_scale``).
"""
from __future__ import annotations

import math
import numbers

import torch

from ..kernels import resolve
from ..kernels import spectral_scale as _spectral_scale  # noqa: F401  (registers the kernels)
from .base import SVDOperator

__all__ = ["likelihood_score", "likelihood_score_at", "per_sample"]


def per_sample(v, B: int, like: torch.Tensor, name: str, *, allow_zero: bool = True) -> torch.Tensor:
    """A scalar or ``(B,)`` coefficient as a ``(B, 1)`` tensor in ``like``'s dtype/device.

    Raises ValueError for negative or non-finite values (checked for Python numbers and
    CPU tensors; CUDA tensors are not inspected, to avoid a device sync per call).
    """
    t = torch.as_tensor(v, dtype=like.dtype, device=like.device) if not isinstance(v, torch.Tensor) \
        else v.to(dtype=like.dtype, device=like.device)
    if t.dim() == 0:
        t = t.expand(B)
    elif t.shape != (B,) and not (t.dim() == 2 and t.shape == (B, 1)):
        raise ValueError(f"{name} must be a scalar or of shape ({B},), got shape {tuple(t.shape)}")
    if t.device.type == "cpu":
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite, got {v!r}")
        if (t < 0).any() or (not allow_zero and (t == 0).any()):
            raise ValueError(f"{name} must be {'>=' if allow_zero else '>'} 0, got {v!r}")
    return t.reshape(B, 1)


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_scalar(v, name: str) -> float:
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v!r}")
    return v


def _coefficient(v, name: str, B: int, like: torch.Tensor):
    return _check_scalar(v, name) if _real(v) else per_sample(v, B, like, name)


def spectral_coefficients(mean_scale, std, sigma_y, B: int, like: torch.Tensor):
    """``(s, s^2 sigma_y^2, std^2)``, each a Python float (same for the batch) or a ``(B, 1)`` tensor.

    Numbers stay numbers: no host-to-device copy per call (and nothing that would break a
    CUDA-graph capture).
    """
    s = _coefficient(mean_scale, "mean_scale", B, like)
    sd = _coefficient(std, "std", B, like)
    sy = _coefficient(sigma_y, "sigma_y", B, like)
    return s, (s * sy) ** 2, sd * sd


def _spectral_middle(op: SVDOperator, uy, z, n, *, mean_scale, std, sigma_y, backend):
    s, a, c = spectral_coefficients(mean_scale, std, sigma_y, z.shape[0], z)
    S = op.singulars(n, like=z)
    fn = resolve("spectral_scale", backend, z.device)
    return fn(z, uy, S, s, a, c)


def likelihood_score(op: SVDOperator, y: torch.Tensor, x_t: torch.Tensor, *, mean_scale, std,
                     sigma_y, backend: str = "auto") -> torch.Tensor:
    """``grad_{x_t} log N(y; A x_t / s, sigma_y^2 I + (std/s)^2 A A^T)`` (see module docstring).

    ``op``: an implicit-SVD operator; ``y``: ``(B, m)`` or ``(B, *measurement shape)``;
    ``x_t``: ``(B, ...)``; ``mean_scale`` (= s), ``std``, ``sigma_y``: non-negative
    scalars or ``(B,)`` tensors.  Returns a tensor shaped like ``x_t``.
    """
    if not isinstance(op, SVDOperator):
        raise ValueError(f"op must be an sdekit.inverse operator, got {type(op).__name__}")
    if not isinstance(x_t, torch.Tensor) or x_t.dim() < 2:
        raise ValueError("x_t must be a batched tensor (B, ...)")
    if not isinstance(y, torch.Tensor) or y.dim() < 2 or y.shape[0] != x_t.shape[0]:
        raise ValueError(f"y must be a batched tensor with the batch size of x_t ({x_t.shape[0]}), "
                         f"got {None if not isinstance(y, torch.Tensor) else tuple(y.shape)}")
    if y.device != x_t.device:
        raise ValueError(f"y is on {y.device} but x_t is on {x_t.device}")
    n = math.prod(x_t.shape[1:])
    if _real(sigma_y):  # validate before any work
        _check_scalar(sigma_y, "sigma_y")
    else:
        per_sample(sigma_y, x_t.shape[0], x_t, "sigma_y")
    z = op._Vt_range(x_t)
    uy = op._Ut_range(y.to(x_t.dtype), n)
    w = _spectral_middle(op, uy, z, n, mean_scale=mean_scale, std=std, sigma_y=sigma_y, backend=backend)
    return op._V_range(w, n).reshape(x_t.shape)


def likelihood_score_at(sde, op: SVDOperator, y: torch.Tensor, x_t: torch.Tensor, t, *, sigma_y,
                        backend: str = "auto") -> torch.Tensor:
    """:func:`likelihood_score` with ``s = mx(t)``, ``std = marginal_std(t)`` from a ``LinearSDE``.

    ``t``: scalar or ``(B,)``.  The SDE must have no ``y``-drift (``my = 0``): DMPS's
    ``x_t = s x0 + std z`` does not hold otherwise, and a ValueError says so.
    """
    if getattr(sde, "has_y_drift", False):
        raise ValueError(f"{type(sde).__name__} has a y-drift (my(t) != 0); the DMPS likelihood "
                         "assumes x_t = mx(t) x0 + std(t) z")
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    mx, _ = sde.mean_coeffs(t)
    std = sde.marginal_std(t)
    return likelihood_score(op, y, x_t, mean_scale=mx, std=std, sigma_y=sigma_y, backend=backend)
