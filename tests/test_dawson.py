"""Dawson's integral ``sdekit.special.dawsn`` against 40-digit mpmath, on every backend that runs here.

Reference: ``D(x) = sqrt(pi)/2 exp(-x^2) erfi(x)`` in mpmath at 40 digits, computed
once per module.  Error unit: the ulp of the exact value in the tested dtype
(float32 results are compared with the exact value at the float32 input).
"""
import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
import torch

from sdekit.kernels.dispatch import backend_unavailable_reason
from sdekit.special import dawsn
from sdekit.kernels.dawsn import coefficients as C

ULP_BOUND = 4.0
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
BACKENDS = ["torch", "triton", "cuda", "cpu"]


def _backend_params():
    out = []
    for dev in DEVICES:
        for b in BACKENDS:
            reason = backend_unavailable_reason(b, torch.device(dev))
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            if dev == "cuda":
                marks.append(pytest.mark.gpu)
            out.append(pytest.param(b, dev, id=f"{b}-{dev}", marks=marks))
    return out


BACKEND_PARAMS = _backend_params()


def dawson_mp(x: float) -> float:
    x = mpmath.mpf(x)
    if x == 0:
        return 0.0
    return float(mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-x * x) * mpmath.erfi(x))


def _points() -> np.ndarray:
    rng = np.random.default_rng(20261123)
    logs = np.logspace(-12, 12, 2500)
    dense = np.linspace(0, 12, 2401)[1:]
    rand = rng.uniform(0, 8, 1500)
    edges = []
    for s in (C.FLOAT32_SPLIT, C.FLOAT64_SPLIT, 1.0, 2.0, 3.25, 6.25):
        for dt in (np.float64, np.float32):
            v = dt(s)
            for k in range(4):
                edges += [float(v), float(np.nextafter(v, dt(0)))]
                v = np.nextafter(v, dt(np.inf))
    huge = [1e15, 1e38, 3.4e38, 1e100, 1e300, 8.9e307, 1.7e308, np.finfo(np.float64).max,
            float(np.finfo(np.float32).max)]  # D ~ 1/(2x), down to subnormal results
    x = np.unique(np.concatenate([logs, dense, rand, edges, huge]))
    return np.concatenate([x, -x[::7]])  # negatives: oddness is exact, a sample suffices


@pytest.fixture(scope="module")
def reference():
    """{dtype: (x as float64 numpy in that dtype's values, exact D(x))}."""
    mpmath.mp.dps = 40
    x64 = _points()
    with np.errstate(over="ignore"):
        x32 = np.unique(x64.astype(np.float32)).astype(np.float64)
    x32 = x32[np.isfinite(x32)]
    return {
        torch.float64: (x64, np.array([dawson_mp(v) for v in x64])),
        torch.float32: (x32, np.array([dawson_mp(v) for v in x32])),
    }


