"""Separable blur with an exact implicit SVD.

Padding convention: **zero padding, 'same' output size**, cross-correlation — exactly
``F.conv2d(x, k_col[:, None] * k_row[None, :], padding="same", groups=C)``.  For a
1-D kernel ``k`` of length ``L`` along an axis of length ``N`` that is the ``N x N``
banded Toeplitz matrix

    K[i, i + j - (L - 1) // 2] = k[j]     (entries falling outside [0, N) dropped)

(for even ``L`` the extra tap sits on the right, as in PyTorch's ``'same'``).  The 2-D
blur of each channel ``X`` (``H x W``) is ``Y = K_col X K_row^T``, i.e.

    A = I_C (x) K_col (x) K_row.

Each 1-D matrix is decomposed once with ``torch.linalg.svd`` (float64),
``K = U_K diag(s_K) V_K^T``, so

    A = (I (x) U_col (x) U_row) diag(1 (x) s_col (x) s_row) (I (x) V_col (x) V_row)^T,

and ``V^T x`` is the per-channel image ``V_col^T X V_row`` (layout ``(C, H, W)``),
``k = m = n``.  No singular value is zeroed: ``U diag(S) V^T`` is the blur to
rounding (compare DDRM's ``Deblurring``, which zeroes 1-D singular values below 3e-2,
drops the last kernel tap and assumes 3 channels).  Singular values of a smooth kernel
can be tiny or exactly zero; the likelihood scores handle ``S = 0`` explicitly.
"""
from __future__ import annotations

import torch

from .base import SVDOperator, as_size, check_channels

__all__ = ["SeparableBlur", "blur_matrix_1d"]


def blur_matrix_1d(kernel: torch.Tensor, N: int) -> torch.Tensor:
    """The ``N x N`` float64 matrix of zero-padded 'same' cross-correlation with ``kernel``."""
    k = kernel.detach().to("cpu", torch.float64)
    L = k.numel()
    left = (L - 1) // 2
    K = torch.zeros(N, N, dtype=torch.float64)
    i = torch.arange(N)
    for j in range(L):
        col = i + j - left
        ok = (col >= 0) & (col < N)
        K[i[ok], col[ok]] = k[j]
    return K


def _check_kernel(k, name: str) -> torch.Tensor:
    k = torch.as_tensor(k)
    if k.dim() != 1 or k.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D kernel, got shape {tuple(k.shape)}")
    if not k.is_floating_point() or not torch.isfinite(k).all():
        raise ValueError(f"{name} must be finite floating point, got {k.dtype}")
    return k


class SeparableBlur(SVDOperator):
    """``y = conv2d(x, k_col k_row^T, padding='same')`` per channel, zero padding.

    ``k_row`` runs along each row (the W axis), ``k_col`` along each column (the H
    axis); ``size = (H, W)`` or an int.  ``A = I_C (x) K_col (x) K_row`` with the 1-D
    'same' zero-padded matrices of :func:`blur_matrix_1d`; exact SVD as in the module
    docstring.  E.g. a Gaussian blur: ``k = exp(-j^2 / (2 w^2))``, normalised.
    """

    def __init__(self, k_row, k_col, channels: int, size) -> None:
        super().__init__()
        self.k_row = _check_kernel(k_row, "k_row")
        self.k_col = _check_kernel(k_col, "k_col")
        self.channels = check_channels(channels)
        self.H, self.W = as_size(size)
        self.in_shape = (self.channels, self.H, self.W)
        self.n = self.m = self.k = self.channels * self.H * self.W
        self.K_col = blur_matrix_1d(self.k_col, self.H)
        self.K_row = blur_matrix_1d(self.k_row, self.W)
        self.U_col, self.s_col, Vh_col = torch.linalg.svd(self.K_col)
        self.U_row, self.s_row, Vh_row = torch.linalg.svd(self.K_row)
        self.V_col, self.V_row = Vh_col.T.contiguous(), Vh_row.T.contiguous()
        self._S2d = torch.outer(self.s_col, self.s_row)  # (H, W)
        T = lambda M: M.T.contiguous()  # noqa: E731
        self._mats = {
            "V_col^T": T(self.V_col), "V_col": self.V_col, "V_row": self.V_row, "V_row^T": T(self.V_row),
            "U_col^T": T(self.U_col), "U_col": self.U_col, "U_row": self.U_row, "U_row^T": T(self.U_row),
            "K_col": self.K_col, "K_row^T": T(self.K_row),
        }

    def _singulars64(self, n):
        return self._S2d.reshape(1, -1).expand(self.channels, -1).reshape(-1)

    def _img(self, v, what):
        vf = self._flat(v, self.n, what)
        return vf.reshape(vf.shape[0], self.channels, self.H, self.W)

    def _sandwich(self, left: str, v, right: str, what: str):
        """``L X R`` for every channel image X, with cached casts of the 1-D factors."""
        X = self._img(v, what)
        Lm = self._cast(left, self._mats[left], X)
        Rm = self._cast(right, self._mats[right], X)
        return (Lm @ X @ Rm).reshape(X.shape[0], self.n)

    def Vt(self, x):
        """``V_col^T X V_row`` per channel."""
        return self._sandwich("V_col^T", x, "V_row", "x")

    def V(self, z):
        """``V_col Z V_row^T`` per channel."""
        return self._sandwich("V_col", z, "V_row^T", "z")

    def Ut(self, y):
        return self._sandwich("U_col^T", y, "U_row", "y")

    def U(self, u):
        return self._sandwich("U_col", u, "U_row^T", "u")

    def forward(self, x):
        """``A x = K_col X K_row^T`` per channel (the 'same' zero-padded blur)."""
        return self._sandwich("K_col", x, "K_row^T", "x")

    __call__ = forward

    def _Vt_range(self, x):
        return self.Vt(x)

    def _Ut_range(self, y, n=None):
        return self.Ut(y)

    def _V_range(self, w, n=None):
        return self.V(w)
