"""QCS-SGM: the truncated-normal mean R(l, u) against mpmath far into the tails and for
narrow bins; the quantized score against autograd of the dense log-likelihood and, for
vanishing bins, against the DMPS Gaussian score."""
import math
import random

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from sdekit.inverse import (DenseOperator, Inpainting, SeparableBlur, SuperResolution, WalshHadamardCS,
                            likelihood_score)
from sdekit.inverse.quantized import (quantize, quantized_likelihood_score, quantized_likelihood_score_at,
                                     truncated_normal_mean)

mpmath = pytest.importorskip("mpmath")
from test_inverse_operators import shared_vpsde  # noqa: F401,E402

D64 = torch.float64


def mp_mean(l, u):
    """(phi(l) - phi(u)) / (Phi(u) - Phi(l)) in 80-digit mpmath, tails via erfc (no underflow in mpmath)."""
    with mpmath.workdps(80):
        l, u = mpmath.mpf(l), mpmath.mpf(u)
        flip = l + u < 0
        if flip:
            l, u = -u, -l
        phi = lambda x: mpmath.npdf(x) if mpmath.isfinite(x) else mpmath.mpf(0)  # noqa: E731
        Q = lambda x: mpmath.erfc(x / mpmath.sqrt(2)) / 2  # noqa: E731
        r = (phi(l) - phi(u)) / (Q(l) - Q(u))
        return float(-r if flip else r)


LOWER = [-1e4, -200.0, -40.0, -38.5, -10.0, -3.0, -1.0, -0.3, 0.0, 1e-7, 0.5, 2.0, 5.0, 8.3, 30.0,
         38.5, 39.0, 100.0, 1e3, 1e5]
WIDTH = [1e-12, 1e-8, 1e-5, 1e-3, 0.01, 0.1, 0.5, 1.0, 1.9, 2.1, 3.0, 10.0, 100.0, math.inf]


def grid():
    rng = random.Random(0)
    pairs = [(l, l + w) for l in LOWER for w in WIDTH]
    pairs += [(-math.inf, l) for l in LOWER] + [(-math.inf, math.inf)]
    pairs += [(l, l + 10 ** rng.uniform(-10, 2)) for l in (rng.uniform(-50, 50) for _ in range(150))]
    return [(l, u) for l, u in pairs if u > l]


def test_truncated_normal_mean_matches_mpmath_far_into_the_tails_float64():
    """Where Phi(u) - Phi(l) underflows (l > 38) or cancels (narrow bins) the naive ratio is 0/0;
    the stable form is within 2e-13 relative of mpmath everywhere on the grid (the residual is the
    conditioning of exp(-a^2/2) at |a| ~ 40, i.e. a^2/2 ulps)."""
    pairs = grid()
    l = torch.tensor([p[0] for p in pairs], dtype=D64)
    u = torch.tensor([p[1] for p in pairs], dtype=D64)
    want = torch.tensor([mp_mean(a, b) for a, b in pairs], dtype=D64)
    got = truncated_normal_mean(l, u)
    assert torch.isfinite(got).all()
    rel = (got - want).abs() / want.abs().clamp(min=1e-300)
    assert rel.max() < 2e-13, pairs[int(rel.argmax())]
    # the naive formula fails on the same grid: it is NaN or off by > 100% somewhere
    naive = (torch.exp(-l**2 / 2) - torch.exp(-u**2 / 2)) / math.sqrt(2 * math.pi) / (
        torch.special.ndtr(u) - torch.special.ndtr(l))
    assert (~torch.isfinite(naive)).any() and ((naive - want).abs() > want.abs()).any()


def test_truncated_normal_mean_float32_is_accurate_or_underflows_honestly():
    pairs = [(l, u) for l, u in grid() if torch.tensor(l).float() < torch.tensor(u).float()]
    l = torch.tensor([p[0] for p in pairs], dtype=torch.float32)
    u = torch.tensor([p[1] for p in pairs], dtype=torch.float32)
    want = torch.tensor([mp_mean(a, b) for a, b in zip(l.double().tolist(), u.double().tolist())], dtype=D64)
    got = truncated_normal_mean(l, u).double()
    assert torch.isfinite(got).all()
    tiny = torch.finfo(torch.float32).tiny
    normal = want.abs() > 1e3 * tiny
    assert ((got - want).abs() / want.abs())[normal].max() < 1e-5
    assert (got[~normal].abs() <= 1e4 * tiny).all()  # true value below float32's range


