"""The AVX-512 float32 normals of the "cpu" backend (``sdekit/csrc/cpu/normals_avx512.h``) over their
whole input domains, against float64 libm.

Box-Muller's inputs take 2^24 values each: ``u1 = k 2^-24`` (k = 1 .. 2^24) and
``t = fl(fl(2 pi) k 2^-24)`` (k = 0 .. 2^24 - 1).  A small C++ program built from the header evaluates
``log_f32`` and ``sincos_f32`` on every one of them and measures the error in ulps of the exactly
rounded-to-double value (glibc's double ``log``/``sin``/``cos``, 2^29 times finer than a float ulp:
an independent reference).  The header promises 1 ulp; the op-level tests
(``tests/test_kernels_cpu.py``) check the normals the kernel writes against the torch reference.
Skips where no C++ compiler is found or the host has no AVX-512 (the backend then does not use the
header).
"""
import json
import shutil
import subprocess

import pytest

from _toolchain import CSRC

CXX = shutil.which("c++") or shutil.which("g++")

HARNESS = r"""
#include <cmath>
#include <cstdint>
#include <cstdio>
#include "cpu/normals_avx512.h"

// |got - exact| in units of the float spacing at exact's binade
static double ulps(float got, double exact) {
  int e;
  std::frexp(exact, &e);
  return std::fabs((double)got - exact) / std::ldexp(1.0, e - 24);
}

int main() {
#if !defined(__AVX512F__)
  std::printf("{\"avx512\": false}\n");
#else
  const int N = 1 << 24;
  double worst[3] = {0, 0, 0};
  float arg[3] = {0, 0, 0};
  alignas(64) float in[16], out[16], s[16], c[16];
  for (int k0 = 0; k0 < N; k0 += 16) {
    for (int i = 0; i < 16; ++i) in[i] = (float)(k0 + i + 1) * 5.9604644775390625e-08f;
    _mm512_store_ps(out, sdekit::avx512::log_f32(_mm512_load_ps(in)));
    for (int i = 0; i < 16; ++i) {
      const double e = ulps(out[i], std::log((double)in[i]));
      if (e > worst[0]) { worst[0] = e; arg[0] = in[i]; }
    }
    for (int i = 0; i < 16; ++i) in[i] = 6.2831854820251465f * ((float)(k0 + i) * 5.9604644775390625e-08f);
    __m512 vs, vc;
    sdekit::avx512::sincos_f32(_mm512_load_ps(in), vs, vc);
    _mm512_store_ps(s, vs);
    _mm512_store_ps(c, vc);
    for (int i = 0; i < 16; ++i) {
      const double es = ulps(s[i], std::sin((double)in[i])), ec = ulps(c[i], std::cos((double)in[i]));
      if (es > worst[1]) { worst[1] = es; arg[1] = in[i]; }
      if (ec > worst[2]) { worst[2] = ec; arg[2] = in[i]; }
    }
  }
  std::printf("{\"avx512\": true, \"log\": [%.6f, %.9g], \"sin\": [%.6f, %.9g], \"cos\": [%.6f, %.9g]}\n",
              worst[0], arg[0], worst[1], arg[1], worst[2], arg[2]);
#endif
}
"""


@pytest.fixture(scope="module")
def worst(tmp_path_factory):
    if CXX is None:
        pytest.skip("no C++ compiler on PATH")
    d = tmp_path_factory.mktemp("normals_avx512")
    (d / "h.cpp").write_text(HARNESS)
    # the flags of the extension's build (setup.py): no contraction, -march=native
    subprocess.run([CXX, "-O2", "-std=c++17", "-march=native", "-ffp-contract=off", "-fno-math-errno",
                    f"-I{CSRC}", str(d / "h.cpp"), "-o", str(d / "h")], check=True)
    res = json.loads(subprocess.run([str(d / "h")], check=True, capture_output=True, text=True).stdout)
    if not res["avx512"]:
        pytest.skip("the host has no AVX-512: the cpu backend uses SLEEF's log and sincos")
    return res


@pytest.mark.parametrize("fn", ["log", "sin", "cos"])
def test_within_1_ulp_on_every_input_of_the_domain(worst, fn):
    err, at = worst[fn]
    assert err <= 1.0, f"{fn}: {err:.3f} ulp at {at!r}"
