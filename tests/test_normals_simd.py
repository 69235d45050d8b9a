"""The float32 normals of the "cpu" backend's vector path (``sdekit/csrc/cpu/normals_simd.h``) over
their whole input domains, against float64 libm, at every vector width the host runs.

Box-Muller's inputs take 2^24 values each: ``u1 = k 2^-24`` (k = 1 .. 2^24) and
``t = fl(fl(2 pi) k 2^-24)`` (k = 0 .. 2^24 - 1).  A small C++ program built from the header evaluates
``log_f32`` and ``sincos_f32`` on every one of them and measures the error in ulps of the exactly
rounded-to-double value (glibc's double ``log``/``sin``/``cos``, 2^29 times finer than a float ulp:
an independent reference).  The header promises 1 ulp; the op-level tests
(``tests/test_kernels_cpu.py``) check the normals the kernel writes against the torch reference.

The program is built twice, with the flags of the extension's build (``setup.py``): ``-march=native``
(on an AVX-512 host it checks both the 16-lane and the 8-lane functions, and that the two widths draw
the same bits) and ``-march=x86-64-v3`` (AVX2 + FMA only, the build of a wheel for other machines).
Skips where no C++ compiler is found or the host lacks the instructions.
"""
import json
import subprocess

import pytest

from _toolchain import SIMD_ARCHS, build_simd_harness

HARNESS = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include "cpu/normals_simd.h"

// |got - exact| in units of the float spacing at exact's binade
static double ulps(float got, double exact) {
  int e;
  std::frexp(exact, &e);
  return std::fabs((double)got - exact) / std::ldexp(1.0, e - 24);
}

template <class V>
static void check(const char* width) {
  constexpr int L = sizeof(V) / sizeof(float);
  const int N = 1 << 24;
  double worst[3] = {0, 0, 0};
  float arg[3] = {0, 0, 0};
  float in[L], out[L], s[L], c[L];
  for (int k0 = 0; k0 < N; k0 += L) {
    V v, vs, vc;
    for (int i = 0; i < L; ++i) in[i] = (float)(k0 + i + 1) * 5.9604644775390625e-08f;
    std::memcpy(&v, in, sizeof(V));
    v = sdekit::simd::log_f32(v);
    std::memcpy(out, &v, sizeof(V));
    for (int i = 0; i < L; ++i) {
      const double e = ulps(out[i], std::log((double)in[i]));
      if (e > worst[0]) { worst[0] = e; arg[0] = in[i]; }
    }
    for (int i = 0; i < L; ++i) in[i] = 6.2831854820251465f * ((float)(k0 + i) * 5.9604644775390625e-08f);
    std::memcpy(&v, in, sizeof(V));
    sdekit::simd::sincos_f32(v, vs, vc);
    std::memcpy(s, &vs, sizeof(V));
    std::memcpy(c, &vc, sizeof(V));
    for (int i = 0; i < L; ++i) {
      const double es = ulps(s[i], std::sin((double)in[i])), ec = ulps(c[i], std::cos((double)in[i]));
      if (es > worst[1]) { worst[1] = es; arg[1] = in[i]; }
      if (ec > worst[2]) { worst[2] = ec; arg[2] = in[i]; }
    }
  }
  std::printf("\"%s\": {\"log\": [%.6f, %.9g], \"sin\": [%.6f, %.9g], \"cos\": [%.6f, %.9g]}, ",
              width, worst[0], arg[0], worst[1], arg[1], worst[2], arg[2]);
}

int main() {
  std::printf("{");
#if defined(__AVX512F__)
  check<__m512>("avx512");
#endif
#if defined(__AVX2__) && defined(__FMA__)
  check<__m256>("avx2");
#endif
#if defined(__AVX512F__)
  // both widths draw the same normals: groups 0 .. 2^20 of three keys, bit for bit
  long differ = 0;
  alignas(64) float a[64], b[64];
  const uint32_t keys[3][2] = {{11, 0}, {0xfffffffdu, 0xffffffffu}, {0x9e3779b9u, 7}};
  for (const auto& k : keys)
    for (uint32_t q = 0xfffff000u; q != 0x000ff000u; q += 16) {  // across the wrap of the counter
      sdekit::simd::normals_f32<__m512>(q, 5, 3, 0, k[0], k[1], a);
      sdekit::simd::normals_f32<__m256>(q, 5, 3, 0, k[0], k[1], b);
      sdekit::simd::normals_f32<__m256>(q + 8, 5, 3, 0, k[0], k[1], b + 32);
      for (int i = 0; i < 64; ++i) differ += std::memcmp(a + i, b + i, 4) != 0;
    }
  std::printf("\"widths_differ\": %ld, ", differ);
#endif
  std::printf("\"done\": true}\n");
}
"""

@pytest.fixture(scope="module", params=SIMD_ARCHS)
def worst(request, tmp_path_factory):
    exe = build_simd_harness(HARNESS, request.param, tmp_path_factory.mktemp("normals_simd"))
    res = json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
    if not any(w in res for w in ("avx512", "avx2")):
        pytest.skip(f"-march={request.param} has neither AVX-512 nor AVX2 + FMA: the cpu backend uses SLEEF or libm")
    return res


@pytest.mark.parametrize("fn", ["log", "sin", "cos"])
def test_within_1_ulp_on_every_input_of_the_domain_at_every_width(worst, fn):
    for width in ("avx512", "avx2"):
        if width in worst:
            err, at = worst[width][fn]
            assert err <= 1.0, f"{width} {fn}: {err:.3f} ulp at {at!r}"


def test_the_avx2_and_avx512_functions_draw_the_same_normals(worst):
    if "widths_differ" not in worst:
        pytest.skip("this build has no AVX-512 to compare the AVX2 functions with")
    assert worst["widths_differ"] == 0
