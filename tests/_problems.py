"""Test problems shared by several test modules (import from here, never from another test module).

* :func:`shared_vpsde`: one ``VPSDE(0.1, 20)`` (building one derives it with sympy);
* Gaussian data ``x0 ~ N(MU, S0^2)``: its exact score (:func:`gaussian_score`), the exact
  marginal (:func:`gaussian_truth`), a draw from it at ``T`` (:func:`exact_x_T`), and the exact
  output moments of a reverse sampler's chain (:func:`reverse_moments`: with an affine score the
  chain is a linear Gaussian recursion, written here from the sampler's coefficient table);
* :func:`shared_rectified_flow` and :func:`marginal_closed_forms` (hand-differentiated marginals
  of VP, VE, OUVE and rectified flow);
* operators for the inverse-problem tests: :func:`operator_cases` (one of each kind, with an
  independent forward), :func:`rank_deficient_cases`, and :func:`dense_matrices` (``A`` and its
  SVD factors materialised).  Built on first use, once per session.

Peer transcriptions shared by tests and benchmarks live in ``tests/_references.py``.
* :func:`fuzz_examples`: hypothesis settings for the fuzz suites (more examples under ``thorough``).
* :func:`dawsn_boundary_points`: where a table kernel of Dawson's integral changes row or branch.
"""
import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import settings

F64 = torch.float64
MU, S0 = 0.5, 0.3


def fuzz_examples(n: int) -> settings:
    """``n`` hypothesis examples without a deadline, or the loaded profile's count where larger
    (``SDEKIT_HYPOTHESIS_PROFILE=thorough``: 300): an explicit ``max_examples`` would override it."""
    return settings(max_examples=max(n, settings.default.max_examples), deadline=None)


@functools.lru_cache(maxsize=None)
def shared_vpsde():
    """One VPSDE(0.1, 20) for all tests that need the default VP (building one derives it with sympy)."""
    from sdekit import VPSDE

    return VPSDE(0.1, 20.0)


def gaussian_score(sde, y=None, mu=MU, s0=S0):
    """Exact score of x_t when x0 ~ N(mu, s0^2): -(x - mx mu - my y) / (mx^2 s0^2 + v)."""
    def score(x, t):
        mx, my = sde.mean_coeffs(t)
        v = sde.marginal_var(t)
        mx, my, v = (c.to(x.dtype).view(-1, *([1] * (x.dim() - 1))) for c in (mx, my, v))
        mean = mx * mu + (my * y if y is not None else 0.0)
        return -(x - mean) / (mx**2 * s0**2 + v)
    return score


def gaussian_truth(sde, t, y=0.0, mu=MU, s0=S0):
    """``(mean, var)`` of x_t for x0 ~ N(mu, s0^2) (and the scalar conditioning ``y``)."""
    mx, my = (float(c) for c in sde.mean_coeffs(t))
    return mx * mu + (my * y if sde.has_y_drift else 0.0), mx**2 * s0**2 + float(sde.marginal_var(t))


def exact_x_T(sde, shape, y=0.0, seed=0, mu=MU, s0=S0):
    """A draw from the exact marginal at T (the SDE's prior N(prior_mean, v(T)) ignores the data:
    for OUVE its mean is off by mx(T) (MU - y), DriftRec's prior mismatch)."""
    mean, var = gaussian_truth(sde, sde.T, y, mu, s0)
    g = torch.Generator().manual_seed(seed)
    return mean + math.sqrt(var) * torch.randn(shape, generator=g, dtype=F64)


def reverse_moments(sampler, y=0.0, denoise=False, mu=MU, s0=S0):
    """Exact mean/variance of a reverse sampler's output for Gaussian data (score affine in x)."""
    sde = sampler.sde
    ts = sampler.time_grid()
    t, s = ts[:-1], ts[1:]
    A, C, S, N = sampler.step_coefficients(t, s)
    mx, my = sde.mean_coeffs(t)
    V = mx**2 * s0**2 + sde.marginal_var(t)
    k, b = -1.0 / V, (mx * mu + (my * y if sde.has_y_drift else 0.0)) / V
    m, v = gaussian_truth(sde, sde.T, y, mu, s0)  # started from the exact marginal at T (no prior mismatch)
    for n in range(sampler.steps):
        m = (A[n] + S[n] * k[n]) * m + S[n] * b[n] + (C[n] * y if sde.has_y_drift else 0.0)
        v = (A[n] + S[n] * k[n]) ** 2 * v + (0.0 if denoise and n == sampler.steps - 1 else N[n] ** 2)
    return float(m), float(v)


