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

__all__ = ["truncated_normal_mean", "quantize", "quantized_likelihood_score", "quantized_likelihood_score_at",
           "row_norms_sq"]

_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_PI_2 = 0.5 * math.log(math.pi / 2)
_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_x, _w = np.polynomial.legendre.leggauss(16)
_GL_X, _GL_W = _x[_x > 0], _w[_x > 0]  # the positive half; nodes come in +- pairs


def _log_mills(x: torch.Tensor) -> torch.Tensor:
    """``log(Q(x) / phi(x))`` for ``x >= 0`` (``-inf`` at ``+inf``)."""
    return _LOG_SQRT_PI_2 + torch.log(torch.special.erfcx(x / _SQRT2))


def _truncated_normal_moments(l: torch.Tensor, u: torch.Tensor, *, variance: bool = False):
    """``R(l, u)`` and, with ``variance=True``, also ``V(l, u) = Var[T | l < T < u]``.

    ``V = 1 + (l phi(l) - u phi(u)) / (Phi(u) - Phi(l)) - R^2``, evaluated on the same
    reflected, ``phi(a)``-scaled pieces as ``R`` (module docstring); narrow bins by the same
    Gauss-Legendre rule (``E[s^2] - E[s]^2``).  Wide bins lose ``eps * max(a, 1)^2`` in
    absolute terms to the cancellation ``1 + a R - R^2`` (a bin ``a`` standard deviations into
    the tail); ``V`` is clamped to ``[0, 1]``, where the variance of a truncated standard
    normal lies.
    """
    flip = (l + u) < 0
    a = torch.where(flip, -u, l)
    b = torch.where(flip, -l, u)
    both_inf = torch.isinf(a) & torch.isinf(b)
    a = torch.where(both_inf, torch.zeros_like(a), a)  # R(-inf, inf) = 0, set below
    b = torch.where(both_inf, torch.ones_like(b), b)

    # wide bins; everything divided by phi(a)
    e = (b - a) * (b + a) / 2
    num = -torch.expm1(-e)
    a_pos = a.clamp(min=0)
    lm_a = _log_mills(a_pos)
    lm_b = _log_mills(b.clamp(min=0))
    mass_tail = torch.exp(lm_a) * -torch.expm1(-e + lm_b - lm_a)
    log_phi_a = -a * a / 2 - _LOG_SQRT_2PI
    mass_straddle = (torch.erf(b / _SQRT2) + torch.erf(-a / _SQRT2)) / 2 / torch.exp(log_phi_a)
    mass = torch.where(a >= 0, mass_tail, mass_straddle)          # (Phi(b) - Phi(a)) / phi(a)
    r = num / mass

    # narrow bins: T = c + s, s with density ∝ exp(-c s - s^2/2) on [-h, h]
    c, h = (a + b) / 2, (b - a) / 2
    narrow = torch.isfinite(h) & (h * (c.abs() + h) <= 1)
    hs = torch.where(narrow, h, torch.zeros_like(h)).unsqueeze(-1)
    xs = torch.as_tensor(_GL_X, dtype=l.dtype, device=l.device)
    ws = torch.as_tensor(_GL_W, dtype=l.dtype, device=l.device)
    sn = hs * xs
    gw = ws * torch.exp(-sn * sn / 2)
    cs = torch.where(narrow, c, torch.zeros_like(c)).unsqueeze(-1) * sn
    wc = gw * torch.cosh(cs)
    z0 = wc.sum(-1)
    es = -(gw * sn * torch.sinh(cs)).sum(-1) / z0
    r = torch.where(narrow, c + es, r)
    r = torch.where(both_inf, torch.zeros_like(r), r)
    r_out = torch.where(flip, -r, r)
    if not variance:
        return r_out

    b_rho = torch.where(torch.isinf(b), torch.zeros_like(b), b * torch.exp(-e))   # b phi(b) / phi(a)
    v = 1 + (a - b_rho) / mass - r * r
    v_narrow = (wc * sn * sn).sum(-1) / z0 - es * es
    v = torch.where(narrow, v_narrow, v)
    v = torch.where(both_inf, torch.ones_like(v), v).clamp(0, 1)
    return r_out, v


def _truncated_normal_mean(l: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    return _truncated_normal_moments(l, u)


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


def _as_float_tensor(v, name: str) -> torch.Tensor:
    """``v`` (a torch tensor or a numpy array, floating point) as a tensor; TypeError otherwise."""
    if isinstance(v, np.ndarray):
        v = torch.from_numpy(v)
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(v).__name__}")
    if not v.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {v.dtype}")
    return v


def quantize(z, thresholds) -> tuple[torch.Tensor, torch.Tensor]:
    """The bins ``[t_{i-1}, t_i)`` of ``z`` for sorted ``thresholds`` ``t_1 < ... < t_{K-1}``.

    Returns ``(lower, upper)`` shaped like ``z``, with ``t_0 = -inf`` and ``t_K = +inf``;
    a 1-bit quantizer is ``thresholds = [0.]``.  ``z``: a floating-point torch tensor or
    numpy array (returned as torch tensors); ``thresholds``: a tensor, array or sequence of
    finite or infinite numbers.  ValueError for a NaN in ``z`` (checked on the CPU) or in
    ``thresholds``, and for thresholds that are not strictly increasing.
    """
    z = _as_float_tensor(z, "z")
    if isinstance(thresholds, np.ndarray):
        thresholds = torch.from_numpy(thresholds)
    try:
        t = torch.as_tensor(thresholds, dtype=z.dtype, device=z.device).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"thresholds must be a tensor, array or sequence of numbers, got {thresholds!r}") from None
    if torch.isnan(t).any():
        raise ValueError(f"thresholds must not contain NaN, got {t.tolist()}")
    if t.numel() and not (t[1:] > t[:-1]).all():
        raise ValueError(f"thresholds must be strictly increasing, got {t.tolist()}")
    if z.device.type == "cpu" and torch.isnan(z).any():
        raise ValueError("z contains NaN, which falls in no bin")
    inf = torch.full((1,), math.inf, dtype=z.dtype, device=z.device)
    edges_lo, edges_hi = torch.cat([-inf, t]), torch.cat([t, inf])
    idx = torch.searchsorted(t, z.contiguous(), right=True)
    return edges_lo[idx], edges_hi[idx]


