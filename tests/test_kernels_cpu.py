"""The compiled "cpu" backend (``sdekit._cpu``) against the torch reference, op by op.

The element-wise arithmetic is compiled without FMA contraction in the reference's order, so
everything but the normals and float64 ``dawsn`` on AVX-512 and AVX2 + FMA builds (its own table with
FMAs, within 4 ulp of exact: the contract in ``sdekit/kernels/dawsn/cpu.py``) is bitwise the reference's.
The normals use their own vector ``log`` and ``sincos`` (float32 on AVX-512 and AVX2 + FMA builds:
``tests/test_normals_simd.py``) or SLEEF's, where the reference
uses torch's: each within 1 ulp, so the stated bound between the two is 3 ulp of the normal, checked here on 2^20 draws per dtype; a step with noise then differs
from the reference by at most ``|N| * 3 ulp(z)`` plus the roundings of ``N z`` and of the sum.
"""
import math

import numpy as np
import pytest
import torch

import sdekit  # noqa: F401  (registers every op)
import sdekit.special
from sdekit.kernels import cpu_ext, resolve
from sdekit.kernels import steps
from sdekit.kernels import dispatch
from sdekit.kernels.dispatch import backend_unavailable_reason
from sdekit.kernels.rng import philox_normal
from sdekit.kernels.spectral_scale.reference import spectral_scale_torch
from sdekit.kernels.steps import reference as ref

from _problems import dawsn_boundary_points

_reason = backend_unavailable_reason("cpu", torch.device("cpu"))
pytestmark = pytest.mark.skipif(_reason is not None, reason=str(_reason))

DTYPES = [torch.float32, torch.float64]
NORMAL_ULP = 3


def _spacing(t: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.spacing(np.abs(t.numpy())))


def _inputs(dtype, B=3, shape=(3, 17, 9), seed=0):
    g = torch.Generator().manual_seed(seed)
    x, s, y = (torch.randn(B, *shape, generator=g, dtype=dtype) for _ in range(3))
    return x, s, y, torch.randn(4, B, generator=g, dtype=dtype)


def _assert_step_matches_reference(got, x, coef, **kw):
    """Bitwise without noise.  With noise, ``acc + N z`` differs only through ``z`` (<= 3 ulp(z)), and
    the two roundings it passes through (of ``N z`` and of the sum) each cost half an ulp per side."""
    want = ref.affine_step(x, coef, **kw)
    if not kw.get("noise", True):
        assert torch.equal(got, want)
        return
    z = philox_normal(x.shape[0], x[0].numel(), kw.get("seed", 0), kw.get("step", 0), x.dtype).reshape(x.shape)
    N = coef[3].reshape((-1,) + (1,) * (x.dim() - 1)).abs()
    bound = N * NORMAL_ULP * _spacing(z) + _spacing(N * z.abs() * 2) + _spacing(torch.maximum(got.abs(), want.abs()))
    assert ((got - want).abs() <= bound).all()


def _assert_sq_norms_match(got, score, seed, step):
    """``sum score^2`` is the float64 sum of the same squares rounded once; ``sum z^2`` is the reference's
    within ``2 * 3`` ulp-relative per normal plus the roundings of the two float sums (<= 9 eps)."""
    eps = torch.finfo(score.dtype).eps
    B = score.shape[0]
    rows = score.double().square().reshape(B, -1)
    exact = torch.tensor([math.fsum(r) for r in rows.tolist()], dtype=torch.float64)
    # float32: summed in double, rounded once; float64: recursive summation of N positive terms
    rtol = eps if score.dtype == torch.float32 else rows.shape[1] * eps
    torch.testing.assert_close(got[:, 0].double(), exact, rtol=rtol, atol=0)
    torch.testing.assert_close(got[:, 1], ref.sample_sq_norms(score, seed=seed, step=step)[:, 1], rtol=9 * eps, atol=0)


def test_auto_picks_the_compiled_backend_on_cpu_tensors():
    from sdekit.kernels.dawsn import cpu as dawsn_cpu
    from sdekit.kernels.steps import cpu as steps_cpu

    assert resolve("affine_step", "auto", "cpu") is steps_cpu.affine_step
    assert resolve("sample_sq_norms", "auto", "cpu") is steps_cpu.sample_sq_norms
    assert resolve("dawsn", "auto", "cpu") is dawsn_cpu.dawsn_cpu
    assert resolve("spectral_scale", "auto", "cpu").__module__ == "sdekit.kernels.spectral_scale.cpu"


