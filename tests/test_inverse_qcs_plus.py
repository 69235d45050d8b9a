"""QCS-SGM for general A (approx="diag") and QCS-SGM+ (EP), against the authors' code transcribed,
mpmath in the tails, the exact posterior by 2-d quadrature, QCS-SGM's exact score, the DMPS
Gaussian score; and the QCS-SGM+ experiments' matrices against dense linear algebra."""
import math

import numpy as np
import pytest
import torch

from sdekit import VESDE, VPSDE
from sdekit.inverse import (DenseOperator, QCSPlus, SeparableBlur, correlated_matrix, ill_conditioned_matrix,
                            likelihood_score, quantize, quantized_likelihood_score, row_norms_sq, toeplitz_sqrt)

mpmath = pytest.importorskip("mpmath")
D64 = torch.float64


# ---------------------------------------------------------------------------------------------
# The authors' code, transcribed for reference (tests only).
# mengxiangming/QCS-SGM, models/__init__.py: likelihood_score_onebit_diag, likelihood_score_multibit_diag;
# mengxiangming/QCS-SGM-plus, models/__init__.py: likelihood_score_onebit_EP, likelihood_score_multibit_EP.
# Changes: dtype follows the inputs (their zeros/ones are float32 and `hG.float()` casts), the
# `torch.nan_to_num(...)` lines whose result is discarded are dropped, the EP stopping
# tolerance is an argument (theirs: 1e-5 one-bit, 1e-3 multibit), and the EP loop the two EP
# functions repeat is written once (_authors_EP), each function giving its own site updates.
def mat_by_vec(H, v):
    return torch.matmul(H, v.view(v.shape[0], -1, 1)).view(v.shape[0], H.shape[0])


def authors_onebit_diag(y, x_mod, H, noise_var, gamma, diag_values):
    z = mat_by_vec(H, x_mod)
    phi_z = torch.erfc(-z / torch.sqrt(2 * (noise_var + diag_values * gamma**2))) / 2
    phi_z = torch.clamp(phi_z, min=1e-6, max=1 - 1e-6)
    gauss = 1 / torch.sqrt(2 * (noise_var + diag_values * gamma**2) * np.pi) * torch.exp(
        -z**2 / 2 / (noise_var + diag_values * gamma**2))
    return mat_by_vec(H.t(), ((1 + y) / 2 / phi_z - (1 - y) / 2 / (1 - phi_z)) * gauss)


def authors_multibit_diag(y_lower, y_upper, x_mod, H, noise_var, gamma, diag_values):
    z = mat_by_vec(H, x_mod)
    sd = torch.sqrt(noise_var + diag_values * gamma**2)
    u_tilde, l_tilde = (z - y_upper) / sd, (z - y_lower) / sd
    gauss = 1 / np.sqrt(2 * np.pi) * (torch.exp(-u_tilde**2 / 2) - torch.exp(-l_tilde**2 / 2)) / sd
    den = torch.erfc(-u_tilde / np.sqrt(2)) / 2 - torch.erfc(-l_tilde / np.sqrt(2)) / 2
    den = torch.clamp(den, min=-1, max=-1e-6)
    return mat_by_vec(H.t(), gauss / den)


MIN_VALUE = 1e-6


def _Hf(u):
    return 1 / 2 * torch.erfc(u / np.sqrt(2))


def _DlnH(u):
    return -torch.exp(-u**2 / 2) / np.sqrt(2 * np.pi) / torch.clip(_Hf(u), MIN_VALUE, 1 - MIN_VALUE)


def _DlnHc(u):
    return torch.exp(-u**2 / 2) / np.sqrt(2 * np.pi) / torch.clip((1 - _Hf(u)), MIN_VALUE, 1 - MIN_VALUE)


def _DDlnH(u):
    return u * torch.exp(-u**2 / 2) / np.sqrt(2 * np.pi) / torch.clip(_Hf(u), MIN_VALUE, 1 - MIN_VALUE) - _DlnH(u)**2


def _DDlnHc(u):
    return -u * torch.exp(-u**2 / 2) / np.sqrt(2 * np.pi) / torch.clip((1 - _Hf(u)), MIN_VALUE,
                                                                       1 - MIN_VALUE) - _DlnHc(u)**2


def _phi(x):
    return torch.erfc(-x / np.sqrt(2)) / 2


def _damped(new, old, iteration, damp):
    """The authors' damping of every EP message: the first iterate as is, then ``(1 - damp) new + damp old``."""
    return new if iteration == 0 else (1 - damp) * new + damp * old