def test_truncated_normal_mean_special_values():
    inf = math.inf
    t = lambda *v: torch.tensor(v, dtype=D64)  # noqa: E731
    assert truncated_normal_mean(t(-inf), t(inf)).item() == 0.0
    # one-sided: the inverse Mills ratio phi(l) / Q(l)
    for l in [0.0, 1.0, 40.0, 1e6]:
        assert truncated_normal_mean(t(l), t(inf)).item() == pytest.approx(mp_mean(l, inf), rel=1e-14)
    assert truncated_normal_mean(t(0.0), t(inf)).item() == pytest.approx(math.sqrt(2 / math.pi), rel=1e-15)
    # symmetric bins have mean 0; reflection R(l, u) = -R(-u, -l)
    assert truncated_normal_mean(t(-3.0), t(3.0)).item() == 0.0
    l, u = t(-2.0, 0.3, 35.0), t(5.0, 0.30001, 41.0)
    torch.testing.assert_close(truncated_normal_mean(l, u), -truncated_normal_mean(-u, -l), rtol=0, atol=0)
    with pytest.raises(ValueError, match="lower < upper"):
        truncated_normal_mean(t(1.0), t(1.0))
    with pytest.raises(ValueError, match="lower < upper"):
        truncated_normal_mean(t(float("nan")), t(1.0))


@given(l=st.floats(-60, 60), w=st.floats(1e-9, 80))
def test_truncated_normal_mean_lies_inside_its_bin(l, w):
    u = l + w
    r = truncated_normal_mean(torch.tensor(l, dtype=D64), torch.tensor(u, dtype=D64)).item()
    assert l <= r <= u
    assert r == pytest.approx(mp_mean(l, u), rel=2e-13, abs=1e-300)


def test_quantize_returns_the_bin_edges():
    z = torch.tensor([[-2.0, -0.5, 0.0, 0.49, 0.5, 7.0]], dtype=D64)
    lo, up = quantize(z, torch.tensor([-1.0, 0.0, 0.5]))
    inf = math.inf
    torch.testing.assert_close(lo, torch.tensor([[-inf, -1.0, 0.0, 0.0, 0.5, 0.5]], dtype=D64))
    torch.testing.assert_close(up, torch.tensor([[-1.0, 0.0, 0.5, 0.5, inf, inf]], dtype=D64))
    with pytest.raises(ValueError, match="increasing"):
        quantize(z, torch.tensor([0.0, -1.0]))


def test_quantize_rejects_nan_and_non_tensors_naming_the_argument():
    z = torch.tensor([[-2.0, 0.3]], dtype=D64)
    with pytest.raises(ValueError, match="thresholds.*NaN"):
        quantize(z, torch.tensor([0.0, math.nan]))
    with pytest.raises(ValueError, match="z contains NaN"):
        quantize(torch.tensor([[0.1, math.nan]], dtype=D64), [0.0])
    with pytest.raises(TypeError, match="z must be"):
        quantize([[0.1, 0.2]], [0.0])
    with pytest.raises(TypeError, match="z must be floating"):
        quantize(torch.tensor([[1, 2]]), [0.0])
    with pytest.raises(TypeError, match="thresholds"):
        quantize(z, "0")


def test_quantize_accepts_numpy_arrays_explicitly():
    import numpy as np
    z = np.array([[-2.0, -0.5, 0.0, 0.7]])
    lo, up = quantize(z, np.array([-1.0, 0.5]))
    assert isinstance(lo, torch.Tensor) and lo.dtype == D64
    ref_lo, ref_up = quantize(torch.from_numpy(z), torch.tensor([-1.0, 0.5]))
    assert torch.equal(lo, ref_lo) and torch.equal(up, ref_up)
    lo32, _ = quantize(z.astype(np.float32), [0.0])
    assert lo32.dtype == torch.float32


