"""One DMPS likelihood-score evaluation per operator, 256 x 256 x 3, float32.

    pytest benchmarks/bench_inverse.py --benchmark-only [--benchmark-group-by=param:case]

Compared, at the same inputs:

* ``sdekit``  -- :func:`sdekit.inverse.likelihood_score` (range-space fast paths), with each
  backend of its spectral-scaling step: ``torch`` (eager ops), ``triton`` and ``cuda`` (one
  fused kernel each; GPU only);
* ``ddrm_style`` -- the same formula written the way DDRM-style code does with an
  implicit-SVD operator: full ``Vt``, ``Ut``, ``singulars``, ``add_zeros``, ``V``, and the
  ``(1/s) S (sigma_y^2 + (std/s)^2 S^2)^-1 (U^T y - S V^T x / s)`` middle as eager ops
  (no dense matrices: it uses sdekit's own exact operators, so only the composition differs);
* ``em_step`` -- one eager Euler-Maruyama reverse step ``x + (g^2 score - f) dt + g sqrt(dt) z``
  on the same tensor, the yardstick the issue quotes (79 us on an H100 at batch 1).

* ``sdekit_dmps_step`` -- the score exactly as :class:`sdekit.inverse.DMPS` evaluates it per
  step (``U^T y`` precomputed once per sampling run, ``s`` and ``std`` of a ``VPSDE`` looked up
  on the solver's time grid), with a zero prior score so only the likelihood part is timed.

CUDA cases carry ``gpu`` and skip without a GPU.  Batches: 1 and 8 on the CPU, 1 and 64 on
the GPU.  CPU runs use one intra-op thread (``SDEKIT_BENCH_THREADS`` overrides): on the
shared 2-core development box two OpenMP threads made timings swing by 20x.
"""
import math
import os

import pytest
import torch

from sdekit.inverse import (DMPS, Colorization, Denoising, Inpainting, SeparableBlur, SuperResolution,
                            WalshHadamardCS, likelihood_score)

SIZE, C = 256, 3
S_T, STD_T, SIGMA_Y = 0.6, 0.8, 0.05


@pytest.fixture(autouse=True)
def cpu_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("SDEKIT_BENCH_THREADS", "1")))
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def vpsde():
    from sdekit import VPSDE

    return VPSDE()


def gaussian_kernel(width=3.0, radius=9):
    j = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-j**2 / (2 * width**2))
    return k / k.sum()


def make_op(case):
    g = torch.Generator().manual_seed(0)
    if case == "deblur_gauss":
        k = gaussian_kernel()
        return SeparableBlur(k, k, C, SIZE)
    if case == "superres_4":
        return SuperResolution(4, C, SIZE)
    if case == "inpaint_50":
        return Inpainting(torch.rand(SIZE, SIZE, generator=g) > 0.5, C)
    if case == "colorization":
        return Colorization(C, SIZE)
    if case == "denoising":
        return Denoising(C * SIZE * SIZE)
    if case == "hadamard_cs_25":
        return WalshHadamardCS(C, SIZE, SIZE * SIZE // 4)
    raise KeyError(case)


CASES = ["deblur_gauss", "superres_4", "inpaint_50", "colorization", "denoising", "hadamard_cs_25"]
DEVICES = [pytest.param("cpu", id="cpu"), pytest.param("cuda", id="cuda", marks=pytest.mark.gpu)]
BATCH = {"cpu": (1, 8), "cuda": (1, 64)}


def ddrm_style_score(op, y, x, s, std, sigma_y):
    """The same formula, composed DDRM-style from the full implicit-SVD transforms."""
    n = x[0].numel()
    S = op.singulars(n, like=x)
    k = S.numel()
    vtx = op.Vt(x)[:, :k]
    uty = op.Ut(y)[:, :k]
    mid = (1 / s) * S / (sigma_y**2 + (std / s) ** 2 * S**2) * (uty - S * vtx / s)
    return op.V(op.add_zeros(mid, n)).reshape(x.shape)


def em_step(x, score, dt=1e-3, beta=10.0):
    f = -0.5 * beta * x
    g = math.sqrt(beta)
    return x + (g * g * score - f) * dt + g * math.sqrt(dt) * torch.randn_like(x)


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _setup(case, device, batch):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    op = make_op(case)
    g = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(batch, C, SIZE, SIZE, device=device, generator=g)
    y = op.forward(torch.randn(batch, C, SIZE, SIZE, device=device, generator=g))
    likelihood_score(op, y, x, mean_scale=S_T, std=STD_T, sigma_y=SIGMA_Y)  # warm caches / compile
    return op, x, y


def _run(benchmark, device, fn):
    def call():
        out = fn()
        _sync(device)
        return out

    rounds = 20 if device == "cuda" else 5
    benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=2)


# sdekit's score with each backend of its spectral-scaling step (the transforms are torch ops)
# (the impl names the rows of tools/bench_report.py's tables)
SCALING_BACKENDS = [pytest.param("cpu", "sdekit_torch", id="cpu-torch"), pytest.param("cpu", "sdekit_cpu", id="cpu-cpu"),
                    *(pytest.param("cuda", f"sdekit_{b}", id=f"cuda-{b}", marks=pytest.mark.gpu)
                      for b in ("torch", "triton", "cuda"))]


