"""Dawson's integral throughput.

CPU, one intra-op thread: ``sdekit.special.dawsn`` on the compiled ``"cpu"`` backend and the
eager torch reference, against ``scipy.special.dawsn`` and, when jax is installed,
``jax.scipy.special.dawsn`` (jitted; compiled outside the timing).  Run it pinned to one core
(``taskset -c 0 python -m pytest benchmarks/bench_dawson.py -k "cpu and not eager" --benchmark-only``):
XLA spreads large calls over every core, torch here uses one thread.
GPU (skipped without CUDA): the Triton and CUDA kernels against the plain torch-op
composition (the reference, eager) and against a device-to-device copy of the same
tensor, whose time is the memory-bandwidth floor (a kernel reads and writes the
tensor once, exactly as the copy does): ``fraction of copy bandwidth = t_copy / t_kernel``.
"""
import pytest
import scipy.special
import torch

from sdekit.kernels.dispatch import backend_unavailable_reason
from sdekit.special import dawsn
from sdekit.kernels.dawsn.reference import dawsn_reference

CPU_SIZES = [2**8, 2**12, 2**16, 2**20]
GPU_SIZES = [2**20, 2**24, 2**26, 2**28]
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _x(n, dtype, device="cpu"):
    """N(0, 16) inputs drawn on ``device`` (a CPU generator takes ~12 s for 2^28 float64)."""
    g = torch.Generator(device=device).manual_seed(0)
    return torch.randn(n, generator=g, dtype=dtype, device=device) * 4


pytestmark = pytest.mark.usefixtures("one_cpu_thread")  # benchmarks/conftest.py


@pytest.mark.parametrize("n", CPU_SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cpu_sdekit_compiled(benchmark, n, dtype):
    reason = backend_unavailable_reason("cpu", torch.device("cpu"))
    if reason:
        pytest.skip(reason)
    benchmark.group = f"cpu-{dtype}-{n}"
    x = _x(n, DTYPES[dtype])
    benchmark(dawsn, x, backend="cpu")


@pytest.mark.parametrize("n", CPU_SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cpu_jax(benchmark, n, dtype):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.scipy.special

    benchmark.group = f"cpu-{dtype}-{n}"
    x = jax.numpy.asarray(_x(n, DTYPES[dtype]).numpy())
    f = jax.jit(jax.scipy.special.dawsn)
    f(x).block_until_ready()  # compile outside the timing
    benchmark(lambda: f(x).block_until_ready())


@pytest.mark.parametrize("n", CPU_SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cpu_sdekit_eager_reference(benchmark, n, dtype):
    benchmark.group = f"cpu-{dtype}-{n}"
    x = _x(n, DTYPES[dtype])
    benchmark(dawsn_reference, x)


@pytest.mark.parametrize("n", CPU_SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cpu_scipy(benchmark, n, dtype):
    benchmark.group = f"cpu-{dtype}-{n}"
    x = _x(n, DTYPES[dtype]).numpy()
    benchmark(scipy.special.dawsn, x)


def _gpu_param(backend):
    reason = None if torch.cuda.is_available() else "needs a CUDA device"
    if reason is None and backend in ("triton", "cuda"):
        reason = backend_unavailable_reason(backend, torch.device("cuda"))
    return pytest.param(backend, marks=[pytest.mark.gpu] + ([pytest.mark.skip(reason=reason)] if reason else []))


def _cuda_timed(fn, x):
    def run():
        y = fn(x)
        torch.cuda.synchronize()
        return y

    run()  # compile / warm up
    return run


@pytest.mark.parametrize("n", GPU_SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("impl", [_gpu_param(b) for b in ("copy", "torch", "torch-compile", "triton", "cuda")])
def test_gpu(benchmark, impl, n, dtype):
    benchmark.group = f"gpu-{dtype}-{n}"
    x = _x(n, DTYPES[dtype], "cuda")
    if impl == "copy":
        out = torch.empty_like(x)
        fn = out.copy_
    elif impl == "torch":  # the plain torch-op composition, eager
        fn = dawsn_reference
    elif impl == "torch-compile":  # the same composition fused by inductor (a generated Triton kernel)
        fn = torch.compile(dawsn_reference, dynamic=False)
    else:
        fn = lambda v: dawsn(v, backend=impl)  # noqa: E731
    with torch.no_grad():
        benchmark.pedantic(_cuda_timed(fn, x), rounds=30, iterations=3, warmup_rounds=2)
