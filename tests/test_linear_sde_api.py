"""LinearSDE's API: shapes, dtypes, score_sde vocabulary, caching, and errors for bad input."""
import math

import pytest
import sympy as sp
import torch

from sdekit import OUVE, TSDVE, DriftVE, LinearSDE, SubVPSDE, VESDE, VPSDE
import sdekit.symbolic.moments as moments

# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("drift, diffusion, words", [
    ("-x", "sqrt(t - 1/2)", r"diffusion .* g\(t\) = sqrt\(t - 1/2\) = nan at t = 0: g\(t\) must be real"),
    ("-x/t", "1", r"drift .* a\(t\) = -1/t = -inf at t = 0: a\(t\) must be real and finite"),
    ("-x", "besselj(0, t)", "calls 'besselj', which sdekit does not support"),
    ("-x + gamma(t)*y", "1", "calls 'gamma'"),
])
def test_coefficients_that_would_give_nan_marginals_or_unknown_functions_are_refused(drift, diffusion, words):
    with pytest.raises(ValueError, match=words):
        LinearSDE(drift, diffusion)


def test_a_marginal_that_overflows_on_0_T_is_refused_with_the_reason():
    """Issue 12: LinearSDE("0", "exp(t)", T=1000).marginal_std(1.0) was NaN (exact 1.787)."""
    with pytest.raises(ValueError, match=r"exp\(t\) = inf at t = 71\d\.\d+: g\(t\) must be real and finite"):
        LinearSDE("0", "exp(t)", T=1000.0)
    with pytest.raises(ValueError, match=r"v\(t\) = .* overflows float64 on \[0, T\] = \[0, 500.0\]"):
        LinearSDE("0", "exp(t)", T=500.0)
    sde = LinearSDE("0", "exp(t)", T=300.0)  # v(300) = (e^600 - 1)/2 is finite: right numbers
    assert float(sde.marginal_std(1.0)) == pytest.approx(math.sqrt(math.expm1(2.0) / 2), rel=1e-14)


