"""Degradation families for Dirac: ``t -> A_t``, a linear operator of growing severity.

A stochastic degradation process (Fabian, Tinaz, Soltanolkotabi 2023, "DiracDiffusion:
Denoising and Incremental Reconstruction with Assured Data-Consistency", sec. 3.1) is

    y_t = A_t(x0) + sigma_t z,     t in [0, 1],     A_0 = I,

with ``A_t`` a family of degradations whose severity grows with ``t``.  Here a family is a
map ``severity -> SVDOperator`` (``operator_at(s)``, ``s`` in ``[0, 1]``) composed with a
``schedule`` ``t -> s`` (default: the identity), so

    A_t = operator_at(schedule(t)).

The schedule is what the greedy scheduler (:func:`greedy_schedule`, the paper's Appendix
Algorithm 2) replaces.  Every ``A_t`` is an exact implicit-SVD operator of
:mod:`sdekit.inverse` (no truncated singular value), built once per ``t`` and kept in a
bounded cache, so the time grid of a sampler builds each operator once.  The families here
act in image space (``m = n``, the measurement has the image's shape), as Dirac needs.

* :class:`BlurFamily`: separable Gaussian blur, zero padding, of width ``width(s)`` pixels;
  the kernel ``exp(-j^2 / (2 w^2))`` (normalised over all integers) covers every offset the
  image has (``|j| <= N - 1``), so the blur is not truncated; ``w = 0`` is the identity.
* :class:`BoxInpaintingFamily`: the paper's centred box of side ``s * max_side`` set to 0,
  with a fractional perimeter (the code's ``InpaintingOperator``): pixels of the box of side
  ``floor(s b)`` are 0, those of the one-pixel-wider ring ``floor(s b) + 1`` are
  ``1 - (s b - floor(s b))``, so ``A`` is continuous in ``s``.
* :class:`DegradationFamily`: any user family ``operator_at``.
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Callable

import torch

from .._checks import check_int, check_real, check_real_in, check_size2, is_int, is_real
from .base import SVDOperator
from .svd_blur import SeparableBlur

__all__ = ["DegradationFamily", "BlurFamily", "BoxInpaintingFamily", "DiagonalOperator",
           "PiecewiseLinearSchedule", "greedy_schedule"]

_CACHE_SIZE = 1024


def check_time(t, name: str = "t") -> float:
    """``t`` (a real number or a one-element tensor) as a float in ``[0, 1]``."""
    if isinstance(t, torch.Tensor) and t.numel() == 1:
        t = t.item()
    return check_real_in(name, t, 0.0, 1.0)


class DiagonalOperator(SVDOperator):
    """``A = diag(w)`` on ``(C, H, W)`` images, ``w >= 0``: ``U = V = I``, ``S = w``, ``m = n = k``."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        w = torch.as_tensor(weights).detach().to("cpu", torch.float64)
        if w.dim() < 1 or not torch.isfinite(w).all() or (w < 0).any():
            raise ValueError("weights must be a finite, non-negative tensor of the image's shape")
        self.weights = w
        self.in_shape = tuple(w.shape)
        self.n = self.m = self.k = w.numel()
        self._w = w.reshape(-1)

    def _singulars64(self, n):
        return self._w

    def Vt(self, x):
        return self._flat(x, self.n, "x")

    def V(self, z):
        return self._flat(z, self.n, "z")

    def Ut(self, y):
        return self._flat(y, self.m, "y")

    def U(self, u):
        return self._flat(u, self.m, "u")

    def forward(self, x):
        """``A x = w * x`` elementwise."""
        xf = self._flat(x, self.n, "x")
        return xf * self._cast("w", self._w, xf)

    __call__ = forward