def _authors_EP(ys_full, x_mod, H, noise_var, gamma, U_c, D_c, NumIter_EP, damp, tol, F_moments, G_variance,
                F_grad):
    """The EP loop both of the authors' EP scores run per sample (their two functions repeat it):
    ``F_moments(b, *ys, hF, lamF) -> (mF_new, chiF_new)`` the quantizer site's moments,
    ``G_variance(lamG, D, G_common) -> chiG`` the Gaussian site's variance, and
    ``F_grad(b, *ys, hF, lamF, khF, klamF)`` the score in ``z`` after the loop (``khF``, ``klamF``:
    the messages the last iteration started from)."""
    z_batch = mat_by_vec(H, x_mod)
    M, Batch = H.shape[0], x_mod.shape[0]
    D = 1 / (gamma**2 * D_c + noise_var)
    U = U_c
    grad_value = torch.zeros(x_mod.shape, dtype=x_mod.dtype)
    for it in range(Batch):
        b = z_batch[it, :].reshape(-1, 1)
        ys = [y_full[it, :].reshape(-1, 1) for y_full in ys_full]
        hF = torch.zeros((M, 1), dtype=x_mod.dtype)
        lamF = torch.ones(1, dtype=x_mod.dtype)
        mF = chiF = hG = lamG = None
        for it_ep in range(NumIter_EP):
            khF, klamF = hF, lamF
            mF_new, chiF_new = F_moments(b, *ys, hF, lamF)
            mF = _damped(mF_new, mF, it_ep, damp)
            chiF = _damped(chiF_new, chiF, it_ep, damp)
            hG = _damped(mF / chiF - hF, hG, it_ep, damp)
            # chiF is a scalar: the multibit code's .mean() here only drops the one-bit code's (1,) shape
            lamG = _damped(max(MIN_VALUE, (1 / chiF - lamF).mean()), lamG, it_ep, damp)
            G_common = torch.matmul(U, torch.matmul(torch.diag(1 / (lamG + D)), U.t()))
            mG = torch.matmul(G_common, hG)
            chiG = G_variance(lamG, D, G_common)
            hF = _damped(mG / chiG - hG, hF, it_ep, damp)
            lamF = _damped(1 / chiG - lamG, lamF, it_ep, damp)
            ERR = abs(hF - khF).mean() + abs(lamF - klamF).mean()
            if ERR < tol:
                break
        grad = F_grad(b, *ys, hF, lamF, khF, klamF)
        grad_value[it] = torch.matmul(H.t(), grad).reshape(x_mod.shape[1:])
    return grad_value


def authors_onebit_EP(y_full, x_mod, H, noise_var, gamma, U_c, D_c, NumIter_EP=10, damp=0.02, tol=1e-5):
    def F_moments(b, y, hF, lamF):
        v = -torch.sqrt(lamF) * b - hF / torch.sqrt(lamF)
        mF_new = hF / lamF - 1 / torch.sqrt(lamF) * ((1 + y) / 2 * _DlnH(v) + (1 - y) / 2 * _DlnHc(v))
        chiF_full = 1 / lamF + 1 / lamF * ((1 + y) / 2 * _DDlnH(v) + (1 - y) / 2 * _DDlnHc(v))
        return mF_new, chiF_full[torch.where(chiF_full > 0)].mean()

    def G_variance(lamG, D, G_common):
        chiG_mat = 1 / (lamG + D)
        return chiG_mat[torch.where(chiG_mat > 0)].mean()

    def F_grad(b, y, hF, lamF, khF, klamF):
        v = -torch.sqrt(lamF) * b - hF / torch.sqrt(lamF)
        return -torch.sqrt(lamF) * ((1 + y) / 2 * _DlnH(v) + (1 - y) / 2 * _DlnHc(v))

    return _authors_EP([y_full], x_mod, H, noise_var, gamma, U_c, D_c, NumIter_EP, damp, tol, F_moments,
                       G_variance, F_grad)