def test_parameters_out_of_float64_range_give_a_clear_error():
    with pytest.raises(ValueError, match="out of range"):
        LinearSDE("-k*x", "s", {"k": 1e-300, "s": 1e300})


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_t_equal_to_T_rounded_to_the_dtype_is_accepted_as_T(dtype):
    sde = LinearSDE("-x", "1", T=0.1)
    t = torch.full((3,), 0.1, dtype=dtype)  # 0.1 in float32 is 0.1000000015 > T
    want = math.sqrt(-math.expm1(-0.2) / 2)
    torch.testing.assert_close(sde.marginal_std(t), torch.full((3,), want, dtype=dtype), rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
        sde.marginal_std(torch.full((3,), 0.1 * (1 + 1e-5), dtype=dtype))
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
        sde.marginal_std(torch.full((3,), -1e-6, dtype=dtype))


def test_sympys_time_budget_holds_off_the_main_thread_and_the_numerical_path_says_so(monkeypatch):
    """Issue 12: DriftVE(0.3, 2.0) spent 41 s in sympy, and off the main thread had no bound."""
    import threading
    import time

    monkeypatch.setattr(moments, "DEFAULT_TIME_BUDGET", 2.0)
    moments._derive_cached.cache_clear()
    result = {}

    def build():
        start = time.monotonic()
        result["sde"] = DriftVE(0.3, 2.0)
        result["seconds"] = time.monotonic() - start

    worker = threading.Thread(target=build)
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    sde = result["sde"]
    assert "time budget ran out" in sde.paths["v"] and sde.paths["v"].startswith("numerical")
    assert result["seconds"] < 30
    assert float(sde.marginal_std(1.0)) == pytest.approx(0.3, rel=1e-12)
    sde.self_check([0.001, 0.01, 0.5, 1.0])


@pytest.mark.parametrize("drift, word", [
    ("x**2", "not linear in x"), ("x*y", "not linear in x"), ("sin(x)", "not linear in x"),
    ("-x + t", "not proportional to x or y"), ("k*x + 1", "not proportional"),
    ("y**2 - x", "not linear in y"),
])
def test_nonlinear_drift_is_rejected_naming_the_term(drift, word):
    with pytest.raises(ValueError, match=word):
        LinearSDE(drift, "1", {"k": 1.0} if "k" in drift else None)


def test_state_dependent_diffusion_is_rejected():
    with pytest.raises(ValueError, match="diffusion .* depends on"):
        LinearSDE("-x", "sqrt(1 + x**2)")


def test_undeclared_symbol_is_rejected():
    with pytest.raises(ValueError, match="undeclared symbol.*'beta'"):
        LinearSDE("-beta*x", "1")


@pytest.mark.parametrize("value", [-1.0, 0.0, float("nan"), float("inf")])
def test_bad_parameter_values_are_rejected(value):
    with pytest.raises(ValueError, match="parameter 'k'"):
        LinearSDE("-k*x", "1", {"k": value})


@pytest.mark.parametrize("name", ["t", "x", "y", "1k", "lambda"])
def test_bad_parameter_names_are_rejected(name):
    with pytest.raises(ValueError, match="parameter name"):
        LinearSDE("-x", "1", {name: 1.0})


@pytest.mark.parametrize("make", [
    lambda: OUVE(sigma_min=0.3, sigma_max=0.3), lambda: TSDVE(sigma_min=0.5, sigma_max=0.3),
    lambda: VESDE(sigma_min=1.0, sigma_max=0.5), lambda: OUVE(gamma=-1.0), lambda: VPSDE(beta_min=float("nan")),
    lambda: DriftVE(alpha=-1.0, gamma=1.0), lambda: LinearSDE("-x", "1", T=0.0), lambda: LinearSDE("-x", "1", v0=-1.0),
])
def test_bad_zoo_parameters_are_rejected(make):
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan"), torch.tensor([0.5, 1.01])])
def test_time_outside_range_is_rejected(t):
    with pytest.raises(ValueError, match=r"t must lie in \[0, T\]"):
        OUVE().marginal_std(t)


def test_shape_errors():
    sde, x = OUVE(), torch.zeros(3, 2, 4, 4)
    with pytest.raises(ValueError, match="expected x0's shape"):
        sde.marginal_mean(x, torch.zeros(3, 2, 4, 5), 0.5)
    with pytest.raises(ValueError, match=r"shape \(batch,\)"):
        sde.marginal_mean(x, x, torch.full((4,), 0.5))
    with pytest.raises(ValueError, match="pass y"):
        sde.marginal_mean(x, None, 0.5)
    with pytest.raises(TypeError, match="y has dtype"):
        sde.marginal_mean(x, x.double(), 0.5)
    with pytest.raises(ValueError, match="needs y or shape"):
        VPSDE().prior_sampling()


# ----------------------------------------------------------------------------- behaviour


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_marginal_prob_shapes_and_dtypes(dtype):
    sde = TSDVE()
    x0, y = torch.randn(4, 3, 8, 8, dtype=dtype), torch.randn(4, 3, 8, 8, dtype=dtype)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=dtype)
    mean, std = sde.marginal_prob(x0, y, t)
    assert mean.shape == x0.shape and mean.dtype == dtype and std.shape == (4,) and std.dtype == dtype
    mx, my = sde.mean_coeffs(t)
    torch.testing.assert_close(mean, mx.view(-1, 1, 1, 1) * x0 + my.view(-1, 1, 1, 1) * y)
    torch.testing.assert_close(mean[0], x0[0], rtol=0, atol=0)  # t = 0: the data itself
    scalar_mean, scalar_std = sde.marginal_prob(x0, y, 0.5)
    torch.testing.assert_close(scalar_mean[2], mean[2])
    assert scalar_std.dim() == 0


