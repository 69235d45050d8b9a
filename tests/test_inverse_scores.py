"""DMPS likelihood score: equals the dense formula (torch.linalg.solve) for every operator,
from clean to pure noise; fused kernel equals the torch reference; bad input is refused."""
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sdekit.inverse import (DMPS, DenseOperator, Inpainting, LikelihoodScore, SeparableBlur, SuperResolution,
                            likelihood_score, likelihood_score_at)
from sdekit.kernels import resolve
from sdekit.kernels.dispatch import triton_interpreting
from _problems import dense_matrices, operator_cases, rank_deficient_cases, shared_vpsde

D64 = torch.float64
CASES = operator_cases()
NAMES = sorted(CASES)
RANK_DEFICIENT = rank_deficient_cases()
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

# (s, std): clean, early VP, mid VP, late VP, VP at T=1 (abar = 4.04e-5), unit VE, VE at sigma_max = 50
S_STD = [(1.0, 0.0), (0.999, 0.0447), (0.7, math.sqrt(1 - 0.49)), (0.1, math.sqrt(0.99)),
         (math.sqrt(4.04e-5), math.sqrt(1 - 4.04e-5)), (1.0, 1.0), (1.0, 50.0)]


def dense_score(A, y, x, s, std, sigma_y):
    """(1/s) A^T (sigma_y^2 I + (std/s)^2 A A^T)^-1 (y - A x / s), with A from an independent forward."""
    m = A.shape[0]
    cov = sigma_y**2 * torch.eye(m, dtype=D64) + (std / s) ** 2 * A @ A.T
    r = y - x @ A.T / s
    return torch.linalg.solve(cov, r.T).T @ A / s


def independent_matrix(name):
    op, shape, ref = CASES[name]
    n = math.prod(shape)
    return ref(torch.eye(n, dtype=D64).reshape(n, *shape)).T, shape


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sigma_y", [0.05, 1.0])
def test_likelihood_score_equals_dense_formula_from_clean_to_pure_noise(name, sigma_y):
    op = CASES[name][0]
    A, shape = independent_matrix(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    y = torch.randn(3, A.shape[0], generator=g, dtype=D64)
    for s, std in S_STD:
        got = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=sigma_y)
        assert got.shape == x.shape
        want = dense_score(A, y, x.flatten(1), s, std, sigma_y)
        assert rel_err(got.flatten(1), want) < 1e-10, (s, std)


