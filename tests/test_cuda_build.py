"""The CUDA sources compile with nvcc on any machine, GPU or not.

The device arithmetic lives in ``sdekit/csrc/*.cuh`` without torch includes, so nvcc compiles it
for sm_90 here, and the same headers compiled for the host (multiply-adds contracted to FMAs
as on a GPU) reproduce the GPU's arithmetic, which is checked against mpmath (Dawson) and
the torch reference (spectral scaling).  The torch bindings (``sdekit/csrc/*.cu``) compile against
this torch's headers, a CPU wheel's included (see the binding test for the one header a CPU
wheel lacks).
"""
import platform
import subprocess
import sys

import mpmath
import numpy as np
import pytest
import torch

from _toolchain import CSRC, NVCC, ROOT

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
    """sdekit/csrc/dawson.cuh compiled for the host, with multiply-adds contracted to FMAs as on a GPU."""
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


BINDINGS = sorted(CSRC.glob("*.cu"))
# op name (its kernel registered by TORCH_LIBRARY_IMPL; the schemas are defined in Python by
# sdekit/kernels/<op>/__init__.py) -> the kernel its launcher instantiates
OPS = {b"dawsn\0": b"dawsn_kernel",
       b"sde_affine_step\0": b"affine_step_kernel",
       b"sde_sample_sq_norms\0": b"sample_sq_norms_kernel",
       b"spectral_scale\0": b"spectral_scale_kernel"}


def test_torch_bindings_compile_for_sm90(tmp_path):
    """Every ``sdekit/csrc/*.cu`` compiles on its own against this torch's headers (kernels for sm_90),
    all at once (the torch headers dominate: ~25 s of CPU per file), and registers its ops' kernels.

    A CPU wheel ships the ``c10/cuda`` and ``ATen`` headers but not the one CMake generates for
    CUDA builds, ``c10/cuda/impl/cuda_cmake_macros.h``; its whole content in a CUDA build is
    ``#define C10_CUDA_BUILD_SHARED_LIBS``, written here to a scratch include directory.  So a
    binding error is caught on every machine, not first on the GPU one, where it would take
    every op of ``sdekit._C`` down with it.  (Linking needs ``libc10_cuda``: GPU machine only.)
    """
    import sysconfig

    from torch.utils.cpp_extension import include_paths

    stub = tmp_path / "stub"
    if torch.version.cuda is None:
        (stub / "c10/cuda/impl").mkdir(parents=True)
        (stub / "c10/cuda/impl/cuda_cmake_macros.h").write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    incs = [f"-I{p}" for p in include_paths()] + [f"-I{sysconfig.get_paths()['include']}", f"-I{stub}"]
    flags = ["-arch=sm_90", "-std=c++17", "-O1", "--expt-relaxed-constexpr", "-Xcudafe", "--diag_suppress=3306",
             f"-I{CSRC}", *incs, "-c"]
    jobs = {src: subprocess.Popen([NVCC, *flags, str(src), "-o", str(tmp_path / f"{src.stem}.o")], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for src in BINDINGS}
    errors = {src.name: job.communicate(timeout=600)[1][-3000:] for src, job in jobs.items()}
    failed = {name: err for (src, job), (name, err) in zip(jobs.items(), errors.items()) if job.returncode != 0}
    assert not failed, failed
    objects = b"".join((tmp_path / f"{src.stem}.o").read_bytes() for src in BINDINGS)
    for schema, kernel in OPS.items():
        assert schema in objects, f"no kernel is registered for op {schema.decode()!r}"
        assert kernel in objects, f"kernel {kernel.decode()} is not instantiated"


def test_spectral_scale_arithmetic_on_host_matches_torch_reference(tmp_path):
    """sdekit/csrc/spectral_scale.cuh's spectral_weight compiled for the host (FMAs contracted as on a
    GPU) against the torch reference, within the forward-error bound of either evaluation order."""
    (tmp_path / "harness.cu").write_text(
        "#include <cstdio>\n#include \"spectral_scale.cuh\"\n"
        "int main() { double S, z, u, s, a, c;\n"
        "  while (std::scanf(\"%lf %lf %lf %lf %lf %lf\", &S, &z, &u, &s, &a, &c) == 6) {\n"
        "    sdekit::SpectralCoef<double> k{s, a, c};\n"
        "    sdekit::SpectralCoef<float> kf{(float)s, (float)a, (float)c};\n"
        "    std::printf(\"%.17g %.9g\\n\", sdekit::spectral_weight(S, z, u, k),"
        " (double)sdekit::spectral_weight((float)S, (float)z, (float)u, kf)); } }\n")
    flags = ["-Xcompiler", "-mfma,-ffp-contract=fast"] if platform.machine() == "x86_64" else []
    nvcc("-O2", *flags, f"-I{CSRC}", tmp_path / "harness.cu", "-o", tmp_path / "harness", cwd=tmp_path)
    from sdekit.kernels.spectral_scale.reference import spectral_scale_torch

    g = torch.Generator().manual_seed(11)
    k = 4000
    S = torch.rand(k, generator=g, dtype=torch.float64)
    S[::97] = 0.0
    S[1::89] = 10.0 ** torch.empty(len(S[1::89])).uniform_(-8, 0, generator=g).double()
    z, uy = torch.randn(2, k, generator=g, dtype=torch.float64)
    s, a, c = 0.7, 0.0, 0.3  # a = 0 (sigma_y = 0): S = 0 entries are 0/0 in the formula, must be 0
    rows = zip(S.tolist(), z.tolist(), uy.tolist())
    out = subprocess.run([str(tmp_path / "harness")], input="\n".join(f"{v[0]!r} {v[1]!r} {v[2]!r} {s!r} {a!r} {c!r}"
                                                                  for v in rows),
                         capture_output=True, text=True, check=True).stdout.split()
    for col, dtype in ((0, torch.float64), (1, torch.float32)):
        got = torch.tensor([float(v) for v in out[col::2]], dtype=torch.float64)
        Sd, zd, ud = (v.to(dtype) for v in (S, z, uy))
        want = spectral_scale_torch(zd[None], ud[None], Sd, s, a, c)[0].double()
        f = (Sd / (a + c * Sd * Sd)).nan_to_num(nan=0.0).abs().double()
        bound = 8 * torch.finfo(dtype).eps * ((s * ud).abs() + (Sd * zd).abs()).double() * f
        assert torch.isfinite(got).all() and (got[S == 0] == 0).all()
        assert ((got - want).abs() <= bound).all(), (dtype, float(((got - want).abs() / bound).max()))
