"""What a cheaper Box-Muller would cost in accuracy and save in instructions (issue 19).

Accuracy, exhaustively over the 2^24 float32 angles ``u2 = k 2^-24`` of sdekit's generator
(``sdekit/kernels/rng.py``), against ``cos/sin(2 pi u2)`` in float64:

* ``current``:  ``cos(fl32(fl32(2 pi) u2))``, the spec's angle, evaluated without further error,
* ``sincospi``: ``cospi(2 u2)`` correctly rounded (CUDA's ``sincospif`` is documented within
  1 ulp of that; its argument ``2 u2`` is exact, so no reduction error),

and the documented absolute errors of the fast intrinsics ``__logf``/``__sincosf`` (2^-21.41).
Instructions: four Box-Muller variants compiled by ``nvcc -arch=sm_90`` and counted in the
SASS (``nvdisasm`` or ``cuobjdump`` from Triton's bundle when the CUDA toolkit has none).

    python tools/rng_cost_study.py
"""
from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import tempfile

import numpy as np

KERNELS = r"""
#include <stdint.h>
__device__ __forceinline__ void uniforms(const uint32_t* o, int i, float& u1, float& u2) {
  u1 = (float)((o[2 * i] >> 8) + 1u) * 5.9604644775390625e-08f;
  u2 = (float)(o[2 * i + 1] >> 8) * 5.9604644775390625e-08f;
}
#define BM(NAME, LOG, SINCOS)                                                  \
  extern "C" __global__ void NAME(const uint32_t* o, float* z) {               \
    int i = blockIdx.x * blockDim.x + threadIdx.x; float u1, u2, s, c;         \
    uniforms(o, i, u1, u2); float r = sqrtf(-2.0f * LOG(u1)); SINCOS;          \
    z[2 * i] = r * c; z[2 * i + 1] = r * s; }
BM(precise, logf, (s = sinf(6.2831854820251465f * u2), c = cosf(6.2831854820251465f * u2)))
BM(sincospi_logf, logf, sincospif(2.0f * u2, &s, &c))
BM(sincospi_fastlog, __logf, sincospif(2.0f * u2, &s, &c))
BM(intrinsics, __logf, __sincosf(6.2831854820251465f * u2, &s, &c))
"""


def angle_errors() -> dict:
    k = np.arange(1 << 24, dtype=np.float64)
    u2 = (k * 2.0**-24).astype(np.float32)
    exact = np.cos(2 * np.pi * u2.astype(np.float64)), np.sin(2 * np.pi * u2.astype(np.float64))
    th32 = (np.float32(2 * np.pi) * u2).astype(np.float32).astype(np.float64)
    current = np.cos(th32).astype(np.float32), np.sin(th32).astype(np.float32)
    two_u = 2.0 * u2.astype(np.float64)  # exact
    pi_way = np.cos(np.pi * two_u).astype(np.float32), np.sin(np.pi * two_u).astype(np.float32)
    out = {}
    for name, got in (("current", current), ("sincospi", pi_way)):
        abs_err = max(float(np.abs(g.astype(np.float64) - e).max()) for g, e in zip(got, exact))
        ulp = max(float((np.abs(g.astype(np.float64) - e) / np.spacing(np.abs(e).astype(np.float32))).max())
                  for g, e in zip(got, exact))
        out[name] = {"max_abs": abs_err, "max_ulp": ulp}
    return out


def sass_counts(nvcc: str) -> dict:
    tools = pathlib.Path(__import__("triton").__file__).parent / "backends/nvidia/bin"
    dis = shutil.which("nvdisasm") or str(tools / "nvdisasm")
    with tempfile.TemporaryDirectory() as tmp:
        src = pathlib.Path(tmp) / "bm.cu"
        src.write_text(KERNELS)
        subprocess.run([nvcc, "-arch=sm_90", "-O3", "-cubin", str(src), "-o", str(src.with_suffix(".cubin"))],
                       check=True)
        sass = subprocess.run([dis, "-c", str(src.with_suffix(".cubin"))], capture_output=True, text=True,
                              check=True).stdout
    funcs, cur = {}, None
    for line in sass.splitlines():
        if m := re.match(r"\s*\.text\.(\w+):", line):
            cur = funcs.setdefault(m.group(1), [])
        elif cur is not None and re.search(r"/\*[0-9a-f]{4}\*/", line) and "NOP" not in line:
            cur.append(line)
    return {f: {"sass": len(ins), "to_first_exit": next(i for i, s in enumerate(ins) if "EXIT" in s) + 1}
            for f, ins in funcs.items()}


if __name__ == "__main__":
    print("angle (cos, sin of 2 pi u2), all 2^24 float32 u2:", angle_errors())
    print("fast intrinsics, documented: __logf abs error 2^-21.41 on [0.5, 2] -> z abs error up to "
          f"{np.sqrt(2 * 2**-21.41):.1e} near z = 0; __sincosf abs error 2^-21.41 -> z abs error up to "
          f"{5.77 * 2**-21.41:.1e}")
    print("SASS instructions per thread (one pair = 2 float32 normals):", sass_counts(shutil.which("nvcc")))