def test_ill_conditioned_regime_matches_mpmath_better_than_the_dense_solve():
    """VP at T (s = 6.4e-3) with sigma_y = 0.01 and a tall A: cond(sigma_y^2 I + (std/s)^2 A A^T)
    = 2.5e8, so the float64 dense solve is off by 3e-10; the spectral form stays at 1e-15.
    Reference: the same dense formula in 40-digit mpmath."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    op, shape, _ = CASES["dense_tall"]
    A, _ = independent_matrix("dense_tall")
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    y = torch.randn(2, A.shape[0], generator=g, dtype=D64)
    s, std, sig = math.sqrt(4.04e-5), math.sqrt(1 - 4.04e-5), 0.01
    Am = mpmath.matrix(A.tolist())
    cov = sig**2 * mpmath.eye(A.shape[0]) + (mpmath.mpf(std) / s) ** 2 * Am * Am.T
    want = torch.tensor([[float(v) for v in Am.T * mpmath.lu_solve(
        cov, mpmath.matrix(y[b].tolist()) - Am * mpmath.matrix(x[b].tolist()) / s) / s] for b in range(2)],
        dtype=D64)
    got = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=sig)
    assert rel_err(got, want) < 1e-13
    assert rel_err(dense_score(A, y, x, s, std, sig), want) > 1e3 * rel_err(got, want)  # documents the gap


@pytest.mark.parametrize("name", ["blur", "superres_2", "hadamard", "dense_wide", "colorization"])
def test_per_sample_scales_match_scalar_calls(name):
    op, shape, _ = CASES[name]
    A, _ = independent_matrix(name)
    g = torch.Generator().manual_seed(1)
    B = len(S_STD)
    x = torch.randn(B, *shape, generator=g, dtype=D64)
    y = torch.randn(B, A.shape[0], generator=g, dtype=D64)
    s = torch.tensor([p[0] for p in S_STD], dtype=D64)
    std = torch.tensor([p[1] for p in S_STD], dtype=D64)
    sig = torch.linspace(0.01, 0.5, B, dtype=D64)
    got = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=sig)
    for b in range(B):
        want = dense_score(A, y[b:b + 1], x[b:b + 1].flatten(1), s[b].item(), std[b].item(), sig[b].item())
        assert rel_err(got[b:b + 1].flatten(1), want) < 1e-10


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # masked-out 0/0 lanes
@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_any_mix_of_scalar_and_per_sample_coefficients(backend, dtype, request):
    device = request.getfixturevalue("triton_device") if backend == "triton" else "cpu"
    op, shape, _ = CASES["superres_2"]
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, *shape, generator=g, dtype=dtype).to(device)
    y = torch.randn(3, op.m, generator=g, dtype=dtype).to(device)
    per = {"mean_scale": torch.tensor([0.9, 0.5, 0.1]), "std": torch.tensor([0.3, 0.8, 0.99]),
           "sigma_y": torch.tensor([0.1, 0.2, 0.0])}
    scalar = {"mean_scale": 0.5, "std": 0.7, "sigma_y": 0.1}
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for mask in range(8):
        kw = {k: (per[k].to(dtype=dtype, device=device) if mask >> i & 1 else scalar[k]) for i, k in enumerate(per)}
        got = likelihood_score(op, y, x, backend=backend, **kw)
        for b in range(3):
            kb = {k: (v[b].item() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
            want = likelihood_score(op, y[b:b + 1], x[b:b + 1], backend="torch", **kb)
            assert rel_err(got[b:b + 1], want) < tol, (mask, b)


def test_noiseless_measurement_with_zero_singular_values_uses_the_pseudo_inverse():
    """sigma_y = 0 and S = 0: the covariance is singular; the score is the pinv formula, finite."""
    A = torch.zeros(3, 5, dtype=D64)
    A[0, 1], A[2, 4] = 2.0, -1.0
    op = DenseOperator(A)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(2, 5, generator=g, dtype=D64), torch.randn(2, 3, generator=g, dtype=D64)
    for s, std in S_STD[1:]:
        got = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=0.0)
        cov = (std / s) ** 2 * A @ A.T
        want = (torch.linalg.pinv(cov) @ (y - x @ A.T / s).T).T @ A / s
        assert torch.isfinite(got).all()
        assert rel_err(got, want) < 1e-12


@pytest.mark.parametrize("name", sorted(RANK_DEFICIENT))
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_noiseless_score_on_rank_deficient_operators_is_the_exact_rank_limit(name, dtype):
    """sigma_y = 0: (1/s) A^T ((std/s)^2 A A^T)^+ r = (s / std^2) A^+ r, r = y - A x / s, with
    torch.linalg.pinv's default cutoff (it was 1e16 on the box blur: rounding-level S inverted)."""
    op, shape, _ = RANK_DEFICIENT[name]
    A = dense_matrices(op, shape)[0]
    Ap = torch.linalg.pinv(A)
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    y = torch.randn(2, A.shape[0], generator=g, dtype=D64)
    for s, std in S_STD[1:]:
        got = likelihood_score(op, y.to(dtype), x.to(dtype), mean_scale=s, std=std, sigma_y=0.0)
        want = (s / std**2) * (y - x.flatten(1) @ A.T / s) @ Ap.T
        assert got.dtype == dtype and torch.isfinite(got).all()
        if A.shape[0] == 0:
            assert not got.any()
        else:
            assert rel_err(got.flatten(1).double(), want) < (1e-10 if dtype == D64 else 1e-5), (s, std)