def authors_multibit_EP(y_lower_full, y_upper_full, x_mod, H, noise_var, gamma, U_c, D_c, NumIter_EP=10,
                        damp=0.02, tol=1e-3):
    def tildes(b, y_lower, y_upper, hF, lamF):
        u_tilde = -torch.sqrt(lamF) * b - hF / torch.sqrt(lamF) + y_upper * torch.sqrt(lamF)
        l_tilde = -torch.sqrt(lamF) * b - hF / torch.sqrt(lamF) + y_lower * torch.sqrt(lamF)
        return u_tilde, l_tilde, torch.clamp(_phi(u_tilde) - _phi(l_tilde), MIN_VALUE, 1 - MIN_VALUE)

    def F_moments(b, y_lower, y_upper, hF, lamF):
        u_tilde, l_tilde, den = tildes(b, y_lower, y_upper, hF, lamF)
        mF_new = hF / lamF - 1 / torch.sqrt(lamF * 2 * math.pi) * (
            torch.exp(-u_tilde**2 / 2) - torch.exp(-l_tilde**2 / 2)) / den
        chiF_full = 1 / lamF - (u_tilde * torch.exp(-u_tilde**2 / 2) - l_tilde * torch.exp(
            -l_tilde**2 / 2)) / lamF / np.sqrt(2 * math.pi) / den - (mF_new - hF / lamF)**2
        return mF_new, chiF_full[torch.where(chiF_full > 0)].mean()

    def G_variance(lamG, D, G_common):
        return torch.diag(G_common).mean()

    def F_grad(b, y_lower, y_upper, hF, lamF, khF, klamF):
        # the authors' u_tilde, l_tilde are the last iteration's, computed from its starting messages
        u_tilde, l_tilde, den = tildes(b, y_lower, y_upper, khF, klamF)
        return -torch.sqrt(lamF) / np.sqrt(2 * math.pi) * (
            torch.exp(-u_tilde**2 / 2) - torch.exp(-l_tilde**2 / 2)) / den

    return _authors_EP([y_lower_full, y_upper_full], x_mod, H, noise_var, gamma, U_c, D_c, NumIter_EP, damp, tol,
                       F_moments, G_variance, F_grad)


# ---------------------------------------------------------------------------------------------
def gaussian_matrix(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g, dtype=D64) / math.sqrt(m)


def problem(M, thresholds, sigma_y, seed, B=4, shift=0.0):
    """Bins of ``M x0 + noise`` and a point ``x`` near ``x0`` (the bins are informative at ``x``)."""
    g = torch.Generator().manual_seed(seed)
    m, n = M.shape
    x0 = torch.randn(B, n, generator=g, dtype=D64)
    z = x0 @ M.T + sigma_y * torch.randn(B, m, generator=g, dtype=D64) + shift
    lo, up = quantize(z, torch.tensor(thresholds, dtype=D64))
    x = x0 + 0.5 * torch.randn(B, n, generator=g, dtype=D64)
    return lo, up, x