@functools.lru_cache(maxsize=None)
def shared_rectified_flow():
    """One ``RectifiedFlow()``: ``x_t = (1 - t) x0 + t z`` on ``[0, 0.999]`` (building one derives it with sympy)."""
    from sdekit import RectifiedFlow

    return RectifiedFlow()


def marginal_closed_forms(name, t):
    """``a, m, b, a', m', b'`` of ``x_t = a x0 + m y + b z``, written from each SDE's printed marginal and
    differentiated by hand (not from sdekit): ``"VP"`` (0.1, 20), ``"VE"`` (0.01, 50), ``"OUVE"``
    (DriftRec defaults) and ``"RF"`` (rectified flow)."""
    zero = torch.zeros_like(t)
    if name == "VP":
        beta = 0.1 + t * 19.9
        a = torch.exp(-(0.1 * t + 19.9 * t * t / 2) / 2)
        b = torch.sqrt(1 - a * a)
        da = -beta / 2 * a
        return a, zero, b, da, zero, -a * da / b
    if name == "VE":
        r = 50.0 / 0.01
        b = 0.01 * r**t
        return torch.ones_like(t), zero, b, zero, zero, b * math.log(r)
    if name == "OUVE":  # gamma = 1, sigma_min 0.01, sigma_max 0.3
        r = 0.3 / 0.01
        a = torch.exp(-t)
        v = 0.01**2 * (r ** (2 * t) - torch.exp(-2 * t))
        dv = 0.01**2 * (2 * math.log(r) * r ** (2 * t) + 2 * torch.exp(-2 * t))
        return a, 1 - a, v.sqrt(), -a, a, dv / (2 * v.sqrt())
    if name == "RF":
        return 1 - t, zero, t, -torch.ones_like(t), zero, torch.ones_like(t)
    raise KeyError(name)


# ------------------------------------------------------------------- inverse-problem operators
def gaussian_kernel(width: float, radius: int, dtype=F64) -> torch.Tensor:
    """The normalised Gaussian kernel of ``width`` on ``-radius .. radius``."""
    j = torch.arange(-radius, radius + 1, dtype=dtype)
    k = torch.exp(-j**2 / (2 * width**2))
    return k / k.sum()


@functools.lru_cache(maxsize=None)
def operator_cases() -> dict:
    """One operator of each kind: ``name -> (operator, input shape per sample, an independent
    implementation of A x)`` (F.conv2d, F.avg_pool2d, scipy's dense Hadamard matrix, ...)."""
    import scipy.linalg

    from sdekit.inverse import (Colorization, Denoising, DenseOperator, Inpainting, SeparableBlur, SuperResolution,
                                WalshHadamardCS)

    g = torch.Generator().manual_seed(0)
    C, H, W = 3, 8, 6
    mask2 = torch.rand(H, W, generator=g) > 0.5
    mask3 = torch.rand(C, H, W, generator=g) > 0.3
    kr, kc = gaussian_kernel(1.0, 2), torch.tensor([0.5, 0.3, 0.2, 0.1], dtype=F64)  # odd and even lengths
    # Dense matrices scaled to spectral norm 1, like the image operators (whose S <= 1).
    unit = lambda M: M / torch.linalg.matrix_norm(M, 2)  # noqa: E731
    A = unit(torch.randn(10, 24, generator=g, dtype=F64))
    A_tall = unit(torch.randn(30, 24, generator=g, dtype=F64))
    # rank 8 with an exact null space (zero rows and columns), not merely rounding-level S
    A_rankdef = torch.zeros(12, 24, dtype=F64)
    A_rankdef[2:10, 5:21] = unit(torch.randn(8, 16, generator=g, dtype=F64))
    rows = torch.tensor([0, 3, 5, 17, 30, 47])
    Hd = torch.as_tensor(scipy.linalg.hadamard(H * 8), dtype=F64) / math.sqrt(H * 8)

    def conv(x):
        w = (kc[:, None] * kr[None, :]).expand(C, 1, -1, -1).to(x.dtype)
        return F.conv2d(x, w, padding="same", groups=C).flatten(1)

    return {
        "denoising": (Denoising(), (C, H, W), lambda x: x.flatten(1)),
        "denoising_n": (Denoising(C * H * W), (C, H, W), lambda x: x.flatten(1)),
        "inpainting_2d_mask": (Inpainting(mask2, C), (C, H, W), lambda x: x[:, mask2.expand(C, H, W)]),
        "inpainting_3d_mask": (Inpainting(mask3.to(torch.uint8), C), (C, H, W), lambda x: x[:, mask3]),
        "superres_2": (SuperResolution(2, C, (H, W)), (C, H, W), lambda x: F.avg_pool2d(x, 2).flatten(1)),
        "superres_4x3": (SuperResolution(4, 2, (8, 12)), (2, 8, 12), lambda x: F.avg_pool2d(x, 4).flatten(1)),
        "colorization": (Colorization(C), (C, H, W),
                         lambda x: F.conv2d(x, torch.full((1, C, 1, 1), 1 / C, dtype=x.dtype)).flatten(1)),
        "colorization_sized": (Colorization(C, (H, W)), (C, H, W),
                               lambda x: F.conv2d(x, torch.full((1, C, 1, 1), 1 / C, dtype=x.dtype)).flatten(1)),
        "blur": (SeparableBlur(kr, kc, C, (H, W)), (C, H, W), conv),
        "hadamard": (WalshHadamardCS(2, (H, 8), rows), (2, H, 8),
                     lambda x: (x.reshape(x.shape[0], 2, -1) @ Hd[rows].T.to(x.dtype)).flatten(1)),
        "dense_wide": (DenseOperator(A), (24,), lambda x: x @ A.T.to(x.dtype)),
        "dense_tall": (DenseOperator(A_tall), (24,), lambda x: x @ A_tall.T.to(x.dtype)),
        "dense_rank_deficient": (DenseOperator(A_rankdef), (24,), lambda x: x @ A_rankdef.T.to(x.dtype)),
    }


