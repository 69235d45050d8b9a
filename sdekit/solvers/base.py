"""What every sampler shares: argument checks, the time grid, and the loop around the fused step.

A sampler is a small class that says, in :meth:`ReverseSampler.coefficients`, how one
reverse step from ``t`` to ``s < t`` maps onto the fused affine step

    x_s = A x_t + C y + S score(x_t, t) + N z,      z ~ N(0, I) from (seed, step, index)

(the equation, its order and its source live in the class docstring).  This module runs
the loop: it validates everything up front (errors name the argument), computes the whole
coefficient table once before the first step, and then per step calls ``score_fn`` and
launches one kernel, in place on ``x``.  The loop never waits on the device:

* times and coefficients are precomputed tables indexed on the host;
* ``score_fn``'s shape, dtype and device are host metadata, checked every step for free;
* finiteness is recorded by the kernel itself in a per-step ``flags`` table (non-finite
  score, non-finite update) and inspected once at the end, or every ``check_every`` steps
  when asked (one host sync each).  The error names the first failing step and its time.
  Flags are never reset and non-finite values propagate through the affine update, so
  checking once at the end cannot miss one; checking early only stops a doomed run sooner.

On CUDA, ``cuda_graph=True`` captures the whole loop in a CUDA graph (after warm-up
steps that compile the kernels and let ``score_fn`` allocate its workspaces) and replays
it; a capture that fails (``score_fn`` syncs, allocates from the host, branches on data)
falls back to the eager loop with a warning.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..kernels import steps as _steps
from ..kernels.dispatch import BACKENDS
from ..sde.linear import check_state as check_conditioning
from ..kernels.rng import philox_normal_like

# RNG step words: step n of the loop draws from word n * (1 + corrector_steps) + j; the
# prior draws from this reserved word, so it never collides with a step.
PRIOR_STEP = 2**64 - 1


class SolverError(RuntimeError):
    """A sampling run failed (the message names the step)."""


class NonFiniteError(SolverError, FloatingPointError):
    """``score_fn`` or the update produced NaN or infinity."""


def check_sde(sde) -> None:
    for attr in ("T", "t_eps", "coefficients", "has_y_drift"):
        if not hasattr(sde, attr):
            raise TypeError(f"sde must be a LinearSDE-like object with {attr!r}; got {type(sde).__name__}")


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise TypeError(f"steps must be an int, got {type(steps).__name__}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return int(steps)


def check_t_eps(sde, t_eps) -> float:
    t_eps = sde.t_eps if t_eps is None else t_eps
    if isinstance(t_eps, bool) or not isinstance(t_eps, numbers.Real):
        raise TypeError(f"t_eps must be a float, got {type(t_eps).__name__}")
    t_eps = float(t_eps)
    if not (0.0 < t_eps < sde.T):
        raise ValueError(f"t_eps must lie in (0, T) = (0, {sde.T}), got {t_eps}")
    return t_eps


def check_seed(seed) -> int:
    if seed is None:
        # Drawn from torch's global CPU generator, so torch.manual_seed makes runs repeatable.
        return int(torch.randint(0, 2**62, (1,)).item())
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return int(seed)


def check_backend(backend) -> str:
    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    return backend


def check_state(sde, x, y, name: str) -> None:
    """``x`` (named ``name``) and ``y`` are float32/float64 tensors of one shape, dtype and device."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"{name} must have a non-empty leading batch dimension, got shape {tuple(x.shape)}")
    check_conditioning(x, y, sde.has_y_drift, name)


def time_grid(t_start: float, t_end: float, steps: int, device) -> torch.Tensor:
    """``steps + 1`` equally spaced float64 times from ``t_start`` to ``t_end``."""
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64, device=device)


def coef_table(A, C, S, N, dtype) -> torch.Tensor:
    """Stack per-step coefficients (each ``(steps,)``) into the ``(steps, 4, 1)`` kernel table."""
    return torch.stack([A, C, S, N], dim=1).unsqueeze(-1).to(dtype).contiguous()


