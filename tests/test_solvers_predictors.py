"""The ancestral, none and probability-flow reverse-diffusion predictors and the annealed Langevin corrector.

Each against a direct transcription of the peer's update (score_sde's ``sampling.py`` /
``sde_lib.py``, sgmse's ``sampling/correctors.py`` / ``sdes.py``) run on the same inputs and the
same normals (sdekit's counter-based ones, fed to the transcription word by word), and against the
exact marginal of Gaussian data by Monte Carlo with confidence bounds (5 standard errors) around
the chain's own exact moments, which a separate recursion written here gives.
"""
import math

import pytest
import torch

from _problems import MU, S0, exact_x_T, gaussian_score, gaussian_truth, reverse_moments
from sdekit import OUVE, VESDE
from sdekit.kernels.rng import philox_normal_like
from sdekit.solvers import (AncestralDDPM, AncestralSampling, AnnealedLangevinCorrector, NonePredictor,
                            PredictorCorrector, ReverseDiffusion)
from sdekit.solvers.registry import CORRECTORS, SAMPLERS

F64 = torch.float64
SIGMA_MIN, SIGMA_MAX = 0.01, 50.0
BETA_MIN, BETA_MAX = 0.1, 20.0


@pytest.fixture(scope="module")
def ve():
    return VESDE(SIGMA_MIN, SIGMA_MAX)


def ve_sigma(t):
    """score_sde's VESDE: ``std(t) = sigma_min (sigma_max / sigma_min)^t``."""
    return SIGMA_MIN * (SIGMA_MAX / SIGMA_MIN) ** t


def vp_beta(t, s):
    """``1 - alpha`` of VP(0.1, 20) from ``s`` to ``t`` by hand: ``alpha = exp(-int_s^t beta)``."""
    return 1.0 - torch.exp(-(BETA_MIN * (t - s) + (BETA_MAX - BETA_MIN) * (t * t - s * s) / 2))


# ---------------------------------------------------------------------- transcriptions of the peers
def score_sde_vesde_ancestral(x, score, sigma, adjacent_sigma, noise):
    """score_sde ``AncestralSamplingPredictor.vesde_update_fn`` (``sampling.py``), the discrete
    sigmas given instead of looked up by timestep."""
    x_mean = x + score * (sigma ** 2 - adjacent_sigma ** 2)[:, None, None, None]
    std = torch.sqrt((adjacent_sigma ** 2 * (sigma ** 2 - adjacent_sigma ** 2)) / (sigma ** 2))
    x = x_mean + std[:, None, None, None] * noise
    return x, x_mean


def score_sde_vpsde_ancestral(x, score, beta, noise):
    """score_sde ``AncestralSamplingPredictor.vpsde_update_fn``, ``beta`` given."""
    x_mean = (x + beta[:, None, None, None] * score) / torch.sqrt(1. - beta)[:, None, None, None]
    x = x_mean + torch.sqrt(beta)[:, None, None, None] * noise
    return x, x_mean


def score_sde_reverse_diffusion(x, f, G, score, noise, probability_flow):
    """score_sde ``ReverseDiffusionPredictor.update_fn`` on ``sde.reverse(score_fn, probability_flow)``'s
    ``discretize`` (``sde_lib.py``), the forward ``discretize``'s ``(f, G)`` given."""
    rev_f = f - G[:, None, None, None] ** 2 * score * (0.5 if probability_flow else 1.)
    rev_G = torch.zeros_like(G) if probability_flow else G
    x_mean = x - rev_f
    x = x_mean + rev_G[:, None, None, None] * noise
    return x, x_mean


def sgmse_ouve_std(t, theta, sigma_min, sigma_max):
    """sgmse ``OUVESDE._std`` (``sdes.py``)."""
    logsig = math.log(sigma_max / sigma_min)
    return torch.sqrt((sigma_min**2 * torch.exp(-2 * theta * t) * (torch.exp(2 * (theta + logsig) * t) - 1) * logsig)
                      / (theta + logsig))


