"""A sampling run's plan: everything that does not depend on the state, computed before step 0.

A run of ``steps`` steps over the grid ``t_0, ..., t_steps`` performs, at each step ``n``, first
``K`` corrector updates at fixed ``t_n`` (``K = 0`` without a corrector), then one *predictor*
update from ``t_n`` to ``t_{n+1}``, which is the fused affine step

    x <- A_n x + C_n y + S_n score(x, t_n) + N_n z_n

with row ``n`` of the coefficient table ``(A, C, S, N)``.  Every update draws its normals from
its own RNG *word* (the ``step`` of the counter-based generator, :mod:`sdekit.kernels.rng`):

    word(n, j) = n (1 + K) + j,     j = 0 .. K - 1 the corrector updates, j = K the predictor,

and a prior draw at ``T`` uses the reserved word :data:`PRIOR_WORD`, so no two draws of one run
share normals and a run is a pure function of ``(seed, plan)``.  The loop that executes a plan
is :func:`sdekit.solvers.loop.run`; samplers only build plans.

A two-stage predictor (Heun's method) has a ``second_stage`` table: the predictor update then
writes its result ``x~`` (the Euler predictor at ``t_{n+1}``) to a buffer, and the second stage,
with the score evaluated there, is

    x <- A2_n x + B2_n x~ + C2_n y + S2_n score(x~, t_{n+1}),

row ``n`` of ``second_stage`` with columns ``(A2, B2, C2, S2)``; it is noise-free and takes the
word ``K + 1`` of its step (its finiteness flags), so ``word(n, j) = n (2 + K) + j`` then.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

PRIOR_WORD = 2**64 - 1  # the RNG word of a prior draw; never reached by word(n, j)


@dataclass(frozen=True)
class Plan:
    """What one run executes (see the module docstring).

    Attributes:
        times: the ``steps + 1`` float64 grid times on the host, ``t_0`` first.
        table: ``(steps, 4)`` float64 predictor coefficients, columns ``(A, C, S, N)``.
        noise: whether predictor updates draw normals (``False`` for ODE samplers).
        uses_score: whether the predictor reads ``score_fn`` (``False`` for forward simulation:
            ``S = 0`` and ``score_fn`` is never called).
        corrector: a :class:`sdekit.solvers.base.Corrector` run ``corrector.n_steps`` times before
            each predictor update, or ``None``.
        corrector_constants: ``(steps,)`` float64 constants handed to each corrector update at
            ``t_n`` (the Langevin corrector's ``alpha``), or ``None``.
        second_stage: ``(steps, 4)`` float64 coefficients ``(A2, B2, C2, S2)`` of a second,
            noise-free predictor stage (module docstring), or ``None``.
        name: what progress bars and error messages call the run ("EulerMaruyama", ...).
        direction: ``"reverse"`` or ``"forward"``, for error messages.
    """

    times: torch.Tensor
    table: torch.Tensor
    noise: bool = True
    uses_score: bool = True
    corrector: object | None = None
    corrector_constants: torch.Tensor | None = None
    second_stage: torch.Tensor | None = None
    name: str = ""
    direction: str = "reverse"

    def __post_init__(self):
        steps = self.times.numel() - 1
        if self.table.shape != (steps, 4):
            raise ValueError(f"table must have shape ({steps}, 4), got {tuple(self.table.shape)}")
        if (self.corrector is None) != (self.corrector_constants is None):
            raise ValueError("corrector and corrector_constants go together")
        if self.second_stage is not None:
            if self.second_stage.shape != (steps, 4):
                raise ValueError(f"second_stage must have shape ({steps}, 4), got {tuple(self.second_stage.shape)}")
            if self.noise or not self.uses_score:
                raise ValueError("a second predictor stage is for noise-free updates that read the score")

    @property
    def steps(self) -> int:
        return self.times.numel() - 1

    @property
    def corrector_steps(self) -> int:
        """``K``: corrector updates before each predictor update."""
        return 0 if self.corrector is None else self.corrector.n_steps

    @property
    def predictor_stages(self) -> int:
        """1, or 2 with a ``second_stage``."""
        return 1 if self.second_stage is None else 2

    @property
    def words_per_step(self) -> int:
        return self.predictor_stages + self.corrector_steps

    def word(self, n: int, j: int) -> int:
        """RNG word of update ``j`` of step ``n`` (``j = K``: the predictor; ``K + 1``: its second stage)."""
        return n * self.words_per_step + j

    def describe(self, word: int, t_host: list[float]) -> str:
        """Where ``word`` is in the run, for error messages: step, update, time."""
        n, j = divmod(word, self.words_per_step)
        K = self.corrector_steps
        if j > K:
            return f"step {n} of {self.steps} (second stage, t={t_host[n + 1]:.6g})"
        what = self.direction if K == 0 else ("predictor" if j == K else f"corrector {j + 1} of {K}")
        return f"step {n} of {self.steps} ({what}, t={t_host[n]:.6g})"


def time_grid(t_start: float, t_end: float, steps: int, device="cpu") -> torch.Tensor:
    """``steps + 1`` equally spaced float64 times from ``t_start`` to ``t_end``."""
    return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64, device=device)


def coefficient_table(A, C, S, N) -> torch.Tensor:
    """Stack per-step coefficients (each ``(steps,)`` or broadcastable to it) into ``(steps, 4)`` float64."""
    A, C, S, N = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float64) for v in (A, C, S, N)))
    return torch.stack([A, C, S, N], dim=1).to(torch.float64)
