"""Sampler interface: argument checks, errors that name the step, reproducibility, backends agree."""
import dataclasses
import warnings

import pytest
import torch

from sdekit.solvers import (EulerMaruyama, ExponentialIntegrator, LangevinCorrector, NonFiniteError,
                            PredictorCorrector, ProbabilityFlow, ReverseDiffusion, SolverError)

# the fixtures vp (VPSDE(0.1, 20)) and ouve (OUVE()) come from conftest.py


def unit_score(x, t):
    return -x


SAMPLERS = {
    "em": lambda sde, n=8: EulerMaruyama(sde, n),
    "rd": lambda sde, n=8: ReverseDiffusion(sde, n),
    "exp": lambda sde, n=8: ExponentialIntegrator(sde, n),
    "pf": lambda sde, n=8: ProbabilityFlow(sde, n),
    "pf_exp": lambda sde, n=8: ProbabilityFlow(sde, n, method="exponential"),
    "pc": lambda sde, n=8: PredictorCorrector(sde, n, corrector_steps=2),
    "pc_em": lambda sde, n=8: PredictorCorrector(sde, n, predictor="euler_maruyama", norm="batch_mean"),
}


def test_solvers_declare_their_orders():
    for cls in (EulerMaruyama, ReverseDiffusion, ExponentialIntegrator, ProbabilityFlow):
        assert cls.weak_order == 1.0 and cls.strong_order == 1.0
    assert ProbabilityFlow.noise is False and EulerMaruyama.noise is True


# ------------------------------------------------------------------ reproducibility and backends
@pytest.mark.parametrize("name", list(SAMPLERS))
def test_same_seed_same_sample_and_other_seed_differs(vp, name):
    s = SAMPLERS[name](vp)
    a = s.sample(unit_score, shape=(2, 3, 4, 4), seed=7)
    assert torch.equal(a, s.sample(unit_score, shape=(2, 3, 4, 4), seed=7))
    b = s.sample(unit_score, shape=(2, 3, 4, 4), seed=8)
    assert not torch.equal(a, b)


def test_seed_none_follows_torch_manual_seed(vp):
    em = EulerMaruyama(vp, 4)
    torch.manual_seed(3)
    a = em.sample(unit_score, shape=(2, 8))
    torch.manual_seed(3)
    assert torch.equal(a, em.sample(unit_score, shape=(2, 8)))


@pytest.mark.parametrize("name,dtype", [(n, d) for n in SAMPLERS for d in (torch.float32, torch.float64)
                                        if not (n == "pc_em" and d == torch.float64)])
def test_triton_backend_draws_the_same_sample_as_torch(ouve, name, dtype, triton_device):
    y = torch.randn(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), dtype=dtype).to(triton_device)

    def score(x, t):
        return -(x - y) / (0.05 + t.view(-1, 1, 1, 1))

    s = SAMPLERS[name](ouve, 6)
    a = s.sample(score, y=y, seed=21, backend="torch")
    b = s.sample(score, y=y, seed=21, backend="triton")
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    assert torch.allclose(a, b, rtol=tol, atol=tol), (a - b).abs().max()


def test_forward_simulate_backends_agree_and_reproduce(ouve, triton_device):
    em = EulerMaruyama(ouve, 10)
    x0, y = torch.zeros(3, 40, device=triton_device), torch.ones(3, 40, device=triton_device)
    a = em.simulate(x0, y, seed=4, backend="torch")
    auto = em.simulate(x0, y, seed=4)  # the compiled "cpu" backend where built: normals within 3 ulp
    assert torch.equal(auto, em.simulate(x0, y, seed=4))
    assert torch.allclose(a, auto, atol=1e-6)
    assert torch.allclose(a, em.simulate(x0, y, seed=4, backend="triton"), atol=1e-6)
    assert torch.equal(x0, torch.zeros_like(x0))  # inputs are not modified


def test_sample_does_not_modify_x_T_and_accepts_strided_x_T(vp):
    em = EulerMaruyama(vp, 5)
    base = torch.randn(2, 8, 6)
    x_T = base[:, ::2]
    keep = x_T.clone()
    a = em.sample(unit_score, x_T=x_T, seed=1)
    assert torch.equal(x_T, keep)
    assert torch.equal(a, em.sample(unit_score, x_T=x_T.contiguous(), seed=1))


