"""The implicit-SVD interface every inverse-problem operator implements.

A linear measurement operator ``A`` (``m x n``) is kept as its singular value
decomposition, never as a matrix (DDRM, Kawar et al. 2022, ``svd_replacement.py``):

    A = U diag(S) V^T,   U (m x m) and V (n x n) orthogonal,   S >= 0 of length k = min(m, n)

Vectors are batched and flat, as in DDRM: an image batch ``(B, C, H, W)`` is read as
``(B, n)`` in C order; measurements are ``(B, m)``; spectral coefficients are

* ``Vt(x)``  -> ``(B, n)``: ``V^T x``; its first ``k`` entries pair with ``singulars()``,
  the remaining ``n - k`` span the null space of ``A``;
* ``Ut(y)``  -> ``(B, m)``: ``U^T y``; its first ``k`` entries pair with ``singulars()``;
* ``V(z)``, ``U(u)``: the inverse maps back to ``(B, n)`` / ``(B, m)``;
* ``add_zeros(w)``: pads ``(B, k)`` with trailing zeros to ``(B, n)`` (DDRM's role), so
  ``A^T y = V(add_zeros(S * Ut(y)[:, :k]))`` and ``A x = U(pad_m(S * Vt(x)[:, :k]))``;
* ``forward`` (also ``op(x)``) / ``adjoint`` / ``pinv`` apply ``A``, ``A^T``, ``A^+`` (DDRM's
  ``H``, ``Ht``, ``H_pinv`` are aliases).

The range-space maps, public because the likelihood scores and DMPS are written against
them (each operator may implement them faster than the full transforms):

    Vt_range(x) = (V^T x)[:, :k],   Ut_range(y) = (U^T y)[:, :k],   V_range(w) = V add_zeros(w).

Input layouts.  An image-space input ``x`` is ``(B, *in_shape)`` or flat ``(B, n)``; a
measurement ``y`` is ``(B, *out_shape)`` or flat ``(B, m)``.  Size-1 dimensions may be added
or left out (``(B, H, W)`` for ``in_shape = (1, H, W)``), but a per-sample shape with the right
element count in another layout (a transposed image, twice the channels) is refused: it would
be read wrongly.  Spectral vectors (``V(z)``, ``U(u)``) are flat.  Tensors must be real
floating point; an empty batch (``B = 0``) gives an empty result.

Singular values are *not* necessarily sorted (sorting costs a permutation per pass and no
method here needs it) and are never truncated in ``singulars()``: each operator's
``U diag(S) V^T`` equals its ``forward`` to rounding.

**Numerical rank.**  Singular values computed in floating point are rarely exactly zero
where ``A`` is rank-deficient: they come out at rounding level (of order ``eps max(S)`` or
below), and dividing by them amplifies rounding noise by ``1/eps`` or more (the 3-tap box
blur is singular whenever 3 divides ``N + 1``).  Wherever ``S`` is divided by, that is in
:meth:`SVDOperator.pinv` and in the likelihood scores (:mod:`sdekit.inverse.scores`),
singular values at or below the cutoff

    tau = rcond * max(S),    rcond = max(m, n) * eps(dtype)   (default; overridable)

are treated as exact zeros (:meth:`SVDOperator.numerical_singulars`), the convention of
``numpy.linalg.pinv`` / ``matrix_rank`` and ``torch.linalg.pinv``.  ``eps`` is that of the
dtype the computation runs in (float32 inputs get the float32 cutoff).  ``rcond=0`` keeps
every nonzero value.

The factors are computed once, in float64, when the operator is built; each method
casts them to the dtype and device of its input on first use and caches the cast
copy, so one operator serves float32 and float64, CPU and GPU batches.

Operators whose input size is not fixed at construction (``Denoising()``,
``Colorization(channels)``) take it from the input on each call; ``singulars()`` then
needs the size (``singulars(n=...)``), and the likelihood scores supply it.
"""
from __future__ import annotations

import abc
import math

import torch

from .._checks import check_int, check_real, check_size2

__all__ = ["SVDOperator", "as_size", "check_channels"]


