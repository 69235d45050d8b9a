"""Pixel-wise and block-wise measurement operators with closed-form SVDs.

Each class states the matrix ``A`` it applies and its SVD ``A = U diag(S) V^T``; the
conventions (flat ``(B, n)`` vectors, first ``k`` spectral entries paired with
``singulars()``) are those of :mod:`sdekit.inverse.base`.

=================  =====================================  ===========================
operator           A                                      S
=================  =====================================  ===========================
Denoising          I_n                                    1 (n of them)
DenseOperator      any m x n matrix                       torch.linalg.svd, exact
Inpainting         rows of I_n at the kept pixels         1 (m of them)
SuperResolution    block mean over r x r blocks           1/r (one per block)
Colorization       mean over the C channels of a pixel    1/sqrt(C) (one per pixel)
=================  =====================================  ===========================
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .base import SVDOperator, as_size, check_channels

__all__ = ["Denoising", "DenseOperator", "Inpainting", "SuperResolution", "Colorization"]


class Denoising(SVDOperator):
    """``A = I_n``: ``y = x + noise``.  ``U = V = I``, ``S = 1``.

    ``n`` (elements per sample) is optional; without it the operator takes the size
    of each input.
    """

    def __init__(self, n: int | None = None) -> None:
        super().__init__()
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            raise ValueError(f"n must be a positive int or None, got {n!r}")
        self.n = self.m = self.k = n

    def _sizes(self, n):
        if self.n is not None:
            return super()._sizes(n)
        return n, n, n

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

    __call__ = forward

    def adjoint(self, y, n=None):
        return self._flat(y, self.n, "y")

    pinv = adjoint

    def row_norms_sq(self, n=None):
        return self._singulars64(n)

    def _Vt_range(self, x):
        return self._flat(x, self.n, "x")

    def _Ut_range(self, y, n=None):
        return self._flat(y, self.n if self.n is not None else n, "y")

    def _V_range(self, w, n=None):
        return w


class DenseOperator(SVDOperator):
    """Any ``m x n`` matrix ``A`` given densely; acts on ``(B, n)``.

    ``A = U diag(S) V^T`` from ``torch.linalg.svd(A, full_matrices=True)`` in float64,
    computed once.  ``k = min(m, n)``; singular values are kept exactly as computed
    (none are zeroed).  For small problems and as a test oracle.
    """

    def __init__(self, A: torch.Tensor) -> None:
        super().__init__()
        A = torch.as_tensor(A)
        if A.dim() != 2 or A.shape[0] == 0 or A.shape[1] == 0:
            raise ValueError(f"A must be a non-empty 2-D matrix, got shape {tuple(A.shape)}")
        if not torch.isfinite(A).all():
            raise ValueError("A must be finite")
        self.A64 = A.detach().to("cpu", torch.float64)
        self._eps = torch.finfo(A.dtype).eps if A.is_floating_point() else torch.finfo(torch.float64).eps
        self.m, self.n = self.A64.shape
        self.k = min(self.m, self.n)
        self.in_shape = (self.n,)
        U, S, Vh = torch.linalg.svd(self.A64, full_matrices=True)
        self._U, self._S, self._Vh = U, S, Vh
        # transposes stored once (the casts per dtype/device are cached from these)
        self._V, self._Ut, self._At = Vh.T.contiguous(), U.T.contiguous(), self.A64.T.contiguous()

    def _singulars64(self, n):
        return self._S

    def Vt(self, x):
        return self._flat(x, self.n, "x") @ self._cast("V", self._V, x)

    def V(self, z):
        return self._flat(z, self.n, "z") @ self._cast("Vh", self._Vh, z)

    def Ut(self, y):
        return self._flat(y, self.m, "y") @ self._cast("U", self._U, y)

    def U(self, u):
        return self._flat(u, self.m, "u") @ self._cast("Ut", self._Ut, u)

    def forward(self, x):
        """``A x`` with the stored dense ``A``."""
        return self._flat(x, self.n, "x") @ self._cast("At", self._At, x)

    __call__ = forward

    def row_norms_sq(self, n=None):
        """``diag(A A^T)``; ValueError unless ``|(A A^T)_ij| <= 100 n eps max_i (A A^T)_ii`` off the
        diagonal (``eps`` of the dtype ``A`` was given in).  Checked once, then cached."""
        d = self._cache.get("row_norms_sq")
        if d is None:
            G = self.A64 @ self.A64.T
            d = torch.diagonal(G).clone()
            off = (G - torch.diag(d)).abs().max()
            if off > 100 * self.n * self._eps * d.max():
                raise ValueError(f"A is not row-orthogonal: max |(A A^T)_ij|, i != j, is {off:.3g} "
                                 f"(max diagonal {d.max():.3g})")
            self._cache["row_norms_sq"] = d
        return d


class Inpainting(SVDOperator):
    """Keeps the pixels where ``mask`` is 1: ``A = I_n[kept, :]`` (``m`` = number kept).

    ``mask``: 0/1 (or bool) tensor of shape ``(H, W)`` (same for every channel) or
    ``(channels, H, W)``.  Input ``(B, channels, H, W)``; ``y = x.flatten(1)[:, kept]``
    in C order.  SVD: ``U = I_m``, ``S = 1``, ``V^T x = [x_kept, x_missing]``.
    """

    def __init__(self, mask: torch.Tensor, channels: int) -> None:
        super().__init__()
        channels = check_channels(channels)
        mask = torch.as_tensor(mask)
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
        self.kept = torch.nonzero(flat).reshape(-1)
        self.missing = torch.nonzero(~flat).reshape(-1)
        self.n = flat.numel()
        self.m = self.k = self.kept.numel()
        self._perm = torch.cat([self.kept, self.missing])
        self._inv = torch.argsort(self._perm)

    def _singulars64(self, n):
        return torch.ones(self.m, dtype=torch.float64)

    def Vt(self, x):
        xf = self._flat(x, self.n, "x")
        return xf.index_select(1, self._index("_perm", xf))

    def V(self, z):
        zf = self._flat(z, self.n, "z")
        return zf.index_select(1, self._index("_inv", zf))

    def Ut(self, y):
        return self._flat(y, self.m, "y")

    U = Ut

    def forward(self, x):
        """``A x = x[kept]`` (boolean-mask selection)."""
        xf = self._flat(x, self.n, "x")
        return xf.index_select(1, self._index("kept", xf))

    __call__ = forward

    def row_norms_sq(self, n=None):
        return self._singulars64(n)

    def _Vt_range(self, x):
        return self.forward(x)

    def _Ut_range(self, y, n=None):
        return self._flat(y, self.m, "y")

    def _V_range(self, w, n=None):
        out = w.new_zeros(w.shape[0], self.n)
        return out.index_copy_(1, self._index("kept", w), w)


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
    by r; ``y`` is ``(B, channels * H/r * W/r)`` in C order.

    ``A`` is block diagonal with one ``1 x r^2`` block ``(1/r^2) 1^T`` per output pixel,
    whose SVD is closed form: ``u = 1``, ``s = 1/r``, ``v_1 = 1/r`` (all ones over r),
    completed by an orthogonal basis ``Q`` (``r^2 x r^2``, first column ``v_1``).
    ``V^T x`` lists the ``v_1`` coefficient of every block first (``k = m`` of them,
    C order over ``(c, i, j)``), then the other ``r^2 - 1`` coefficients, i.e. the
    spectral vector is laid out as ``(r^2, C, H/r, W/r)``.
    """

    def __init__(self, factor: int, channels: int, size) -> None:
        super().__init__()
        if isinstance(factor, bool) or not isinstance(factor, int) or factor <= 0:
            raise ValueError(f"factor must be a positive int, got {factor!r}")
        self.channels = check_channels(channels)
        self.H, self.W = as_size(size)
        if self.H % factor or self.W % factor:
            raise ValueError(f"size {(self.H, self.W)} is not divisible by factor {factor}")
        self.r = factor
        self.h, self.w = self.H // factor, self.W // factor
        self.in_shape = (self.channels, self.H, self.W)
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
        xf = self._flat(x, self.n, "x")
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
        return self._flat(y, self.m, "y")

    U = Ut

    def forward(self, x):
        """``A x``: the mean over each ``r x r`` block."""
        xf = self._flat(x, self.n, "x")
        B, r = xf.shape[0], self.r
        return xf.reshape(B, self.channels, self.h, r, self.w, r).mean((3, 5)).reshape(B, self.m)

    __call__ = forward

    def row_norms_sq(self, n=None):
        return torch.full((self.m,), 1.0 / self.r**2, dtype=torch.float64)

    def _Vt_range(self, x):
        # v_1^T x_block = sum(x_block) / r = r * mean(x_block)
        xf = self._flat(x, self.n, "x")
        img = xf.reshape(xf.shape[0], self.channels, self.H, self.W)
        return F.avg_pool2d(img, self.r, divisor_override=self.r).reshape(xf.shape[0], self.m)

    def _Ut_range(self, y, n=None):
        return self._flat(y, self.m, "y")

    def _V_range(self, w, n=None):
        # V add_zeros(w): every pixel of block j gets w_j / r
        B = w.shape[0]
        v = (w / self.r).reshape(B, self.channels, self.h, self.w)
        return F.interpolate(v, size=(self.H, self.W), mode="nearest").reshape(B, self.n)


