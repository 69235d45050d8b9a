"""Pixel-wise and block-wise measurement operators with closed-form SVDs.

Each class states the matrix ``A`` it applies and its SVD ``A = U diag(S) V^T``; the
conventions (flat ``(B, n)`` vectors, first ``k`` spectral entries paired with
``singulars()``) are those of :mod:`sdekit.inverse.base`.

=================  =====================================  ===========================
operator           A                                      S
=================  =====================================  ===========================
Denoising          I_n                                    1 (n of them)
DenseOperator      any real m x n matrix                  torch.linalg.svd, exact
Inpainting         rows of I_n at the kept pixels         1 (m of them)
SuperResolution    block mean over r x r blocks           1/r (one per block)
Colorization       mean over the C channels of a pixel    1/sqrt(C) (one per pixel)
=================  =====================================  ===========================
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .._checks import check_int, check_size2
from .base import SVDOperator

__all__ = ["Denoising", "DenseOperator", "Inpainting", "SuperResolution", "Colorization"]


class Denoising(SVDOperator):
    """``A = I_n``: ``y = x + noise``.  ``U = V = I``, ``S = 1``.

    ``n`` (elements per sample) is optional; without it the operator takes the size
    of each input.  Any per-sample layout is accepted (the identity does not mix elements).
    """

    def __init__(self, n: int | None = None) -> None:
        super().__init__()
        if n is not None:
            n = check_int("n", n, min=1)
        self.n = self.m = self.k = n

    def _sizes(self, n):
        if self.n is not None:
            return super()._sizes(n)
        return n, n, n

    def _input_size(self, y, n):
        if self.n is None and n is None and isinstance(y, torch.Tensor):
            return math.prod(y.shape[1:])
        return super()._input_size(y, n)

    def _singulars64(self, n):
        n = self.n if self.n is not None else n
        if n is None:
            raise ValueError("Denoising() was built without n: call singulars(n=...)")
        return torch.ones(n, dtype=torch.float64)

    def Vt(self, x):
        return self._flat(x, self.n, "x")

    V = U = Ut = Vt

    def forward(self, x):
        """``A x = x`` (flattened to ``(B, n)``)."""
        return self._flat(x, self.n, "x")

    def row_norms_sq(self, n=None):
        return self._singulars64(n)

    def Vt_range(self, x):
        return self._flat(x, self.n, "x")

    def Ut_range(self, y, n=None):
        return self._flat(y, self.n if self.n is not None else n, "y")

    def V_range(self, w, n=None):
        return w


class DenseOperator(SVDOperator):
    """Any real ``m x n`` matrix ``A`` given densely; acts on ``(B, n)``.

    ``A = U diag(S) V^T`` from ``torch.linalg.svd(A, full_matrices=True)`` in float64,
    computed once.  ``k = min(m, n)``; ``singulars()`` are kept exactly as computed, and
    :meth:`pinv` and the likelihood scores treat those at rounding level as zeros
    (:mod:`sdekit.inverse.base`, "Numerical rank"), so a rank-deficient ``A`` gets its
    minimum-norm solution.  For small problems and as a test oracle.  Complex matrices are
    refused (the operators and scores are real throughout).
    """

    def __init__(self, A) -> None:
        super().__init__()
        try:
            A = torch.as_tensor(A)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"A must be a real matrix (tensor or array), got {type(A).__name__}") from None
        if A.is_complex():
            raise TypeError(f"A is complex ({A.dtype}); DenseOperator, the likelihood scores and DMPS are "
                            "real: split a complex problem into its real and imaginary parts")
        if A.dim() != 2 or A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"A must be a non-empty 2-D matrix, got shape {tuple(A.shape)}")
        if A.is_floating_point() and not torch.isfinite(A).all():
            raise ValueError("A must be finite")
        self._eps = torch.finfo(A.dtype).eps if A.is_floating_point() else torch.finfo(torch.float64).eps
        A64 = A.detach().to("cpu", torch.float64)
        self._set_factors(A64, *torch.linalg.svd(A64, full_matrices=True))

    @classmethod
    def _from_factors(cls, U: torch.Tensor, S: torch.Tensor, V: torch.Tensor) -> "DenseOperator":
        """``A = U diag(S) V^T`` from exact float64 factors (square orthogonal ``U``, ``V``; ``S`` of
        ``min(m, n)`` values, descending), kept instead of an SVD of ``A`` recomputed."""
        op = cls.__new__(cls)
        SVDOperator.__init__(op)
        op._eps = torch.finfo(torch.float64).eps
        k = S.numel()
        op._set_factors(U[:, :k] @ (S[:, None] * V[:, :k].T), U, S, V.T.contiguous())
        return op

    def _set_factors(self, A64: torch.Tensor, U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor) -> None:
        """Keep ``A = U diag(S) Vh`` (float64, CPU) and its shapes."""
        self._A64 = A64
        self.m, self.n = A64.shape
        self.k = min(self.m, self.n)
        self.in_shape, self.out_shape = (self.n,), (self.m,)
        self._U, self._S, self._Vh = U, S, Vh
        # transposes stored once (the casts per dtype/device are cached from these)
        self._V, self._Ut, self._At = Vh.T.contiguous(), U.T.contiguous(), A64.T.contiguous()

    @property
    def matrix(self) -> torch.Tensor:
        """The dense ``A`` (float64, CPU), as given."""
        return self._A64

    def _singulars64(self, n):
        return self._S

    def Vt(self, x):
        return self._flat_input(x) @ self._cast("V", self._V, x)

    def V(self, z):
        return self._flat(z, self.n, "z") @ self._cast("Vh", self._Vh, z)

    def Ut(self, y):
        return self._flat_measurement(y) @ self._cast("U", self._U, y)

    def U(self, u):
        return self._flat(u, self.m, "u") @ self._cast("Ut", self._Ut, u)

    def forward(self, x):
        """``A x`` with the stored dense ``A``."""
        return self._flat_input(x) @ self._cast("At", self._At, x)

    def row_norms_sq(self, n=None):
        """``diag(A A^T)``; ValueError unless ``|(A A^T)_ij| <= 100 n eps max_i (A A^T)_ii`` off the
        diagonal (``eps`` of the dtype ``A`` was given in).  Checked once, then cached."""
        d = self._cache.get("row_norms_sq")
        if d is None:
            G = self._A64 @ self._A64.T
            d = torch.diagonal(G).clone()
            off = (G - torch.diag(d)).abs().max()
            if off > 100 * self.n * self._eps * d.max():
                raise ValueError(f"A is not row-orthogonal: max |(A A^T)_ij|, i != j, is {off:.3g} "
                                 f"(max diagonal {d.max():.3g})")
            self._cache["row_norms_sq"] = d
        return d


def as_operator(A, name: str = "A") -> SVDOperator:
    """``A`` as an operator: an :class:`~sdekit.inverse.SVDOperator` as it is, a matrix (a tensor)
    as a :class:`DenseOperator` (for the scores that take either)."""
    if isinstance(A, torch.Tensor):
        return DenseOperator(A)
    if not isinstance(A, SVDOperator):
        raise TypeError(f"{name} must be an sdekit.inverse operator or a matrix, got {type(A).__name__}")
    return A


class Inpainting(SVDOperator):
    """Keeps the pixels where ``mask`` is 1: ``A = I_n[kept, :]`` (``m`` = number kept).

    ``mask``: 0/1 (or bool) tensor of shape ``(H, W)`` (same for every channel) or
    ``(channels, H, W)``.  Input ``(B, channels, H, W)``; ``y = x.flatten(1)[:, kept]``
    in C order.  SVD: ``U = I_m``, ``S = 1``, ``V^T x = [x_kept, x_missing]``.  A mask
    without kept pixels gives ``m = 0`` (``A^+ y = 0``, the likelihood score is 0).
    """

    def __init__(self, mask, channels: int) -> None:
        super().__init__()
        channels = check_int("channels", channels, min=1)
        if not isinstance(mask, torch.Tensor):
            try:
                mask = torch.as_tensor(mask)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"mask must be a 0/1 or boolean tensor, got {type(mask).__name__}") from None
        if mask.is_complex():
            raise TypeError(f"mask must be a 0/1 or boolean tensor, got {mask.dtype}")
        if mask.dim() == 2:
            mask = mask.unsqueeze(0).expand(channels, *mask.shape)
        elif mask.dim() == 3:
            if mask.shape[0] != channels:
                raise ValueError(f"mask of shape {tuple(mask.shape)} does not match channels={channels}")
        else:
            raise ValueError(f"mask must have shape (H, W) or (channels, H, W), got {tuple(mask.shape)}")
        if mask.numel() == 0:
            raise ValueError("mask is empty")
        mask = mask.detach().cpu()
        if mask.dtype != torch.bool:
            if not ((mask == 0) | (mask == 1)).all():
                raise ValueError("mask must hold only 0 and 1 (or be boolean)")
            mask = mask != 0
        self.mask = mask.contiguous()
        self.in_shape = tuple(mask.shape)
        flat = self.mask.reshape(-1)
        self._kept = torch.nonzero(flat).reshape(-1)
        self._missing = torch.nonzero(~flat).reshape(-1)
        self.n = flat.numel()
        self.m = self.k = self._kept.numel()
        self.out_shape = (self.m,)
        self._perm = torch.cat([self._kept, self._missing])
        self._inv = torch.argsort(self._perm)

    def _singulars64(self, n):
        return torch.ones(self.m, dtype=torch.float64)

    def Vt(self, x):
        xf = self._flat_input(x)
        return xf.index_select(1, self._index("_perm", xf))

    def V(self, z):
        zf = self._flat(z, self.n, "z")
        return zf.index_select(1, self._index("_inv", zf))

    def Ut(self, y):
        return self._flat_measurement(y)

    U = Ut

    def forward(self, x):
        """``A x = x[kept]`` (boolean-mask selection)."""
        xf = self._flat_input(x)
        return xf.index_select(1, self._index("_kept", xf))

    def row_norms_sq(self, n=None):
        return self._singulars64(n)

    def Vt_range(self, x):
        return self.forward(x)

    def Ut_range(self, y, n=None):
        return self._flat_measurement(y)

    def V_range(self, w, n=None):
        out = w.new_zeros(w.shape[0], self.n)
        return out.index_copy_(1, self._index("_kept", w), w)


def _block_basis(p: int) -> torch.Tensor:
    """Orthogonal ``p x p`` matrix (float64) whose first column is ``1/sqrt(p)``."""
    M = torch.eye(p, dtype=torch.float64)
    M[:, 0] = 1.0
    Q, _ = torch.linalg.qr(M)
    if Q[0, 0] < 0:
        Q[:, 0] = -Q[:, 0]
    Q[:, 0] = 1.0 / math.sqrt(p)  # exact, not merely to rounding
    return Q


class SuperResolution(SVDOperator):
    """Block averaging by ``factor`` r: ``y[c, i, j] = mean(x[c, r i : r i + r, r j : r j + r])``.

    Input ``(B, channels, H, W)`` with ``size = (H, W)`` (or an int), both divisible
    by r; ``y`` is ``(B, channels * H/r * W/r)`` in C order (or ``(B, channels, H/r, W/r)``).

    ``A`` is block diagonal with one ``1 x r^2`` block ``(1/r^2) 1^T`` per output pixel,
    whose SVD is closed form: ``u = 1``, ``s = 1/r``, ``v_1 = 1/r`` (all ones over r),
    completed by an orthogonal basis ``Q`` (``r^2 x r^2``, first column ``v_1``).
    ``V^T x`` lists the ``v_1`` coefficient of every block first (``k = m`` of them,
    C order over ``(c, i, j)``), then the other ``r^2 - 1`` coefficients, i.e. the
    spectral vector is laid out as ``(r^2, C, H/r, W/r)``.
    """

    def __init__(self, factor: int, channels: int, size) -> None:
        super().__init__()
        factor = check_int("factor", factor, min=1)
        self.channels = check_int("channels", channels, min=1)
        self.H, self.W = check_size2("size", size)
        if self.H % factor or self.W % factor:
            raise ValueError(f"size {(self.H, self.W)} is not divisible by factor {factor}")
        self.r = factor
        self.h, self.w = self.H // factor, self.W // factor
        self.in_shape = (self.channels, self.H, self.W)
        self.out_shape = (self.channels, self.h, self.w)
        self.n = self.channels * self.H * self.W
        self.m = self.k = self.channels * self.h * self.w
        self._Q = _block_basis(factor * factor)
        self._Qt = self._Q.T.contiguous()

    def _singulars64(self, n):
        return torch.full((self.m,), 1.0 / self.r, dtype=torch.float64)

    def _blocks(self, x):  # (B, n) -> (B, C, h, w, r^2)
        B, r = x.shape[0], self.r
        x = x.reshape(B, self.channels, self.h, r, self.w, r).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(B, self.channels, self.h, self.w, r * r)

    def Vt(self, x):
        xf = self._flat_input(x)
        c = self._blocks(xf) @ self._cast("Q", self._Q, xf)  # (B, C, h, w, r^2)
        return c.permute(0, 4, 1, 2, 3).reshape(xf.shape[0], self.n)

    def V(self, z):
        zf = self._flat(z, self.n, "z")
        B, r = zf.shape[0], self.r
        c = zf.reshape(B, r * r, self.channels, self.h, self.w).permute(0, 2, 3, 4, 1)
        blocks = c @ self._cast("Qt", self._Qt, zf)
        x = blocks.reshape(B, self.channels, self.h, self.w, r, r).permute(0, 1, 2, 4, 3, 5)
        return x.reshape(B, self.n)

    def Ut(self, y):
        return self._flat_measurement(y)

    U = Ut

    def forward(self, x):
        """``A x``: the mean over each ``r x r`` block."""
        xf = self._flat_input(x)
        B, r = xf.shape[0], self.r
        return xf.reshape(B, self.channels, self.h, r, self.w, r).mean((3, 5)).reshape(B, self.m)

    def row_norms_sq(self, n=None):
        return torch.full((self.m,), 1.0 / self.r**2, dtype=torch.float64)

    def Vt_range(self, x):
        # v_1^T x_block = sum(x_block) / r = r * mean(x_block)
        xf = self._flat_input(x)
        img = xf.reshape(xf.shape[0], self.channels, self.H, self.W)
        return F.avg_pool2d(img, self.r, divisor_override=self.r).reshape(xf.shape[0], self.m)

    def Ut_range(self, y, n=None):
        return self._flat_measurement(y)

    def V_range(self, w, n=None):
        # V add_zeros(w): every pixel of block j gets w_j / r
        B = w.shape[0]
        v = (w / self.r).reshape(B, self.channels, self.h, self.w)
        return F.interpolate(v, size=(self.H, self.W), mode="nearest").reshape(B, self.n)


class Colorization(SVDOperator):
    """Grayscale from ``channels`` colours: ``y[p] = (1/C) sum_c x[c, p]`` for every pixel p.

    Input ``(B, C, H, W)`` (or flat ``(B, C * H * W)``, channel-major); ``y`` is ``(B, H * W)``
    (or ``(B, 1, H, W)``).  ``size`` is optional; without it the pixel count is taken from
    each input, whose dimension 1 must still be the ``C`` channels (flat inputs excepted).

    ``A = (1/C) 1_C^T (x) I_P``: per pixel a ``1 x C`` block with SVD ``u = 1``,
    ``s = 1/sqrt(C)``, ``v_1 = 1/sqrt(C)``, completed by an orthogonal ``Q`` (``C x C``).
    ``V^T x`` is laid out as ``(C, P)``: component 0 (the ``v_1`` coefficient of every
    pixel, ``k = P`` of them) first.  ``A^+ y = C A^T y``: every channel of pixel p gets ``y[p]``.
    """

    def __init__(self, channels: int, size=None) -> None:
        super().__init__()
        self.channels = check_int("channels", channels, min=1)
        if size is not None:
            H, W = check_size2("size", size)
            self.in_shape, self.out_shape = (self.channels, H, W), (1, H, W)
            self.n = self.channels * H * W
            self.m = self.k = H * W
        self._Q = _block_basis(self.channels)
        self._Qt = self._Q.T.contiguous()

    def _sizes(self, n):
        if self.n is not None:
            return super()._sizes(n)
        if n is None or n % self.channels:
            raise ValueError(f"Colorization({self.channels}) needs inputs with a multiple of "
                             f"{self.channels} elements per sample, got {n}")
        P = n // self.channels
        return n, P, P

    def _input_size(self, y, n):
        if self.n is None and n is None and isinstance(y, torch.Tensor):
            return self.channels * math.prod(y.shape[1:])
        return super()._input_size(y, n)

    def _singulars64(self, n):
        k = self._sizes(self.n if self.n is not None else n)[2]
        return torch.full((k,), 1.0 / math.sqrt(self.channels), dtype=torch.float64)

    def _flat_input(self, x, what="x"):
        if self.n is None and isinstance(x, torch.Tensor) and x.dim() > 2 and x.shape[1] != self.channels:
            raise ValueError(f"Colorization({self.channels}): {what} must have {self.channels} channels "
                             f"(dimension 1), got shape {tuple(x.shape)}")
        return super()._flat_input(x, what)

    def _flat_measurement(self, y, n=None, what="y"):
        n = self.n if self.n is not None else n
        return self._flat(y, None if n is None else self._sizes(n)[1], what, self.out_shape)

    def _needles(self, v):  # (B, n) -> (B, C, P)
        n = self._sizes(v.shape[1])[0]
        return v.reshape(v.shape[0], self.channels, n // self.channels)

    def Vt(self, x):
        xc = self._needles(self._flat_input(x))
        return (self._cast("Qt", self._Qt, xc) @ xc).reshape(xc.shape[0], xc.shape[1] * xc.shape[2])

    def V(self, z):
        zc = self._needles(self._flat(z, self.n, "z"))
        return (self._cast("Q", self._Q, zc) @ zc).reshape(zc.shape[0], zc.shape[1] * zc.shape[2])

    def Ut(self, y):
        return self._flat_measurement(y)

    U = Ut

    def forward(self, x):
        """``A x``: the mean over channels of each pixel."""
        return self._needles(self._flat_input(x)).mean(1)

    def row_norms_sq(self, n=None):
        return self._singulars64(n) ** 2

    def Vt_range(self, x):
        return self._needles(self._flat_input(x)).sum(1) / math.sqrt(self.channels)

    def Ut_range(self, y, n=None):
        return self._flat_measurement(y, n)

    def V_range(self, w, n=None):
        B, P = w.shape
        return (w / math.sqrt(self.channels)).unsqueeze(1).expand(B, self.channels, P).reshape(B, self.channels * P)
