"""score_sde's predictor-corrector samplers (Song et al. 2021, Algorithms 2-3), one fused kernel per update.

Predictors: reverse diffusion (also on the probability-flow ODE) and ``none`` (corrector-only
sampling); the other registered samplers (Euler-Maruyama, ancestral, ...) serve as predictors too.
Correctors: Langevin (step size from the score's norm) and annealed Langevin dynamics (``ald``,
step size from the marginal std).
"""
from __future__ import annotations

import dataclasses
import inspect

import torch

from .._checks import check_bool, check_int, check_real
from ..kernels import steps as _steps
from .base import Corrector, ReverseSampler, check_sde, sqrt_clamped
from .options import RunOptions
from .plan import Plan, time_grid
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

    ``probability_flow=True`` discretises the probability-flow ODE the same way (score_sde's
    ``ReverseDiffusionPredictor`` on ``sde.reverse(score_fn, probability_flow=True)``, whose
    ``discretize`` halves the score term and drops the noise)::

        x <- (2 - phi) x - psi y + var score(x, t) / 2

    deterministic and first order, like :class:`~sdekit.solvers.ProbabilityFlow`'s Euler step.
    """

    strong_order = 1.0
    weak_order = 1.0

    def __init__(self, sde, steps: int = 100, t_eps: float | None = None, probability_flow: bool = False):
        super().__init__(sde, steps, t_eps)
        self.probability_flow = check_bool("probability_flow", probability_flow)
        self.noise = not self.probability_flow

    def step_coefficients(self, t, s):
        phi, psi, var = self.sde.transition(s, t)
        if self.probability_flow:
            return 2.0 - phi, -psi, 0.5 * var, torch.zeros_like(var)
        return 2.0 - phi, -psi, var, sqrt_clamped(var)


@register_sampler("none")
class NonePredictor(ReverseSampler):
    r"""No predictor: ``x`` is left as it is (score_sde's and sgmse's ``NonePredictor``), for
    corrector-only sampling with :class:`PredictorCorrector` (``predictor="none"``): annealed
    Langevin dynamics over the noise levels, as NCSN samples (Song & Ermon 2019, Algorithm 1).

    Its grid is score_sde's corrector-only one: the ``steps`` levels
    ``linspace(T, t_eps, steps)``, the last one ``t_eps``, so the corrector's last updates
    target the marginal at ``t_eps``; the update after the last level has zero length.  Each
    update is ``x <- x`` (``A = 1``; the score is not evaluated), so it has no order of its own:
    the corrector does all the work.  It samples nothing on its own (``sample`` refuses).
    Pair it with ``corrector="ald"``: the Langevin corrector's norm-based step shrinks when the
    chain is far from the marginal, and from VE's wide prior it does not catch up
    (``tests/test_solvers_predictors.py``).
    """

    strong_order = 0.0
    weak_order = 0.0
    noise = False
    uses_score = False

    def time_grid(self, device="cpu") -> torch.Tensor:
        """The ``steps`` corrector levels ``T = t_0 > ... > t_{steps-1} = t_eps``, then ``t_eps`` again."""
        levels = time_grid(self.sde.T, self.t_eps, self.steps - 1, device) if self.steps > 1 else \
            torch.full((1,), self.sde.T, dtype=torch.float64, device=device)
        return torch.cat([levels, levels[-1:]])

    def step_coefficients(self, t, s):
        return torch.ones_like(t), torch.zeros_like(t), torch.zeros_like(t), torch.zeros_like(t)

    def sample(self, *args, **kwargs):
        raise ValueError("the 'none' predictor leaves x unchanged and samples nothing on its own: use "
                         "PredictorCorrector(sde, steps, predictor='none', corrector='langevin' or 'ald')")


def langevin_coefficients(eps: torch.Tensor, noise_scale: float = 1.0) -> torch.Tensor:
    """The Langevin update ``x <- x + eps score(x, t) + sqrt(2 eps) z`` as fused-step coefficients:
    ``(A, C, S, N) = (1, 0, eps, sqrt(2 eps) noise_scale)`` stacked on a new first axis (``(4, *eps.shape)``).
    The one form of the update, for the correctors and :class:`~sdekit.solvers.AnnealedLangevin`'s rows."""
    return torch.stack([torch.ones_like(eps), torch.zeros_like(eps), eps, torch.sqrt(2.0 * eps) * noise_scale])