def test_trajectory_and_progress_bar(vp, capsys):
    em = EulerMaruyama(vp, 5)
    x, traj = em.sample(unit_score, shape=(2, 4), seed=0, return_trajectory=True, progress=True)
    assert traj.shape == (6, 2, 4) and torch.equal(traj[-1], x)
    assert "EulerMaruyama" in capsys.readouterr().err


def test_score_fn_sees_per_sample_times_from_T_to_t_eps(vp):
    seen = []

    def score(x, t):
        seen.append(t.clone())
        return -x

    EulerMaruyama(vp, 4, t_eps=0.1).sample(score, shape=(3, 2), seed=0)
    assert all(t.shape == (3,) for t in seen)
    assert torch.allclose(torch.stack([t[0] for t in seen]), torch.tensor([1.0, 0.775, 0.55, 0.325]))


def test_denoise_drops_the_last_noise(vp):
    pc = PredictorCorrector(vp, 3, corrector=None, denoise=True)
    rd = ReverseDiffusion(vp, 3)
    x_T = torch.randn(2, 16)
    a, b = pc.sample(unit_score, x_T=x_T, seed=5), rd.sample(unit_score, x_T=x_T, seed=5, denoise=False)
    assert not torch.allclose(a, b)
    assert torch.equal(a, rd.sample(unit_score, x_T=x_T, seed=5))  # denoise=True is every sampler's default
    pc_noisy = PredictorCorrector(vp, 3, corrector=None, denoise=False)
    assert torch.allclose(pc_noisy.sample(unit_score, x_T=x_T, seed=5), b)


# ------------------------------------------------------------------ bad input
def test_bad_constructor_arguments_are_named(vp):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        EulerMaruyama(vp, 0)
    with pytest.raises(TypeError, match="steps must be an int"):
        EulerMaruyama(vp, 10.0)
    for bad in (0.0, -0.1, 1.0, 2.0):
        with pytest.raises(ValueError, match=r"t_eps must lie in \(0, T\)"):
            EulerMaruyama(vp, 10, t_eps=bad)
    with pytest.raises(TypeError, match="sde must be"):
        EulerMaruyama(object(), 10)
    with pytest.raises(ValueError, match="predictor must be"):
        PredictorCorrector(vp, 10, predictor="heun")
    with pytest.raises(ValueError, match="corrector must be"):
        PredictorCorrector(vp, 10, corrector="hmc")
    with pytest.raises(ValueError, match="snr"):
        LangevinCorrector(vp, snr=-1)
    with pytest.raises(ValueError, match="method"):
        ProbabilityFlow(vp, 10, method="rk4")


def test_bad_sample_arguments_are_named(vp, ouve):
    em = EulerMaruyama(vp, 4)
    with pytest.raises(ValueError, match="needs x_T, y or shape"):
        em.sample(unit_score)
    with pytest.raises(ValueError, match="does not match x_T's shape"):
        em.sample(unit_score, x_T=torch.zeros(2, 3), shape=(2, 4))
    with pytest.raises(TypeError, match="x_T must be float32 or float64"):
        em.sample(unit_score, x_T=torch.zeros(2, 3, dtype=torch.float16))
    with pytest.raises(ValueError, match="batch dimension"):
        em.sample(unit_score, x_T=torch.zeros(()))
    with pytest.raises(TypeError, match="score_fn must be callable"):
        em.sample(None, shape=(2, 3))
    with pytest.raises(TypeError, match="seed must be an int"):
        em.sample(unit_score, shape=(2, 3), seed=1.5)
    with pytest.raises(ValueError, match="backend must be"):
        em.sample(unit_score, shape=(2, 3), backend="jax")
    with pytest.raises(ValueError, match="check_every"):
        em.sample(unit_score, shape=(2, 3), check_every=-1)
    e2 = EulerMaruyama(ouve, 4)
    with pytest.raises(ValueError, match="depends on y"):
        e2.sample(unit_score, shape=(2, 3))
    with pytest.raises(ValueError, match="y has shape"):
        e2.sample(unit_score, x_T=torch.zeros(2, 3), y=torch.zeros(2, 4))
    with pytest.raises(TypeError, match="y has dtype"):
        e2.sample(unit_score, x_T=torch.zeros(2, 3), y=torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="y's device is 'meta'"):  # refused as y, before comparing with x_T
        e2.sample(unit_score, x_T=torch.zeros(2, 3), y=torch.zeros(2, 3, device="meta"))
    with pytest.raises(ValueError, match="need 0 <= t0 < t1"):
        e2.simulate(torch.zeros(2, 3), torch.zeros(2, 3), t0=0.5, t1=0.2)
    with pytest.raises(RuntimeError, match="unavailable"):
        em.sample(unit_score, shape=(2, 3), backend="cuda")


