"""Fuzzing every sampler's ``sample``, ``EulerMaruyama.simulate``, ``PredictorCorrector``,
``DMPS.sample`` and ``RunOptions`` with bad and edge input (issue 12).

Every case asserts its outcome class: the right answer (a deterministic run against its closed
form, a seeded run against itself, the exponential integrator's few-step blow-up against an exact
variance recursion written here), or a ``ValueError`` / ``TypeError`` (``SolverError`` for what
``score_fn`` returns) whose message names the offending argument, and never blames ``score_fn``
for a bad ``x_T`` or ``y``.
"""
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sdekit import LinearSDE
from sdekit.inverse import DMPS, SuperResolution
from sdekit.solvers import (AdaptiveProbabilityFlow, AncestralDDPM, EulerMaruyama, ExponentialIntegrator,
                            LangevinCorrector, NonFiniteError, PredictorCorrector, ProbabilityFlow, ReverseDiffusion,
                            RunOptions, SolverError)

from _problems import fuzz_examples

D64 = torch.float64

# the fixtures vp (VPSDE(0.1, 20)) and ouve (OUVE()) come from conftest.py


def raises_naming(exc, name):
    """``pytest.raises`` for ``exc`` whose message names ``name`` (as a word)."""
    return pytest.raises(exc, match=rf"(^|\W){name}(\W|$)")


def unit_score(x, t):
    return -x


with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # ExponentialIntegrator at 2 steps warns (tested below)
    FIXED_STEP = {
        "em": lambda sde: EulerMaruyama(sde, 2),
        "rd": lambda sde: ReverseDiffusion(sde, 2),
        "exp": lambda sde: ExponentialIntegrator(sde, 2),
        "pf": lambda sde: ProbabilityFlow(sde, 2),
        "pf_exp": lambda sde: ProbabilityFlow(sde, 2, method="exponential"),
        "pc": lambda sde: PredictorCorrector(sde, 2, corrector_steps=1),
        "ddpm": lambda sde: AncestralDDPM(sde, 2),
    }
ALL = {**FIXED_STEP, "adaptive": lambda sde: AdaptiveProbabilityFlow(sde, rtol=1e-3, atol=1e-3)}


def build(name, sde):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ALL[name](sde)


# ------------------------------------------------------------------ run options every sampler takes
COMMON_BAD = [  # (keyword, value, exception, the name the message must carry)
    ("seed", 2**64, ValueError, "seed"), ("seed", 2**70, ValueError, "seed"), ("seed", -1, ValueError, "seed"),
    ("seed", 1.5, TypeError, "seed"), ("seed", True, TypeError, "seed"), ("seed", "5", TypeError, "seed"),
    ("dtype", torch.int64, TypeError, "dtype"), ("dtype", torch.float16, TypeError, "dtype"),
    ("dtype", "float32", TypeError, "dtype"), ("dtype", np.float32, TypeError, "dtype"),
    ("device", "gpu", ValueError, "device"), ("device", 5, TypeError, "device"), ("device", "", ValueError, "device"),
    ("device", "meta", ValueError, "device"),  # was RuntimeError: Tensor.item() cannot be called on meta tensors
    ("shape", 5, TypeError, "shape"), ("shape", "23", TypeError, "shape"), ("shape", (), ValueError, "shape"),
    ("shape", (2.5, 3), TypeError, r"shape\[0\]"), ("shape", (-1, 3), ValueError, r"shape\[0\]"),
    ("shape", (0, 3), ValueError, r"shape\[0\]"), ("shape", (2, 3.0), TypeError, r"shape\[1\]"),
]
LOOP_BAD = [
    ("backend", "jax", ValueError, "backend"), ("backend", None, ValueError, "backend"),
    ("check_every", -1, ValueError, "check_every"), ("check_every", True, TypeError, "check_every"),
    ("progress", 1, TypeError, "progress"), ("denoise", "yes", TypeError, "denoise"),
    ("return_trajectory", None, TypeError, "return_trajectory"), ("cuda_graph", 0, TypeError, "cuda_graph"),
    ("options", {"seed": 0}, TypeError, "options"), ("sed", 0, TypeError, "sed"),
]


