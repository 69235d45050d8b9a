"""Sampling speed: one reverse Euler-Maruyama step, and a 100-step sample, per implementation.

    x <- (1 - a h) x - c h y + g^2 h score + g sqrt(h) z        (OUVE, float32, y-drift on)

Per step the minimum traffic is read x, y, score and write x: 16 bytes per element in
float32.  Implementations:

* ``fused_triton`` / ``fused_cuda``: sdekit's one-kernel step (normals drawn in-kernel);
  run only on CUDA (the Triton CPU interpreter says nothing about speed).
* ``fused_cpu``: the same step compiled for the host (the ``"cpu"`` backend), CPU only.
* ``copy``: ``x.copy_(y)`` (8 bytes per element), the device's copy bandwidth, CUDA only.
* ``torch_reference``: sdekit's torch reference (the specification, Philox in int64 torch ops).
* ``eager``: the step as diffusion repositories write it, eager ops with ``torch.randn_like``.
* ``compiled``: ``torch.compile`` of that eager step.
* ``torchsde``: ``torchsde.sdeint(method="euler")`` on the same reverse SDE.
* ``jax``: the eager step written in JAX, jitted, with threefry normals (optional peer,
  skipped when jax is not installed).
* ``diffrax_unsafe`` / ``diffrax_vbt``: one ``diffrax.diffeqsolve(Euler(), ...)`` step of
  dx = (-a x - c y + g^2 score) dt + g dW with a ``ControlTerm`` of diagonal noise, driven by an
  ``UnsafeBrownianPath`` or by the default ``VirtualBrownianTree`` (``tol=1e-3``, as diffrax's
  docs write it, over the step [t, t + h]); jitted, compiled outside the timing (optional peer,
  skipped when diffrax is not installed).

CPU runs use one intra-op thread (``torch.set_num_threads(1)``, ``XLA_FLAGS`` not touched:
JAX's CPU client runs element-wise work on one thread) unless a case says otherwise;
``test_bench_cpu_thread_scaling`` measures the fused step and ``dawsn`` on 1 and 2 threads.

The 100-step sample uses a trivial score (``-x``), so it measures the loop and the step.
GB/s in ``extra_info`` counts 16 bytes per element per step.
Run: ``pytest benchmarks/bench_solvers.py --benchmark-only``.
"""
from __future__ import annotations

import functools
import math

import pytest
import torch

from _common import capture_cuda_graph  # benchmarks/_common.py
from sdekit.kernels import resolve
from sdekit.kernels.dispatch import backend_unavailable_reason
from sdekit.sde import OUVE
from sdekit.solvers import EulerMaruyama

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
SIZES_CPU = [2**14, 2**20]
SIZES_GPU = [2**14, 2**20, 2**24, 2**26, 2**27]
SIZES = SIZES_GPU if CUDA else SIZES_CPU
STEP_IMPLS = ["fused_triton", "fused_cuda", "fused_cpu", "copy", "torch_reference", "eager", "compiled", "torchsde",
              "jax", "diffrax_unsafe", "diffrax_vbt"]
JAX_PEERS = {"jax": "jax", "diffrax_unsafe": "diffrax", "diffrax_vbt": "diffrax"}
SAMPLE_IMPLS = ["fused_triton", "fused_cuda", "fused_cpu", "torch_reference", "eager", "compiled", "torchsde"]
GPU_ONLY = {"fused_triton", "fused_cuda", "copy"}
FUSED = {"fused_triton": "triton", "fused_cuda": "cuda", "fused_cpu": "cpu", "torch_reference": "torch"}


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # benchmarks/conftest.py


@functools.lru_cache(maxsize=1)
def _sde():
    return OUVE()


def _sync():
    if CUDA:
        torch.cuda.synchronize()


def _state(n: int):
    g = torch.Generator(device=DEVICE).manual_seed(0)
    shape = (1, n)
    x, y, s = (torch.randn(shape, generator=g, device=DEVICE) for _ in range(3))
    return x, y, s


