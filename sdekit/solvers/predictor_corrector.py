"""score_sde's predictor-corrector samplers (Song et al. 2021, Algorithms 2-3), one fused kernel per update."""
from __future__ import annotations

import torch

from .._checks import check_int, check_real
from ..kernels import steps as _steps
from .base import Corrector, ReverseSampler, check_sde, sqrt_clamped
from .options import RunOptions
from .plan import Plan
from .registry import CORRECTORS, SAMPLERS, lookup, register_corrector, register_sampler
from .whole_batch import whole_batch_rows


@register_sampler("reverse_diffusion")
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

    def step_coefficients(self, t, s):
        phi, psi, var = self.sde.transition(s, t)
        return 2.0 - phi, -psi, var, sqrt_clamped(var)


@register_corrector("langevin")
class LangevinCorrector(Corrector):
    r"""Langevin corrector (Song et al. 2021, Algorithm 5): ``n_steps`` steps at fixed ``t``::

        eps = 2 alpha (snr ||z|| / ||score||)^2,     x <- x + eps score(x, t) + sqrt(2 eps) z

    ``norm`` says which norms set the step size:

    * ``"batch_mean"`` (default; what score_sde's and sgmse's code do): the batch means of the
      per-sample norms, one ``eps`` for the whole batch.  Safe for any sample dimension; it
      assumes the samples of a batch have scores of comparable size (one data set, one noise
      level), which a sampling batch has.
    * ``"sample"`` (Algorithm 5 read per sample): each sample's own norms.  Safe only when each
      sample is high-dimensional (images: ``||z||`` and ``||score||`` then concentrate, and it
      differs from the batch rule by a few percent per step); on low-dimensional samples (a batch
      of scalars or 2-D points) a sample near a mode has ``||score|| ~ 0``, an enormous step,
      and the chain diverges.

    ``alpha="transition"`` (default) is ``phi^2`` of the transition over the predictor step ending
    at ``t``: score_sde's ``alphas_i = 1 - beta_i`` for VP, ``1`` for VE.  A positive float fixes
    it (sgmse uses ``1``).  Costs a per-sample norm reduction (a second read of the score) and
    one fused update per step.  A score that is exactly zero gives an infinite step, as in
    score_sde; the run then stops with a :class:`NonFiniteError` naming the step.
    """

    def __init__(self, sde, snr: float = 0.16, n_steps: int = 1, norm: str = "batch_mean",
                 alpha: str | float = "transition"):
        check_sde(sde)
        self.snr = check_real("snr", snr, positive=True)
        self.n_steps = check_int("n_steps", n_steps, min=0)
        if norm not in ("sample", "batch_mean"):
            raise ValueError(f"norm must be 'sample' or 'batch_mean', got {norm!r}")
        if alpha != "transition":
            if isinstance(alpha, str):
                raise ValueError(f"alpha must be 'transition' or a positive float, got {alpha!r}")
            alpha = check_real("alpha", alpha, positive=True)
        self.sde, self.norm, self.alpha = sde, norm, alpha

    def constants(self, t, s):
        """``alpha`` at each ``t`` (``phi(s -> t)^2``, or the fixed value), float64."""
        if self.alpha == "transition":
            phi, _, _ = self.sde.transition(s, t)
            return phi * phi
        return torch.full_like(t, self.alpha, dtype=torch.float64)

    def step(self, x, score, constant, *, seed: int, step: int, sample_offset: int = 0, backend: str = "auto",
             out=None, flags=None):
        """One Langevin update of ``x`` at fixed ``t`` (a norm reduction, then one fused kernel).

        ``constant`` is ``alpha``, a scalar tensor (see :meth:`constants`); ``(seed, step,
        sample_offset)`` keys the normals, the same ones the norm reduction saw.
        """
        key = {"seed": seed, "step": step, "sample_offset": sample_offset}
        eps = self.step_size(_steps.sample_sq_norms(score, backend=backend, **key), constant)
        coef = torch.stack([torch.ones_like(eps), torch.zeros_like(eps), eps, torch.sqrt(2.0 * eps)])
        return _steps.affine_step(x, coef, backend=backend, score=score, out=out, flags=flags, **key)

    def step_size(self, sq_norms: torch.Tensor, alpha) -> torch.Tensor:
        """Per-sample ``eps`` from the ``(B, 2)`` squared norms ``(||score||^2, ||z||^2)``; the
        ``"batch_mean"`` rule averages over the whole batch, all shards of a sharded run included
        (:mod:`sdekit.solvers.whole_batch`)."""
        ss, zz = sq_norms[:, 0], sq_norms[:, 1]
        if self.norm == "batch_mean":
            every = whole_batch_rows(sq_norms)
            ratio2 = (every[:, 1].sqrt().mean() / every[:, 0].sqrt().mean()) ** 2
            ratio2 = ratio2.expand_as(ss)
        else:
            ratio2 = zz / ss
        return 2.0 * alpha * self.snr**2 * ratio2


class PredictorCorrector(ReverseSampler):
    """score_sde's PC sampler: at each time, ``corrector_steps`` corrector updates, then one predictor step.

    ``predictor`` names any registered sampler (:data:`sdekit.solvers.registry.SAMPLERS`:
    ``"reverse_diffusion"``, ``"euler_maruyama"``, ``"ddpm"``, ...); ``corrector`` a registered
    corrector (``"langevin"``), a :class:`Corrector`, or ``None``.  ``snr``, ``corrector_steps``,
    ``norm`` and ``alpha`` configure the Langevin corrector.  Weak order 1 (the predictor's; the
    corrector only moves samples towards the marginal at the current time).  ``denoise``, when
    given, is this sampler's default for the run option of that name (score_sde's
    ``noise_removal``); otherwise :class:`RunOptions`' default applies.
    """

    def __init__(self, sde, steps: int = 1000, predictor: str = "reverse_diffusion",
                 corrector: str | Corrector | None = "langevin", snr: float = 0.16, corrector_steps: int = 1,
                 t_eps: float | None = None, denoise: bool | None = None, norm: str = "batch_mean",
                 alpha: str | float = "transition"):
        super().__init__(sde, steps, t_eps)
        self.predictor = lookup(SAMPLERS, predictor, "predictor")(sde, self.steps, self.t_eps)
        if corrector is None or isinstance(corrector, Corrector):
            self.corrector = corrector
        else:
            self.corrector = lookup(CORRECTORS, corrector, "corrector")(
                sde, snr=snr, n_steps=corrector_steps, norm=norm, alpha=alpha)
        self.noise = self.predictor.noise
        self.strong_order, self.weak_order = self.predictor.strong_order, self.predictor.weak_order
        if denoise is not None:
            self.run_defaults = RunOptions(denoise=denoise)

    def step_coefficients(self, t, s):
        return self.predictor.step_coefficients(t, s)

    def plan(self) -> Plan:
        """The predictor's plan with the corrector and its per-step constants added."""
        plan = self.predictor.plan()
        if self.corrector is None or self.corrector.n_steps == 0:
            return Plan(plan.times, plan.table, noise=plan.noise, name=type(self).__name__)
        t, s = plan.times[:-1], plan.times[1:]
        return Plan(plan.times, plan.table, noise=plan.noise, corrector=self.corrector,
                    corrector_constants=self.corrector.constants(t, s), name=type(self).__name__)
