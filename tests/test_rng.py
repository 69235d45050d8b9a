"""The counter-based normal generator: Philox4x32-10 bits, backend agreement, statistics."""
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from scipy import stats

from sdekit.kernels import rng

# Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors): counter, key, output.
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]
SEED_STEPS = [(0, 0), (1, 1), (2**40 + 5, 2**33 + 7), (-3, 12345), (2**31 + 3, 2**31 + 1), (2**64 - 1, 2**64 - 1)]
# Backends differ only in the last ulps of log/cos/sin/sqrt: |dz| <= TOL * (1 + |z|).
TOL = {torch.float32: 4e-7, torch.float64: 1e-15}



@pytest.mark.parametrize("counter,key,expected", PHILOX_KAT)
def test_philox4x32_10_matches_random123_known_answers(counter, key, expected):
    c = [torch.tensor([v], dtype=torch.int64) for v in counter]
    out = rng.philox4x32(*c, *key)
    assert tuple(int(o) for o in out) == expected


def test_philox_matches_tl_philox_bits(triton_device):
    """Our Triton Philox equals Triton's own ``tl.philox`` (an independent implementation)."""
    triton = pytest.importorskip("triton")
    import triton.language as tl

    if not hasattr(tl, "philox"):
        pytest.skip("this triton has no tl.philox")

    @triton.jit
    def kern(out_ptr, seed, BLOCK: tl.constexpr):
        i = tl.arange(0, BLOCK)
        c = i.to(tl.uint32)
        a0, a1, a2, a3 = tl.philox(seed, c, c * 3, c * 5, c * 7)
        b0, b1, b2, b3 = rng.philox4x32_tl(c, c * 3, c * 5, c * 7,
                                           tl.full([BLOCK], seed & 0xFFFFFFFF, tl.uint64).to(tl.uint32),
                                           tl.full([BLOCK], seed >> 32, tl.uint64).to(tl.uint32))
        bad = (a0 != b0).to(tl.int32) + (a1 != b1).to(tl.int32) + (a2 != b2).to(tl.int32) + (a3 != b3).to(tl.int32)
        tl.store(out_ptr + i, bad)

    out = torch.empty(256, dtype=torch.int32, device=triton_device)
    kern[(1,)](out, 0x1234_5678_9ABC, BLOCK=256)
    assert int(out.sum()) == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed,step", SEED_STEPS)
def test_triton_normals_equal_torch_reference(dtype, seed, step, triton_device):
    ref = rng.philox_normal(3, 2051, seed, step, dtype)
    tri = rng.philox_normal_triton(3, 2051, seed, step, dtype, device=triton_device).cpu()
    assert torch.all((tri - ref).abs() <= TOL[dtype] * (1 + ref.abs()))


_CUDA_HOST_TEST = r"""
#include "philox.cuh"
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
  unsigned long long seed = strtoull(argv[1], 0, 10), step = strtoull(argv[2], 0, 10);
  for (unsigned b = 0; b < 3; ++b)
    for (unsigned long long j = 0; j < 37; ++j)
      printf("%.9g %.17g\n", sdekit::philox_normal_at<float>(j, b, seed, step),
             sdekit::philox_normal_at<double>(j, b, seed, step));
  return 0;
}
"""


@pytest.fixture(scope="module")
def philox_host_binary(tmp_path_factory):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    from pathlib import Path
    d = tmp_path_factory.mktemp("philox")
    src = d / "philox_host.cu"
    src.write_text(_CUDA_HOST_TEST)
    csrc = Path(__file__).resolve().parents[1] / "sdekit" / "csrc"
    subprocess.run([nvcc, "-I", str(csrc), "-o", str(d / "philox_host"), str(src)], check=True,
                   capture_output=True, timeout=300)
    # Device code of the same header compiles for sm_90 (runs only on the GPU machine).
    subprocess.run([nvcc, "-I", str(csrc), "-arch=sm_90", "-c", "-o", str(d / "philox_dev.o"), str(src)],
                   check=True, capture_output=True, timeout=300)
    return d / "philox_host"