def initial_state(sde, y, x_T, shape, seed: int, dtype, device) -> torch.Tensor:
    """``x_T`` copied, or a prior draw ``prior_mean(y) + std(T) z`` with counter-based ``z``."""
    if x_T is not None:
        check_state(sde, x_T, y, "x_T")
        if shape is not None and tuple(shape) != tuple(x_T.shape):
            raise ValueError(f"shape {tuple(shape)} does not match x_T's shape {tuple(x_T.shape)}")
        return x_T.clone(memory_format=torch.contiguous_format)
    if y is not None:
        if shape is not None and tuple(shape) != tuple(y.shape):
            raise ValueError(f"shape {tuple(shape)} does not match y's shape {tuple(y.shape)}")
        shape, dtype, device = y.shape, y.dtype, y.device
    elif shape is None:
        raise ValueError("sample needs x_T, y or shape to know what to draw")
    x = torch.empty(tuple(int(d) for d in shape), dtype=dtype, device=device)
    check_state(sde, x, y, "the sample")
    if not hasattr(sde, "prior_mean"):
        g = torch.Generator().manual_seed(seed)
        prior = sde.prior_sampling(None if y is None else y.cpu(), generator=g, shape=tuple(x.shape))
        return prior.to(device=device, dtype=dtype).contiguous()
    std = float(sde.marginal_std(sde.T))
    z = philox_normal_like(x, seed, PRIOR_STEP)
    return (sde.prior_mean(y) + std * z).to(dtype).contiguous()


class StepChecker:
    """Per-step records for errors without host syncs: names, times, and the kernels' flags."""

    def __init__(self, n_words: int, device, describe: Callable[[int], str], check_every: int):
        if isinstance(check_every, bool) or not isinstance(check_every, numbers.Integral) or check_every < 0:
            raise ValueError(f"check_every must be an int >= 0 (0: check once at the end), got {check_every!r}")
        self.flags = torch.zeros(n_words, 2, dtype=torch.int32, device=device)
        self.describe = describe
        self.check_every = int(check_every)

    def check_score(self, score, x, word: int) -> None:
        if not isinstance(score, torch.Tensor):
            raise SolverError(f"score_fn returned {type(score).__name__}, not a tensor, at {self.describe(word)}")
        if score.shape != x.shape:
            raise SolverError(f"score_fn returned shape {tuple(score.shape)}, expected {tuple(x.shape)}, "
                              f"at {self.describe(word)}")
        if score.dtype != x.dtype or score.device != x.device:
            raise SolverError(f"score_fn returned ({score.dtype}, {score.device}), expected "
                              f"({x.dtype}, {x.device}), at {self.describe(word)}")

    def maybe_check(self, n: int, upto_word: int) -> None:
        if self.check_every and (n + 1) % self.check_every == 0:
            self.raise_if_bad(upto_word)

    def raise_if_bad(self, upto_word: int | None = None) -> None:
        flags = self.flags if upto_word is None else self.flags[:upto_word]
        bad = flags.any(dim=1)
        if not bool(bad.any()):  # the one host sync
            return
        w = int(bad.nonzero()[0, 0])
        if int(flags[w, 0]):
            raise NonFiniteError(f"score_fn returned non-finite values (NaN or inf) at {self.describe(w)}")
        raise NonFiniteError(f"the update produced non-finite values at {self.describe(w)} "
                             "(coefficients or state overflowed)")


def validated_score_fn(score_fn) -> Callable:
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable as score_fn(x, t), got {type(score_fn).__name__}")
    return score_fn


