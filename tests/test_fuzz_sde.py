"""Fuzzing ``LinearSDE``, the zoo constructors, the marginals, ``sample_marginal``/``prior_sampling``,
``dawsn`` and ``sdekit derive`` with bad and edge input (issue 12).

Every case asserts its outcome class: the right answer against an independent reference (mpmath
closed forms or quadrature, the moment ODEs integrated by scipy in ``self_check``), or a
``ValueError`` / ``TypeError`` whose message names the offending argument.  Never a silently
wrong number, never a cryptic error from deep inside sympy or torch.
"""
import math
import warnings

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import sdekit.symbolic.moments as moments
from sdekit import EDM, CosineVP, DriftVE, LinearSDE, RectifiedFlow, VESDE, VPSDE
from sdekit.cli import main
from sdekit.special import dawsn

from _problems import fuzz_examples
from mpmath_moments import assert_within_stated_bounds

D64 = torch.float64


def raises_naming(exc, name):
    """``pytest.raises`` for ``exc`` whose message names ``name`` (as a word)."""
    return pytest.raises(exc, match=rf"(^|\W){name}(\W|$)")


# ------------------------------------------------------------------ drift / diffusion text
BAD_EXPRESSIONS = [  # (drift, diffusion, exception, the argument the message must name)
    ("x.y", "1", ValueError, "drift"),  # was AttributeError: 'Symbol' object has no attribute 'y'
    ("-x if t else x", "1", ValueError, "drift"),  # was silently -x (sympify evaluates Python)
    ("-x", "1 if t else 2", ValueError, "diffusion"),
    ("-x*sqrt(-1)", "1", ValueError, "drift"),  # was TypeError: must be real number, not complex
    ("-x", "sqrt(-t)", ValueError, "diffusion"),  # was accepted: g = I sqrt(t), v(0.5) = -0.092
    ("-x", "sqrt(-k)", ValueError, "diffusion"),
    ("-x*1j", "1", ValueError, "drift"),
    ("-x", "besselj(0, t)", ValueError, "diffusion"),  # "'Symbol' object is not callable" once
    ("-x", "sqrt(t - 1/2)", ValueError, "diffusion"),  # NaN marginals once
    ("-x/t", "1", ValueError, "drift"),
    ("-x +", "1", ValueError, "drift"),
    ("-x", "", ValueError, "diffusion"),
    ("x**2", "1", ValueError, "drift"),
    ("-x", "x", ValueError, "diffusion"),
    ("-x", "[1]", ValueError, "diffusion"),
    (["-x"], "1", TypeError, "drift"),  # was TypeError: unhashable type: 'list'
    ("-x", {"g": 1}, TypeError, "diffusion"),
    (None, "1", TypeError, "drift"),
    ("-x", torch.tensor(1.0), TypeError, "diffusion"),
    (b"-x", "1", TypeError, "drift"),
]


@pytest.mark.parametrize("drift, diffusion, exc, name", BAD_EXPRESSIONS, ids=repr)
def test_bad_expressions_are_refused_naming_drift_or_diffusion(drift, diffusion, exc, name):
    with raises_naming(exc, name):
        LinearSDE(drift, diffusion, {"k": 1.0} if "k" in str(diffusion) else None)


# NaN-giving coefficients (sqrt(t - 1/2), -x/t) need T to be found: LinearSDE refuses them, derive has no T.
CLI_CASES = [c for c in BAD_EXPRESSIONS if isinstance(c[0], str) and isinstance(c[1], str)
             and "k" not in c[1] and c[1] != "sqrt(t - 1/2)" and c[0] != "-x/t"]