def sgmse_ald_update(x, t, y, score_fn, std, snr, noises):
    """sgmse ``AnnealedLangevinDynamics.update_fn`` (``sampling/correctors.py``), ``n_steps = len(noises)``
    and score_sde's with ``std`` times ``sqrt(alpha)`` folded in (its only difference)."""
    for noise in noises:
        grad = score_fn(x, t, y)
        step_size = (snr * std) ** 2 * 2
        x_mean = x + step_size[:, None, None, None] * grad
        x = x_mean + noise * torch.sqrt(step_size * 2)[:, None, None, None]
    return x, x_mean


def score_sde_langevin_update(x, t, score_fn, snr, alpha, noises):
    """score_sde ``LangevinCorrector.update_fn``, ``n_steps = len(noises)``."""
    for noise in noises:
        grad = score_fn(x, t)
        grad_norm = torch.norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
        noise_norm = torch.norm(noise.reshape(noise.shape[0], -1), dim=-1).mean()
        step_size = (snr * noise_norm / grad_norm) ** 2 * 2 * alpha
        x_mean = x + step_size[:, None, None, None] * grad
        x = x_mean + torch.sqrt(step_size * 2)[:, None, None, None] * noise
    return x, x_mean


def _image_batch(seed, shape=(3, 2, 4, 4)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---------------------------------------------------------------------- ancestral sampling
def test_ancestral_sampling_run_equals_score_sde_vesde_ancestral_predictor(ve):
    steps, seed = 6, 31
    x_T = _image_batch(0) * SIGMA_MAX
    score = lambda x, t: -x / (1.0 + ve_sigma(t).view(-1, 1, 1, 1) ** 2)  # noqa: E731
    sampler = AncestralSampling(ve, steps, t_eps=1e-3)
    got = sampler.sample(score, x_T=x_T, seed=seed, backend="torch")
    ts = torch.linspace(1.0, 1e-3, steps + 1, dtype=F64)
    x = x_T
    for n in range(steps):
        vec_t = torch.full((3,), float(ts[n]), dtype=F64)
        x, x_mean = score_sde_vesde_ancestral(x, score(x, vec_t), ve_sigma(vec_t),
                                              ve_sigma(torch.full((3,), float(ts[n + 1]), dtype=F64)),
                                              philox_normal_like(x, seed, n))
    torch.testing.assert_close(got, x_mean, rtol=1e-12, atol=1e-12)  # denoise: the last update's mean
    without = sampler.sample(score, x_T=x_T, seed=seed, backend="torch", denoise=False)
    torch.testing.assert_close(without, x, rtol=1e-12, atol=1e-12)


def test_ddpm_run_equals_score_sde_vpsde_ancestral_predictor(vp):
    """score_sde's ancestral predictor on VP is sdekit's ``"ddpm"`` (``variance="transition"``)."""
    steps, seed = 5, 8
    x_T = _image_batch(1)
    score = lambda x, t: -x * (1.0 + t.view(-1, 1, 1, 1))  # noqa: E731
    got = AncestralDDPM(vp, steps).sample(score, x_T=x_T, seed=seed, backend="torch", denoise=False)
    ts = torch.linspace(1.0, vp.t_eps, steps + 1, dtype=F64)
    x = x_T
    for n in range(steps):
        vec_t = torch.full((3,), float(ts[n]), dtype=F64)
        beta = vp_beta(vec_t, torch.full((3,), float(ts[n + 1]), dtype=F64))
        x, _ = score_sde_vpsde_ancestral(x, score(x, vec_t), beta, philox_normal_like(x, seed, n))
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)


