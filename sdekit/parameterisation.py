"""What a network outputs: noise, data, score or velocity, and the affine maps between them.

For a :class:`~sdekit.LinearSDE` the marginal given ``x0`` (and the conditioning ``y``) is

    x_t = a_t x0 + m_t y + b_t z,        z ~ N(0, I),

``a_t = mx(t)``, ``m_t = my(t)`` (0 without ``y``-drift), ``b_t = marginal_std(t)``.  Their
time derivatives follow from the moment ODEs (DESIGN.md), with ``f``, ``c``, ``g`` the SDE's
``coefficients(t)``:

    a' = f a,     m' = f m + c,     (b^2)' = 2 f b^2 + g^2,  so  b' = f b + g^2 / (2 b).

A network trained on these marginals outputs one of (:data:`PREDICTIONS`):

* ``"score"``:    ``grad log p_t(x_t)``, whose regression target is ``-z / b``;
* ``"eps"``:      the noise ``z`` (DDPM, Ho et al. 2020, eq. 11);
* ``"x0"``:       the data ``x0``;
* ``"velocity"``: ``dx_t / dt = a' x0 + m' y + b' z`` (flow matching and rectified flow,
  Lipman et al. 2023, Liu et al. 2023; DMPS's Algorithm 2);
* ``"v"``:        DDPM-sense v-prediction ``a z - b x0`` (Salimans & Ho 2022, sec. 4, written
  ``alpha eps - sigma x0``; for VP ``a^2 + b^2 = 1``).

Every one is ``p x0 + q z + r y`` with per-time ``(p, q, r)``:

    score (0, -1/b, 0),  eps (0, 1, 0),  x0 (1, 0, 0),  velocity (a', b', m'),  v (-b, a, 0).

Given ``x_t`` and one of them, ``u = x_t - m y = a x0 + b z`` and ``w = out - r y = p x0 + q z``
fix ``x0`` and ``z`` (a 2 x 2 solve, determinant ``a q - b p``), hence every other output:

    out2 = alpha x_t + beta out + gamma y,
    alpha = (p2 q - q2 p) / det,   beta = (a q2 - b p2) / det,   gamma = r2 - alpha m - beta r.

With the *expected* outputs of a perfect network (``E[x0 | x_t]``, ``E[z | x_t]``) these maps are
Tweedie's formula ``E[x0 | x_t] = (x_t - m y + b^2 score) / a``, and the expected velocity is the
probability-flow drift ``f x + c y - g^2 score / 2`` (Song et al. 2021, eq. 13).  A change of an
output by ``d`` changes the implied score by ``d / kappa`` (:func:`score_sensitivity`),

    kappa = p b^2 / a - q b:   score 1, eps -b, x0 b^2 / a, velocity -g^2 / 2, v -b (a^2 + b^2) / a,

which converts the weightings of the training losses (:func:`sdekit.losses.denoising_score_matching`).
Coefficients are computed in float64 and rounded once to the caller's dtype.
"""
from __future__ import annotations

from typing import Callable

import torch

from .sde.batch import per_sample

__all__ = ["PREDICTIONS", "MarginalCoefficients", "marginal_coefficients", "convert", "score_sensitivity",
           "as_score_fn", "check_prediction"]

PREDICTIONS = ("score", "eps", "x0", "velocity", "v")