def test_diag_equals_exact_on_row_orthogonal_A():
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(0), dtype=D64))
    M = q[:7] * torch.linspace(0.5, 2.0, 7, dtype=D64)[:, None]          # orthogonal rows, unequal norms
    lo, up, x = problem(M, [-0.5, 0.0, 0.5], 0.1, 1)
    for s, std in ((1.0, 0.5), (0.6, 0.8)):
        ex = quantized_likelihood_score(M, (lo, up), x, mean_scale=s, std=std, sigma_y=0.1)
        dg = quantized_likelihood_score(M, (lo, up), x, mean_scale=s, std=std, sigma_y=0.1, approx="diag")
        torch.testing.assert_close(dg, ex, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("bits", [1, 3])
def test_diag_matches_the_authors_formulas_in_the_normal_range(bits):
    """VE form (``s = 1``, the authors' ``gamma`` = std); bins where their 1e-6 clamp is inactive."""
    M = gaussian_matrix(10, 16, 2)
    thresholds = [0.0] if bits == 1 else [-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
    lo, up, x = problem(M, thresholds, 0.3, 3)
    x = x.reshape(4, 1, 4, 4)
    std, sy = 0.4, 0.3
    ours = quantized_likelihood_score(DenseOperator(M), (lo, up), x, mean_scale=1.0, std=std, sigma_y=sy,
                                      approx="diag")
    diag = (M * M).sum(1)
    if bits == 1:
        y = torch.where(lo == 0, 1.0, -1.0).to(D64)
        ref = authors_onebit_diag(y, x, M, sy**2, std, diag)
    else:
        ref = authors_multibit_diag(lo, up, x, M, sy**2, std, diag)
    # the clamp must be inactive for this to be a test of the formulas
    z = x.reshape(4, -1) @ M.T
    sd = (sy**2 + std**2 * diag).sqrt()
    mass = (torch.special.ndtr((up - z) / sd) - torch.special.ndtr((lo - z) / sd))
    assert mass.min() > 1e-5
    torch.testing.assert_close(ours.reshape(4, -1), ref, rtol=1e-10, atol=1e-12)


def test_diag_matches_mpmath_in_the_tails_where_the_authors_clamp_is_wrong():
    """One measurement row, 1 bit, the bin 6 to 30 standard deviations away from ``a^T x``."""
    M = gaussian_matrix(3, 5, 4)
    op = DenseOperator(M)
    diag = (M * M).sum(1)
    std, sy = 0.5, 0.1
    tau = (sy**2 + std**2 * diag).sqrt()
    x = torch.ones(1, 5, dtype=D64)
    z = x @ M.T
    for k in (6.0, 12.0, 30.0):
        lo = (z + k * tau).reshape(1, 3)                     # the bin [z + k tau, inf): far above a^T x
        up = torch.full_like(lo, math.inf)
        ours = quantized_likelihood_score(op, (lo, up), x, mean_scale=1.0, std=std, sigma_y=sy, approx="diag")
        with mpmath.workdps(60):
            a = mpmath.mpf(k)
            R = mpmath.npdf(a) / (mpmath.erfc(a / mpmath.sqrt(2)) / 2)
        G = torch.tensor([float(R)] * 3, dtype=D64) / tau
        ref = G @ M
        torch.testing.assert_close(ours.reshape(-1), ref, rtol=1e-12, atol=0)
    # the authors' 1-bit formula (threshold 0: shift z by the bin edge) at 12 standard deviations:
    # with Phi clamped to [1e-6, 1 - 1e-6] their score is too small by orders of magnitude
    lo = (z + 12.0 * tau).reshape(1, 3)
    y_shift = lo
    zero_edge = mat_by_vec(M, x) - y_shift                  # a^T x - edge = -12 tau
    phi_z = torch.clamp(torch.erfc(-zero_edge / torch.sqrt(2 * tau**2)) / 2, 1e-6, 1 - 1e-6)
    their_G = torch.exp(-zero_edge**2 / 2 / tau**2) / torch.sqrt(2 * math.pi * tau**2) / phi_z
    ours = quantized_likelihood_score(op, (lo, torch.full_like(lo, math.inf)), x, mean_scale=1.0, std=std,
                                      sigma_y=sy, approx="diag")
    assert (their_G @ M - ours.reshape(1, -1)).abs().max() > 0.99 * ours.abs().max()


def test_diag_row_norms_of_an_implicit_operator_match_the_dense_matrix():
    k = torch.tensor([0.25, 0.5, 0.25], dtype=D64)
    blur = SeparableBlur(k, k, 1, 6)
    dense = blur.forward(torch.eye(36, dtype=D64).reshape(36, 1, 6, 6)).T         # (m, n)
    torch.testing.assert_close(row_norms_sq(blur, 36), (dense * dense).sum(1), rtol=1e-13, atol=1e-15)
    x = torch.randn(3, 1, 6, 6, dtype=D64)
    lo, up = quantize(blur.forward(x) + 0.1, torch.tensor([0.0]))
    got = quantized_likelihood_score(blur, (lo, up), x, mean_scale=0.9, std=0.3, sigma_y=0.2, approx="diag")
    ref = quantized_likelihood_score(DenseOperator(dense), (lo, up), x.reshape(3, 36), mean_scale=0.9, std=0.3,
                                     sigma_y=0.2, approx="diag")
    torch.testing.assert_close(got.reshape(3, 36), ref, rtol=1e-12, atol=1e-13)


def test_exact_refuses_a_general_A_and_names_the_alternatives():
    M = gaussian_matrix(4, 6, 0)
    lo, up, x = problem(M, [0.0], 0.1, 0)
    with pytest.raises(ValueError, match=r"approx='diag'.*QCSPlus"):
        quantized_likelihood_score(M, (lo, up), x, mean_scale=1, std=0.5, sigma_y=0.1)
    with pytest.raises(ValueError, match="approx"):
        quantized_likelihood_score(M, (lo, up), x, mean_scale=1, std=0.5, sigma_y=0.1, approx="full")


# ---------------------------------------------------------------------------------------------
# EP
@pytest.mark.parametrize("iters", [1, 3, 8])
def test_ep_matches_the_authors_one_bit_code(iters):
    """Same inputs, same iteration count (tol 0), normal range: theirs and ours agree to rounding."""
    M = gaussian_matrix(12, 20, 5)
    lo, up, x = problem(M, [0.0], 0.3, 6)
    std, sy = 0.6, 0.3
    D_c, U_c = torch.linalg.eigh(M @ M.T)
    y = torch.where(lo == 0, 1.0, -1.0).to(D64)
    ref = authors_onebit_EP(y, x, M, sy**2, std, U_c, D_c, NumIter_EP=iters, tol=0.0)
    ep = QCSPlus(M, (lo, up), sy, ep_iters=iters, damping=0.02, tol=0.0)
    got, info = ep.score(x, mean_scale=1.0, std=std, return_info=True)
    assert (info.iterations == iters).all()
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("damping", [0.02, 0.1])
def test_ep_matches_the_authors_multibit_code_at_the_fixed_point(damping):
    """The authors' multibit score mixes the factor's bounds from the start of its last iteration
    with ``lamF`` from its end, so it equals ours at the EP fixed point (100 iterations each, tol 0),
    not after a given count.  Their variance of an open bin is NaN (``u exp(-u^2/2)`` at
    ``u = inf``) and drops out of their ``chiF_full > 0`` average, so the outer thresholds here
    (+-60) leave every bin the data reach closed."""
    M = gaussian_matrix(12, 20, 7)
    lo, up, x = problem(M, [-60.0, -1.0, -0.5, 0.0, 0.5, 1.0, 60.0], 0.3, 8)
    assert torch.isfinite(lo).all() and torch.isfinite(up).all()
    std, sy = 0.6, 0.3
    D_c, U_c = torch.linalg.eigh(M @ M.T)
    ref = authors_multibit_EP(lo, up, x, M, sy**2, std, U_c, D_c, NumIter_EP=100, damp=damping, tol=0.0)
    got, info = QCSPlus(M, (lo, up), sy, ep_iters=100, damping=damping, tol=0.0).score(
        x, mean_scale=1.0, std=std, return_info=True)
    assert (info.change < 1e-13).all()
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-11)


def _exact_score_2d(M, lo, up, b, C):
    """``M^T C^{-1} E[e | l - b <= e < u - b]``, ``e ~ N(0, C)``: the exact score by 2-d quadrature."""
    from scipy import integrate
    Ci = np.linalg.inv(C)
    sd = np.sqrt(np.diag(C))
    L = np.maximum(lo - b, -14 * sd)
    U = np.minimum(up - b, 14 * sd)

    def pdf(e2, e1):
        e = np.array([e1, e2])
        return math.exp(-0.5 * e @ Ci @ e)

    kw = dict(epsabs=1e-12, epsrel=1e-9)
    Z = integrate.dblquad(pdf, L[0], U[0], L[1], U[1], **kw)[0]
    m1 = integrate.dblquad(lambda e2, e1: e1 * pdf(e2, e1), L[0], U[0], L[1], U[1], **kw)[0] / Z
    m2 = integrate.dblquad(lambda e2, e1: e2 * pdf(e2, e1), L[0], U[0], L[1], U[1], **kw)[0] / Z
    return M.T @ (Ci @ np.array([m1, m2]))


@pytest.mark.parametrize("sigma_y,thresholds", [(0.3, [0.0]), (0.1, [0.0]), (0.5, [-1.0, 0.0, 1.0])])
def test_ep_score_is_close_to_the_exact_gaussian_posterior_score_in_two_dimensions(sigma_y, thresholds):
    """Two correlated measurements of a 3-vector under ``x0 | x_t ~ N(x_t, std^2 I)``: the exact
    score ``A^T C^{-1} E[e | box]`` (2-d quadrature) against EP and the diagonal approximation,
    relative errors ``||score - exact|| / ||exact||`` at 8 points.  Measured over seeds 11-13:
    EP's mean <= 0.032 and worst 0.081; diag's mean >= 0.090; EP's mean / diag's <= 0.30."""
    M = torch.tensor([[1.0, 0.6, 0.2], [0.3, 1.0, -0.5]], dtype=D64)
    lo, up, x = problem(M, thresholds, sigma_y, 11, B=8)
    std = 0.7
    C = (sigma_y**2 * torch.eye(2, dtype=D64) + std**2 * M @ M.T).numpy()
    ep, info = QCSPlus(M, (lo, up), sigma_y, ep_iters=200, tol=1e-12).score(x, mean_scale=1.0, std=std,
                                                                            return_info=True)
    assert info.converged.all()
    dg = quantized_likelihood_score(M, (lo, up), x, mean_scale=1.0, std=std, sigma_y=sigma_y, approx="diag")
    b = (x @ M.T).numpy()
    ex = np.stack([_exact_score_2d(M.numpy(), lo[i].numpy(), up[i].numpy(), b[i], C) for i in range(8)])
    norm = np.linalg.norm(ex, axis=1)
    err_ep = np.linalg.norm(ep.numpy() - ex, axis=1) / norm
    err_diag = np.linalg.norm(dg.numpy() - ex, axis=1) / norm
    assert err_ep.mean() < 0.04 and err_ep.max() < 0.1
    assert err_ep.mean() < 0.4 * err_diag.mean()


def test_ep_equals_the_exact_qcs_score_on_row_orthogonal_A_with_equal_row_norms():
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(3), dtype=D64))
    M = 1.3 * q[:9]
    lo, up, x = problem(M, [-0.5, 0.0, 0.5], 0.1, 12)
    for s, std in ((1.0, 0.5), (0.7, 0.5), (0.2, 1.1)):
        ex = quantized_likelihood_score(M, (lo, up), x, mean_scale=s, std=std, sigma_y=0.1)
        got, info = QCSPlus(M, (lo, up), 0.1, tol=1e-12).score(x, mean_scale=s, std=std, return_info=True)
        assert (info.iterations == 2).all() and info.converged.all()       # the fixed point after one iteration
        torch.testing.assert_close(got, ex, rtol=1e-12, atol=1e-13)


