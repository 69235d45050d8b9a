"""Dawson's integral throughput.

CPU: ``sdekit.special.dawsn`` (the ``"torch"`` backend: the reference, inductor-
compiled from 2^15 elements on) and the eager reference, against
``scipy.special.dawsn``.
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

CPU_SIZES = [2**12, 2**16, 2**20]
GPU_SIZES = [2**20, 2**24, 2**26, 2**28]
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _x(n, dtype, device="cpu"):
    """N(0, 16) inputs drawn on ``device`` (a CPU generator takes ~12 s for 2^28 float64)."""
    g = torch.Generator(device=device).manual_seed(0)
    return torch.randn(n, generator=g, dtype=dtype, device=device) * 4


@pytest.mark.parametrize("n", CPU_SIZES)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cpu_sdekit_torch(benchmark, n, dtype):
    benchmark.group = f"cpu-{dtype}-{n}"
    x = _x(n, DTYPES[dtype])
    dawsn(x, backend="torch")  # compile outside the timing
    benchmark(dawsn, x, backend="torch")


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