@pytest.mark.parametrize("seed,step", [(0, 0), (2**64 - 1, 5), (987654321, 2**40 + 3)])
def test_cuda_header_normals_equal_torch_reference(philox_host_binary, seed, step):
    """sdekit/csrc/philox.cuh (its __host__ path, the same source as the device path) draws our normals."""
    out = subprocess.run([str(philox_host_binary), str(seed % 2**64), str(step)], check=True,
                         capture_output=True, text=True).stdout
    vals = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()])
    for col, dtype in enumerate([torch.float32, torch.float64]):
        ref = rng.philox_normal(3, 37, seed, step, dtype).reshape(-1).double().numpy()
        assert np.all(np.abs(vals[:, col] - ref) <= 2 * TOL[dtype] * (1 + np.abs(ref)))


@pytest.fixture(scope="module")
def draws():
    """2^20 float64 normals in 8 samples, at steps 0 and 1."""
    z0 = rng.philox_normal(8, 2**17, seed=2024, step=0, dtype=torch.float64).numpy()
    z1 = rng.philox_normal(8, 2**17, seed=2024, step=1, dtype=torch.float64).numpy()
    return z0, z1


def test_normals_have_zero_mean_and_unit_variance(draws):
    z = draws[0].ravel()
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(stats.kurtosis(z, fisher=False) - 3) < 5 * math.sqrt(24 / n)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normals_pass_kolmogorov_smirnov(dtype):
    z = rng.philox_normal(4, 2**16, seed=7, step=3, dtype=dtype).double().numpy().ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_normals_independent_across_steps_samples_and_elements(draws):
    z0, z1 = draws
    n = z0.size
    bound = 5 / math.sqrt(n)

    def corr(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert abs(corr(z0, z1)) < bound                                  # across steps
    assert abs(corr(z0[:-1], z0[1:])) < bound * math.sqrt(8 / 7)       # across samples
    assert abs(corr(z0[:, :-1], z0[:, 1:])) < bound                    # neighbouring elements
    # Box-Muller partners (cos, sin of one radius) are independent, also in their squares.
    assert abs(corr(z0[:, 0::2] ** 2, z0[:, 1::2] ** 2)) < 5 / math.sqrt(n / 2)
    z_seed = rng.philox_normal(8, 2**17, seed=2025, step=0, dtype=torch.float64).numpy()
    assert abs(corr(z0, z_seed)) < bound                              # across seeds


def test_normals_are_a_pure_function_of_seed_step_and_index():
    a = rng.philox_normal(4, 1000, seed=11, step=9)
    b = rng.philox_normal(4, 1000, seed=11, step=9)
    assert torch.equal(a, b)
    # A prefix of the elements, or a subset of the samples, draws the same numbers.
    assert torch.equal(rng.philox_normal(2, 13, seed=11, step=9), a[:2, :13])
    assert not torch.equal(rng.philox_normal(4, 1000, seed=11, step=10), a)


def test_normals_are_finite_with_the_stated_tail_cut():
    """u1 in (0, 1] keeps log finite; tails stop at sqrt(48 log 2) = 5.77 and sqrt(106 log 2) = 8.57."""
    for dtype in (torch.float32, torch.float64):
        z = rng.philox_normal(1, 2**16, seed=1, step=1, dtype=dtype)
        assert z.dtype == dtype and torch.isfinite(z).all()
        assert z.abs().max() < (5.8 if dtype == torch.float32 else 8.6)


def test_rejects_bad_seed_and_dtype():
    with pytest.raises(TypeError, match="seed"):
        rng.philox_normal(1, 4, seed=1.5, step=0)
    with pytest.raises(TypeError, match="float32 and float64"):
        rng.philox_normal(1, 4, seed=1, step=0, dtype=torch.float16)