def row_norms_sq(A: SVDOperator, n: int | None = None) -> torch.Tensor:
    """``diag(A A^T)`` (float64, CPU) of any operator, with no dense ``A``.

    Row-orthogonal operators give theirs directly; a ``DenseOperator`` sums its rows'
    squares; any other operator ``A = U diag(S) V^T`` gives ``sum_j S_j^2 U_ij^2`` from its
    ``U`` applied to blocks of unit vectors (``m`` transforms, done once and cached).
    """
    key = ("qcs_row_norms_sq", n if A.n is None else A.n)
    d = A._cache.get(key)
    if d is not None:
        return d
    if isinstance(A, DenseOperator):
        d = (A.matrix * A.matrix).sum(1)
    else:
        try:
            d = A.row_norms_sq(n)
        except ValueError:
            m = A.measurement_size(n)
            S2 = A.singulars(n) ** 2
            d = torch.zeros(m, dtype=torch.float64)
            for j0 in range(0, S2.numel(), 256):
                j1 = min(j0 + 256, S2.numel())
                E = torch.zeros(j1 - j0, m, dtype=torch.float64)
                E[torch.arange(j1 - j0), torch.arange(j0, j1)] = 1.0
                cols = A.U(E)                                   # row i: column j0 + i of U
                d += (S2[j0:j1, None] * cols * cols).sum(0)
    A._cache[key] = d
    return d


def quantized_likelihood_score(A, y_bins, x_t: torch.Tensor, *, mean_scale, std, sigma_y,
                               approx: str = "exact") -> torch.Tensor:
    """QCS-SGM score ``A^T G`` (module docstring) for quantized measurements.

    ``approx="exact"``: ``A`` must be row-orthogonal (``Denoising``, ``Inpainting``,
    ``SuperResolution``, ``Colorization``, ``WalshHadamardCS``, or ``DenseOperator`` / a
    dense matrix whose rows are orthogonal), where the factorised likelihood is exact for
    the Gaussian approximation of ``x0 | x_t``.  ``approx="diag"``: any operator, with the
    QCS-SGM authors' diagonal approximation ``Cov[A x0 + n | x_t] ~= sigma_y^2 I + (std/s)^2
    diag(A A^T)`` (the same formula with ``||a_m||^2`` from :func:`row_norms_sq`); for
    correlated rows :class:`sdekit.inverse.QCSPlus` (EP) keeps the off-diagonal part.
    ``y_bins = (lower, upper)``, each ``(B, m)``, ``lower < upper``, infinite bounds allowed
    (e.g. from :func:`quantize`); ``x_t``: ``(B, ...)``; ``mean_scale``, ``std``,
    ``sigma_y``: non-negative scalars or ``(B,)`` tensors.  Rows with ``a_m = 0``
    contribute nothing.  Returns a tensor shaped like ``x_t``.
    """
    if isinstance(A, torch.Tensor):
        A = DenseOperator(A)
    if not isinstance(A, SVDOperator):
        raise ValueError(f"A must be an sdekit.inverse operator or a matrix, got {type(A).__name__}")
    if not isinstance(x_t, torch.Tensor) or x_t.dim() < 2:
        raise ValueError("x_t must be a batched tensor (B, ...)")
    if not isinstance(y_bins, (tuple, list)) or len(y_bins) != 2:
        raise ValueError("y_bins must be a pair (lower, upper) of bin-edge tensors")
    if approx not in ("exact", "diag"):
        raise ValueError(f"approx must be 'exact' or 'diag', got {approx!r}")
    lower, upper = y_bins
    B, n = x_t.shape[0], math.prod(x_t.shape[1:])
    if approx == "diag":
        r2 = row_norms_sq(A, n)
    else:
        try:
            r2 = A.row_norms_sq(n)
        except ValueError as err:
            raise ValueError(f"{err}; approx='exact' needs a row-orthogonal A: use approx='diag' (QCS-SGM's "
                             "diagonal approximation of A A^T) or sdekit.inverse.QCSPlus (EP)") from None
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


def quantized_likelihood_score_at(sde, A, y_bins, x_t: torch.Tensor, t, *, sigma_y,
                                  approx: str = "exact") -> torch.Tensor:
    """:func:`quantized_likelihood_score` with ``s = mx(t)``, ``std = marginal_std(t)`` from a ``LinearSDE``.

    ``t``: scalar or ``(B,)``.  The SDE must have no ``y``-drift (ValueError otherwise).
    """
    if getattr(sde, "has_y_drift", False):
        raise ValueError(f"{type(sde).__name__} has a y-drift (my(t) != 0); QCS-SGM's likelihood "
                         "assumes x_t = mx(t) x0 + std(t) z")
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    mx, _ = sde.mean_coeffs(t)
    return quantized_likelihood_score(A, y_bins, x_t, mean_scale=mx, std=sde.marginal_std(t), sigma_y=sigma_y,
                                      approx=approx)