def test_ep_keeps_the_tails_where_the_authors_clamp_zeroes_the_score():
    """Bins 8 to 35 standard deviations from ``b``: EP (equal row norms) equals the exact score,
    itself checked against mpmath in test_inverse_quantized.py; the authors' EP is off by orders."""
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(4), dtype=D64))
    M = q[:4]
    std, sy = 0.5, 0.1
    tau = math.sqrt(sy**2 + std**2)
    x = -(torch.tensor([[8.0, 15.0, 25.0, 35.0]], dtype=D64) * tau) @ M      # M x = -(8, 15, 25, 35) tau
    lo = torch.zeros(1, 4, dtype=D64)                                         # 1 bit, all signs +
    up = torch.full_like(lo, math.inf)
    ex = quantized_likelihood_score(M, (lo, up), x, mean_scale=1.0, std=std, sigma_y=sy)
    got = QCSPlus(M, (lo, up), sy, tol=1e-12).score(x, mean_scale=1.0, std=std)
    torch.testing.assert_close(got, ex, rtol=1e-12, atol=0)
    D_c, U_c = torch.linalg.eigh(M @ M.T)
    theirs = authors_onebit_EP(torch.ones(1, 4, dtype=D64), x, M, sy**2, std, U_c, D_c, NumIter_EP=10)
    assert (theirs - ex).norm() > 0.5 * ex.norm()