def ulp_errors(got: np.ndarray, exact: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    npdt = np.float64 if dtype == torch.float64 else np.float32
    ulp = np.spacing(np.abs(exact).astype(npdt)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / ulp


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_dawsn_within_4_ulp_of_mpmath(reference, backend, device, dtype):
    x, exact = reference[dtype]
    got = dawsn(torch.tensor(x, dtype=dtype, device=device), backend=backend).cpu().numpy()
    err = ulp_errors(got, exact, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_BOUND, f"{err[worst]:.2f} ulp at x = {x[worst]!r} ({backend}, {dtype})"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_dawsn_special_values_and_exact_oddness(backend, device, dtype):
    inf, nan = math.inf, math.nan
    x = torch.tensor([0.0, -0.0, inf, -inf, nan], dtype=dtype, device=device)
    d = dawsn(x, backend=backend).cpu()
    assert d[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert torch.signbit(d[:4]).tolist() == [False, True, False, True]
    assert torch.isnan(d[4])
    tiny = torch.tensor([torch.finfo(dtype).tiny, 1e-30, 1e-300 if dtype == torch.float64 else 1e-38],
                        dtype=dtype, device=device)
    assert torch.equal(dawsn(tiny, backend=backend), tiny)  # D(x) = x (1 - 2x^2/3 + ...) rounds to x
    y = torch.logspace(-8, 8, 2001, dtype=dtype, device=device)
    assert torch.equal(dawsn(-y, backend=backend), -dawsn(y, backend=backend))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("backend,device", [p for p in BACKEND_PARAMS if p.values[0] != "torch"])
def test_kernels_match_torch_reference(backend, device, dtype):
    x = torch.linspace(-30, 30, 20001, dtype=dtype, device=device)
    ref = dawsn(x, backend="torch")
    got = dawsn(x, backend=backend)
    # Same equations.  Under the Triton interpreter the results are bitwise equal; a GPU
    # contracts multiply-adds into FMAs, and each result is within 1.5 ulp of exact
    # (measured, host FMA build in test_cuda_build.py), so they differ by at most 3.
    # The "cpu" backend in float64 on AVX-512 and AVX2 + FMA builds uses a coarser table with FMAs (its contract in
    # sdekit/kernels/dawsn/cpu.py): within 1.5 ulp of exact too (measured, benchmarks/RESULTS.md).
    if device == "cpu" and (backend, dtype) != ("cpu", torch.float64):
        assert torch.equal(got, ref)
    err = ((got - ref).abs() / torch.finfo(dtype).eps / ref.abs().clamp_min(torch.finfo(dtype).tiny)).max()
    assert err.item() <= 3.0


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_dawsn_any_shape_and_strides(backend, device):
    base = torch.linspace(-9, 9, 6 * 5 * 4, dtype=torch.float64, device=device).reshape(6, 5, 4)
    for x in (base, base.transpose(0, 2), base[::2, 1:, ::3], base[0, 0, 0], base[:0]):
        d = dawsn(x, backend=backend)
        assert d.shape == x.shape and d.dtype == x.dtype
        # layout must not change a bit: the same backend on a contiguous flat copy (kernels on a
        # GPU contract multiply-adds to FMAs, so across backends only the ulp bound above holds)
        expect = dawsn(x.contiguous().reshape(-1), backend=backend).reshape(x.shape)
        assert torch.equal(d, expect)
        reference = dawsn(x.contiguous().reshape(-1), backend="torch").reshape(x.shape)
        assert ((d - reference).abs() <= 3 * torch.finfo(x.dtype).eps * reference.abs()).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    x = torch.linspace(-10, 10, 1001).to(dtype)
    assert dawsn(x).dtype == dtype
    assert torch.equal(dawsn(x), dawsn(x.float()).to(dtype))


@pytest.mark.parametrize("backend,device", BACKEND_PARAMS)
def test_gradient_is_one_minus_2x_dawsn(backend, device):
    x = torch.tensor([-12.0, -4.7, -0.3, 0.0, 1e-9, 0.92, 3.9, 4.1, 5.2, 40.0], dtype=torch.float64,
                     device=device, requires_grad=True)
    f = lambda v: dawsn(v, backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))
    (g,) = torch.autograd.grad(f(x).sum(), x)
    exact = np.array([1 - 2 * v * dawson_mp(v) for v in x.detach().cpu().tolist()])
    np.testing.assert_allclose(g.cpu().numpy(), exact, rtol=1e-14, atol=1e-15)


def test_zero_dim_inputs_leave_the_reference_unchanged():
    """A 0-d index makes ``table[k][idx]`` a view: the reference once updated its cached Taylor table in
    place on a 0-d input, changing later results by an ulp."""
    from sdekit.kernels.dawsn.reference import dawsn_reference, taylor_table

    for dtype in (torch.float32, torch.float64):
        table = taylor_table(dtype, torch.device("cpu"))
        before = table.clone()
        for v in (-9.0, 0.3, 2.2, 7.0):
            dawsn_reference(torch.tensor(v, dtype=dtype))
        assert torch.equal(table, before)
    v = torch.tensor([0.02563424409496838], dtype=torch.float64)  # row 0's c_12 became 1 here: 1 ulp
    assert dawsn_reference(v).item() == 0.025623017290954446


def test_python_float_and_zero_dim_inputs():
    d = dawsn(0.5)
    assert isinstance(d, torch.Tensor) and d.dim() == 0 and d.dtype == torch.float64
    assert d.item() == pytest.approx(dawson_mp(0.5), rel=1e-15)
    assert dawsn(torch.tensor(2.0, dtype=torch.float64)).item() == pytest.approx(dawson_mp(2.0), rel=1e-15)
    with pytest.raises(TypeError, match="floating"):
        dawsn(torch.arange(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        dawsn("1.0")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_default_cpu_path_matches_the_reference_also_when_threaded(dtype):
    """``backend="auto"`` on a CPU tensor large enough for several threads (the compiled kernel when
    built): bitwise the reference in float32 (no FMA contraction); in float64 within the compiled
    backend's contract (sdekit/kernels/dawsn/cpu.py), both within 1.5 ulp of exact, so 3 apart."""
    from sdekit.kernels.dawsn.reference import dawsn_reference

    x = torch.linspace(-12, 12, 3 * 2**15 + 3, dtype=dtype)
    got, ref = dawsn(x), dawsn_reference(x)
    if dtype == torch.float32:
        assert torch.equal(got, ref)
    err = ((got - ref).abs() / torch.finfo(dtype).eps / ref.abs().clamp_min(torch.finfo(dtype).tiny)).max()
    assert err.item() <= 3.0


def test_dawsn_inside_torch_compile_fullgraph():
    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(x):
        return dawsn(x) * 2.0 + 1.0

    x = torch.linspace(-8, 8, 257, dtype=torch.float64, requires_grad=True)
    y = f(x)
    assert torch.equal(y, dawsn(x) * 2.0 + 1.0)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, 2.0 * (1.0 - 2.0 * x * dawsn(x)), rtol=0, atol=0)


@pytest.mark.gpu
def test_triton_op_inside_torch_compile_on_gpu():
    f = torch.compile(lambda v: dawsn(v, backend="triton") + 1.0, fullgraph=True)
    x = torch.linspace(-8, 8, 4097, device="cuda")
    # both within 1.5 ulp of exact (measured on the CPU), so within 3 ulp <= 3 eps of each other
    torch.testing.assert_close(f(x), dawsn(x, backend="torch") + 1.0, rtol=3 * 1.2e-7, atol=0)


@given(st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False))
def test_dawsn_property_odd_bounded_and_within_4_ulp(v):
    mpmath.mp.dps = 40
    x = torch.tensor([v, -v], dtype=torch.float64)
    d = dawsn(x)
    assert d[1].item() == -d[0].item()
    d_max = 0.5410442246351817  # max of D, at x = 0.92413887...; allow the 4-ulp accuracy
    assert abs(d[0].item()) <= d_max + 4 * np.spacing(d_max)
    exact = dawson_mp(abs(v))
    if exact != 0.0:
        assert abs(abs(d[0].item()) - exact) <= 4 * np.spacing(exact)