def test_posterior_noise_is_the_variance_of_the_gaussian_posterior_of_the_step(vp, ve):
    """``sigma^2 = v_s var / v_t``: for VE ``sigma_s^2 (sigma_t^2 - sigma_s^2) / sigma_t^2``; for VP DDPM's
    ``beta~ = (1 - abar_s) beta / (1 - abar_t)``, both written by hand."""
    t, s = torch.tensor([0.9, 0.5, 0.2], dtype=F64), torch.tensor([0.8, 0.45, 0.19], dtype=F64)
    _, _, _, N = AncestralSampling(ve, 4).step_coefficients(t, s)
    want = ve_sigma(s) ** 2 * (ve_sigma(t) ** 2 - ve_sigma(s) ** 2) / ve_sigma(t) ** 2
    torch.testing.assert_close(N**2, want, rtol=1e-12, atol=0)
    _, _, _, N = AncestralSampling(vp, 4).step_coefficients(t, s)
    abar = lambda u: 1.0 - vp_beta(u, torch.zeros_like(u))  # noqa: E731
    want = (1 - abar(s)) * vp_beta(t, s) / (1 - abar(t))
    torch.testing.assert_close(N**2, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", ["ancestral_sampling", "reverse_diffusion_flow"])
def test_sampling_gaussian_data_gives_the_chains_exact_moments_and_nearly_the_marginal(ve, vp, name):
    """Monte Carlo (8192 samples) within 5 standard errors of the chain's exact output moments
    (the affine recursion of tests/_problems.py), which are within a few percent of the marginal."""
    sde = ve if name == "ancestral_sampling" else vp
    sampler = AncestralSampling(sde, 200) if name == "ancestral_sampling" else \
        ReverseDiffusion(sde, 200, probability_flow=True)
    shape = (4, 2048)
    x = sampler.sample(gaussian_score(sde), x_T=exact_x_T(sde, shape, seed=3), seed=12, backend="torch",
                       denoise=False)
    m_chain, v_chain = reverse_moments(sampler)
    n = x.numel()
    assert abs(float(x.mean()) - m_chain) <= 5 * math.sqrt(v_chain / n)
    assert abs(float(x.var()) - v_chain) <= 5 * v_chain * math.sqrt(2 / (n - 1))
    if name == "ancestral_sampling":  # the flow's first-order bias is larger: its order is measured below
        mean, var = gaussian_truth(sde, sampler.t_eps)
        assert abs(m_chain - mean) <= 0.02 * math.sqrt(var) and abs(v_chain - var) <= 0.05 * var


@pytest.mark.parametrize("family", ["VE", "VP"])
def test_probability_flow_reverse_diffusion_converges_with_order_one(ve, vp, family):
    """W2 distance of the exact (Gaussian) output to the marginal at t_eps, 100..800 steps: slope 1 +- 0.1."""
    sde = ve if family == "VE" else vp
    mean, var = gaussian_truth(sde, sde.t_eps)
    steps = [100, 200, 400, 800]
    errs = []
    for n in steps:
        m, v = reverse_moments(ReverseDiffusion(sde, n, probability_flow=True))
        errs.append(math.hypot(m - mean, math.sqrt(v) - math.sqrt(var)))
    slope = -(math.log(errs[-1]) - math.log(errs[0])) / (math.log(steps[-1]) - math.log(steps[0]))
    assert abs(slope - ReverseDiffusion.weak_order) < 0.1, errs


def test_ancestral_options_are_checked(vp, ouve):
    with pytest.raises(ValueError, match="variance must be one of"):
        AncestralDDPM(vp, 4, variance="beta")
    with pytest.raises(ValueError, match="AncestralSampling needs an SDE without y-drift"):
        AncestralSampling(ouve, 4)
    assert SAMPLERS["ancestral_sampling"] is AncestralSampling and AncestralSampling(vp, 3).variance == "posterior"


# ---------------------------------------------------------------------- reverse diffusion on the probability flow
@pytest.mark.parametrize("family", ["VE", "VP"])
def test_probability_flow_reverse_diffusion_equals_score_sde_on_the_reverse_ode(ve, vp, family):
    """PC(probability_flow=True, no corrector) vs score_sde's ReverseDiffusionPredictor on
    ``sde.reverse(score_fn, probability_flow=True)``, with VE's SMLD and VP's DDPM ``discretize``
    (``f, G`` of the exact transition, written by hand)."""
    sde = ve if family == "VE" else vp
    steps, seed = 5, 4
    x_T = _image_batch(2) * (SIGMA_MAX if family == "VE" else 1.0)
    score = lambda x, t: -x / (0.5 + t.view(-1, 1, 1, 1))  # noqa: E731
    pc = PredictorCorrector(sde, steps, corrector=None, probability_flow=True, t_eps=1e-3)
    assert pc.noise is False and pc.predictor.probability_flow
    got = pc.sample(score, x_T=x_T, seed=seed, backend="torch", denoise=False)
    ts = torch.linspace(1.0, 1e-3, steps + 1, dtype=F64)
    x = x_T
    for n in range(steps):
        vec_t, vec_s = (torch.full((3,), float(u), dtype=F64) for u in (ts[n], ts[n + 1]))
        if family == "VE":  # VESDE.discretize: f = 0, G = sqrt(sigma_i^2 - sigma_{i-1}^2)
            f, G = torch.zeros_like(x), torch.sqrt(ve_sigma(vec_t) ** 2 - ve_sigma(vec_s) ** 2)
        else:  # VPSDE.discretize: f = sqrt(alpha) x - x, G = sqrt(beta)
            beta = vp_beta(vec_t, vec_s)
            f, G = torch.sqrt(1 - beta)[:, None, None, None] * x - x, torch.sqrt(beta)
        x, _ = score_sde_reverse_diffusion(x, f, G, score(x, vec_t), philox_normal_like(x, seed, n), True)
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)
    # and its stochastic twin is the same code path with the noise (score_sde's probability_flow=False)
    got_sde = ReverseDiffusion(sde, 1, t_eps=0.5).sample(score, x_T=x_T, seed=seed, backend="torch", denoise=False)
    vec_t, vec_s = torch.full((3,), 1.0, dtype=F64), torch.full((3,), 0.5, dtype=F64)
    if family == "VE":
        f, G = torch.zeros_like(x_T), torch.sqrt(ve_sigma(vec_t) ** 2 - ve_sigma(vec_s) ** 2)
    else:
        beta = vp_beta(vec_t, vec_s)
        f, G = torch.sqrt(1 - beta)[:, None, None, None] * x_T - x_T, torch.sqrt(beta)
    want, _ = score_sde_reverse_diffusion(x_T, f, G, score(x_T, vec_t), philox_normal_like(x_T, seed, 0), False)
    torch.testing.assert_close(got_sde, want, rtol=1e-12, atol=1e-12)


