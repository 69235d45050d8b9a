"""Annealed Langevin dynamics over a VE noise ladder (NCSNv2; Song & Ermon 2020, Algorithm 1).

For noise levels ``sigma_1 > ... > sigma_L`` and, at each level ``i``, ``n_steps_each`` steps

    alpha_i = step_lr (sigma_i / sigma_L)^2
    x <- x + alpha_i score(x, sigma_i) + sqrt(2 alpha_i) z,         z ~ N(0, I)

followed (``denoise=True``) by the final denoising step ``x <- x + sigma_L^2 score(x, sigma_L)``
(Tweedie's formula; NCSNv2's ``denoise`` option).  This is ``anneal_Langevin_dynamics`` of
``ermongroup/ncsnv2`` (``models/__init__.py``), the sampler both QCS-SGM papers run.

Here the ladder is a variance-exploding ``LinearSDE``'s marginal std at ``n_levels`` equally
spaced times from ``sde.T`` down to ``t_min`` (for ``VESDE`` with ``t_min = 0`` this is NCSNv2's
geometric ladder from ``sigma_max`` to ``sigma_min``), and ``score_fn(x, t)`` is called with the
level's time, per sample, as every sdekit sampler does.  Each step is one fused
``affine_step`` (``A = 1``, ``S = alpha_i``, ``N = sqrt(2 alpha_i)``); the normals of step ``s``
of level ``i`` are sdekit's counter-based normals of ``(seed, i * n_steps_each + s)``, and the
prior draw ``x_T = sigma_1 z`` uses the reserved word ``2**64 - 1`` (as the other samplers).
"""
from __future__ import annotations

import numbers

import torch

from ..kernels import steps as _steps
from ..kernels.rng import philox_normal_like

__all__ = ["AnnealedLangevin"]

PRIOR_WORD = 2**64 - 1   # the prior's RNG word, shared with sdekit.solvers.base.PRIOR_STEP


def _positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


