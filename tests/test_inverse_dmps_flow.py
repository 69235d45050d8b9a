"""DMPS's flow-based version (Meng & Kabashima 2022, Algorithm 2) and the authors' ``clip_denoised``.

References: a dense-matrix transcription of Algorithm 2,

    x <- x - v(x_t, t) h - lam b (a' b - a b') / a * grad log p~(y | x_t) h,
    grad log p~(y | x_t) = (1/a) A^T (sigma_y^2 I + (b/a)^2 A A^T)^-1 (y - A x_t / a),

with ``a, b, a', b'`` in closed form (``_problems.marginal_closed_forms``), the exact velocity of a
Gaussian prior ``N(mu0, Sig0)`` written with dense solves, and ``A`` a dense matrix (for the image
operators, the matrix of ``op`` read off its action on the unit vectors); and a transcription of
guided-diffusion's ``p_sample`` with ``clip_denoised`` (the posterior mean of the clipped ``x0^``).
"""
import pytest
import torch

from sdekit.inverse import DMPS, DenseOperator, Inpainting, SuperResolution
from sdekit.kernels.rng import philox_normal_like

from _problems import marginal_closed_forms, shared_rectified_flow, shared_vpsde

F64 = torch.float64


def gaussian(d, seed):
    g = torch.Generator().manual_seed(seed)
    L = 0.5 * torch.randn(d, d, generator=g, dtype=F64)
    return torch.randn(d, generator=g, dtype=F64), L @ L.T + 0.1 * torch.eye(d, dtype=F64)


def exact_velocity(name, mu0, Sig0):
    """``a' E[x0 | x_t] + b' E[z | x_t]`` for ``x0 ~ N(mu0, Sig0)``, flat ``(B, d)`` states."""
    eye = torch.eye(len(mu0), dtype=F64)

    def v(x, t):
        a, _, b, da, _, db = (float(c) for c in marginal_closed_forms(name, t[:1].to(F64)))
        flat = x.reshape(x.shape[0], -1).to(F64)
        w = torch.linalg.solve(a * a * Sig0 + b * b * eye, (flat - a * mu0).T).T
        return (da * (mu0 + a * w @ Sig0) + db * b * w).reshape(x.shape).to(x.dtype)

    return v


def algorithm2(name, A, y, sigma_y, lam, velocity, x, ts, heun=False):
    """Algorithm 2 written out with dense matrices (module docstring); ``x``: ``(B, n)``.  With
    ``heun``, its posterior velocity ``u = v + lam b (a' b - a b') / a grad`` in the trapezoidal rule
    ``x <- x - h (u(x, t) + u(x - h u(x, t), s)) / 2``."""
    eye_m = torch.eye(A.shape[0], dtype=F64)

    def u(x, t):
        a, _, b, da, _, db = (float(c) for c in marginal_closed_forms(name, t.reshape(1)))
        cov = sigma_y**2 * eye_m + (b / a) ** 2 * A @ A.T
        grad = torch.linalg.solve(cov, (y - x @ A.T / a).T).T @ A / a
        return velocity(x, torch.full((x.shape[0],), float(t), dtype=F64)) + lam * b * (da * b - a * db) / a * grad

    for t, s in zip(ts[:-1], ts[1:]):
        h = float(t - s)
        u1 = u(x, t)
        x = x - h * u1 if not heun else x - h * (u1 + u(x - h * u1, s)) / 2
    return x


def dense(op, shape):
    n = shape[0] * shape[1] * shape[2]
    return op(torch.eye(n, dtype=F64).reshape(n, *shape)).reshape(n, -1).T.contiguous()


@pytest.mark.parametrize("name", ["RF", "VP"])
@pytest.mark.parametrize("lam", [1.0, 0.6])
def test_flow_dmps_matches_a_dense_transcription_of_algorithm_2(name, lam):
    sde = shared_rectified_flow() if name == "RF" else shared_vpsde()
    d, m, sigma_y, steps = 5, 3, 0.1, 25
    mu0, Sig0 = gaussian(d, 0)
    g = torch.Generator().manual_seed(1)
    A = torch.randn(m, d, generator=g, dtype=F64)
    y = torch.randn(4, m, generator=g, dtype=F64)
    x_T = torch.randn(4, d, generator=g, dtype=F64)
    v = exact_velocity(name, mu0, Sig0)
    sampler = DMPS(sde, DenseOperator(A), sigma_y, lam=lam, steps=steps, solver="flow")
    got = sampler.sample(v, y, x_T=x_T, prediction="velocity", seed=0)
    want = algorithm2(name, A, y, sigma_y, lam, v, x_T, sampler.solver.time_grid())
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", ["RF", "VP"])
def test_flow_dmps_with_heun_steps_matches_the_trapezoidal_transcription(name):
    sde = shared_rectified_flow() if name == "RF" else shared_vpsde()
    mu0, Sig0 = gaussian(4, 5)
    g = torch.Generator().manual_seed(6)
    A = torch.randn(2, 4, generator=g, dtype=F64)
    y = torch.randn(3, 2, generator=g, dtype=F64)
    x_T = torch.randn(3, 4, generator=g, dtype=F64)
    v = exact_velocity(name, mu0, Sig0)
    sampler = DMPS(sde, DenseOperator(A), 0.1, lam=0.8, steps=10, solver="flow_heun")
    got = sampler.sample(v, y, x_T=x_T, prediction="velocity", seed=0)
    want = algorithm2(name, A, y, 0.1, 0.8, v, x_T, sampler.solver.time_grid(), heun=True)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("op, shape", [(SuperResolution(2, 1, 4), (1, 4, 4)),
                                       (Inpainting(torch.arange(16).reshape(4, 4) % 3 != 0, 2), (2, 4, 4))])