# ------------------------------------------------------------------ the score
def row_orthogonal_ops():
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=D64))
    A = Q[:6] * torch.tensor([2.0, 1.0, 0.5, 0.1, 1.0, 3.0], dtype=D64)[:, None]  # orthogonal rows, unequal norms
    return {
        "dense_row_orthogonal": (DenseOperator(A), (16,)),
        "hadamard": (WalshHadamardCS(1, (4, 4), 6), (1, 4, 4)),
        "superres": (SuperResolution(2, 1, 4), (1, 4, 4)),
        "inpainting": (Inpainting(torch.rand(4, 4, generator=g) > 0.4, 1), (1, 4, 4)),
    }


OPS = row_orthogonal_ops()


def autograd_score(A, lo, up, x, s, std, sigma_y):
    """grad_x sum log(Phi(u~) - Phi(l~)) with a dense A, via torch.special.ndtr and autograd."""
    x = x.clone().requires_grad_(True)
    mean = x @ A.T / s
    sd = torch.sqrt(sigma_y**2 + (std / s) ** 2 * (A * A).sum(1))
    ll = torch.log(torch.special.ndtr((up - mean) / sd) - torch.special.ndtr((lo - mean) / sd)).sum()
    ll.backward()
    return x.grad


@pytest.mark.parametrize("name", sorted(OPS))
def test_quantized_score_matches_autograd_of_the_dense_likelihood(name):
    op, shape = OPS[name]
    n = math.prod(shape)
    A = op.forward(torch.eye(n, dtype=D64).reshape(n, *shape)).T
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, n, generator=g, dtype=D64)
    z = x0 @ A.T + 0.1 * torch.randn(4, A.shape[0], generator=g, dtype=D64)
    lo, up = quantize(z, torch.tensor([-1.0, -0.3, 0.0, 0.3, 1.0]))  # 6 levels, two open bins
    for s, std in [(1.0, 0.0), (0.9, 0.44), (0.5, 0.87), (1.0, 1.0)]:
        x = s * x0 + std * torch.randn(4, n, generator=g, dtype=D64)
        got = quantized_likelihood_score(op, (lo, up), x.reshape(4, *shape), mean_scale=s, std=std, sigma_y=0.1)
        want = autograd_score(A, lo, up, x, s, std, 0.1)
        torch.testing.assert_close(got.reshape(4, n), want, rtol=1e-10, atol=1e-12)


def test_quantized_score_is_finite_where_the_naive_one_is_nan():
    """Bins far in the tails of the predicted measurement (|u~| ~ 50): Phi differences underflow."""
    op, shape = OPS["hadamard"]
    x = torch.zeros(2, *shape, dtype=D64)
    lo = torch.full((2, 6), 5.0, dtype=D64)
    up = torch.full((2, 6), 6.0, dtype=D64)
    got = quantized_likelihood_score(op, (lo, up), x, mean_scale=1.0, std=0.0, sigma_y=0.1)  # l~ = 50
    A = op.forward(torch.eye(16, dtype=D64).reshape(16, *shape)).T
    naive = autograd_score(A, lo, up, x.reshape(2, 16), 1.0, 0.0, 0.1)
    assert torch.isnan(naive).all()
    # R(50, 60) = E[T | 50 < T < 60] ~ 50.02; the score is A^T R / tau with tau = 0.1
    want = torch.full((2, 6), mp_mean(50.0, 60.0) / 0.1, dtype=D64) @ A
    torch.testing.assert_close(got.reshape(2, 16), want, rtol=1e-13, atol=0)


@pytest.mark.parametrize("name", sorted(OPS))
def test_vanishing_bins_give_the_dmps_gaussian_score(name):
    op, shape = OPS[name]
    n = math.prod(shape)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    m = op.measurement_size(n)
    y = torch.randn(3, m, generator=g, dtype=D64)
    for s, std in [(1.0, 0.0), (0.7, 0.71), (0.05, 1.0)]:
        got = quantized_likelihood_score(op, (y - 1e-9, y + 1e-9), x, mean_scale=s, std=std, sigma_y=0.2)
        want = likelihood_score(op, y, x, mean_scale=s, std=std, sigma_y=0.2)
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