class PiecewiseLinearSchedule:
    """``t -> s``: linear interpolation of ``knots`` (``s_0 = 0 <= s_1 <= ... <= s_K``) at ``t_k = k / K``."""

    def __init__(self, knots) -> None:
        k = torch.as_tensor(knots, dtype=torch.float64).reshape(-1)
        if k.numel() < 2 or not torch.isfinite(k).all():
            raise ValueError("knots must hold at least two finite values")
        if float(k[0]) != 0.0 or (k.diff() < 0).any() or float(k[-1]) > 1.0:
            raise ValueError(f"knots must rise from 0 to at most 1, got {k.tolist()}")
        self.knots = k

    def __call__(self, t: float) -> float:
        K = self.knots.numel() - 1
        u = check_time(t) * K
        i = min(int(math.floor(u)), K - 1)
        a, b = float(self.knots[i]), float(self.knots[i + 1])
        return a + (u - i) * (b - a)

    def derivative(self, t: float) -> float:
        """``ds/dt`` (the slope of the segment holding ``t``; the right one at a knot)."""
        K = self.knots.numel() - 1
        i = min(int(math.floor(check_time(t) * K)), K - 1)
        return float(self.knots[i + 1] - self.knots[i]) * K

    def __repr__(self) -> str:
        return f"PiecewiseLinearSchedule({[round(v, 6) for v in self.knots.tolist()]})"


def _identity(t: float) -> float:
    return t