def test_sample_marginal_is_reproducible_and_consistent():
    sde, x0 = VPSDE(), torch.randn(2, 16, dtype=torch.float64)
    t = torch.tensor([0.3, 0.9], dtype=torch.float64)
    xt1, z1 = sde.sample_marginal(x0, None, t, generator=torch.Generator().manual_seed(3))
    xt2, z2 = sde.sample_marginal(x0, None, t, generator=torch.Generator().manual_seed(3))
    assert torch.equal(xt1, xt2) and torch.equal(z1, z2)
    mean, std = sde.marginal_prob(x0, None, t)
    torch.testing.assert_close(xt1, mean + std[:, None] * z1)


def test_sde_and_reverse_drifts():
    sde = OUVE(gamma=1.3)
    x, y = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    drift, g = sde.sde(x, y, t)
    torch.testing.assert_close(drift, 1.3 * (y - x))
    torch.testing.assert_close(g, sde.nu * 0.01 * 30.0**t)
    score = lambda xx, tt: -xx  # noqa: E731
    rdrift, rg = sde.reverse(score).sde(x, y, t)
    torch.testing.assert_close(rdrift, drift - g[:, None] ** 2 * (-x))
    pdrift, pg = sde.reverse(score, probability_flow=True).sde(x, y, t)
    torch.testing.assert_close(pdrift, drift - 0.5 * g[:, None] ** 2 * (-x))
    assert torch.all(pg == 0) and torch.equal(rg, g)
    f, G = sde.discretize(x, y, t, 0.01)
    torch.testing.assert_close(f, drift * 0.01)
    torch.testing.assert_close(G, g * 0.1)
    with pytest.raises(ValueError, match="score_fn must return"):
        sde.reverse(lambda xx, tt: xx[:1]).sde(x, y, t)


def test_transition_composes_like_a_markov_kernel():
    """phi(s,t) = phi(s,u) phi(u,t); var(s,t) = phi(u,t)^2 var(s,u) + var(u,t); likewise psi."""
    sde = TSDVE(gamma=3.0)
    s, u, t = (torch.tensor(v, dtype=torch.float64) for v in ([0.1, 0.0], [0.4, 0.5], [0.9, 1.0]))
    p_su, q_su, v_su = sde.transition(s, u)
    p_ut, q_ut, v_ut = sde.transition(u, t)
    p_st, q_st, v_st = sde.transition(s, t)
    torch.testing.assert_close(p_st, p_su * p_ut, rtol=1e-13, atol=0)
    torch.testing.assert_close(q_st, p_ut * q_su + q_ut, rtol=1e-13, atol=0)
    torch.testing.assert_close(v_st, p_ut**2 * v_su + v_ut, rtol=1e-12, atol=0)
    mx, _ = sde.mean_coeffs(t)
    torch.testing.assert_close(p_st[1], mx[1], rtol=1e-13, atol=0)  # (s, t) = (0, t[1]): the marginal
    torch.testing.assert_close(v_st[1], sde.marginal_var(t)[1], rtol=1e-13, atol=0)


def test_prior_sampling_matches_terminal_marginal():
    gen = torch.Generator().manual_seed(0)
    y = torch.full((20000,), 0.7, dtype=torch.float64)
    x = OUVE().prior_sampling(y, generator=gen)
    assert abs(float(x.mean()) - 0.7) < 5 * 0.3 / math.sqrt(x.numel())
    assert abs(float(x.std()) / float(OUVE().marginal_std(1.0)) - 1) < 5 * math.sqrt(0.5 / x.numel())
    v = VESDE().prior_sampling(shape=(20000,), generator=gen)
    assert v.dtype == torch.get_default_dtype() and abs(float(v.std()) / 50.0 - 1) < 0.03


def test_constructing_a_known_sde_twice_does_not_rerun_sympy():
    TSDVE(gamma=2.0)
    before = moments._derive_cached.cache_info()
    TSDVE(gamma=5.0)
    after = moments._derive_cached.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


def test_latex_and_paths_report_the_derivation():
    text = TSDVE().latex()
    assert r"\operatorname{D}" in text and text.startswith(r"\begin{aligned}")
    numeric = DriftVE(alpha=2, gamma=2.0)
    assert "numerical" in numeric.latex() and "Chebyshev" in numeric.paths["v"]
    assert isinstance(numeric.solution["v"], type(None)) and isinstance(TSDVE().solution["v"], sp.Expr)


