"""DMPS with a Gaussian prior, where everything is Gaussian and known in closed form.

Prior ``x0 ~ N(mu0, Sigma0)``; ``y = A x0 + N(0, sigma_y^2 I)``.  The exact prior score at
time t is ``-(s^2 Sigma0 + v I)^-1 (x - s mu0)`` (``x_t = s x0 + sqrt(v) z``), and DMPS's
pseudo-likelihood score is affine in ``x`` too, so every step of the sampler is an affine
map plus Gaussian noise: the mean and covariance of its output follow exactly from a
dense recursion (computed here with its own VP / VE formulas, not sdekit's).  The
samples must land within Monte Carlo error of those moments.  The exact posterior
``N(mu_p, Sigma_p)`` is *not* what DMPS samples (its ``p(x0 | x_t) ~= N(x_t/s, (std/s)^2 I)``
ignores the prior); the gap is documented by the assertions at the end of each test.
"""
import math

import pytest
import torch
from scipy.stats import chi2

from sdekit import VESDE
from sdekit.inverse import DMPS, DenseOperator, SuperResolution

from _problems import shared_vpsde

D64 = torch.float64
BETA_MIN, BETA_MAX = 0.1, 20.0


def vp_abar(t):
    return torch.exp(-(BETA_MIN * t + (BETA_MAX - BETA_MIN) * t * t / 2))


