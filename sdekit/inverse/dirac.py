"""Dirac: stochastic degradation processes run backwards, with incremental reconstruction.

Fabian, Tinaz, Soltanolkotabi 2023 ("DiracDiffusion: Denoising and Incremental Reconstruction
with Assured Data-Consistency"; code ``z-fabian/dirac-diffusion``).  The stochastic
degradation process (SDP, sec. 3.1) is

    y_t = A_t(x0) + sigma_t z,   t in [0, 1],   A_0 = I,   sigma_t increasing,

with ``A_t`` a :class:`~sdekit.inverse.DegradationFamily` and, by default, the paper's
geometric ``sigma_t = sigma_min (sigma_max / sigma_min)^t``.  Its conditional score is
``grad_y log p(y_t | x0) = -(y_t - A_t x0) / sigma_t^2``.

The reverse update from ``t`` to ``t' = t - dt`` (sec. 3.3-3.5, Algorithm 1), with a network
``x0_hat = Phi(y_t, t)`` predicting the clean image, is

    y_t' = y_t + R + (sigma_t^2 - sigma_t'^2) / sigma_t^2 (A_t x0_hat - y_t) + sqrt(sigma_t^2 - sigma_t'^2) z,

the incremental reconstruction ``R`` being one of the code's rules (``update``):

    look_ahead        R = A_t' x0_hat - A_t x0_hat
    small_look_ahead  R = (A_{t - del_t} x0_hat - A_t x0_hat) dt / del_t
    look_back         R = A_t x0_hat - A_{t + dt} x0_hat                   (look_ahead while t + dt >= 1)
    small_look_back   R = (A_t x0_hat - A_{t + del_t} x0_hat) dt / del_t   (look_ahead while t + del_t >= 1)

(the look-back rules fall back to look-ahead exactly where the authors' code does: its test
``t + dt >= 1`` holds at the first two steps in exact arithmetic, ``t = 1`` and ``t = 1 - dt``).
    identity          R = 0
    look_back_exact   R = -dt d/dt A_t x0_hat        (the derivative by autograd: DegradationFamily.time_derivative)

Optional data-consistency guidance (sec. 3.7) adds ``-(sigma_t^2 - sigma_t'^2) g`` to the
update, ``g = scale grad_{y_t} ||y_1 - A_1 Phi(y_t, t)||^2`` per sample, ``scale = step /
||y_1 - A_1 Phi||`` (``relative=True``) or ``step / (2 sigma_1^2)``: a step *down* the
measurement error.  (The authors' ``reverse_diffusion.py`` adds ``+(sigma_t^2 - sigma_t'^2) g``,
a step up the error; sdekit follows the paper's stated intent.)  When the noiseless measurement
``A_1 x0`` is known (an oracle for experiments: the code's ``noiseless_meas_available``),
``sample(..., y1_noiseless=A_1 x0)`` puts it in place of ``y_1`` in ``g``.

Each step is one call of sdekit's fused :func:`~sdekit.kernels.steps.affine_step` with
``A = sigma_t'^2 / sigma_t^2``, ``S = 1``, ``N = sqrt(sigma_t^2 - sigma_t'^2)`` and "score"
``R + (1 - A) A_t x0_hat - (sigma_t^2 - sigma_t'^2) g``; step ``n`` draws the counter-based
normals of RNG word ``n`` (same numbers on every backend for a seed).

Early stopping (sec. 3.6): the run stops after the first step whose end time ``t'`` is
below ``stop_t`` and returns that step's ``x0_hat`` (distortion-optimised at ``stop_t`` near
1, perception-optimised at ``stop_t = 0``); the last step of a full run likewise returns
``x0_hat`` (the code's ``x0_pred_in_last_step=True``) unless ``x0_hat_last_step=False``.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from tqdm.auto import tqdm

from .._checks import check_bool, check_int, check_real, check_real_in, check_seed
from ..kernels.rng import check_sample_offset, philox_normal_like
from ..kernels.steps import affine_step
from ..solvers import NonFiniteError
from .dirac_families import DegradationFamily, check_time

__all__ = ["StochasticDegradation", "Dirac", "DataConsistencyGuidance", "DiracTrajectory", "UPDATE_RULES"]

UPDATE_RULES = ("look_ahead", "small_look_ahead", "look_back", "small_look_back", "identity", "look_back_exact")
_ROUND = 1e-12  # grid times are k / steps: comparisons allow this much round-off


class StochasticDegradation:
    """The SDP ``y_t = A_t(x0) + sigma_t z`` of a degradation family (module docstring).

    Args:
        family: a :class:`~sdekit.inverse.DegradationFamily` (``A_0 = I`` is checked there).
        sigma_min, sigma_max: the geometric schedule ``sigma_t = sigma_min (sigma_max / sigma_min)^t``.
        sigma: instead, any callable ``t -> sigma_t > 0``, strictly increasing on ``[0, 1]``
            (checked on 1001 equispaced times).
    """

    def __init__(self, family: DegradationFamily, sigma_min: float | None = None, sigma_max: float | None = None,
                 *, sigma: Callable[[float], float] | None = None) -> None:
        if not isinstance(family, DegradationFamily):
            raise TypeError(f"family must be a DegradationFamily, got {type(family).__name__}")
        self.family = family
        if sigma is None:
            if sigma_min is None or sigma_max is None:
                raise ValueError("give sigma_min and sigma_max, or a schedule sigma(t)")
            lo = check_real("sigma_min", sigma_min, positive=True)
            hi = check_real("sigma_max", sigma_max, positive=True)
            if not lo < hi:
                raise ValueError(f"sigma_max must exceed sigma_min (sigma is increasing), got {lo} and {hi}")
            self._sigma = lambda t: lo * (hi / lo) ** t
        else:
            if sigma_min is not None or sigma_max is not None:
                raise ValueError("give either sigma_min and sigma_max or sigma, not both")
            if not callable(sigma):
                raise TypeError(f"sigma must be callable t -> sigma_t, got {type(sigma).__name__}")
            self._sigma = sigma
        grid = [self.sigma(k / 1000) for k in range(1001)]
        if any(b <= a for a, b in zip(grid, grid[1:])):
            raise ValueError("sigma must be strictly increasing on [0, 1]")

    def sigma(self, t) -> float:
        """``sigma_t`` (a positive float)."""
        t = check_time(t)
        s = self._sigma(t)
        if isinstance(s, torch.Tensor) and s.numel() == 1:
            s = s.item()
        return check_real(f"sigma({t})", s, positive=True)

    def degrade(self, x0: torch.Tensor, t) -> torch.Tensor:
        """``A_t(x0)`` shaped like ``x0`` (``t`` a number or a ``(B,)`` tensor)."""
        return self.family.apply(x0, t)

    def sigma_of(self, t: torch.Tensor) -> torch.Tensor:
        """``sigma_t`` per sample for a ``(B,)`` tensor of times, in ``t``'s dtype and device."""
        return torch.tensor([self.sigma(v) for v in t.reshape(-1).tolist()], dtype=t.dtype, device=t.device)

    def sample(self, x0: torch.Tensor, t, seed: int | None = None, *, noise: torch.Tensor | None = None,
               sample_offset: int = 0):
        """``y_t = A_t(x0) + sigma_t z``, ``z`` sdekit's counter-based normals of ``seed`` (or ``noise``),
        row ``b`` those of the global sample ``sample_offset + b``."""
        if not isinstance(x0, torch.Tensor) or x0.dtype not in (torch.float32, torch.float64) or x0.dim() < 2:
            raise TypeError("x0 must be a batched float32 or float64 tensor")
        if noise is None:
            if seed is None:
                raise TypeError("seed must be an int (or pass noise), got None")
            noise = philox_normal_like(x0, check_seed(seed), 0, sample_offset)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            sig = self.sigma_of(t.to(x0.dtype)).to(x0.device).reshape(-1, *([1] * (x0.dim() - 1)))
        else:
            sig = self.sigma(t)
        return self.degrade(x0, t) + sig * noise

    def conditional_score(self, y: torch.Tensor, x0: torch.Tensor, t) -> torch.Tensor:
        """``grad_y log p(y_t | x0) = -(y - A_t x0) / sigma_t^2``."""
        return -(y - self.degrade(x0, t)) / self.sigma(t) ** 2

    def __repr__(self) -> str:
        return f"StochasticDegradation({self.family!r}, sigma_0={self.sigma(0):.4g}, sigma_1={self.sigma(1):.4g})"


