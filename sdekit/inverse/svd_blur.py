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
``k = m = n``.  ``singulars()`` keeps every value: ``U diag(S) V^T`` is the blur to
rounding (compare DDRM's ``Deblurring``, which zeroes 1-D singular values below 3e-2,
drops the last kernel tap and assumes 3 channels).  A blur is often singular (the 3-tap
box blur ``[1, 1, 1] / 3`` whenever 3 divides ``N + 1``: ``K`` then has an eigenvalue
``(1 + 2 cos(2 pi / 3)) / 3 = 0``), and its zero singular values come out of the SVD at
rounding level; :meth:`~sdekit.inverse.SVDOperator.pinv` and the likelihood scores treat
those below ``max(m, n) eps max(S)`` as exact zeros (:mod:`sdekit.inverse.base`,
"Numerical rank").
"""
from __future__ import annotations

import torch

from .._checks import check_int, check_size2
from .base import SVDOperator

__all__ = ["SeparableBlur"]


def _blur_matrix_1d(kernel: torch.Tensor, N: int) -> torch.Tensor:
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
    if not isinstance(k, torch.Tensor):
        try:
            k = torch.as_tensor(k, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a 1-D real tensor, got {type(k).__name__}") from None
    if not k.is_floating_point():
        raise TypeError(f"{name} must be a real floating-point tensor, got {k.dtype}")
    if k.dim() != 1 or k.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D kernel, got shape {tuple(k.shape)}")
    if not torch.isfinite(k).all():
        raise ValueError(f"{name} must be finite")
    return k


class SeparableBlur(SVDOperator):
    """``y = conv2d(x, k_col k_row^T, padding='same')`` per channel, zero padding.

    ``k_row`` runs along each row (the W axis), ``k_col`` along each column (the H
    axis); ``size = (H, W)`` or an int.  ``A = I_C (x) K_col (x) K_row`` with the 1-D
    'same' zero-padded matrices ``K`` of the module docstring; exact SVD as there.
    E.g. a Gaussian blur: ``k = exp(-j^2 / (2 w^2))``, normalised.
    """

    def __init__(self, k_row, k_col, channels: int, size) -> None:
        super().__init__()
        self.k_row = _check_kernel(k_row, "k_row")
        self.k_col = _check_kernel(k_col, "k_col")
        self.channels = check_int("channels", channels, min=1)
        self.H, self.W = check_size2("size", size)
        self.in_shape = self.out_shape = (self.channels, self.H, self.W)
        self.n = self.m = self.k = self.channels * self.H * self.W
        K_col = _blur_matrix_1d(self.k_col, self.H)
        K_row = _blur_matrix_1d(self.k_row, self.W)
        U_col, s_col, Vh_col = torch.linalg.svd(K_col)
        U_row, s_row, Vh_row = torch.linalg.svd(K_row)
        self._S2d = torch.outer(s_col, s_row)  # (H, W)
        T = lambda M: M.T.contiguous()  # noqa: E731
        self._mats = {
            "V_col^T": Vh_col.contiguous(), "V_col": T(Vh_col), "V_row": T(Vh_row), "V_row^T": Vh_row.contiguous(),
            "U_col^T": T(U_col), "U_col": U_col, "U_row": U_row, "U_row^T": T(U_row),
            "K_col": K_col, "K_row^T": T(K_row),
        }

    def _singulars64(self, n):
        return self._S2d.reshape(1, -1).expand(self.channels, -1).reshape(-1)

    def _sandwich(self, left: str, v, right: str, what: str):
        """``L X R`` for every channel image X, with cached casts of the 1-D factors."""
        vf = self._flat(v, self.n, what, self.in_shape)
        X = vf.reshape(vf.shape[0], self.channels, self.H, self.W)
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

    def Vt_range(self, x):
        return self.Vt(x)

    def Ut_range(self, y, n=None):
        return self.Ut(y)

    def V_range(self, w, n=None):
        return self.V(w)