@pytest.mark.parametrize("name", sorted(RANK_DEFICIENT))
def test_small_positive_sigma_y_on_rank_deficient_operators_matches_the_dense_formula(name):
    """sigma_y > 0 keeps the covariance invertible: the dropped rounding-level terms change nothing
    beyond the dense solve's own error, bounded by eps * cond(sigma_y^2 I + (std/s)^2 A A^T)."""
    op, shape, _ = RANK_DEFICIENT[name]
    A = dense_matrices(op, shape)[0]
    if A.shape[0] == 0:
        pytest.skip("no measurements")
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    y = torch.randn(2, A.shape[0], generator=g, dtype=D64)
    for sigma_y in (1e-3, 0.1):
        for s, std in S_STD:
            got = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=sigma_y)
            cov = sigma_y**2 * torch.eye(A.shape[0], dtype=D64) + (std / s) ** 2 * A @ A.T
            tol = max(1e-12, 50 * torch.finfo(D64).eps * torch.linalg.cond(cov).item())
            assert rel_err(got.flatten(1), dense_score(A, y, x.flatten(1), s, std, sigma_y)) < tol, (s, std)


def test_std_zero_with_sigma_y_zero_is_refused_not_infinite():
    """A noiseless measurement of a clean image: the pseudo-likelihood is a point mass (no score)."""
    op, shape, _ = CASES["superres_2"]
    x, y = torch.randn(3, *shape, dtype=D64), torch.randn(3, op.m, dtype=D64)
    with pytest.raises(ValueError, match="std = 0 with sigma_y = 0"):
        likelihood_score(op, y, x, mean_scale=1.0, std=0.0, sigma_y=0.0)
    with pytest.raises(ValueError, match="std = 0 with sigma_y = 0"):  # one sample of a per-sample batch
        likelihood_score(op, y, x, mean_scale=1.0, std=torch.tensor([0.5, 0.0, 0.3]), sigma_y=0.0)
    with pytest.raises(ValueError, match="std = 0 with sigma_y = 0"):
        likelihood_score(op, y, x, mean_scale=1.0, std=0.0, sigma_y=torch.tensor([0.1, 0.0, 0.1]))
    with pytest.raises(ValueError, match="mean_scale = 0"):  # s = 0 too: a = (s sigma_y)^2 = 0
        likelihood_score(op, y, x, mean_scale=0.0, std=0.0, sigma_y=0.1)
    # either one alone is fine: the limits are finite
    assert torch.isfinite(likelihood_score(op, y, x, mean_scale=1.0, std=0.0, sigma_y=0.1)).all()
    assert torch.isfinite(likelihood_score(op, y, x, mean_scale=1.0, std=0.3, sigma_y=0.0)).all()


def test_likelihood_score_object_computes_uty_once_and_equals_the_function():
    op, shape, _ = CASES["blur"]
    g = torch.Generator().manual_seed(10)
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    y = torch.randn(2, op.m, generator=g, dtype=D64)
    score = LikelihoodScore(op, y, 0.05)
    torch.testing.assert_close(score.uy, op.Ut(y)[:, : op.k], rtol=0, atol=0)
    for s, std in S_STD:
        assert torch.equal(score(x, s, std), likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=0.05))
    # a float32 state gets U^T y cast once and the float32 cutoff
    assert rel_err(score(x.float(), 0.7, 0.7).double(), score(x, 0.7, 0.7)) < 1e-5
    with pytest.raises(ValueError, match="batch of 2"):
        score(torch.zeros(3, *shape, dtype=D64), 0.7, 0.7)


def test_dmps_with_a_singular_blur_and_noiseless_measurement_stays_at_the_data_scale():
    """The issue's case: DMPS samples reached 3e14 with sigma_y = 0 on the 3-tap box blur."""
    box = torch.ones(3, dtype=D64) / 3
    op = SeparableBlur(box, box, 1, 8)
    g = torch.Generator().manual_seed(11)
    x0 = torch.randn(1, 1, 8, 8, generator=g, dtype=D64)
    x = DMPS(shared_vpsde(), op, 0.0, steps=30).sample(lambda v, t: -v, op(x0), seed=0, shape=(16, 1, 8, 8))
    assert torch.isfinite(x).all() and x.abs().max() < 20
    # what the measurement pins down is reproduced: A x is close to y (residual << |y|)
    assert ((op(x) - op(x0)).norm(dim=1) < 0.2 * op(x0).norm()).all()


