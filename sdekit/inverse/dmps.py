"""DMPS: diffusion-model posterior sampling with the closed-form pseudo-likelihood score.

Meng & Kabashima 2022 ("Diffusion model based posterior sampling for noisy linear inverse
problems", arXiv:2211.12343, Algorithm 1) run the reverse diffusion with the posterior score

    grad log p(x_t | y) ~= score_prior(x_t, t) + lam * grad log p~(y | x_t),

where ``p~(y | x_t) = N(y; A x_t / s, sigma_y^2 I + (std/s)^2 A A^T)`` and ``s = mx(t)``,
``std = marginal_std(t)`` (see :mod:`sdekit.inverse.scores`; ``lam`` is the ``scale`` of
the authors' code, default 1).  In the DDPM form the likelihood term enters the step as
``x += lam * grad * (1 - alpha_t) / sqrt(alpha_t)``, as in the authors' code.

This module only assembles that score; the reverse-time integration is the solver's
(:mod:`sdekit.solvers`), one fused kernel per step:

* ``solver="ddpm"`` (default; :class:`sdekit.solvers.AncestralDDPM`, the paper's DDPM form,
  generalised to any linear SDE with no ``y``-drift): with the exact transition
  ``x_t = phi x_s + sqrt(var) z`` over a step,
  ``x_s = (x_t + var * score) / phi + sqrt(var) z`` — for VP this is DDPM's ancestral step
  ``(x_t + beta_t score) / sqrt(alpha_t) + sqrt(beta_t) z`` with ``sigma_t^2 = beta_t``;
  for VE (``phi = 1``, ``var = sigma_t^2 - sigma_s^2``) it is SMLD's reverse-diffusion rule;
* ``solver="reverse_diffusion"``: :class:`sdekit.solvers.ReverseDiffusion` (score_sde);
* ``solver="euler_maruyama"``: :class:`sdekit.solvers.EulerMaruyama` on the reverse SDE;
* ``solver="flow"``: the paper's flow-based version (Algorithm 2), an Euler step of the
  velocity ODE ``dx = v dt`` (:class:`sdekit.solvers.FlowODE`) with the likelihood correction

      x <- x - v(x_t, t) h - lam b_t (a_t' b_t - a_t b_t') / a_t grad log p~(y | x_t) h

  (``h > 0`` the step towards ``t = 0``, ``a_t = mx(t)``, ``b_t = std(t)``).  The factor
  ``b (a' b - a b') / a`` is ``-g^2 / 2`` (``g^2 = 2 b^2 (b'/b - a'/a)``), so this is the Euler
  step of the probability-flow ODE with the posterior score above: it holds for any linear
  SDE without ``y``-drift, rectified flow (``sdekit.RectifiedFlow()``: ``a = 1 - t``, ``b = t``, the
  paper's configuration, stopped short of ``t = 1`` where ``a' / a`` is infinite) and VP alike.  A velocity network is
  passed as ``sample(v, y, prediction="velocity")`` (:mod:`sdekit.parameterisation`);
  ``"flow_heun"`` takes Heun steps instead;
* any other name of :data:`sdekit.solvers.registry.SAMPLERS` (the one table of sampler names).

Parity with the authors' code (``mengxiangming/dmps``, ``guided_diffusion/condition_methods.py``
``PosteriorSampling_meng`` and ``gaussian_diffusion.py``).  The paper's formula above is the
reference; the code differs in four ways, of which sdekit offers the first as an option:

1. ``clip_x0``: the code runs guided-diffusion's sampler with ``clip_denoised=True`` (DPS's
   ``configs/diffusion_config.yaml``, which its ``main.py`` reads), clipping the prior's Tweedie
   estimate ``x0^ = (x_t + b^2 score) / a`` to ``[-1, 1]`` before the DDPM posterior mean.  That
   mean is affine in ``x0^``, so clipping equals replacing the prior score by
   ``(a clip(x0^) - x_t) / b^2``: what ``clip_x0=(lo, hi)`` does (the likelihood term is not
   clipped, as in the code).  Default: off (the paper has no clipping).
2. Where the likelihood gradient is evaluated: the code evaluates it at the sample *after* the
   prior's ancestral step (``x_t=out['sample']``, i.e. ``x_{t-1}``, noise included) but with
   ``t``'s coefficients (``alpha_bar = alphas_cumprod[t]``), and adds
   ``scale grad (1 - alpha_t) / sqrt(alpha_t)``; the paper's Algorithm 1 and sdekit evaluate it
   at ``x_t``, in the same step with the same factor ``var / phi``.  (An operator splitting, not
   a score: ``examples/dmps_restore.py`` transcribes it to measure its effect.)
3. Discrete vs continuous beta: the code uses DDPM's 1000 discrete ``beta_i`` (linear from
   ``1e-4`` to ``0.02``) and ``alpha_bar = prod (1 - beta_i)``; sdekit's ``VPSDE`` uses the exact
   transition of the continuous SDE over each step, ``phi^2 = exp(-int beta)``.  At 1000 steps
   they agree to ``O(beta^2)`` per step (``1 - beta_i`` vs ``exp(-beta_i)``).  The code also
   uses the network's learned variance (``model_var_type: learned_range``) for the ancestral
   noise where sdekit uses ``var = beta``.
4. The shipped ``scale`` (``lam``): 1.75 in every task config of the code (``configs/*.yaml``),
   where the paper's formula has 1.
"""
from __future__ import annotations

