"""``OUVE.from_sgmse`` against a transcription of sgmse's ``OUVESDE`` (sp-uhh/sgmse, sgmse/sdes.py)."""
import mpmath as mp
import numpy as np
import pytest
import torch

from sdekit import OUVE


class SgmseOUVESDE:
    """sgmse's ``OUVESDE.sde``, ``_mean``, ``_std`` as written there (4-D batches)."""

    def __init__(self, theta, sigma_min, sigma_max):
        self.theta, self.sigma_min, self.sigma_max = theta, sigma_min, sigma_max
        self.logsig = np.log(self.sigma_max / self.sigma_min)

    def sde(self, x, t, y):
        drift = self.theta * (y - x)
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        diffusion = sigma * np.sqrt(2 * self.logsig)
        return drift, diffusion

    def _mean(self, x0, t, y):
        exp_interp = torch.exp(-self.theta * t)[:, None, None, None]
        return exp_interp * x0 + (1 - exp_interp) * y

    def _std(self, t):
        sigma_min, theta, logsig = self.sigma_min, self.theta, self.logsig
        return torch.sqrt((sigma_min**2 * torch.exp(-2 * theta * t) * (torch.exp(2 * (theta + logsig) * t) - 1)
                           * logsig) / (theta + logsig))


@pytest.mark.parametrize("theta, sigma_min, sigma_max", [(1.5, 0.05, 0.5), (1.0, 0.01, 0.3), (3.0, 0.1, 1.2)])
def test_from_sgmse_matches_sgmse_ouvesde_coefficients_and_marginals(theta, sigma_min, sigma_max):
    ours, theirs = OUVE.from_sgmse(theta, sigma_min, sigma_max), SgmseOUVESDE(theta, sigma_min, sigma_max)
    g = torch.Generator().manual_seed(0)
    x0, x, y = (torch.randn(7, 2, 3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([0.0, 1e-6, 0.03, 0.2, 0.5, 0.9, 1.0], dtype=torch.float64)

    drift, diffusion = ours.sde(x, y, t)
    ref_drift, ref_diffusion = theirs.sde(x, t, y)
    assert torch.allclose(drift, ref_drift, rtol=1e-14, atol=1e-15)
    assert torch.allclose(diffusion, ref_diffusion, rtol=1e-14, atol=0)

    mean, std = ours.marginal_prob(x0, y, t)
    assert torch.allclose(mean, theirs._mean(x0, t, y), rtol=1e-14, atol=1e-15)
    # sgmse's exp(2 (theta + k) t) - 1 cancels for small t (1e-12 relative at t = 1e-6); sdekit's does not
    assert torch.allclose(std[1:], theirs._std(t)[1:], rtol=1e-11, atol=0)
    assert float(std[0]) == 0.0 == float(theirs._std(t)[0])
    mp.mp.dps = 40
    k = mp.log(mp.mpf(sigma_max) / sigma_min)
    exact = [mp.sqrt(mp.mpf(sigma_min) ** 2 * mp.exp(-2 * theta * mp.mpf(tt)) * mp.expm1(2 * (theta + k) * mp.mpf(tt))
                     * k / (theta + k)) for tt in t[1:].tolist()]
    assert std[1:].tolist() == pytest.approx([float(e) for e in exact], rel=2e-15, abs=0)


def test_from_sgmse_defaults_are_sgmse_defaults_and_bad_values_are_named():
    sde = OUVE.from_sgmse()
    assert sde.gamma == 1.5
    assert sde.sigma_max / sde.sigma_min == pytest.approx(10.0, rel=1e-15)
    with pytest.raises(ValueError, match="theta"):
        OUVE.from_sgmse(theta=-1.0)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        OUVE.from_sgmse(1.5, 0.5, 0.05)