def test_probability_flow_is_refused_by_predictors_without_it(vp):
    with pytest.raises(ValueError, match="predictor 'euler_maruyama' has no probability_flow variant"):
        PredictorCorrector(vp, 4, predictor="euler_maruyama", probability_flow=True)
    with pytest.raises(TypeError, match="probability_flow must be True or False"):
        ReverseDiffusion(vp, 4, probability_flow=1)


# ---------------------------------------------------------------------- annealed Langevin (ald) and none
@pytest.mark.parametrize("data", ["real", "complex"])
def test_corrector_only_ald_run_equals_sgmse_annealed_langevin_on_sgmse_ouve(data):
    """PC(predictor="none", corrector="ald", alpha=1) on OUVE.from_sgmse vs sgmse's ALD update on
    score_sde's corrector-only loop (levels ``linspace(T, eps, N)``, corrector then NonePredictor)
    with sgmse's ``OUVESDE._std``; complex data (sgmse's spectrograms) with complex normals
    ``(w_2k + i w_2k+1) / sqrt(2)`` of the real view's counter-based normals."""
    theta, smin, smax, eps, N, K, snr, seed = 1.5, 0.05, 0.5, 0.03, 5, 2, 0.33, 6
    sde = OUVE.from_sgmse(theta, smin, smax)
    g = torch.Generator().manual_seed(4)
    cplx = data == "complex"
    dtype = torch.complex128 if cplx else F64
    y = torch.randn(2, 1, 3, 4, generator=g, dtype=dtype)
    x_T = y + 0.4 * torch.randn(2, 1, 3, 4, generator=g, dtype=dtype)
    score = lambda x, t: -(x - y) / (0.1 + t.view(-1, 1, 1, 1))  # noqa: E731
    pc = PredictorCorrector(sde, N, predictor="none", corrector="ald", alpha=1.0, snr=snr, corrector_steps=K,
                            t_eps=eps)
    got = pc.sample(score, y=y, x_T=x_T, seed=seed, backend="torch")

    def normals(word):
        if not cplx:
            return philox_normal_like(x_T, seed, word)
        return torch.view_as_complex(philox_normal_like(torch.view_as_real(x_T), seed, word)) / math.sqrt(2)

    timesteps = torch.linspace(1.0, eps, N, dtype=F64)
    x = x_T
    for i in range(N):
        vec_t = torch.ones(2, dtype=F64) * timesteps[i]
        std = sgmse_ouve_std(vec_t, theta, smin, smax)
        x, _ = sgmse_ald_update(x, vec_t, y, lambda x, t, y: score(x, t), std, snr,
                                [normals(i * (1 + K) + j) for j in range(K)])
        # NonePredictor.update_fn: x, x
    torch.testing.assert_close(got, x, rtol=1e-11, atol=1e-11)


