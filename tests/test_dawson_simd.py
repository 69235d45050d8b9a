"""Dawson's integral of the "cpu" backend's vector kernel (``sdekit/csrc/cpu/dawson_simd.h``) at every
vector width the host runs, whichever width the installed extension was built for.

A small C++ program built from the header (twice, as in ``tests/test_normals_simd.py``:
``-march=native``, which on an AVX-512 host has both the 16-lane and the 8-lane kernels, and
``-march=x86-64-v3``, AVX2 + FMA only) evaluates ``dawsn_simd`` on the points where the table
lookups and the branch change (:func:`_problems.dawsn_boundary_points`: every grid point and row
boundary of both tables with their neighbours, the split, the special values) and on 2^16 draws of
N(0, 16), through whole vectors and the partial last one.  float32 must be bitwise the torch
reference (:mod:`sdekit.kernels.dawsn.reference`, the same arithmetic); float64 within 4 ulp of
40-digit mpmath on the boundary points (the op's stated bound); and the two widths bitwise equal.
"""
import subprocess

import mpmath
import numpy as np
import pytest
import torch

import sdekit.special
from sdekit.kernels.dawsn import coefficients as C

from _problems import dawsn_boundary_points
from _toolchain import SIMD_ARCHS, build_simd_harness

HARNESS = r"""
#include <cstdio>
#include <string>
#include <vector>
#include "cpu/dawson_simd.h"

// argv[1]: directory holding x_f32.bin and x_f64.bin; writes <width>_f32.bin, <width>_f64.bin there
template <class T>
static std::vector<T> load(const std::string& path) {
  std::vector<T> v;
  FILE* f = std::fopen(path.c_str(), "rb");
  T x;
  while (std::fread(&x, sizeof(T), 1, f) == 1) v.push_back(x);
  std::fclose(f);
  return v;
}

template <class V, class T>
static void run(const std::string& dir, const char* width, const char* dtype) {
  const std::vector<T> x = load<T>(dir + "/x_" + dtype + ".bin");
  std::vector<T> y(x.size());
  sdekit::dawson::simd::dawsn_simd<V, T>(x.data(), y.data(), (int64_t)x.size());
  FILE* f = std::fopen((dir + "/" + width + "_" + dtype + ".bin").c_str(), "wb");
  std::fwrite(y.data(), sizeof(T), y.size(), f);
  std::fclose(f);
  std::printf("%s\n", width);
}

int main(int, char** argv) {
  const std::string dir = argv[1];
#if defined(__AVX512F__)
  run<__m512, float>(dir, "avx512", "f32");
  run<__m512d, double>(dir, "avx512", "f64");
#endif
#if defined(__AVX2__) && defined(__FMA__)
  run<__m256, float>(dir, "avx2", "f32");
  run<__m256d, double>(dir, "avx2", "f64");
#endif
}
"""

DTYPES = {"f32": (torch.float32, np.float32), "f64": (torch.float64, np.float64)}


def _boundary_points(dtype):
    if dtype == torch.float32:
        return dawsn_boundary_points(dtype, C.FLOAT32_TAYLOR_STEP, len(C.FLOAT32_TAYLOR), C.FLOAT32_SPLIT)
    return torch.cat([dawsn_boundary_points(dtype, C.FLOAT64_VECTOR_TAYLOR_STEP, 17, C.FLOAT64_SPLIT),
                      dawsn_boundary_points(dtype, C.FLOAT64_TAYLOR_STEP, len(C.FLOAT64_TAYLOR), C.FLOAT64_SPLIT)])


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([_boundary_points(dtype), torch.randn(2**16, generator=g, dtype=torch.float64).to(dtype) * 4])
    return x[:x.numel() - 3]  # not a whole number of vectors: the partial last one too


@pytest.fixture(scope="module", params=SIMD_ARCHS)
def kernels(request, tmp_path_factory):
    """{width: {dtype: (x, D(x))}} for the widths the -march of this build has."""
    d = tmp_path_factory.mktemp("dawson_simd")
    exe = build_simd_harness(HARNESS, request.param, d)
    xs = {}
    for name, (tdt, npdt) in DTYPES.items():
        xs[name] = _inputs(tdt)
        xs[name].numpy().astype(npdt).tofile(d / f"x_{name}.bin")
    widths = subprocess.run([str(exe), str(d)], check=True, capture_output=True, text=True).stdout.split()
    if not widths:
        pytest.skip(f"-march={request.param} has neither AVX-512 nor AVX2 + FMA: the cpu backend uses a scalar loop")
    return {w: {name: (xs[name], torch.from_numpy(np.fromfile(d / f"{w}_{name}.bin", dtype=DTYPES[name][1])))
                for name in DTYPES} for w in dict.fromkeys(widths)}


@pytest.fixture(scope="module")
def exact_f64():
    x = _boundary_points(torch.float64)
    x = x[x.isfinite() & (x != 0)]
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-v * v) * mpmath.erfi(v))
                          for v in map(mpmath.mpf, x.tolist())])
    return x, exact


def _same_bits(a, b):
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num()) and \
        torch.equal(a.signbit(), b.signbit())


def test_float32_is_bitwise_the_torch_reference_at_every_width(kernels):
    for width, res in kernels.items():
        x, got = res["f32"]
        assert _same_bits(got, sdekit.special.dawsn(x, backend="torch")), width


def test_float64_within_4_ulp_of_mpmath_around_every_row_at_every_width(kernels, exact_f64):
    x_exact, exact = exact_f64
    nb = _boundary_points(torch.float64).numel()  # the inputs start with the boundary points
    for width, res in kernels.items():
        x, got = (t[:nb] for t in res["f64"])
        finite = x.isfinite() & (x != 0)
        assert torch.equal(x[finite], x_exact)
        err = np.abs(got[finite].numpy() - exact) / np.spacing(np.abs(exact))
        assert err.max() <= 4.0, (width, err.max(), x_exact[int(np.argmax(err))].item())
        # D(+-0) = +-0, D(+-inf) = +-0, D(nan) = nan
        rest, d = x[~finite], got[~finite]
        assert torch.equal(d[~rest.isnan()], torch.zeros_like(d[~rest.isnan()])), width
        assert torch.equal(d[~rest.isnan()].signbit(), rest[~rest.isnan()].signbit()), width
        assert d[rest.isnan()].isnan().all() and rest.isnan().any(), width


def test_the_avx2_and_avx512_kernels_compute_the_same_bits(kernels):
    if len(kernels) < 2:
        pytest.skip("this build has one vector width only")
    for name in DTYPES:
        assert _same_bits(kernels["avx512"][name][1], kernels["avx2"][name][1]), name