def test_ep_without_quantization_is_the_dmps_gaussian_score():
    """Bins of width 2e-7 around ``y`` (no quantization in the limit): EP equals
    ``(1/s) A^T C^{-1} (y - A x / s)`` (``sdekit.inverse.likelihood_score``) on a general ``A``."""
    M = gaussian_matrix(6, 10, 1)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 10, generator=g, dtype=D64)
    y = torch.randn(3, 10, generator=g, dtype=D64) @ M.T
    h = 1e-7
    for s, std in ((1.0, 0.5), (0.8, 0.5)):
        got = QCSPlus(M, (y - h, y + h), 0.2, tol=1e-10).score(x, mean_scale=s, std=std)
        ref = likelihood_score(DenseOperator(M), y, x, mean_scale=s, std=std, sigma_y=0.2)
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10 * ref.abs().max().item())


def test_ep_batched_equals_per_sample_with_per_sample_times():
    M = gaussian_matrix(10, 14, 9)
    lo, up, x = problem(M, [-0.5, 0.0, 0.5], 0.2, 13, B=5)
    s = torch.tensor([1.0, 0.9, 0.5, 0.3, 0.95], dtype=D64)
    std = torch.tensor([0.2, 0.5, 0.9, 1.0, 2.0], dtype=D64)
    got, info = QCSPlus(M, (lo, up), 0.2, ep_iters=30, tol=1e-9).score(x, mean_scale=s, std=std, return_info=True)
    assert len(set(info.iterations.tolist())) > 1          # the samples stop at different iterations
    for i in range(5):
        one, inf1 = QCSPlus(M, (lo[i:i + 1], up[i:i + 1]), 0.2, ep_iters=30, tol=1e-9).score(
            x[i:i + 1], mean_scale=s[i], std=std[i], return_info=True)
        assert inf1.iterations.item() == info.iterations[i].item()
        torch.testing.assert_close(one[0], got[i], rtol=1e-12, atol=1e-13)


