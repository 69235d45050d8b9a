"""Fuzzing the public entry points of ``sdekit.inverse`` (and the DSM loss) with bad and edge input.

Every case asserts its outcome class: either the right answer (against a dense reference:
the operator materialised column by column from an independent implementation, and
``torch.linalg.pinv`` / ``torch.linalg.solve``), or a ``ValueError`` / ``TypeError`` whose
message names the offending argument.  Never a silently wrong number.
"""
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from sdekit.inverse import (DMPS, Colorization, Denoising, DenseOperator, Inpainting, LikelihoodScore,
                            SeparableBlur, SuperResolution, WalshHadamardCS, likelihood_score)
from sdekit.inverse.quantized import quantize
from sdekit.losses import denoising_score_matching

from _problems import fuzz_examples
from _problems import shared_vpsde

D64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def raises_naming(exc, name):
    """``pytest.raises`` for ``exc`` whose message names ``name`` (as a word)."""
    return pytest.raises(exc, match=rf"(^|\W){name}(\W|$)")


# ------------------------------------------------------------------ references
def reference_matrix(name):
    """(operator, per-sample input shape, dense A built from an independent implementation)."""
    g = torch.Generator().manual_seed(0)
    kr, kc = torch.tensor([0.2, 0.5, 0.3], dtype=D64), torch.tensor([0.6, 0.4], dtype=D64)
    mask = torch.rand(3, 4, 6, generator=g) > 0.4
    rows = torch.tensor([1, 4, 9, 30])
    Hd = torch.as_tensor(np.array(_hadamard(32)), dtype=D64) / math.sqrt(32)
    cases = {
        "superres": (SuperResolution(2, 3, (4, 8)), (3, 4, 8), lambda x: F.avg_pool2d(x, 2).flatten(1)),
        "colorization": (Colorization(3, (4, 6)), (3, 4, 6), lambda x: x.mean(1).flatten(1)),
        "blur": (SeparableBlur(kr, kc, 2, (5, 7)), (2, 5, 7), lambda x: F.conv2d(
            x, (kc[:, None] * kr[None, :]).expand(2, 1, 2, 3), padding="same", groups=2).flatten(1)),
        "inpainting": (Inpainting(mask, 3), (3, 4, 6), lambda x: x[:, mask]),
        "hadamard": (WalshHadamardCS(2, (4, 8), rows), (2, 4, 8),
                     lambda x: (x.reshape(x.shape[0], 2, 32) @ Hd[rows].T).flatten(1)),
    }
    op, shape, ref = cases[name]
    n = math.prod(shape)
    return op, shape, ref(torch.eye(n, dtype=D64).reshape(n, *shape)).T


def _hadamard(p):
    H = [[1]]
    while len(H) < p:
        H = [r + r for r in H] + [r + [-v for v in r] for r in H]
    return H


SIZED = ["superres", "colorization", "blur", "inpainting", "hadamard"]
with warnings.catch_warnings():  # conv2d's padding='same' with an even kernel: a copy, harmless
    warnings.simplefilter("ignore", UserWarning)
    REFS = {name: reference_matrix(name) for name in SIZED}


# ------------------------------------------------------------------ layouts
@fuzz_examples(60)
@given(name=st.sampled_from(SIZED), perm=st.permutations([0, 1, 2]), ones=st.lists(st.integers(0, 3), max_size=2),
       flat=st.booleans(), seed=st.integers(0, 2**16))
def test_any_input_layout_is_read_correctly_or_refused(name, perm, ones, flat, seed):
    """A per-sample shape that is ``in_shape`` up to size-1 dims (or flat) gives ``A x`` of the data as
    laid out; any other layout with the same element count (a transposed image, channels moved) is a
    ValueError naming ``x``: it used to be read wrongly."""
    op, shape, A = REFS[name]
    x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(seed), dtype=D64)
    xp = x.permute(0, *(1 + p for p in perm)).contiguous()
    dims = list(xp.shape[1:])
    for pos in ones:
        dims.insert(min(pos, len(dims)), 1)
    n = math.prod(shape)
    xp = xp.reshape(2, n) if flat else xp.reshape(2, *dims)
    squeezed = lambda s: tuple(d for d in s if d != 1)  # noqa: E731
    if flat or squeezed(xp.shape[1:]) == squeezed(shape):
        torch.testing.assert_close(op(xp), xp.reshape(2, n) @ A.T, rtol=0, atol=1e-12)
        torch.testing.assert_close(op.Vt_range(xp), op.Vt(xp)[:, : op.k], rtol=0, atol=1e-12)
    else:
        with raises_naming(ValueError, "x"):
            op(xp)
        with raises_naming(ValueError, "x"):
            likelihood_score(op, torch.zeros(2, op.m, dtype=D64), xp, mean_scale=1.0, std=0.5, sigma_y=0.1)