@pytest.mark.parametrize("drift, diffusion, exc, name", CLI_CASES, ids=repr)
def test_sdekit_derive_refuses_the_same_expressions_with_exit_status_2(capsys, drift, diffusion, exc, name):
    """The CLI prints ``sdekit: error: ...`` naming the argument, never a traceback and never a
    derivation of a complex "variance" (``sqrt(-t)`` printed ``v(t) = -t/2 + ...`` once)."""
    assert main(["derive", f"--drift={drift}", f"--diffusion={diffusion}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdekit: error:") and name in err


@pytest.mark.parametrize("drift, diffusion", [("-x/t", "1"), ("-x", "1/t"), ("-x*t**(-2)", "1")])
def test_sdekit_derive_refuses_a_diverging_integral_instead_of_printing_it(capsys, drift, diffusion):
    """``-x/t`` printed ``mx(t): 0`` and ``g = 1/t`` printed ``v(t) = oo + ...``."""
    assert main(["derive", f"--drift={drift}", f"--diffusion={diffusion}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sdekit: error:") and "drift or diffusion" in err and "diverges" in err


TOKENS = ["x", "y", "t", "k", "-", "+", "*", "/", "(", ")", "2", "0.5", ".", "sqrt(", "exp(", "I", "[",
          "besselj(", "1e400", "nan", ",", " "]


@fuzz_examples(40)
@given(tokens=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=6), where=st.sampled_from(["drift", "diffusion"]))
def test_any_token_soup_is_a_checked_sde_or_an_error_naming_its_argument(tokens, where):
    """Random token strings as drift or diffusion: either an SDE whose marginals pass the
    self-check against scipy's DOP853 integration of the moment ODEs, or a ValueError/TypeError
    naming the argument (or a parameter); nothing else escapes."""
    text = "".join(tokens)
    drift, diffusion = (text, "1") if where == "drift" else ("-x", text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(moments, "DEFAULT_TIME_BUDGET", 2.0)  # keeps a hopeless integral cheap
        try:
            sde = LinearSDE(drift, diffusion, {"k": 1.5})
        except (ValueError, TypeError) as err:
            assert where in str(err) or "parameter" in str(err), str(err)
            return
    sde.self_check([1e-3, 0.01, 0.2, 0.7, 1.0])


# ------------------------------------------------------------------ parameters, T, v0
BAD_NUMBERS = [("1", TypeError), (None, TypeError), (True, TypeError), (1 + 0j, TypeError), (float("nan"), ValueError),
               (float("inf"), ValueError), (-1.0, ValueError), (torch.ones(2), TypeError)]


@pytest.mark.parametrize("value, exc", BAD_NUMBERS, ids=repr)
@pytest.mark.parametrize("make, name", [
    (lambda v: VPSDE(beta_min=v), "beta_min"), (lambda v: VPSDE(beta_max=v), "beta_max"),
    (lambda v: VESDE(sigma_max=v), "sigma_max"), (lambda v: DriftVE(alpha=v, gamma=1.0), "alpha"),
    (lambda v: DriftVE(alpha=1, gamma=v), "gamma"), (lambda v: EDM(sigma_min=v), "sigma_min"),
    (lambda v: CosineVP(s=v), "s"), (lambda v: RectifiedFlow(T=v), "T"),
    (lambda v: LinearSDE("-k*x", "1", {"k": v}), "k"), (lambda v: LinearSDE("-x", "1", T=v), "T"),
    (lambda v: LinearSDE("-x", "1", v0=v), "v0"), (lambda v: LinearSDE("-x", "1", t_eps=v), "t_eps"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_parameter_values_name_the_parameter(make, name, value, exc):
    if name == "t_eps" and value is None:
        assert make(value).t_eps == 1e-3  # None is the default, 1e-3 T
        return
    with raises_naming(exc, "'?" + name + "'?"):
        make(value)


@pytest.mark.parametrize("make", [
    lambda: DriftVE(1e300, 1.0),  # was OverflowError: int too big to convert
    lambda: DriftVE(2.0, 1e300),
    lambda: LinearSDE("-k*x", "s", {"k": 1e-300, "s": 1e300}),
    lambda: VESDE(1e-300, 1e300),
    lambda: EDM(1e-300, 1e300),
], ids=["driftve_alpha", "driftve_gamma", "linear", "ve", "edm"])
def test_huge_or_tiny_parameters_give_a_value_error_with_the_reason(make):
    with pytest.raises(ValueError, match="out of range|overflows|finite"):
        make()


def vp_reference(b0, b1, t):
    """VP's marginals in closed form, 40 digits: mx = exp(-B/2), v = 1 - exp(-B), B = int_0^t beta."""
    with mpmath.workdps(40):
        b0, b1, t = mpmath.mpf(b0), mpmath.mpf(b1), mpmath.mpf(t)
        B = b0 * t + (b1 - b0) * t**2 / 2
        return {"mx": mpmath.exp(-B / 2), "my": mpmath.mpf(0), "v": -mpmath.expm1(-B), "kappa": 1 + B}


@fuzz_examples(6)
@given(u=st.floats(0.0, 1.0), share=st.floats(0.001, 0.999), dtype=st.sampled_from([torch.float32, D64]))
def test_vp_at_extreme_betas_matches_its_closed_form_near_zero_and_at_T(u, share, dtype):
    """``B(1) = (beta_min + beta_max) / 2`` log-uniform from 1e-6 up to where mx(1) = exp(-B/2)
    leaves the normal numbers of the dtype (below that it rounds to a subnormal or 0, as IEEE
    arithmetic does), split between the two betas by ``share``: within the stated bounds."""
    top = math.log10(-math.log(torch.finfo(dtype).tiny))
    B1 = 10.0 ** (-6 + u * (top + 6))
    b0, b1 = 2 * B1 * share, 2 * B1 * (1 - share)
    sde = VPSDE(b0, b1)
    times = [sde.t_eps, 1e-6, 1e-4, 1e-3, 5e-3, 0.01, 0.3, 1.0]
    assert_within_stated_bounds(sde, lambda t: vp_reference(b0, b1, t), times, dtype)


def test_vp_with_beta_max_1e300_builds_without_warnings_and_matches_its_closed_form():
    """VPSDE(0.1, 1e300): the Taylor recursion of its integrals overflows float64 (handled: no
    series branch); construction emits no RuntimeWarning, and the marginals hold where
    ``B(t) = 0.05 t + 5e299 t^2`` crosses 1 (t ~ 1.4e-150) and at T."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sde = VPSDE(0.1, 1e300)
    times = [1e-151, 1.4e-150, 5e-150, 2e-149, 1e-6, 1.0]
    worst = assert_within_stated_bounds(sde, lambda t: vp_reference(0.1, 1e300, t), times)
    assert worst["std"] < 1e-13


@fuzz_examples(6)
@given(smin=st.floats(1e-8, 1.0), ratio=st.floats(1.001, 1e8), dtype=st.sampled_from([torch.float32, D64]))
def test_ve_at_extreme_sigmas_has_std_sigma_min_r_to_the_t(smin, ratio, dtype):
    """score_sde's VE: v0 = sigma_min^2, so std(t) = sigma_min (sigma_max / sigma_min)^t exactly."""
    sde = VESDE(smin, smin * ratio)
    t = torch.tensor([0.0, sde.t_eps, 1e-4, 0.01, 0.5, 1.0], dtype=dtype)
    want = [float(mpmath.mpf(smin) * mpmath.mpf(ratio) ** mpmath.mpf(v)) for v in t.double().tolist()]
    got = sde.marginal_std(t).double()
    tol = 1e-13 if dtype == D64 else 2**-23
    assert torch.allclose(got, torch.tensor(want, dtype=D64), rtol=tol, atol=0)


# ------------------------------------------------------------------ the new zoo entries near t = 0
def closed_form_zoo():
    """(sde, reference) for the zoo entries built from their marginals, with the marginals written
    out here in mpmath (RectifiedFlow: x_t = (1 - t) x0 + t z; CosineVP: Nichol & Dhariwal eq. 17;
    EDM: x_t = x0 + t z, v0 = 0 at t = 0)."""
    s = mpmath.mpf("0.008")

    def cosine(t):
        abar = (mpmath.cos(mpmath.pi / 2 * (t + s) / (1 + s)) / mpmath.cos(mpmath.pi / 2 * s / (1 + s))) ** 2
        return {"mx": mpmath.sqrt(abar), "v": 1 - abar, "kappa": 1 - mpmath.log(abar)}

    return {
        "RectifiedFlow": (RectifiedFlow(), lambda t: {"mx": 1 - t, "v": t**2, "kappa": 1 - 2 * mpmath.log(1 - t)}),
        "CosineVP": (CosineVP(), cosine),
        "EDM": (EDM(), lambda t: {"mx": mpmath.mpf(1), "v": t**2, "kappa": mpmath.mpf(1)}),
    }


@pytest.fixture(scope="module")
def built_zoo():
    return closed_form_zoo()


@pytest.mark.parametrize("dtype", [D64, torch.float32])
@pytest.mark.parametrize("name", ["RectifiedFlow", "CosineVP", "EDM"])
def test_zoo_entries_from_marginals_match_mpmath_on_a_grid_dense_near_zero(built_zoo, name, dtype):
    """Issue 12 part 4: marginal_std for 0 < t < 0.01 T (the Taylor branch's domain, the last
    sampling steps) against an independent value, for the entries the mpmath zoo test lacks."""
    sde, closed = built_zoo[name]

    def reference(t):  # a float32 T rounds above T, within 4 ulp: evaluated at T (the documented clamp)
        with mpmath.workdps(40):
            ref = closed(mpmath.mpf(min(t, sde.T)))
            ref["my"] = mpmath.mpf(0)
            return ref

    T = sde.T
    times = sorted({sde.t_eps, 1e-5 * T, 1e-4 * T, 1e-3 * T, 2e-3 * T, 5e-3 * T, 0.01 * T, 0.3 * T, T}
                   | {r * f for r in sde.marginals.taylor_radius.values() if 0 < r < T for f in (0.5, 0.99, 1.01)})
    worst = assert_within_stated_bounds(sde, reference, times, dtype)
    if dtype == D64:
        assert worst["std"] < 1e-12


# ------------------------------------------------------------------ times
@fuzz_examples(40)
@given(T=st.sampled_from([0.1, 1 / 3, 0.7, 1.0, 7.77]), k=st.integers(-12, 12), at_zero=st.booleans(),
       dtype=st.sampled_from([torch.float32, D64]))
def test_times_within_4_ulp_of_the_ends_are_the_ends_and_beyond_are_refused(T, k, at_zero, dtype):
    """``t`` is accepted iff it lies in ``[-4 eps T, T + 4 eps T]`` (``eps`` of its dtype): float32
    ``t = T`` (rounded above T) once was refused.  Accepted times give the marginal at the clamped
    time: ``v(t) = (1 - exp(-2t)) / 2`` for ``dx = -x dt + dw``."""
    sde = LinearSDE("-x", "1", T=T)
    eps = torch.finfo(dtype).eps
    base = torch.tensor(0.0 if at_zero else T, dtype=dtype)
    t = base + k * eps * (T if at_zero else float(base))
    t = torch.tensor(float(t), dtype=dtype).expand(2)
    t64 = float(t[0])
    slack = 4 * eps * T
    if -slack <= t64 <= T + slack:
        tc = min(max(t64, 0.0), T)
        want = math.sqrt(-math.expm1(-2 * tc) / 2)
        torch.testing.assert_close(sde.marginal_std(t), torch.full((2,), want, dtype=dtype), rtol=4 * eps, atol=0)
    else:
        with raises_naming(ValueError, "t"):
            sde.marginal_std(t)


@pytest.mark.parametrize("t, exc", [("0.5", TypeError), ([0.5], TypeError), (None, TypeError), (True, TypeError),
                                    (np.array([0.5]), TypeError), (torch.tensor([0.5j]), TypeError),
                                    (torch.tensor([True]), TypeError), (float("nan"), ValueError),
                                    (-0.1, ValueError), (torch.tensor([0.5, 2.0]), ValueError)], ids=repr)
def test_bad_times_name_t(vp, t, exc):
    with raises_naming(exc, "t"):
        vp.marginal_std(t)


def test_an_overflowing_moment_is_refused_at_construction_and_a_finite_one_is_right():
    """Issue 12: LinearSDE("0", "exp(t)", T=1000).marginal_std(1.0) was NaN (exact 1.787)."""
    for T in (360.0, 500.0, 1000.0):  # v(T) = (e^(2T) - 1) / 2 overflows float64 from T = 355.2
        with pytest.raises(ValueError, match=r"overflows float64|must be real and finite"):
            LinearSDE("0", "exp(t)", T=T)
    sde = LinearSDE("0", "exp(t)", T=354.0)
    t = torch.tensor([1e-3, 1.0, 100.0, 354.0], dtype=D64)
    want = [float(mpmath.sqrt(mpmath.expm1(2 * mpmath.mpf(v)) / 2)) for v in t.tolist()]
    torch.testing.assert_close(sde.marginal_std(t), torch.tensor(want, dtype=D64), rtol=1e-13, atol=0)


# ------------------------------------------------------------------ sample_marginal, prior_sampling, discretize
def test_sample_marginal_is_mean_plus_std_times_the_generators_normals():
    """The right answer: x_t = mx(t) x0 + std(t) z with z the generator's own normals, mx and std
    from VP's closed form (mpmath), per-sample t, float32 and float64."""
    sde = VPSDE()
    for dtype in (torch.float32, D64):
        x0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)
        t = torch.tensor([1e-4, 0.3, 1.0], dtype=dtype)
        xt, z = sde.sample_marginal(x0, None, t, generator=torch.Generator().manual_seed(7))
        assert torch.equal(z, torch.randn(3, 4, generator=torch.Generator().manual_seed(7), dtype=dtype))
        ref = [vp_reference(0.1, 20.0, v) for v in t.double().tolist()]
        mx = torch.tensor([float(r["mx"]) for r in ref], dtype=D64)[:, None]
        std = torch.tensor([float(mpmath.sqrt(r["v"])) for r in ref], dtype=D64)[:, None]
        eps = torch.finfo(dtype).eps
        torch.testing.assert_close(xt.double(), mx * x0.double() + std * z.double(), rtol=4 * eps, atol=4 * eps)


@pytest.mark.parametrize("call, exc, name", [
    (lambda s, x: s.sample_marginal(x, None, 0.5, generator=0), TypeError, "generator"),
    (lambda s, x: s.sample_marginal(x, None, 0.5, generator=np.random.default_rng(0)), TypeError, "generator"),
    (lambda s, x: s.sample_marginal(x.long(), None, 0.5), TypeError, "x0"),
    (lambda s, x: s.sample_marginal(x.tolist(), None, 0.5), TypeError, "x0"),
    (lambda s, x: s.sample_marginal(x, None, torch.full((4,), 0.5)), ValueError, "t"),
    (lambda s, x: s.sample_marginal(x, None, 1.5), ValueError, "t"),
    (lambda s, x: s.prior_sampling(shape=5), TypeError, "shape"),  # was "'int' object is not iterable"
    (lambda s, x: s.prior_sampling(shape=(2.5, 3)), TypeError, r"shape\[0\]"),
    (lambda s, x: s.prior_sampling(shape=(-1, 3)), ValueError, r"shape\[0\]"),
    (lambda s, x: s.prior_sampling(shape=(2, 3), dtype=torch.int64), TypeError, "dtype"),  # normal_kernel_cpu
    (lambda s, x: s.prior_sampling(shape=(2, 3), device="gpu"), ValueError, "device"),
    (lambda s, x: s.prior_sampling(shape=(2, 3), generator=0), TypeError, "generator"),
    (lambda s, x: s.prior_sampling(shape=(2, 3), device="meta"), ValueError, "device"),  # meta: no data
    (lambda s, x: s.prior_sampling(x.to("meta")), ValueError, "y"),
    (lambda s, x: s.sample_marginal(x.to("meta"), None, 0.5), ValueError, "x0"),
    (lambda s, x: s.discretize(x, None, 0.5, float("nan")), ValueError, "dt"),
    (lambda s, x: s.discretize(x, None, 0.5, "0.1"), TypeError, "dt"),
], ids=["gen0", "gen_numpy", "x0_int", "x0_list", "t_shape", "t_range", "shape5", "shape_float", "shape_neg",
        "dtype_int", "device_gpu", "prior_gen0", "prior_meta", "prior_y_meta", "x0_meta", "dt_nan", "dt_str"])
def test_bad_sampling_arguments_of_the_sde_name_themselves(vp, call, exc, name):
    with raises_naming(exc, name):
        call(vp, torch.randn(3, 2))


def test_prior_sampling_without_cuda_names_the_device(vp):
    if torch.cuda.is_available():
        pytest.skip("this build has CUDA")
    with raises_naming(ValueError, "device"):
        vp.prior_sampling(shape=(2, 3), device="cuda")


# ------------------------------------------------------------------ the time budget holds for odd exponents too
def test_a_hopeless_integral_falls_back_to_the_numerical_path_within_the_budget(monkeypatch):
    """Issue 12: DriftVE(0.3, 2.0) spent 41 s in sympy.  With a 1 s budget the derivation stops,
    ``paths`` says why, and the numerical marginals pass the independent self-check."""
    monkeypatch.setattr(moments, "DEFAULT_TIME_BUDGET", 1.0)
    moments._derive_cached.cache_clear()
    sde = LinearSDE("gamma*t**(3/10)*(y - x)", "s*exp(t)", {"gamma": 2.0, "s": 0.1})
    assert any("time budget ran out" in p or "no closed form" in p for p in sde.paths.values())
    sde.self_check([1e-3, 0.01, 0.5, 1.0])


# ------------------------------------------------------------------ Dawson's function
@pytest.mark.parametrize("x, exc", [([1.0], TypeError), ("1", TypeError), (None, TypeError),
                                    (torch.tensor([1, 2]), TypeError), (torch.tensor([True]), TypeError),
                                    (torch.tensor([1j]), TypeError), (np.ones(2), TypeError)], ids=repr)
def test_dawsn_refuses_non_float_input_naming_x(x, exc):
    with raises_naming(exc, "x"):
        dawsn(x)


@fuzz_examples(30)
@given(v=st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7976931348623157e308])))
def test_dawsn_at_any_float64_is_mpmath_or_its_limit(v):
    """NaN gives NaN; +-inf give +-0 (D(x) ~ 1/(2x)); every finite x within 4 ulp of mpmath."""
    got = float(dawsn(torch.tensor([v], dtype=D64))[0])
    if math.isnan(v):
        assert math.isnan(got)
        return
    if math.isinf(v):
        assert got == 0.0 and math.copysign(1.0, got) == math.copysign(1.0, v)
        return
    with mpmath.workdps(40):
        x = mpmath.mpf(v)
        want = float(mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-x * x) * mpmath.erfi(x)) if abs(v) < 1e10 \
            else float(1 / (2 * x) + 1 / (4 * x**3))
    assert abs(got - want) <= 4 * math.ulp(want) if want != 0 else got == 0.0