def test_the_extension_names_its_vector_kernels_and_they_are_the_ones_that_run(capsys):
    from sdekit.cli import main

    kind = cpu_ext.vector_kernels()
    assert kind in ("avx512", "avx2", "scalar")
    # float64 dawsn is bitwise the reference in the scalar loops and comes from the vector kernels'
    # own 16-row table otherwise (within 4 ulp, not bitwise): the name says which code was built
    x = torch.linspace(-8, 8, 100001, dtype=torch.float64)
    bitwise = bool((sdekit.special.dawsn(x, backend="cpu") == sdekit.special.dawsn(x, backend="torch")).all())
    assert bitwise == (kind == "scalar")
    assert main(["info"]) == 0
    assert f"backend cpu     on cpu   available ({kind} kernels)" in capsys.readouterr().out


def test_resolve_keeps_its_answers_until_an_implementation_is_registered(monkeypatch):
    monkeypatch.setattr(dispatch, "_registry", {})
    monkeypatch.setattr(dispatch, "_resolved", {})

    def first(x):
        return x

    def second(x):
        return x

    dispatch.register("probe", "torch")(first)
    assert resolve("probe", "auto", "cpu") is first and resolve("probe", "torch", "cpu") is first
    dispatch.register("probe", "torch")(second)
    assert resolve("probe", "auto", "cpu") is second and resolve("probe", "torch", "cpu") is second