def test_sympy_expressions_are_accepted():
    t, x, k = sp.symbols("t x k")
    sde = LinearSDE(-k * x, sp.exp(t), {"k": 2.0})
    torch.testing.assert_close(sde.mean_coeffs(0.5)[0], torch.tensor(math.exp(-1.0), dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradient_of_variance_in_t_obeys_the_variance_ode(dtype):
    sde = TSDVE()
    t = torch.tensor([0.3, 0.7], dtype=dtype, requires_grad=True)
    v = sde.marginal_var(t)
    (grad,) = torch.autograd.grad(v.sum(), t)
    assert grad.dtype == dtype
    v, grad = sde.marginal_var(t.detach().double()), grad.double()
    tol = dict(rtol=1e-10, atol=0) if dtype == torch.float64 else dict(rtol=1e-6, atol=0)
    a, _, g = sde.coefficients(t.detach().double())
    torch.testing.assert_close(grad, 2 * a * v + g**2, **tol)  # dv/dt = 2 a v + g^2


def test_subvp_variance_has_no_cancellation_near_zero():
    """(1 - exp(-B))^2 ~ B^2 for small t: relative accuracy must survive."""
    sde, t = SubVPSDE(), 1e-5
    B = 0.1 * t + 0.5 * 19.9 * t**2
    assert float(sde.marginal_var(t)) == pytest.approx(math.expm1(-B) ** 2, rel=1e-13)


def test_subvp_diffusion_has_no_cancellation_near_zero():
    """g(t)^2 = beta(t) (1 - exp(-2 B(t))) ~ 2 beta_min^2 t: the coefficients get -expm1 too (at
    t = 1e-9 the naive form lost 8 digits), so dv/dt = 2 a v + g^2 holds to rounding there."""
    import mpmath

    mpmath.mp.dps = 40
    sde = SubVPSDE()
    for t in (1e-12, 1e-9, 1e-6, 1e-3, 0.5):
        B = mpmath.mpf(0.1) * t + mpmath.mpf(19.9) / 2 * mpmath.mpf(t) ** 2
        want = float((mpmath.mpf(0.1) + mpmath.mpf(19.9) * t) * -mpmath.expm1(-2 * B))
        _, _, g = sde.coefficients(torch.tensor([t], dtype=torch.float64))
        assert float(g[0]) ** 2 == pytest.approx(want, rel=1e-14, abs=0), t


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_marginals_on_cuda_equal_cpu(dtype):
    sde = TSDVE(gamma=400.0)
    t = torch.linspace(0, 1, 257, dtype=dtype)
    x0, y = torch.randn(257, 3, dtype=dtype), torch.randn(257, 3, dtype=dtype)
    mean, std = sde.marginal_prob(x0, y, t)
    mean_gpu, std_gpu = sde.marginal_prob(x0.cuda(), y.cuda(), t.cuda())
    assert mean_gpu.device.type == "cuda" and std_gpu.dtype == dtype
    tol = dict(rtol=1e-13, atol=0) if dtype == torch.float64 else dict(rtol=2e-7, atol=0)
    torch.testing.assert_close(std_gpu.cpu(), std, **tol)
    torch.testing.assert_close(mean_gpu.cpu(), mean, **tol)


def test_off_the_main_thread_sympy_runs_in_a_child_process_with_the_same_result():
    import threading

    from sdekit.symbolic import parse_linear_sde

    coeffs = parse_linear_sde("-k*x + k*y", "s*(sigma_max/s)**t", ("k", "s", "sigma_max"))
    result = {}
    worker = threading.Thread(target=lambda: result.update(d=moments.derive(coeffs, budget=120.0)))
    worker.start()
    worker.join(180)
    moments._derive_cached.cache_clear()
    on_main = moments.derive(coeffs, budget=math.inf)
    off_main = result["d"]
    assert not off_main.reasons and off_main.v is not None
    assert (off_main.A, off_main.my, off_main.v) == (on_main.A, on_main.my, on_main.v)