def test_issue_layout_cases():
    op = SuperResolution(2, 3, (4, 8))
    with raises_naming(ValueError, "x"):
        op(torch.randn(2, 3, 8, 4))  # same 96 elements, transposed
    with raises_naming(ValueError, "y"):
        op.pinv(torch.randn(2, 3, 4, 2))  # measurements laid out (C, w, h) instead of (C, h, w)
    assert op.pinv(torch.randn(2, 3, 2, 4)).shape == (2, 96)  # (C, h, w) and flat are both fine
    with raises_naming(ValueError, "x"):
        Colorization(3)(torch.randn(2, 6, 4, 4))  # 6 channels for a 3-channel operator
    with raises_naming(ValueError, "x"):
        Colorization(3, (4, 4))(torch.randn(2, 6, 4, 2))
    A, x = torch.randn(3, 6, dtype=D64), torch.randn(2, 2, 3, dtype=D64)
    # a vector operator declares no layout: any per-sample shape is read row-major (images for QCS, DMPS)
    torch.testing.assert_close(DenseOperator(A)(x), x.reshape(2, 6) @ A.T, rtol=0, atol=1e-12)
    with raises_naming(ValueError, "x"):
        DenseOperator(A)(torch.randn(2, 2, 4, dtype=D64))  # 8 elements per sample, not 6
    assert Colorization(3)(torch.randn(2, 12)).shape == (2, 4)  # flat, channel-major: unambiguous


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_non_real_float_inputs_are_type_errors_naming_them(dtype):
    op = SuperResolution(2, 1, 4)
    x = torch.zeros(2, 1, 4, 4, dtype=dtype)
    with raises_naming(TypeError, "x"):
        op(x)
    with raises_naming(TypeError, "y"):
        op.pinv(torch.zeros(2, 4, dtype=dtype))
    with raises_naming(TypeError, "x"):
        op([[0.0] * 16] * 2)


# ------------------------------------------------------------------ sizes and integer arguments
BAD_SIZES = ["48", b"48", (4.5, 4), (4, 4.0), 4.0, (0, 4), (-4, 4), -2, True, (True, 4), (4, 4, 1), (4,), None,
             [4, "8"], float("nan")]


@pytest.mark.parametrize("size", BAD_SIZES, ids=repr)
@pytest.mark.parametrize("make", [
    lambda size: SuperResolution(1, 1, size),
    lambda size: Colorization(2, size) if size is not None else Colorization(2, object()),
    lambda size: SeparableBlur(torch.ones(2), torch.ones(2), 1, size),
    lambda size: WalshHadamardCS(1, size, 2),
], ids=["superres", "colorization", "blur", "hadamard"])
def test_bad_sizes_are_refused_naming_size(make, size):
    with pytest.raises((TypeError, ValueError), match="size"):
        make(size)


@fuzz_examples(80)
@given(size=st.one_of(st.integers(-3, 9), st.floats(allow_nan=True), st.text(max_size=3),
                      st.tuples(st.integers(-2, 9), st.integers(-2, 9)),
                      st.tuples(st.floats(0, 9), st.integers(1, 9)), st.lists(st.integers(1, 4), max_size=3)))
def test_sizes_are_exact_or_refused(size):
    """An int s means (s, s), a pair of ints (H, W); everything else is refused (never truncated)."""
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        want = (size, size)
    elif (isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size)
          and min(size) >= 1):
        want = tuple(size)
    else:
        want = None
    if want is None:
        with pytest.raises((TypeError, ValueError), match="size"):
            SuperResolution(1, 2, size)
    else:
        op = SuperResolution(1, 2, size)
        assert (op.H, op.W) == want and op.in_shape == (2, *want)