@pytest.mark.parametrize("name", ["em", "pc"])
def test_score_fn_returning_wrong_shape_or_dtype_names_the_step(vp, name):
    calls = []

    def score(x, t):
        calls.append(1)
        return -x if len(calls) < 3 else -x[:, :1]

    with pytest.raises(SolverError, match=r"at step \d+ of 8 .*score_fn returned .*\(2, 1\).*\(2, 4\)"):
        SAMPLERS[name](vp).sample(score, shape=(2, 4), seed=0)
    with pytest.raises(SolverError, match=r"at step 0 of 8 .*score_fn returned .*torch.float64.*torch.float32"):
        SAMPLERS[name](vp).sample(lambda x, t: -x.double(), shape=(2, 4), seed=0)


@pytest.mark.parametrize("backend,name", [("torch", "em"), ("torch", "pc"), ("torch", "exp"),
                                          ("triton", "em"), ("triton", "exp")])  # the Triton PC case costs 6 s
def test_non_finite_score_stops_with_the_first_bad_step(vp, backend, name, request):
    device = request.getfixturevalue("triton_device") if backend == "triton" else "cpu"

    def score(x, t):
        return torch.where(t.view(-1, 1) < 0.4, torch.full_like(x, float("nan")), -x)

    with pytest.raises(NonFiniteError, match=r"score_fn returned non-finite values .* at step 5 of 8 .*t=0\.37"):
        SAMPLERS[name](vp).sample(score, shape=(2, 4), seed=0, backend=backend, device=device)


def test_check_every_stops_early_without_running_every_step(vp):
    calls = []

    def score(x, t):
        calls.append(1)
        return torch.full_like(x, float("inf")) if len(calls) == 2 else -x

    with pytest.raises(NonFiniteError, match="at step 1 of 8"):
        EulerMaruyama(vp, 8).sample(score, shape=(2, 4), seed=0, check_every=2)
    assert len(calls) == 2  # stopped at the first check, after step 1


def test_overflowing_update_is_reported_as_such(vp):
    with pytest.raises(NonFiniteError, match="the update produced non-finite values at step 0"):
        EulerMaruyama(vp, 4).sample(lambda x, t: torch.full_like(x, 3e38), shape=(2, 4), seed=0)


def test_float64_state_and_default_dtype(vp):
    em = EulerMaruyama(vp, 3)
    assert em.sample(unit_score, shape=(2, 3), seed=0).dtype == torch.float32
    assert em.sample(unit_score, shape=(2, 3), seed=0, dtype=torch.float64).dtype == torch.float64
    assert em.sample(unit_score, x_T=torch.zeros(2, 3, dtype=torch.float64), seed=0).dtype == torch.float64


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_gpu_sampling_matches_cpu_reference_and_graph_capture(vp, backend):
    from sdekit.kernels.dispatch import backend_unavailable_reason
    dev = torch.device("cuda")
    if backend_unavailable_reason(backend, dev):
        pytest.skip(backend_unavailable_reason(backend, dev))
    pc = PredictorCorrector(vp, 20)
    x_T = torch.randn(4, 3, 16, 16)
    cpu = pc.sample(unit_score, x_T=x_T, seed=9, backend="torch")
    gpu = pc.sample(unit_score, x_T=x_T.to(dev), seed=9, backend=backend)
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4, rtol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture falls back with a warning
        graphed = pc.sample(unit_score, x_T=x_T.to(dev), seed=9, backend=backend, cuda_graph=True)
    assert torch.allclose(graphed, gpu, atol=1e-6)


def test_sampling_loop_does_not_sync_per_step(vp, monkeypatch):
    """Host reads of tensor values (item, bool, int, float, tolist) do not grow with the step count."""
    counts = {"n": 0}
    for name in ("item", "__bool__", "__int__", "__float__", "tolist"):
        orig = getattr(torch.Tensor, name)

        def counted(self, *a, _orig=orig, **k):
            counts["n"] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    reads = []
    for steps in (4, 32):
        for sampler in (EulerMaruyama(vp, steps), PredictorCorrector(vp, steps)):
            counts["n"] = 0
            sampler.sample(unit_score, shape=(2, 8), seed=0)
            reads.append(counts["n"])
    assert reads[0] == reads[2] and reads[1] == reads[3], reads