@pytest.mark.parametrize("key, value, exc, name", COMMON_BAD, ids=lambda v: repr(v) if not isinstance(v, type) else "")
@pytest.mark.parametrize("sampler", sorted(ALL))
def test_bad_seed_dtype_device_and_shape_are_named_by_every_sampler(vp, sampler, key, value, exc, name):
    kwargs = {"shape": (2, 3), key: value}
    with raises_naming(exc, name):
        build(sampler, vp).sample(unit_score, **kwargs)


@pytest.mark.parametrize("key, value, exc, name", LOOP_BAD, ids=lambda v: repr(v) if not isinstance(v, type) else "")
@pytest.mark.parametrize("sampler", sorted(FIXED_STEP))
def test_bad_loop_options_are_named_by_every_fixed_step_sampler(vp, sampler, key, value, exc, name):
    with raises_naming(exc, name):
        build(sampler, vp).sample(unit_score, shape=(2, 3), seed=0, **{key: value})


@pytest.mark.parametrize("sampler", sorted(ALL))
def test_cuda_on_a_cpu_build_names_the_device(vp, sampler):
    if torch.cuda.is_available():
        pytest.skip("this build has CUDA")
    with raises_naming(ValueError, "device"):  # was an AssertionError from deep inside torch
        build(sampler, vp).sample(unit_score, shape=(2, 3), seed=0, device="cuda")


@pytest.mark.parametrize("key, value, exc, name", [c for c in COMMON_BAD + LOOP_BAD if c[0] not in
                                                   ("shape", "options", "sed")])
def test_run_options_check_each_field_when_built(key, value, exc, name):
    with raises_naming(exc, name):
        RunOptions(**{key: value})


# ------------------------------------------------------------------ seeds
@fuzz_examples(20)
@given(seed=st.one_of(st.integers(-2**66, 2**66), st.sampled_from([0, 2**64 - 1, 2**64, 2**70, -1, 2**63])),
       sampler=st.sampled_from(sorted(FIXED_STEP)))
def test_a_seed_is_refused_outside_0_to_2_64_minus_1_and_reproducible_inside(vp, seed, sampler):
    """Seeds are the 64-bit Philox key: ``2**70`` once wrapped silently onto ``0``.  An accepted
    seed gives the same sample twice (bitwise) and another sample than its neighbour."""
    s = build(sampler, vp)
    if not 0 <= seed <= 2**64 - 1:
        with raises_naming(ValueError, "seed"):
            s.sample(unit_score, shape=(2, 3), seed=seed)
        return
    a = s.sample(unit_score, shape=(2, 3), seed=seed)
    assert torch.equal(a, s.sample(unit_score, shape=(2, 3), seed=seed))
    other = seed - 1 if seed > 0 else 1
    assert not torch.equal(a, s.sample(unit_score, shape=(2, 3), seed=other))


def test_numpy_integer_seeds_are_the_same_key_as_python_ints(vp):
    em = EulerMaruyama(vp, 2)
    want = em.sample(unit_score, shape=(2, 3), seed=2**64 - 1)
    assert torch.equal(em.sample(unit_score, shape=(2, 3), seed=np.uint64(2**64 - 1)), want)


# ------------------------------------------------------------------ x_T and y
@fuzz_examples(30)
@given(sampler=st.sampled_from(sorted(ALL)), where=st.integers(0, 5),
       bad=st.sampled_from([math.nan, math.inf, -math.inf]),
       which=st.sampled_from(["x_T", "y", "y_only"]), drift_in_y=st.booleans(),
       dtype=st.sampled_from([torch.float32, D64]))
def test_non_finite_x_T_or_y_is_blamed_on_itself_not_on_score_fn(vp, ouve, sampler, where, bad, which, drift_in_y,
                                                                 dtype):
    """A NaN/inf anywhere in ``x_T`` or ``y`` (with or without ``y``-drift) is a ValueError naming
    it, before any step runs: it was reported as "score_fn returned non-finite values"."""
    sde = ouve if drift_in_y and sampler != "ddpm" else vp
    x_T, y = torch.zeros(2, 3, dtype=dtype), torch.ones(2, 3, dtype=dtype)
    target = x_T if which == "x_T" else y
    target.view(-1)[where] = bad
    calls = []

    def score(x, t):
        calls.append(t)
        return -x

    with raises_naming(ValueError, "x_T" if which == "x_T" else "y"):
        build(sampler, sde).sample(score, y=y, x_T=None if which == "y_only" else x_T, seed=0)
    assert not calls