@pytest.mark.parametrize("call,name", [
    (lambda v: SuperResolution(v, 1, 4), "factor"),
    (lambda v: SuperResolution(2, v, 4), "channels"),
    (lambda v: Colorization(v), "channels"),
    (lambda v: Inpainting(torch.ones(2, 2), v), "channels"),
    (lambda v: WalshHadamardCS(v, 4, 2), "channels"),
    (lambda v: WalshHadamardCS(1, 4, v), "rows"),
    (lambda v: Denoising(v), "n"),
])
@pytest.mark.parametrize("bad", [2.5, 2.0, "2", True, 0, -1, None])
def test_integer_arguments_refuse_non_integers_and_non_positives(call, name, bad):
    if bad is None and name == "n":
        assert call(bad).n is None  # Denoising() without a size is allowed
        return
    with raises_naming((TypeError, ValueError), name):
        call(bad)


def test_numpy_integers_are_accepted_as_ints():
    op = SuperResolution(np.int64(2), np.int8(3), (np.int32(4), 8))
    assert (op.r, op.channels, op.H, op.W) == (2, 3, 4, 8)


# ------------------------------------------------------------------ Walsh-Hadamard rows and seeds
def test_boolean_masks_are_not_row_indices():
    mask = torch.zeros(16, dtype=torch.bool)
    mask[[1, 5, 7]] = True
    with raises_naming(TypeError, "rows"):
        WalshHadamardCS(1, 4, mask)  # would have been read as rows [0, 1, 0, ...]
    op = WalshHadamardCS(1, 4, torch.nonzero(mask).flatten())
    assert op.rows.tolist() == [1, 5, 7]
    with raises_naming(TypeError, "rows"):
        WalshHadamardCS(1, 4, torch.tensor([1.0, 2.0]))
    with raises_naming(ValueError, "rows"):
        WalshHadamardCS(1, 4, 17)


@pytest.mark.parametrize("seed,exc", [(None, TypeError), ("0", TypeError), (1.5, TypeError), (-1, ValueError),
                                      (2**64, ValueError), (2**70, ValueError)])
def test_hadamard_seed_must_be_a_valid_int(seed, exc):
    with raises_naming(exc, "seed"):
        WalshHadamardCS(1, 4, 3, seed=seed)


def test_hadamard_seed_draws_reproducibly_up_to_the_largest_seed():
    a, b = WalshHadamardCS(1, 8, 5, seed=2**64 - 1), WalshHadamardCS(1, 8, 5, seed=2**64 - 1)
    assert torch.equal(a.rows, b.rows)


# ------------------------------------------------------------------ dense matrices
def test_complex_dense_operator_is_refused_not_truncated():
    A = torch.randn(3, 4, dtype=torch.complex128)
    with raises_naming(TypeError, "A"):
        DenseOperator(A)
    with raises_naming(TypeError, "A"):
        DenseOperator(A.numpy())
    with raises_naming(ValueError, "A"):
        DenseOperator(torch.tensor([[1.0, float("nan")]]))
    with raises_naming(TypeError, "A"):
        DenseOperator("eye")
    # integer and numpy matrices are real: accepted exactly
    op = DenseOperator(np.arange(6).reshape(2, 3))
    torch.testing.assert_close(op(torch.ones(1, 3, dtype=D64)), torch.tensor([[3.0, 12.0]], dtype=D64))


# ------------------------------------------------------------------ empty batches
@pytest.mark.parametrize("op,shape", [
    (Colorization(3), (3, 4, 5)), (Colorization(3, (4, 5)), (3, 4, 5)), (DenseOperator(torch.randn(3, 5)), (5,)),
    (Denoising(), (2, 3)), (SuperResolution(2, 1, 4), (1, 4, 4)), (WalshHadamardCS(1, 4, 3), (1, 4, 4)),
    (SeparableBlur(torch.ones(3) / 3, torch.ones(3) / 3, 1, 5), (1, 5, 5)),
    (Inpainting(torch.ones(2, 2), 1), (1, 2, 2)),
], ids=lambda v: type(v).__name__ if not isinstance(v, tuple) else str(v))
def test_empty_batches_give_empty_results(op, shape):
    n = math.prod(shape)
    m = op.measurement_size(n)
    assert op.pinv(torch.zeros(0, m), n).shape == (0, n)
    assert op.adjoint(torch.zeros(0, m), n).shape == (0, n)
    assert op(torch.zeros(0, *shape)).shape == (0, m)
    got = likelihood_score(op, torch.zeros(0, m), torch.zeros(0, *shape), mean_scale=1.0, std=0.5, sigma_y=0.0)
    assert got.shape == (0, *shape)