class Colorization(SVDOperator):
    """Grayscale from ``channels`` colours: ``y[p] = (1/C) sum_c x[c, p]`` for every pixel p.

    Input ``(B, C, H, W)`` (or ``(B, C * H * W)``); ``y`` is ``(B, H * W)``.  ``size``
    is optional; without it the pixel count is taken from each input.

    ``A = (1/C) 1_C^T (x) I_P``: per pixel a ``1 x C`` block with SVD ``u = 1``,
    ``s = 1/sqrt(C)``, ``v_1 = 1/sqrt(C)``, completed by an orthogonal ``Q`` (``C x C``).
    ``V^T x`` is laid out as ``(C, P)``: component 0 (the ``v_1`` coefficient of every
    pixel, ``k = P`` of them) first.
    """

    def __init__(self, channels: int, size=None) -> None:
        super().__init__()
        self.channels = check_channels(channels)
        if size is not None:
            H, W = as_size(size)
            self.in_shape = (self.channels, H, W)
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

    def _singulars64(self, n):
        k = self._sizes(self.n if self.n is not None else n)[2]
        return torch.full((k,), 1.0 / math.sqrt(self.channels), dtype=torch.float64)

    def _needles(self, x, what):  # -> (B, C, P)
        xf = self._flat(x, self.n, what)
        n = self._sizes(xf.shape[1])[0]
        return xf.reshape(xf.shape[0], self.channels, n // self.channels)

    def Vt(self, x):
        xc = self._needles(x, "x")
        return (self._cast("Qt", self._Qt, xc) @ xc).reshape(xc.shape[0], -1)

    def V(self, z):
        zc = self._needles(z, "z")
        return (self._cast("Q", self._Q, zc) @ zc).reshape(zc.shape[0], -1)

    def Ut(self, y):
        return self._flat(y, self.m, "y")

    U = Ut

    def forward(self, x):
        """``A x``: the mean over channels of each pixel."""
        return self._needles(x, "x").mean(1)

    __call__ = forward

    def row_norms_sq(self, n=None):
        return self._singulars64(n) ** 2

    def _Vt_range(self, x):
        return self._needles(x, "x").sum(1) / math.sqrt(self.channels)

    def adjoint(self, y, n=None):
        """``A^T y``: every channel of pixel p gets ``y[p] / C``."""
        n = self.n if self.n is not None else n
        yf = self._flat(y, None if n is None else self._sizes(n)[1], "y")
        B, P = yf.shape
        return (yf / self.channels).unsqueeze(1).expand(B, self.channels, P).reshape(B, -1)

    def pinv(self, y, n=None):
        """``A^+ y = A^T (A A^T)^-1 y``: every channel of pixel p gets ``y[p]``."""
        return self.adjoint(y, n) * self.channels

    def _Ut_range(self, y, n=None):
        n = self.n if self.n is not None else n
        return self._flat(y, None if n is None else self._sizes(n)[1], "y")

    def _V_range(self, w, n=None):
        B, P = w.shape
        return (w / math.sqrt(self.channels)).unsqueeze(1).expand(B, self.channels, P).reshape(B, -1)