def _coefs(t: float, h: float):
    """(A, C, S, N) as 0-dim device tensors (Python floats would make torch.compile recompile per step)."""
    a, c, g = (float(v) for v in _sde().coefficients(t))
    return tuple(torch.tensor(v, dtype=torch.float32, device=DEVICE)
                 for v in (1.0 - a * h, -c * h, g * g * h, g * math.sqrt(h)))


def _eager_step(x, y, score, A: float, C: float, S: float, N: float):
    return A * x + C * y + S * score + N * torch.randn_like(x)


_compiled_step = None


def _compiled():
    global _compiled_step
    if _compiled_step is None:
        _compiled_step = torch.compile(_eager_step, dynamic=False)
    return _compiled_step


class _ReverseOUVE(torch.nn.Module):
    """torchsde form of the reverse SDE in forward time u = T - t: dx = -[f - g^2 score] du + g dW."""

    noise_type = "diagonal"
    sde_type = "ito"

    def __init__(self, y):
        super().__init__()
        self.y = y
        self.sde = _sde()

    def _abc(self, u):
        # tensors throughout: no host sync inside torchsde's loop
        return self.sde.coefficients(self.sde.T - u, check=False)

    def f(self, u, x):
        a, c, g = self._abc(u)
        return -(a * x + c * self.y - g * g * (-x))

    def g(self, u, x):
        _, _, g = self._abc(u)
        return g.to(x.dtype).expand_as(x)


def _jax_step(x, y, s, A, C, S, N):
    """The eager step in JAX, jitted, threefry normals; returns a callable that runs one step."""
    import jax
    import jax.numpy as jnp

    @jax.jit
    def step(key, x, y, s):
        key, sub = jax.random.split(key)
        return key, A.item() * x + C.item() * y + S.item() * s + N.item() * jax.random.normal(sub, x.shape, x.dtype)

    state = {"key": jax.random.PRNGKey(0), "x": jnp.asarray(x.numpy()), "y": jnp.asarray(y.numpy()),
             "s": jnp.asarray(s.numpy())}

    def run():
        state["key"], state["x"] = step(state["key"], state["x"], state["y"], state["s"])
        state["x"].block_until_ready()

    run()  # compile outside the timing
    return run


def _diffrax_step(x, y, s, t: float, h: float, path: str):
    """One jitted ``diffeqsolve(Euler(), ...)`` step from t to t + h of
    dx = (-a x - c y + g^2 s) dt + g dW (a, c, g of the OUVE at t): Euler gives
    x + h (-a x - c y + g^2 s) + g dW, the eager step's update with dW = sqrt(h) z.
    ``path`` is ``"unsafe"`` (``UnsafeBrownianPath``) or ``"vbt"`` (``VirtualBrownianTree``).
    Returns a callable that runs one step, and the jitted step (whose noise scale is an argument, so
    that the correctness check can set it to zero)."""
    import diffrax
    import jax
    import jax.numpy as jnp
    import lineax

    a, c, g = (float(v) for v in _sde().coefficients(t))

    def solve(key, x, y, s, noise_scale):
        drift = diffrax.ODETerm(lambda t, x, args: -a * x - c * y + g * g * s)
        if path == "unsafe":  # diffrax refuses its default adjoint on this path
            bm, adjoint = diffrax.UnsafeBrownianPath(shape=x.shape, key=key), diffrax.ForwardMode()
        else:
            bm = diffrax.VirtualBrownianTree(t0=t, t1=t + h, tol=1e-3, shape=x.shape, key=key)
            adjoint = diffrax.RecursiveCheckpointAdjoint()
        noise = diffrax.ControlTerm(lambda t, x, args: lineax.DiagonalLinearOperator(jnp.full_like(x, noise_scale)), bm)
        sol = diffrax.diffeqsolve(diffrax.MultiTerm(drift, noise), diffrax.Euler(), t0=t, t1=t + h, dt0=h, y0=x,
                                  adjoint=adjoint)
        return sol.ys[-1]

    @jax.jit
    def step(key, x, y, s, noise_scale):
        key, sub = jax.random.split(key)
        return key, solve(sub, x, y, s, noise_scale)

    state = {"key": jax.random.PRNGKey(0), "x": jnp.asarray(x.numpy()), "y": jnp.asarray(y.numpy()),
             "s": jnp.asarray(s.numpy())}

    def run():
        state["key"], state["x"] = step(state["key"], state["x"], state["y"], state["s"], g)
        state["x"].block_until_ready()

    return run, step