# ------------------------------------------------------------------ likelihood scores
def dense_reference_score(A, y, x, s, std, sigma_y):
    """A^T M^+ (s y - A x), M = s^2 sigma_y^2 I + std^2 A A^T (the module's formula times s^2 / s^2);
    ``None`` when M = 0 (no score)."""
    M = (s * sigma_y) ** 2 * torch.eye(A.shape[0], dtype=D64) + std**2 * A @ A.T
    r = s * y - x @ A.T
    if s * sigma_y > 0:
        return torch.linalg.solve(M, r.T).T @ A, torch.linalg.cond(M).item()
    if std == 0:
        return None, None
    return r @ torch.linalg.pinv(A).T / std**2, 1.0  # A^T (std^2 A A^T)^+ = A^+ / std^2


@fuzz_examples(60)
@given(name=st.sampled_from(SIZED + ["box_blur", "low_rank"]), s=st.sampled_from([0.0, 1e-3, 0.5, 1.0]),
       std=st.sampled_from([0.0, 1e-3, 0.7, 50.0]), sigma_y=st.sampled_from([0.0, 1e-4, 0.1, 1.0]),
       dtype=st.sampled_from([torch.float32, D64]), seed=st.integers(0, 2**16))
def test_likelihood_score_is_the_dense_formula_or_a_clear_refusal(name, s, std, sigma_y, dtype, seed):
    """Every (s, std, sigma_y) corner, singular operators included: the dense formula (pinv at
    sigma_y = 0), or a ValueError when std = 0 and s sigma_y = 0 (a point mass has no score)."""
    g = torch.Generator().manual_seed(seed)
    if name == "box_blur":
        op = SeparableBlur(torch.ones(3) / 3, torch.ones(3) / 3, 1, (5, 8))
        shape = (1, 5, 8)
        A = op(torch.eye(40, dtype=D64).reshape(40, 1, 5, 8)).T  # its forward is checked against conv2d elsewhere
    elif name == "low_rank":
        A = torch.randn(6, 2, generator=g, dtype=D64) @ torch.randn(2, 9, generator=g, dtype=D64)
        op, shape = DenseOperator(A), (9,)
    else:
        op, shape, A = REFS[name]
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    y = torch.randn(2, A.shape[0], generator=g, dtype=D64)
    want, cond = dense_reference_score(A, y, x.flatten(1), s, std, sigma_y)
    if want is None:
        with raises_naming(ValueError, "std"):
            likelihood_score(op, y.to(dtype), x.to(dtype), mean_scale=s, std=std, sigma_y=sigma_y)
        return
    got = likelihood_score(op, y.to(dtype), x.to(dtype), mean_scale=s, std=std, sigma_y=sigma_y)
    assert got.dtype == dtype and got.shape == x.shape and torch.isfinite(got).all()
    eps = torch.finfo(dtype).eps
    tol = 50 * max(eps, torch.finfo(D64).eps * cond)
    err = (got.flatten(1).double() - want).norm() / max(want.norm().item(), 1e-300)
    if dtype == torch.float32:
        # float32: the state's rounding (eps |x|) amplified by the weights S / (a + c S^2)
        S = op.numerical_singulars(math.prod(shape), like=x.float()).double()
        f = (S / ((s * sigma_y) ** 2 + std**2 * S**2)).nan_to_num(0.0)
        bound = 50 * eps * (f * (s * y.norm(dim=1).max() + x.flatten(1).norm(dim=1).max())).max()
        assert (got.flatten(1).double() - want).norm() <= bound + tol * want.norm()
    else:
        assert err <= tol or want.norm() < 1e-300


@pytest.mark.parametrize("bad,exc", [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                     ("0.1", TypeError), (True, TypeError), (torch.ones(3), ValueError),
                                     (torch.tensor([0.1, -0.1]), ValueError)])
@pytest.mark.parametrize("arg", ["mean_scale", "std", "sigma_y"])
def test_bad_score_coefficients_name_themselves(arg, bad, exc):
    op = SuperResolution(2, 1, 4)
    kw = {"mean_scale": 1.0, "std": 0.5, "sigma_y": 0.1, arg: bad}
    with raises_naming(exc, arg):
        likelihood_score(op, torch.zeros(2, 4), torch.zeros(2, 1, 4, 4), **kw)


