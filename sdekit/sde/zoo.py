"""The SDEs diffusion models use, each a :class:`LinearSDE` with a derived closed form.

score_sde (Song et al. 2021), with ``beta(t) = beta_min + t (beta_max - beta_min)``:

* ``VESDE``:    ``dx = sigma_min r^t sqrt(2 log r) dw``, ``r = sigma_max/sigma_min``, ``v0 = sigma_min^2``,
  so ``std(t) = sigma_min r^t``;
* ``VPSDE``:    ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``;
* ``SubVPSDE``: ``dx = -beta(t) x / 2 dt + sqrt(beta(t) (1 - exp(-2 int_0^t beta))) dw``.

DriftRec (Welker, Chapman, Gerkmann 2022), eqs. 3-11, with ``k = log(sigma_max/sigma_min)``:

* ``DriftVE(alpha)``: ``dx = gamma t^alpha (y - x) dt + nu sigma_min (sigma_max/sigma_min)^t dw``.
  (The paper's eq. 3 prints the exponent as ``2t``; its variances, eqs. 8 and 10, only
  follow from ``(sigma_max/sigma_min)^t``.)
* ``OUVE = DriftVE(0)`` with the paper's ``nu = sqrt(2 (gamma + k))``; then
  ``v(1) = sigma_max^2 - sigma_min^2 exp(-2 gamma)``.
* ``TSDVE = DriftVE(1)`` and every other ``alpha``: ``nu`` such that
  ``nu^2 v_unnormalised(T) = sigma_max^2`` (eq. 11 says "``= sigma_max``": a typo), so
  ``marginal_std(T) == sigma_max``.
"""
from __future__ import annotations

import math

import sympy as sp

from .linear import LinearSDE, _validate_number, marginal_schedule_sde

_DRIFTREC_DIFFUSION = "nu*sigma_min*(sigma_max/sigma_min)**t"
_BETA = "(beta_min + t*(beta_max - beta_min))"


def _check_sigmas(sigma_min: float, sigma_max: float) -> tuple[float, float]:
    sigma_min = _validate_number("sigma_min", sigma_min)
    sigma_max = _validate_number("sigma_max", sigma_max)
    if not sigma_min < sigma_max:
        raise ValueError(f"need sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
    return sigma_min, sigma_max


class VESDE(LinearSDE):
    """Variance-exploding SDE (score_sde): ``std(t) = sigma_min (sigma_max/sigma_min)^t``."""

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        sigma_min, sigma_max = _check_sigmas(sigma_min, sigma_max)
        super().__init__(
            "0", "sigma_min*(sigma_max/sigma_min)**t*sqrt(2*log(sigma_max/sigma_min))",
            {"sigma_min": sigma_min, "sigma_max": sigma_max}, v0=sigma_min**2, t_eps=1e-5,
        )
        self.sigma_min, self.sigma_max = sigma_min, sigma_max


class VPSDE(LinearSDE):
    """Variance-preserving SDE (score_sde, DDPM's continuous limit)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        super().__init__(f"-{_BETA}*x/2", f"sqrt{_BETA}",
                         {"beta_min": beta_min, "beta_max": beta_max}, t_eps=1e-3)
        self.beta_min, self.beta_max = self.params["beta_min"], self.params["beta_max"]


class SubVPSDE(LinearSDE):
    """sub-VP SDE (score_sde): variance ``(1 - exp(-int_0^t beta))^2``, below VP's."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        super().__init__(
            f"-{_BETA}*x/2",
            f"sqrt({_BETA}*(1 - exp(-2*beta_min*t - (beta_max - beta_min)*t**2)))",
            {"beta_min": beta_min, "beta_max": beta_max}, t_eps=1e-3,
        )
        self.beta_min, self.beta_max = self.params["beta_min"], self.params["beta_max"]


class DriftVE(LinearSDE):
    """DriftRec family ``dx = gamma t^alpha (y - x) dt + nu sigma_min (sigma_max/sigma_min)^t dw``.

    Mean ``mx = exp(-gamma t^(alpha+1) / (alpha+1))``, ``my = 1 - mx``.  ``nu`` follows the
    paper for ``alpha = 0`` (``sqrt(2 (gamma + k))``) and otherwise makes
    ``marginal_std(1) == sigma_max``.  For ``alpha >= 2`` sympy finds no closed-form
    variance and the numerical path is used (see ``paths``).
    """

    def __init__(self, alpha: float, gamma: float, sigma_min: float = 0.01, sigma_max: float = 0.3):
        alpha = _validate_number("alpha", alpha, positive=False)
        gamma = _validate_number("gamma", gamma)
        sigma_min, sigma_max = _check_sigmas(sigma_min, sigma_max)
        drift = f"gamma*t**({sp.nsimplify(alpha)})*(y - x)"
        params = {"gamma": gamma, "nu": 1.0, "sigma_min": sigma_min, "sigma_max": sigma_max}
        if alpha == 0:
            params["nu"] = math.sqrt(2.0 * (gamma + math.log(sigma_max / sigma_min)))
        else:
            unit_var = float(LinearSDE(drift, _DRIFTREC_DIFFUSION, params).marginal_var(1.0))
            if not (math.isfinite(unit_var) and unit_var > 0):
                raise ValueError(f"DriftVE({alpha}, gamma={gamma}): the unnormalised variance v(1) = {unit_var} "
                                 "cannot be normalised to sigma_max in float64; gamma or the sigmas are out of range")
            params["nu"] = sigma_max / math.sqrt(unit_var)
        super().__init__(drift, _DRIFTREC_DIFFUSION, params, t_eps=0.01)
        self.alpha, self.gamma, self.nu = alpha, gamma, params["nu"]
        self.sigma_min, self.sigma_max = sigma_min, sigma_max


