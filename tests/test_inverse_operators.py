"""Implicit-SVD operators: exact SVDs, orthogonal factors, forwards checked against
independent implementations (F.conv2d, F.avg_pool2d, dense Hadamard matrices, ...)."""
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from sdekit.inverse import (Colorization, Denoising, DenseOperator, Inpainting, SeparableBlur,
                            SuperResolution, WalshHadamardCS)

from _problems import dense_matrices, gaussian_kernel, operator_cases, rank_deficient_cases

D64 = torch.float64


# F.conv2d warns that padding='same' with an even kernel copies the input; that is fine here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


CASES = operator_cases()
NAMES = sorted(CASES)
RANK_DEFICIENT = rank_deficient_cases()


@pytest.mark.parametrize("name", NAMES)
def test_svd_reproduces_forward_as_dense_matrix(name):
    op, shape, _ = CASES[name]
    A, U, _, S, V, _ = dense_matrices(op, shape)
    m, n = A.shape
    assert S.numel() == min(m, n)
    assert (S >= 0).all()
    Sm = torch.zeros(m, n, dtype=D64)
    Sm[range(S.numel()), range(S.numel())] = S
    torch.testing.assert_close(U @ Sm @ V.T, A, rtol=0, atol=1e-13 * max(1.0, A.abs().max().item()))


@pytest.mark.parametrize("name", NAMES)
def test_factors_are_orthogonal_and_transposes_agree(name):
    op, shape, _ = CASES[name]
    A, U, Ut, S, V, Vt = dense_matrices(op, shape)
    m, n = A.shape
    torch.testing.assert_close(V.T @ V, torch.eye(n, dtype=D64), rtol=0, atol=1e-13)
    torch.testing.assert_close(U.T @ U, torch.eye(m, dtype=D64), rtol=0, atol=1e-13)
    torch.testing.assert_close(Vt, V.T, rtol=0, atol=1e-14)
    torch.testing.assert_close(Ut, U.T, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_matches_independent_implementation(name, dtype):
    op, shape, ref = CASES[name]
    x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    tol = dict(rtol=0, atol=1e-13) if dtype == D64 else dict(rtol=0, atol=2e-6)
    torch.testing.assert_close(op.forward(x), ref(x), **tol)
    assert op.forward(x).dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_range_fast_paths_match_full_transforms(name):
    op, shape, _ = CASES[name]
    n = math.prod(shape)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    k = op.singulars(n).numel()
    m = op.measurement_size(n)
    y = torch.randn(3, m, generator=g, dtype=D64)
    w = torch.randn(3, k, generator=g, dtype=D64)
    torch.testing.assert_close(op.Vt_range(x), op.Vt(x)[:, :k], rtol=0, atol=1e-13)
    torch.testing.assert_close(op.Ut_range(y, n), op.Ut(y)[:, :k], rtol=0, atol=1e-13)
    torch.testing.assert_close(op.V_range(w, n), op.V(op.add_zeros(w, n)), rtol=0, atol=1e-13)
    # A^T and A^+ through the implicit SVD equal the dense ones of the materialised forward
    A = dense_matrices(op, shape)[0]
    torch.testing.assert_close(op.adjoint(y, n), y @ A, rtol=0, atol=1e-13)
    # numerical rank with numpy's / torch's default cutoff max(m, n) eps max(S)
    assert int((op.numerical_singulars(n) > 0).sum()) == int(torch.linalg.matrix_rank(A))
    torch.testing.assert_close(op.pinv(y, n), y @ torch.linalg.pinv(A).T, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["blur", "superres_2", "colorization", "hadamard", "inpainting_2d_mask"])
def test_float32_factors_agree_with_float64(name):
    op, shape, _ = CASES[name]
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(3), dtype=D64)
    z64, z32 = op.Vt(x), op.Vt(x.float())
    assert z32.dtype == torch.float32
    torch.testing.assert_close(z32.double(), z64, rtol=0, atol=1e-5)
    torch.testing.assert_close(op.V(z32).double(), x.flatten(1), rtol=0, atol=1e-5)


def test_blur_keeps_every_tap_and_every_singular_value():
    """Unlike DDRM's Deblurring (drops the last tap, zeroes s < 3e-2) the SVD is the blur."""
    k = gaussian_kernel(2.0, 5)
    op = SeparableBlur(k, k, 1, 20)
    S = op.singulars()
    assert S.min() < 3e-2  # a wide Gaussian has tiny singular values; none are zeroed
    A, U, _, S, V, _ = dense_matrices(op, (1, 20, 20))
    torch.testing.assert_close(U @ torch.diag(S) @ V.T, A, rtol=0, atol=1e-13)
    ref = F.conv2d(torch.eye(400, dtype=D64).reshape(400, 1, 20, 20), (k[:, None] * k)[None, None],
                   padding="same").flatten(1).T
    torch.testing.assert_close(A, ref, rtol=0, atol=1e-15)