def as_size(size, name: str = "size") -> tuple[int, int]:
    """``int`` or ``(H, W)`` -> ``(H, W)`` of positive ints, for operator constructors
    (:func:`sdekit._checks.check_size2`: strings and non-integers refused, errors name ``name``)."""
    return check_size2(name, size)


def check_channels(channels) -> int:
    """``channels``: a positive int (TypeError for non-integers, ValueError for ``<= 0``)."""
    return check_int("channels", channels, min=1)


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


class SVDOperator(abc.ABC):
    """Base class: ``A = U diag(S) V^T`` with the factors applied implicitly.

    Subclasses set ``n``, ``m``, ``k`` (or ``None`` when they follow the input),
    ``in_shape`` / ``out_shape`` (per-sample input and measurement shapes, or ``None``) and
    implement ``Vt``, ``V``, ``Ut``, ``U`` and ``_singulars64(n)`` (the float64 CPU singular
    values).  Singular values at rounding level are exact zeros wherever ``S`` is inverted
    (module docstring, "Numerical rank").
    """

    n: int | None = None
    m: int | None = None
    k: int | None = None
    in_shape: tuple[int, ...] | None = None
    out_shape: tuple[int, ...] | None = None

    def __init__(self) -> None:
        self._cache: dict = {}

    # ----------------------------------------------------------------- helpers
    def _cast(self, name, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``t`` (a float64 CPU factor) in ``like``'s dtype and device, cast once."""
        key = (name, like.dtype, like.device)
        out = self._cache.get(key)
        if out is None:
            out = t.to(device=like.device, dtype=like.dtype)
            self._cache[key] = out
        return out

    def _index(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """The index tensor attribute ``name`` on ``like``'s device, moved once."""
        key = (name, like.device)
        out = self._cache.get(key)
        if out is None:
            out = getattr(self, name).to(like.device)
            self._cache[key] = out
        return out

    def _sizes(self, n: int | None) -> tuple[int, int, int]:
        """``(n, m, k)`` for an input of ``n`` elements per sample."""
        if self.n is not None and n is not None and n != self.n:
            raise ValueError(f"{type(self).__name__} acts on {self.n} elements per sample, got {n}")
        return self.n, self.m, self.k

    def _flat(self, v, size: int | None, what: str, shape: tuple[int, ...] | None = None) -> torch.Tensor:
        """``v`` as ``(B, size)``; errors name ``what``.

        ``v`` must be a real floating-point tensor with a batch dimension and ``size``
        elements per sample (when ``size`` is given); with a multi-axis ``shape``, its per-sample
        shape must be flat or ``shape`` up to size-1 dimensions.  A one-axis ``shape`` (a
        vector operator such as ``DenseOperator``) declares no layout: any per-sample shape of
        ``size`` elements is read in row-major order, as ``x.reshape(B, -1)``.
        """
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{what} must be a torch.Tensor, got {type(v).__name__}")
        if v.is_complex():
            raise TypeError(f"{what} is complex ({v.dtype}); sdekit.inverse operators are real: "
                            "pass the real and imaginary parts as separate samples")
        if not v.is_floating_point():
            raise TypeError(f"{what} must be a floating-point tensor, got {v.dtype}")
        if v.dim() < 2:
            raise ValueError(f"{what} must be batched, shape (B, ...); got shape {tuple(v.shape)}")
        per = math.prod(v.shape[1:])
        if size is not None and per != size:
            raise ValueError(
                f"{type(self).__name__}: {what} must have {size} elements per sample, "
                f"got shape {tuple(v.shape)} ({per} per sample)")
        if shape is not None and len(shape) > 1 and v.dim() > 2 and _squeezed(v.shape[1:]) != _squeezed(shape):
            raise ValueError(
                f"{type(self).__name__}: {what} must have per-sample shape {tuple(shape)} (or be flat, "
                f"({math.prod(shape)},)), got {tuple(v.shape[1:])}: same element count, another layout")
        return v.reshape(v.shape[0], per)

    def _flat_input(self, x, what: str = "x") -> torch.Tensor:
        """An image-space input as ``(B, n)`` (layout checked against ``in_shape``)."""
        return self._flat(x, self.n, what, self.in_shape)

    def _flat_measurement(self, y, n: int | None = None, what: str = "y") -> torch.Tensor:
        """A measurement as ``(B, m)`` (layout checked against ``out_shape``)."""
        return self._flat(y, self._sizes(self.n if n is None else n)[1], what, self.out_shape)

    # ------------------------------------------------------------ the interface
    @abc.abstractmethod
    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        """``V^T x``: ``(B, ...)`` -> ``(B, n)``."""

    @abc.abstractmethod
    def V(self, z: torch.Tensor) -> torch.Tensor:
        """``V z``: ``(B, n)`` -> ``(B, n)``."""

    @abc.abstractmethod
    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        """``U^T y``: ``(B, ...)`` -> ``(B, m)``."""

    @abc.abstractmethod
    def U(self, u: torch.Tensor) -> torch.Tensor:
        """``U u``: ``(B, m)`` -> ``(B, m)``."""

    @abc.abstractmethod
    def _singulars64(self, n: int | None) -> torch.Tensor:
        """The ``k`` singular values, float64 on the CPU."""

    def singulars(self, n: int | None = None, *, like: torch.Tensor | None = None) -> torch.Tensor:
        """The ``k`` singular values (unsorted, possibly zero), in ``like``'s dtype/device.

        ``n`` (elements per input sample) is needed only by operators built without a size.
        Without ``like`` the values are float64 on the CPU.  The tensor is cached and
        shared: do not modify it in place.
        """
        key = ("S64", n if self.n is None else self.n)
        s = self._cache.get(key)
        if s is None:
            s = self._cache[key] = self._singulars64(n)
        return s if like is None else self._cast(("S", s.numel()), s, like)

    def rank_cutoff(self, n: int | None = None, *, dtype: torch.dtype = torch.float64,
                    rcond: float | None = None) -> float:
        """``tau = rcond * max(S)``: singular values ``<= tau`` count as zero where ``S`` is inverted.

        ``rcond`` defaults to ``max(m, n) * eps(dtype)`` (numpy's ``matrix_rank`` and
        ``torch.linalg.pinv``); ``rcond=0`` gives ``tau = 0`` (only exact zeros dropped).
        """
        S = self.singulars(n)
        if rcond is None:
            n_, m_, _ = self._sizes(self.n if n is None else n)
            rcond = max(m_, n_) * torch.finfo(dtype).eps
        else:
            rcond = check_real("rcond", rcond, nonnegative=True)
        return rcond * float(S.max()) if S.numel() else 0.0

    def numerical_singulars(self, n: int | None = None, *, like: torch.Tensor | None = None,
                            rcond: float | None = None) -> torch.Tensor:
        """:meth:`singulars` with every value ``<= rank_cutoff(n, dtype=like.dtype, rcond=rcond)``
        replaced by an exact 0: the spectrum that :meth:`pinv` and the likelihood scores invert.

        Cached per size, dtype, device and ``rcond``; do not modify it in place.
        """
        dtype = torch.float64 if like is None else like.dtype
        key = ("S+", n if self.n is None else self.n, dtype, rcond)
        s = self._cache.get(key)
        if s is None:
            S = self.singulars(n)
            tau = self.rank_cutoff(n, dtype=dtype, rcond=rcond)
            s = self._cache[key] = torch.where(S > tau, S, torch.zeros_like(S))
        return s if like is None else self._cast(key, s, like)

    def add_zeros(self, w: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Pad ``(B, k)`` with trailing zeros to ``(B, n)`` (DDRM's ``add_zeros``)."""
        n = self.n if n is None else n
        if n is None:
            raise ValueError(f"{type(self).__name__} needs the input size n for add_zeros")
        w = w.reshape(w.shape[0], math.prod(w.shape[1:]))
        if w.shape[1] == n:
            return w
        out = w.new_zeros(w.shape[0], n)
        out[:, : w.shape[1]] = w
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x = U pad_m(S (V^T x)[:k])``: ``(B, ...)`` -> ``(B, m)``."""
        xf = self._flat_input(x)
        n, m, k = self._sizes(xf.shape[1])
        s = self.singulars(xf.shape[1], like=xf)
        u = s * self.Vt(xf)[:, : s.numel()]
        if u.shape[1] < m:
            u = torch.cat([u, u.new_zeros(u.shape[0], m - u.shape[1])], 1)
        return self.U(u)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``op(x)`` is ``op.forward(x)``: ``A x``."""
        return self.forward(x)

    def _input_size(self, y, n: int | None) -> int | None:
        """``n`` (elements per input sample) for a measurement ``y``: the operator's own, the one
        given, or (operators built without a size) the one ``y`` implies."""
        return self.n if n is None else n

    def adjoint(self, y: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """``A^T y = V add_zeros(S (U^T y)[:k])``: ``(B, m)`` -> ``(B, n)``."""
        n = self._input_size(y, n)
        uy = self.Ut_range(y, n)
        return self.V_range(self.singulars(n, like=uy) * uy, n)

    def pinv(self, y: torch.Tensor, n: int | None = None, *, rcond: float | None = None) -> torch.Tensor:
        """``A^+ y = V add_zeros(S^+ (U^T y)[:k])``: the minimum-norm least-squares solution.

        ``S^+ = 1/S`` where ``S > tau`` and 0 elsewhere, ``tau = rcond * max(S)`` with
        ``rcond = max(m, n) * eps(y.dtype)`` by default (:meth:`rank_cutoff`), so rounding-level
        singular values of a rank-deficient ``A`` are not inverted.
        """
        n = self._input_size(y, n)
        uy = self.Ut_range(y, n)
        s = self.numerical_singulars(n, like=uy, rcond=rcond)
        sp = torch.where(s > 0, 1.0 / s, torch.zeros_like(s))
        return self.V_range(sp * uy, n)

    # DDRM's names, so DDRM-style code ports without edits
    def H(self, x: torch.Tensor) -> torch.Tensor:
        """DDRM's name for :meth:`forward`."""
        return self.forward(x)

    def Ht(self, y: torch.Tensor) -> torch.Tensor:
        """DDRM's name for :meth:`adjoint`."""
        return self.adjoint(y)

    def H_pinv(self, y: torch.Tensor) -> torch.Tensor:
        """DDRM's name for :meth:`pinv`."""
        return self.pinv(y)

    def measurement_size(self, n: int | None = None) -> int:
        """``m`` for an input of ``n`` elements per sample."""
        return self._sizes(self.n if n is None else n)[1]

    def row_norms_sq(self, n: int | None = None) -> torch.Tensor:
        """``diag(A A^T)`` (float64), for operators whose rows are mutually orthogonal.

        QCS-SGM's factorised likelihood needs ``A A^T`` diagonal; operators for which
        it is not raise ValueError.
        """
        raise ValueError(
            f"{type(self).__name__} is not row-orthogonal (A A^T is not diagonal), "
            "so QCS-SGM's factorised likelihood does not apply")

    # ----------------------------------------------------------- range-space maps
    def Vt_range(self, x: torch.Tensor) -> torch.Tensor:
        """``(V^T x)[:, :k]``: the coordinates of ``x`` in the row space of ``A``, ``(B, ...)`` -> ``(B, k)``."""
        xf = self._flat_input(x)
        k = self._sizes(xf.shape[1])[2]
        return self.Vt(xf)[:, :k]

    def Ut_range(self, y: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """``(U^T y)[:, :k]``: the coordinates of ``y`` paired with ``singulars(n)``, ``(B, m)`` -> ``(B, k)``.

        ``n`` (elements per input sample) is needed only by operators built without a size.
        """
        k = self._sizes(self.n if n is None else n)[2]
        return self.Ut(self._flat_measurement(y, n))[:, :k]

    def V_range(self, w: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """``V add_zeros(w)``: ``(B, k)`` range coordinates -> ``(B, n)``; the inverse of :meth:`Vt_range`
        on the row space of ``A``."""
        return self.V(self.add_zeros(w, n))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, m={self.m}, k={self.k})"
