"""Walsh-Hadamard compressed sensing: a row subset of the orthonormal Hadamard transform.

For ``P = H W`` pixels (a power of two) let ``W_P = H_P / sqrt(P)`` be the orthonormal
Sylvester-ordered Hadamard matrix (``H_1 = [1]``, ``H_2p = [[H_p, H_p], [H_p, -H_p]]``);
``W_P`` is symmetric and its own inverse.  With ``rows`` a set of ``p`` distinct row
indices, each channel is measured as

    y_c = W_P[rows, :] x_c,        A = I_C (x) W_P[rows, :]       (m = C p)

so ``A A^T = I_m``: A is row-orthonormal (suits QCS-SGM).  SVD: ``U = I_m``, ``S = 1``,
``V^T x = [ (W_P x_c)[rows] for all c,  (W_P x_c)[other rows] for all c ]``.

The transform itself runs as two matmuls: with ``P = a b`` (a, b powers of two),
``H_P = H_a (x) H_b``, so for the pixels of a channel read as an ``a x b`` matrix X,
``H_P x = vec(H_a X H_b)`` — ``O(P (a + b))`` work, dense-GEMM friendly on a GPU.
"""
from __future__ import annotations

import math

import torch

from .._checks import check_int, check_seed, check_size2, is_int
from .base import SVDOperator

__all__ = ["WalshHadamardCS", "sylvester_hadamard"]


def sylvester_hadamard(p: int) -> torch.Tensor:
    """The ``p x p`` (unnormalised, +-1) Sylvester Hadamard matrix, float64."""
    p = check_int("p", p, min=1)
    if p & (p - 1):
        raise ValueError(f"Hadamard order must be a power of two, got {p}")
    H = torch.ones(1, 1, dtype=torch.float64)
    while H.shape[0] < p:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H


class WalshHadamardCS(SVDOperator):
    """``A = I_C (x) W_P[rows, :]``: ``p`` Walsh-Hadamard coefficients per channel.

    ``size = (H, W)`` (or an int) with ``H W`` a power of two; ``rows`` is either a
    1-D integer tensor (or sequence) of distinct indices in ``[0, H W)`` or an int ``p``, in
    which case ``p`` rows are drawn uniformly without replacement with ``torch.Generator``
    seeded by ``seed`` (an int in ``[0, 2**64)``).  A boolean mask is refused (its 0/1 values
    are not row indices: pass ``torch.nonzero(mask).flatten()``).  Input ``(B, C, H, W)``;
    ``y`` is ``(B, C * p)`` laid out as ``(C, p)``.
    """

    def __init__(self, channels: int, size, rows, seed: int = 0) -> None:
        super().__init__()
        self.channels = check_int("channels", channels, min=1)
        self.H, self.W = check_size2("size", size)
        if seed is None:  # rows are drawn reproducibly; there is no "random" default
            raise TypeError("seed must be an int in [0, 2**64 - 1] (the rows are drawn from it), got None")
        seed = check_seed(seed)
        P = self.H * self.W
        if P & (P - 1):
            raise ValueError(f"size (H, W) must have H * W a power of two, got {self.H} * {self.W} = {P}")
        if is_int(rows) or isinstance(rows, bool):  # a count (check_int refuses a bool), else indices
            p = check_int("rows", rows, min=1)
            if p > P:
                raise ValueError(f"rows must be in [1, {P}], got {p}")
            g = torch.Generator().manual_seed(seed)
            rows = torch.randperm(P, generator=g)[:p].sort().values
        try:
            rows = torch.as_tensor(rows).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"rows must be an int or a 1-D integer tensor of indices, got {rows!r}") from None
        if rows.dtype == torch.bool:
            raise TypeError("rows is a boolean mask; pass its indices, torch.nonzero(mask).flatten()")
        if rows.is_floating_point() or rows.is_complex():
            raise TypeError(f"rows must be an int or a 1-D integer tensor of indices, got dtype {rows.dtype}")
        if rows.dim() != 1 or rows.numel() == 0:
            raise ValueError(f"rows must be a non-empty 1-D tensor of indices, got shape {tuple(rows.shape)}")
        rows = rows.long()
        if rows.min() < 0 or rows.max() >= P or torch.unique(rows).numel() != rows.numel():
            raise ValueError(f"rows must be distinct indices in [0, {P})")
        self.P, self.p = P, rows.numel()
        self.rows = rows
        rest = torch.ones(P, dtype=torch.bool)
        rest[rows] = False
        self._rest = torch.nonzero(rest).reshape(-1)
        self.in_shape, self.out_shape = (self.channels, self.H, self.W), (self.channels, self.p)
        self.n = self.channels * P
        self.m = self.k = self.channels * self.p
        a = 1 << (int(math.log2(P)) // 2)
        self._a, self._b = a, P // a
        self._Ha = sylvester_hadamard(self._a) / math.sqrt(self._a)
        self._Hb = sylvester_hadamard(self._b) / math.sqrt(self._b)

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        """``W_P`` applied to every channel: ``(B, n)`` -> ``(B, C, P)`` (its own inverse)."""
        B = x.shape[0]
        X = x.reshape(B, self.channels, self._a, self._b)
        Ha, Hb = self._cast("Ha", self._Ha, x), self._cast("Hb", self._Hb, x)
        return (Ha @ X @ Hb).reshape(B, self.channels, self.P)

    def _singulars64(self, n):
        return torch.ones(self.m, dtype=torch.float64)

    def Vt(self, x):
        t = self._transform(self._flat_input(x))
        B = t.shape[0]
        return torch.cat([t.index_select(2, self._index("rows", t)).reshape(B, self.m),
                          t.index_select(2, self._index("_rest", t)).reshape(B, self.n - self.m)], 1)

    def V(self, z):
        zf = self._flat(z, self.n, "z")
        B = zf.shape[0]
        t = zf.new_empty(B, self.channels, self.P)
        t.index_copy_(2, self._index("rows", zf), zf[:, : self.m].reshape(B, self.channels, self.p))
        t.index_copy_(2, self._index("_rest", zf), zf[:, self.m:].reshape(B, self.channels, self.P - self.p))
        return self._transform(t).reshape(B, self.n)

    def Ut(self, y):
        return self._flat_measurement(y)

    U = Ut

    def forward(self, x):
        """``A x``: the selected Walsh-Hadamard coefficients of each channel."""
        return self.Vt_range(x)

    def row_norms_sq(self, n=None):
        return torch.ones(self.m, dtype=torch.float64)

    def Vt_range(self, x):
        t = self._transform(self._flat_input(x))
        return t.index_select(2, self._index("rows", t)).reshape(t.shape[0], self.m)

    def Ut_range(self, y, n=None):
        return self._flat_measurement(y)

    def V_range(self, w, n=None):
        B = w.shape[0]
        t = w.new_zeros(B, self.channels, self.P)
        t.index_copy_(2, self._index("rows", w), w.reshape(B, self.channels, self.p))
        return self._transform(t).reshape(B, self.n)