@functools.lru_cache(maxsize=None)
def rank_deficient_cases() -> dict:
    """Operators whose zero singular values come out of the SVD at rounding level (1e-17), not as 0:
    ``name -> (operator, input shape per sample, an SVD-free A^+ or None)``."""
    from sdekit.inverse import DenseOperator, Inpainting, SeparableBlur

    g = torch.Generator().manual_seed(11)
    box = torch.ones(3, dtype=F64) / 3  # singular whenever 3 divides N + 1
    Bf, Cf = torch.randn(9, 4, generator=g, dtype=F64), torch.randn(4, 12, generator=g, dtype=F64)
    return {
        "box_blur_8x5": (SeparableBlur(box, box, 2, (8, 5)), (2, 8, 5), None),
        "box_blur_rows_only": (SeparableBlur(box, torch.ones(1, dtype=F64), 1, (4, 11)), (1, 4, 11), None),
        "dense_rank_4_wide": (DenseOperator((Bf @ Cf)[:7]), (12,), None),
        # A = B C with full-rank factors: A^+ = C^T (C C^T)^-1 (B^T B)^-1 B^T, no SVD involved
        "dense_rank_4_tall": (DenseOperator(Bf @ Cf), (12,),
                              Cf.T @ torch.linalg.solve(Cf @ Cf.T, torch.linalg.solve(Bf.T @ Bf, Bf.T))),
        "inpainting_nothing_kept": (Inpainting(torch.zeros(3, 4), 2), (2, 3, 4), None),
    }


def dense_matrices(op, shape, dtype=F64):
    """Materialise A (via forward), U, S, V (via the implicit factors) as dense matrices."""
    n = math.prod(shape)
    eye = torch.eye(n, dtype=dtype)
    A = op.forward(eye.reshape(n, *shape)).T
    m = A.shape[0]
    V = op.V(eye).T
    Vt = op.Vt(eye.reshape(n, *shape)).T
    U = op.U(torch.eye(m, dtype=dtype)).T
    Ut = op.Ut(torch.eye(m, dtype=dtype)).T
    S = op.singulars(n)
    return A, U, Ut, S, V, Vt


def dawsn_boundary_points(dtype, step, rows, split):
    """Where a table kernel's lookup or branch changes, in ``dtype``, with both signs: each grid point
    ``i step`` and each row boundary ``(i + 1/2) step`` (where the row, and in the vector kernels the
    register holding it, switch) with their 3 neighbours on each side, the split between table and
    tail likewise, and the special values."""
    npdt = np.float32 if dtype == torch.float32 else np.float64
    pts = []
    for c in [i * step for i in range(rows)] + [(i + 0.5) * step for i in range(rows)] + [split]:
        v = lo = npdt(c)
        for _ in range(4):
            pts += [v, lo]
            v, lo = np.nextafter(v, npdt(np.inf)), np.nextafter(lo, npdt(0))
    fin = np.finfo(npdt)
    pts += [fin.tiny, fin.smallest_subnormal, fin.max, np.inf, np.nan, 1e-12, 1e12]
    x = torch.from_numpy(np.unique(np.array(pts, dtype=npdt)))
    return torch.cat([x, -x])