def test_flow_dmps_with_image_operators_matches_the_transcription_on_their_dense_matrices(op, shape):
    sde = shared_rectified_flow()
    n = shape[0] * shape[1] * shape[2]
    A = dense(op, shape)
    mu0, Sig0 = gaussian(n, 2)
    g = torch.Generator().manual_seed(3)
    y = torch.randn(3, A.shape[0], generator=g, dtype=F64)
    x_T = torch.randn(3, *shape, generator=g, dtype=F64)
    v = exact_velocity("RF", mu0, Sig0)
    sampler = DMPS(sde, op, 0.05, steps=15, solver="flow")
    got = sampler.sample(v, y, x_T=x_T, prediction="velocity", seed=0)
    want = algorithm2("RF", A, y, 0.05, 1.0, v, x_T.reshape(3, n), sampler.solver.time_grid())
    torch.testing.assert_close(got.reshape(3, n), want, rtol=1e-9, atol=1e-9)


def test_clip_x0_is_guided_diffusions_clipped_posterior_mean_step():
    """DDPM with ``clip_denoised``: ``x_s = c1 clip(x0^) + c2 x_t + lam (var / phi) lik(x_t) + sqrt(var) z``,
    ``c1 = beta sqrt(abar_s) / (1 - abar_t)``, ``c2 = (1 - abar_s) sqrt(alpha) / (1 - abar_t)``,
    ``x0^ = (x_t + (1 - abar_t) score) / sqrt(abar_t)``, ``beta = 1 - alpha``, ``alpha = abar_t / abar_s``."""
    sde = shared_vpsde()
    d, m, sigma_y, lam, steps, lo, hi = 4, 2, 0.1, 1.75, 10, -0.3, 0.4
    mu0, Sig0 = gaussian(d, 4)
    g = torch.Generator().manual_seed(5)
    A = torch.randn(m, d, generator=g, dtype=F64)
    y = torch.randn(6, m, generator=g, dtype=F64)
    x_T = torch.randn(6, d, generator=g, dtype=F64)
    eye, eye_m = torch.eye(d, dtype=F64), torch.eye(m, dtype=F64)

    def prior_score(x, t):
        a, _, b, _, _, _ = (float(c) for c in marginal_closed_forms("VP", t[:1]))
        return -torch.linalg.solve(a * a * Sig0 + b * b * eye, (x - a * mu0).T).T

    sampler = DMPS(sde, DenseOperator(A), sigma_y, lam=lam, steps=steps, clip_x0=(lo, hi))
    got = sampler.sample(prior_score, y, x_T=x_T, seed=7, denoise=False)
    ts, x = sampler.solver.time_grid(), x_T.clone()
    for n, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        abar_t = float(marginal_closed_forms("VP", t.reshape(1))[0]) ** 2
        abar_s = float(marginal_closed_forms("VP", s.reshape(1))[0]) ** 2
        alpha = abar_t / abar_s
        beta = 1 - alpha
        x0_hat = ((x + (1 - abar_t) * prior_score(x, t.reshape(1))) / abar_t**0.5).clamp(lo, hi)
        mean = beta * abar_s**0.5 / (1 - abar_t) * x0_hat + (1 - abar_s) * alpha**0.5 / (1 - abar_t) * x
        a, b = abar_t**0.5, (1 - abar_t) ** 0.5
        lik = torch.linalg.solve(sigma_y**2 * eye_m + (b / a) ** 2 * A @ A.T, (y - x @ A.T / a).T).T @ A / a
        x = mean + lam * beta / alpha**0.5 * lik + beta**0.5 * philox_normal_like(x, 7, n)
    torch.testing.assert_close(got, x, rtol=1e-9, atol=1e-9)
    # clipping changes the run (the prior's x0^ leaves [lo, hi] here)
    plain = DMPS(sde, DenseOperator(A), sigma_y, lam=lam, steps=steps).sample(prior_score, y, x_T=x_T, seed=7,
                                                                               denoise=False)
    assert float((plain - got).abs().max()) > 1e-2


def test_flow_dmps_and_clip_bad_arguments():
    sde = shared_vpsde()
    op = DenseOperator(torch.eye(2, 3, dtype=F64))
    for bad in [(1, -1), (0, float("inf")), "yes", (0, 1, 2), 1.0]:
        with pytest.raises(ValueError, match="clip_x0"):
            DMPS(sde, op, 0.1, clip_x0=bad)
    assert DMPS(sde, op, 0.1, clip_x0=True).clip_x0 == (-1.0, 1.0)
    with pytest.raises(ValueError, match="prediction"):
        DMPS(sde, op, 0.1, steps=3, solver="flow").sample(lambda x, t: -x, torch.zeros(1, 2, dtype=F64),
                                                           prediction="noise")
    with pytest.raises(ValueError, match="solver"):
        DMPS(sde, op, 0.1, solver="rectified_flow")