def test_score_is_finite_and_correct_at_s_zero():
    """The evaluated form S (s U^T y - S V^T x) / (s^2 sigma_y^2 + std^2 S^2) has a finite s -> 0 limit."""
    op, shape, _ = CASES["superres_2"]
    x = torch.randn(2, *shape, dtype=D64)
    y = torch.randn(2, op.m, dtype=D64)
    at0 = likelihood_score(op, y, x, mean_scale=0.0, std=1.0, sigma_y=0.1)
    near0 = likelihood_score(op, y, x, mean_scale=1e-12, std=1.0, sigma_y=0.1)
    assert torch.isfinite(at0).all()
    assert rel_err(near0, at0) < 1e-10  # continuous at s = 0 (the difference is O(s))
    # the limit is -(1/std^2) times the projection of x_t on the row space of A
    A, _ = independent_matrix("superres_2")
    P = A.T @ torch.linalg.solve(A @ A.T, A)
    torch.testing.assert_close(at0.flatten(1), -x.flatten(1) @ P, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["blur", "superres_2", "inpainting_2d_mask", "colorization", "hadamard"])
def test_float32_score_agrees_with_float64(name):
    op, shape, _ = CASES[name]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    y = torch.randn(2, op.measurement_size(math.prod(shape)), generator=g, dtype=D64)
    for s, std in [(0.7, 0.714), (1.0, 1.0)]:
        s64 = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=0.1)
        s32 = likelihood_score(op, y.float(), x.float(), mean_scale=s, std=std, sigma_y=0.1)
        assert s32.dtype == torch.float32
        assert rel_err(s32.double(), s64) < 1e-5


KERNEL_BACKENDS = [pytest.param("triton", "cpu" if triton_interpreting() else "cuda", id="triton"),
                   pytest.param("cuda", "cuda", id="cuda", marks=pytest.mark.gpu)]


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # masked-out 0/0 lanes
@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@given(B=st.integers(1, 3), k=st.integers(1, 3000), zeros=st.integers(0, 5), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([torch.float32, torch.float64]), scalar=st.booleans(), offset=st.integers(0, 3))
def test_spectral_scale_kernels_match_torch_reference(backend, device, B, k, zeros, seed, dtype, scalar, offset):
    """Fused kernels vs the reference; ``offset`` shifts the rows off 16-byte alignment (the CUDA
    kernel's packed-load path needs aligned rows, ``k % 4 == 0`` in float32, and falls back otherwise)."""
    if backend == "triton":
        pytest.importorskip("triton")
    g = torch.Generator().manual_seed(seed)
    z, uy = (torch.randn(B * k + offset, generator=g, dtype=dtype)[offset:].view(B, k) for _ in range(2))
    S = torch.rand(k, generator=g, dtype=dtype)
    S[torch.randperm(k, generator=g)[: min(zeros, k)]] = 0.0
    s, a, c = (torch.rand(B, 1, generator=g, dtype=dtype) + 0.01 for _ in range(3))
    a[0] = 0.0  # sigma_y = 0 in the first sample: S = 0 entries are 0/0, must come out 0
    if scalar:  # one (s, a, c) for the whole batch, passed as Python floats
        s, a, c = s[0].item(), a[0].item(), c[0].item()
    want = resolve("spectral_scale", "torch", "cpu")(z, uy, S, s, a, c)
    dev = (lambda v: v.to(device) if isinstance(v, torch.Tensor) else v)  # noqa: E731
    got = resolve("spectral_scale", backend, device)(*map(dev, (z, uy, S, s, a, c))).cpu()
    assert got.dtype == dtype and torch.isfinite(got).all()
    assert_within_rounding(got, want, z, uy, S, s, a, c)


def assert_within_rounding(got, want, z, uy, S, s, a, c):
    """Forward-error bound of either evaluation order of the spectral weight: a few ulps of the
    terms of ``s uy - S z`` (which may cancel), times ``|S / (a + c S^2)|``."""
    f = (S / (a + c * S * S)).nan_to_num(nan=0.0).abs()
    bound = 8 * torch.finfo(z.dtype).eps * ((s * uy).abs() + (S * z).abs()) * f
    assert ((got - want).abs() <= bound).all()


