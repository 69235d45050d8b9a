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
it needs no ``1/s`` and stays finite as ``s -> 0``.  The DDPM form of the paper is
``s = sqrt(abar_t)``, ``std = sqrt(1 - abar_t)``.

Zero singular values.  Entries with ``S = 0`` contribute nothing (the pseudo-inverse
convention: ``A^T`` annihilates them), and so do those at rounding level: ``S`` is the
operator's :meth:`~sdekit.inverse.SVDOperator.numerical_singulars`, every value at or
below ``rcond * max(S)`` (default ``rcond = max(m, n) eps`` of the dtype) set to 0.  With
``sigma_y = 0`` the weight is ``1 / (std^2 S)`` and a rounding-level ``S`` would amplify
noise by ``1/eps`` or more; the exact-rank limit is the finite pseudo-inverse formula
``(1/s) A^T ((std/s)^2 A A^T)^+ (y - A x_t / s)``.  With ``sigma_y > 0`` the dropped
terms are below ``tau |s U^T y - S V^T x_t| / (s^2 sigma_y^2)``.

``std = 0`` together with ``s sigma_y = 0`` (a noiseless measurement of a clean image) makes
the pseudo-likelihood a point mass, which has no score: a ValueError says so (checked for
Python numbers and CPU tensors; CUDA tensors are not inspected, to avoid a device sync).