@pytest.mark.parametrize("sampler", sorted(ALL))
@pytest.mark.parametrize("y, x_T, exc", [
    (torch.ones(2, 3, dtype=torch.int64), None, TypeError), (torch.ones(2, 3, dtype=torch.float16), None, TypeError),
    (torch.ones(2, 3, dtype=torch.complex64), torch.zeros(2, 3), TypeError),  # complex y beside a real x_T
    (torch.ones(2, 3, dtype=D64), torch.zeros(2, 3), TypeError),
    (torch.ones(2, 4), torch.zeros(2, 3), ValueError), ([[1.0, 2.0, 3.0]], None, TypeError),
    (np.ones((2, 3)), None, TypeError), (torch.tensor(1.0), None, ValueError),
], ids=["int", "half", "complex_vs_real", "f64_vs_f32", "shape", "list", "numpy", "0-d"])
def test_y_of_a_wrong_kind_is_blamed_on_y_not_on_dtype(ouve, sampler, y, x_T, exc):
    """``y`` of a non-float dtype was reported as a bad ``dtype`` argument."""
    sde = ouve if sampler != "ddpm" else LinearSDE("-x", "1")
    with raises_naming(exc, "y"):
        build(sampler, sde).sample(unit_score, y=y, x_T=x_T, seed=0)


@pytest.mark.parametrize("sampler", sorted(ALL))
@pytest.mark.parametrize("x_T, exc", [
    ([[0.0, 1.0]], TypeError), (np.zeros((2, 3)), TypeError), (torch.zeros(2, 3, dtype=torch.int64), TypeError),
    (torch.zeros(0, 3), ValueError),
    (torch.zeros(()), ValueError),
], ids=["list", "numpy", "int", "empty", "0-d"])  # complex x_T is data (issue 14): tests/test_complex_data.py
def test_x_T_of_a_wrong_kind_is_named(vp, sampler, x_T, exc):
    with raises_naming(exc, "x_T"):
        build(sampler, vp).sample(unit_score, x_T=x_T, seed=0)


@pytest.mark.parametrize("sampler", sorted(ALL))
@pytest.mark.parametrize("which", ["x_T", "y", "device"])
def test_the_meta_device_is_refused_naming_the_argument_before_score_fn_runs(ouve, sampler, which):
    """Meta tensors carry no data: ``x_T`` or ``y`` on the meta device, or ``device="meta"``, was a
    ``RuntimeError`` from ``Tensor.item()`` deep in the run."""
    sde = ouve if sampler != "ddpm" else LinearSDE("-x", "1")
    where = {which: "meta"}
    y = torch.zeros(2, 3, device=where.get("y", "cpu"))
    x_T = torch.zeros(2, 3, device=where.get("x_T", "cpu")) if which != "device" else None
    kwargs = {"device": "meta"} if which == "device" else {}
    calls = []
    with pytest.raises(ValueError, match=rf"^{which}('s device)? is 'meta': meta tensors carry no data"):
        build(sampler, sde).sample(lambda x, t: calls.append(t) or -x, y=y,
                                   x_T=x_T, seed=0, **kwargs)
    assert not calls


# ------------------------------------------------------------------ what score_fn returns
@pytest.mark.parametrize("sampler", sorted(FIXED_STEP))
@pytest.mark.parametrize("returns, exc", [
    (lambda x: None, SolverError), (lambda x: x.tolist(), SolverError), (lambda x: x.numpy(), SolverError),
    (lambda x: x[:1], SolverError), (lambda x: x.double(), SolverError), (lambda x: x[0], SolverError),
    (lambda x: x * math.nan, NonFiniteError), (lambda x: x + math.inf, NonFiniteError),
], ids=["None", "list", "numpy", "short", "float64", "broadcastable", "nan", "inf"])
def test_a_bad_score_fn_result_is_a_solver_error_naming_score_fn_and_the_step(vp, sampler, returns, exc):
    """``None`` used to be read as "no score term": a silent run without the prior."""
    with pytest.raises(exc, match=r"step 0.*score_fn|score_fn.*step 0"):
        build(sampler, vp).sample(lambda x, t: returns(x), shape=(2, 3), seed=0)