import dataclasses
import math
import numbers

import torch

from .._checks import check_finite, check_float_batch, check_shape
from ..solvers.ancestral import AncestralDDPM
from ..parameterisation import as_score_fn, check_prediction
from ..solvers.options import RunOptions
from ..solvers.registry import SAMPLERS, lookup
from .base import SVDOperator
from .scores import LikelihoodScore, per_sample

__all__ = ["DMPS", "AncestralDDPM"]  # AncestralDDPM lives in sdekit.solvers; re-exported where DMPS users find it


class DMPS:
    """Posterior sampler for ``y = A x0 + N(0, sigma_y^2 I)`` with a diffusion prior.

    Args:
        sde: a ``LinearSDE`` without ``y``-drift (VP, VE, sub-VP, or any custom one).
        op: an implicit-SVD operator for ``A`` (``sdekit.inverse``).
        sigma_y: measurement noise std (>= 0).
        lam: weight of the likelihood score (the paper uses 1).
        steps: number of reverse steps from ``T`` to ``t_eps``.
        solver: a name from :data:`sdekit.solvers.registry.SAMPLERS`: ``"ddpm"`` (default),
            ``"reverse_diffusion"``, ``"euler_maruyama"``, ``"flow"`` (Algorithm 2; module
            docstring), ``"flow_heun"``, ``"exponential"``, ...
        t_eps: end time (default ``sde.t_eps``).
        clip_x0: ``None`` (default, the paper), ``True`` for ``(-1, 1)``, or a range ``(lo, hi)``:
            clip the prior's Tweedie estimate of ``x0`` to it (the authors' ``clip_denoised``;
            module docstring, parity 1).
    """

    def __init__(self, sde, op: SVDOperator, sigma_y: float, lam: float = 1.0, steps: int = 1000,
                 solver: str = "ddpm", t_eps: float | None = None, clip_x0: bool | tuple | None = None):
        if getattr(sde, "has_y_drift", False):
            raise ValueError(f"{type(sde).__name__} has a y-drift; DMPS assumes x_t = mx(t) x0 + std(t) z")
        if not isinstance(op, SVDOperator):
            raise ValueError(f"op must be an sdekit.inverse operator, got {type(op).__name__}")
        for name, v in (("sigma_y", sigma_y), ("lam", lam)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        solver_class = lookup(SAMPLERS, solver, "solver")
        self.sde, self.op = sde, op
        self.sigma_y, self.lam = float(sigma_y), float(lam)
        self.clip_x0 = _check_clip(clip_x0)
        self.solver = solver_class(sde, steps, t_eps)

    @property
    def steps(self) -> int:
        return self.solver.steps

    def posterior_score_fn(self, prior_score_fn, y: torch.Tensor, n: int, backend: str = "auto", *,
                           times: torch.Tensor | None = None):
        """``score_fn(x, t) = prior_score_fn(x, t) + lam * grad log p~(y | x_t)``, with ``U^T y`` precomputed.

        ``times``: when given, the only times ``score_fn`` will see (a 1-D tensor in the state's
        dtype, on its device).  ``mx(t)`` and ``std(t)`` are then evaluated once for all of them and
        looked up per call (a ``searchsorted`` and two gathers instead of the many small ops of
        evaluating the SDE's closed forms: launch overhead on a GPU).  The looked-up ``mx`` and
        ``std`` are the evaluated ones up to the last bit: torch evaluates a long tensor of times
        with vectorised ``exp``/``log`` and a short one partly with scalar ones, which may differ by
        1 ulp (seen in float64 near ``t_eps``), so the score agrees with the evaluated one to within
        ``4 eps`` of its largest entry (``eps`` of the dtype), not always bitwise.  A ``t`` outside
        ``times`` would get a neighbour's coefficients: :meth:`sample` passes the solver's own grid.
        """
        sde, lam = self.sde, self.lam
        likelihood = LikelihoodScore(self.op, y, self.sigma_y, n=n, backend=backend)  # U^T y once

        def evaluate(t):
            return sde.mean_coeffs(t, check=False)[0], sde.marginal_std(t, check=False)

        mean_scale_and_std = evaluate
        if times is not None:
            grid = torch.sort(times.reshape(-1)).values
            mx_table, std_table = evaluate(grid)
            last = grid.numel() - 1

            def mean_scale_and_std(t):
                i = torch.searchsorted(grid, t).clamp_(max=last)
                return mx_table[i], std_table[i]

        clip = self.clip_x0

        def score_fn(x, t):
            mx, std = mean_scale_and_std(t)
            prior = prior_score_fn(x, t)
            if not isinstance(prior, torch.Tensor):
                raise TypeError(f"prior_score_fn returned {type(prior).__name__}, not a tensor like x")
            if clip is not None:  # score of the clipped Tweedie estimate: (a clip((x + b^2 s) / a) - x) / b^2
                a, b2 = (c.to(x.dtype).reshape(-1, *([1] * (x.dim() - 1))) for c in (mx, std * std))
                prior = (a * ((x + b2 * prior) / a).clamp_(*clip) - x) / b2
            return torch.add(prior, likelihood(x, mx, std), alpha=lam)  # one pass, not two

        return score_fn

    def sample(self, prior_score_fn, y: torch.Tensor, seed: int | None = None, *, x_T=None, shape=None,
               prediction: str = "score", options: RunOptions | None = None, **run_options):
        """Draw one posterior sample per row of ``y`` (``(B, m)`` or ``(B, *measurement shape)``).

        ``prior_score_fn(x, t)``, with ``t`` of shape ``(B,)``, is the prior's score (a trained
        network, or the exact one in tests).  The sample shape is ``(B, *op.in_shape)``,
        or ``shape`` / ``x_T.shape`` (required for operators built without a size).  A single
        measurement (``y`` of batch 1) with a larger ``shape[0]`` draws that many samples for
        it.  ``seed`` and the other run options (``options=`` and keywords: backend, progress,
        return_trajectory, check_every, cuda_graph, dtype, device, denoise) are the solver's,
        :class:`sdekit.solvers.RunOptions`; ``dtype`` and ``device`` default to ``x_T``'s, else
        ``y``'s.  ``prediction``: what ``prior_score_fn`` outputs, ``"score"`` (default) or a network's
        ``"eps"``, ``"x0"``, ``"velocity"`` (the flow version's ``v``), ``"v"``
        (:func:`sdekit.parameterisation.as_score_fn` turns it into the score).  The likelihood part
        never syncs with the device, so it can be captured in a CUDA graph (``prior_score_fn`` must
        allow it too).
        """
        if not isinstance(y, torch.Tensor) or y.dim() < 2:
            raise ValueError("y must be a batched measurement tensor (B, ...)")
        prior_score_fn = as_score_fn(prior_score_fn, self.sde, check_prediction("prediction", prediction))
        check_float_batch("y", y)
        options = RunOptions.merge(options, (), dict(run_options, seed=seed) if seed is not None else run_options)
        if x_T is not None:
            check_float_batch("x_T", x_T)
            shape = tuple(x_T.shape)
        elif shape is None:
            if self.op.in_shape is None:
                raise ValueError(f"{type(self.op).__name__} was built without a size: pass shape=(B, ...)")
            shape = (y.shape[0], *self.op.in_shape)
        shape = check_shape("shape", shape)
        if y.shape[0] == 1 and shape[0] > 1:
            y = y.expand(shape[0], *y.shape[1:])
        if shape[0] != y.shape[0]:
            raise ValueError(f"y has batch size {y.shape[0]} but the sample shape is {shape}")
        check_finite("y", y)
        ref = x_T if x_T is not None else y
        dtype, device = options.dtype or ref.dtype, options.device or ref.device
        n = math.prod(shape[1:])
        per_sample(self.sigma_y, shape[0], y, "sigma_y")
        times = self.solver.time_grid("cpu").to(dtype).to(device)  # every t the loop passes (Heun's 2nd stage: t_eps)
        score_fn = self.posterior_score_fn(prior_score_fn, y.to(dtype=dtype, device=device), n, options.backend,
                                           times=times)
        return self.solver.sample(score_fn, None, x_T=x_T, shape=shape,
                                  options=dataclasses.replace(options, dtype=dtype, device=device))


def _check_clip(clip_x0):
    """``None``, ``True`` (``(-1, 1)``) or a range ``(lo, hi)`` of finite numbers with ``lo < hi``."""
    if clip_x0 is None or clip_x0 is False:
        return None
    if clip_x0 is True:
        return (-1.0, 1.0)
    if not isinstance(clip_x0, (tuple, list)) or len(clip_x0) != 2 or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in clip_x0) \
            or not clip_x0[0] < clip_x0[1]:
        raise ValueError(f"clip_x0 must be None, True or a range (lo, hi) of finite numbers, lo < hi; got {clip_x0!r}")
    return (float(clip_x0[0]), float(clip_x0[1]))