def test_cuda_graph_capture_failure_falls_back_to_the_eager_loop():
    """run_graphed's fallback, exercised on CPU where capture cannot even start."""
    from sdekit.solvers.loop import run_graphed
    x = torch.zeros(3)
    backup = x.clone()

    def loop():
        for _ in range(4):
            x.add_(1.0)

    with pytest.warns(RuntimeWarning, match="CUDA graph capture failed"):
        run_graphed(loop, lambda: x.add_(100.0), x, backup)
    assert torch.equal(x, torch.full((3,), 4.0))


class _FakeCuda:
    """Just enough of torch.cuda for run_graphed's control flow on CPU: streams as names, a graph
    that replays the captured callable; ``fail`` makes capture_end raise, as a failed capture does."""

    def __init__(self, fail: bool):
        self.fail, self.current, self.log = fail, "caller", []
        fake = self

        class Stream:
            def __init__(self, device=None):
                self.name = "side"

            def wait_stream(self, other):
                pass

        class CUDAGraph:
            def capture_begin(self):
                fake.log.append(("capture_begin", fake.current))

            def capture_end(self):
                fake.log.append(("capture_end", fake.current))
                if fake.fail:
                    raise RuntimeError("operation not permitted when stream is capturing")

            def replay(self):
                fake.log.append(("replay", fake.current))
                fake.captured()

        self.Stream, self.CUDAGraph = Stream, CUDAGraph

    def install(self, monkeypatch, loop):
        import contextlib

        @contextlib.contextmanager
        def stream(s):
            previous, self.current = self.current, s.name
            try:
                yield
            finally:
                self.current = previous

        class Caller:
            name = "caller"

            def wait_stream(self, other):
                pass

        self.captured = loop
        for name, value in (("Stream", self.Stream), ("CUDAGraph", self.CUDAGraph), ("stream", stream),
                            ("current_stream", lambda device=None: Caller()),
                            ("synchronize", lambda device=None: None)):
            monkeypatch.setattr(torch.cuda, name, value)


@pytest.mark.parametrize("fail", [False, True])
def test_cuda_graph_capture_runs_on_a_side_stream_and_gives_the_callers_stream_back(monkeypatch, fail):
    """Captured on the side stream, replayed on the caller's; after a failed capture_end the
    caller's stream is current again (torch.cuda.graph's __exit__ would leave the side one) and
    the loop runs eagerly from the saved state."""
    from sdekit.solvers.loop import run_graphed
    x = torch.zeros(3)
    backup = x.clone()

    def loop():
        x.add_(1.0)

    fake = _FakeCuda(fail)
    fake.install(monkeypatch, loop)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_graphed(loop, lambda: x.add_(100.0), x, backup)
    assert fake.current == "caller"
    assert fake.log[:2] == [("capture_begin", "side"), ("capture_end", "side")]
    assert fake.log[2:] == ([] if fail else [("replay", "caller")])
    assert [str(w.message).startswith("CUDA graph capture failed") for w in caught] == ([True] if fail else [])
    assert torch.equal(x, torch.ones(3))  # one pass of the loop from the backup, however it ran


def test_cuda_graph_request_on_cpu_runs_eagerly(vp):
    em = EulerMaruyama(vp, 4)
    a = em.sample(unit_score, shape=(2, 8), seed=1)
    assert torch.equal(a, em.sample(unit_score, shape=(2, 8), seed=1, cuda_graph=True))


