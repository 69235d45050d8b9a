"""What every sampler is: a plan builder (abstract classes) and the front door that checks a run.

A reverse sampler says, in :meth:`ReverseSampler.step_coefficients`, how one reverse step from
``t`` to ``s < t`` maps onto the fused affine step

    x_s = A x_t + C y + S score(x_t, t) + N z,      z ~ N(0, I) from (seed, word, index)

(the equation, its order and its source live in the class docstring).  :meth:`ReverseSampler.plan`
turns that into a :class:`~sdekit.solvers.plan.Plan` (time grid, coefficient table, corrector,
RNG words); :meth:`ReverseSampler.sample` validates everything up front (errors name the
argument), draws or copies the initial state and hands both to the one loop,
:func:`sdekit.solvers.loop.run`.  A corrector (:class:`Corrector`) is an update at fixed ``t``
run before each predictor update.
"""
from __future__ import annotations

import abc
import dataclasses

import torch

from .._checks import check_conditioning, check_finite, check_float_batch, check_int, check_shape, check_t_eps
from . import loop
from .complex_data import standard_normal_like
from .loop import NonFiniteError, SolverError
from .options import RunOptions
from .plan import PRIOR_WORD, Plan, coefficient_table, time_grid


def check_sde(sde) -> None:
    """``sde`` must offer what the samplers read (a :class:`sdekit.LinearSDE` does)."""
    for attr in ("T", "t_eps", "coefficients", "has_y_drift", "prior_mean", "marginal_std"):
        if not hasattr(sde, attr):
            raise TypeError(f"sde must be a LinearSDE-like object with {attr!r}; got {type(sde).__name__}")


def sqrt_clamped(v: torch.Tensor) -> torch.Tensor:
    return v.clamp_min(0.0).sqrt()


def check_agrees(options: RunOptions, ref: torch.Tensor, ref_name: str) -> None:
    """``options.dtype`` and ``options.device``, where given, must be ``ref``'s."""
    if options.dtype is not None and options.dtype != ref.dtype:
        raise ValueError(f"dtype={options.dtype} disagrees with {ref_name}'s dtype {ref.dtype}: leave dtype unset")
    want = options.device
    if want is not None and (want.type != ref.device.type or want.index not in (None, ref.device.index)):
        raise ValueError(f"device={want} disagrees with {ref_name}'s device {ref.device}: leave device unset")


def with_drawn_seed(options: RunOptions) -> RunOptions:
    """``options`` with its seed, or with one drawn from torch's global CPU generator when it is
    ``None`` (so ``torch.manual_seed`` makes runs repeatable)."""
    if options.seed is not None:
        return options
    return dataclasses.replace(options, seed=int(torch.randint(0, 2**62, (1,)).item()))


def initial_state(sde, y, x_T, shape, options: RunOptions, *, allow_complex: bool = False) -> torch.Tensor:
    """``x_T`` copied (contiguous), or a prior draw ``prior_mean(y) + std(T) z`` with the
    counter-based ``z`` of :data:`PRIOR_WORD` (row ``b``: global sample ``options.sample_offset + b``),
    of ``shape`` (default ``y.shape``).  ``y`` and
    ``x_T`` are checked as themselves (dtype, finiteness) before they fix anything.  With
    ``allow_complex``, complex data is accepted and ``z`` is complex of unit variance
    (:mod:`sdekit.solvers.complex_data`)."""
    if shape is not None:
        shape = check_shape("shape", shape)
    if y is not None:
        check_float_batch("y", y, allow_complex=allow_complex)
    if x_T is not None:
        check_float_batch("x_T", x_T, allow_complex=allow_complex)
        if shape is not None and tuple(shape) != tuple(x_T.shape):
            raise ValueError(f"shape {tuple(shape)} does not match x_T's shape {tuple(x_T.shape)}")
        check_agrees(options, x_T, "x_T")
        check_conditioning(y, x_T, "x_T", has_y_drift=sde.has_y_drift)
        x = None
    else:
        if y is not None:
            if shape is not None and tuple(shape) != tuple(y.shape):
                raise ValueError(f"shape {tuple(shape)} does not match y's shape {tuple(y.shape)}")
            check_agrees(options, y, "y")
            shape, dtype, device = y.shape, y.dtype, y.device
        elif shape is None:
            raise ValueError("sample needs x_T, y or shape to know what to draw")
        else:
            dtype, device = options.dtype or torch.float32, options.device or torch.device("cpu")
        x = torch.empty(tuple(shape), dtype=dtype, device=device)
        check_float_batch("the sample", x, allow_complex=allow_complex)
        check_conditioning(y, x, "the sample", has_y_drift=sde.has_y_drift)
    if y is not None:
        check_finite("y", y)
    if x is None:
        check_finite("x_T", x_T)
        return x_T.resolve_conj().clone(memory_format=torch.contiguous_format)
    std = float(sde.marginal_std(sde.T))
    z = standard_normal_like(x, options.seed, PRIOR_WORD, options.sample_offset)
    return (sde.prior_mean(y) + std * z).to(x.dtype).contiguous()


