"""Dawson's integral of the "cpu" backend's vector kernel (``sdekit/csrc/cpu/dawson_simd.h``) at every
vector width the host runs, whichever width the installed extension was built for.

A small C++ program built from the header (twice, as in ``tests/test_normals_simd.py``:
``-march=native``, which on an AVX-512 host has both the 16-lane and the 8-lane kernels, and
``-march=x86-64-v3``, AVX2 + FMA only) evaluates ``dawsn_simd`` on the points where the table
lookups and the branch change (:func:`_problems.dawsn_boundary_points`: every grid point and row
boundary of both tables with their neighbours, the split, the special values) and on 2^16 draws of
N(0, 16), through whole vectors and the partial last one.  float32 must be bitwise the torch
reference (:mod:`sdekit.kernels.dawsn.reference`, the same arithmetic) and the same bits at both
widths; float64 within 4 ulp of 40-digit mpmath (the op's stated bound) on the boundary points at
every width, and, for the AVX2 kernel (no table: a rational, a polynomial and the tail, whose
rounding is not bounded row by row), also on a dense uniform sample of each of its three intervals
and on log-spaced points up to the largest double.
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


def _neighbours(points, n=4):
    """Each point and its n float64 neighbours on each side, both signs."""
    out = []
    for c in points:
        v = lo = np.float64(c)
        for _ in range(n + 1):
            out += [v, lo]
            v, lo = np.nextafter(v, np.inf), np.nextafter(lo, 0)
    x = torch.from_numpy(np.unique(np.array(out)))
    return torch.cat([x, -x])


def _boundary_points(dtype):
    if dtype == torch.float32:
        return dawsn_boundary_points(dtype, C.FLOAT32_TAYLOR_STEP, len(C.FLOAT32_TAYLOR), C.FLOAT32_SPLIT)
    # the AVX2 kernel's form changes at FLOAT64_VECTOR_INNER_SPLIT and FLOAT64_SPLIT; its polynomial's
    # variable s = |x| - FLOAT64_VECTOR_MID_CENTER changes sign at the centre
    avx2 = [C.FLOAT64_VECTOR_INNER_SPLIT, C.FLOAT64_VECTOR_MID_CENTER, C.FLOAT64_SPLIT]
    return torch.cat([dawsn_boundary_points(dtype, C.FLOAT64_VECTOR_TAYLOR_STEP, 17, C.FLOAT64_SPLIT),
                      dawsn_boundary_points(dtype, C.FLOAT64_TAYLOR_STEP, len(C.FLOAT64_TAYLOR), C.FLOAT64_SPLIT),
                      _neighbours(avx2)])


def _inputs(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([_boundary_points(dtype), torch.randn(2**16, generator=g, dtype=torch.float64).to(dtype) * 4])
    return x[:x.numel() - 3]  # not a whole number of vectors: the partial last one too


@pytest.fixture(scope="module", params=SIMD_ARCHS)
def harness(request, tmp_path_factory):
    """The harness built with -march=<param>, and its directory."""
    d = tmp_path_factory.mktemp("dawson_simd")
    return build_simd_harness(HARNESS, request.param, d), d, request.param


def _evaluate(harness, xs):
    """{width: {dtype: (x, D(x))}} for the inputs xs = {dtype: x} at the widths the build has."""
    exe, d, arch = harness
    for name, x in xs.items():
        x.numpy().astype(DTYPES[name][1]).tofile(d / f"x_{name}.bin")
    widths = subprocess.run([str(exe), str(d)], check=True, capture_output=True, text=True).stdout.split()
    if not widths:
        pytest.skip(f"-march={arch} has neither AVX-512 nor AVX2 + FMA: the cpu backend uses a scalar loop")
    return {w: {name: (xs[name], torch.from_numpy(np.fromfile(d / f"{w}_{name}.bin", dtype=DTYPES[name][1])))
                for name in DTYPES} for w in dict.fromkeys(widths)}


@pytest.fixture(scope="module")
def kernels(harness):
    return _evaluate(harness, {name: _inputs(tdt) for name, (tdt, _) in DTYPES.items()})


def _exact(x):
    """D(x) in 40-digit mpmath: sqrt(pi)/2 exp(-x^2) erfi(x), and for |x| >= 40 (where mpmath's erfi
    takes a millisecond) the asymptotic series sum_k (2k-1)!! / (2^(k+1) x^(2k+1)) to k = 11, whose
    first omitted term is below 1e-25 relative there."""
    def d(v):
        if abs(v) < 40:
            return mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-v * v) * mpmath.erfi(v)
        y, term, acc = 1 / (2 * v * v), 1 / (2 * v), mpmath.mpf(0)
        for k in range(12):
            acc += term
            term *= (2 * k + 1) * y
        return acc

    with mpmath.workdps(40):
        return np.array([float(d(v)) for v in map(mpmath.mpf, x.tolist())])


def _max_ulp(got, exact):
    err = np.abs(got - exact) / np.spacing(np.abs(exact))
    return err.max(), int(np.argmax(err))


@pytest.fixture(scope="module")
def exact_f64():
    x = _boundary_points(torch.float64)
    x = x[x.isfinite() & (x != 0)]
    return x, _exact(x)


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
        worst, i = _max_ulp(got[finite].numpy(), exact)
        assert worst <= 4.0, (width, worst, x_exact[i].item())
        # D(+-0) = +-0, D(+-inf) = +-0, D(nan) = nan
        rest, d = x[~finite], got[~finite]
        assert torch.equal(d[~rest.isnan()], torch.zeros_like(d[~rest.isnan()])), width
        assert torch.equal(d[~rest.isnan()].signbit(), rest[~rest.isnan()].signbit()), width
        assert d[rest.isnan()].isnan().all() and rest.isnan().any(), width


def test_the_avx2_and_avx512_kernels_compute_the_same_float32_bits(kernels):
    if len(kernels) < 2:
        pytest.skip("this build has one vector width only")
    assert _same_bits(kernels["avx512"]["f32"][1], kernels["avx2"]["f32"][1])


def _dense_points(per_interval):
    """Uniform on each interval of the AVX2 float64 kernel, [0, 2.25), [2.25, 5), [5, 40), and
    log-spaced from 40 to the largest double."""
    g = np.random.default_rng(13)
    edges = [0.0, C.FLOAT64_VECTOR_INNER_SPLIT, C.FLOAT64_SPLIT, 40.0]
    parts = [g.uniform(lo, hi, per_interval) for lo, hi in zip(edges[:-1], edges[1:])]
    parts.append(np.exp(g.uniform(np.log(40.0), np.log(np.finfo(np.float64).max), per_interval // 4)))
    return torch.from_numpy(np.concatenate(parts))


@pytest.mark.parametrize("per_interval", [2**12, pytest.param(2**16, marks=pytest.mark.slow)])
def test_avx2_float64_within_4_ulp_of_mpmath_on_dense_samples_of_each_interval(harness, per_interval):
    x = _dense_points(per_interval)
    res = _evaluate(harness, {"f64": x, "f32": x[:8].float()})
    if "avx2" not in res:
        pytest.skip("this build has no AVX2 kernels")
    got = res["avx2"]["f64"][1]
    exact = _exact(x)
    worst, i = _max_ulp(got.numpy(), exact)
    assert worst <= 4.0, (worst, x[i].item())
    # and odd: D(-x) = -D(x) exactly
    neg = _evaluate(harness, {"f64": -x, "f32": x[:8].float()})["avx2"]["f64"][1]
    assert torch.equal(neg, -got)