# ------------------------------------------------------------------ run options, plan, registry
def test_run_options_as_one_object_as_keywords_or_positionally_give_the_same_sample(vp):
    from sdekit.solvers import RunOptions
    em = EulerMaruyama(vp, 4)
    a = em.sample(unit_score, shape=(2, 8), seed=3, backend="torch", denoise=False)
    assert torch.equal(a, em.sample(unit_score, None, None, (2, 8), 3, "torch", denoise=False))
    opts = RunOptions(seed=3, backend="torch", denoise=False)
    assert torch.equal(a, em.sample(unit_score, shape=(2, 8), options=opts))
    assert not torch.equal(a, em.sample(unit_score, shape=(2, 8), options=opts, seed=4))  # keywords override
    with pytest.raises(TypeError, match="unknown run option"):
        em.sample(unit_score, shape=(2, 8), sede=3)
    with pytest.raises(TypeError, match="both positionally and by keyword"):
        em.sample(unit_score, None, None, (2, 8), 3, seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.seed = 5


def test_bad_run_options_are_refused_naming_the_argument(vp):
    em = EulerMaruyama(vp, 2)
    for seed in (2**64, 2**70, -1):
        with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\*\*64 - 1\]"):
            em.sample(unit_score, shape=(2, 3), seed=seed)
    assert em.sample(unit_score, shape=(2, 3), seed=2**64 - 1).shape == (2, 3)
    with pytest.raises(ValueError, match="seed must lie"):
        em.simulate(torch.zeros(2, 3), seed=2**64)
    with pytest.raises(ValueError, match="device='gpu' is not a torch device"):
        em.sample(unit_score, shape=(2, 3), device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' but this torch build sees no CUDA device"):
            em.sample(unit_score, shape=(2, 3), device="cuda")
    for dtype in (torch.int64, torch.float16, "float32"):
        with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
            em.sample(unit_score, shape=(2, 3), dtype=dtype)
    with pytest.raises(ValueError, match="dtype=torch.float64 disagrees with x_T's dtype"):
        em.sample(unit_score, x_T=torch.zeros(2, 3), dtype=torch.float64)
    for flag in ("progress", "denoise", "cuda_graph", "return_trajectory"):
        with pytest.raises(TypeError, match=f"{flag} must be True or False"):
            em.sample(unit_score, shape=(2, 3), **{flag: 1})
    for shape, err, words in ((5, TypeError, "shape must be a tuple of ints"),
                              ((2.5, 3), TypeError, r"shape\[0\] must be an int"),
                              ((2, -3), ValueError, r"shape\[1\] must be >= 1"), ((), ValueError, "shape must have"),
                              ((0, 3), ValueError, r"shape\[0\] must be >= 1")):
        with pytest.raises(err, match=words):
            em.sample(unit_score, shape=shape)


def test_non_finite_or_non_float_inputs_are_reported_as_the_input_not_the_score(ouve):
    em = EulerMaruyama(ouve, 3)
    x_T, y = torch.zeros(2, 3), torch.ones(2, 3)
    nan = torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="x_T holds non-finite values"):
        em.sample(unit_score, y=y, x_T=nan)
    with pytest.raises(ValueError, match="y holds non-finite values"):
        em.sample(unit_score, y=nan, x_T=x_T)
    with pytest.raises(ValueError, match="y holds non-finite values"):
        em.sample(unit_score, y=nan)
    with pytest.raises(ValueError, match="x0 holds non-finite values"):
        em.simulate(nan, y)
    for bad_y in (torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.float16)):
        with pytest.raises(TypeError, match="y must be float32 or float64"):
            em.sample(unit_score, y=bad_y)
        with pytest.raises(TypeError, match="y must be float32 or float64"):
            em.sample(unit_score, y=bad_y, x_T=x_T)


def test_snr_and_alpha_of_the_corrector_must_be_finite_and_positive(vp):
    for snr in (float("inf"), float("nan"), 0.0):
        with pytest.raises(ValueError, match="snr must be"):
            LangevinCorrector(vp, snr=snr)
        with pytest.raises(ValueError, match="snr must be"):
            PredictorCorrector(vp, 4, snr=snr)
    for alpha in ("phi", 0.0, float("inf")):
        with pytest.raises(ValueError, match="alpha must be"):
            LangevinCorrector(vp, alpha=alpha)
    with pytest.raises(ValueError, match="norm must be"):
        LangevinCorrector(vp, norm="l1")


def test_samplers_are_abstract_reverse_samplers_and_predictor_corrector_is_one(vp):
    from sdekit.solvers import Corrector, ReverseSampler
    with pytest.raises(TypeError, match="abstract"):
        ReverseSampler(vp, 4)
    with pytest.raises(TypeError, match="abstract"):
        Corrector()
    pc = PredictorCorrector(vp, 4)
    assert isinstance(pc, ReverseSampler) and isinstance(pc.corrector, Corrector)
    assert pc.weak_order == ReverseDiffusion.weak_order


