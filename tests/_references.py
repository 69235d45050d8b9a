"""Peers' code transcribed for the tests (and benchmarks that time a peer): shared here so that no
test module imports another.

* QCS-SGM / QCS-SGM+ (Meng & Kabashima): the diagonal-approximation and EP likelihood scores;
* sgmse's (and score_sde's) annealed Langevin corrector update.
"""
import math

import numpy as np
import torch


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
def sgmse_ald_update(x, t, y, score_fn, std, snr, noises):
    """sgmse ``AnnealedLangevinDynamics.update_fn`` (``sampling/correctors.py``), ``n_steps = len(noises)``
    and score_sde's with ``std`` times ``sqrt(alpha)`` folded in (its only difference)."""
    for noise in noises:
        grad = score_fn(x, t, y)
        step_size = (snr * std) ** 2 * 2
        x_mean = x + step_size[:, None, None, None] * grad
        x = x_mean + noise * torch.sqrt(step_size * 2)[:, None, None, None]
    return x, x_mean