def _emulated_spectral_scale_op(z, uy, S, coef, s, a, c):
    """What ``sdekit/csrc/spectral_scale.cu`` accepts (its TORCH_CHECKs) and computes, on CPU tensors."""
    B, k = z.shape
    assert uy.shape == (B, k) and S.shape == (k,) and z.dtype == uy.dtype == S.dtype
    assert z.is_contiguous() and uy.is_contiguous() and S.is_contiguous()
    if coef is not None:
        assert coef.shape == (B, 3) and coef.dtype == z.dtype and coef.is_contiguous()
        s, a, c = (coef[:, j:j + 1] for j in range(3))
    else:
        assert all(isinstance(v, float) for v in (s, a, c))
    w = S * (s * uy - S * z) / (a + c * (S * S))
    return torch.where(S == 0, 0.0, w)


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_cuda_launcher_hands_the_kernel_its_coefficients(monkeypatch, dtype):
    """The Python side of the CUDA backend (layout of the per-sample coefficients, scalars, contiguity)
    against an emulation of the op's contract; the kernel's arithmetic is tested in test_cuda_build."""
    from sdekit.kernels import cuda_ext
    from sdekit.kernels.spectral_scale.cuda import spectral_scale_cuda

    monkeypatch.setattr(cuda_ext, "op", lambda name, **kw: _emulated_spectral_scale_op)
    g = torch.Generator().manual_seed(5)
    z, uy = (torch.randn(7, 3, generator=g, dtype=dtype).T for _ in range(2))  # (3, 7), not contiguous
    S = torch.rand(7, generator=g, dtype=dtype)
    S[2] = 0.0
    per = [torch.rand(3, 1, generator=g, dtype=dtype) + 0.1 for _ in range(3)]
    scalars = [0.8, 0.0, 0.3]
    for mask in range(8):
        s, a, c = (per[j] if mask >> j & 1 else scalars[j] for j in range(3))
        want = resolve("spectral_scale", "torch", "cpu")(z, uy, S, s, a, c)
        got = spectral_scale_cuda(z, uy, S, s, a, c)  # the registered "cuda" backend, here on CPU tensors
        assert got.dtype == dtype
        assert_within_rounding(got, want, z, uy, S, s, a, c)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide")  # masked-out 0/0 lanes
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spectral_scale_triton_in_row_chunks_equals_one_launch_bitwise(monkeypatch, dtype, triton_device):
    """Past the grid's row limit (lowered here from 65535 to 2 rows: sdekit/kernels/grid.py) the Triton
    launcher runs 5 rows as 2 + 2 + 1, each on its rows of z, uy and the per-sample (s, a, c)."""
    from sdekit.kernels import grid

    pytest.importorskip("triton")
    g = torch.Generator().manual_seed(3)
    z, uy = (torch.randn(5, 7, generator=g, dtype=dtype).to(triton_device) for _ in range(2))
    S = torch.rand(7, generator=g, dtype=dtype).to(triton_device)
    s = (torch.rand(5, 1, generator=g, dtype=dtype) + 0.1).to(triton_device)
    scale = resolve("spectral_scale", "triton", triton_device)
    one_launch = scale(z, uy, S, s, 0.01, 0.5)
    monkeypatch.setattr(grid, "MAX_GRID_ROWS", 2)
    assert torch.equal(scale(z, uy, S, s, 0.01, 0.5), one_launch)
    want = resolve("spectral_scale", "torch", "cpu")(z.cpu(), uy.cpu(), S.cpu(), s.cpu(), 0.01, 0.5)
    assert_within_rounding(one_launch.cpu(), want, z.cpu(), uy.cpu(), S.cpu(), s.cpu(), 0.01, 0.5)


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_spectral_scale_kernels_take_batches_past_the_grid_limit(backend):
    """Batches above 65535 rows (CUDA's second grid dimension): chunked (Triton) or row-strided (CUDA)."""
    g = torch.Generator(device="cuda").manual_seed(2)
    B, k = 70_001, 5
    z, uy = (torch.randn(B, k, device="cuda", generator=g) for _ in range(2))
    S = torch.rand(k, device="cuda", generator=g)
    s = torch.rand(B, 1, device="cuda", generator=g) + 0.1
    want = resolve("spectral_scale", "torch", "cuda")(z, uy, S, s, 0.01, 0.5)
    got = resolve("spectral_scale", backend, "cuda")(z, uy, S, s, 0.01, 0.5)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------- LinearSDE