def test_ep_converges_below_tol_and_respects_the_iteration_cap():
    """Correlated and ill-conditioned 64 x 128 operators, 1 bit, at ``x_t = x0`` and std from 0.05 to
    10, default parameters (cap 50 iterations, damping 0.02, tol 1e-5): every sample converges
    (change below tol) inside the cap [8 to 30 iterations measured]."""
    for op in (correlated_matrix(64, 128, 0.5, seed=1), ill_conditioned_matrix(64, 128, 100.0, seed=1)):
        x0 = torch.randn(6, 128, generator=torch.Generator().manual_seed(0), dtype=D64)
        noise = 0.05 * torch.randn(6, 64, dtype=D64, generator=torch.Generator().manual_seed(1))
        lo, up = quantize(op.forward(x0) + noise, [0.0])
        for std in (0.05, 1.0, 10.0):
            _, info = QCSPlus(op, (lo, up), 0.05).score(x0, mean_scale=1.0, std=std, return_info=True)
            assert info.converged.all() and (info.change < 1e-5).all(), (std, info)
            assert (info.iterations <= 40).all()
        _, info = QCSPlus(op, (lo, up), 0.05, ep_iters=1).score(x0, mean_scale=1.0, std=1.0, return_info=True)
        assert (info.iterations == 1).all() and not info.converged.any()


def test_ep_float32_matches_float64():
    op = correlated_matrix(32, 48, 0.6, seed=2)
    x0 = torch.randn(4, 48, generator=torch.Generator().manual_seed(1), dtype=D64)
    lo, up = quantize(op.forward(x0), [-0.5, 0.0, 0.5])
    x = x0 + 0.3 * torch.randn(4, 48, generator=torch.Generator().manual_seed(2), dtype=D64)
    ep = QCSPlus(op, (lo, up), 0.1, tol=1e-6)
    s64 = ep.score(x, mean_scale=0.9, std=0.4)
    s32 = ep.score(x.float(), mean_scale=0.9, std=0.4)
    assert s32.dtype == torch.float32
    torch.testing.assert_close(s32.double(), s64, rtol=1e-4, atol=1e-4 * s64.abs().max().item())


def test_ep_score_at_uses_the_sde_marginals():
    M = gaussian_matrix(6, 8, 3)
    lo, up, x = problem(M, [0.0], 0.1, 4)
    ep = QCSPlus(M, (lo, up), 0.1)
    for sde in (VESDE(0.01, 10.0), VPSDE()):
        t = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=D64)
        mx, _ = sde.mean_coeffs(t)
        torch.testing.assert_close(ep.score_at(sde, x, t), ep.score(x, mean_scale=mx, std=sde.marginal_std(t)))


def test_ep_bad_input():
    M = gaussian_matrix(4, 6, 0)
    lo, up, x = problem(M, [0.0], 0.1, 0)
    with pytest.raises(ValueError, match="A must"):
        QCSPlus("A", (lo, up), 0.1)
    with pytest.raises(ValueError, match="y_bins"):
        QCSPlus(M, lo, 0.1)
    with pytest.raises(ValueError, match="lower < upper"):
        QCSPlus(M, (up, lo), 0.1)
    for kw, name in (({"ep_iters": 0}, "ep_iters"), ({"damping": 1.0}, "damping"), ({"damping": -0.1}, "damping"),
                     ({"tol": -1.0}, "tol"), ({"tol": float("nan")}, "tol"), ({"min_precision": -1}, "min_precision")):
        with pytest.raises(ValueError, match=name):
            QCSPlus(M, (lo, up), 0.1, **kw)
    with pytest.raises(ValueError, match="sigma_y"):
        QCSPlus(M, (lo, up), -0.1)
    ep = QCSPlus(M, (lo, up), 0.1)
    with pytest.raises(ValueError, match="batch size"):
        ep.score(x[:3], mean_scale=1.0, std=0.5)
    with pytest.raises(ValueError, match="mean_scale"):
        ep.score(x, mean_scale=0.0, std=0.5)
    with pytest.raises(ValueError, match="std"):
        ep.score(x, mean_scale=1.0, std=-0.5)
    with pytest.raises(ValueError, match="measurements"):
        QCSPlus(M, (lo[:, :3], up[:, :3]), 0.1).score(x, mean_scale=1.0, std=0.5)