def run_graphed(loop: Callable[[], None], warmup: Callable[[], None], x: torch.Tensor, backup: torch.Tensor) -> None:
    """Run ``loop`` (which updates ``x`` in place) captured in a CUDA graph; eager on failure.

    The capture is driven by hand (``capture_begin`` / ``capture_end`` inside a stream context)
    rather than by ``torch.cuda.graph``, whose ``__exit__`` leaves its capture stream current
    when ``capture_end`` raises: after a failed capture the eager fallback, and all the caller's
    later work, would run on that stream.  Written for the GPU machine; CPU-only CI cannot run it.
    """
    device = x.device
    try:
        side = torch.cuda.Stream(device=device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            warmup()
        torch.cuda.current_stream(device).wait_stream(side)
        x.copy_(backup)
        torch.cuda.synchronize(device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.stream(side):  # the caller's stream comes back whatever raises inside
            graph.capture_begin()
            try:
                loop()
            finally:
                graph.capture_end()
        x.copy_(backup)
        graph.replay()
    except Exception as err:  # noqa: BLE001 - any capture failure falls back
        warnings.warn(f"CUDA graph capture failed ({type(err).__name__}: {err}); running the loop eagerly",
                      RuntimeWarning, stacklevel=3)
        x.copy_(backup)
        loop()


def progress_range(steps: int, progress: bool, desc: str):
    return tqdm(range(steps), desc=desc, disable=not progress, leave=False)


def per_sample_times(ts: torch.Tensor, B: int, dtype) -> torch.Tensor:
    """``(len(ts), B)`` times in the state's dtype: row ``n`` is what ``score_fn`` sees at step ``n``."""
    return ts[:, None].expand(len(ts), B).to(dtype).contiguous()


def sqrt_clamped(v: torch.Tensor) -> torch.Tensor:
    return v.clamp_min(0.0).sqrt()


class ReverseSampler:
    """A sampler of the reverse-time SDE (or ODE) from ``T`` to ``t_eps`` in ``steps`` equal steps.

    Subclasses state their update in the docstring, set ``strong_order``, ``weak_order``
    and ``noise`` (whether the update draws normals), and implement :meth:`coefficients`.
    """

    strong_order: float
    weak_order: float
    noise: bool = True

    def __init__(self, sde, steps: int = 100, t_eps: float | None = None):
        check_sde(sde)
        self.sde = sde
        self.steps = check_steps(steps)
        self.t_eps = check_t_eps(sde, t_eps)

    def coefficients(self, t: torch.Tensor, s: torch.Tensor):
        """``(A, C, S, N)`` of the steps from ``t`` to ``s < t`` (float64 tensors shaped like ``t``)."""
        raise NotImplementedError

    def time_grid(self, device="cpu") -> torch.Tensor:
        """The ``steps + 1`` float64 times ``T = t_0 > t_1 > ... > t_steps = t_eps``."""
        return time_grid(self.sde.T, self.t_eps, self.steps, device)

    def sample(self, score_fn, y=None, x_T=None, shape=None, seed=None, backend="auto", progress=False,
               return_trajectory=False, *, check_every=0, cuda_graph=False, dtype=torch.float32, device=None,
               denoise=False):
        """Integrate from ``x_T`` (default: a prior draw) at ``T`` down to ``t_eps``.

        Args:
            score_fn: ``score_fn(x, t)`` with ``t`` of shape ``(batch,)``; returns a tensor like ``x``.
            y: conditioning tensor (required when the drift depends on ``y``).
            x_T: initial state; otherwise ``prior_mean(y) + std(T) z`` of shape ``shape``
                (or ``y.shape``), with ``dtype``/``device`` when neither ``x_T`` nor ``y`` is given.
            seed: the counter-based generator's key; ``None`` draws one from torch's global generator.
            backend: ``"auto"``, ``"torch"``, ``"triton"`` or ``"cuda"`` (same numbers for the same seed).
            progress: show a tqdm bar.
            return_trajectory: also return the ``(steps + 1, *shape)`` states.
            check_every: look at the finiteness flags every this many steps (one host sync
                each); 0 looks once at the end.
            cuda_graph: on CUDA, capture the loop in a CUDA graph (falls back if capture fails).
            denoise: leave the noise out of the last step and return its mean (DDPM's Algorithm 2
                takes ``z = 0`` at its last step; score_sde's ``noise_removal``).  Off by default:
                with it the result is no longer a draw of the discretised chain's law at ``t_eps``.
        """
        return run_reverse(self, None, score_fn, y=y, x_T=x_T, shape=shape, seed=seed, backend=backend,
                           progress=progress, return_trajectory=return_trajectory, check_every=check_every,
                           cuda_graph=cuda_graph, dtype=dtype, device=device, denoise=bool(denoise))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sde={type(self.sde).__name__}, steps={self.steps}, t_eps={self.t_eps})"


def run_reverse(predictor: ReverseSampler, corrector, score_fn, *, y, x_T, shape, seed, backend, progress,
                return_trajectory, check_every, cuda_graph, dtype, device, denoise):
    """The sampling loop shared by every reverse sampler (see the module docstring)."""
    sde, steps = predictor.sde, predictor.steps
    score_fn = validated_score_fn(score_fn)
    seed = check_seed(seed)
    backend = check_backend(backend)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    x = initial_state(sde, y, x_T, shape, seed, dtype, device)
    dtype, device, B = x.dtype, x.device, x.shape[0]
    y_arg = y if (y is not None and sde.has_y_drift) else None
    affine = _steps.resolve("affine_step", backend, device)

    ts64 = predictor.time_grid("cpu")
    t, s = ts64[:-1], ts64[1:]
    table = coef_table(*predictor.coefficients(t, s), dtype).to(device)
    tvec = per_sample_times(t, B, dtype).to(device)
    K = 0 if corrector is None else corrector.n_steps
    words = 1 + K
    if K:
        alpha = corrector.alpha(t, s).to(dtype=dtype, device=device)
    t_host = t.tolist()

    def describe(w: int) -> str:
        n, j = divmod(w, words)
        what = "predictor" if j == K else f"corrector {j + 1} of {K}"
        return f"step {n} of {steps} ({what}, t={t_host[n]:.6g})"

    checker = StepChecker(steps * words, device, describe, check_every)

    def one_step(n: int) -> None:
        for j in range(K):
            w = n * words + j
            sc = score_fn(x, tvec[n])
            checker.check_score(sc, x, w)
            corrector.step(x, sc, alpha[n], seed=seed, step=w, backend=backend, out=x, flags=checker.flags[w])
        w = n * words + K
        sc = score_fn(x, tvec[n])
        checker.check_score(sc, x, w)
        noise = predictor.noise and not (denoise and n == steps - 1)
        affine(x, table[n], score=sc, y=y_arg, seed=seed, step=w, noise=noise, out=x, flags=checker.flags[w])

    trajectory = [x.clone()] if return_trajectory else None
    use_graph = cuda_graph and device.type == "cuda"
    if use_graph and (return_trajectory or progress or check_every):
        warnings.warn("cuda_graph ignores progress, return_trajectory and check_every: running eagerly",
                      RuntimeWarning, stacklevel=3)
        use_graph = False
    if use_graph:
        backup = x.clone()

        def loop():
            for n in range(steps):
                one_step(n)

        def warmup():  # compiles every kernel variant the loop launches (the last step may be noise-free)
            one_step(0)
            one_step(steps - 1)
            checker.flags.zero_()  # the warm-up ran on a state the real loop never sees

        run_graphed(loop, warmup, x, backup)
    else:
        for n in progress_range(steps, progress, type(predictor).__name__):
            one_step(n)
            if trajectory is not None:
                trajectory.append(x.clone())
            checker.maybe_check(n, (n + 1) * words)
    checker.raise_if_bad()
    if return_trajectory:
        return x, torch.stack(trajectory)
    return x


__all__ = ["SolverError", "NonFiniteError", "ReverseSampler", "run_reverse", "PRIOR_STEP"]