class SnrCorrector(Corrector):
    """What the Langevin-type correctors share: the target ``snr``, ``n_steps`` updates per time,
    and ``alpha``, the factor of the step size: ``"transition"`` (``phi^2`` of the transition over
    the predictor step ending at ``t``: score_sde's ``alphas_i = 1 - beta_i`` for VP, ``1`` for VE)
    or a positive float (sgmse uses ``1``)."""

    def __init__(self, sde, snr: float = 0.16, n_steps: int = 1, alpha: str | float = "transition"):
        check_sde(sde)
        self.snr = check_real("snr", snr, positive=True)
        self.n_steps = check_int("n_steps", n_steps, min=0)
        if alpha != "transition":
            if isinstance(alpha, str):
                raise ValueError(f"alpha must be 'transition' or a positive float, got {alpha!r}")
            alpha = check_real("alpha", alpha, positive=True)
        self.sde, self.alpha = sde, alpha

    def alpha_at(self, t, s) -> torch.Tensor:
        """``alpha`` at each ``t`` (``phi(s -> t)^2``, or the fixed value), float64."""
        if self.alpha == "transition":
            phi, _, _ = self.sde.transition(s, t)
            return phi * phi
        return torch.full_like(t, self.alpha, dtype=torch.float64)

    @staticmethod
    def langevin_update(x, score, eps, *, seed, step, sample_offset, noise_scale, backend, out, flags):
        """``x + eps score + sqrt(2 eps) noise_scale w`` (:func:`langevin_coefficients`): one fused kernel
        (``eps`` per sample or scalar)."""
        coef = langevin_coefficients(eps, noise_scale)
        return _steps.affine_step(x, coef.reshape(4, -1), backend=backend, score=score, seed=seed, step=step,
                                  sample_offset=sample_offset, out=out, flags=flags)