class OUVE(DriftVE):
    """Ornstein-Uhlenbeck variance-exploding SDE (DriftRec eq. 7): ``DriftVE(alpha=0)``,
    ``v(t) = sigma_min^2 ((sigma_max/sigma_min)^(2t) - exp(-2 gamma t))``."""

    def __init__(self, gamma: float = 1.0, sigma_min: float = 0.01, sigma_max: float = 0.3):
        super().__init__(0, gamma, sigma_min, sigma_max)

    @classmethod
    def from_sgmse(cls, theta: float = 1.5, sigma_min: float = 0.05, sigma_max: float = 0.5) -> "OUVE":
        """sgmse's ``OUVESDE(theta, sigma_min, sigma_max)`` (defaults: sgmse's) as an ``OUVE``.

        sgmse: ``dx = theta (y - x) dt + sigma_min r^t sqrt(2 k) dw`` (``r = sigma_max/sigma_min``,
        ``k = log r``), so ``v(t) = sigma_min^2 k / (theta + k) (r^(2t) - exp(-2 theta t))``.  DriftRec's
        ``nu = sqrt(2 (gamma + k))`` replaces ``sqrt(2 k)``; with ``gamma = theta`` and both sigmas scaled
        by ``sqrt(k / (theta + k))`` (``r`` and ``k`` unchanged) the two SDEs are the same::

            OUVE(theta, sigma_min s, sigma_max s),   s = sqrt(k / (theta + k)).

        The returned object's ``sigma_min``/``sigma_max`` are the scaled ones; ``marginal_std(1)`` is
        sgmse's ``_std(1) = sigma_max s sqrt(1 - exp(-2 theta) / r^2)``.  sgmse samples down to
        ``t_eps = 0.03`` (its ``ScoreModel`` default); pass it to the samplers.
        """
        theta = _validate_number("theta", theta)
        sigma_min, sigma_max = _check_sigmas(sigma_min, sigma_max)
        k = math.log(sigma_max / sigma_min)
        s = math.sqrt(k / (theta + k))
        return cls(theta, sigma_min * s, sigma_max * s)


class TSDVE(DriftVE):
    """Time-scaled-drift variance-exploding SDE (DriftRec eq. 9): ``DriftVE(alpha=1)``, with
    ``v(t) = nu^2 sigma_min^2 / sqrt(gamma) exp(-gamma t^2) (exp(gamma t^2 + 2 t k) D((gamma t + k)/sqrt(gamma))
    - D(k/sqrt(gamma)))`` (``D`` = Dawson), evaluated in the overflow-free merged form."""

    def __init__(self, gamma: float = 2.0, sigma_min: float = 0.01, sigma_max: float = 0.3):
        super().__init__(1, gamma, sigma_min, sigma_max)


class RectifiedFlow(LinearSDE):
    """Rectified flow / OT flow matching: ``x_t = (1 - t) x0 + t z``, the SDE of
    :meth:`LinearSDE.from_marginals` with ``f = -x / (1 - t)``, ``g^2 = 2 t / (1 - t)``; it stops at
    ``T < 1`` (default ``0.999``) short of ``t = 1``, where ``f`` is singular, as flow samplers do."""

    def __init__(self, T: float = 0.999):
        T = _validate_number("T", T)
        if not T < 1:
            raise ValueError(f"RectifiedFlow needs T < 1 (its drift -x/(1 - t) is singular at 1), got {T}")
        super().__init__(**marginal_schedule_sde("1 - t", "t", None, T, None))


class CosineVP(LinearSDE):
    """The improved-DDPM cosine schedule (Nichol & Dhariwal 2021, eq. 17) in continuous time:
    ``x_t = sqrt(abar) x0 + sqrt(1 - abar) z``, ``abar(t) = cos^2(pi/2 (t + s)/(1 + s)) / cos^2(pi/2 s/(1 + s))``,
    from :meth:`LinearSDE.from_marginals` (``g^2 = -abar'/abar``); ``T < 1`` (default ``0.999``), where
    ``abar`` reaches 0 and the drift is singular."""

    def __init__(self, s: float = 0.008, T: float = 0.999):
        s, T = _validate_number("s", s), _validate_number("T", T)
        if not T < 1:
            raise ValueError(f"CosineVP needs T < 1 (abar(1) = 0 makes its drift singular), got {T}")
        mean = "cos(pi/2*(t + s)/(1 + s))/cos(pi/2*s/(1 + s))"
        std = f"sqrt(1 - ({mean})**2)"
        super().__init__(**marginal_schedule_sde(mean, std, {"s": s}, T, None))
        self.s = s


class EDM(LinearSDE):
    """Karras et al. (2022)'s VE form (EDM): ``x_t = x0 + t z``, ``f = 0``, ``g = sqrt(2 t)``, on
    ``[0, sigma_max]`` with sampling stopping at ``t_eps = sigma_min``."""

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0):
        sigma_min, sigma_max = _check_sigmas(sigma_min, sigma_max)
        super().__init__(**marginal_schedule_sde("1", "t", None, sigma_max, sigma_min))
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
