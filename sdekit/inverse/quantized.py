"""QCS-SGM: the pseudo-likelihood score of quantized measurements (Meng & Kabashima, ICLR 2023).

Measurements ``y = Q(A x0 + n)``, ``n ~ N(0, sigma_y^2 I)``, where the quantizer ``Q``
reports for each entry only the bin ``[l_m, u_m)`` it fell in.  With ``A`` row-orthogonal
(``A A^T = diag(||a_m||^2)``) and DMPS's approximation ``x0 | x_t ~ N(x_t / s, (std/s)^2 I)``
for ``x_t = s x0 + std z``, the entries of ``A x0 + n`` given ``x_t`` are independent,
``N(a_m^T x_t / s, sigma_y^2 + (std/s)^2 ||a_m||^2)``, so (the paper's pseudo-likelihood)

    p(y | x_t) ~= prod_m [Phi(u~_m) - Phi(l~_m)],
    u~_m = (s u_m - a_m^T x_t) / tau_m,  l~_m = (s l_m - a_m^T x_t) / tau_m,
    tau_m = sqrt(s^2 sigma_y^2 + std^2 ||a_m||^2)        (= s sqrt(sigma_y^2 + (std/s)^2 ||a_m||^2))

and its score is

    grad_{x_t} log p(y | x_t) = A^T G,    G_m = R(l~_m, u~_m) / tau_m,
    R(l, u) = (phi(l) - phi(u)) / (Phi(u) - Phi(l)) = E[T | l < T < u],  T ~ N(0, 1).

(The paper writes ``G`` with ``phi(u~) - phi(l~)`` and a minus sign outside; with the
bins standardised as above the sign is as written here.  For a bin shrinking to a point
``y``, ``R -> (s y - a^T x_t) / tau`` and the score tends to the DMPS Gaussian score.)

``R`` is evaluated without cancellation or 0/0 anywhere, including bins far in the tails
(``Phi(u) - Phi(l)`` underflows to 0 for ``l > 38`` in float64):

* reflect so that ``a + b >= 0`` (``R(l, u) = -R(-u, -l)``), giving ``[a, b]``;
* narrow bins, ``h (|c| + h) <= 1`` with ``c, h`` the bin's centre and half-width:
  ``R = c + E[s]`` where ``s`` has density ``∝ exp(-c s - s^2/2)`` on ``[-h, h]``,
  ``E[s] = -sum w_i s_i sinh(c s_i) e^{-s_i^2/2} / sum w_i cosh(c s_i) e^{-s_i^2/2}``
  by 16-point Gauss-Legendre (error < 1e-20 on this range: the integrand is entire and
  its exponent varies by at most ~2);
* otherwise, with ``e = (b - a)(b + a)/2 >= 1``: the numerator over ``phi(a)`` is
  ``-expm1(-e)``; the denominator over ``phi(a)`` is, for ``a >= 0``,
  ``M(a) (-expm1(-e + log M(b) - log M(a)))`` with the Mills ratio
  ``M(x) = Q(x)/phi(x) = sqrt(pi/2) erfcx(x / sqrt 2)`` (no term below 0.63 M(a)), and
  for ``a < 0 < b`` the sum ``(erf(b/√2) + erf(-a/√2)) / 2`` of two positive terms.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import SVDOperator
from .operators import DenseOperator
from .scores import per_sample

__all__ = ["truncated_normal_mean", "quantize", "quantized_likelihood_score", "quantized_likelihood_score_at"]

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_PI_2 = 0.5 * math.log(math.pi / 2)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_x, _w = np.polynomial.legendre.leggauss(16)
_GL_X, _GL_W = _x[_x > 0], _w[_x > 0]  # the positive half; nodes come in +- pairs


def _log_mills(x: torch.Tensor) -> torch.Tensor:
    """``log(Q(x) / phi(x))`` for ``x >= 0`` (``-inf`` at ``+inf``)."""
    return _LOG_SQRT_PI_2 + torch.log(torch.special.erfcx(x / _SQRT2))


def _truncated_normal_mean(l: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    flip = (l + u) < 0
    a = torch.where(flip, -u, l)
    b = torch.where(flip, -l, u)
    both_inf = torch.isinf(a) & torch.isinf(b)
    a = torch.where(both_inf, torch.zeros_like(a), a)  # R(-inf, inf) = 0, set below
    b = torch.where(both_inf, torch.ones_like(b), b)

    # wide bins
    e = (b - a) * (b + a) / 2
    num = -torch.expm1(-e)
    a_pos = a.clamp(min=0)
    lm_a = _log_mills(a_pos)
    lm_b = _log_mills(b.clamp(min=0))
    tail = num / (torch.exp(lm_a) * -torch.expm1(-e + lm_b - lm_a))
    log_phi_a = -a * a / 2 - _LOG_SQRT_2PI
    den = (torch.erf(b / _SQRT2) + torch.erf(-a / _SQRT2)) / 2
    straddle = torch.exp(log_phi_a) * num / den
    r = torch.where(a >= 0, tail, straddle)

    # narrow bins: R = c + E[s]
    c, h = (a + b) / 2, (b - a) / 2
    narrow = torch.isfinite(h) & (h * (c.abs() + h) <= 1)
    hs = torch.where(narrow, h, torch.zeros_like(h)).unsqueeze(-1)
    xs = torch.as_tensor(_GL_X, dtype=l.dtype, device=l.device)
    ws = torch.as_tensor(_GL_W, dtype=l.dtype, device=l.device)
    sn = hs * xs
    gw = ws * torch.exp(-sn * sn / 2)
    cs = torch.where(narrow, c, torch.zeros_like(c)).unsqueeze(-1) * sn
    es = -(gw * sn * torch.sinh(cs)).sum(-1) / (gw * torch.cosh(cs)).sum(-1)
    r = torch.where(narrow, c + es, r)

    r = torch.where(both_inf, torch.zeros_like(r), r)
    return torch.where(flip, -r, r)


def truncated_normal_mean(l, u) -> torch.Tensor:
    """``R(l, u) = (phi(l) - phi(u)) / (Phi(u) - Phi(l))``, the mean of ``N(0, 1)`` truncated to ``(l, u)``.

    Elementwise over broadcast ``l < u`` (``l = -inf`` / ``u = +inf`` allowed); stable
    in the far tails and for narrow bins (see the module docstring).  Float32 and
    float64; ValueError if some ``l >= u`` or a bound is NaN.
    """
    l, u = torch.broadcast_tensors(torch.as_tensor(l), torch.as_tensor(u))
    if not l.is_floating_point():
        l = l.double()
    u = u.to(l.dtype)
    if l.device.type == "cpu" and not (l < u).all():
        raise ValueError("every bin needs lower < upper (and no NaN)")
    return _truncated_normal_mean(l, u)


def quantize(z: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bins ``[t_{i-1}, t_i)`` of ``z`` for sorted ``thresholds`` ``t_1 < ... < t_{K-1}``.

    Returns ``(lower, upper)`` shaped like ``z``, with ``t_0 = -inf`` and ``t_K = +inf``;
    a 1-bit quantizer is ``thresholds = [0.]``.
    """
    t = torch.as_tensor(thresholds, dtype=z.dtype, device=z.device).reshape(-1)
    if t.numel() and not (t[1:] > t[:-1]).all():
        raise ValueError("thresholds must be strictly increasing")
    inf = torch.full((1,), math.inf, dtype=z.dtype, device=z.device)
    edges_lo, edges_hi = torch.cat([-inf, t]), torch.cat([t, inf])
    idx = torch.searchsorted(t, z.contiguous(), right=True)
    return edges_lo[idx], edges_hi[idx]