# ------------------------------------------------------------------ constructors
@pytest.mark.parametrize("make, exc, name", [
    (lambda sde: EulerMaruyama(sde, 0), ValueError, "steps"), (lambda sde: EulerMaruyama(sde, 2.0), TypeError, "steps"),
    (lambda sde: EulerMaruyama(sde, True), TypeError, "steps"),
    (lambda sde: EulerMaruyama(sde, 2, t_eps=math.nan), ValueError, "t_eps"),
    (lambda sde: EulerMaruyama(sde, 2, t_eps=1.0), ValueError, "t_eps"),
    (lambda sde: EulerMaruyama(sde, 2, t_eps=torch.tensor(0.1)), TypeError, "t_eps"),
    (lambda sde: EulerMaruyama("vp", 2), TypeError, "sde"),
    (lambda sde: PredictorCorrector(sde, 2, predictor="heun"), ValueError, "predictor"),
    (lambda sde: PredictorCorrector(sde, 2, predictor=EulerMaruyama), ValueError, "predictor"),
    (lambda sde: PredictorCorrector(sde, 2, corrector="no_such_corrector"), ValueError, "corrector"),
    (lambda sde: PredictorCorrector(sde, 2, corrector_steps=-1), ValueError, "n_steps"),
    (lambda sde: PredictorCorrector(sde, 2, corrector_steps=1.5), TypeError, "n_steps"),
    (lambda sde: PredictorCorrector(sde, 2, norm="l1"), ValueError, "norm"),
    (lambda sde: PredictorCorrector(sde, 2, alpha=math.nan), ValueError, "alpha"),
    (lambda sde: PredictorCorrector(sde, 2, alpha="phi"), ValueError, "alpha"),
    (lambda sde: PredictorCorrector(sde, 2, denoise=1), TypeError, "denoise"),
    (lambda sde: ProbabilityFlow(sde, 2, method="rk4"), ValueError, "method"),
    (lambda sde: AdaptiveProbabilityFlow(sde, t_eps=-1.0), ValueError, "t_eps"),
], ids=lambda v: "" if callable(v) or isinstance(v, type) else v)
def test_bad_constructor_arguments_are_named(vp, make, exc, name):
    with raises_naming(exc, name):
        make(vp)


@fuzz_examples(30)
@given(snr=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.16, "0.16", None, True])))
def test_snr_is_a_finite_positive_number_or_refused_naming_snr(vp, snr):
    """``snr=inf`` was accepted (an infinite Langevin step)."""
    ok = isinstance(snr, float) and math.isfinite(snr) and snr > 0
    for make in (lambda: LangevinCorrector(vp, snr=snr), lambda: PredictorCorrector(vp, 2, snr=snr)):
        if ok:
            assert make() is not None
        else:
            with raises_naming((ValueError, TypeError), "snr"):
                make()


