"""1-bit compressed sensing with the QCS-SGM likelihood score, on a Gaussian-mixture prior.

QCS-SGM (Meng & Kabashima, ICLR 2023) samples ``p(x0 | y)`` for quantized measurements
``y = Q(A x0 + n)``, ``n ~ N(0, sigma^2 I)``, by running a reverse diffusion whose score is

    score(x_t, t) = grad log p_t(x_t)  +  A^T G(x_t, t)            (prior + quantized likelihood)

where ``G_m`` is the mean of a standard normal truncated to the standardised bin of
``y_m`` (``sdekit.inverse.quantized_likelihood_score_at``).  Here ``Q`` is 1 bit: only the
sign of each noisy measurement is kept (``quantize(z, thresholds=[0.])``).  ``--method``
picks the likelihood score (several may be given, each gets a row):

  * ``qcs``: QCS-SGM, exact for row-orthogonal ``A`` (``approx="exact"``);
  * ``qcs-diag``: QCS-SGM with the authors' diagonal approximation of ``A A^T`` (any ``A``);
  * ``qcs-plus``: QCS-SGM+ (Meng & Kabashima, AAAI 2024), expectation propagation over the
    full ``A A^T`` (``sdekit.inverse.QCSPlus``).

The signals are 8 x 8 patches from the three-component Gaussian mixture of
``examples/_mixture.py`` (flat / horizontal edge / vertical edge), whose prior score under
any linear SDE is exact, so no network is trained and what is measured is the likelihood
approximation plus the sampler.  ``A`` keeps ``--measurements-fraction`` of the rows of a
random orthogonal matrix (``--matrix orthogonal``, default) or of the orthonormal
Walsh-Hadamard transform (``sdekit.inverse.WalshHadamardCS``): a random subset of its rows
(``--matrix hadamard``) or those of lowest sequency (``--matrix hadamard-low``); or it is one
of the QCS-SGM+ paper's general matrices: i.i.d. Gaussian (``--matrix gaussian``),
ill-conditioned with condition number ``~ --kappa`` (``--matrix ill-conditioned``,
``sdekit.inverse.ill_conditioned_matrix``) or row- and column-correlated with ``--rho``
(``--matrix correlated``, ``sdekit.inverse.correlated_matrix``).  The general matrices are
scaled to mean squared row norm 1, as the orthonormal rows have.

1-bit measurements lose the overall scale of ``A x0`` (only the noise level and the prior
pin it down), so the main metric is the **NMSE after optimal non-negative scaling**,

    NMSE_s(x) = min_{c >= 0} ||c x - x0||^2 / ||x0||^2 = 1 - max(cos(x, x0), 0)^2,

per sample, averaged over samples (0: right direction; 1: orthogonal or opposite).
Also printed: the cosine, the plain NMSE ``||x - x0||^2 / ||x0||^2`` (no rescaling; the
back-projection has no meaningful scale, so its plain NMSE is shown with the optimal scale
applied), the fraction of the measured signs that ``sign(A x)`` reproduces (the clean
``x0`` itself reproduces only about 96 %: the noise flips the rest), and the energy ratio
``sum ||x||^2 / sum ||x0||^2`` over all samples.  For exact posterior samples the energy
ratio is 1 up to Monte Carlo error (averaged over measurements, posterior samples have the
prior's law), so it checks the sampler's scale without knowing the posterior.

Compared with:
  * the prior mean (no measurement);
  * the back-projection ``A^T y`` (optimally scaled by the metric itself);
  * "dequantized DMPS": replace each sign by the Gaussian-approximate conditional mean
    ``E[(A x0 + n)_m | sign]`` under the prior's mean and covariance (Bussgang-style
    dequantisation) and use DMPS's Gaussian likelihood score with the conditional
    variance folded into an effective noise std, with the same prior score and solver;
  * with ``--sir DRAWS``, the **exact posterior**: one sample per patch by sampling-importance-
    resampling (``sir_posterior``) from ``DRAWS`` prior draws, weighted by the exact quantized
    likelihood ``prod_m Phi(b_m) - Phi(a_m)`` (``log_bin_probability``, stable in the tails); its
    effective sample size per patch is printed.  It is affordable on 4 x 4 patches (``--size 4``,
    ``d = 16``, 8 signs); at ``d = 64`` with 32 signs a few hundred thousand prior draws leave some
    patches with an effective sample size near 1 (examples/README.md).

    python examples/qcs_sgm.py                      # seconds on a CPU
    python examples/qcs_sgm.py --matrix ill-conditioned --kappa 1000 --method qcs-diag qcs-plus
    python examples/qcs_sgm.py --steps 500 --samples 256 --measurements-fraction 0.25 --no-figure
    python examples/qcs_sgm.py --size 4 --sir 400000 --matrix correlated     # with the exact posterior
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
import time

import torch
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _figures import add_output_options, example_parser, finish_run, pyplot, save_figure  # noqa: E402
from _mixture import patch_mixture  # noqa: E402

from sdekit import VESDE, VPSDE, EulerMaruyama, PredictorCorrector, ReverseDiffusion  # noqa: E402
from sdekit.solvers import AnnealedLangevin  # noqa: E402
from sdekit.inverse import (DenseOperator, QCSPlus, WalshHadamardCS, correlated_matrix,  # noqa: E402
                            ill_conditioned_matrix, likelihood_score_at, posterior_score_fn, quantize,
                            quantized_likelihood_score_at,
                            truncated_normal_mean)
from sdekit.inverse.hadamard import sylvester_hadamard  # noqa: E402

SIZE = 8                       # default patch side: SIZE x SIZE, one channel (d = 64); --size
SIR_CHUNK = 4096               # prior draws per chunk of the SIR reference
SOLVERS = ("reverse_diffusion", "euler_maruyama", "pc", "annealed_langevin")
ALD_STEPS_EACH, ALD_STEP_LR = 5, 2e-5   # annealed Langevin: steps per level, NCSNv2's step_lr
ROW_ORTHOGONAL = ("orthogonal", "hadamard", "hadamard-low")
MATRICES = ROW_ORTHOGONAL + ("gaussian", "ill-conditioned", "correlated")
METHODS = {"qcs": "QCS-SGM (prior + quantized score)",
           "qcs-diag": "QCS-SGM diag (prior + diag score)",
           "qcs-plus": "QCS-SGM+ (prior + EP score)"}


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(__doc__, "torch device for the samplers",
                       epilog="Metrics and baselines: see the module docstring.")
    p.add_argument("--steps", type=int, default=100, help="reverse steps per sampler (default: 100)")
    p.add_argument("--samples", type=int, default=64,
                   help="number of signals, each measured once and restored once (default: 64)")
    p.add_argument("--measurements-fraction", type=float, default=0.5,
                   help="sign measurements per pixel, m / d in (0, 1] (default: 0.5, i.e. 32 bits per patch)")
    p.add_argument("--noise", type=float, default=0.05,
                   help="std of the noise added before the sign (default: 0.05)")
    p.add_argument("--matrix", "--operator", dest="operator", default="orthogonal", choices=MATRICES,
                   help="rows of a random orthogonal matrix or of the Walsh-Hadamard transform, or a general "
                        "matrix: i.i.d. Gaussian, ill-conditioned (--kappa), correlated (--rho) (default: orthogonal)")
    p.add_argument("--kappa", type=float, default=1000.0,
                   help="condition number scale of --matrix ill-conditioned: neighbouring singular values have "
                        "ratio kappa^(1/m) (default: 1000)")
    p.add_argument("--rho", type=float, default=0.8,
                   help="correlation of --matrix correlated: A = R_L H R_R, R Toeplitz rho^|i-j| roots (default: 0.8)")
    p.add_argument("--ep-iters", type=int, default=50,
                   help="QCS-SGM+: cap on EP iterations per score evaluation "
                        "(default: 50; the authors' sampler uses 3)")
    p.add_argument("--ep-damping", type=float, default=0.5,
                   help="QCS-SGM+: EP damping, the weight of the old message (default: 0.5; the authors' 0.02 "
                        "lets EP diverge on some correlated matrices at large noise)")
    p.add_argument("--match-prior-norm", action="store_true",
                   help="rescale every likelihood score to the prior score's norm per sample (the QCS-SGM+ "
                        "authors' rule, sdekit.inverse.posterior_score_fn); needed by EP on ill-conditioned A")
    p.add_argument("--method", nargs="+", choices=tuple(METHODS), default=None,
                   help="likelihood score(s): qcs (row-orthogonal A only), qcs-diag, qcs-plus "
                        "(default: qcs for row-orthogonal A, else qcs-diag and qcs-plus)")
    p.add_argument("--sde", default="ve", choices=("ve", "vp"),
                   help="VESDE(sigma_min=0.01, sigma_max=10) or VPSDE() (default: ve)")
    p.add_argument("--solver", default="reverse_diffusion", choices=SOLVERS,
                   help="reverse_diffusion, euler_maruyama, pc (reverse diffusion + Langevin), or annealed_langevin "
                        "(NCSNv2, VE only: steps/5 levels of 5 steps) (default: reverse_diffusion)")
    p.add_argument("--size", type=int, default=SIZE, choices=(4, 8),
                   help="patch side, d = size^2 (default: 8; 4 makes the --sir reference affordable)")
    p.add_argument("--sir", type=int, default=0, metavar="DRAWS",
                   help="add the exact-posterior reference: sampling-importance-resampling from DRAWS prior draws "
                        "with the exact quantized likelihood, effective sample size reported (default: 0, off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the operator and the samplers (default: 0)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default: 1; the tensors are tiny, more threads only contend)")
    add_output_options(p, "qcs_sgm.png", progress="progress bar")
    args = p.parse_args(argv)
    for name in ("steps", "samples", "threads", "ep_iters"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.sir < 0:
        p.error("--sir must be >= 0")
    if not 0 < args.measurements_fraction <= 1:
        p.error("--measurements-fraction must be in (0, 1]")
    if not args.noise > 0:
        p.error("--noise must be > 0")
    if args.solver == "annealed_langevin" and args.sde != "ve":
        p.error("--solver annealed_langevin runs on the VE noise ladder: use --sde ve")
    if not 0 <= args.ep_damping < 1:
        p.error("--ep-damping must be in [0, 1)")
    if not args.kappa >= 1:
        p.error("--kappa must be >= 1")
    if not 0 <= args.rho < 1:
        p.error("--rho must be in [0, 1)")
    if args.method is None:
        args.method = ["qcs"] if args.operator in ROW_ORTHOGONAL else ["qcs-diag", "qcs-plus"]
    if "qcs" in args.method and args.operator not in ROW_ORTHOGONAL:
        p.error(f"--method qcs needs a row-orthogonal --matrix ({', '.join(ROW_ORTHOGONAL)}); "
                "use qcs-diag or qcs-plus")
    return args


def low_sequency_rows(m: int, size: int = SIZE) -> torch.Tensor:
    """The ``m`` Walsh-Hadamard rows of lowest 2-D sequency (sign changes along rows plus
    along columns; ties by index).  ``WalshHadamardCS`` transforms a ``size x size`` patch as
    ``H X H``, so its coefficient ``size i + j`` pairs row ``i`` of ``H`` with column ``j``."""
    h = sylvester_hadamard(size)
    seq = (h[:, 1:] != h[:, :-1]).sum(1)                      # sign changes of each row of H
    total = (seq[:, None] + seq[None, :]).reshape(-1)
    order = sorted(range(size * size), key=lambda r: (int(total[r]), r))
    return torch.tensor(sorted(order[:m]))


def measurement_operator(kind: str, d: int, m: int, seed: int, kappa: float = 1000.0, rho: float = 0.8):
    """``m`` orthonormal rows: of a Haar-random orthogonal matrix (a dense matrix; sdekit
    checks that its rows are orthogonal) or of the Walsh-Hadamard transform; or a general
    ``m x d`` matrix scaled to mean squared row norm 1 (``d = size^2``)."""
    size = math.isqrt(d)
    if kind in ("gaussian", "ill-conditioned", "correlated"):
        if kind == "gaussian":
            A = torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        elif kind == "ill-conditioned":
            A = ill_conditioned_matrix(m, d, kappa, seed=seed).matrix
        else:
            A = correlated_matrix(m, d, rho, seed=seed).matrix
        return DenseOperator(A * math.sqrt(m / float((A * A).sum())))
    if kind == "hadamard":
        return WalshHadamardCS(1, size, m, seed=seed)
    if kind == "hadamard-low":
        return WalshHadamardCS(1, size, low_sequency_rows(m, size))
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))          # Haar measure
    return DenseOperator(q[:m].contiguous())


def dequantize(prior, op, lower, upper, noise: float):
    """Gaussian (Bussgang-style) dequantisation of the bins, for the DMPS-style baseline.

    Under the prior's mean ``mu`` and covariance ``Sigma``, ``z_m = (A x0 + n)_m`` is taken as
    ``N(a_m^T mu, a_m^T Sigma a_m + noise^2)``; each bin becomes ``E[z_m | bin]`` and the
    average of ``Var[z_m | bin]`` becomes an effective Gaussian noise variance.  Returns
    ``(y_deq (B, m), sigma_eff)``.
    """
    d = prior.d
    A = op(torch.eye(d, dtype=torch.float64).reshape(d, 1, math.isqrt(d), math.isqrt(d))).T   # (m, d)
    w, mu = prior.log_w.exp(), prior.mean()
    second = (w[:, None, None] * (prior.covs + prior.means[:, :, None] * prior.means[:, None, :])).sum(0)
    cov = second - mu[:, None] * mu[None, :]
    mean_z = A @ mu
    std_z = (torch.einsum("md,de,me->m", A, cov, A) + noise**2).sqrt()
    a, b = (lower - mean_z) / std_z, (upper - mean_z) / std_z
    r = truncated_normal_mean(a, b)
    # variance of N(0, 1) truncated to (a, b) when one end is infinite (1 bit): 1 + c R - R^2,
    # c the finite end (the a phi(a) - b phi(b) term over the bin's mass)
    c = torch.where(torch.isinf(a), b, a)
    var = 1 + c * r - r * r
    return mean_z + std_z * r, math.sqrt(float((std_z**2 * var).mean()))


def log_bin_probability(z: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, noise: float) -> torch.Tensor:
    """``log P(lower <= z + n < upper) = log(Phi(b) - Phi(a))``, ``a, b = (lower - z, upper - z) / noise``,
    ``n ~ N(0, noise^2)``: the exact quantized likelihood of one measurement, stable in both tails.

    A bin above the mean (``a > 0``) is mirrored to ``(-b, -a)`` (same mass), so the upper end
    ``hi`` is where ``Phi`` is not close to 1; then ``log Phi(hi) + log(1 - Phi(lo) / Phi(hi))``
    with ``log_ndtr`` (accurate far into the lower tail) and ``log(-expm1(.))``.
    """
    a, b = (lower - z) / noise, (upper - z) / noise
    flip = a > 0
    lo, hi = torch.where(flip, -b, a), torch.where(flip, -a, b)
    log_hi = torch.special.log_ndtr(hi)
    return log_hi + torch.log(-torch.expm1(torch.special.log_ndtr(lo) - log_hi))


def sir_posterior(prior, op, lower, upper, noise: float, draws: int, gen: torch.Generator):
    """Exact posterior samples by sampling-importance-resampling, one per measurement.

    ``x^(j) ~ p(x0)`` (``draws`` of them, shared by all measurements), weights
    ``w_ij = p(y_i | x^(j)) = prod_m (Phi(b_im) - Phi(a_im))`` (:func:`log_bin_probability` of
    ``A x^(j)``), and ``x^(J_i)`` with ``P(J_i = j) = w_ij / sum_j w_ij``: exact as ``draws -> inf``
    for a fixed ``y_i``, the error governed by the effective sample size
    ``ESS_i = (sum_j w_ij)^2 / sum_j w_ij^2``.  The draws come in chunks of ``SIR_CHUNK`` and
    ``J_i`` is kept by weighted reservoir sampling (a chunk's pick replaces the current one with
    probability chunk weight / running total).  Returns ``(samples (N, d), ESS (N,))``.
    """
    N, size = lower.shape[0], math.isqrt(prior.d)
    picked = torch.zeros(N, prior.d, dtype=torch.float64)
    log_total = torch.full((N,), -math.inf, dtype=torch.float64)
    log_total_sq = torch.full((N,), -math.inf, dtype=torch.float64)
    for start in range(0, draws, SIR_CHUNK):
        x = prior.sample(min(SIR_CHUNK, draws - start), gen)                          # (c, d)
        z = op(x.reshape(-1, 1, size, size))                                          # (c, m)
        log_w = log_bin_probability(z[None], lower[:, None], upper[:, None], noise).sum(-1)   # (N, c)
        log_chunk = torch.logsumexp(log_w, 1)
        pick = torch.multinomial(torch.softmax(log_w, 1), 1, generator=gen).squeeze(1)
        log_new = torch.logaddexp(log_total, log_chunk)
        take = torch.rand(N, generator=gen, dtype=torch.float64) < torch.exp(log_chunk - log_new)
        picked[take] = x[pick[take]]
        log_total, log_total_sq = log_new, torch.logaddexp(log_total_sq, torch.logsumexp(2 * log_w, 1))
    return picked, torch.exp(2 * log_total - log_total_sq)


def metrics(x: torch.Tensor, x0: torch.Tensor, op, y_sign: torch.Tensor, rescale: bool = False) -> dict:
    """Per-sample metrics, averaged (module docstring); ``rescale``: apply the optimal scale
    before the plain NMSE too (for estimates with no scale of their own)."""
    x = x.reshape(x0.shape).to(torch.float64)
    cos = (x * x0).sum(1) / (x.norm(dim=1) * x0.norm(dim=1)).clamp_min(1e-300)
    if rescale:
        x = x * ((x * x0).sum(1) / (x * x).sum(1).clamp_min(1e-300)).clamp_min(0)[:, None]
    nmse = ((x - x0) ** 2).sum(1) / (x0**2).sum(1)
    size = math.isqrt(x0.shape[1])
    signs = torch.where(op(x.reshape(-1, 1, size, size)) >= 0, 1.0, -1.0)   # the quantizer's convention
    nmse_s = (1 - cos.clamp_min(0) ** 2).clamp_min(0)
    return {"nmse_scaled": float(nmse_s.mean()), "nmse_scaled_max": float(nmse_s.max()),
            "cosine": float(cos.mean()), "nmse": float(nmse.mean()),
            "energy_ratio": float((x * x).sum() / (x0 * x0).sum()),
            "signs": float((signs == y_sign).double().mean())}


def make_sde(name: str):
    return VESDE(sigma_min=0.01, sigma_max=10.0) if name == "ve" else VPSDE()


def make_solver(name: str, sde, steps: int):
    if name == "euler_maruyama":
        return EulerMaruyama(sde, steps)
    if name == "pc":
        return PredictorCorrector(sde, steps, predictor="reverse_diffusion", corrector="langevin")
    if name == "annealed_langevin":   # the papers' sampler: steps // 5 levels of 5 Langevin steps
        return AnnealedLangevin(sde, max(1, steps // ALD_STEPS_EACH), ALD_STEPS_EACH, ALD_STEP_LR)
    return ReverseDiffusion(sde, steps)


def main(argv=None) -> dict:
    """Measure, restore, print the table (unless ``--quiet``) and return the numbers."""
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    N, d = args.samples, args.size**2
    m = max(1, round(args.measurements_fraction * d))
    gen = torch.Generator().manual_seed(args.seed)
    shape = (N, 1, args.size, args.size)

    prior = patch_mixture(args.size)
    x0 = prior.sample(N, gen)                                               # (N, d) float64
    op = measurement_operator(args.operator, d, m, args.seed, args.kappa, args.rho)
    z = op(x0.reshape(shape)) + args.noise * torch.randn(N, m, generator=gen, dtype=torch.float64)
    lower, upper = quantize(z, torch.tensor([0.0]))                         # bins [-inf, 0) and [0, inf)
    y_sign = torch.where(lower == 0, 1.0, -1.0)                             # the 1-bit measurement

    sde = make_sde(args.sde)
    prior_score = prior.to(device).score_fn(sde)
    bins = (lower.to(device), upper.to(device))
    y_deq, sigma_eff = dequantize(prior, op, lower, upper, args.noise)
    y_deq = y_deq.to(device)

    ep = QCSPlus(op, bins, args.noise, ep_iters=args.ep_iters, damping=args.ep_damping)

    def posterior_score(method):
        if method == "qcs-plus":
            def likelihood(x, t):
                return ep.score_at(sde, x, t)
        else:
            def likelihood(x, t):
                return quantized_likelihood_score_at(sde, op, bins, x, t, sigma_y=args.noise,
                                                     approx="diag" if method == "qcs-diag" else "exact")
        return posterior_score_fn(prior_score, likelihood, match_prior_norm="sample" if args.match_prior_norm else None)

    def dequantized_score(x, t):
        """DMPS's Gaussian pseudo-likelihood score of the dequantized measurement."""
        return prior_score(x, t) + likelihood_score_at(sde, op, y_deq, x, t, sigma_y=sigma_eff)

    runs = [(METHODS[m], posterior_score(m)) for m in args.method]
    runs.append(("dequantized DMPS (Gaussian score)", dequantized_score))
    rows, restored = {}, {}
    for name, score in tqdm(runs, desc="samplers", disable=args.quiet):
        solver = make_solver(args.solver, sde, args.steps)
        x = solver.sample(score, shape=shape, seed=args.seed, dtype=torch.float64, device=device)
        restored[name] = x.detach().cpu().reshape(N, d)
        rows[name] = metrics(restored[name], x0, op, y_sign)
    ess = None
    if args.sir:
        restored["exact posterior (SIR)"], ess = sir_posterior(prior, op, lower, upper, args.noise, args.sir,
                                                               torch.Generator().manual_seed(args.seed + 1))
        rows["exact posterior (SIR)"] = metrics(restored["exact posterior (SIR)"], x0, op, y_sign)
    rows["prior mean"] = metrics(prior.mean().expand(N, d), x0, op, y_sign)
    rows["back-projection A^T y (scaled)"] = metrics(op.adjoint(y_sign), x0, op, y_sign, rescale=True)
    rows["clean x0 (reference)"] = metrics(x0, x0, op, y_sign)
    restored["prior mean"] = prior.mean().expand(N, d)
    restored["back-projection A^T y (scaled)"] = op.adjoint(y_sign)

    out = {"rows": rows, "m": m, "d": d, "sigma_eff": sigma_eff, "sir_ess": ess, "config": vars(args)}
    return finish_run(out, args, start, lambda: figure(args, out, x0, restored), report)


