"""The sensing matrices of the QCS-SGM+ experiments (Meng & Kabashima, AAAI 2024, Sec. 5), seeded.

* :func:`ill_conditioned_matrix`: ``A = U diag(S) V^T`` with Haar-distributed orthogonal ``U``
  (``m x m``) and ``V`` (``n x n``) and singular values in geometric progression,
  ``S_i / S_{i+1} = kappa^(1/M)``, ``M = min(m, n)`` (so ``S_1 / S_M = kappa^((M-1)/M)``),
  scaled so that ``||A||_F^2 = n`` (the Frobenius norm of an i.i.d. ``N(0, 1/m)`` matrix).  The
  paper writes the SVD as ``V diag(s) U^T``; the names here follow sdekit's ``U diag(S) V^T``.
  The factors are kept exactly as drawn: the operator's SVD is not recomputed.
* :func:`correlated_matrix`: ``A = R_L H R_R`` with ``H`` i.i.d. ``N(0, 1/m)``, ``R_L`` and ``R_R``
  the symmetric square roots of the Toeplitz matrices ``(rho^|i-j|)`` of sizes ``m`` and ``n``
  (an AR(1) correlation between rows and between columns); its SVD is computed once in float64.

Both return a :class:`sdekit.inverse.DenseOperator` (``forward`` uses the dense matrix, every
other method the float64 SVD).  Haar sampling: QR of a Gaussian matrix with the signs of
``diag(R)`` folded into ``Q`` (Mezzadri 2007).
"""
from __future__ import annotations

import torch

from .operators import DenseOperator

__all__ = ["haar_orthogonal", "ill_conditioned_matrix", "correlated_matrix", "toeplitz_sqrt"]


def _check_sizes(m, n) -> tuple[int, int]:
    for v, name in ((m, "m"), (n, "n")):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return m, n


def _generator(seed) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def haar_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-distributed ``n x n`` orthogonal matrix (float64): ``Q diag(sign(diag R))`` of ``QR(G)``."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


class _FactoredDense(DenseOperator):
    """A ``DenseOperator`` built from exact factors ``U``, ``S``, ``V`` (no SVD recomputed)."""

    def __init__(self, U: torch.Tensor, S: torch.Tensor, V: torch.Tensor) -> None:
        m, n, k = U.shape[0], V.shape[0], S.numel()
        A = U[:, :k] @ (S[:, None] * V[:, :k].T)
        super().__init__(A)
        self._U, self._S, self._Vh = U, S, V.T.contiguous()
        self._V, self._Ut = V.contiguous(), U.T.contiguous()


def ill_conditioned_matrix(m: int, n: int, kappa: float, seed: int = 0) -> DenseOperator:
    """``A = U diag(S) V^T``, Haar ``U``, ``V``, ``S_i / S_{i+1} = kappa^(1/min(m, n))``, ``||A||_F^2 = n``."""
    m, n = _check_sizes(m, n)
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not 1 <= kappa < float("inf"):
        raise ValueError(f"kappa must be a finite number >= 1, got {kappa!r}")
    g = _generator(seed)
    U, V = haar_orthogonal(m, g), haar_orthogonal(n, g)
    M = min(m, n)
    S = float(kappa) ** (-torch.arange(M, dtype=torch.float64) / M)
    S = S * (n / (S * S).sum()).sqrt()
    return _FactoredDense(U, S, V)


def toeplitz_sqrt(n: int, rho: float) -> torch.Tensor:
    """The symmetric square root of the ``n x n`` Toeplitz matrix ``(rho^|i-j|)`` (float64, by ``eigh``)."""
    i = torch.arange(n, dtype=torch.float64)
    T = float(rho) ** (i[:, None] - i[None, :]).abs()
    w, Q = torch.linalg.eigh(T)
    R = (Q * w.clamp_min(0).sqrt()) @ Q.T
    return (R + R.T) / 2


def correlated_matrix(m: int, n: int, rho: float, seed: int = 0) -> DenseOperator:
    """``A = R_L H R_R``: ``H`` i.i.d. ``N(0, 1/m)``, ``R_L``, ``R_R`` square roots of Toeplitz ``rho^|i-j|``."""
    m, n = _check_sizes(m, n)
    if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not 0 <= rho < 1:
        raise ValueError(f"rho must be a number in [0, 1), got {rho!r}")
    g = _generator(seed)
    H = torch.randn(m, n, generator=g, dtype=torch.float64) / m ** 0.5
    return DenseOperator(toeplitz_sqrt(m, rho) @ H @ toeplitz_sqrt(n, rho))