def quantized_likelihood_score(A, y_bins, x_t: torch.Tensor, *, mean_scale, std, sigma_y) -> torch.Tensor:
    """QCS-SGM score ``A^T G`` (module docstring) for quantized measurements.

    ``A``: a row-orthogonal operator (``Denoising``, ``Inpainting``, ``SuperResolution``,
    ``Colorization``, ``WalshHadamardCS``, or ``DenseOperator`` / a dense matrix whose
    rows are orthogonal); ``y_bins = (lower, upper)``, each ``(B, m)``, ``lower < upper``,
    infinite bounds allowed (e.g. from :func:`quantize`); ``x_t``: ``(B, ...)``;
    ``mean_scale``, ``std``, ``sigma_y``: non-negative scalars or ``(B,)`` tensors.
    Rows with ``a_m = 0`` contribute nothing.  Returns a tensor shaped like ``x_t``.
    """
    if isinstance(A, torch.Tensor):
        A = DenseOperator(A)
    if not isinstance(A, SVDOperator):
        raise ValueError(f"A must be an sdekit.inverse operator or a matrix, got {type(A).__name__}")
    if not isinstance(x_t, torch.Tensor) or x_t.dim() < 2:
        raise ValueError("x_t must be a batched tensor (B, ...)")
    if not isinstance(y_bins, (tuple, list)) or len(y_bins) != 2:
        raise ValueError("y_bins must be a pair (lower, upper) of bin-edge tensors")
    lower, upper = y_bins
    B, n = x_t.shape[0], math.prod(x_t.shape[1:])
    r2 = A.row_norms_sq(n)
    m = r2.numel()
    lo, up = (A._flat(torch.as_tensor(v).to(x_t.dtype), m, name) for v, name in
              ((lower, "lower"), (upper, "upper")))
    if lo.shape[0] != B or up.shape[0] != B:
        raise ValueError(f"y_bins must have the batch size of x_t ({B})")
    if lo.device.type == "cpu" and not (lo < up).all():
        raise ValueError("every bin needs lower < upper (and no NaN)")
    s = per_sample(mean_scale, B, x_t, "mean_scale")
    sd = per_sample(std, B, x_t, "std")
    sy = per_sample(sigma_y, B, x_t, "sigma_y")
    r2 = A._cast(("row_norms_sq", m), r2, x_t)
    Ax = A.forward(x_t)
    tau = torch.sqrt((s * sy) ** 2 + sd * sd * r2)
    lt = torch.where(torch.isinf(lo), lo, (s * lo - Ax) / tau)
    ut = torch.where(torch.isinf(up), up, (s * up - Ax) / tau)
    G = _truncated_normal_mean(lt, ut) / tau
    G = torch.where(r2 == 0, torch.zeros_like(G), G)
    return A.adjoint(G, n).reshape(x_t.shape)


def quantized_likelihood_score_at(sde, A, y_bins, x_t: torch.Tensor, t, *, sigma_y) -> torch.Tensor:
    """:func:`quantized_likelihood_score` with ``s = mx(t)``, ``std = marginal_std(t)`` from a ``LinearSDE``.

    ``t``: scalar or ``(B,)``.  The SDE must have no ``y``-drift (ValueError otherwise).
    """
    if getattr(sde, "has_y_drift", False):
        raise ValueError(f"{type(sde).__name__} has a y-drift (my(t) != 0); QCS-SGM's likelihood "
                         "assumes x_t = mx(t) x0 + std(t) z")
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    mx, _ = sde.mean_coeffs(t)
    return quantized_likelihood_score(A, y_bins, x_t, mean_scale=mx, std=sde.marginal_std(t), sigma_y=sigma_y)