def test_resolve_asks_triton_on_cpu_tensors_at_every_call(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve("dawsn", "triton", "cpu") is dispatch._registry["dawsn"]["triton"]
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        resolve("dawsn", "triton", "cpu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_normals_within_3_ulp_of_the_reference_on_2_20_draws(dtype):
    B, N = 4, 2**18
    coef = torch.tensor([[0.0], [0.0], [0.0], [1.0]], dtype=dtype)
    for seed, step in [(11, 3), (-3, 2**63 + 5), (2**64 - 1, 7)]:
        z = steps.affine_step(torch.zeros(B, N, dtype=dtype), coef, seed=seed, step=step, backend="cpu")
        want = philox_normal(B, N, seed, step, dtype)
        assert ((z - want).abs() <= NORMAL_ULP * _spacing(want)).all()
        assert (z == want).double().mean() > 0.7  # mostly bitwise: the same draws, not merely close


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("terms", ["x+y+score+noise", "x+score+noise", "x+noise", "x+y+score", "x"])
@pytest.mark.parametrize("per_sample", [True, False])
def test_affine_step_equals_reference(dtype, terms, per_sample):
    x, s, y, coef = _inputs(dtype)
    if not per_sample:
        coef = coef[:, :1]
    kw = dict(score=s if "score" in terms else None, y=y if "y" in terms else None,
              noise="noise" in terms, seed=123, step=45)
    _assert_step_matches_reference(steps.affine_step(x, coef, backend="cpu", **kw), x, coef, **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_step_on_strided_views_in_place_and_with_strided_coefficients(dtype):
    x, s, y, coef = _inputs(dtype)
    xs = torch.randn(3, 6, 17, 9, dtype=dtype)[:, ::2]                  # channel slice
    ss = torch.randn(3, 9, 17, 3, dtype=dtype).permute(0, 3, 2, 1)      # transposed image
    ys = torch.randn(5, 3, 17, 9, dtype=dtype)[1:4]                     # batch slice
    out = torch.empty(3, 3, 17, 18, dtype=dtype)[..., ::2]              # strided output
    cs = torch.randn(3, 4, dtype=dtype).T                               # (4, B) with strides (1, 4)
    kw = dict(score=ss, y=ys, seed=9, step=2**40 + 1)
    got = steps.affine_step(xs, cs, out=out, backend="cpu", **kw)
    assert got is out
    _assert_step_matches_reference(out, xs, cs, **kw)
    x5 = torch.randn(2, 2, 3, 2, 3, 2, dtype=dtype).transpose(1, 4)    # five unmergeable axes: copied
    _assert_step_matches_reference(steps.affine_step(x5, coef[:, :2], seed=1, step=1, backend="cpu"),
                                   x5, coef[:, :2], seed=1, step=1)
    expected = ref.affine_step(x, coef, score=s, y=y, noise=False)
    steps.affine_step(x, coef, score=s, y=y, noise=False, out=x, backend="cpu")  # out is x
    assert torch.equal(x, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_step_on_empty_batches_and_batches_past_65535(dtype):
    coef = torch.randn(4, 1, dtype=dtype)
    for shape in [(0, 5), (4, 0), (0,)]:
        x = torch.randn(shape, dtype=dtype)
        assert steps.affine_step(x, coef, seed=1, backend="cpu").shape == x.shape
        assert steps.sample_sq_norms(x, backend="cpu").shape == (shape[0], 2)
    x = torch.randn(70_001, 3, dtype=dtype)
    per = torch.randn(4, 70_001, dtype=dtype)
    for c in (coef, per):
        _assert_step_matches_reference(steps.affine_step(x, c, seed=4, step=2, backend="cpu"), x, c, seed=4, step=2)
    got = steps.sample_sq_norms(x, seed=4, step=2, backend="cpu")
    _assert_sq_norms_match(got, x, seed=4, step=2)


def test_affine_step_flags_non_finite_score_and_output():
    x, s, y, coef = _inputs(torch.float32)
    flags = torch.zeros(2, dtype=torch.int32)
    steps.affine_step(x, coef, score=s, flags=flags, backend="cpu")
    assert flags.tolist() == [0, 0]
    s[1, 2, 3, 4] = float("nan")
    steps.affine_step(x, coef, score=s, flags=flags, backend="cpu")
    assert flags.tolist() == [1, 1]
    flags.zero_()
    x[0, 0, 0, 0] = float("inf")
    steps.affine_step(x, coef, score=torch.zeros_like(x), flags=flags, backend="cpu")
    assert flags.tolist() == [0, 1]
    flags.zero_()
    steps.affine_step(x[:, ::2], coef, score=torch.zeros_like(x)[:, ::2], flags=flags, backend="cpu")  # strided
    assert flags.tolist() == [0, 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_sample_sq_norms_equals_exact_sums(dtype):
    """``sum score^2`` against the float64 sum of the same numbers; ``sum z^2`` against the reference's."""
    s = torch.randn(3, 9, 17, 5, dtype=dtype).permute(0, 3, 2, 1)
    _assert_sq_norms_match(steps.sample_sq_norms(s, seed=3, step=4, backend="cpu"), s, seed=3, step=4)


def test_results_do_not_depend_on_the_number_of_threads():
    x, s, y, coef = _inputs(torch.float32, B=2, shape=(300_000,))
    outs = []
    before = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            outs.append((steps.affine_step(x, coef, score=s, y=y, seed=5, step=6, backend="cpu"),
                         steps.sample_sq_norms(s, seed=5, step=6, backend="cpu"),
                         sdekit.special.dawsn(x, backend="cpu")))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_spectral_scale_equals_reference_within_rounding(dtype):
    g = torch.Generator().manual_seed(5)
    z, uy = (torch.randn(7, 3, generator=g, dtype=dtype).T for _ in range(2))  # (3, 7), not contiguous
    S = torch.rand(7, generator=g, dtype=dtype)
    S[2] = 0.0
    per = [torch.rand(3, 1, generator=g, dtype=dtype) + 0.1 for _ in range(3)]
    for mask in range(8):
        s, a, c = (per[j] if mask >> j & 1 else [0.8, 0.0, 0.3][j] for j in range(3))
        got = resolve("spectral_scale", "cpu", "cpu")(z, uy, S, s, a, c)
        _assert_within_rounding(got, z, uy, S, s, a, c)
        assert (got[:, 2] == 0).all()
    big, big2 = torch.randn(70_001, 2, dtype=dtype), torch.randn(70_001, 2, dtype=dtype)
    _assert_within_rounding(resolve("spectral_scale", "cpu", "cpu")(big, big2, S[:2], 1.0, 0.5, 2.0),
                            big, big2, S[:2], 1.0, 0.5, 2.0)
    assert resolve("spectral_scale", "cpu", "cpu")(big[:0], big[:0], S[:2], 1.0, 0.5, 2.0).shape == (0, 2)


def _assert_within_rounding(got, z, uy, S, s, a, c):
    """The kernels evaluate ``S (s uy - S z) / (a + c S^2)``, the reference ``(s uy - S z) (S / (a + c S^2))``:
    both within a few ulps of the terms of ``s uy - S z`` (which may cancel) times ``|S / (a + c S^2)|``."""
    want = spectral_scale_torch(z, uy, S, s, a, c)
    f = (S / (a + c * S * S)).nan_to_num(nan=0.0).abs()
    bound = 8 * torch.finfo(z.dtype).eps * ((s * uy).abs() + (S * z).abs()) * f
    assert got.dtype == z.dtype and ((got - want).abs() <= bound).all()


def test_dawsn_float32_is_bitwise_the_reference_at_every_table_row_and_branch_boundary():
    from sdekit.kernels.dawsn import coefficients as C

    x = dawsn_boundary_points(torch.float32, C.FLOAT32_TAYLOR_STEP, len(C.FLOAT32_TAYLOR), C.FLOAT32_SPLIT)
    got, want = sdekit.special.dawsn(x, backend="cpu"), sdekit.special.dawsn(x, backend="torch")
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num()) and torch.equal(got.signbit(), want.signbit())


def test_dawsn_float64_within_4_ulp_of_mpmath_around_every_row_of_both_tables():
    """The float64 kernel on AVX-512 and AVX2 + FMA builds uses its own 16-row table (h = 21/64, see the
    op's contract), other builds the reference's (h = 1/16): the rows and boundaries of both, against
    40-digit mpmath."""
    import mpmath

    from sdekit.kernels.dawsn import coefficients as C

    split = C.FLOAT64_SPLIT
    x = torch.cat([dawsn_boundary_points(torch.float64, C.FLOAT64_VECTOR_TAYLOR_STEP, 17, split),
                   dawsn_boundary_points(torch.float64, C.FLOAT64_TAYLOR_STEP, len(C.FLOAT64_TAYLOR), split)])
    x = x[x.isfinite() & (x != 0)]
    got = sdekit.special.dawsn(x, backend="cpu").numpy()
    with mpmath.workdps(40):
        exact = np.array([float(mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-v * v) * mpmath.erfi(v))
                          for v in map(mpmath.mpf, x.tolist())])
    err = np.abs(got - exact) / np.spacing(np.abs(exact))
    assert err.max() <= 4.0, (err.max(), x[int(np.argmax(err))].item())
    special = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan], dtype=torch.float64)
    d = sdekit.special.dawsn(special, backend="cpu")
    assert d[:4].tolist() == [0.0, 0.0, 0.0, 0.0] and d.signbit()[:4].tolist() == [False, True, False, True]
    assert d[4].isnan()


@pytest.mark.parametrize("dtype", DTYPES)
def test_dawsn_of_a_slice_of_any_length_and_offset_equals_the_same_elements_of_the_whole(dtype):
    # whole vectors plus a masked remainder of every length, from aligned and unaligned starts;
    # float32 also bitwise the reference
    x = torch.linspace(-7, 7, 97, dtype=dtype)
    whole = sdekit.special.dawsn(x, backend="cpu")
    if dtype == torch.float32:
        assert torch.equal(whole, sdekit.special.dawsn(x, backend="torch"))
    for start in (0, 1, 3):
        for n in range(0, 40):
            assert torch.equal(sdekit.special.dawsn(x[start:start + n], backend="cpu"), whole[start:start + n]), (start, n)


def test_dawsn_gradcheck_and_gradgradcheck():
    x = torch.tensor([-12.0, -4.7, -0.3, 1e-9, 0.92, 3.9, 4.1, 5.2, 40.0], dtype=torch.float64, requires_grad=True)
    f = lambda v: sdekit.special.dawsn(v, backend="cpu")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def _opcheck_cases():
    x = torch.randn(3, 4, 5)
    coef = torch.randn(4, 3)
    dims, strides = [1, 1, 20], [20, 0, 0, 1] * 4
    z = torch.randn(3, 6, dtype=torch.float64)
    return [
        ("dawsn", (torch.randn(7, 3, dtype=torch.float64).T,)),
        ("dawsn", (torch.randn(0),)),
        ("sde_affine_step", (torch.empty_like(x), x, torch.randn_like(x), None, coef, torch.zeros(2, dtype=torch.int32),
                             dims, strides, 5, -7, 3, True, True)),
        ("sde_sample_sq_norms", (x, dims, strides[:4], 1, 2, 3, True)),
        ("spectral_scale", (z, torch.randn_like(z), torch.rand(6, dtype=torch.float64), None, 0.5, 0.1, 2.0)),
        ("spectral_scale", (z, torch.randn_like(z), torch.rand(6, dtype=torch.float64),
                            torch.rand(3, 3, dtype=torch.float64), 0.0, 0.0, 0.0)),
    ]


@pytest.mark.parametrize("name,args", _opcheck_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_opcheck_of_every_compiled_op(name, args):
    """Schema (mutations declared), fake kernel and dispatch of each ``torch.ops.sdekit`` op on CPU."""
    cpu_ext.load()
    torch.library.opcheck(getattr(torch.ops.sdekit, name), args)


def test_opcheck_of_the_triton_dawsn_op(triton_device):
    from sdekit.kernels.dawsn import triton as dawsn_triton

    torch.library.opcheck(dawsn_triton.dawsn_triton, (torch.linspace(-6, 6, 33, device=triton_device),))


def test_a_missing_extension_gives_one_warning_and_the_reference(monkeypatch):
    import importlib

    real = importlib.import_module

    def fail(name, *a, **k):
        if name == "sdekit._cpu":
            raise ImportError("simulated: no compiler at install")
        return real(name, *a, **k)

    monkeypatch.setattr(cpu_ext, "_state", {})
    monkeypatch.setattr(dispatch, "_resolved", {})  # what resolve learnt of the real extension
    monkeypatch.setattr(cpu_ext.importlib, "import_module", fail)
    with pytest.warns(RuntimeWarning, match="sdekit._cpu") as rec:
        for _ in range(3):
            assert resolve("affine_step", "auto", "cpu") is ref.affine_step
            assert "simulated" in backend_unavailable_reason("cpu", torch.device("cpu"))
    assert len(rec) == 1
    with pytest.raises(RuntimeError, match="'cpu' is unavailable"):
        resolve("dawsn", "cpu", "cpu")