def test_corrector_only_langevin_run_equals_score_sde_corrector_only_sampler(ve):
    """score_sde's get_pc_sampler with predictor=None (NonePredictor) and the Langevin corrector on
    VE (``alpha = 1``): the N levels ``linspace(T, eps, N)``, the last one ``eps``; ``denoise``
    returns the NonePredictor's ``x_mean = x``, the corrector's noise included."""
    N, K, snr, seed, eps = 4, 3, 0.16, 2, 1e-3
    x_T = _image_batch(5) * SIGMA_MAX
    score = lambda x, t: -x / (0.3 + ve_sigma(t).view(-1, 1, 1, 1) ** 2)  # noqa: E731
    pc = PredictorCorrector(ve, N, predictor="none", corrector="langevin", snr=snr, corrector_steps=K, t_eps=eps)
    assert torch.equal(pc.time_grid()[:-1], torch.linspace(1.0, eps, N, dtype=F64))
    calls = []
    got = pc.sample(lambda x, t: calls.append(float(t[0])) or score(x, t), x_T=x_T, seed=seed, backend="torch")
    assert len(calls) == N * K  # the none predictor never evaluates the score
    timesteps = torch.linspace(1.0, eps, N, dtype=F64)
    x = x_T
    for i in range(N):
        vec_t = torch.ones(3, dtype=F64) * timesteps[i]
        x, _ = score_sde_langevin_update(x, vec_t, score, snr, torch.ones_like(vec_t),
                                         [philox_normal_like(x_T, seed, i * (1 + K) + j) for j in range(K)])
    torch.testing.assert_close(got, x, rtol=1e-11, atol=1e-11)


def test_score_sde_ald_alpha_is_the_transition_on_vp(vp):
    """score_sde's ALD multiplies its step by ``alphas_i`` on VP: ``alpha="transition"`` gives
    ``eps = 2 (1 - beta) (snr std(t))^2`` with ``1 - beta`` of the step ending at ``t``."""
    corr = AnnealedLangevinCorrector(vp, snr=0.2)
    t, s = torch.tensor([0.7, 0.3], dtype=F64), torch.tensor([0.6, 0.25], dtype=F64)
    std = torch.sqrt(1 - (1 - vp_beta(t, torch.zeros_like(t))))  # VP: std^2 = 1 - abar(t)
    want = 2 * (1 - vp_beta(t, s)) * (0.2 * std) ** 2
    torch.testing.assert_close(corr.constants(t, s), want, rtol=1e-12, atol=0)
    assert CORRECTORS["ald"] is AnnealedLangevinCorrector


