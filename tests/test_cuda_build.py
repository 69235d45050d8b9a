"""The CUDA sources compile with nvcc on any machine, GPU or not.

``csrc/dawson.cuh`` holds only device arithmetic (no torch includes), so nvcc
compiles it for sm_90 here; the same header compiled for the host with FMA
contraction reproduces the GPU's arithmetic, which is checked against mpmath.  The torch binding (``csrc/dawson.cu``) needs a CUDA build of torch's
headers: a CPU wheel lacks ``c10/cuda/impl/cuda_cmake_macros.h`` (and cusparse for
``ATen/cuda``), so that test is skipped there.
"""
import pathlib
import platform
import shutil
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "csrc"
NVCC = shutil.which("nvcc")

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")


def nvcc(*args, cwd):
    res = subprocess.run([NVCC, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def test_dawson_device_code_compiles_for_sm90(tmp_path):
    src = tmp_path / "dawson_sm90.cu"
    src.write_text(
        '#include "dawson.cuh"\n'
        "template __global__ void sdekit::dawson::dawsn_kernel<float, 4>(const float*, float*, long long);\n"
        "template __global__ void sdekit::dawson::dawsn_kernel<double, 2>(const double*, double*, long long);\n"
        "template __global__ void sdekit::dawson::dawsn_kernel<float, 1>(const float*, float*, long long);\n"
        "template __global__ void sdekit::dawson::dawsn_kernel<double, 1>(const double*, double*, long long);\n"
    )
    nvcc("-arch=sm_90", "-O3", f"-I{CSRC}", "-c", src, "-o", tmp_path / "dawson_sm90.o", cwd=tmp_path)
    nvcc("-arch=sm_90", "-O3", f"-I{CSRC}", "-ptx", src, "-o", tmp_path / "dawson_sm90.ptx", cwd=tmp_path)
    ptx = (tmp_path / "dawson_sm90.ptx").read_text()
    assert ptx.count(".entry") == 4
    assert "fma.rn.f32" in ptx and "fma.rn.f64" in ptx
    # the final division is IEEE in both precisions (y = 1/a^2 and P/Q may be fast in float32)
    assert "div.rn.f32" in ptx and "div.rn.f64" in ptx


def test_cuda_header_coefficients_are_generated_from_python_table():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_dawson_header
    finally:
        sys.path.pop(0)
    assert (CSRC / "dawson_coeffs.h").read_text() == gen_dawson_header.render()


def test_cuda_arithmetic_on_host_with_fma_within_4_ulp_of_mpmath(tmp_path):
    """csrc/dawson.cuh compiled for the host, with multiply-adds contracted to FMAs as on a GPU."""
    (tmp_path / "harness.cu").write_text(
        "#include <cstdio>\n#include \"dawson.cuh\"\n"
        "int main() { double x; while (std::scanf(\"%lf\", &x) == 1) "
        "std::printf(\"%.17g %.9g\\n\", sdekit::dawson::dawsn(x), (double)sdekit::dawson::dawsn((float)x)); }\n"
    )
    flags = ["-Xcompiler", "-mfma,-ffp-contract=fast"] if platform.machine() == "x86_64" else []
    nvcc("-O2", *flags, f"-I{CSRC}", tmp_path / "harness.cu", "-o", tmp_path / "harness", cwd=tmp_path)
    rng = np.random.default_rng(7)
    x = np.concatenate([np.linspace(0, 12, 2401)[1:], rng.uniform(3.5, 5.5, 500), np.logspace(-12, 12, 400),
                        [np.nextafter(np.float32(4.0), np.float32(0)), np.nextafter(5.0, 0), 4.0, 5.0],
                        [1e38, 3.4e38, 1e300, 1.7e308]])
    x = np.concatenate([x, -x[::5]])
    with np.errstate(over="ignore"):
        x32 = np.unique(x.astype(np.float32)).astype(np.float64)
    x32 = x32[np.isfinite(x32)]
    run = lambda v: subprocess.run(  # noqa: E731
        [str(tmp_path / "harness")], input="\n".join(repr(float(t)) for t in v),
        capture_output=True, text=True, check=True).stdout.split()
    mpmath.mp.dps = 40
    for xs, col, dtype in ((x, 0, np.float64), (x32, 1, np.float32)):
        got = np.array(run(xs)[col::2], dtype=np.float64)
        exact = np.array([_dawson_mp(v) for v in xs])
        err = np.abs(got - exact) / np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
        assert err.max() <= 4.0, (dtype, float(err.max()), xs[int(err.argmax())])
    special = run([0.0, -0.0, np.inf, -np.inf, np.nan])
    assert special[0::2][:4] == ["0", "-0", "0", "-0"] and special[0::2][4].lower().endswith("nan")


def _dawson_mp(x):
    x = mpmath.mpf(x)
    return 0.0 if x == 0 else float(mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-x * x) * mpmath.erfi(x))


def test_torch_binding_compiles(tmp_path):
    if torch.version.cuda is None:
        pytest.skip("torch is a CPU wheel: its headers lack c10/cuda/impl/cuda_cmake_macros.h, "
                    "so csrc/dawson.cu cannot be compiled against them")
    from torch.utils.cpp_extension import include_paths

    import sysconfig

    incs = [f"-I{p}" for p in include_paths(device_type="cuda")] + [f"-I{sysconfig.get_paths()['include']}"]
    nvcc("-arch=sm_90", "-std=c++17", f"-I{CSRC}", *incs, "-c", CSRC / "dawson.cu", "-o", tmp_path / "b.o",
         cwd=tmp_path)