def test_exactly_zero_singular_values_are_kept():
    A = torch.zeros(3, 5, dtype=D64)
    A[0, 1] = 2.0
    A[2, 4] = -1.0
    op = DenseOperator(A)
    S = op.singulars()
    assert (S == 0).sum() == 1
    A2, U, _, S, V, _ = dense_matrices(op, (5,))
    Sm = torch.zeros(3, 5, dtype=D64)
    Sm[range(3), range(3)] = S
    torch.testing.assert_close(U @ Sm @ V.T, A, rtol=0, atol=0)


@given(H=st.integers(1, 9), W=st.integers(1, 9), Lr=st.integers(1, 7), Lc=st.integers(1, 7),
       C=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_blur_matches_conv2d_same_for_any_kernel_and_size(H, W, Lr, Lc, C, seed):
    g = torch.Generator().manual_seed(seed)
    kr, kc = torch.randn(Lr, generator=g, dtype=D64), torch.randn(Lc, generator=g, dtype=D64)
    op = SeparableBlur(kr, kc, C, (H, W))
    x = torch.randn(2, C, H, W, generator=g, dtype=D64)
    ref = F.conv2d(x, (kc[:, None] * kr[None, :]).expand(C, 1, Lc, Lr), padding="same", groups=C)
    torch.testing.assert_close(op.forward(x), ref.flatten(1), rtol=0, atol=1e-12)
    z = op.Vt(x)
    torch.testing.assert_close(op.U(op.singulars(like=z) * z), ref.flatten(1), rtol=0, atol=1e-12)
    torch.testing.assert_close(op.V(z), x.flatten(1), rtol=0, atol=1e-12)


@given(H=st.integers(1, 6), W=st.integers(1, 6), C=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_inpainting_svd_for_random_masks(H, W, C, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(C, H, W, generator=g) > 0.5
    op = Inpainting(mask, C)
    x = torch.randn(2, C, H, W, generator=g, dtype=D64)
    torch.testing.assert_close(op.forward(x), x[:, mask])
    z = op.Vt(x)
    assert op.singulars().numel() == int(mask.sum())
    torch.testing.assert_close(op.U(z[:, : op.k]), x[:, mask])
    torch.testing.assert_close(op.V(z), x.flatten(1))


@given(r=st.sampled_from([1, 2, 3]), h=st.integers(1, 3), w=st.integers(1, 3), C=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_superresolution_svd_for_any_factor(r, h, w, C, seed):
    op = SuperResolution(r, C, (r * h, r * w))
    x = torch.randn(2, C, r * h, r * w, generator=torch.Generator().manual_seed(seed), dtype=D64)
    z = op.Vt(x)
    torch.testing.assert_close(op.U(op.singulars(like=z) * z[:, : op.k]), F.avg_pool2d(x, r).flatten(1))
    torch.testing.assert_close(op.V(z), x.flatten(1))


def test_operator_without_size_takes_it_from_the_input():
    op = Colorization(4)
    for shape in [(4, 3, 5), (4, 2, 2)]:
        x = torch.randn(2, *shape, dtype=D64)
        torch.testing.assert_close(op.forward(x), x.mean(1).flatten(1))
        assert op.singulars(math.prod(shape)).numel() == shape[1] * shape[2]
    with pytest.raises(ValueError, match="singulars"):
        Denoising().singulars()


# --------------------------------------------------------- rank-deficient operators
@pytest.mark.parametrize("name", sorted(RANK_DEFICIENT))
@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_pinv_of_rank_deficient_operators_is_the_minimum_norm_solution(name, dtype):
    """torch.linalg.pinv of the materialised forward (its default cutoff max(m, n) eps max(S)) and,
    for the factored dense case, the SVD-free A^+ = C^+ B^+; float32 to its own rounding."""
    op, shape, factored_pinv = RANK_DEFICIENT[name]
    A = dense_matrices(op, shape)[0]
    m, n = A.shape
    assert int((op.numerical_singulars(n) > 0).sum()) == int(torch.linalg.matrix_rank(A)) < n
    assert int((op.numerical_singulars(n, like=torch.zeros(1, dtype=dtype)) > 0).sum()) \
        == int(torch.linalg.matrix_rank(A.to(dtype)))
    ref_pinv = torch.linalg.pinv(A) if factored_pinv is None else factored_pinv
    if factored_pinv is not None:
        torch.testing.assert_close(torch.linalg.pinv(A), factored_pinv, rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(12)
    y = torch.randn(3, m, generator=g, dtype=D64)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    want = y @ ref_pinv.T
    got = op.pinv(y.to(dtype))
    assert got.dtype == dtype and got.shape == (3, n)
    if dtype == D64:
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    else:
        assert ((got.double() - want).norm() / max(want.norm(), 1e-300)).item() < 1e-5 or m == 0
        assert torch.isfinite(got).all() and (m > 0 or not got.any())
    # A^+ A x: the projection of x on the row space of A, never longer than x (it was ~1e15)
    proj = op.pinv(op.forward(x.to(dtype)))
    torch.testing.assert_close(proj.double(), x.flatten(1) @ (ref_pinv @ A).T,
                               rtol=0, atol=1e-10 if dtype == D64 else 1e-4)
    assert (proj.double().norm(dim=1) <= x.flatten(1).norm(dim=1) * (1 + 1e-5)).all()


@pytest.mark.parametrize("name", NAMES)
def test_float32_pinv_of_every_operator_matches_the_float64_dense_pseudo_inverse(name):
    """float32 input, float32 cutoff: within float32 rounding of torch.linalg.pinv in float64."""
    op, shape, _ = CASES[name]
    n = math.prod(shape)
    A = dense_matrices(op, shape)[0]
    y = torch.randn(3, A.shape[0], generator=torch.Generator().manual_seed(15), dtype=D64)
    got = op.pinv(y.float(), n)
    want = y @ torch.linalg.pinv(A).T
    assert got.dtype == torch.float32
    assert ((got.double() - want).norm() / want.norm()).item() < 1e-5


def test_issue_example_box_blur_pinv_is_about_the_size_of_the_data():
    """SeparableBlur(ones(3)/3, ones(3)/3, 1, 8).pinv(op(x)) was 1.4e15; the minimum-norm solution is O(1)."""
    op = SeparableBlur(torch.ones(3) / 3, torch.ones(3) / 3, 1, 8)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(13), dtype=D64)
    A = dense_matrices(op, (1, 8, 8))[0]
    got = op.pinv(op(x))
    assert got.abs().max() < 10
    torch.testing.assert_close(got, op(x) @ torch.linalg.pinv(A).T, rtol=0, atol=1e-12)


def test_rcond_overrides_the_cutoff_like_torch_pinv_rtol():
    box = torch.ones(3, dtype=D64) / 3
    op = SeparableBlur(box, torch.tensor([0.25, 0.5, 0.25], dtype=D64), 1, (7, 8))  # box along W = 8
    A = dense_matrices(op, (1, 7, 8))[0]
    y = torch.randn(2, 56, generator=torch.Generator().manual_seed(14), dtype=D64)
    for rcond in (0.05, 0.3):
        torch.testing.assert_close(op.pinv(y, rcond=rcond), y @ torch.linalg.pinv(A, rtol=rcond).T,
                                   rtol=1e-10, atol=1e-12)
        assert op.rank_cutoff(rcond=rcond) == rcond * float(op.singulars().max())
    # rcond=0 keeps every nonzero value (the old behaviour); the default drops the rounding-level ones
    assert torch.equal(op.numerical_singulars(rcond=0.0), op.singulars())
    assert (op.numerical_singulars() > 0).sum() == torch.linalg.matrix_rank(A) < 56
    with pytest.raises(ValueError, match="rcond"):
        op.pinv(y, rcond=-1.0)
    with pytest.raises(TypeError, match="rcond"):
        op.pinv(y, rcond="tiny")


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch_gives_empty_results(name):
    op, shape, _ = CASES[name]
    n = math.prod(shape)
    m = op.measurement_size(n)
    x, y = torch.zeros(0, *shape, dtype=D64), torch.zeros(0, m, dtype=D64)
    assert op.forward(x).shape == (0, m)
    assert op.pinv(y, n).shape == (0, n) and op.adjoint(y, n).shape == (0, n)
    assert op.Vt_range(x).shape == (0, op.singulars(n).numel())


# ------------------------------------------------------------------ bad input
def test_bad_masks_raise_clear_errors():
    with pytest.raises(ValueError, match="channels"):
        Inpainting(torch.ones(2, 4, 4), channels=3)
    with pytest.raises(ValueError, match="shape"):
        Inpainting(torch.ones(4), channels=1)
    with pytest.raises(ValueError, match="0 and 1"):
        Inpainting(torch.full((4, 4), 0.5), channels=1)
    op = Inpainting(torch.ones(4, 4), channels=3)
    with pytest.raises(ValueError, match="48 elements per sample"):
        op.forward(torch.zeros(2, 3, 4, 5))


def test_bad_kernels_and_sizes_raise_clear_errors():
    with pytest.raises(ValueError, match="k_row"):
        SeparableBlur(torch.ones(3, 3), torch.ones(3), 1, 8)
    with pytest.raises(ValueError, match="k_col"):
        SeparableBlur(torch.ones(3), torch.ones(0), 1, 8)
    with pytest.raises(ValueError, match="k_row"):
        SeparableBlur(torch.tensor([1.0, float("nan")]), torch.ones(3), 1, 8)
    op = SeparableBlur(torch.ones(3), torch.ones(3), 3, (8, 6))
    with pytest.raises(ValueError, match="144 elements per sample"):
        op.forward(torch.zeros(1, 3, 6, 8, 2))
    with pytest.raises(ValueError, match="divisible"):
        SuperResolution(3, 3, 8)
    with pytest.raises(ValueError, match="power of two"):
        WalshHadamardCS(1, (6, 4), 3)
    with pytest.raises(ValueError, match="distinct"):
        WalshHadamardCS(1, (4, 4), torch.tensor([1, 1, 2]))
    with pytest.raises(ValueError, match="channels"):
        Colorization(0)
    with pytest.raises(ValueError, match="multiple of 3"):
        Colorization(3).forward(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="2-D"):
        DenseOperator(torch.zeros(3))
    with pytest.raises(ValueError, match="batched"):
        Denoising().forward(torch.zeros(5))
