"""A Gaussian mixture whose score under any linear SDE, and whose posterior, are exact.

    p(x0) = sum_k w_k N(x0; mu_k, Sigma_k),   x0 in R^d.

Marginal of a linear SDE, ``x_t = mx(t) x0 + my(t) y + std(t) z`` (``y`` fixed): each
component moves on its own, so

    p_t(x) = sum_k w_k N(x; mx mu_k + my y, C_k),        C_k = mx^2 Sigma_k + std^2 I,
    grad log p_t(x) = -sum_k r_k(x) C_k^-1 (x - mx mu_k - my y),

with responsibilities ``r_k(x) = w_k N_k(x) / sum_j w_j N_j(x)``.  With
``Sigma_k = Q_k diag(l_k) Q_k^T`` (one eigendecomposition), ``C_k = Q_k diag(mx^2 l_k + std^2) Q_k^T``,
so every ``t`` costs two small matrix products per component and no factorisation.

Posterior for a linear-Gaussian measurement ``y = A x0 + n``, ``n ~ N(0, sigma^2 I)``: again a
mixture, component by component (the Kalman update),

    S_k = A Sigma_k A^T + sigma^2 I,   G_k = Sigma_k A^T S_k^-1,
    mu'_k = mu_k + G_k (y - A mu_k),   Sigma'_k = Sigma_k - G_k A Sigma_k,
    w'_k ∝ w_k N(y; A mu_k, S_k).

``Sigma'_k`` does not depend on ``y``; ``mu'_k`` and ``w'_k`` do, so a posterior holds one
row of means and weights per measurement.  Everything is float64.
"""
from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