class Corrector(abc.ABC):
    """An update at fixed ``t``, run ``n_steps`` times before each predictor update.

    A corrector contributes one float64 constant per grid time (:meth:`constants`) to the plan
    and performs its update in place through the fused kernels (:meth:`step`).
    """

    n_steps: int

    @abc.abstractmethod
    def constants(self, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Per-step float64 constants for the updates at ``t`` (the predictor then goes to ``s``)."""

    @abc.abstractmethod
    def step(self, x, score, constant, *, seed: int, step: int, sample_offset: int = 0, noise_scale: float = 1.0,
             backend: str = "auto", out=None, flags=None):
        """One update of the real tensor ``x`` at fixed ``t`` with ``score = score_fn(x, t)``.

        The update's normals are ``noise_scale w`` with ``w`` the standard normals keyed by
        ``(seed, step)``, row ``b`` those of the global sample ``sample_offset + b``:
        ``noise_scale = 1/sqrt(2)`` when ``x`` is the real view of complex data
        (:mod:`sdekit.solvers.complex_data`), so that each complex normal has unit variance.
        """


class ReverseSampler(abc.ABC):
    """A sampler of the reverse-time SDE (or ODE) from ``T`` to ``t_eps`` in ``steps`` equal steps.

    Subclasses state their update in the docstring, set ``strong_order``, ``weak_order``,
    ``noise`` (whether the update draws normals) and ``uses_score`` (whether it reads the score),
    and implement :meth:`step_coefficients`.  Every sampler takes real (float32, float64) and
    complex (complex64, complex128) data: see :mod:`sdekit.solvers.complex_data`.
    """

    strong_order: float
    weak_order: float
    noise: bool = True
    uses_score: bool = True
    run_defaults: RunOptions = RunOptions()  # the options a run starts from (see RunOptions)

    def __init__(self, sde, steps: int = 100, t_eps: float | None = None):
        check_sde(sde)
        self.sde = sde
        self.steps = check_int("steps", steps, min=1)
        self.t_eps = check_t_eps(sde.t_eps if t_eps is None else t_eps, sde.T)

    @abc.abstractmethod
    def step_coefficients(self, t: torch.Tensor, s: torch.Tensor):
        """``(A, C, S, N)`` of the steps from ``t`` to ``s < t`` (float64 tensors shaped like ``t``)."""

    def time_grid(self, device="cpu") -> torch.Tensor:
        """The ``steps + 1`` float64 times ``T = t_0 > t_1 > ... > t_steps = t_eps``."""
        return time_grid(self.sde.T, self.t_eps, self.steps, device)

    def plan(self) -> Plan:
        """The run's plan: grid, ``(A, C, S, N)`` table, no corrector (see :mod:`sdekit.solvers.plan`)."""
        ts = self.time_grid()
        return Plan(ts, coefficient_table(*self.step_coefficients(ts[:-1], ts[1:])), noise=self.noise,
                    uses_score=self.uses_score, name=type(self).__name__)

    def sample(self, score_fn, y=None, x_T=None, shape=None, *args, options: RunOptions | None = None, **kwargs):
        """Integrate from ``x_T`` (default: a prior draw) at ``T`` down to ``t_eps``.

        Args:
            score_fn: ``score_fn(x, t)`` with ``t`` of shape ``(batch,)`` (real); returns a tensor
                like ``x`` (complex for complex ``x``).
            y: conditioning tensor (required when the drift depends on ``y``).
            x_T: initial state; otherwise ``prior_mean(y) + std(T) z`` of shape ``shape``
                (or ``y.shape``), ``z`` complex of unit variance for complex data (``x_T``,
                ``y`` or ``dtype=torch.complex64``/``complex128``).
            *args, options, **kwargs: the run options, :class:`~sdekit.solvers.options.RunOptions`
                (``seed``, ``backend``, ``progress``, ``return_trajectory`` may go positionally;
                keywords override the fields of ``options``, by default ``run_defaults``).
                ``denoise`` defaults to ``True`` for every sampler (DDPM's and score_sde's
                choice; see ``RunOptions``).

        Returns ``x`` at ``t_eps``, or ``(x, trajectory)`` with ``return_trajectory=True``.
        """
        options = RunOptions.merge(self.run_defaults if options is None else options, args, kwargs)
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
        plan = self.plan()
        options = with_drawn_seed(options)
        x = initial_state(self.sde, y, x_T, shape, options, allow_complex=True)
        return loop.run(plan, x, score_fn, y if self.sde.has_y_drift else None, options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sde={type(self.sde).__name__}, steps={self.steps}, t_eps={self.t_eps})"


__all__ = ["Corrector", "NonFiniteError", "ReverseSampler", "SolverError"]
