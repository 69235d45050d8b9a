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

import math

import torch

from .._checks import check_int, check_real_in, check_seed
from .operators import DenseOperator

__all__ = ["haar_orthogonal", "ill_conditioned_matrix", "correlated_matrix", "toeplitz_sqrt"]


def _generator(seed) -> torch.Generator:
    """``torch.Generator`` seeded by ``seed``, an int in ``[0, 2**64 - 1]`` (``None`` refused: the matrices are
    drawn reproducibly)."""
    if seed is None:
        raise TypeError("seed must be an int in [0, 2**64 - 1] (the matrix is drawn from it), got None")
    return torch.Generator().manual_seed(check_seed(seed))


def haar_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """A Haar-distributed ``n x n`` orthogonal matrix (float64): ``Q diag(sign(diag R))`` of ``QR(G)``."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def ill_conditioned_matrix(m: int, n: int, kappa: float, seed: int = 0) -> DenseOperator:
    """``A = U diag(S) V^T``, Haar ``U``, ``V``, ``S_i / S_{i+1} = kappa^(1/min(m, n))``, ``||A||_F^2 = n``."""
    m, n = check_int("m", m, min=1), check_int("n", n, min=1)
    kappa = check_real_in("kappa", kappa, 1.0, math.inf, closed="left")
    g = _generator(seed)
    U, V = haar_orthogonal(m, g), haar_orthogonal(n, g)
    M = min(m, n)
    S = kappa ** (-torch.arange(M, dtype=torch.float64) / M)
    S = S * (n / (S * S).sum()).sqrt()
    return DenseOperator._from_factors(U, S, V)


def toeplitz_sqrt(n: int, rho: float) -> torch.Tensor:
    """The symmetric square root of the ``n x n`` Toeplitz matrix ``(rho^|i-j|)`` (float64, by ``eigh``)."""
    i = torch.arange(n, dtype=torch.float64)
    T = float(rho) ** (i[:, None] - i[None, :]).abs()
    w, Q = torch.linalg.eigh(T)
    R = (Q * w.clamp_min(0).sqrt()) @ Q.T
    return (R + R.T) / 2


def correlated_matrix(m: int, n: int, rho: float, seed: int = 0) -> DenseOperator:
    """``A = R_L H R_R``: ``H`` i.i.d. ``N(0, 1/m)``, ``R_L``, ``R_R`` square roots of Toeplitz ``rho^|i-j|``."""
    m, n = check_int("m", m, min=1), check_int("n", n, min=1)
    rho = check_real_in("rho", rho, 0.0, 1.0, closed="left")
    g = _generator(seed)
    H = torch.randn(m, n, generator=g, dtype=torch.float64) / m ** 0.5
    return DenseOperator(toeplitz_sqrt(m, rho) @ H @ toeplitz_sqrt(n, rho))