Cost: ``V^T`` and ``V`` restricted to the range (:meth:`~sdekit.inverse.SVDOperator.Vt_range`,
:meth:`~sdekit.inverse.SVDOperator.V_range`), ``U^T y`` restricted likewise and computed once
per measurement batch (:class:`LikelihoodScore`), and one fused elementwise pass
(``sdekit.kernels.spectral_scale``).
"""
from __future__ import annotations

import math

import torch

from .._checks import check_real, is_real
from ..kernels import resolve
from ..kernels import spectral_scale as _spectral_scale  # noqa: F401  (registers the kernels)
from .base import SVDOperator

__all__ = ["LikelihoodScore", "likelihood_score", "likelihood_score_at", "per_sample"]


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


def _coefficient(v, name: str, B: int, like: torch.Tensor):
    """A Python number stays a float (no host-to-device copy per call, nothing that would break a
    CUDA-graph capture); a tensor becomes ``(B, 1)`` (:func:`per_sample`)."""
    if is_real(v):
        return check_real(name, v, nonnegative=True)
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a number or a tensor of shape ({B},), got {type(v).__name__}")
    return per_sample(v, B, like, name)


def _check_not_point_mass(a, c) -> None:
    """``a + c S^2`` must not vanish for ``S > 0``: ``a = (s sigma_y)^2 = 0`` and ``c = std^2 = 0``
    together leave no score (checked for numbers and CPU tensors only: no device sync)."""
    if isinstance(a, float) and isinstance(c, float):
        degenerate = a == 0.0 and c == 0.0
    elif all(not isinstance(v, torch.Tensor) or v.device.type == "cpu" for v in (a, c)):
        degenerate = bool(((a + c) == 0).any())
    else:
        return
    if degenerate:
        raise ValueError(
            "std = 0 with sigma_y = 0 (or mean_scale = 0): the pseudo-likelihood "
            "N(y; A x_t / s, sigma_y^2 I + (std/s)^2 A A^T) is then a point mass and has no score; "
            "use sigma_y > 0 or a time t with marginal_std(t) > 0")


class LikelihoodScore:
    """``x_t -> grad_{x_t} log N(y; A x_t / s, sigma_y^2 I + (std/s)^2 A A^T)`` for one measurement batch.

    Evaluates (module docstring, Meng & Kabashima 2022, Algorithm 1)

        V add_zeros( S (s U^T y - S V^T x_t) / (s^2 sigma_y^2 + std^2 S^2) )

    with ``(U^T y)[:k]`` computed once here, so a sampler calling it every step pays only
    ``V^T x_t``, the fused spectral scaling and ``V``.  Used by :func:`likelihood_score` and
    :class:`~sdekit.inverse.DMPS`.

    Args:
        op: an implicit-SVD operator (:class:`~sdekit.inverse.SVDOperator`).
        y: measurements, ``(B, m)`` or ``(B, *op.out_shape)``, finite (checked on the CPU).
        sigma_y: measurement noise std, a number ``>= 0`` or a ``(B,)`` tensor.
        n: elements per ``x_t`` sample; needed only for operators built without a size
            whose ``y`` does not imply it.
        rcond: relative cutoff below which singular values count as zero (default
            ``max(m, n) eps`` of ``x_t``'s dtype; module docstring).
        backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cuda"`` for the spectral scaling.

    Call as ``score(x_t, mean_scale, std)``: ``x_t`` is ``(B, *op.in_shape)`` or ``(B, n)`` on
    ``y``'s device; ``mean_scale`` (= s) and ``std`` are numbers ``>= 0`` or ``(B,)`` tensors.
    Returns a tensor shaped like ``x_t``.  If ``x_t``'s dtype differs from ``y``'s, ``U^T y``
    is cast to it (once per dtype).
    """

    def __init__(self, op: SVDOperator, y: torch.Tensor, sigma_y, *, n: int | None = None,
                 rcond: float | None = None, backend: str = "auto") -> None:
        if not isinstance(op, SVDOperator):
            raise TypeError(f"op must be an sdekit.inverse operator, got {type(op).__name__}")
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        if y.device.type == "cpu" and y.is_floating_point() and not torch.isfinite(y).all():
            raise ValueError("y must be finite (it has NaN or infinite entries)")
        self.op, self.backend = op, backend
        self.rcond = None if rcond is None else check_real("rcond", rcond, nonnegative=True)
        self.n = op._input_size(y, n)
        self.uy = op.Ut_range(y, self.n)
        self.batch = self.uy.shape[0]
        _coefficient(sigma_y, "sigma_y", self.batch, self.uy)  # validate now, before any sampling
        self.sigma_y = sigma_y
        self._uy_as = {self.uy.dtype: self.uy}
        self._kernel = resolve("spectral_scale", backend, self.uy.device)

    def __call__(self, x_t: torch.Tensor, mean_scale, std) -> torch.Tensor:
        if not isinstance(x_t, torch.Tensor):
            raise TypeError(f"x_t must be a torch.Tensor, got {type(x_t).__name__}")
        if x_t.dim() < 2 or x_t.shape[0] != self.batch:
            raise ValueError(f"x_t must be a batch of {self.batch} (y's batch size), got shape {tuple(x_t.shape)}")
        if x_t.device != self.uy.device:
            raise ValueError(f"x_t is on {x_t.device} but y is on {self.uy.device}")
        if self.n is not None and math.prod(x_t.shape[1:]) != self.n:
            raise ValueError(f"x_t must have {self.n} elements per sample (the size y was taken for), "
                             f"got shape {tuple(x_t.shape)}")
        op, n = self.op, math.prod(x_t.shape[1:])
        z = op.Vt_range(x_t)
        uy = self._uy_as.get(z.dtype)
        if uy is None:
            uy = self._uy_as[z.dtype] = self.uy.to(z.dtype)
        s = _coefficient(mean_scale, "mean_scale", self.batch, z)
        sd = _coefficient(std, "std", self.batch, z)
        sy = _coefficient(self.sigma_y, "sigma_y", self.batch, z)
        a, c = (s * sy) ** 2, sd * sd
        _check_not_point_mass(a, c)
        S = op.numerical_singulars(n, like=z, rcond=self.rcond)
        w = self._kernel(z, uy, S, s, a, c)
        return op.V_range(w, n).reshape(x_t.shape)


def likelihood_score(op: SVDOperator, y: torch.Tensor, x_t: torch.Tensor, *, mean_scale, std,
                     sigma_y, backend: str = "auto", rcond: float | None = None) -> torch.Tensor:
    """``grad_{x_t} log N(y; A x_t / s, sigma_y^2 I + (std/s)^2 A A^T)`` (module docstring):
    ``LikelihoodScore(op, y, sigma_y)(x_t, mean_scale, std)`` in one call.

    ``op``: an implicit-SVD operator; ``y``: ``(B, m)`` or ``(B, *measurement shape)``, cast
    to ``x_t``'s dtype; ``x_t``: ``(B, ...)``; ``mean_scale`` (= s), ``std``, ``sigma_y``:
    non-negative scalars or ``(B,)`` tensors; ``rcond``: see :class:`LikelihoodScore`.
    Returns a tensor shaped like ``x_t``.  A sampler calling it every step should build one
    :class:`LikelihoodScore` instead (``U^T y`` once).
    """
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"x_t must be a torch.Tensor, got {type(x_t).__name__}")
    if x_t.dim() < 2:
        raise ValueError(f"x_t must be a batched tensor (B, ...), got shape {tuple(x_t.shape)}")
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() < 2 or y.shape[0] != x_t.shape[0]:
        raise ValueError(f"y must be a batched tensor with the batch size of x_t ({x_t.shape[0]}), "
                         f"got shape {tuple(y.shape)}")
    if y.device != x_t.device:
        raise ValueError(f"y is on {y.device} but x_t is on {x_t.device}")
    if x_t.is_floating_point() and y.is_floating_point():
        y = y.to(x_t.dtype)
    score = LikelihoodScore(op, y, sigma_y, n=math.prod(x_t.shape[1:]), rcond=rcond, backend=backend)
    return score(x_t, mean_scale, std)


def likelihood_score_at(sde, op: SVDOperator, y: torch.Tensor, x_t: torch.Tensor, t, *, sigma_y,
                        backend: str = "auto", rcond: float | None = None) -> torch.Tensor:
    """:func:`likelihood_score` with ``s = mx(t)``, ``std = marginal_std(t)`` from a ``LinearSDE``.

    ``t``: scalar or ``(B,)``.  The SDE must have no ``y``-drift (``my = 0``): DMPS's
    ``x_t = s x0 + std z`` does not hold otherwise, and a ValueError says so.
    """
    if getattr(sde, "has_y_drift", False):
        raise ValueError(f"{type(sde).__name__} has a y-drift (my(t) != 0); the DMPS likelihood "
                         "assumes x_t = mx(t) x0 + std(t) z")
    if not hasattr(sde, "mean_coeffs") or not hasattr(sde, "marginal_std"):
        raise TypeError(f"sde must be a LinearSDE, got {type(sde).__name__}")
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"x_t must be a torch.Tensor, got {type(x_t).__name__}")
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    mx, _ = sde.mean_coeffs(t)
    std = sde.marginal_std(t)
    return likelihood_score(op, y, x_t, mean_scale=mx, std=std, sigma_y=sigma_y, backend=backend, rcond=rcond)