def report(out: dict, args) -> None:
    matrix = {"ill-conditioned": f"ill-conditioned, kappa {args.kappa:g}",
              "correlated": f"correlated, rho {args.rho:g}"}.get(args.operator, args.operator)
    print(f"\n1-bit CS: {args.samples} patches of {args.size}x{args.size} (d = {out['d']}), m = {out['m']} signs each "
          f"({matrix} matrix), noise {args.noise} before the sign; {args.sde.upper()}SDE, {args.solver}, "
          f"{args.steps} steps, seed {args.seed}")
    print("  NMSE_s: NMSE after the optimal non-negative scale (= 1 - cos^2), per sample: mean and worst;\n"
          "  NMSE: unscaled; energy: sum ||x||^2 / sum ||x0||^2 (exact posterior samples: 1 up to Monte Carlo);\n"
          "  signs kept: fraction of the measured signs that sign(A x) reproduces; "
          f"dequantized DMPS's effective noise std {out['sigma_eff']:.3f}")
    print(f"  {'method':36s} {'NMSE_s':>7s} {'worst':>6s} {'cosine':>7s} {'NMSE':>7s} {'energy':>7s} {'signs kept':>11s}")
    for name, r in out["rows"].items():
        print(f"  {name:36s} {r['nmse_scaled']:7.3f} {r['nmse_scaled_max']:6.3f} {r['cosine']:7.3f} "
              f"{r['nmse']:7.3f} {r['energy_ratio']:7.3f} {r['signs']:11.3f}")
    if out["sir_ess"] is not None:
        ess = out["sir_ess"]
        print(f"  exact posterior (SIR): one draw per patch resampled from {args.sir} prior draws; effective sample "
              f"size per patch: min {float(ess.min()):.1f}, median {float(ess.median()):.1f}")
    if out["figure"]:
        print(f"figure: {out['figure']}")
    print(f"{out['seconds']:.1f} s")


