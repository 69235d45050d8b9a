"""QCS-SGM+: the quantized pseudo-likelihood score for any sensing matrix, by expectation propagation.

Meng & Kabashima, "QCS-SGM+: Improved quantized compressed sensing with score-based
generative models" (AAAI 2024), Algorithm 1.  Measurements ``y = Q(A x0 + n)``,
``n ~ N(0, sigma_y^2 I)``, each reported as its bin ``[l_m, u_m)``.  With DMPS's
approximation ``x0 | x_t ~ N(x_t / s, gamma^2 I)``, ``gamma = std / s`` (for
``x_t = s x0 + std z``), the noiseless-plus-noise vector ``w = A x0 + n`` given ``x_t`` is

    w = b + e,   b = A x_t / s,   e ~ N(0, C),   C = sigma_y^2 I + gamma^2 A A^T = U diag(c) U^T,
    c_i = sigma_y^2 + gamma^2 S_i^2   (S padded with zeros to length m),

and ``p(y | x_t) = int N(e; 0, C) prod_m 1[l_m <= b_m + e_m < u_m] de``.  QCS-SGM assumes ``C``
diagonal; QCS-SGM+ keeps it and approximates the integral by EP with two parts, each sending
the other a Gaussian with a *scalar* precision (Algorithm 1), per sample and iteration:

    factorised part (cavity N(h_F / lam_F, 1 / lam_F) per entry, times the bin's indicator):
        l~ = sqrt(lam_F) (l - b - h_F / lam_F),   u~ likewise,
        m_F = h_F / lam_F + R(l~, u~) / sqrt(lam_F),     chi_F = mean_m V(l~, u~) / lam_F,
        h_G = m_F / chi_F - h_F,                          lam_G = max(1 / chi_F - lam_F, min_precision)
    Gaussian part (prior N(0, C) times N(h_G / lam_G, 1 / lam_G)):
        m_G = U diag(q) U^T h_G,   q_i = 1 / (lam_G + 1 / c_i) = c_i / (lam_G c_i + 1),
        chi_G = mean_i q_i,
        h_F = m_G / chi_G - h_G,                          lam_F = 1 / chi_G - lam_G

evaluated without the cancellation of the last line when ``lam_G`` is large (narrow bins):
with ``r_i = 1 / (lam_G c_i + 1) = q_i / c_i``, ``lam_F = mean(r) / mean(q)`` and
``h_F = U diag((q_i mean(r) - r_i mean(q)) / mean(q)) U^T h_G`` (both equal to the above).

with ``R``, ``V`` the mean and variance of a standard normal truncated to ``(l~, u~)``
(:mod:`sdekit.inverse.quantized`, stable in the far tails: no clamping of ``Phi``).  From the
second iteration on, each new ``m_F, chi_F, h_G, lam_G, h_F, lam_F`` is damped,
``new <- (1 - damping) new + damping old`` (the authors' convention), starting from
``h_F = 0``, ``lam_F = 1``.  A sample stops when its change ``mean_m |h_F - h_F'| +
|lam_F - lam_F'|`` over one iteration falls below ``tol``, or after ``ep_iters`` iterations;
the others go on, so a batch gives what each sample alone gives.  A sample that has not
converged by then (EP with scalar variances can oscillate or diverge on strongly
non-rotation-invariant ``A``, e.g. far-from-orthogonal correlated matrices at large ``std``)
keeps the messages of its smallest change, and :class:`EPInfo` reports it.  The score is the
derivative of the EP factor's log-normaliser in ``b`` at the final messages,

    grad_{x_t} log p(y | x_t) ~= (1/s) A^T g,   g_m = sqrt(lam_F) R(l~_m, u~_m),

which for row-orthogonal ``A`` with equal row norms is QCS-SGM's exact score (``C = c I``:
the Gaussian part returns ``h_F = 0``, ``lam_F = 1/c``) and, for bins shrinking to points,
the DMPS Gaussian score ``(1/s) A^T C^{-1} (y - b)``.  The Gaussian part uses ``A``'s SVD
(``U^T``, ``U`` per iteration, two ``m x m`` transforms for a ``DenseOperator``); ``A A^T``
is never formed or inverted.  The truncated-normal moments are evaluated in float64.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

from .base import SVDOperator
from .operators import DenseOperator
from .quantized import _truncated_normal_moments
from .scores import per_sample

__all__ = ["QCSPlus", "EPInfo"]


class EPInfo(NamedTuple):
    """EP diagnostics per sample: ``iterations`` used (``(B,)`` int64), the ``change`` of the
    last iteration (``(B,)``), and ``converged`` (``change < tol``, ``(B,)`` bool)."""

    iterations: torch.Tensor
    change: torch.Tensor
    converged: torch.Tensor


def _check_number(v, name: str, lo: float, hi: float = math.inf, *, integer: bool = False):
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not (lo <= v <= hi) or (not integer and math.isnan(v)):
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in [{lo}, {hi}], got {v!r}")
    return v


class QCSPlus:
    """The QCS-SGM+ (EP) likelihood score of quantized measurements (module docstring).

    ``A``: any ``SVDOperator`` or a dense ``(m, n)`` matrix (wrapped in ``DenseOperator``);
    ``y_bins = (lower, upper)``: the bins, each ``(B, m)`` (or ``(1, m)``, shared by the
    batch), ``lower < upper``, infinite ends allowed (e.g. from :func:`quantize`);
    ``sigma_y >= 0``: the noise std before quantization.  Algorithm 1's parameters:
    ``ep_iters`` (the iteration cap, >= 1), ``damping`` in ``[0, 1)``, ``tol`` (>= 0) and
    ``min_precision`` (the floor on ``lam_G``, the authors' ``1e-6``).
    """

    def __init__(self, A, y_bins, sigma_y, *, ep_iters: int = 50, damping: float = 0.02, tol: float = 1e-5,
                 min_precision: float = 1e-6):
        if isinstance(A, torch.Tensor):
            A = DenseOperator(A)
        if not isinstance(A, SVDOperator):
            raise ValueError(f"A must be an sdekit.inverse operator or a matrix, got {type(A).__name__}")
        if not isinstance(y_bins, (tuple, list)) or len(y_bins) != 2:
            raise ValueError("y_bins must be a pair (lower, upper) of bin-edge tensors")
        lower, upper = (A._flat(v, None, name) for v, name in zip(y_bins, ("lower", "upper")))
        if lower.shape != upper.shape:
            raise ValueError(f"y_bins: lower {tuple(lower.shape)} and upper {tuple(upper.shape)} differ in shape")
        if lower.device.type == "cpu" and not (lower < upper).all():
            raise ValueError("y_bins: every bin needs lower < upper (and no NaN)")
        self.A, self.lower, self.upper = A, lower, upper
        self.sigma_y = _check_number(sigma_y, "sigma_y", 0.0)
        self.ep_iters = _check_number(ep_iters, "ep_iters", 1, integer=True)
        self.damping = _check_number(damping, "damping", 0.0, 1.0)
        if self.damping == 1.0:
            raise ValueError("damping must be < 1 (damping = 1 never updates)")
        self.tol = _check_number(tol, "tol", 0.0)
        self.min_precision = _check_number(min_precision, "min_precision", 0.0)

    # ------------------------------------------------------------------ EP
    def _bins(self, B: int, m: int, like: torch.Tensor):
        if self.lower.shape[1] != m:
            raise ValueError(f"y_bins have {self.lower.shape[1]} measurements per sample, A has {m}")
        if self.lower.shape[0] not in (1, B):
            raise ValueError(f"y_bins have batch size {self.lower.shape[0]}, x_t has {B}")
        return (v.to(dtype=like.dtype, device=like.device).expand(B, m) for v in (self.lower, self.upper))

    def score(self, x_t: torch.Tensor, *, mean_scale, std, return_info: bool = False):
        """``(1/s) A^T g`` at the EP fixed point (module docstring) for ``x_t`` ``(B, ...)``.

        ``mean_scale`` (= s > 0), ``std``: scalars or ``(B,)``.  Returns a tensor shaped like
        ``x_t``, and with ``return_info=True`` also an :class:`EPInfo`.
        """
        if not isinstance(x_t, torch.Tensor) or x_t.dim() < 2 or not x_t.is_floating_point():
            raise ValueError("x_t must be a batched floating-point tensor (B, ...)")
        A = self.A
        B, n = x_t.shape[0], math.prod(x_t.shape[1:])
        m = A.measurement_size(n)
        lo, up = self._bins(B, m, x_t)
        s = per_sample(mean_scale, B, x_t, "mean_scale", allow_zero=False)
        gamma = per_sample(std, B, x_t, "std") / s
        S = A.singulars(n, like=x_t)
        S2 = torch.cat([S * S, S.new_zeros(m - S.numel())]) if S.numel() < m else S * S
        c = self.sigma_y ** 2 + gamma * gamma * S2                     # (B, m): eigenvalues of C
        b = A.forward(x_t) / s
        lo_b, up_b = lo - b, up - b
        d = self.damping

        def factor_moments(hF, lamF):
            sl = lamF.sqrt()
            mu = hF / lamF
            lt = torch.where(torch.isinf(lo_b), lo_b, sl * (lo_b - mu))
            ut = torch.where(torch.isinf(up_b), up_b, sl * (up_b - mu))
            R, V = _truncated_normal_moments(lt.double(), ut.double(), variance=True)
            return R.to(x_t.dtype), V.to(x_t.dtype), sl, mu

        hF = x_t.new_zeros(B, m)
        lamF = x_t.new_ones(B, 1)
        active = torch.ones(B, 1, dtype=torch.bool, device=x_t.device)
        iters = torch.zeros(B, dtype=torch.int64, device=x_t.device)
        change = torch.full((B,), math.inf, dtype=x_t.dtype, device=x_t.device)
        tiny = torch.finfo(x_t.dtype).tiny
        mF = chiF = hG = lamG = None
        best_hF, best_lamF, best_change = hF, lamF, change.clone()
        for it in range(self.ep_iters):
            R, V, sl, mu = factor_moments(hF, lamF)
            mF_new = mu + R / sl
            chiF_new = (V.mean(1, keepdim=True) / lamF).clamp_min(tiny)
            mF = mF_new if it == 0 else (1 - d) * mF_new + d * mF
            chiF = chiF_new if it == 0 else (1 - d) * chiF_new + d * chiF
            hG_new = mF / chiF - hF
            lamG_new = (1 / chiF - lamF).clamp_min(self.min_precision)
            hG = hG_new if it == 0 else (1 - d) * hG_new + d * hG
            lamG = lamG_new if it == 0 else (1 - d) * lamG_new + d * lamG
            q = c / (lamG * c + 1)
            r = 1 / (lamG * c + 1)
            chiG, r_mean = q.mean(1, keepdim=True), r.mean(1, keepdim=True)
            hF_new = A.U((q * r_mean - r * chiG) / chiG * A.Ut(hG))
            lamF_new = r_mean / chiG
            if it:
                hF_new = (1 - d) * hF_new + d * hF
                lamF_new = (1 - d) * lamF_new + d * lamF
            step = (hF_new - hF).abs().mean(1) + (lamF_new - lamF).abs().reshape(B)
            hF = torch.where(active, hF_new, hF)
            lamF = torch.where(active, lamF_new, lamF)
            a = active.reshape(B)
            change = torch.where(a, step, change)
            iters = iters + a.to(torch.int64)
            better = (a & (step < best_change)).reshape(B, 1)
            best_hF = torch.where(better, hF, best_hF)
            best_lamF = torch.where(better, lamF, best_lamF)
            best_change = torch.where(better.reshape(B), step, best_change)
            active = active & ((step >= self.tol) & torch.isfinite(step)).reshape(B, 1)
            if not bool(active.any()):
                break
        # a sample that did not converge keeps the messages of its smallest change
        worse = ~(change <= best_change).reshape(B, 1)
        hF = torch.where(worse, best_hF, hF)
        lamF = torch.where(worse, best_lamF, lamF)
        R, _, sl, _ = factor_moments(hF, lamF)
        g = sl * R / s
        out = A.adjoint(g, n).reshape(x_t.shape)
        if return_info:
            return out, EPInfo(iters, change, change < self.tol)
        return out

    def score_at(self, sde, x_t: torch.Tensor, t, *, return_info: bool = False):
        """:meth:`score` with ``s = mx(t)``, ``std = marginal_std(t)`` from a ``LinearSDE`` without
        ``y``-drift (ValueError otherwise); ``t``: scalar or ``(B,)``."""
        if getattr(sde, "has_y_drift", False):
            raise ValueError(f"{type(sde).__name__} has a y-drift (my(t) != 0); QCS-SGM+'s likelihood "
                             "assumes x_t = mx(t) x0 + std(t) z")
        t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
        mx, _ = sde.mean_coeffs(t)
        return self.score(x_t, mean_scale=mx, std=sde.marginal_std(t), return_info=return_info)

    def __repr__(self) -> str:
        return (f"QCSPlus({self.A!r}, sigma_y={self.sigma_y}, ep_iters={self.ep_iters}, "
                f"damping={self.damping}, tol={self.tol})")