@register_corrector("langevin")
class LangevinCorrector(SnrCorrector):
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

    ``alpha`` as in :class:`SnrCorrector` (default ``"transition"``, score_sde's; sgmse: ``1.0``).
    Costs a per-sample norm reduction (a second read of the score) and one fused update per step.
    A score that is exactly zero gives an infinite step, as in score_sde; the run then stops with
    a :class:`NonFiniteError` naming the step.
    """

    def __init__(self, sde, snr: float = 0.16, n_steps: int = 1, norm: str = "batch_mean",
                 alpha: str | float = "transition"):
        super().__init__(sde, snr, n_steps, alpha)
        if norm not in ("sample", "batch_mean"):
            raise ValueError(f"norm must be 'sample' or 'batch_mean', got {norm!r}")
        self.norm = norm

    def constants(self, t, s):
        """``alpha`` at each ``t`` (see :meth:`SnrCorrector.alpha_at`)."""
        return self.alpha_at(t, s)

    def step(self, x, score, constant, *, seed: int, step: int, sample_offset: int = 0, noise_scale: float = 1.0,
             backend: str = "auto", out=None, flags=None):
        """One Langevin update of ``x`` at fixed ``t`` (a norm reduction, then one fused kernel).

        ``constant`` is ``alpha``, a scalar tensor (see :meth:`constants`); ``(seed, step,
        sample_offset)`` keys the normals, the same ones the norm reduction saw
        (``||z||^2 = noise_scale^2 ||w||^2``).
        """
        key = {"seed": seed, "step": step, "sample_offset": sample_offset}
        sq_norms = _steps.sample_sq_norms(score, backend=backend, **key)
        eps = self.step_size(sq_norms, constant, noise_scale)
        return self.langevin_update(x, score, eps, **key, noise_scale=noise_scale, backend=backend, out=out,
                                    flags=flags)

    def step_size(self, sq_norms: torch.Tensor, alpha, noise_scale: float = 1.0) -> torch.Tensor:
        """Per-sample ``eps`` from the ``(B, 2)`` squared norms ``(||score||^2, ||w||^2)``; the
        ``"batch_mean"`` rule averages over the whole batch, all shards of a sharded run included
        (:mod:`sdekit.solvers.whole_batch`)."""
        B = sq_norms.shape[0]
        if self.norm == "batch_mean":
            sq_norms = whole_batch_rows(sq_norms)
        ss, zz = sq_norms[:, 0], sq_norms[:, 1]
        if noise_scale != 1.0:
            zz = zz * noise_scale**2
        if self.norm == "batch_mean":
            ratio2 = (zz.sqrt().mean() / ss.sqrt().mean()) ** 2
            ratio2 = ratio2.expand(B)
        else:
            ratio2 = zz / ss
        return 2.0 * alpha * self.snr**2 * ratio2


@register_corrector("ald")
class AnnealedLangevinCorrector(SnrCorrector):
    r"""Annealed Langevin dynamics (NCSN, Song & Ermon 2019, Algorithm 1): ``n_steps`` steps at
    fixed ``t`` whose size follows the noise level instead of the score's norm::

        eps = 2 alpha (snr std(t))^2,     x <- x + eps score(x, t) + sqrt(2 eps) z

    ``std(t)`` the marginal std (``sde.marginal_std``).  This is score_sde's and sgmse's ``ald``
    corrector (``AnnealedLangevinDynamics``): sgmse's has no ``alpha`` (pass ``alpha=1.0``; it
    takes sgmse's ``OUVESDE`` only, :meth:`sdekit.OUVE.from_sgmse`), score_sde's multiplies by
    ``alphas_i`` on VP (``alpha="transition"``, the default, as for :class:`LangevinCorrector`).
    With ``alpha = 1`` and ``snr^2 = step_lr / (2 sigma_L^2)`` its ``eps`` at level ``sigma_i`` is
    NCSNv2's ``step_size = step_lr (sigma_i / sigma_L)^2`` (NCSN's Algorithm 1 writes the same update
    with ``alpha_i = 2 eps``); :class:`~sdekit.solvers.AnnealedLangevin` is built on it.  The step size is a per-time constant of the plan: no norm reduction, one
    fused update per step.
    """

    def constants(self, t, s):
        """``eps`` at each ``t``: ``2 alpha (snr std(t))^2``, float64."""
        std = self.sde.marginal_std(t.to(torch.float64), check=False)
        return 2.0 * self.alpha_at(t, s) * (self.snr * std) ** 2

    def step(self, x, score, constant, *, seed: int, step: int, sample_offset: int = 0, noise_scale: float = 1.0,
             backend: str = "auto", out=None, flags=None):
        """One update of ``x`` at fixed ``t``; ``constant`` is ``eps`` (see :meth:`constants`)."""
        return self.langevin_update(x, score, constant, seed=seed, step=step, sample_offset=sample_offset,
                                    noise_scale=noise_scale, backend=backend, out=out, flags=flags)


class PredictorCorrector(ReverseSampler):
    """score_sde's PC sampler: at each time, ``corrector_steps`` corrector updates, then one predictor step.

    ``predictor`` names any registered sampler (:data:`sdekit.solvers.registry.SAMPLERS`:
    ``"reverse_diffusion"``, ``"euler_maruyama"``, ``"ddpm"``, ``"ancestral_sampling"``, ...;
    ``"none"`` for corrector-only sampling); ``corrector`` a registered corrector (``"langevin"``,
    ``"ald"``), a :class:`Corrector`, or ``None``.  ``snr``, ``corrector_steps`` and ``alpha``
    configure the corrector, ``norm`` the Langevin corrector's norms (default ``"batch_mean"``).
    ``probability_flow=True`` runs the predictor on the probability-flow ODE (score_sde's
    ``get_pc_sampler(probability_flow=True)``; ``"reverse_diffusion"`` takes it, and
    ``"probability_flow"`` is Euler-Maruyama's).  Weak order 1 (the predictor's; the
    corrector only moves samples towards the marginal at the current time).  ``denoise``, when
    given, is this sampler's default for the run option of that name (score_sde's
    ``noise_removal``); otherwise :class:`RunOptions`' default applies.
    """

    def __init__(self, sde, steps: int = 1000, predictor: str = "reverse_diffusion",
                 corrector: str | Corrector | None = "langevin", snr: float = 0.16, corrector_steps: int = 1,
                 t_eps: float | None = None, denoise: bool | None = None, norm: str | None = None,
                 alpha: str | float = "transition", probability_flow: bool = False):
        super().__init__(sde, steps, t_eps)
        predictor_class = lookup(SAMPLERS, predictor, "predictor")
        if check_bool("probability_flow", probability_flow):
            if "probability_flow" not in inspect.signature(predictor_class).parameters:
                raise ValueError(f"predictor {predictor!r} has no probability_flow variant (the reverse_diffusion "
                                 "predictor has; predictor='probability_flow' is Euler's on the ODE)")
            self.predictor = predictor_class(sde, self.steps, self.t_eps, probability_flow=True)
        else:
            self.predictor = predictor_class(sde, self.steps, self.t_eps)
        if corrector is None or isinstance(corrector, Corrector):
            self.corrector = corrector
        else:
            corrector_class = lookup(CORRECTORS, corrector, "corrector")
            options = {"snr": snr, "n_steps": corrector_steps, "alpha": alpha}
            if norm is not None:
                if "norm" not in inspect.signature(corrector_class).parameters:
                    raise ValueError(f"norm sets the langevin corrector's step size; corrector {corrector!r} "
                                     "takes no norm")
                options["norm"] = norm
            self.corrector = corrector_class(sde, **options)
        if isinstance(self.predictor, NonePredictor) and (self.corrector is None or self.corrector.n_steps == 0):
            raise ValueError("predictor='none' needs a corrector with corrector_steps >= 1 (corrector-only "
                             "sampling); without one the run would return x_T unchanged")
        self.noise, self.uses_score = self.predictor.noise, self.predictor.uses_score
        self.strong_order, self.weak_order = self.predictor.strong_order, self.predictor.weak_order
        if denoise is not None:
            self.run_defaults = RunOptions(denoise=denoise)

    def step_coefficients(self, t, s):
        return self.predictor.step_coefficients(t, s)

    def time_grid(self, device="cpu") -> torch.Tensor:
        """The predictor's grid (the ``none`` predictor's ends on its last corrector level)."""
        return self.predictor.time_grid(device)

    def plan(self) -> Plan:
        """The predictor's plan with the corrector and its per-step constants added."""
        plan = dataclasses.replace(self.predictor.plan(), name=type(self).__name__)  # keeps a second stage
        if self.corrector is None or self.corrector.n_steps == 0:
            return plan
        t, s = plan.times[:-1], plan.times[1:]
        return dataclasses.replace(plan, corrector=self.corrector, corrector_constants=self.corrector.constants(t, s))