# ------------------------------------------------------------------ simulate
@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(t0=math.nan), ValueError, "t0"), (dict(t1=True), TypeError, "t1"),
    (dict(t0=torch.tensor(0.1)), TypeError, "t0"),
    (dict(t1=1.5), ValueError, "t1"), (dict(t0=0.5, t1=0.5), ValueError, "t1"), (dict(t0=-0.1), ValueError, "t0"),
    (dict(seed=2**64), ValueError, "seed"), (dict(dtype=D64), ValueError, "dtype"),
    (dict(device="gpu"), ValueError, "device"),
    (dict(denoise=True), TypeError, "denoise"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_simulate_names_its_bad_arguments(vp, kwargs, exc, name):
    with raises_naming(exc, name):
        EulerMaruyama(vp, 2).simulate(torch.zeros(2, 3), **kwargs)


@pytest.mark.parametrize("x0, exc", [([[0.0]], TypeError), (torch.zeros(2, 3, dtype=torch.int64), TypeError),
                                     (torch.zeros(0, 3), ValueError), (torch.full((2, 3), math.nan), ValueError),
                                     (torch.zeros(2, 3, device="meta"), ValueError)],
                         ids=["list", "int", "empty", "nan", "meta"])
def test_simulate_names_a_bad_x0(vp, x0, exc):
    with raises_naming(exc, "x0"):
        EulerMaruyama(vp, 2).simulate(x0)


@pytest.mark.parametrize("dtype", [torch.float32, D64])
@pytest.mark.parametrize("steps", [1, 3, 8])
def test_noise_free_forward_euler_is_the_closed_form_recursion(steps, dtype):
    """``dx = (y - x) dt`` (g = 0) by forward Euler from 0 to 1: ``x_n = y + (1 - h)^n (x0 - y)``."""
    sde = LinearSDE("y - x", "0")
    g = torch.Generator().manual_seed(steps)
    x0, y = torch.randn(4, 3, generator=g, dtype=dtype), torch.randn(4, 3, generator=g, dtype=dtype)
    got = EulerMaruyama(sde, steps).simulate(x0, y, t0=0.0, t1=1.0, seed=0)
    h = 1.0 / steps
    want = y.double() + (1 - h) ** steps * (x0.double() - y.double())
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(got.double(), want, rtol=0, atol=8 * steps * eps)


# ------------------------------------------------------------------ the exponential integrator at few steps
def vp_marginals(b0=0.1, b1=20.0):
    """VP's closed forms: mx = exp(-B/2), std = sqrt(1 - exp(-B)), beta, B = int_0^t beta."""
    B = lambda t: b0 * t + (b1 - b0) * t * t / 2  # noqa: E731
    return (lambda t: math.exp(-B(t) / 2)), (lambda t: math.sqrt(-math.expm1(-B(t)))), (lambda t: b0 + (b1 - b0) * t)


def reverse_output_variance(method, steps, data_var, t_eps=1e-3):
    """Exact output variance / true variance at ``t_eps`` of a reverse run on VP with Gaussian data
    ``N(0, data_var)``, its exact score ``-x / P_t`` (``P = mx^2 data_var + std^2``), the prior draw
    ``x_T ~ N(0, std(T)^2)`` and every step's noise (``denoise=False``), by the linear recursion
    ``Var_s = (A - S / P_t)^2 Var_t + N^2`` with ``(A, S, N)`` written here from the papers:

    * ``"exponential"``: SDE-DPM-Solver-1 (Lu et al. 2022, DPM-Solver++ eq. 10):
      ``A = r``, ``S = 2 sigma_s sigma_t (e^h - 1)``, ``N^2 = sigma_s^2 (e^(2h) - 1)``;
    * ``"euler_maruyama"``: ``A = 1 + beta h / 2``, ``S = beta h``, ``N^2 = beta h`` at ``t``.
    """
    mx, sig, beta = vp_marginals()
    ts = np.linspace(1.0, t_eps, steps + 1)
    var = sig(1.0) ** 2
    for t, s in zip(ts[:-1], ts[1:]):
        if method == "exponential":
            r = mx(s) / mx(t)
            eh = r * sig(t) / sig(s)
            A, S, N2 = r, 2 * sig(s) * sig(t) * (eh - 1), sig(s) ** 2 * (eh * eh - 1)
        else:
            h = t - s
            A, S, N2 = 1 + beta(t) * h / 2, beta(t) * h, beta(t) * h
        P = mx(t) ** 2 * data_var + sig(t) ** 2
        var = (A - S / P) ** 2 * var + N2
    return var / (mx(t_eps) ** 2 * data_var + sig(t_eps) ** 2)


@pytest.mark.parametrize("steps", range(1, 13))
def test_exponential_integrator_warns_where_it_blows_up_on_vp_and_not_beyond(vp, steps):
    """Issue 12: at 1-4 steps on VP its variance for Gaussian data is in the thousands where
    Euler-Maruyama's is a few.  Where the exact recursion puts it more than 10x off the truth and
    10x further off than Euler-Maruyama (for data variance 0.01, 0.25 or 1), the constructor must
    warn; from 8 steps on (last log-SNR step below 4) it must not."""
    off = lambda ratio: max(ratio, 1 / ratio)  # noqa: E731
    blows_up = any(off(reverse_output_variance("exponential", steps, dv)) > 10 * max(
        1.0, off(reverse_output_variance("euler_maruyama", steps, dv))) for dv in (0.01, 0.25, 1.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ExponentialIntegrator(vp, steps)
    warned = any(issubclass(w.category, RuntimeWarning) and "ExponentialIntegrator" in str(w.message)
                 and "steps" in str(w.message) for w in caught)
    if blows_up or steps <= 4:
        assert warned, f"{steps} steps: the variance is far off, and further than Euler-Maruyama's, without a warning"
    if steps >= 8:
        assert not warned


def test_exponential_integrator_recursion_matches_a_seeded_run(vp):
    """The recursion is the sampler's law: the sample variance of a large seeded run at 3 steps
    (data N(0, 0.25), ``denoise=False``) agrees with it within 5 standard errors."""
    data_var = 0.25
    mx, sig, _ = vp_marginals()
    want = reverse_output_variance("exponential", 3, data_var) * (mx(1e-3) ** 2 * data_var + sig(1e-3) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sampler = ExponentialIntegrator(vp, 3)

    def score(x, t):
        mx = torch.exp(-(0.1 * t + 9.95 * t * t) / 2)[:, None].double()
        return (-x.double() / (mx**2 * data_var + 1 - mx**2)).to(x.dtype)

    x = sampler.sample(score, shape=(20000, 1), seed=3, dtype=D64, denoise=False)
    got = float(x.var())
    assert abs(got - want) <= 5 * want * math.sqrt(2 / 20000)


# ------------------------------------------------------------------ DMPS front door
@pytest.mark.parametrize("call, exc, name", [
    (lambda d: d.sample(unit_score, torch.full((1, 4), math.nan), seed=0), ValueError, "y"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4, dtype=torch.int64), seed=0), TypeError, "y"),
    (lambda d: d.sample(unit_score, [[0.0] * 4], seed=0), ValueError, "y"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), x_T=torch.full((1, 1, 4, 4), math.inf), seed=0),
     ValueError, "x_T"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), seed=2**70), ValueError, "seed"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), seed=0, device="gpu"), ValueError, "device"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), seed=0, dtype=torch.int32), TypeError, "dtype"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), seed=0, backend="jax"), ValueError, "backend"),
    (lambda d: d.sample(lambda x, t: None, torch.zeros(1, 4), seed=0), TypeError, "prior_score_fn"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4, device="meta"), seed=0), ValueError, "y"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), x_T=torch.zeros(1, 1, 4, 4, device="meta"), seed=0),
     ValueError, "x_T"),
    (lambda d: d.sample(unit_score, torch.zeros(1, 4), seed=0, device="meta"), ValueError, "device"),
], ids=["y_nan", "y_int", "y_list", "x_T_inf", "seed", "device", "dtype", "backend", "score_none", "y_meta",
        "x_T_meta", "device_meta"])
def test_dmps_sample_names_its_bad_arguments(vp, call, exc, name):
    with raises_naming(exc, name):
        call(DMPS(vp, SuperResolution(2, 1, 4), 0.1, steps=2))


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(sigma_y=math.nan), ValueError, "sigma_y"), (dict(sigma_y=-0.1), ValueError, "sigma_y"),
    (dict(lam=math.inf), ValueError, "lam"), (dict(steps=0), ValueError, "steps"),
    (dict(solver="heun"), ValueError, "solver"),
    (dict(op="superres"), ValueError, "op"),
], ids=lambda v: repr(v) if isinstance(v, dict) else "")
def test_dmps_constructor_names_its_bad_arguments(vp, kwargs, exc, name):
    args = dict(op=SuperResolution(2, 1, 4), sigma_y=0.1) | kwargs
    with raises_naming(exc, name):
        DMPS(vp, **args)