class DataConsistencyGuidance:
    """Dirac's guidance (sec. 3.7): ``g = scale grad_{y_t} ||y_1 - A_1 Phi(y_t, t)||^2`` per sample.

    ``scale = step / ||y_1 - A_1 Phi||`` when ``relative`` (the code's ``scale_relative``), else
    ``step / (2 sigma_1^2)``.  The update adds ``-(sigma_t^2 - sigma_t'^2) g``.
    """

    def __init__(self, step: float, relative: bool = False) -> None:
        self.step = check_real("step", step, nonnegative=True)
        self.relative = check_bool("relative", relative)

    def __repr__(self) -> str:
        return f"DataConsistencyGuidance(step={self.step}, relative={self.relative})"


class DiracTrajectory(NamedTuple):
    """Per evaluated step ``n``: its time ``t_n``, the state ``y_{t_n}`` and the prediction ``x0_hat``."""

    times: torch.Tensor
    y: torch.Tensor
    x0_hat: torch.Tensor


class Dirac:
    """Dirac's reverse SDP sampler (module docstring; the paper's Algorithm 1).

    Args:
        process: a :class:`StochasticDegradation`.
        steps: number of equal steps from ``t = 1`` to ``t = 0`` (``dt = 1 / steps``).
        update: the incremental-reconstruction rule, one of :data:`UPDATE_RULES`.
        stop_t: early-stopping time in ``[0, 1]``.
        guidance: a :class:`DataConsistencyGuidance` or ``None``.
        del_t: the look-ahead / look-back of the ``small_*`` rules, in ``(0, 1]``.
        x0_hat_last_step: return ``x0_hat`` at the last step (default) instead of the updated ``y``.
    """

    def __init__(self, process: StochasticDegradation, steps: int, update: str = "look_ahead", stop_t: float = 0.0,
                 guidance: DataConsistencyGuidance | None = None, *, del_t: float | None = None,
                 x0_hat_last_step: bool = True) -> None:
        if not isinstance(process, StochasticDegradation):
            raise TypeError(f"process must be a StochasticDegradation, got {type(process).__name__}")
        steps = check_int("steps", steps, min=1)
        if update not in UPDATE_RULES:
            raise ValueError(f"update must be one of {UPDATE_RULES}, got {update!r}")
        if update.startswith("small_"):
            if del_t is None:
                raise ValueError(f"update={update!r} needs del_t in (0, 1]")
            del_t = check_real_in("del_t", del_t, 0.0, 1.0, closed="right")
        elif del_t is not None:
            raise ValueError(f"del_t is used only by the small_* rules, not by {update!r}")
        stop_t = check_time(stop_t, "stop_t")
        if guidance is not None and not isinstance(guidance, DataConsistencyGuidance):
            raise TypeError(f"guidance must be a DataConsistencyGuidance or None, got {type(guidance).__name__}")
        self.process, self.steps, self.update = process, steps, update
        self.stop_t, self.guidance, self.del_t = stop_t, guidance, del_t
        self.x0_hat_last_step = check_bool("x0_hat_last_step", x0_hat_last_step)

    def time_grid(self) -> list[float]:
        """The ``steps + 1`` times ``1 = t_0 > t_1 > ... > t_steps = 0``, ``t_n = 1 - n / steps``."""
        return [1.0 - n / self.steps for n in range(self.steps + 1)]

    def last_step(self) -> int:
        """Index of the last step run: the first ``n`` with ``t_{n+1} < stop_t`` (else ``steps - 1``)."""
        ts = self.time_grid()
        for n in range(self.steps):
            if ts[n + 1] < self.stop_t - _ROUND:
                return n
        return self.steps - 1

    def incremental_reconstruction(self, x0_hat: torch.Tensor, n: int) -> torch.Tensor:
        """``R`` of step ``n`` (``t = t_n`` to ``t_{n+1}``) for the rule ``self.update`` (module docstring)."""
        A = self.process.family.apply
        dt = 1.0 / self.steps
        t, s = 1.0 - n * dt, 1.0 - (n + 1) * dt
        rule = self.update
        if rule == "identity":
            return torch.zeros_like(x0_hat)
        if rule == "look_back_exact":
            return -dt * self.process.family.time_derivative(x0_hat, t)
        if rule == "look_back" and t + dt < 1.0 - _ROUND:
            return A(x0_hat, t) - A(x0_hat, t + dt)
        if rule == "small_look_back" and t + self.del_t < 1.0 - _ROUND:
            return (A(x0_hat, t) - A(x0_hat, t + self.del_t)) * (dt / self.del_t)
        if rule == "small_look_ahead":
            return (A(x0_hat, max(t - self.del_t, 0.0)) - A(x0_hat, t)) * (dt / self.del_t)
        return A(x0_hat, max(s, 0.0)) - A(x0_hat, t)  # look_ahead (and the first look_back steps)

    def _predict(self, x0_predictor, y, tvec, n):
        x0_hat = x0_predictor(y, tvec)
        if not isinstance(x0_hat, torch.Tensor) or x0_hat.shape != y.shape:
            raise ValueError(f"x0_predictor must return a tensor of shape {tuple(y.shape)}, got "
                             f"{getattr(x0_hat, 'shape', type(x0_hat).__name__)} at step {n}")
        if x0_hat.dtype != y.dtype or x0_hat.device != y.device:
            raise ValueError(f"x0_predictor must return ({y.dtype}, {y.device}), got "
                             f"({x0_hat.dtype}, {x0_hat.device}) at step {n}")
        return x0_hat

    def _guidance_term(self, x0_predictor, y, y1, tvec, n):
        """``x0_hat`` and the per-sample guidance gradient ``g`` towards the measurement ``y1`` (module docstring)."""
        with torch.enable_grad():
            yg = y.detach().requires_grad_(True)
            x0_hat = self._predict(x0_predictor, yg, tvec, n)
            err = (y1 - self.process.family.apply(x0_hat, 1.0)).flatten(1).pow(2).sum(1)
            grad = torch.autograd.grad(err.sum(), yg)[0]
        shape = (-1,) + (1,) * (y.dim() - 1)
        if self.guidance.relative:
            scale = self.guidance.step / err.detach().sqrt().clamp_min(torch.finfo(y.dtype).tiny)
            return x0_hat.detach(), grad * scale.reshape(shape)
        return x0_hat.detach(), grad * (self.guidance.step / (2.0 * self.process.sigma(1.0) ** 2))

    def sample(self, x0_predictor: Callable, y: torch.Tensor, seed: int | None = None, return_trajectory: bool = False,
               progress: bool = False, *, y1_noiseless: torch.Tensor | None = None, backend: str = "auto",
               sample_offset: int = 0):
        """Reconstruct from ``y = y_1`` (a batch of degraded, noisy images of the family's shape).

        ``x0_predictor(y_t, t)``, with ``t`` a ``(B,)`` tensor in ``y``'s dtype, returns ``x0_hat``
        shaped like ``y``.  ``seed`` keys the counter-based normals (``None``: drawn from torch's
        global generator); ``sample_offset`` is the global index of ``y``'s first row (a shard of a
        larger run, :mod:`sdekit.distributed`).  Returns the reconstruction, and with ``return_trajectory`` also a
        :class:`DiracTrajectory` of every evaluated step (for the perception-distortion curve).
        ``y1_noiseless``: the noiseless ``A_1 x0``, shaped like ``y``, which the guidance then uses in
        place of ``y`` (the code's ``noiseless_meas_available``; needs ``guidance``).
        """
        if not callable(x0_predictor):
            raise TypeError(f"x0_predictor must be callable as x0_predictor(y_t, t), got {type(x0_predictor).__name__}")
        if not isinstance(y, torch.Tensor) or y.dtype not in (torch.float32, torch.float64):
            raise TypeError("y must be a float32 or float64 tensor")
        family = self.process.family
        if y.dim() < 2 or y.shape[0] < 1 or math.prod(y.shape[1:]) != family.n:
            raise ValueError(f"y must be a batch (B, {', '.join(map(str, family.shape))}) of measurements, "
                             f"got shape {tuple(y.shape)}")
        return_trajectory = check_bool("return_trajectory", return_trajectory)
        progress = check_bool("progress", progress)
        seed = check_seed(seed)
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        sample_offset = check_sample_offset(sample_offset, y.shape[0])
        y1 = y.detach()
        target = y1
        if y1_noiseless is not None:
            if self.guidance is None:
                raise ValueError("y1_noiseless is used only by the data-consistency guidance: pass guidance=")
            if not isinstance(y1_noiseless, torch.Tensor) or y1_noiseless.shape != y.shape \
                    or y1_noiseless.dtype != y.dtype:
                raise ValueError(f"y1_noiseless must be a {y.dtype} tensor of y's shape {tuple(y.shape)}")
            target = y1_noiseless.detach().to(y.device)
        x = y1.clone(memory_format=torch.contiguous_format)
        B, ts = x.shape[0], self.time_grid()
        last = self.last_step()
        flags = torch.zeros(last + 1, 2, dtype=torch.int32, device=x.device)
        record = [] if return_trajectory else None
        out = x
        for n in tqdm(range(last + 1), desc="Dirac", disable=not progress, leave=False):
            t, s = ts[n], max(ts[n + 1], 0.0)
            tvec = torch.full((B,), t, dtype=x.dtype, device=x.device)
            if self.guidance is not None:
                x0_hat, g = self._guidance_term(x0_predictor, x, target, tvec, n)
            else:
                with torch.no_grad():
                    x0_hat = self._predict(x0_predictor, x, tvec, n)
                g = None
            if record is not None:
                record.append((t, x.clone(), x0_hat.clone()))
            if n == last and self.x0_hat_last_step:
                out = x0_hat.detach()
                break
            with torch.no_grad():
                var_t, var_s = self.process.sigma(t) ** 2, self.process.sigma(s) ** 2
                keep = var_s / var_t
                drive = self.incremental_reconstruction(x0_hat, n) + (1.0 - keep) * family.apply(x0_hat, t)
                if g is not None:
                    drive = drive - (var_t - var_s) * g
                coef = torch.tensor([[keep], [0.0], [1.0], [math.sqrt(var_t - var_s)]], dtype=x.dtype, device=x.device)
                x = affine_step(x, coef, backend=backend, score=drive.contiguous(), seed=int(seed), step=n,
                                sample_offset=sample_offset, noise=True, flags=flags[n])
            out = x
        bad = flags.any(dim=1)
        if bool(bad.any()):
            w = int(bad.nonzero()[0, 0])
            what = "x0_predictor" if int(flags[w, 0]) else "the update"
            raise NonFiniteError(f"{what} produced non-finite values at step {w} (t={ts[w]:.6g})")
        if record is None:
            return out
        times = torch.tensor([r[0] for r in record], dtype=torch.float64)
        return out, DiracTrajectory(times, torch.stack([r[1] for r in record]), torch.stack([r[2] for r in record]))

    def __repr__(self) -> str:
        return (f"Dirac(steps={self.steps}, update={self.update!r}, stop_t={self.stop_t}, "
                f"guidance={self.guidance!r})")