def test_quantized_score_float32():
    op, shape = OPS["superres"]
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, *shape, generator=g, dtype=D64)
    lo, up = quantize(op.forward(x) + 3.0, torch.tensor([0.0]))  # 1-bit, most entries in the open bin
    s64 = quantized_likelihood_score(op, (lo, up), x, mean_scale=0.8, std=0.6, sigma_y=0.05)
    s32 = quantized_likelihood_score(op, (lo.float(), up.float()), x.float(), mean_scale=0.8, std=0.6,
                                     sigma_y=0.05)
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), s64, rtol=1e-4, atol=1e-5)


def test_quantized_score_bad_input():
    op, shape = OPS["hadamard"]
    x = torch.zeros(2, *shape, dtype=D64)
    lo, up = torch.zeros(2, 6, dtype=D64), torch.ones(2, 6, dtype=D64)
    blur = SeparableBlur(torch.ones(3) / 3, torch.ones(3) / 3, 1, 4)
    with pytest.raises(ValueError, match="not row-orthogonal"):
        quantized_likelihood_score(blur, (torch.zeros(2, 16), torch.ones(2, 16)), x, mean_scale=1, std=0,
                                   sigma_y=0.1)
    with pytest.raises(ValueError, match="not row-orthogonal"):
        quantized_likelihood_score(torch.ones(2, 16, dtype=D64), (lo[:, :2], up[:, :2]), x.reshape(2, 16),
                                   mean_scale=1, std=0, sigma_y=0.1)
    with pytest.raises(ValueError, match="lower must have 6 elements"):
        quantized_likelihood_score(op, (lo[:, :5], up), x, mean_scale=1, std=0, sigma_y=0.1)
    with pytest.raises(ValueError, match="lower < upper"):
        quantized_likelihood_score(op, (up, lo), x, mean_scale=1, std=0, sigma_y=0.1)
    with pytest.raises(ValueError, match="sigma_y must be >= 0"):
        quantized_likelihood_score(op, (lo, up), x, mean_scale=1, std=0, sigma_y=-1.0)
    with pytest.raises(ValueError, match="pair"):
        quantized_likelihood_score(op, lo, x, mean_scale=1, std=0, sigma_y=0.1)


def test_quantized_score_at_takes_scale_and_std_from_the_sde():
    op, shape = OPS["hadamard"]
    g = torch.Generator().manual_seed(5)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    lo, up = quantize(torch.randn(3, 6, generator=g, dtype=D64), torch.tensor([-0.5, 0.0, 0.5]))
    t = torch.tensor([0.05, 0.4, 0.9], dtype=D64)
    got = quantized_likelihood_score_at(shared_vpsde(), op, (lo, up), x, t, sigma_y=0.1)
    abar = torch.exp(-(0.1 * t + 19.9 * t**2 / 2))  # VP(0.1, 20)
    want = quantized_likelihood_score(op, (lo, up), x, mean_scale=abar.sqrt(), std=(1 - abar).sqrt(), sigma_y=0.1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)

    class WithYDrift:
        has_y_drift = True

    with pytest.raises(ValueError, match="y-drift"):
        quantized_likelihood_score_at(WithYDrift(), op, (lo, up), x, t, sigma_y=0.1)


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(OPS))
def test_quantized_score_on_cuda_matches_cpu(name):
    op, shape = OPS[name]
    n = math.prod(shape)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, *shape, generator=g, dtype=D64)
    z = 40 * torch.randn(3, op.measurement_size(n), generator=g, dtype=D64)  # far tails included
    lo, up = quantize(z, torch.tensor([-1.0, 0.0, 1.0]))
    want = quantized_likelihood_score(op, (lo, up), x, mean_scale=0.8, std=0.6, sigma_y=0.05)
    got = quantized_likelihood_score(op, (lo.cuda(), up.cuda()), x.cuda(), mean_scale=0.8, std=0.6, sigma_y=0.05)
    torch.testing.assert_close(got.cpu(), want, rtol=1e-12, atol=1e-12)
    got32 = quantized_likelihood_score(op, (lo.float().cuda(), up.float().cuda()), x.float().cuda(),
                                       mean_scale=0.8, std=0.6, sigma_y=0.05)
    assert torch.isfinite(got32).all()
    torch.testing.assert_close(got32.double().cpu(), want, rtol=1e-4, atol=1e-4)