def check_prediction(name: str, prediction) -> str:
    """``prediction`` must be one of :data:`PREDICTIONS` (the error names the argument ``name``)."""
    if not isinstance(prediction, str) or prediction not in PREDICTIONS:
        raise ValueError(f"{name} must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def _check_sde(sde) -> None:
    if not all(hasattr(sde, k) for k in ("T", "mean_coeffs", "marginal_var", "coefficients", "has_y_drift")):
        raise TypeError(f"sde must be a LinearSDE, got {type(sde).__name__}")


class MarginalCoefficients:
    """``a, m, b`` of ``x_t = a x0 + m y + b z`` and their time derivatives, float64, shaped like ``t``."""

    def __init__(self, sde, t, *, check: bool = True):
        _check_sde(sde)
        t64 = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t.to(torch.float64)
        self.a, self.m = sde.mean_coeffs(t64, check=check)
        self.b = sde.marginal_var(t64, check=check).sqrt()
        f, c, g = sde.coefficients(t64, check=check)
        self.g2 = g * g
        self.da, self.dm = f * self.a, f * self.m + c
        self.db = f * self.b + self.g2 / (2.0 * self.b)
        self.has_y = bool(sde.has_y_drift)

    def pqr(self, prediction: str):
        """``(p, q, r)`` with ``output = p x0 + q z + r y`` (module docstring)."""
        zero, one = torch.zeros_like(self.a), torch.ones_like(self.a)
        return {"score": (zero, -1.0 / self.b, zero), "eps": (zero, one, zero), "x0": (one, zero, zero),
                "velocity": (self.da, self.db, self.dm), "v": (-self.b, self.a, zero)}[prediction]

    def conversion(self, source: str, target: str):
        """``(alpha, beta, gamma)`` with ``target = alpha x_t + beta source + gamma y``."""
        p, q, r = self.pqr(source)
        p2, q2, r2 = self.pqr(target)
        det = self.a * q - self.b * p
        alpha = (p2 * q - q2 * p) / det
        beta = (self.a * q2 - self.b * p2) / det
        return alpha, beta, r2 - alpha * self.m - beta * r

    def score_sensitivity(self, prediction: str) -> torch.Tensor:
        """``kappa = d output / d score`` at fixed ``x_t`` (module docstring)."""
        p, q, _ = self.pqr(prediction)
        return p * self.b * self.b / self.a - q * self.b


def marginal_coefficients(sde, t, *, check: bool = True) -> MarginalCoefficients:
    """``a_t, m_t, b_t`` and ``a', m', b'`` of ``sde`` at ``t`` (a number or a tensor), float64."""
    return MarginalCoefficients(sde, t, check=check)


def score_sensitivity(sde, t, prediction: str) -> torch.Tensor:
    """``kappa(t)``: an error ``d`` in the output ``prediction`` is an error ``d / kappa`` in the score."""
    return MarginalCoefficients(sde, t).score_sensitivity(check_prediction("prediction", prediction))


def _apply(coefs: MarginalCoefficients, x, out, y, source: str, target: str) -> torch.Tensor:
    alpha, beta, gamma = (per_sample(c, x) for c in coefs.conversion(source, target))
    res = alpha * x + beta * out
    if coefs.has_y:
        res = res + gamma * y
    return res


def convert(sde, x: torch.Tensor, t, out: torch.Tensor, source: str, target: str, y=None) -> torch.Tensor:
    """The output ``target`` that is equivalent to ``out`` (an output ``source``) at ``(x_t, t)``.

    ``source``, ``target``: names from :data:`PREDICTIONS`; ``x``, ``out`` (and ``y`` for SDEs with
    ``y``-drift) tensors of one shape ``(B, ...)``; ``t`` a number or ``(B,)``, in ``(0, T]`` where
    ``a_t, b_t > 0`` (at ``b_t = 0`` noise and score are undefined, at ``a_t = 0`` the data).
    Implements ``alpha x_t + beta out + gamma y`` of the module docstring.
    """
    check_prediction("source", source)
    check_prediction("target", target)
    for name, v in (("x", x), ("out", out)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {getattr(v, 'dtype', type(v).__name__)}")
    if out.shape != x.shape:
        raise ValueError(f"out must have x's shape {tuple(x.shape)}, got {tuple(out.shape)}")
    coefs = MarginalCoefficients(sde, t)
    if coefs.has_y and (not isinstance(y, torch.Tensor) or y.shape != x.shape):
        raise ValueError("this SDE's drift depends on y: pass y, a tensor of x's shape")
    return _apply(coefs, x, out, y, source, target)


def as_score_fn(model: Callable, sde, prediction: str, y: torch.Tensor | None = None) -> Callable:
    """``score_fn(x, t)`` for sdekit's samplers from ``model(x, t)`` that outputs ``prediction``.

    ``score_fn(x, t) = alpha x + beta model(x, t) + gamma y`` (module docstring, target
    ``"score"``): e.g. ``-model / b_t`` for ``"eps"``, ``(a_t model - x) / b_t^2`` for ``"x0"``,
    ``(f x + c y - model) / (g^2 / 2)`` for ``"velocity"``.  ``y`` is the conditioning tensor of an
    SDE with ``y``-drift (the samplers call ``score_fn(x, t)`` without it).  The times are not
    range-checked per call (the samplers check their grid once).
    """
    if not callable(model):
        raise TypeError(f"model must be callable as model(x, t), got {type(model).__name__}")
    check_prediction("prediction", prediction)
    _check_sde(sde)
    if sde.has_y_drift and not isinstance(y, torch.Tensor):
        raise ValueError("this SDE's drift depends on y: pass y (the conditioning tensor) to as_score_fn")
    if prediction == "score":
        return model

    def score_fn(x, t):
        return _apply(MarginalCoefficients(sde, t, check=False), x, model(x, t), y, prediction, "score")

    return score_fn