def test_one_registry_names_the_predictors_and_the_dmps_solvers(vp):
    from sdekit.inverse import DMPS, AncestralDDPM, DenseOperator
    from sdekit.solvers import AncestralDDPM as SolversDDPM
    from sdekit.solvers.registry import SAMPLERS
    assert AncestralDDPM is SolversDDPM and SAMPLERS["ddpm"] is SolversDDPM
    assert {"ancestral_sampling", "ddpm", "euler_maruyama", "exponential", "none", "probability_flow",
            "reverse_diffusion"} <= set(SAMPLERS)
    x_T = torch.randn(2, 6, generator=torch.Generator().manual_seed(0))
    for name, cls in SAMPLERS.items():  # a PC without corrector is its predictor, bit for bit
        if name == "none":  # samples nothing without a corrector: refused, never x_T returned as a sample
            with pytest.raises(ValueError, match="needs a corrector"):
                PredictorCorrector(vp, 9, predictor=name, corrector=None)
            with pytest.raises(ValueError, match="samples nothing on its own"):
                DMPS(vp, DenseOperator(torch.eye(2, 6)), 0.1, steps=9, solver=name).sample(unit_score, x_T[:, :2])
            continue
        pc = PredictorCorrector(vp, 9, predictor=name, corrector=None)
        assert torch.equal(pc.sample(unit_score, x_T=x_T, seed=2), cls(vp, 9).sample(unit_score, x_T=x_T, seed=2))
        assert isinstance(DMPS(vp, DenseOperator(torch.eye(2, 6)), 0.1, steps=9, solver=name).solver, cls)


def test_plan_numbers_every_update_with_its_own_rng_word(vp):
    from sdekit.solvers.plan import PRIOR_WORD
    pc = PredictorCorrector(vp, 5, corrector_steps=2)
    plan = pc.plan()
    words = [plan.word(n, j) for n in range(plan.steps) for j in range(plan.words_per_step)]
    assert words == list(range(15)) and PRIOR_WORD not in words
    ts = pc.time_grid()
    assert torch.equal(plan.table, torch.stack(pc.predictor.step_coefficients(ts[:-1], ts[1:]), dim=1))
    assert torch.equal(plan.corrector_constants, pc.corrector.constants(ts[:-1], ts[1:]))


def test_predictor_corrector_run_equals_a_hand_written_loop_over_the_plans_words(vp):
    """score_sde's PC loop written out (corrector updates, then the predictor, at each t) with the
    normals of the documented RNG words: word n (1 + K) + j, the prior at word 2**64 - 1."""
    from sdekit.kernels.rng import philox_normal_like
    K, steps, seed = 2, 6, 17
    pc = PredictorCorrector(vp, steps, corrector_steps=K, snr=0.2)
    got = pc.sample(unit_score, shape=(3, 5), seed=seed, dtype=torch.float64, backend="torch")
    x = float(vp.marginal_std(vp.T)) * philox_normal_like(torch.empty(3, 5, dtype=torch.float64), seed, 2**64 - 1)
    ts = torch.linspace(vp.T, pc.t_eps, steps + 1, dtype=torch.float64)
    for n in range(steps):
        t, s = ts[n], ts[n + 1]
        abar = lambda u: torch.exp(-(0.1 * u + 19.9 * u * u / 2))  # noqa: E731  VP(0.1, 20) by hand
        alpha = abar(t) / abar(s)
        for j in range(K):
            grad, z = -x, philox_normal_like(x, seed, n * (1 + K) + j)
            eps = (0.2 * z.norm(dim=1).mean() / grad.norm(dim=1).mean()) ** 2 * 2 * alpha
            x = x + eps * grad + torch.sqrt(2 * eps) * z
        beta = 1 - alpha  # score_sde's reverse-diffusion (DDPM) predictor
        z = philox_normal_like(x, seed, n * (1 + K) + K)
        x = (2 - alpha.sqrt()) * x + beta * (-x) + (beta.sqrt() * z if n < steps - 1 else 0.0)
    torch.testing.assert_close(got, x, rtol=1e-12, atol=1e-12)


def test_simulate_runs_the_same_loop_with_trajectory_and_options(ouve):
    from sdekit.solvers import RunOptions
    em = EulerMaruyama(ouve, 5)
    x0, y = torch.zeros(2, 4), torch.ones(2, 4)
    x, traj = em.simulate(x0, y, 0.0, None, 9, return_trajectory=True)
    assert traj.shape == (6, 2, 4) and torch.equal(traj[0], x0) and torch.equal(traj[-1], x)
    assert torch.equal(x, em.simulate(x0, y, options=RunOptions(seed=9)))
    with pytest.raises(TypeError, match="simulate has no denoise"):
        em.simulate(x0, y, seed=9, denoise=True)
