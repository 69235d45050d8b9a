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
* ``forward`` / ``adjoint`` / ``pinv`` apply ``A``, ``A^T``, ``A^+`` (DDRM's ``H``, ``Ht``,
  ``H_pinv`` are aliases).

Singular values are *not* necessarily sorted (sorting costs a permutation per pass
and no method here needs it), may be exactly zero, and are never truncated: each
operator's ``U diag(S) V^T`` equals its ``forward`` to rounding.

The factors are computed once, in float64, when the operator is built; each method
casts them to the dtype and device of its input on first use and caches the cast
copy, so one operator serves float32 and float64, CPU and GPU batches.

Operators whose input size is not fixed at construction (``Denoising()``,
``Colorization(channels)``) take it from the input on each call; ``singulars()`` then
needs the size (``singulars(n=...)``), and ``likelihood_score`` supplies it.

Besides the DDRM interface each operator has three range-space fast paths used by
the likelihood scores (defaults fall back to the full transforms):

    _Vt_range(x) = (V^T x)[:, :k],   _Ut_range(y) = (U^T y)[:, :k],   _V_range(w) = V add_zeros(w)
"""
from __future__ import annotations

import math
import torch

__all__ = ["SVDOperator", "as_size"]


def as_size(size, name: str = "size") -> tuple[int, int]:
    """``int`` or ``(H, W)`` -> ``(H, W)`` of positive ints (ValueError otherwise)."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair (H, W), got {size!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {(h, w)}")
    return h, w


def check_channels(channels) -> int:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
        raise ValueError(f"channels must be a positive int, got {channels!r}")
    return channels


class SVDOperator:
    """Base class: ``A = U diag(S) V^T`` with the factors applied implicitly.

    Subclasses set ``n``, ``m``, ``k`` (or ``None`` when they follow the input) and
    ``in_shape`` (per-sample input shape, or ``None``) and implement ``Vt``, ``V``,
    ``Ut``, ``U`` and ``_singulars64(n)`` (the float64 CPU singular values).
    """

    n: int | None = None
    m: int | None = None
    k: int | None = None
    in_shape: tuple[int, ...] | None = None

    def __init__(self) -> None:
        self._cache: dict = {}

    # ----------------------------------------------------------------- helpers
    def _cast(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
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

    def _sizes(self, n: int) -> tuple[int, int, int]:
        """``(n, m, k)`` for an input of ``n`` elements per sample."""
        if self.n is not None and n != self.n:
            raise ValueError(f"{type(self).__name__} acts on {self.n} elements per sample, got {n}")
        return self.n, self.m, self.k

    def _flat(self, v: torch.Tensor, size: int | None, what: str) -> torch.Tensor:
        """``v`` as ``(B, size)``, with a ValueError naming ``what`` if it does not fit."""
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"{what} must be a torch.Tensor, got {type(v).__name__}")
        if v.dim() < 2:
            raise ValueError(f"{what} must be batched, shape (B, ...); got shape {tuple(v.shape)}")
        if not v.is_floating_point():
            raise ValueError(f"{what} must be a floating-point tensor, got {v.dtype}")
        per = math.prod(v.shape[1:])
        if size is not None and per != size:
            raise ValueError(
                f"{type(self).__name__}: {what} must have {size} elements per sample, "
                f"got shape {tuple(v.shape)} ({per} per sample)")
        return v.reshape(v.shape[0], per)

    # ------------------------------------------------------------ the interface
    def Vt(self, x: torch.Tensor) -> torch.Tensor:
        """``V^T x``: ``(B, ...)`` -> ``(B, n)``."""
        raise NotImplementedError

    def V(self, z: torch.Tensor) -> torch.Tensor:
        """``V z``: ``(B, n)`` -> ``(B, n)``."""
        raise NotImplementedError

    def Ut(self, y: torch.Tensor) -> torch.Tensor:
        """``U^T y``: ``(B, ...)`` -> ``(B, m)``."""
        raise NotImplementedError

    def U(self, u: torch.Tensor) -> torch.Tensor:
        """``U u``: ``(B, m)`` -> ``(B, m)``."""
        raise NotImplementedError

    def _singulars64(self, n: int | None) -> torch.Tensor:
        raise NotImplementedError

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

    def add_zeros(self, w: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """Pad ``(B, k)`` with trailing zeros to ``(B, n)`` (DDRM's ``add_zeros``)."""
        n = self.n if n is None else n
        if n is None:
            raise ValueError(f"{type(self).__name__} needs the input size n for add_zeros")
        w = w.reshape(w.shape[0], -1)
        if w.shape[1] == n:
            return w
        out = w.new_zeros(w.shape[0], n)
        out[:, : w.shape[1]] = w
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``: ``(B, ...)`` -> ``(B, m)``."""
        xf = self._flat(x, self.n, "x")
        n, m, k = self._sizes(xf.shape[1])
        s = self.singulars(xf.shape[1], like=xf)
        u = s * self.Vt(xf)[:, : s.numel()]
        if u.shape[1] < m:
            u = torch.cat([u, u.new_zeros(u.shape[0], m - u.shape[1])], 1)
        return self.U(u)

    __call__ = forward

    def adjoint(self, y: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """``A^T y``: ``(B, m)`` -> ``(B, n)``."""
        n = self.n if n is None else n
        s = self.singulars(n, like=y)
        return self._V_range(s * self._Ut_range(y, n), n)

    def pinv(self, y: torch.Tensor, n: int | None = None) -> torch.Tensor:
        """``A^+ y = V add_zeros(S^+ (U^T y)[:k])``, ``S^+ = 1/S`` where ``S > 0`` and 0 where ``S = 0``."""
        n = self.n if n is None else n
        s = self.singulars(n, like=y)
        sp = torch.where(s > 0, 1.0 / s, torch.zeros_like(s))
        return self._V_range(sp * self._Ut_range(y, n), n)

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

    # ----------------------------------------------------- range-space fast paths
    def _Vt_range(self, x: torch.Tensor) -> torch.Tensor:
        xf = self._flat(x, self.n, "x")
        k = self._sizes(xf.shape[1])[2]
        return self.Vt(xf)[:, :k]

    def _Ut_range(self, y: torch.Tensor, n: int | None = None) -> torch.Tensor:
        m, k = self._sizes(self.n if n is None else n)[1:]
        yf = self._flat(y, m, "y")
        return self.Ut(yf)[:, :k]

    def _V_range(self, w: torch.Tensor, n: int | None = None) -> torch.Tensor:
        return self.V(self.add_zeros(w, n))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, m={self.m}, k={self.k})"