class GaussianMixture:
    """``sum_k w_k N(mu_k, Sigma_k)`` in ``R^d``.

    Args:
        weights: ``(K,)``, or ``(B, K)`` for one mixture per row (a posterior per measurement).
        means: ``(K, d)`` or ``(B, K, d)``.
        covs: ``(K, d, d)``, symmetric positive definite, shared by every row.
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, covs: torch.Tensor):
        self.log_w = torch.log(weights / weights.sum(-1, keepdim=True)).to(torch.float64)
        self.means = means.to(torch.float64)
        self.covs = (0.5 * (covs + covs.transpose(-1, -2))).to(torch.float64)
        self.eigvals, self.eigvecs = torch.linalg.eigh(self.covs)  # (K, d), (K, d, d)
        if not bool((self.eigvals > 0).all()):
            raise ValueError("every covariance must be positive definite")
        self.K, self.d = self.covs.shape[0], self.covs.shape[-1]

    @property
    def batched(self) -> bool:
        return self.means.dim() == 3

    def to(self, device) -> "GaussianMixture":
        """The same mixture with its tensors on ``device``."""
        out = object.__new__(GaussianMixture)
        out.__dict__.update({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.__dict__.items()})
        return out

    def rows(self, index: torch.Tensor) -> "GaussianMixture":
        """The mixtures of rows ``index`` (e.g. ``repeat_interleave`` for many samples per measurement)."""
        out = object.__new__(GaussianMixture)
        out.__dict__.update(self.__dict__, log_w=self.log_w[index], means=self.means[index])
        return out

    # ------------------------------------------------------------------ moments
    def mean(self) -> torch.Tensor:
        """``sum_k w_k mu_k``: ``(d,)`` or ``(B, d)``."""
        return (self.log_w.exp()[..., None] * self.means).sum(-2)

    def variance(self) -> torch.Tensor:
        """Per-dimension variance ``sum_k w_k (diag Sigma_k + mu_k^2) - mean^2``."""
        second = torch.diagonal(self.covs, dim1=-2, dim2=-1) + self.means**2
        return (self.log_w.exp()[..., None] * second).sum(-2) - self.mean() ** 2

    # ------------------------------------------------------------------ sampling
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws (``(n, d)``); a batched mixture needs ``n == B`` and draws one per row."""
        w = self.log_w.exp()
        if self.batched:
            if n != self.means.shape[0]:
                raise ValueError(f"a batched mixture draws one sample per row ({self.means.shape[0]}), not {n}")
            k = torch.multinomial(w, 1, generator=generator).squeeze(1)
            mu = self.means[torch.arange(n), k]
        else:
            k = torch.multinomial(w, n, replacement=True, generator=generator)
            mu = self.means[k]
        z = torch.randn(n, self.d, generator=generator, dtype=torch.float64).to(mu.device)
        root = self.eigvecs[k] * self.eigvals[k].sqrt()[:, None, :]  # Q diag(sqrt l): (n, d, d)
        return mu + torch.einsum("nij,nj->ni", root, z)

    # ------------------------------------------------------------------ the SDE marginal
    def _components(self, x: torch.Tensor, mx: torch.Tensor, var: torch.Tensor, shift):
        """``u_k = Q_k^T (x - shift - mx mu_k)``, the eigenvalues ``c_k`` of ``C_k``, and the
        log responsibilities; all K bases are applied in one matmul."""
        B, K, d = x.shape[0], self.K, self.d
        mx, var = mx.to(x.dtype)[:, None, None], var.to(x.dtype)[:, None, None]
        q_all = self.eigvecs.permute(1, 0, 2).reshape(d, K * d)           # [Q_1 ... Q_K]
        mu_q = torch.einsum("...kd,kde->...ke", self.means, self.eigvecs)  # Q_k^T mu_k
        u = ((x - shift) @ q_all).reshape(B, K, d) - mx * mu_q             # (B, K, d)
        c = mx**2 * self.eigvals + var                                     # (B, K, d)
        log_pdf = -0.5 * ((u * u / c).sum(-1) + c.log().sum(-1) + d * LOG_2PI)
        return u, c, torch.log_softmax(self.log_w + log_pdf, dim=-1), q_all

    def marginal_score(self, x: torch.Tensor, mx: torch.Tensor, var: torch.Tensor,
                       shift: torch.Tensor | float = 0.0) -> torch.Tensor:
        """``grad log p_t(x)`` of ``x_t = mx x0 + shift + sqrt(var) z`` (module docstring).

        ``x``: ``(B, d)``; ``mx``, ``var``: ``(B,)``; ``shift`` (``my y``): ``(B, d)`` or 0.
        In the eigenbasis of ``Sigma_k``, ``C_k`` is diagonal with entries ``mx^2 l_k + var``.
        """
        u, c, log_resp, q_all = self._components(x, mx, var, shift)
        return -((log_resp.exp()[..., None] * u / c).reshape(x.shape[0], -1) @ q_all.T)

    def component(self, x: torch.Tensor) -> torch.Tensor:
        """The most responsible component of each row of ``x`` (``(B, d)``) at ``t = 0``."""
        one = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        return self._components(x, one, 0 * one, 0.0)[2].argmax(-1)

    def score_fn(self, sde, y: torch.Tensor | None = None):
        """``score_fn(x, t)`` for sdekit's samplers: the exact score of ``sde``'s marginal.

        ``x`` may be image-shaped ``(B, ...)``; ``y`` (shaped like ``x``) is used when the
        SDE drifts towards it (``my(t) y``).
        """
        def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            mx, my = sde.mean_coeffs(t, check=False)
            var = sde.marginal_var(t, check=False)
            flat = x.reshape(x.shape[0], -1)
            shift = my.to(x.dtype)[:, None] * y.reshape(flat.shape) if sde.has_y_drift else 0.0
            return self.marginal_score(flat, mx, var, shift).to(x.dtype).reshape(x.shape)

        return score

    # ------------------------------------------------------------------ posterior
    def posterior(self, A: torch.Tensor, sigma: float, y: torch.Tensor) -> "GaussianMixture":
        """``p(x0 | y)`` for ``y = A x0 + N(0, sigma^2 I)``, one mixture per row of ``y`` (``(M, m)``)."""
        if self.batched:
            raise ValueError("posterior of an unbatched prior only")
        A, y = A.to(torch.float64), y.to(torch.float64)
        S = A @ self.covs @ A.T + sigma**2 * torch.eye(A.shape[0], dtype=torch.float64)   # (K, m, m)
        L = torch.linalg.cholesky(S)
        G = torch.linalg.solve(S, A @ self.covs).transpose(-1, -2)                        # Sigma A^T S^-1
        covs = self.covs - G @ A @ self.covs
        resid = y.unsqueeze(1) - self.means @ A.T                                          # (M, K, m)
        means = self.means + torch.einsum("kdm,bkm->bkd", G, resid)
        white = torch.linalg.solve_triangular(L, resid.unsqueeze(-1), upper=False).squeeze(-1)
        log_norm = -0.5 * ((white**2).sum(-1) + A.shape[0] * LOG_2PI) \
            - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        return GaussianMixture(torch.softmax(self.log_w + log_norm, dim=-1), means, covs)


def patch_mixture(size: int = 4, amplitude: float = 0.5, length: float = 1.5) -> GaussianMixture:
    """Three kinds of ``size x size`` patch, each Gaussian with a smooth pixel covariance:

    * flat (weight 1/2): mean 0, std 0.3, squared-exponential correlation of length ``length``
      pixels (a random brightness that varies slowly);
    * horizontal edge (1/4): mean ``+amplitude`` above the middle, ``-amplitude`` below, std 0.15;
    * vertical edge (1/4): the same, left / right.

    Every covariance has ``0.02^2 I`` added (pixel noise), so all are well conditioned.
    """
    ii, jj = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pos = torch.stack([ii.flatten(), jj.flatten()], dim=1).to(torch.float64)
    dist2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    smooth = torch.exp(-dist2 / (2 * length**2))
    eye = torch.eye(size * size, dtype=torch.float64)
    half = (size - 1) / 2
    horizontal = amplitude * torch.sign(pos[:, 0] - half)
    vertical = amplitude * torch.sign(pos[:, 1] - half)
    means = torch.stack([torch.zeros(size * size, dtype=torch.float64), horizontal, vertical])
    covs = torch.stack([0.3**2 * smooth, 0.15**2 * smooth, 0.15**2 * smooth]) + 0.02**2 * eye
    return GaussianMixture(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64), means, covs)