def test_likelihood_score_at_takes_scale_and_std_from_the_sde():
    vp = shared_vpsde()
    op, shape, _ = CASES["blur"]
    A, _ = independent_matrix("blur")
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    y = torch.randn(3, A.shape[0], generator=g, dtype=D64)
    t = torch.tensor([0.01, 0.5, 1.0], dtype=D64)
    got = likelihood_score_at(vp, op, y, x, t, sigma_y=0.05)
    # VP: log abar(t) = -(beta_min t + (beta_max - beta_min) t^2 / 2)
    abar = torch.exp(-(0.1 * t + 19.9 * t**2 / 2))
    for b in range(3):
        want = dense_score(A, y[b:b + 1], x[b:b + 1].flatten(1), abar[b].sqrt().item(),
                           (1 - abar[b]).sqrt().item(), 0.05)
        assert rel_err(got[b:b + 1].flatten(1), want) < 1e-10


def test_likelihood_score_at_refuses_sdes_with_y_drift():
    class DriftTowardsY:  # stands in for OUVE / TSDVE (whose sympy derivation takes seconds)
        has_y_drift = True

    op = Inpainting(torch.ones(2, 2), 1)
    with pytest.raises(ValueError, match="y-drift"):
        likelihood_score_at(DriftTowardsY(), op, torch.zeros(1, 4), torch.zeros(1, 1, 2, 2), 0.5, sigma_y=0.1)


# --------------------------------------------------------------- bad input
def test_bad_score_arguments_raise_clear_errors():
    op = SuperResolution(2, 1, 4)
    x, y = torch.zeros(2, 1, 4, 4), torch.zeros(2, 4)
    with pytest.raises(ValueError, match="sigma_y must be >= 0"):
        likelihood_score(op, y, x, mean_scale=1.0, std=0.5, sigma_y=-0.1)
    with pytest.raises(ValueError, match="std must be >= 0"):
        likelihood_score(op, y, x, mean_scale=1.0, std=-0.5, sigma_y=0.1)
    with pytest.raises(ValueError, match="y must have 4 elements per sample"):
        likelihood_score(op, torch.zeros(2, 5), x, mean_scale=1.0, std=0.5, sigma_y=0.1)
    with pytest.raises(ValueError, match="batch size"):
        likelihood_score(op, torch.zeros(3, 4), x, mean_scale=1.0, std=0.5, sigma_y=0.1)
    with pytest.raises(ValueError, match="16 elements per sample"):
        likelihood_score(op, y, torch.zeros(2, 1, 4, 5), mean_scale=1.0, std=0.5, sigma_y=0.1)
    with pytest.raises(ValueError, match=r"mean_scale must be a scalar or of shape \(2,\)"):
        likelihood_score(op, y, x, mean_scale=torch.ones(3), std=0.5, sigma_y=0.1)
    with pytest.raises(ValueError, match="sigma_y must be finite"):
        likelihood_score(op, y, x, mean_scale=1.0, std=0.5, sigma_y=float("nan"))


# --------------------------------------------------------------- GPU (skipped without CUDA)
@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_score_matches_cpu_in_both_dtypes_and_backends(name):
    op, shape, _ = CASES[name]
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    y = torch.randn(3, op.measurement_size(math.prod(shape)), generator=g, dtype=D64)
    want = likelihood_score(op, y, x, mean_scale=0.6, std=0.8, sigma_y=0.05)
    for backend in ("torch", "triton", "cuda", "auto"):
        got = likelihood_score(op, y.cuda(), x.cuda(), mean_scale=0.6, std=0.8, sigma_y=0.05, backend=backend)
        assert got.device.type == "cuda"
        assert rel_err(got.cpu(), want) < 1e-12
        got32 = likelihood_score(op, y.float().cuda(), x.float().cuda(), mean_scale=0.6, std=0.8, sigma_y=0.05,
                                 backend=backend)
        assert got32.dtype == torch.float32 and rel_err(got32.double().cpu(), want) < 1e-5
    s = torch.tensor([1.0, 0.3, 0.01], dtype=D64)
    std = torch.tensor([0.0, 0.95, 1.0], dtype=D64)
    want = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=0.05)
    for backend in ("triton", "cuda"):
        got = likelihood_score(op, y.cuda(), x.cuda(), mean_scale=s.cuda(), std=std.cuda(), sigma_y=0.05,
                               backend=backend)
        assert rel_err(got.cpu(), want) < 1e-12