class AnnealedLangevin:
    """NCSNv2's annealed Langevin sampler on ``sde``'s noise ladder (module docstring).

    ``sde``: a ``LinearSDE`` with ``mx(t) = 1`` (variance exploding, e.g. ``VESDE``);
    ``n_levels >= 1``, ``n_steps_each >= 1``; ``step_lr > 0`` (NCSNv2's ``step_lr``);
    ``t_min`` in ``[0, sde.T)``: the time of the last level; ``denoise``: the final step.
    """

    def __init__(self, sde, n_levels: int = 10, n_steps_each: int = 100, step_lr: float = 8e-6, *,
                 t_min: float = 0.0, denoise: bool = True):
        if not hasattr(sde, "marginal_std") or not hasattr(sde, "mean_coeffs"):
            raise ValueError(f"sde must be an sdekit LinearSDE, got {type(sde).__name__}")
        self.sde = sde
        self.n_levels = _positive_int(n_levels, "n_levels")
        self.n_steps_each = _positive_int(n_steps_each, "n_steps_each")
        if isinstance(step_lr, bool) or not isinstance(step_lr, numbers.Real) or not 0 < step_lr < float("inf"):
            raise ValueError(f"step_lr must be a finite number > 0, got {step_lr!r}")
        self.step_lr = float(step_lr)
        T = float(sde.T)
        if isinstance(t_min, bool) or not isinstance(t_min, numbers.Real) or not 0 <= t_min < T:
            raise ValueError(f"t_min must be in [0, {T}), got {t_min!r}")
        self.t_min = float(t_min)
        self.denoise = bool(denoise)
        t = self.times()
        mx, my = sde.mean_coeffs(t)
        if not torch.allclose(mx, torch.ones_like(mx), rtol=0, atol=1e-12) or (my != 0).any():
            raise ValueError(f"{type(sde).__name__} is not variance exploding (mx(t) != 1 or my(t) != 0): "
                             "annealed Langevin runs on a VE noise ladder")

    def times(self) -> torch.Tensor:
        """The levels' times, ``linspace(T, t_min, n_levels)`` (float64)."""
        if self.n_levels == 1:
            return torch.tensor([float(self.sde.T)], dtype=torch.float64)
        return torch.linspace(float(self.sde.T), self.t_min, self.n_levels, dtype=torch.float64)

    def sigmas(self) -> torch.Tensor:
        """The noise ladder ``sigma_i = marginal_std(t_i)`` (float64)."""
        return self.sde.marginal_std(self.times())

    def sample(self, score_fn, x_T: torch.Tensor | None = None, shape=None, seed: int = 0, *,
               dtype=torch.float32, device=None, backend: str = "auto") -> torch.Tensor:
        """Run the sampler from ``x_T`` (copied) or from ``sigma_1 z`` of ``shape``; returns ``x``.

        ``score_fn(x, t)`` gets ``t`` as a ``(B,)`` tensor; it must return a tensor shaped like
        ``x``.  ``seed``: a non-negative int.  Raises ``FloatingPointError`` (naming the level
        and step) if the score or the update became non-finite.
        """
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable (x, t) -> score, got {type(score_fn).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
        sig = self.sigmas()
        if x_T is not None:
            if not isinstance(x_T, torch.Tensor) or x_T.dim() < 1 or not x_T.is_floating_point():
                raise ValueError("x_T must be a batched floating-point tensor (B, ...)")
            if shape is not None and tuple(shape) != tuple(x_T.shape):
                raise ValueError(f"shape {tuple(shape)} does not match x_T's shape {tuple(x_T.shape)}")
            x = x_T.clone(memory_format=torch.contiguous_format)
        else:
            if shape is None:
                raise ValueError("sample needs x_T or shape")
            if dtype not in (torch.float32, torch.float64):
                raise TypeError(f"dtype must be float32 or float64, got {dtype}")
            x = torch.empty(tuple(int(d) for d in shape), dtype=dtype, device=device)
            x = (float(sig[0]) * philox_normal_like(x, int(seed), PRIOR_WORD)).contiguous()
        B = x.shape[0]
        affine = _steps.step_impl("affine_step", backend, x.device)
        alpha = self.step_lr * (sig / sig[-1]) ** 2
        ones, zeros = torch.ones_like(alpha), torch.zeros_like(alpha)
        table = torch.stack([ones, zeros, alpha, (2 * alpha).sqrt()], 1).unsqueeze(-1).to(x.dtype).to(x.device)
        tvec = self.times().to(dtype=x.dtype, device=x.device)[:, None].expand(-1, B).contiguous()
        flags = torch.zeros(self.n_levels * self.n_steps_each + 1, 2, dtype=torch.int32, device=x.device)

        def call_score(i: int) -> torch.Tensor:
            sc = score_fn(x, tvec[i])
            if not isinstance(sc, torch.Tensor) or sc.shape != x.shape or sc.dtype != x.dtype \
                    or sc.device != x.device:
                got = (tuple(sc.shape), sc.dtype, sc.device) if isinstance(sc, torch.Tensor) else type(sc).__name__
                raise ValueError(f"score_fn must return a tensor of x's shape, dtype and device "
                                 f"{(tuple(x.shape), x.dtype, x.device)}, got {got}")
            return sc

        for i in range(self.n_levels):
            for s in range(self.n_steps_each):
                w = i * self.n_steps_each + s
                affine(x, table[i], score=call_score(i), seed=int(seed), step=w, noise=True, out=x, flags=flags[w])
        if self.denoise:
            last = self.n_levels - 1
            coef = torch.tensor([[1.0], [0.0], [float(sig[-1]) ** 2], [0.0]], dtype=x.dtype, device=x.device)
            affine(x, coef, score=call_score(last), noise=False, out=x, flags=flags[-1])
        bad = flags.any(1).nonzero()
        if bad.numel():
            w = int(bad[0])
            where = "the denoising step" if w == flags.shape[0] - 1 else \
                f"level {w // self.n_steps_each} step {w % self.n_steps_each}"
            what = "score_fn returned" if bool(flags[w, 0]) else "the update produced"
            raise FloatingPointError(f"{what} non-finite values (NaN or inf) at {where}")
        return x

    def __repr__(self) -> str:
        return (f"AnnealedLangevin({type(self.sde).__name__}, n_levels={self.n_levels}, "
                f"n_steps_each={self.n_steps_each}, step_lr={self.step_lr}, denoise={self.denoise})")
