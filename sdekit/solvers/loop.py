"""The one sampling loop: executes a :class:`~sdekit.solvers.plan.Plan` on a state, in place.

Used by every sampler's ``sample`` and by :meth:`EulerMaruyama.simulate`.  Per step it calls
``score_fn`` and launches one fused kernel per update (:mod:`sdekit.kernels.steps`), and it never
waits on the device:

* times and coefficients are tables of the plan, moved to the device once, and split into
  per-step rows once;
* everything the update kernel reads but the score is built here and checked once, before the
  first step, and the backend is resolved once; ``score_fn``'s result is checked when it is
  taken (shape, dtype, device: host metadata, free), with where in the run it happened;
* finiteness is recorded by the kernels themselves in a per-word ``flags`` table (non-finite
  score, non-finite update) and inspected once at the end, or every ``check_every`` steps (one
  host sync each).  The error names the first failing step and its time.

Complex data runs as its real pairs (:mod:`sdekit.solvers.complex_data`): the kernels see
``view_as_real`` of the state, ``y`` and the score, and every noise coefficient is scaled by
``1/sqrt(2)``; the state is updated in place through that view.

On CUDA, ``cuda_graph=True`` captures the whole loop in a CUDA graph (after warm-up steps that
compile the kernels and let ``score_fn`` allocate its workspaces) and replays it; a capture that
fails (``score_fn`` syncs, allocates from the host, branches on data) falls back to the eager
loop with a warning.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from tqdm.auto import tqdm

from .._checks import check_like
from ..kernels import steps as _steps
from .complex_data import noise_scale, real_pairs
from ..kernels.rng import check_sample_offset
from .options import RunOptions
from .plan import Plan


class SolverError(RuntimeError):
    """A sampling run failed (the message names the step)."""


class NonFiniteError(SolverError, FloatingPointError):
    """``score_fn`` or the update produced NaN or infinity."""


class StepRecords:
    """Per-word finiteness flags the kernels set without a host sync, and the errors they imply."""

    def __init__(self, plan: Plan, device, check_every: int):
        self.plan = plan
        self.flags = torch.zeros(plan.steps * plan.words_per_step, 2, dtype=torch.int32, device=device)
        self.t_host = plan.times.tolist()
        self.check_every = check_every

    def describe(self, word: int) -> str:
        return self.plan.describe(word, self.t_host)

    def maybe_check(self, n: int) -> None:
        if self.check_every and (n + 1) % self.check_every == 0:
            self.raise_if_bad((n + 1) * self.plan.words_per_step)

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


def rng_key(options: RunOptions, word: int) -> dict:
    """The counter-based generator's key of one update: the single place the run's RNG numbering
    (seed, RNG word, global index of the batch's first sample) meets the kernels."""
    return {"seed": options.seed, "step": word, "sample_offset": options.sample_offset}


def run(plan: Plan, x: torch.Tensor, score_fn: Callable | None, y, options: RunOptions):
    """Execute ``plan`` on ``x`` in place (``x``: the validated, contiguous initial state, real or
    complex; ``y``: the conditioning tensor or ``None``; ``options.seed`` already drawn).  Returns
    ``x``, or ``(x, trajectory)`` with ``options.return_trajectory``."""
    steps, K, device = plan.steps, plan.corrector_steps, x.device
    check_sample_offset(options.sample_offset, x.shape[0])
    state, y, scale = real_pairs(x), real_pairs(y), noise_scale(x)  # what the kernels read and write
    dtype = state.dtype
    table = plan.table if scale == 1.0 else plan.table * plan.table.new_tensor([1.0, 1.0, 1.0, scale])
    table = table.to(dtype).unsqueeze(-1).to(device)  # (steps, 4, 1): the kernels' coef layout
    t_rows = None  # row n: the (batch,) times score_fn sees at step n
    if plan.uses_score or K:
        t_rows = plan.times[:-1, None].expand(steps, x.shape[0]).to(dtype).contiguous().to(device).unbind(0)
    constants = None if K == 0 else plan.corrector_constants.to(dtype=dtype, device=device)
    records = StepRecords(plan, device, options.check_every)
    flags = records.flags.unbind(0)
    last_noise = plan.noise and not options.denoise
    # the update kernel's front door, passed once: its operands but the score are the loop's own
    _steps.check_step_args(state, table[0], None, y, state, flags[0])
    affine = _steps.resolve("affine_step", options.backend, device)
    table = table.unbind(0)

    def launch(w: int, kernel: Callable, *args, **kwargs):
        try:
            return kernel(*args, **kwargs)
        except (TypeError, ValueError) as err:  # everything but score_fn's result was checked up front
            raise SolverError(f"at {records.describe(w)}: score_fn returned a value the step cannot take: "
                              f"{err}") from err

    def kernel_score(s: torch.Tensor, w: int) -> torch.Tensor:
        if not isinstance(s, torch.Tensor):  # the kernels read None as "no score term": a silent prior-free run
            raise SolverError(f"at {records.describe(w)}: score_fn returned {type(s).__name__}, not a tensor like x")
        if s.shape != x.shape or s.dtype != x.dtype or s.device != device:
            launch(w, check_like, "score", s, x)  # raises, naming the step
        return real_pairs(s)

    def score(n: int, w: int) -> torch.Tensor:
        return kernel_score(score_fn(x, t_rows[n]), w)

    second = None if plan.second_stage is None else SecondStage(plan, x, y, dtype)

    def one_step(n: int) -> None:
        for j in range(K):
            w = plan.word(n, j)
            launch(w, plan.corrector.step, state, score(n, w), constants[n], **rng_key(options, w),
                   noise_scale=scale, backend=options.backend, out=state, flags=flags[w])
        w = plan.word(n, K)
        noise = last_noise if n == steps - 1 else plan.noise
        affine(state, table[n], score=score(n, w) if plan.uses_score else None, y=y, noise=noise,
               out=state if second is None else second.state, flags=flags[w], **rng_key(options, w))
        if second is not None:
            w = plan.word(n, K + 1)
            s2 = kernel_score(score_fn(second.stage, second.t_next[n]), w)
            for args, kwargs in second.updates(n, state, s2):
                affine(*args, noise=False, flags=flags[w], **kwargs, **rng_key(options, w))

    trajectory = [x.clone()] if options.return_trajectory else None
    use_graph = options.cuda_graph and device.type == "cuda"
    if use_graph and (options.return_trajectory or options.progress or options.check_every):
        warnings.warn("cuda_graph ignores progress, return_trajectory and check_every: running eagerly",
                      RuntimeWarning, stacklevel=4)
        use_graph = False
    if use_graph:
        backup = x.clone()

        def loop():
            for n in range(steps):
                one_step(n)

        def warmup():  # compiles every kernel variant the loop launches (the last step may be noise-free)
            one_step(0)
            one_step(steps - 1)
            records.flags.zero_()  # the warm-up ran on a state the real loop never sees

        run_graphed(loop, warmup, x, backup)
    else:
        # a disabled bar still costs ~20 us to set up: plain range without one
        for n in tqdm(range(steps), desc=plan.name, leave=False) if options.progress else range(steps):
            one_step(n)
            if trajectory is not None:
                trajectory.append(x.clone())
            records.maybe_check(n)
    records.raise_if_bad()
    if trajectory is not None:
        return x, torch.stack(trajectory)
    return x


class SecondStage:
    """The second predictor stage of a plan (:mod:`sdekit.solvers.plan`), as fused affine steps:
    ``x <- A2 x + B2 x~ + C2 y + S2 score(x~, t_{n+1})`` with ``x~`` in the buffer ``stage`` (shaped
    and typed like ``x``; ``state`` is its real-pairs view, what the kernels read and write).

    Without ``y`` it is one kernel launch, ``x~`` taking the kernel's ``y`` operand; with ``y``
    (four operands, one more than the kernel reads) it is two: ``x~ <- B2 x~ + C2 y + S2 score``,
    then ``x <- A2 x + x~``.
    """

    def __init__(self, plan: Plan, x: torch.Tensor, y, dtype: torch.dtype):
        self.y = y  # real pairs, or None
        self.stage = torch.empty_like(x)
        self.state = real_pairs(self.stage)
        c = plan.second_stage.to(dtype=dtype, device=x.device)  # columns (A2, B2, C2, S2)
        A2, B2, C2, S2 = c.unbind(1)
        zero, one = torch.zeros_like(A2), torch.ones_like(A2)
        if y is None:
            self.tables = (torch.stack([A2, B2, S2, zero], 1).unsqueeze(-1),)
        else:
            self.tables = (torch.stack([B2, C2, S2, zero], 1).unsqueeze(-1), torch.stack([A2, one, zero, zero], 1)
                           .unsqueeze(-1))
        self.t_next = plan.times[1:, None].expand(plan.steps, x.shape[0]).to(dtype).contiguous().to(x.device)

    def updates(self, n: int, state: torch.Tensor, score: torch.Tensor):
        """``(args, kwargs)`` of the affine steps of step ``n`` on the run's ``state`` (real pairs),
        with ``score`` the (real-pairs) score at ``x~``."""
        stage = self.state
        if self.y is None:
            return [((state, self.tables[0][n]), {"score": score, "y": stage, "out": state})]
        return [((stage, self.tables[0][n]), {"score": score, "y": self.y, "out": stage}),
                ((state, self.tables[1][n]), {"y": stage, "out": state})]


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
                      RuntimeWarning, stacklevel=4)
        x.copy_(backup)
        loop()