def _check_diffrax_step(step, x, y, s, A, C, S):
    """With zero diffusion the diffrax step must equal the eager step's deterministic part."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    _, got = step(jax.random.PRNGKey(1), jnp.asarray(x.numpy()), jnp.asarray(y.numpy()), jnp.asarray(s.numpy()),
                  0.0)
    want = _eager_step(x, y, s, A, C, S, torch.zeros(()))
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-5, atol=1e-6)


def _skip(impl: str):
    if impl in GPU_ONLY and not CUDA:
        pytest.skip("CUDA-only case (the Triton CPU interpreter is not a speed measurement): needs an H100 run")
    if impl == "fused_cpu" and CUDA:
        pytest.skip("the compiled CPU step is measured on CPU runs")
    if impl in ("fused_triton", "fused_cuda", "fused_cpu"):
        reason = backend_unavailable_reason(FUSED[impl], DEVICE)
        if reason:
            pytest.skip(reason)
    if impl == "torchsde":
        pytest.importorskip("torchsde")
    if impl in JAX_PEERS:
        if CUDA:
            pytest.skip("the JAX peers are a CPU measurement")
        pytest.importorskip(JAX_PEERS[impl])


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("impl", STEP_IMPLS)
def test_bench_em_step(benchmark, impl, n):
    _skip(impl)
    if impl in ("torch_reference", "torchsde") and n > 2**24:
        pytest.skip("too slow to be informative at this size")
    benchmark.group = f"EM step, 2^{int(math.log2(n))} float32 elements"
    x, y, s = _state(n)
    t, h = 0.5, 0.01
    A, C, S, N = _coefs(t, h)
    coef = torch.stack([A, C, S, N]).reshape(4, 1)
    if impl in FUSED:
        impl_fn = resolve("affine_step", FUSED[impl], DEVICE)

        def run():
            impl_fn(x, coef, score=s, y=y, seed=1, step=2, out=x)
    elif impl == "jax":
        run = _jax_step(x, y, s, A, C, S, N)
    elif impl in ("diffrax_unsafe", "diffrax_vbt"):
        run, step = _diffrax_step(x, y, s, t, h, impl.removeprefix("diffrax_"))
        _check_diffrax_step(step, x, y, s, A, C, S)
        run()  # compile outside the timing
    elif impl == "copy":
        def run():
            x.copy_(y)
    elif impl == "eager":  # out of place, as repositories write it: reads 3 tensors, writes 1
        def run():
            _eager_step(x, y, s, A, C, S, N)
    elif impl == "compiled":
        step = _compiled()
        step(x, y, s, A, C, S, N)  # compile outside the timing

        def run():
            step(x, y, s, A, C, S, N)
    else:
        import torchsde

        sde = _ReverseOUVE(y)
        ts = torch.tensor([1.0 - t, 1.0 - t + h], device=DEVICE)

        def run():
            torchsde.sdeint(sde, x, ts, method="euler", dt=h)

    def timed():
        run()
        _sync()

    timed()
    benchmark.pedantic(timed, rounds=5 if n >= 2**20 else 20, warmup_rounds=1)
    bytes_moved = (8 if impl == "copy" else 16) * n
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["GB/s"] = bytes_moved / benchmark.stats["min"] / 1e9
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if CUDA else "cpu"


@pytest.mark.parametrize("n", [2**10, 2**20])
@pytest.mark.parametrize("impl", SAMPLE_IMPLS)
def test_bench_em_sample_100_steps(benchmark, impl, n):
    """A 100-step reverse EM sample with score = -x; per-step loop overhead at 2^10 elements."""
    _skip(impl)
    benchmark.group = f"100-step EM sample, 2^{int(math.log2(n))} float32 elements"
    sde = _sde()
    steps = 100
    x_T, y, _ = _state(n)
    score = lambda x, t: -x  # noqa: E731
    if impl in FUSED:
        backend = FUSED[impl]
        em = EulerMaruyama(sde, steps)

        def run():
            return em.sample(score, y=y, x_T=x_T, seed=1, backend=backend)
    elif impl in ("eager", "compiled"):
        h = (sde.T - sde.t_eps) / steps
        coefs = [_coefs(sde.T - k * h, h) for k in range(steps)]
        step = _eager_step if impl == "eager" else _compiled()
        step(x_T, y, x_T, *coefs[0])

        def run():
            x = x_T.clone()
            for A, C, S, N in coefs:
                x = step(x, y, score(x, None), A, C, S, N)
            return x
    else:
        import torchsde

        rsde = _ReverseOUVE(y)
        ts = torch.tensor([1.0 - sde.T, 1.0 - sde.t_eps], device=DEVICE)

        def run():
            return torchsde.sdeint(rsde, x_T, ts, method="euler", dt=(sde.T - sde.t_eps) / steps)

    def timed():
        run()
        _sync()

    timed()
    benchmark.pedantic(timed, rounds=3, warmup_rounds=1)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["us/step"] = benchmark.stats["min"] / steps * 1e6
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if CUDA else "cpu"


@pytest.mark.parametrize("impl", ["fused_triton", "fused_cuda"])
def test_bench_em_loop_replayed_from_a_cuda_graph(benchmark, impl):
    """100 reverse EM steps at 2^10 elements (score = -x: one torch op, then one fused step
    kernel per step) captured once in a CUDA graph; the time per replay / 100 is the per-step
    cost of a graphed loop (goal <= 5 us).  ``EulerMaruyama.sample(cuda_graph=True)`` captures
    anew on every call, so timing it would include the capture."""
    _skip(impl)
    benchmark.group = "100-step EM loop replayed from a CUDA graph, 2^10 float32 elements"
    sde, steps, n = _sde(), 100, 2**10
    x, y, _ = _state(n)
    h = (sde.T - sde.t_eps) / steps
    table = torch.stack([torch.stack(_coefs(sde.T - k * h, h)).reshape(4, 1) for k in range(steps)])
    step = resolve("affine_step", FUSED[impl], DEVICE)

    def loop():
        for k in range(steps):
            step(x, table[k], score=torch.neg(x), y=y, seed=1, step=k, out=x)

    graph = capture_cuda_graph(loop)

    def timed():
        graph.replay()
        _sync()

    timed()
    benchmark.pedantic(timed, rounds=20, warmup_rounds=2)
    if benchmark.stats:  # None under --benchmark-disable
        benchmark.extra_info["us/step"] = benchmark.stats["min"] / steps * 1e6
    benchmark.extra_info["device"] = torch.cuda.get_device_name()


# ---------------------------------------------------------------------------------------------
# Adaptive probability-flow ODE sampling: sdekit's Dormand-Prince on tensors vs score_sde's driver.
#
# Same problem for every implementation: VP SDE, data N(MU, S^2) per element with its exact score
# (the flow is linear, so the error against the exact answer is known), float32 state, rtol = atol
# = 1e-5 (score_sde's defaults), from T to t_eps = 1e-3.  ``scipy_rk45`` is score_sde's
# ``get_ode_sampler``: ``solve_ivp(RK45)`` on the flattened batch with a torch <-> NumPy round trip
# at every function evaluation.  ``sdekit_batch`` uses the same (batch RMS) error norm as scipy;
# ``sdekit_sample`` the per-sample norm (each sample held to the tolerance).  ``extra_info`` has the
# nfe and the max error against the exact flow.

ODE_IMPLS = ["sdekit_sample", "sdekit_batch", "scipy_rk45"]
ODE_MU, ODE_S = 0.3, 0.7


def _ode_problem(n: int):
    from sdekit import VPSDE

    sde = VPSDE()

    def moments(t):
        mx = sde.mean_coeffs(t, check=False)[0]
        return mx * ODE_MU, mx**2 * ODE_S**2 + sde.marginal_var(t, check=False)

    def score(x, t):
        m, V = moments(t)
        return -(x - m[:, None]) / V[:, None]

    m_T, V_T = (float(v) for v in moments(torch.tensor([sde.T], dtype=torch.float64)))
    m_e, V_e = (float(v) for v in moments(torch.tensor([sde.t_eps], dtype=torch.float64)))
    g = torch.Generator(device=DEVICE).manual_seed(0)
    x_T = (m_T + math.sqrt(V_T) * torch.randn(4, n // 4, generator=g, device=DEVICE)).float()
    exact = m_e + math.sqrt(V_e / V_T) * (x_T.double() - m_T)
    return sde, score, x_T, exact


def _score_sde_ode_sampler(sde, score_fn, x_T, rtol, atol):
    """score_sde's ``get_ode_sampler`` (sampling.py): the reverse probability-flow drift, RK45 on NumPy."""
    import numpy as np
    from scipy import integrate

    shape, device = x_T.shape, x_T.device

    def drift_fn(x, t):
        drift, diffusion = sde.sde(x, None, t)
        return drift - diffusion[:, None] ** 2 * score_fn(x, t) * 0.5

    def ode_func(t, x):
        x = torch.from_numpy(x.reshape(shape)).to(device).type(torch.float32)
        vec_t = torch.ones(shape[0], device=x.device) * t
        return drift_fn(x, vec_t).detach().cpu().numpy().reshape((-1,))

    solution = integrate.solve_ivp(ode_func, (sde.T, sde.t_eps), x_T.detach().cpu().numpy().reshape((-1,)),
                                   rtol=rtol, atol=atol, method="RK45")
    x = torch.tensor(solution.y[:, -1]).reshape(shape).to(device).type(torch.float32)
    return x, solution.nfev