def _ald_chain_moments(pc, s0=S0):
    """Exact output moments of corrector-only ALD on Gaussian data: at each level ``t`` the update
    ``x <- x + eps (k x + b) + sqrt(2 eps) z`` (score ``k x + b``, ``k = -1/V_t``) is affine, so
    ``m <- (1 + eps k) m + eps b`` and ``v <- (1 + eps k)^2 v + 2 eps``; ``eps = 2 (snr std(t))^2``."""
    sde, ts = pc.sde, pc.time_grid()[:-1]
    m, v = gaussian_truth(sde, sde.T, s0=s0)
    for t in ts.tolist():
        mean_t, V = gaussian_truth(sde, t, s0=s0)
        eps = 2 * (pc.corrector.snr * float(sde.marginal_std(t))) ** 2
        k, b = -1.0 / V, mean_t / V
        for _ in range(pc.corrector.n_steps):
            m, v = (1 + eps * k) * m + eps * b, (1 + eps * k) ** 2 * v + 2 * eps
    return m, v


def test_corrector_only_ald_on_gaussian_data_gives_the_chains_exact_moments(ve):
    """Monte Carlo (8192 samples) within 5 standard errors of the chain's exact moments."""
    pc = PredictorCorrector(ve, 100, predictor="none", corrector="ald", snr=0.3, corrector_steps=5, alpha=1.0)
    shape = (4, 2048)
    x = pc.sample(gaussian_score(ve), x_T=exact_x_T(ve, shape, seed=9), seed=21, backend="torch")
    m_chain, v_chain = _ald_chain_moments(pc)
    n = x.numel()
    assert abs(float(x.mean()) - m_chain) <= 5 * math.sqrt(v_chain / n)
    assert abs(float(x.var()) - v_chain) <= 5 * v_chain * math.sqrt(2 / (n - 1))


def test_corrector_only_ald_approaches_the_marginal_at_t_eps_as_corrector_steps_grow(ve):
    """The chain's exact variance error at t_eps (VE, 100 levels, snr 0.3) falls like 1/K in the
    corrector steps K (measured 11%, 2.7%, 0.66% at K = 5, 20, 80); the mean of VE is exact."""
    _, var = gaussian_truth(ve, ve.t_eps)
    errs = []
    for K in (5, 20, 80):
        pc = PredictorCorrector(ve, 100, predictor="none", corrector="ald", snr=0.3, corrector_steps=K, alpha=1.0)
        m, v = _ald_chain_moments(pc)
        assert m == pytest.approx(MU, abs=1e-12)
        errs.append(abs(v / var - 1))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.01, errs
    slope = math.log(errs[0] / errs[2]) / math.log(16)
    assert abs(slope - 1) < 0.15, errs


def test_corrector_only_langevin_does_not_track_the_marginal_on_its_own(ve):
    """Why corrector-only sampling wants ``ald``: the Langevin corrector's step ``2 (snr ||z|| / ||score||)^2``
    shrinks when the chain is far from the marginal (``||score||`` grows with the excess), so from
    VE's prior (std 50) the variance at t_eps stays orders of magnitude too large (here > 100x),
    where ALD's step, set by the noise level, is within 3% (previous test)."""
    pc = PredictorCorrector(ve, 50, predictor="none", snr=0.16, corrector_steps=6)
    x = pc.sample(gaussian_score(ve), x_T=exact_x_T(ve, (2, 2048), seed=10), seed=22, backend="torch")
    _, var = gaussian_truth(ve, pc.t_eps)
    assert float(x.var()) > 100 * var


def test_none_predictor_and_ald_are_checked(vp):
    with pytest.raises(ValueError, match="needs a corrector with corrector_steps >= 1"):
        PredictorCorrector(vp, 4, predictor="none", corrector_steps=0)
    with pytest.raises(ValueError, match="samples nothing on its own"):
        NonePredictor(vp, 4).sample(lambda x, t: -x, shape=(2, 3))
    with pytest.raises(ValueError, match="corrector 'ald' takes no norm"):
        PredictorCorrector(vp, 4, corrector="ald", norm="sample")
    for bad in (0.0, float("nan")):
        with pytest.raises(ValueError, match="snr must be"):
            AnnealedLangevinCorrector(vp, snr=bad)
    with pytest.raises(ValueError, match="alpha must be"):
        AnnealedLangevinCorrector(vp, alpha="phi")
    assert NonePredictor(vp, 1).time_grid().tolist() == [1.0, 1.0]
