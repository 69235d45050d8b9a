"""Ancestral samplers: DDPM's (noise of the forward transition) and SMLD's (noise of the posterior)."""
from __future__ import annotations

from .base import ReverseSampler, sqrt_clamped
from .registry import register_sampler

VARIANCES = ("transition", "posterior")


@register_sampler("ddpm")
class AncestralDDPM(ReverseSampler):
    r"""DDPM's ancestral step (Ho et al. 2020, Algorithm 2) for a linear SDE without ``y``-drift,
    written through its exact transition ``x_t = phi x_s + sqrt(var) z``::

        x_s = (x_t + var score(x_t, t)) / phi + sigma z

    The mean is that of the posterior ``q(x_s | x_t, x0)`` at Tweedie's
    ``x0 = (x_t + v_t score) / mx_t``.  ``variance`` picks DDPM's two choices of ``sigma^2``
    (sec. 3.2):

    * ``"transition"`` (default): ``sigma^2 = var``, DDPM's ``beta_t``.  For VP (``phi = sqrt(alpha_t)``,
      ``var = beta_t = 1 - alpha_t``) it is score_sde's ``AncestralSamplingPredictor`` for VP;
      for VE (``phi = 1``, ``var = sigma_t^2 - sigma_s^2``) SMLD's reverse-diffusion rule.
    * ``"posterior"``: the posterior's own variance ``sigma^2 = v_s var / v_t`` (DDPM's
      ``beta~_t``), which for VE is ``sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2``: SMLD's
      ancestral sampling (Song et al. 2021, Appendix F), score_sde's
      ``AncestralSamplingPredictor`` for VE.  :class:`AncestralSampling` (``"ancestral_sampling"``).

    First order.
    """

    strong_order = 1.0
    weak_order = 1.0

    def __init__(self, sde, steps: int = 1000, t_eps: float | None = None, variance: str = "transition"):
        super().__init__(sde, steps, t_eps)
        if sde.has_y_drift:
            raise ValueError(f"{type(self).__name__} needs an SDE without y-drift")
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        self.variance = variance

    def step_coefficients(self, t, s):
        phi, psi, var = self.sde.transition(s, t)
        if self.variance == "posterior":
            noise_var = self.sde.marginal_var(s) * var / self.sde.marginal_var(t)
        else:
            noise_var = var
        return 1.0 / phi, -psi / phi, var / phi, sqrt_clamped(noise_var)


@register_sampler("ancestral_sampling")
class AncestralSampling(AncestralDDPM):
    r"""SMLD's ancestral sampling (Song et al. 2021, Appendix F; score_sde's
    ``AncestralSamplingPredictor`` for VE), for any linear SDE without ``y``-drift:
    :class:`AncestralDDPM` with the posterior's variance, ``variance="posterior"``.  On VE::

        x_s = x_t + (sigma_t^2 - sigma_s^2) score(x_t, t) + sqrt(sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2) z

    score_sde's VP branch of that predictor is ``"ddpm"`` (``variance="transition"``).
    """

    def __init__(self, sde, steps: int = 1000, t_eps: float | None = None):
        super().__init__(sde, steps, t_eps, variance="posterior")