@pytest.mark.parametrize("n", [2**10, 2**18])
@pytest.mark.parametrize("impl", ODE_IMPLS)
def test_bench_adaptive_ode_sample(benchmark, impl, n):
    from sdekit import AdaptiveProbabilityFlow

    benchmark.group = f"adaptive probability-flow sample (VP, rtol=atol=1e-5), 2^{int(math.log2(n))} float32 elements"
    sde, score, x_T, exact = _ode_problem(n)
    if impl == "scipy_rk45":
        def run():
            return _score_sde_ode_sampler(sde, score, x_T, 1e-5, 1e-5)
    else:
        sampler = AdaptiveProbabilityFlow(sde, rtol=1e-5, atol=1e-5, norm=impl.split("_")[1])

        def run():
            return sampler.sample(score, x_T=x_T, return_nfe=True)

    result = {}

    def timed():
        result["x"], result["nfe"] = run()
        _sync()

    timed()
    benchmark.pedantic(timed, rounds=3, warmup_rounds=0)
    benchmark.extra_info["nfe"] = result["nfe"]
    benchmark.extra_info["max_error"] = float((result["x"].double() - exact).abs().max())
    benchmark.extra_info["device"] = torch.cuda.get_device_name() if CUDA else "cpu"

@pytest.mark.skipif(CUDA, reason="CPU thread scaling")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("op", ["affine_step", "dawsn"])
def test_bench_cpu_thread_scaling(benchmark, op, threads):
    """The compiled CPU kernels at 2^20 float32 elements on 1 and 2 intra-op threads."""
    _skip("fused_cpu")
    from sdekit.special import dawsn

    torch.set_num_threads(threads)
    benchmark.group = f"cpu thread scaling: {op}, 2^20 float32"
    x, y, s = _state(2**20)
    coef = torch.stack(_coefs(0.5, 0.01)).reshape(4, 1)
    if op == "affine_step":
        step = resolve("affine_step", "cpu", DEVICE)

        def run():
            step(x, coef, score=s, y=y, seed=1, step=2, out=x)
    else:
        def run():
            dawsn(y, backend="cpu")
    run()
    benchmark.pedantic(run, rounds=20, warmup_rounds=2)
