"""score_sde's predictor-corrector samplers (Song et al. 2021, Algorithms 2-3), one fused kernel per update."""
from __future__ import annotations

import numbers

import torch

from ..kernels import steps as _steps
from .base import ReverseSampler, check_sde, check_steps, check_t_eps, run_reverse, sqrt_clamped
from .euler_maruyama import EulerMaruyama


class ReverseDiffusion(ReverseSampler):
    r"""Reverse-diffusion predictor (Song et al. 2021, eq. 46), first order.

    The forward chain is the SDE's exact transition ``x_t = phi x_s + psi y + sqrt(var) z``
    (``sde.transition(s, t)``), so ``f = (phi - 1) x + psi y`` and ``G^2 = var``, and the
    reverse step from ``t`` to ``s`` is::

        x <- x - f + G^2 score(x, t) + G z = (2 - phi) x - psi y + var score(x, t) + sqrt(var) z

    For VE this is score_sde's SMLD rule (``G^2 = sigma_t^2 - sigma_s^2``) exactly; for VP
    it is the DDPM rule ``(2 - sqrt(1 - beta)) x + beta score`` with ``beta = 1 - exp(-int beta)``.
    """

    strong_order = 1.0
    weak_order = 1.0

    def coefficients(self, t, s):
        phi, psi, var = self.sde.transition(s, t)
        return 2.0 - phi, -psi, var, sqrt_clamped(var)


class LangevinCorrector:
    r"""Langevin corrector (Song et al. 2021, Algorithm 5): ``n_steps`` steps at fixed ``t``::

        eps = 2 alpha (snr ||z|| / ||score||)^2,     x <- x + eps score(x, t) + sqrt(2 eps) z

    with per-sample norms (``norm="sample"``, the default) or, as score_sde's code does,
    the batch means of the per-sample norms (``norm="batch_mean"``).  ``alpha = phi^2`` of
    the transition over one step ending at ``t``: score_sde's ``alphas_i = 1 - beta_i`` for
    VP, 1 for VE.  Costs a per-sample norm reduction (a second read of the score) and one
    fused update per step.  A score that is exactly zero on a whole sample gives an infinite
    step, as in score_sde; the run then stops with a :class:`NonFiniteError` naming the step.
    """

    def __init__(self, sde, snr: float = 0.16, n_steps: int = 1, norm: str = "sample"):
        check_sde(sde)
        if isinstance(snr, bool) or not isinstance(snr, numbers.Real) or not snr > 0:
            raise ValueError(f"snr must be a positive float, got {snr!r}")
        if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 0:
            raise ValueError(f"n_steps must be an int >= 0, got {n_steps!r}")
        if norm not in ("sample", "batch_mean"):
            raise ValueError(f"norm must be 'sample' or 'batch_mean', got {norm!r}")
        self.sde, self.snr, self.n_steps, self.norm = sde, float(snr), int(n_steps), norm

    def alpha(self, t, s):
        phi, _, _ = self.sde.transition(s, t)
        return phi * phi

    def step(self, x, score, alpha, *, seed: int, step: int, backend: str = "auto", out=None, flags=None):
        """One Langevin update of ``x`` at fixed ``t`` (a norm reduction, then one fused kernel).

        ``alpha`` is a scalar tensor (see :meth:`alpha`); ``(seed, step)`` keys the normals, the
        same ones the norm reduction saw.
        """
        eps = self.step_size(_steps.sample_sq_norms(score, backend=backend, seed=seed, step=step), alpha)
        coef = torch.stack([torch.ones_like(eps), torch.zeros_like(eps), eps, torch.sqrt(2.0 * eps)])
        return _steps.affine_step(x, coef, backend=backend, score=score, seed=seed, step=step, out=out, flags=flags)

    def step_size(self, sq_norms: torch.Tensor, alpha) -> torch.Tensor:
        """Per-sample ``eps`` from the ``(B, 2)`` squared norms ``(||score||^2, ||z||^2)``."""
        ss, zz = sq_norms[:, 0], sq_norms[:, 1]
        if self.norm == "batch_mean":
            ratio2 = (zz.sqrt().mean() / ss.sqrt().mean()) ** 2
            ratio2 = ratio2.expand_as(ss)
        else:
            ratio2 = zz / ss
        return 2.0 * alpha * self.snr**2 * ratio2


_PREDICTORS = {"reverse_diffusion": ReverseDiffusion, "euler_maruyama": EulerMaruyama}


class PredictorCorrector:
    """score_sde's PC sampler: at each time, ``corrector_steps`` Langevin steps, then one predictor step.

    ``denoise=True`` (score_sde's ``noise_removal``) drops the noise of the last predictor
    step, returning its mean.  Weak order 1 (the predictor's; the corrector only moves
    samples towards the marginal at the current time).
    """

    def __init__(self, sde, steps: int = 1000, predictor: str = "reverse_diffusion", corrector: str | None = "langevin",
                 snr: float = 0.16, corrector_steps: int = 1, t_eps: float | None = None, denoise: bool = True,
                 norm: str = "sample"):
        check_sde(sde)
        steps = check_steps(steps)
        t_eps = check_t_eps(sde, t_eps)
        if predictor not in _PREDICTORS:
            raise ValueError(f"predictor must be one of {sorted(_PREDICTORS)}, got {predictor!r}")
        if corrector not in ("langevin", None):
            raise ValueError(f"corrector must be 'langevin' or None, got {corrector!r}")
        self.sde = sde
        self.predictor = _PREDICTORS[predictor](sde, steps, t_eps)
        self.corrector = LangevinCorrector(sde, snr, corrector_steps, norm) if corrector else None
        self.denoise = bool(denoise)
        self.weak_order = self.predictor.weak_order

    @property
    def steps(self) -> int:
        return self.predictor.steps

    @property
    def t_eps(self) -> float:
        return self.predictor.t_eps

    def sample(self, score_fn, y=None, x_T=None, shape=None, seed=None, backend="auto", progress=False,
               return_trajectory=False, *, check_every=0, cuda_graph=False, dtype=torch.float32, device=None):
        """Like :meth:`sdekit.solvers.base.ReverseSampler.sample`."""
        corrector = self.corrector if (self.corrector is not None and self.corrector.n_steps) else None
        return run_reverse(self.predictor, corrector, score_fn, y=y, x_T=x_T, shape=shape, seed=seed,
                           backend=backend, progress=progress, return_trajectory=return_trajectory,
                           check_every=check_every, cuda_graph=cuda_graph, dtype=dtype, device=device,
                           denoise=self.denoise)
