"""Complex data (sgmse's STFT spectrograms): marginals, forward and reverse samplers, the DSM loss.

Complex normals have unit variance, real and imaginary parts independent N(0, 1/2) (what
``torch.randn`` draws for a complex dtype, and sgmse's ``torch.randn_like``).  Monte Carlo checks
are within 5 standard errors: for a complex Gaussian of ``E|x - m|^2 = V``, ``|x - m|^2`` is
``V/2`` times a chi-square with 2 degrees of freedom, so the sample mean of ``|x - m|^2`` over ``n``
draws has standard error ``V / sqrt(n)``.
"""
import math

import pytest
import torch

from _problems import MU, S0, gaussian_score, gaussian_truth, reverse_moments
from sdekit import OUVE, AdaptiveProbabilityFlow, denoising_score_matching, log_likelihood
from sdekit.kernels.rng import philox_normal_like
from sdekit.solvers import (EulerMaruyama, ExponentialIntegrator, PredictorCorrector, ProbabilityFlow,
                            ReverseDiffusion, SolverError)
from sdekit.solvers.complex_data import standard_normal_like

C128, F64 = torch.complex128, torch.float64
N_MC = 8192


def complex_normal(shape, seed, dtype=C128):
    """Reference complex normals of unit variance from torch's generator (not sdekit's)."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_complex_gaussian(x, mean, V, what):
    """Sample mean within 5 SE of ``mean``; ``E|x - mean|^2`` within 5 SE of ``V``; real and imaginary
    parts each of variance ``V/2`` (5 SE) and uncorrelated (5 SE)."""
    n = x.numel()
    d = (x - mean).flatten()
    assert abs(complex(d.mean())) <= 5 * math.sqrt(V / n), what
    assert abs(float(d.abs().square().mean()) - V) <= 5 * V / math.sqrt(n), what
    for part in (d.real, d.imag):
        assert abs(float(part.square().mean()) - V / 2) <= 5 * (V / 2) * math.sqrt(2 / n), what
    assert abs(float((d.real * d.imag).mean())) <= 5 * (V / 2) / math.sqrt(n), what


def test_complex_normals_have_unit_variance_from_the_real_views_counter_based_normals():
    x = torch.empty(4, 1024, dtype=C128)
    z = standard_normal_like(x, 7, 3)
    w = philox_normal_like(torch.empty(4, 1024, 2, dtype=F64), 7, 3)
    assert torch.allclose(z.real, w[..., 0] / math.sqrt(2), rtol=1e-15, atol=0)
    assert torch.allclose(z.imag, w[..., 1] / math.sqrt(2), rtol=1e-15, atol=0)
    assert_complex_gaussian(z, 0.0, 1.0, "normals")
    z64 = standard_normal_like(torch.empty(2, 8, dtype=torch.complex64), 7, 3)
    assert z64.dtype == torch.complex64


# ---------------------------------------------------------------------- marginals
def test_complex_marginal_has_the_closed_form_mean_and_variance(ouve):
    y = torch.full((N_MC,), 0.3 - 0.7j, dtype=C128)
    x0 = torch.full((N_MC,), 0.5 + 0.2j, dtype=C128)
    t = torch.full((N_MC,), 0.4, dtype=F64)
    mean, std = ouve.marginal_prob(x0, y, t)
    assert std.dtype == F64 and not std.is_complex()
    mx, my = (float(c) for c in ouve.mean_coeffs(0.4))
    torch.testing.assert_close(mean, mx * x0 + my * y, rtol=1e-14, atol=0)
    x_t, z = ouve.sample_marginal(x0, y, t, torch.Generator().manual_seed(1))
    assert x_t.dtype == C128 and z.dtype == C128
    assert_complex_gaussian(x_t, mx * (0.5 + 0.2j) + my * (0.3 - 0.7j), float(ouve.marginal_var(0.4)), "marginal")


# ---------------------------------------------------------------------- forward simulation
def test_complex_forward_simulation_reproduces_the_chains_exact_moments_and_the_marginal(ouve):
    """Forward EM on complex data: Monte Carlo within 5 SE of the exact moments of its linear
    recursion (``m <- A m + C y``, ``V <- A^2 V + N^2``, as for real data), themselves near the marginal."""
    em = EulerMaruyama(ouve, 200)
    y_val, x0_val = 0.8 - 0.4j, 0.1 + 0.5j
    x0, y = torch.full((2, N_MC // 2), x0_val, dtype=C128), torch.full((2, N_MC // 2), y_val, dtype=C128)
    x = em.simulate(x0, y, seed=3)
    ts = torch.linspace(0.0, 1.0, 201, dtype=F64)
    A, C, _, N = em.forward_coefficients(ts[:-1], ts[1:])
    m, V = x0_val, 0.0
    for k in range(200):
        m, V = float(A[k]) * m + float(C[k]) * y_val, float(A[k]) ** 2 * V + float(N[k]) ** 2
    assert_complex_gaussian(x, m, V, "forward EM")
    mx, my = (float(c) for c in ouve.mean_coeffs(1.0))
    assert abs(m - (mx * x0_val + my * y_val)) < 0.01 and abs(V / float(ouve.marginal_var(1.0)) - 1) < 0.02


# ---------------------------------------------------------------------- reverse samplers
SAMPLERS = {
    "euler_maruyama": lambda sde: EulerMaruyama(sde, 100),
    "reverse_diffusion": lambda sde: ReverseDiffusion(sde, 100),
    "exponential": lambda sde: ExponentialIntegrator(sde, 100),
    "probability_flow": lambda sde: ProbabilityFlow(sde, 100),
}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_complex_reverse_sampling_of_gaussian_data_gives_the_chains_exact_moments(ouve, name):
    """Complex Gaussian data ``x0 = MU + S0 w`` (``w`` complex, unit variance) with a complex ``y``: the
    exact score is the real one's formula, and the chain's exact output moments are the real chain's
    (tests/_problems.py: the recursion only sees ``E|.|^2``).  The mean's imaginary part follows ``y``'s."""
    y_val = 0.8
    sampler = SAMPLERS[name](ouve)
    y = torch.full((2, N_MC // 2), y_val + 0.3j, dtype=C128)
    mean_T, V_T = gaussian_truth(ouve, 1.0, y_val)
    my_T = float(ouve.mean_coeffs(1.0)[1])
    x_T = mean_T + 0.3j * my_T + math.sqrt(V_T) * complex_normal(y.shape, 2)
    score = gaussian_score(ouve, y)
    x = sampler.sample(score, y=y, x_T=x_T, seed=5, backend="torch", denoise=False)
    assert x.dtype == C128
    m_chain, v_chain = reverse_moments(sampler, y_val)
    # the imaginary part of the mean: the same recursion with mu = 0 and y = 0.3
    m_imag, _ = reverse_moments(sampler, 0.3, mu=0.0)
    assert_complex_gaussian(x, complex(m_chain, m_imag), v_chain, name)


def pc_ald_moments(pc, y, mu):
    """Exact output moments of PC (reverse diffusion + ALD) on Gaussian data: every update is affine
    with fixed coefficients (ALD's step ``eps`` is a per-level constant), so at each level ``K`` ALD
    updates ``m <- (1 + eps k) m + eps b``, ``V <- (1 + eps k)^2 V + 2 eps``, then the predictor's
    ``m <- (A + S k) m + S b + C y``, ``V <- (A + S k)^2 V + N^2`` (no noise in the denoised last one)."""
    sde, ts = pc.sde, pc.time_grid()
    t, s = ts[:-1], ts[1:]
    A, C, S, N = pc.predictor.step_coefficients(t, s)
    eps = pc.corrector.constants(t, s)
    m, v = gaussian_truth(sde, sde.T, y, mu)
    for n in range(pc.steps):
        mean_t, V = gaussian_truth(sde, float(t[n]), y, mu)
        k, b = -1.0 / V, mean_t / V
        for _ in range(pc.corrector.n_steps):
            m, v = (1 + eps[n] * k) * m + eps[n] * b, (1 + eps[n] * k) ** 2 * v + 2 * eps[n]
        m = (A[n] + S[n] * k) * m + S[n] * b + C[n] * y
        v = (A[n] + S[n] * k) ** 2 * v + (0.0 if n == pc.steps - 1 else N[n] ** 2)
    return float(m), float(v)


def test_complex_sgmse_default_sampler_gives_the_chains_exact_moments(ouve):
    """sgmse's enhancement sampler (reverse diffusion + ALD, snr 0.5, 30 steps, t_eps 0.03, denoised)
    on complex Gaussian data: seeded, and Monte Carlo within 5 SE of the chain's exact moments."""
    pc = PredictorCorrector(ouve, 30, corrector="ald", snr=0.5, alpha=1.0, t_eps=0.03)
    y = torch.full((2, N_MC // 2), 0.8 + 0.3j, dtype=C128)
    mean_T, V_T = gaussian_truth(ouve, 1.0, 0.8)
    x_T = mean_T + 0.3j * float(ouve.mean_coeffs(1.0)[1]) + math.sqrt(V_T) * complex_normal(y.shape, 2)
    score = gaussian_score(ouve, y)
    a = pc.sample(score, y=y, x_T=x_T, seed=11, backend="torch")
    assert torch.equal(a, pc.sample(score, y=y, x_T=x_T, seed=11, backend="torch")) and a.dtype == C128
    assert not torch.equal(a, pc.sample(score, y=y, x_T=x_T, seed=12, backend="torch"))
    m_re, v = pc_ald_moments(pc, 0.8, MU)
    m_im, _ = pc_ald_moments(pc, 0.3, 0.0)
    assert_complex_gaussian(a, complex(m_re, m_im), v, "PC + ALD")


def sgmse_langevin_update(x, t, y, score_fn, snr, noises):
    """sgmse ``LangevinCorrector.update_fn`` (``sampling/correctors.py``), ``n_steps = len(noises)``."""
    for noise in noises:
        grad = score_fn(x, t, y)
        grad_norm = torch.norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
        noise_norm = torch.norm(noise.reshape(noise.shape[0], -1), dim=-1).mean()
        step_size = ((snr * noise_norm / grad_norm) ** 2 * 2).unsqueeze(0)
        x_mean = x + step_size[:, None, None, None] * grad
        x = x_mean + torch.sqrt(step_size * 2)[:, None, None, None] * noise
    return x, x_mean


@pytest.mark.parametrize("dtype", [torch.complex64, C128])
def test_complex_langevin_corrector_equals_sgmse_on_complex_normals(ouve, dtype):
    """The batch-mean Langevin step on complex data (``||z||`` of the complex normals, i.e. ``1/sqrt(2)``
    times the real view's) against sgmse's update fed the same complex normals."""
    g = torch.Generator().manual_seed(8)
    y = torch.randn(3, 1, 4, 5, generator=g, dtype=dtype)
    x_T = y + 0.3 * torch.randn(3, 1, 4, 5, generator=g, dtype=dtype)
    score = lambda x, t: -(x - y) / (0.1 + t.view(-1, 1, 1, 1))  # noqa: E731
    N, K, snr, seed = 3, 2, 0.2, 5
    pc = PredictorCorrector(ouve, N, predictor="none", corrector="langevin", alpha=1.0, snr=snr, corrector_steps=K)
    got = pc.sample(score, y=y, x_T=x_T, seed=seed, backend="torch")
    real = torch.float32 if dtype == torch.complex64 else F64
    x = x_T
    for i, t in enumerate(pc.time_grid()[:-1].tolist()):
        noises = [torch.view_as_complex(philox_normal_like(torch.view_as_real(x_T), seed, i * (1 + K) + j))
                  / math.sqrt(2) for j in range(K)]
        x, _ = sgmse_langevin_update(x, torch.full((3,), t, dtype=real), y, lambda x, t, y: score(x, t), snr, noises)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    torch.testing.assert_close(got, x, rtol=tol, atol=tol)


def test_complex_prior_draw_from_shape_and_dtype_and_seeded_reproducibility(vp):
    em = EulerMaruyama(vp, 3)
    a = em.sample(lambda x, t: -x, shape=(2, N_MC // 2), seed=4, dtype=torch.complex64)
    assert a.dtype == torch.complex64
    assert torch.equal(a, em.sample(lambda x, t: -x, shape=(2, N_MC // 2), seed=4, dtype=torch.complex64))
    x_T, traj = EulerMaruyama(vp, 1, t_eps=0.999).sample(lambda x, t: -x, shape=(2, N_MC // 2), seed=4,
                                                         dtype=torch.complex128, return_trajectory=True)
    assert traj.dtype == C128
    assert_complex_gaussian(traj[0], 0.0, float(vp.marginal_var(1.0)), "prior")


@pytest.mark.parametrize("name", ["euler_maruyama", "pc"])
def test_triton_backend_draws_the_same_complex_sample_as_torch(ouve, name, triton_device):
    y = complex_normal((2, 3, 5), 0, torch.complex64).to(triton_device)
    score = lambda x, t: -(x - y) / (0.05 + t.view(-1, 1, 1))  # noqa: E731
    s = EulerMaruyama(ouve, 4) if name == "euler_maruyama" else PredictorCorrector(ouve, 4, corrector_steps=2)
    a = s.sample(score, y=y, seed=21, backend="torch")
    b = s.sample(score, y=y, seed=21, backend="triton")
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), (a - b).abs().max()


# ---------------------------------------------------------------------- the DSM loss
def sgmse_step_loss(score_fn, mean, std, z, t, y):
    """sgmse ``ScoreModel._step`` and ``_loss`` (``model.py``, ``loss_type="mse"``), ``t``, the marginal
    and ``z`` given: ``err = score sigma + z``, ``mean(0.5 sum |err|^2)``."""
    sigmas = std[:, None, None, None]
    perturbed_data = mean + sigmas * z
    score = score_fn(perturbed_data, t, y)
    err = score * sigmas + z
    losses = torch.square(err.abs())
    return torch.mean(0.5 * torch.sum(losses.reshape(losses.shape[0], -1), dim=-1))


@pytest.mark.parametrize("dtype", [torch.complex64, C128])
def test_complex_dsm_loss_equals_sgmse_training_loss(dtype):
    """``reduce_mean=False`` with sgmse's OUVE and ``t_eps = 0.03`` is sgmse's training loss, on the
    same ``t`` and the same complex ``z`` (drawn from the same generator in sdekit's order)."""
    sde = OUVE.from_sgmse(1.5, 0.05, 0.5)
    g = torch.Generator().manual_seed(0)
    x0, y = (torch.randn(3, 1, 4, 6, generator=g, dtype=dtype) for _ in range(2))
    score_fn = lambda x, t, y: -(x - y) * (1.0 + t.view(-1, 1, 1, 1)) + 0.1j * x  # noqa: E731
    got = denoising_score_matching(sde, score_fn, x0, y, t_eps=0.03, generator=torch.Generator().manual_seed(5),
                                   reduce_mean=False)
    g = torch.Generator().manual_seed(5)
    real = torch.float32 if dtype == torch.complex64 else F64
    t = 0.03 + (1.0 - 0.03) * torch.rand(3, generator=g, dtype=real)
    z = torch.randn(x0.shape, generator=g, dtype=dtype)
    mean, std = sde.marginal_prob(x0, y, t)
    want = sgmse_step_loss(score_fn, mean, std, z, t, y)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    torch.testing.assert_close(got, want.to(real), rtol=tol, atol=tol)
    assert got.dtype == real


def test_complex_dsm_loss_at_the_exact_score_has_the_gaussian_expectation(ouve):
    """At the exact score of complex Gaussian data, ``err = std score + z`` is complex Gaussian with
    ``E|err|^2 = mx^2 s^2 / (mx^2 s^2 + std^2)`` per element (as for real data, tests/test_losses.py),
    so ``|err|^2`` is that times an Exp(1): the mean loss over 4096 samples of 8 elements is within
    5 SE of the mean expectation at the samples' own ``t`` (redrawn from the same generator)."""
    n = 4096
    x0 = MU + S0 * complex_normal((n, 8), 3)
    y = torch.zeros_like(x0)
    exact = gaussian_score(ouve, y)
    loss = denoising_score_matching(ouve, lambda x, t, y: exact(x, t), x0, y,
                                    generator=torch.Generator().manual_seed(2), reduction="none")
    t = ouve.t_eps + (1.0 - ouve.t_eps) * torch.rand(n, generator=torch.Generator().manual_seed(2), dtype=F64)
    mx, v = ouve.mean_coeffs(t)[0], ouve.marginal_var(t)
    want = mx**2 * S0**2 / (mx**2 * S0**2 + v)
    assert abs(float(loss.mean()) - float(want.mean())) <= 5 * math.sqrt(float(want.square().mean()) / (8 * n))


# ---------------------------------------------------------------------- where complex is refused
def test_complex_data_is_refused_with_a_clear_error_where_it_is_not_supported(vp):
    z = complex_normal((2, 4), 0)
    with pytest.raises(TypeError, match="x_T is complex .*the fixed-step samplers"):
        AdaptiveProbabilityFlow(vp).sample(lambda x, t: -x, x_T=z)
    with pytest.raises(TypeError, match="the sample is complex"):
        AdaptiveProbabilityFlow(vp).sample(lambda x, t: -x, shape=(2, 4), dtype=torch.complex64)
    with pytest.raises(TypeError, match="x0 is complex"):
        log_likelihood(vp, lambda x, t: -x, z)
    with pytest.raises(TypeError, match="x_T must be float32 or float64 \\(or complex64, complex128\\)"):
        EulerMaruyama(vp, 3).sample(lambda x, t: -x, x_T=z.real.to(torch.float16))
    from sdekit.inverse import DMPS, DenseOperator
    with pytest.raises(TypeError, match="y is complex"):
        DMPS(vp, DenseOperator(torch.eye(2, 4, dtype=F64)), 0.1, steps=3).sample(lambda x, t: -x, z[:, :2])
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64 \\(or torch.complex64"):
        EulerMaruyama(vp, 3).sample(lambda x, t: -x, shape=(2, 4), dtype=torch.int64)
    with pytest.raises(TypeError, match="y has dtype torch.float64 but x_T has torch.complex128"):
        PredictorCorrector(OUVE(), 3).sample(lambda x, t: -x, y=z.real.contiguous(), x_T=z)


def test_a_real_score_for_complex_data_names_the_step(vp):
    z = complex_normal((2, 4), 0)
    with pytest.raises(SolverError, match=r"at step 0 of 3 .*score has dtype torch.float64 but x has torch.complex128"):
        EulerMaruyama(vp, 3).sample(lambda x, t: -x.real, x_T=z)
    with pytest.raises(SolverError, match=r"at step 0 of 3 \(corrector 1 of 1.*score has shape \(2, 3\)"):
        PredictorCorrector(vp, 3).sample(lambda x, t: -x[:, :3], x_T=z)


def test_non_finite_complex_score_stops_with_the_first_bad_step(vp):
    """The kernels' finiteness flags see the real pairs: a NaN in an imaginary part names its step."""
    from sdekit.solvers import NonFiniteError
    z = complex_normal((2, 4), 0)

    def score(x, t):
        s = -x.clone()
        if float(t[0]) < 0.6:
            s[0, 1] = complex(0.0, float("nan"))
        return s

    with pytest.raises(NonFiniteError, match=r"score_fn returned non-finite values .* at step 3 of 5 \(reverse, t=0.4006\)"):
        EulerMaruyama(vp, 5).sample(score, x_T=z)
    x, traj = EulerMaruyama(vp, 5).sample(lambda x, t: -x, x_T=z, seed=1, return_trajectory=True)
    assert traj.shape == (6, 2, 4) and traj.dtype == C128 and torch.equal(traj[0], z) and torch.equal(traj[-1], x)