def figure(args, out, x0, restored) -> str | None:
    """Six patches: clean, each estimate (optimally scaled); ``None`` without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    n = min(6, x0.shape[0])
    cols = [("clean x0", x0)] + list(restored.items())
    fig, axes = plt.subplots(n, len(cols), figsize=(2 * len(cols), 2 * n), squeeze=False, layout="constrained")
    for j, (title, est) in enumerate(cols):
        est = est.to(torch.float64)
        scale = ((est * x0).sum(1) / (est * est).sum(1).clamp_min(1e-300)).clamp_min(0)
        for i in range(n):
            ax = axes[i, j]
            img = est[i] * (scale[i] if j else 1.0)
            ax.imshow(img.reshape(args.size, args.size).numpy(), cmap="gray", vmin=-1, vmax=1)
            if j:
                c = float((est[i] @ x0[i]) / (est[i].norm() * x0[i].norm()).clamp_min(1e-300))
                ax.set_title(f"cos {c:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        label = textwrap.fill(title, 24)
        axes[0, j].set_title(label if j == 0 else f"{label}\n{axes[0, j].get_title()}", fontsize=8)
    fig.suptitle(f"1-bit CS, {out['m']} of {out['d']} signs ({args.operator}); estimates scaled optimally",
                 fontsize=10)
    return save_figure(fig, args.out, "qcs_sgm.png")


if __name__ == "__main__":
    main()