def problem(d=3, m=2, sigma_y=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    L = 0.6 * torch.randn(d, d, generator=g, dtype=D64)
    Sig0 = L @ L.T + 0.2 * torch.eye(d, dtype=D64)
    mu0 = torch.randn(d, generator=g, dtype=D64)
    A = torch.randn(m, d, generator=g, dtype=D64)
    A = A / torch.linalg.matrix_norm(A, 2)
    x0 = mu0 + torch.linalg.cholesky(Sig0) @ torch.randn(d, generator=g, dtype=D64)
    y = A @ x0 + sigma_y * torch.randn(m, generator=g, dtype=D64)
    return Sig0, mu0, A, y, sigma_y


def exact_posterior(Sig0, mu0, A, y, sigma_y):
    P = torch.linalg.inv(torch.linalg.inv(Sig0) + A.T @ A / sigma_y**2)
    return P @ (torch.linalg.solve(Sig0, mu0) + A.T @ y / sigma_y**2), P


def gaussian_prior_score(Sig0, mu0, scale_var):
    """Exact score of p_t = N(s mu0, s^2 Sigma0 + v I); ``scale_var(t) -> (s, v)``."""
    eye = torch.eye(len(mu0), dtype=D64)

    def score(x, t):
        s, v = scale_var(t[:1].to(D64))  # the solver passes one time for the whole batch
        C = s**2 * Sig0 + v * eye
        return -torch.linalg.solve(C, (x.to(D64) - s * mu0).T).T.to(x.dtype)

    return score


def dmps_moments(Sig0, mu0, A, y, sigma_y, ts, step_coeffs, scale_var, m0, C0, lam=1.0):
    """Mean and covariance after the DMPS chain, propagated exactly.

    ``step_coeffs(t, s) -> (a, S, N)``: the update ``x <- a x + S score + N z``;
    the posterior score is ``-M x + b`` with M, b from the prior and DMPS's likelihood.
    """
    d = len(mu0)
    eye = torch.eye(d, dtype=D64)
    mean, cov = m0.clone(), C0.clone()
    for t, s_next in zip(ts[:-1], ts[1:]):
        a, S, N = step_coeffs(t, s_next)
        s, v = scale_var(t)
        P = torch.linalg.inv(s**2 * Sig0 + v * eye)
        Cy = sigma_y**2 * torch.eye(A.shape[0], dtype=D64) + (v / s**2) * A @ A.T
        M = P + lam * A.T @ torch.linalg.solve(Cy, A) / s**2
        b = P @ (s * mu0) + lam * A.T @ torch.linalg.solve(Cy, y) / s
        K = a * eye - S * M
        mean = K @ mean + S * b
        cov = K @ cov @ K.T + N**2 * eye
    return mean, cov


def assert_within_monte_carlo_error(samples, mean, cov, p_fail=1e-6):
    """Hotelling-type check of the mean (chi^2_d) and whitened covariance entries (|z| < 5)."""
    N, d = samples.shape
    diff = samples.mean(0) - mean
    t2 = N * diff @ torch.linalg.solve(cov, diff)
    assert t2 < chi2.ppf(1 - p_fail, d), f"mean off by T^2 = {t2:.1f}"
    Lc = torch.linalg.cholesky(cov)
    W = torch.linalg.solve_triangular(Lc, torch.linalg.solve_triangular(Lc, torch.cov(samples.T), upper=False).T,
                                      upper=False)
    se = torch.full((d, d), math.sqrt(1 / N), dtype=D64) + torch.diag(torch.full((d,), math.sqrt(2 / N) -
                                                                                 math.sqrt(1 / N), dtype=D64))
    z = (W - torch.eye(d, dtype=D64)) / se
    assert z.abs().max() < 5, f"whitened covariance off by {z.abs().max():.1f} standard errors"
    return t2


def mahalanobis(a, b, cov):
    return float(torch.sqrt((a - b) @ torch.linalg.solve(cov, a - b)))


def test_dmps_ddpm_form_matches_its_own_gaussian_prediction_and_documents_the_posterior_gap():
    Sig0, mu0, A, y, sigma_y = problem()
    steps, N, t_eps = 40, 10000, 1e-3
    vp = shared_vpsde()
    scale_var = lambda t: (vp_abar(t).sqrt(), 1 - vp_abar(t))  # noqa: E731
    sampler = DMPS(vp, DenseOperator(A), sigma_y, steps=steps, t_eps=t_eps)  # solver="ddpm"
    x = sampler.sample(gaussian_prior_score(Sig0, mu0, scale_var), y.expand(N, -1).contiguous(), seed=7,
                       denoise=False)
    assert x.shape == (N, 3) and x.dtype == D64

    def ddpm(t, s):  # (x + beta score) / sqrt(alpha) + sqrt(beta) z, alpha = abar(t) / abar(s)
        alpha = vp_abar(t) / vp_abar(s)
        return 1 / alpha.sqrt(), (1 - alpha) / alpha.sqrt(), (1 - alpha).sqrt()

    ts = torch.linspace(1.0, t_eps, steps + 1, dtype=D64)
    d = 3
    m0, C0 = torch.zeros(d, dtype=D64), (1 - vp_abar(ts[0])) * torch.eye(d, dtype=D64)
    mean, cov = dmps_moments(Sig0, mu0, A, y, sigma_y, ts, ddpm, scale_var, m0, C0)
    assert_within_monte_carlo_error(x, mean, cov)

    # The gap to the exact posterior (Mahalanobis distance in posterior standard deviations; the
    # covariance as eigenvalues of Sigma_p^-1/2 Sigma Sigma_p^-1/2): with 40 steps DMPS's mean is
    # 0.41 posterior sigmas off and its covariance has eigenvalues 0.66..1.22 of the posterior's.
    # The gap is DMPS's approximation, not the 40 steps: at 500 steps it is 0.36 and 0.68..1.06.
    mu_p, Sig_p = exact_posterior(Sig0, mu0, A, y, sigma_y)

    def gap(mean, cov):
        Lp = torch.linalg.cholesky(Sig_p)
        W = torch.linalg.solve_triangular(Lp, torch.linalg.solve_triangular(Lp, cov, upper=False).T, upper=False)
        ev = torch.linalg.eigvalsh(W)
        return mahalanobis(mean, mu_p, Sig_p), float(ev.min()), float(ev.max())

    assert gap(mean, cov) == pytest.approx((0.412, 0.660, 1.221), abs=2e-3)
    ts_fine = torch.linspace(1.0, t_eps, 501, dtype=D64)
    assert gap(*dmps_moments(Sig0, mu0, A, y, sigma_y, ts_fine, ddpm, scale_var, m0, C0)) == pytest.approx(
        (0.362, 0.676, 1.063), abs=2e-3)
    # and the Monte Carlo test is sharp enough to tell DMPS from the exact posterior:
    # the exact posterior's mean is far outside DMPS's Monte Carlo error
    assert N * mahalanobis(mean, mu_p, cov) ** 2 > 10 * chi2.ppf(1 - 1e-6, 3)


def test_dmps_general_sde_form_ve_euler_maruyama_matches_its_prediction():
    Sig0, mu0, A, y, sigma_y = problem(seed=1)
    steps, N, t_eps, smin, smax = 30, 8000, 1e-5, 0.01, 5.0
    ve = VESDE(smin, smax)
    sig = lambda t: smin * (smax / smin) ** t  # noqa: E731
    scale_var = lambda t: (torch.ones((), dtype=D64), sig(t) ** 2)  # noqa: E731
    sampler = DMPS(ve, DenseOperator(A), sigma_y, steps=steps, solver="euler_maruyama", t_eps=t_eps)
    x = sampler.sample(gaussian_prior_score(Sig0, mu0, scale_var), y.expand(N, -1).contiguous(), seed=3,
                       denoise=False)

    def em(t, s):  # x + g^2 h score + g sqrt(h) z, g^2 = d sigma^2 / dt = 2 sigma^2 log(smax / smin)
        h = t - s
        g2 = 2 * sig(t) ** 2 * math.log(smax / smin)
        return torch.ones((), dtype=D64), g2 * h, (g2 * h).sqrt()

    ts = torch.linspace(1.0, t_eps, steps + 1, dtype=D64)
    m0, C0 = torch.zeros(3, dtype=D64), smax**2 * torch.eye(3, dtype=D64)
    mean, cov = dmps_moments(Sig0, mu0, A, y, sigma_y, ts, em, scale_var, m0, C0)
    assert_within_monte_carlo_error(x, mean, cov)


def test_dmps_with_lam_zero_samples_the_prior_chain_and_float32_runs():
    Sig0, mu0, A, y, sigma_y = problem(seed=2)
    vp = shared_vpsde()
    scale_var = lambda t: (vp_abar(t).sqrt(), 1 - vp_abar(t))  # noqa: E731
    sampler = DMPS(vp, DenseOperator(A), sigma_y, lam=0.0, steps=20)
    y32 = y.float().expand(4000, -1).contiguous()
    x = sampler.sample(gaussian_prior_score(Sig0, mu0, scale_var), y32, seed=5, denoise=False)
    assert x.dtype == torch.float32 and torch.isfinite(x).all()

    def ddpm(t, s):
        alpha = vp_abar(t) / vp_abar(s)
        return 1 / alpha.sqrt(), (1 - alpha) / alpha.sqrt(), (1 - alpha).sqrt()

    ts = torch.linspace(1.0, vp.t_eps, 21, dtype=D64)
    mean, cov = dmps_moments(Sig0, mu0, A, y, sigma_y, ts, ddpm, scale_var, torch.zeros(3, dtype=D64),
                             (1 - vp_abar(ts[0])) * torch.eye(3, dtype=D64), lam=0.0)
    assert_within_monte_carlo_error(x.double(), mean, cov)


@pytest.mark.parametrize("steps", [100, 1000])  # DMPS's default is 1000
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_posterior_score_with_the_solver_grid_agrees_with_evaluating_the_sde_to_a_few_ulp(dtype, steps):
    """``times=`` (what DMPS.sample passes) replaces the per-call SDE evaluation by a table lookup.
    At every grid time, in the solver's loop order, the score equals the evaluated one to within
    4 eps of its largest entry, the tolerance the docstring states (measured: at most 0.93 eps,
    float64 near t_eps, where vectorised and scalar exp/log differ by an ulp)."""
    op = SuperResolution(2, 3, 8)
    sampler = DMPS(shared_vpsde(), op, 0.05, steps=steps)
    g = torch.Generator().manual_seed(8)
    y = torch.randn(2, op.m, generator=g, dtype=dtype)
    x = torch.randn(2, 3, 8, 8, generator=g, dtype=dtype)
    times = sampler.solver.time_grid("cpu")[:-1].to(dtype)
    evaluated = sampler.posterior_score_fn(lambda v, t: -v, y, 192)
    looked_up = sampler.posterior_score_fn(lambda v, t: -v, y, 192, times=times)
    eps = torch.finfo(dtype).eps
    for t in times:
        tb = t.repeat(2)
        want = evaluated(x, tb)
        torch.testing.assert_close(looked_up(x, tb), want, rtol=0, atol=4 * eps * float(want.abs().max()))


def test_dmps_refuses_non_finite_or_non_float_measurements_naming_y():
    A = DenseOperator(torch.eye(2, 3, dtype=D64))
    sampler = DMPS(shared_vpsde(), A, 0.1, steps=2)
    with pytest.raises(ValueError, match="y holds non-finite values"):
        sampler.sample(lambda x, t: -x, torch.tensor([[0.0, float("nan")]], dtype=D64), seed=0)
    with pytest.raises(TypeError, match="y must be float32 or float64"):
        sampler.sample(lambda x, t: -x, torch.zeros(4, 2, dtype=torch.int64), seed=0)
    with pytest.raises(ValueError, match="x_T holds non-finite values"):
        sampler.sample(lambda x, t: -x, torch.zeros(1, 2, dtype=D64), x_T=torch.full((1, 3), float("nan"), dtype=D64))
    with pytest.raises(ValueError, match="seed must lie"):
        sampler.sample(lambda x, t: -x, torch.zeros(1, 2, dtype=D64), seed=2**64)
    with pytest.raises(ValueError, match="device='gpu'"):
        sampler.sample(lambda x, t: -x, torch.zeros(1, 2, dtype=D64), seed=0, device="gpu")


def test_dmps_denoise_leaves_the_noise_out_of_the_last_step_only():
    Sig0, mu0, A, y, sigma_y = problem(seed=3)
    steps, N = 20, 8000
    vp = shared_vpsde()
    scale_var = lambda t: (vp_abar(t).sqrt(), 1 - vp_abar(t))  # noqa: E731
    sampler = DMPS(vp, DenseOperator(A), sigma_y, steps=steps)
    score = gaussian_prior_score(Sig0, mu0, scale_var)
    x = sampler.sample(score, y.expand(N, -1).contiguous(), seed=11, denoise=True)
    ts = torch.linspace(1.0, vp.t_eps, steps + 1, dtype=D64)

    def ddpm_denoised(t, s):  # DDPM's step; z = 0 on the last one
        alpha = vp_abar(t) / vp_abar(s)
        return 1 / alpha.sqrt(), (1 - alpha) / alpha.sqrt(), (1 - alpha).sqrt() * float(s != ts[-1])

    mean, cov = dmps_moments(Sig0, mu0, A, y, sigma_y, ts, ddpm_denoised, scale_var, torch.zeros(3, dtype=D64),
                             (1 - vp_abar(ts[0])) * torch.eye(3, dtype=D64))
    assert_within_monte_carlo_error(x, mean, cov)
    # same seed: the chains agree up to the last step, which then differs by sqrt(beta) z
    yb = y.expand(64, -1).contiguous()
    _, plain = sampler.sample(score, yb, seed=11, return_trajectory=True, denoise=False)
    _, clean = sampler.sample(score, yb, seed=11, return_trajectory=True, denoise=True)
    torch.testing.assert_close(plain[:-1], clean[:-1], rtol=0, atol=0)
    beta = 1 - vp_abar(ts[-2]) / vp_abar(ts[-1])
    z = (plain[-1] - clean[-1]) / beta.sqrt()
    assert 0.7 < float(z.std()) < 1.3


def test_dmps_bad_arguments():
    A = DenseOperator(torch.eye(2, 3, dtype=D64))
    vp = shared_vpsde()

    class WithYDrift:
        has_y_drift = True

    with pytest.raises(ValueError, match="y-drift"):
        DMPS(WithYDrift(), A, 0.1)
    with pytest.raises(ValueError, match="sigma_y"):
        DMPS(vp, A, -0.1)
    with pytest.raises(ValueError, match="lam"):
        DMPS(vp, A, 0.1, lam=float("nan"))
    with pytest.raises(ValueError, match="solver"):
        DMPS(vp, A, 0.1, solver="heun")
    with pytest.raises(ValueError, match="y must have 2 elements"):
        DMPS(vp, A, 0.1, steps=2).sample(lambda x, t: -x, torch.zeros(4, 3, dtype=D64), seed=0)


def test_dmps_with_an_image_operator_uses_its_fast_paths_and_matches_the_prediction():
    """SuperResolution on a 1x4x4 image (d = 16) inside the sampler: the range-space fast paths
    (avg_pool2d, nearest upsampling) against the dense recursion built from the forward."""
    d = 16
    g = torch.Generator().manual_seed(4)
    L = 0.3 * torch.randn(d, d, generator=g, dtype=D64)
    Sig0 = L @ L.T + 0.3 * torch.eye(d, dtype=D64)
    mu0 = torch.randn(d, generator=g, dtype=D64)
    op = SuperResolution(2, 1, 4)
    A = op.forward(torch.eye(d, dtype=D64).reshape(d, 1, 4, 4)).T
    y = A @ mu0 + 0.1 * torch.randn(4, generator=g, dtype=D64)
    vp = shared_vpsde()
    scale_var = lambda t: (vp_abar(t).sqrt(), 1 - vp_abar(t))  # noqa: E731
    prior = gaussian_prior_score(Sig0, mu0, scale_var)
    steps, N = 25, 6000
    x = DMPS(vp, op, 0.1, steps=steps).sample(lambda x, t: prior(x.reshape(N, d), t).reshape(x.shape),
                                              y[None], seed=11, shape=(N, 1, 4, 4),
                                              denoise=False)
    assert x.shape == (N, 1, 4, 4)

    def ddpm(t, s):
        alpha = vp_abar(t) / vp_abar(s)
        return 1 / alpha.sqrt(), (1 - alpha) / alpha.sqrt(), (1 - alpha).sqrt()

    ts = torch.linspace(1.0, vp.t_eps, steps + 1, dtype=D64)
    mean, cov = dmps_moments(Sig0, mu0, A, y, 0.1, ts, ddpm, scale_var, torch.zeros(d, dtype=D64),
                             (1 - vp_abar(ts[0])) * torch.eye(d, dtype=D64))
    assert_within_monte_carlo_error(x.reshape(N, d), mean, cov)