# ---------------------------------------------------------------------------------------------
# matrices
def test_ill_conditioned_matrix_has_the_stated_svd():
    op = ill_conditioned_matrix(20, 30, 1000.0, seed=3)
    U, S, Vh = op._U, op._S, op._Vh
    torch.testing.assert_close(U @ U.T, torch.eye(20, dtype=D64), rtol=0, atol=1e-13)
    torch.testing.assert_close(Vh @ Vh.T, torch.eye(30, dtype=D64), rtol=0, atol=1e-13)
    torch.testing.assert_close(S[:-1] / S[1:], torch.full((19,), 1000.0 ** (1 / 20), dtype=D64), rtol=1e-14, atol=0)
    torch.testing.assert_close((S * S).sum(), torch.tensor(30.0, dtype=D64), rtol=1e-14, atol=0)
    torch.testing.assert_close(op.matrix, U @ torch.diag(S) @ Vh[:20], rtol=0, atol=1e-13)
    torch.testing.assert_close(torch.linalg.svdvals(op.matrix), S, rtol=1e-12, atol=0)
    x = torch.randn(3, 30, dtype=D64)
    torch.testing.assert_close(op.pinv(op.forward(x)), x @ (torch.linalg.pinv(op.matrix) @ op.matrix).T,
                               rtol=1e-9, atol=1e-11)
    assert torch.equal(ill_conditioned_matrix(20, 30, 1000.0, seed=3).matrix, op.matrix)
    assert not torch.equal(ill_conditioned_matrix(20, 30, 1000.0, seed=4).matrix, op.matrix)


def test_correlated_matrix_is_toeplitz_square_roots_around_a_gaussian():
    R = toeplitz_sqrt(7, 0.8)
    i = torch.arange(7, dtype=D64)
    torch.testing.assert_close(R @ R, 0.8 ** (i[:, None] - i[None, :]).abs(), rtol=0, atol=1e-13)
    torch.testing.assert_close(R, R.T, rtol=0, atol=0)
    op = correlated_matrix(10, 16, 0.8, seed=5)
    H = torch.randn(10, 16, generator=torch.Generator().manual_seed(5), dtype=D64) / math.sqrt(10)
    torch.testing.assert_close(op.matrix, toeplitz_sqrt(10, 0.8) @ H @ toeplitz_sqrt(16, 0.8), rtol=0, atol=1e-13)
    torch.testing.assert_close(op._U @ torch.diag(op._S) @ op._Vh[:10], op.matrix, rtol=0, atol=1e-13)
    torch.testing.assert_close(correlated_matrix(10, 16, 0.0, seed=5).matrix, H, rtol=0, atol=1e-15)


def test_matrix_constructors_bad_input():
    for call, name in ((lambda: ill_conditioned_matrix(0, 4, 10.0), "m"),
                       (lambda: ill_conditioned_matrix(4, 4, 0.5), "kappa"),
                       (lambda: ill_conditioned_matrix(4, 4, float("inf")), "kappa"),
                       (lambda: correlated_matrix(4, 4, 1.0), "rho"),
                       (lambda: correlated_matrix(4, 2.5, 0.1), "n"),
                       (lambda: correlated_matrix(4, 4, 0.1, seed=-1), "seed")):
        with pytest.raises(ValueError, match=name):
            call()


def test_ep_that_does_not_converge_stays_finite_and_says_so():
    """A strongly correlated matrix (rho 0.95) at std 10 with the authors' damping 0.02: EP oscillates
    (final change 2e6 measured, before keeping the smallest-change messages it reached 1e118 scores);
    the score stays finite and of the diagonal approximation's size [4.2 vs 1.07], and EPInfo
    reports the samples that did not converge [12 of 16]."""
    op = correlated_matrix(32, 64, 0.95, seed=0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(16, 64, generator=g, dtype=D64)
    lo, up = quantize(op.forward(x0) + 0.05 * torch.randn(16, 32, generator=g, dtype=D64), [0.0])
    x = 10 * torch.randn(16, 64, generator=g, dtype=D64)
    sc, info = QCSPlus(op, (lo, up), 0.05, damping=0.02).score(x, mean_scale=1.0, std=10.0, return_info=True)
    dg = quantized_likelihood_score(op, (lo, up), x, mean_scale=1.0, std=10.0, sigma_y=0.05, approx="diag")
    assert torch.isfinite(sc).all()
    assert not info.converged.all() and (info.change[~info.converged] >= 1e-5).all()
    assert sc.abs().max() < 10 * dg.abs().max()