def test_bad_score_tensors_name_themselves():
    op = SuperResolution(2, 1, 4)
    x, y = torch.zeros(2, 1, 4, 4), torch.zeros(2, 4)
    kw = dict(mean_scale=1.0, std=0.5, sigma_y=0.1)
    with raises_naming(TypeError, "x_t"):
        likelihood_score(op, y, x.numpy(), **kw)
    with raises_naming(TypeError, "y"):
        likelihood_score(op, y.tolist(), x, **kw)
    with raises_naming(TypeError, "op"):
        likelihood_score("superres", y, x, **kw)
    with raises_naming(ValueError, "y"):
        likelihood_score(op, torch.full((2, 4), float("nan")), x, **kw)
    with raises_naming(ValueError, "rcond"):
        likelihood_score(op, y, x, rcond=-1e-3, **kw)
    with raises_naming(TypeError, "sigma_y"):
        LikelihoodScore(op, y, "0.1")
    with raises_naming(ValueError, "x_t"):
        LikelihoodScore(op, y, 0.1)(torch.zeros(3, 1, 4, 4), 1.0, 0.5)


# ------------------------------------------------------------------ DMPS front door (shape) and the loss
@pytest.mark.parametrize("shape,exc", [(5, TypeError), ((2.5, 1, 4, 4), TypeError), ((2, -1, 4, 4), ValueError),
                                       ("2144", TypeError), ((), ValueError)], ids=repr)
def test_dmps_sample_shape_is_checked(shape, exc):
    sampler = DMPS(shared_vpsde(), SuperResolution(2, 1, 4), 0.1, steps=2)
    with raises_naming(exc, r"shape(\[\d\])?"):
        sampler.sample(lambda x, t: -x, torch.zeros(1, 4), seed=0, shape=shape)


@pytest.mark.parametrize("generator", [0, 1.5, "cpu", np.random.default_rng(0)], ids=repr)
def test_loss_generator_must_be_a_torch_generator(generator):
    with raises_naming(TypeError, "generator"):
        denoising_score_matching(shared_vpsde(), lambda x, t: -x, torch.randn(3, 2), generator=generator)


@fuzz_examples(25)
@given(where=st.integers(0, 11), bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_loss_with_any_non_finite_score_entry_is_an_error_naming_score_fn(where, bad):
    x0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(where))

    def score(x, t):
        out = -x.clone()
        out.view(-1)[where] = bad
        return out

    with raises_naming(ValueError, "score_fn"):
        denoising_score_matching(shared_vpsde(), score, x0, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------ quantize (QCS-SGM's measurement bins)


@pytest.mark.parametrize("thresholds", [torch.tensor([math.nan, 0.0]), torch.tensor([0.0, math.nan]),
                                        torch.tensor([0.5, 0.5]), torch.tensor([1.0, -1.0])], ids=repr)
def test_quantize_refuses_nan_or_unsorted_thresholds_naming_them(thresholds):
    with raises_naming(ValueError, "thresholds"):
        quantize(torch.randn(2, 5), thresholds)


@fuzz_examples(30)
@given(z=st.lists(st.floats(-5, 5), min_size=1, max_size=8), cuts=st.lists(st.floats(-3, 3), min_size=1, max_size=4,
                                                                            unique=True))
def test_quantize_puts_every_finite_value_in_its_bin(z, cuts):
    """The right answer: lower <= z < upper with lower, upper consecutive edges of (-inf, t..., inf)."""
    t = torch.tensor(sorted(cuts), dtype=D64)
    zt = torch.tensor(z, dtype=D64)
    lo, up = quantize(zt, t)
    edges = [-math.inf] + sorted(cuts) + [math.inf]
    for v, a, b in zip(z, lo.tolist(), up.tolist()):
        i = max(k for k in range(len(edges) - 1) if edges[k] <= v)
        assert (a, b) == (edges[i], edges[i + 1])


def test_quantize_refuses_a_nan_input_naming_z():
    with raises_naming(ValueError, "z"):
        quantize(torch.tensor([math.nan, 1.0]), torch.tensor([0.0]))


def test_quantize_takes_numpy_input_as_the_same_tensor():
    z, t = np.random.default_rng(0).standard_normal(5), np.array([-0.5, 0.0, 0.5])
    got, want = quantize(z, t), quantize(torch.from_numpy(z), torch.from_numpy(t))
    assert all(torch.equal(g, w) for g, w in zip(got, want)) if isinstance(got, tuple) else torch.equal(got, want)