class DegradationFamily:
    """``A_t = operator_at(schedule(t))`` for ``t`` in ``[0, 1]``, with ``A_0 = I`` checked.

    Args:
        operator_at: ``s -> SVDOperator`` for a severity ``s`` in ``[0, 1]``; every operator
            maps ``n`` elements to ``n`` (image space) and ``operator_at(schedule(0))`` is the identity.
        schedule: ``t -> s``, non-decreasing with ``schedule(0) = 0`` (default: ``s = t``).
        shape: per-sample image shape ``(C, H, W)``, needed when the operators are built without one.

    ``at(t)`` returns the (cached) operator; ``apply(x, t)`` is ``A_t x`` shaped like ``x``.
    """

    def __init__(self, operator_at: Callable[[float], SVDOperator], schedule: Callable | None = None,
                 shape: tuple[int, ...] | None = None) -> None:
        if not callable(operator_at):
            raise TypeError(f"operator_at must be callable, got {type(operator_at).__name__}")
        schedule = _identity if schedule is None else schedule
        if not callable(schedule):
            raise TypeError(f"schedule must be callable t -> severity, got {type(schedule).__name__}")
        self.operator_at = operator_at
        self.schedule = schedule
        self._cache: OrderedDict = OrderedDict()
        op0 = self.at(0.0)
        shape = op0.in_shape if shape is None else tuple(int(d) for d in shape)
        if shape is None:
            raise ValueError("operator_at(0) has no in_shape: pass shape=(C, H, W)")
        self.shape = tuple(shape)
        self.n = math.prod(self.shape)
        self._check_identity(op0)

    def _check_identity(self, op0: SVDOperator) -> None:
        probe = torch.randn(4, self.n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        out = op0.forward(probe)
        if out.shape != probe.shape or not torch.allclose(out, probe, rtol=1e-9, atol=1e-9):
            raise ValueError("the family's A_0 = operator_at(schedule(0)) is not the identity: "
                             "a stochastic degradation process starts at the clean image")

    def severity(self, t) -> float:
        """``schedule(t)``, checked to lie in ``[0, 1]``."""
        return check_time(self.schedule(check_time(t)), "schedule(t)")

    def at(self, t) -> SVDOperator:
        """``A_t`` (cached; the cache keeps the last 1024 distinct times)."""
        key = check_time(t)
        op = self._cache.get(key)
        if op is None:
            op = self.operator_at(self.severity(key))
            if not isinstance(op, SVDOperator):
                raise TypeError(f"operator_at must return an sdekit.inverse operator, got {type(op).__name__}")
            self._cache[key] = op
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return op

    def apply(self, x: torch.Tensor, t) -> torch.Tensor:
        """``A_t x`` for a batch ``x`` of images, shaped like ``x`` (differentiable in ``x``).

        ``t`` is a number, or a ``(B,)`` tensor of per-sample times (samples sharing a time
        share one operator).
        """
        if isinstance(t, torch.Tensor) and t.numel() > 1:
            t = t.reshape(-1)
            if t.numel() != x.shape[0]:
                raise ValueError(f"t must be a number or hold one time per sample ({x.shape[0]}), "
                                 f"got shape {tuple(t.shape)}")
            values, index = torch.unique(t.detach().cpu(), return_inverse=True)
            parts = [None] * len(values)
            out = torch.empty_like(x)
            for j, v in enumerate(values.tolist()):
                rows = (index == j).nonzero().reshape(-1).to(x.device)
                parts[j] = self.apply(x.index_select(0, rows), v)
                out = out.index_copy(0, rows, parts[j])
            return out
        op = self.at(t)
        y = op.forward(x)
        if y.shape[1] != self.n:
            raise ValueError(f"A_t maps {self.n} elements to {y.shape[1]}: Dirac needs image-space operators")
        return y.reshape(x.shape)

    def with_schedule(self, schedule: Callable) -> "DegradationFamily":
        """The same family (same class) with another ``t -> severity`` schedule (e.g. :func:`greedy_schedule`'s)."""
        if not callable(schedule):
            raise TypeError(f"schedule must be callable t -> severity, got {type(schedule).__name__}")
        new = copy.copy(self)
        new.schedule, new._cache = schedule, OrderedDict()
        new._check_identity(new.at(0.0))
        return new

    def apply_at_severity(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``A(s) x`` with autograd through the 0-dim tensor ``s``; families that support
        :meth:`time_derivative` implement it (user families: subclass and override)."""
        raise NotImplementedError(f"{type(self).__name__} has no severity-differentiable form: "
                                  "override apply_at_severity to use the exact-derivative rule")

    def time_derivative(self, x: torch.Tensor, t) -> torch.Tensor:
        """``d/dt A_t x = (d/ds A(s) x) ds/dt`` at ``s = schedule(t)``, the first factor by autograd.

        ``ds/dt`` is 1 for the identity schedule and ``schedule.derivative(t)`` otherwise (as
        :class:`PiecewiseLinearSchedule` has).
        """
        t = check_time(t)
        if self.schedule is _identity:
            slope = 1.0
        elif hasattr(self.schedule, "derivative"):
            slope = float(self.schedule.derivative(t))
        else:
            raise ValueError("the exact-derivative rule needs a schedule with a derivative(t) method")
        s = torch.tensor(self.severity(t), dtype=x.dtype, device=x.device)
        _, d = torch.autograd.functional.jvp(lambda v: self.apply_at_severity(x.detach(), v), s, torch.ones_like(s))
        return d * slope

    def __repr__(self) -> str:
        schedule = "identity" if self.schedule is _identity else repr(self.schedule)
        return f"{type(self).__name__}(shape={self.shape}, schedule={schedule})"


def gaussian_kernel(width: float, N: int) -> torch.Tensor:
    """``exp(-j^2 / (2 width^2)) / sum_{all integers i} exp(-i^2 / (2 width^2))`` for ``j = -(N-1) .. N-1``.

    Normalised over all integers (the sum is taken to ``|i| <= 12 width``, beyond which the terms are
    below ``1e-31``), so the kernel does not depend on the image size; only the ``2N - 1`` taps an
    ``N``-pixel axis can reach are kept.  ``[1]`` when ``width = 0``.
    """
    if width == 0.0:
        return torch.ones(1, dtype=torch.float64)
    R = max(N - 1, math.ceil(12.0 * width))
    j = torch.arange(-R, R + 1, dtype=torch.float64)
    k = torch.exp(-(j * j) / (2.0 * width * width))
    return (k / k.sum())[R - (N - 1): R + N]


class BlurFamily(DegradationFamily):
    """``A_t``: separable Gaussian blur of width ``width(schedule(t))`` pixels, zero padding.

    ``width`` is a number ``w_max`` (``width(s) = w_max s``) or a callable ``s -> w >= 0`` with
    ``width(0) = 0`` (so ``A_0 = I``).  The operator is :class:`~sdekit.inverse.SeparableBlur`
    with the untruncated kernel of :func:`gaussian_kernel` along each axis.
    """

    def __init__(self, width, channels: int, size, schedule: Callable | None = None) -> None:
        if is_real(width):
            w_max = check_real("width", width, positive=True)
            width = lambda s: w_max * s  # noqa: E731
        elif not callable(width):
            raise TypeError(f"width must be a number or a callable s -> pixels, got {type(width).__name__}")
        self.width = width
        self.channels = check_int("channels", channels, min=1)
        self.size = check_size2("size", size)
        super().__init__(self._operator_at, schedule, (self.channels, *self.size))

    def _operator_at(self, s: float) -> SeparableBlur:
        w = check_real(f"width({s})", self.width(s), nonnegative=True)
        H, W = self.size
        return SeparableBlur(gaussian_kernel(w, W), gaussian_kernel(w, H), self.channels, self.size)

    def apply_at_severity(self, x, s):
        """``K_col X K_row^T`` with the 'same' zero-padded matrices built from ``width(s)`` by tensor ops."""
        w = self.width(s)
        X = x.reshape(x.shape[0], self.channels, *self.size)
        H, W = self.size
        return (_blur_matrix(w, H) @ X @ _blur_matrix(w, W).T).reshape(x.shape)


def _blur_matrix(width: torch.Tensor, N: int) -> torch.Tensor:
    """:func:`gaussian_kernel`'s ``N x N`` 'same' zero-padded matrix, differentiable in the tensor ``width``."""
    R = max(N - 1, math.ceil(12.0 * float(width.detach())))
    j = torch.arange(-R, R + 1, dtype=width.dtype, device=width.device)
    k = torch.exp(-(j * j) / (2.0 * width * width))
    k = k / k.sum()
    i = torch.arange(N, device=width.device)
    return k[(i[None, :] - i[:, None]) + R]


def _box_parts(s: float, size: tuple[int, int], max_side: float, left: bool = False):
    """Boolean ``(H, W)`` masks of the box of side ``inner = floor(s b)`` (core) and of the one-pixel-wider
    ring, and ``inner``.  ``left``: at an integer side ``s b`` take ``inner = s b - 1`` (ring value 0: the
    same mask, parametrised as the limit from below)."""
    inner = max(math.ceil(s * max_side) - 1, 0) if left else math.floor(s * max_side)

    def inside(box: int, L: int) -> torch.Tensor:
        start = L // 2 - box // 2
        i = torch.arange(L)
        return (i >= start) & (i < start + box)

    H, W = size
    core = inside(inner, H)[:, None] & inside(inner, W)[None, :]
    ring = inside(inner + 1, H)[:, None] & inside(inner + 1, W)[None, :] & ~core
    return core, ring, inner


def box_mask(s: float, size: tuple[int, int], max_side: float) -> torch.Tensor:
    """The ``(H, W)`` float64 mask of a centred box of side ``s * max_side`` (module docstring)."""
    core, ring, inner = _box_parts(s, size, max_side)
    mask = torch.ones(size, dtype=torch.float64)
    mask[ring] = 1.0 - (s * max_side - inner)
    mask[core] = 0.0
    return mask


class BoxInpaintingFamily(DegradationFamily):
    """``A_t = diag(mask_t)``: a centred box of side ``schedule(t) * max_side`` pixels removed.

    ``max_side`` defaults to ``min(H, W)`` (the paper's box of side ``t * size``); the box edge
    is fractional (module docstring), as in the authors' ``InpaintingOperator``.  All channels
    share the mask.
    """

    def __init__(self, channels: int, size, max_side: float | None = None, schedule: Callable | None = None) -> None:
        self.channels = check_int("channels", channels, min=1)
        self.size = check_size2("size", size)
        max_side = min(self.size) if max_side is None else max_side
        self.max_side = check_real_in("max_side", max_side, 0, min(self.size), closed="right")
        super().__init__(self._operator_at, schedule, (self.channels, *self.size))

    def _operator_at(self, s: float) -> DiagonalOperator:
        m = box_mask(s, self.size, self.max_side)
        return DiagonalOperator(m.expand(self.channels, *self.size).contiguous())

    def apply_at_severity(self, x, s):
        """``mask(s) x`` with the ring value ``1 - (s b - inner)`` a tensor: derivative ``-b`` on the ring, 0
        elsewhere; at an integer side ``s b`` the derivative from below (what a step back in ``t`` sees)."""
        core, ring, inner = _box_parts(float(s.detach()), self.size, self.max_side, left=True)
        one = torch.ones((), dtype=x.dtype, device=x.device)
        mask = torch.where(ring.to(x.device), 1.0 - (s * self.max_side - inner), one)
        mask = torch.where(core.to(x.device), torch.zeros_like(one), mask)
        return (x.reshape(x.shape[0], self.channels, *self.size) * mask).reshape(x.shape)


def greedy_schedule(family: DegradationFamily, data: torch.Tensor, steps: int, candidates=101,
                    distance: Callable | None = None) -> PiecewiseLinearSchedule:
    """Severities at ``t_k = k / steps`` that minimise the largest step between degradations.

    The paper's Appendix Algorithm 2 (greedy scheduling): among candidate severities
    ``0 = c_0 < ... < c_N = 1`` (``candidates``: a count of equispaced ones or the values), with
    the distance between severities ``D(a, b) = distance(A_a data, A_b data)`` (default: the mean
    squared error over the data set), choose ``0 = s_0 < s_1 < ... < s_K = 1`` among them with
    ``K = steps`` minimising ``max_k D(s_{k-1}, s_k)``.  For a threshold ``d`` the greedy walk
    takes from each knot the largest candidate within ``d`` (keeping enough candidates for the
    remaining knots); the smallest ``d`` for which it reaches ``1`` in ``K`` steps is found by
    bisection over the computed distances.  When ``D(a, b)`` grows as ``[a, b]`` widens (a
    monotone distance) the result is the minimax optimum over the candidates.  The schedule
    interpolates the knots linearly (:class:`PiecewiseLinearSchedule`); it is a ``t -> severity``
    map for ``family.with_schedule``.
    """
    if not isinstance(family, DegradationFamily):
        raise TypeError(f"family must be a DegradationFamily, got {type(family).__name__}")
    steps = check_int("steps", steps, min=1)
    if is_int(candidates):
        c = torch.linspace(0.0, 1.0, check_int("candidates", candidates, min=2), dtype=torch.float64)
    else:
        c = torch.as_tensor(candidates, dtype=torch.float64).reshape(-1)
        if c.numel() < 2 or float(c[0]) != 0.0 or float(c[-1]) != 1.0 or (c.diff() <= 0).any():
            raise ValueError("candidates must increase strictly from 0 to 1")
    N = c.numel() - 1
    if steps > N:
        raise ValueError(f"steps ({steps}) must not exceed the number of candidate intervals ({N})")
    if distance is not None and not callable(distance):
        raise TypeError(f"distance must be callable, got {type(distance).__name__}")
    if not isinstance(data, torch.Tensor) or data.dim() < 2 or math.prod(data.shape[1:]) != family.n:
        raise ValueError(f"data must be a batch of images of shape (B, {', '.join(map(str, family.shape))})")
    with torch.no_grad():
        degraded = [family.operator_at(float(s)).forward(data).reshape(data.shape) for s in c.tolist()]
        if distance is None:  # the mean squared error, all pairs at once
            flat = torch.stack([d.reshape(-1) for d in degraded]).double()
            D = torch.cdist(flat, flat).pow(2).div(flat.shape[1]).cpu().triu(1)
        else:
            D = torch.zeros(N + 1, N + 1, dtype=torch.float64)
            for i in range(N + 1):
                for j in range(i + 1, N + 1):
                    D[i, j] = float(distance(degraded[i], degraded[j]))

    def walk(d: float):
        knots, cur = [0], 0
        for k in range(steps):
            last = N - (steps - k - 1)  # leave one candidate per remaining knot
            nxt = cur + 1
            for j in range(cur + 1, last + 1):
                if D[cur, j] <= d:
                    nxt = j
            if D[cur, nxt] > d:
                return None
            knots.append(nxt)
            cur = nxt
        return knots if cur == N else None

    levels = torch.unique(D[torch.triu(torch.ones_like(D, dtype=torch.bool), 1)])
    lo, hi = 0, levels.numel() - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if walk(float(levels[mid])) is None:
            lo = mid + 1
        else:
            hi = mid
    knots = walk(float(levels[lo]))
    return PiecewiseLinearSchedule(c[knots])