@pytest.mark.parametrize("device,impl", SCALING_BACKENDS)
@pytest.mark.parametrize("bidx", [0, 1], ids=["batch_small", "batch_large"])
@pytest.mark.parametrize("case", CASES)
def test_likelihood_score_sdekit(benchmark, case, bidx, device, impl):
    backend = impl.removeprefix("sdekit_")
    if device == "cpu" or torch.cuda.is_available():
        from sdekit.kernels.dispatch import backend_unavailable_reason

        if reason := backend_unavailable_reason(backend, torch.device(device)):
            pytest.skip(reason)
    batch = BATCH[device][bidx]
    op, x, y = _setup(case, device, batch)
    benchmark.group = f"{case}-{device}-b{batch}"
    _run(benchmark, device, lambda: likelihood_score(op, y, x, mean_scale=S_T, std=STD_T, sigma_y=SIGMA_Y,
                                                     backend=backend))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bidx", [0, 1], ids=["batch_small", "batch_large"])
@pytest.mark.parametrize("case", CASES)
def test_likelihood_score_ddrm_style(benchmark, case, bidx, device):
    batch = BATCH[device][bidx]
    op, x, y = _setup(case, device, batch)
    want = likelihood_score(op, y, x, mean_scale=S_T, std=STD_T, sigma_y=SIGMA_Y)
    got = ddrm_style_score(op, y, x, S_T, STD_T, SIGMA_Y)
    assert ((got - want).norm() / want.norm()).item() < 1e-4  # same formula
    benchmark.group = f"{case}-{device}-b{batch}"
    _run(benchmark, device, lambda: ddrm_style_score(op, y, x, S_T, STD_T, SIGMA_Y))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bidx", [0, 1], ids=["batch_small", "batch_large"])
@pytest.mark.parametrize("case", CASES)
def test_likelihood_score_sdekit_dmps_step(benchmark, case, bidx, device, vpsde):
    batch = BATCH[device][bidx]
    op, x, y = _setup(case, device, batch)
    dmps = DMPS(vpsde, op, SIGMA_Y)
    times = dmps.solver.time_grid(device)[:-1].to(x.dtype)  # as DMPS.sample passes them
    score = dmps.posterior_score_fn(lambda x, t: torch.zeros_like(x), y, x[0].numel(), times=times)
    t = times[300].repeat(batch)  # t = 0.70 on the default 1000-step grid
    score(x, t)
    benchmark.group = f"{case}-{device}-b{batch}"
    _run(benchmark, device, lambda: score(x, t))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bidx", [0, 1], ids=["batch_small", "batch_large"])
def test_em_step_eager(benchmark, bidx, device):
    batch = BATCH[device][bidx]
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x = torch.randn(batch, C, SIZE, SIZE, device=device)
    score = torch.randn_like(x)
    benchmark.group = f"em_step-{device}-b{batch}"
    _run(benchmark, device, lambda: em_step(x, score))


# ---------------------------------------------------------------------------------------------
# QCS-SGM+: the EP likelihood score (sdekit.inverse.QCSPlus), 1 bit, m = 1024, n = 4096, float32,
# against the authors' per-sample Python loop (mengxiangming/QCS-SGM-plus, models/__init__.py,
# likelihood_score_onebit_EP), transcribed in tests/test_inverse_qcs_plus.py.  Both run 3 EP
# iterations (the authors' sampler default, NumIter_EP = 3; tol 0 here) with the eigendecomposition
# of A A^T (theirs) / the SVD (sdekit's) computed once outside the timing.
EP_M, EP_N, EP_ITERS, EP_STD = 1024, 4096, 3, 0.5


@pytest.fixture(scope="module")
def ep_problem():
    g = torch.Generator().manual_seed(0)
    from sdekit.inverse import DenseOperator

    H = torch.randn(EP_M, EP_N, generator=g, dtype=torch.float64) / math.sqrt(EP_M)
    op = DenseOperator(H)
    D_c, U_c = torch.linalg.eigh(H @ H.T)
    return op, H.float(), U_c.float(), D_c.float()


def _ep_inputs(op, batch):
    from sdekit.inverse import quantize

    g = torch.Generator().manual_seed(batch)
    x0 = torch.randn(batch, EP_N, generator=g)
    lo, up = quantize(op.forward(x0) + SIGMA_Y * torch.randn(batch, EP_M, generator=g), [0.0])
    x = x0 + EP_STD * torch.randn(batch, EP_N, generator=g)
    return lo, up, x


@pytest.mark.parametrize("batch", [1, 16])
def test_qcs_plus_ep_score_sdekit(benchmark, batch, ep_problem):
    from sdekit.inverse import QCSPlus

    op = ep_problem[0]
    lo, up, x = _ep_inputs(op, batch)
    ep = QCSPlus(op, (lo, up), SIGMA_Y, ep_iters=EP_ITERS, tol=0.0)
    ep.score(x, mean_scale=1.0, std=EP_STD)
    benchmark.group = f"qcs_plus_ep-cpu-b{batch}"
    _run(benchmark, "cpu", lambda: ep.score(x, mean_scale=1.0, std=EP_STD))


@pytest.mark.parametrize("batch", [1, 16])
def test_qcs_plus_ep_score_authors_loop(benchmark, batch, ep_problem):
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from sdekit.inverse import QCSPlus
    from _references import authors_onebit_EP

    op, H, U_c, D_c = ep_problem
    lo, up, x = _ep_inputs(op, batch)
    y = torch.where(lo == 0, 1.0, -1.0)

    def theirs():
        return authors_onebit_EP(y, x, H, SIGMA_Y**2, EP_STD, U_c, D_c, NumIter_EP=EP_ITERS, tol=0.0)

    want = QCSPlus(op, (lo, up), SIGMA_Y, ep_iters=EP_ITERS, tol=0.0).score(x, mean_scale=1.0, std=EP_STD)
    got = theirs()
    assert ((got - want).norm() / want.norm()).item() < 1e-3  # the same EP, float32
    benchmark.group = f"qcs_plus_ep-cpu-b{batch}"
    benchmark.pedantic(theirs, rounds=3, iterations=1, warmup_rounds=1)
