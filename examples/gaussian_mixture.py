"""Gaussian-mixture "images": exact scores, restored with DriftRec's SDEs and with DMPS.

The data are 4 x 4 patches from a three-component Gaussian mixture (flat, horizontal
edge, vertical edge; ``examples/_mixture.py``).  For such a prior the score of the
marginal of *any* linear SDE is exact in closed form, and so is the posterior for a
linear-Gaussian measurement, so every number printed here is a sampler's error against
exact statistics: no network, no training, nothing downloaded.

(a) DriftRec (Welker, Chapman, Gerkmann 2022).  The corruption is a 3 x 3 binomial blur
    plus noise, ``y = B x0 + N(0, 0.05^2 I)``.  A DriftRec model learns the score of
    ``x_t = mx x0 + my y + std z`` with ``x0 ~ p(x0 | y)``: the posterior is a Gaussian
    mixture, so that conditional score is exact here (``score_fn`` = what a perfectly
    trained network would return).  OUVE and TSDVE are integrated with Euler-Maruyama
    from two starts: the exact law of ``x_T | y`` ("exact x_T"), and DriftRec's
    ``N(y, std(T)^2 I)`` ("DriftRec x_T"), which ignores the ``mx(T) (x0 - y)`` left in
    the mean at ``T`` (``mx(1) = e^-1`` for both SDEs' defaults).

(b) DMPS (Meng & Kabashima 2022).  Inpainting of half the pixels plus noise,
    ``y = A x0 + N(0, 0.05^2 I)``; VP-SDE with the exact *prior* score, restored with
    ``sdekit.inverse.DMPS`` (DDPM ancestral steps).  Its likelihood term is an
    approximation; the reference row uses the exact *posterior* score with the same solver.
    DMPS's flow-based version (its Algorithm 2, ``DMPS(..., solver="flow")``) runs on rectified
    flow, ``x_t = (1 - t) x0 + t z`` (``RectifiedFlow()``: ``f = -1/(1 - t)``,
    ``g^2 = 2 t / (1 - t)``, from ``T = 0.999``), with the exact prior *velocity*
    ``f x - g^2 score / 2`` as the network's output (``prediction="velocity"``): Euler steps as
    in the paper, and Heun steps (``"flow_heun"``); its reference row is the exact posterior
    velocity with Euler steps.

For every method, ``--samples`` restorations of each of ``--measurements`` measurements
are compared with the exact posterior ``p(x0 | y)``: RMS error of the sample mean and the
ratio of sample to exact per-pixel variance.  The samplers stop at ``t_eps`` (``0.01``
for DriftRec, ``1e-3`` for VP), where the exact law of ``x(t_eps) | y`` differs from
``p(x0 | y)`` by the amounts printed as "t_eps gap".

    python examples/gaussian_mixture.py                    # seconds on a CPU
    python examples/gaussian_mixture.py --steps 1000 --samples 2000 --no-figure
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
from tqdm.auto import tqdm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _figures import add_output_options, example_parser, finish_run, pyplot, save_figure  # noqa: E402
from _mixture import GaussianMixture, patch_mixture  # noqa: E402

from sdekit import OUVE, TSDVE, VPSDE, EulerMaruyama, FlowODE, RectifiedFlow  # noqa: E402
from sdekit.inverse import DMPS, AncestralDDPM, Inpainting, SeparableBlur  # noqa: E402
from sdekit.parameterisation import convert  # noqa: E402

SIZE = 4                      # patches are SIZE x SIZE, one channel
SIGMA_BLUR = 0.05             # measurement noise std, part (a)
SIGMA_INPAINT = 0.05          # measurement noise std, part (b)
STD_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(__doc__, "torch device for the samplers",
                       epilog="All errors are against the exact posterior; see the module docstring.")
    p.add_argument("--steps", type=int, default=100, help="reverse steps per sampler (default: 100, DriftRec's N)")
    p.add_argument("--samples", type=int, default=200, help="restorations per measurement (default: 200)")
    p.add_argument("--measurements", type=int, default=4, help="number of measured patches (default: 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of the samplers (default: 0)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "triton", "cuda"),
                   help="sdekit kernel backend (default: auto)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default: 1; the tensors are tiny, more threads only contend)")
    add_output_options(p, "gaussian_mixture.png", progress="progress bar")
    args = p.parse_args(argv)
    for name in ("steps", "samples", "measurements", "threads"):
        if getattr(args, name) < (2 if name == "samples" else 1):
            p.error(f"--{name} is too small")
    return args


def dense(op, n: int) -> torch.Tensor:
    """The matrix of a linear operator acting on ``(B, 1, SIZE, SIZE)``: ``A[:, j] = op(e_j)``."""
    return op(torch.eye(n, dtype=torch.float64).reshape(n, 1, SIZE, SIZE)).T.contiguous()


def compare(samples: torch.Tensor, target: GaussianMixture, M: int, prior: GaussianMixture,
            exact: torch.Tensor) -> dict:
    """Sample mean and per-pixel variance of ``(M * S, ...)`` samples against ``target`` (M rows),
    and the total-variation distance between the histograms of the samples' mixture component
    (``prior.component``) and those of ``exact`` draws from ``target`` (averaged over measurements)."""
    x = samples.detach().to("cpu", torch.float64).reshape(M, -1, target.d)
    mean_err = x.mean(1) - target.mean()
    ratio = x.var(1) / target.variance()
    hist = [torch.nn.functional.one_hot(prior.component(v.reshape(-1, target.d)), prior.K)
            .reshape(M, -1, prior.K).double().mean(1) for v in (x, exact)]
    tv = 0.5 * (hist[0] - hist[1]).abs().sum(-1).mean()
    return {"mean_rmse": float(mean_err.pow(2).mean().sqrt()), "var_ratio": float(ratio.mean()),
            "var_ratio_min": float(ratio.min()), "var_ratio_max": float(ratio.max()), "component_tv": float(tv)}


def t_eps_gap(sde, post: GaussianMixture, y: torch.Tensor) -> dict:
    """How far the exact law of ``x(t_eps) | y`` is from ``p(x0 | y)`` (mean RMS, variance ratio)."""
    mx, my = (float(c) for c in sde.mean_coeffs(sde.t_eps))
    v = float(sde.marginal_var(sde.t_eps))
    m = post.mean()
    shift = my * y if sde.has_y_drift else 0.0
    gap = (mx - 1.0) * m + shift
    ratio = (mx**2 * post.variance() + v) / post.variance()
    return {"mean_rmse": float(gap.pow(2).mean().sqrt()), "var_ratio": float(ratio.mean())}


def marginal_table(sdes: dict) -> dict:
    t = torch.tensor(STD_TIMES, dtype=torch.float64)
    return {name: {"t": t.clamp(max=sde.T).tolist(), "std": sde.marginal_std(t.clamp(max=sde.T)).tolist(),
                   "mx": sde.mean_coeffs(t.clamp(max=sde.T))[0].tolist()}    # RF stops at T = 0.999
            for name, sde in sdes.items()}


def main(argv=None) -> dict:
    """Run everything; print the table (unless ``--quiet``) and return the numbers."""
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    M, S, d = args.measurements, args.samples, SIZE * SIZE
    gen = torch.Generator().manual_seed(args.seed)
    sdes = {"OUVE": OUVE(), "TSDVE": TSDVE(), "VPSDE": VPSDE(), "RF": RectifiedFlow()}

    prior = patch_mixture(SIZE)
    x0 = prior.sample(M, gen)                                   # the clean patches, (M, d)
    rows = torch.arange(M).repeat_interleave(S)                 # S restorations per measurement
    shape = (M * S, 1, SIZE, SIZE)

    # (a) blur + noise; the posterior p(x0 | y) is the exact "clean given corrupted" law.
    k = torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64)
    blur = dense(SeparableBlur(k, k, 1, SIZE), d)
    y_a = x0 @ blur.T + SIGMA_BLUR * torch.randn(M, d, generator=gen, dtype=torch.float64)
    post_a = prior.posterior(blur, SIGMA_BLUR, y_a)
    y_a_rep = y_a[rows].reshape(shape).to(device)
    cond = post_a.rows(rows)

    # (b) inpainting of half the pixels + noise.
    mask = (torch.randperm(d, generator=gen) < d // 2).reshape(1, SIZE, SIZE)
    inpaint = Inpainting(mask, channels=1)
    A_b = dense(inpaint, d)
    y_b = x0 @ A_b.T + SIGMA_INPAINT * torch.randn(M, A_b.shape[0], generator=gen, dtype=torch.float64)
    post_b = prior.posterior(A_b, SIGMA_INPAINT, y_b)

    def exact_start(sde):
        """``x_T | y`` exactly: ``mx(T) x0 + my(T) y + std(T) z`` with ``x0 ~ p(x0 | y)``."""
        mx, my = (float(c) for c in sde.mean_coeffs(sde.T))
        std = float(sde.marginal_std(sde.T))
        x0s = cond.sample(M * S, gen).reshape(shape)
        z = torch.randn(shape, generator=gen, dtype=torch.float64)
        return (mx * x0s + std * z).to(device) + my * y_a_rep

    def driftrec(sde, exact_x_T: bool):
        """Euler-Maruyama on the reverse SDE with the exact conditional score (what DriftRec's
        network is trained to return); ``x_T=None`` is sdekit's prior ``N(y, std(T)^2 I)``."""
        score = cond.to(device).score_fn(sde, y_a_rep)
        return EulerMaruyama(sde, args.steps).sample(
            score, y=y_a_rep, x_T=exact_start(sde) if exact_x_T else None, seed=args.seed, backend=args.backend,
            return_trajectory=True, dtype=torch.float64, device=device, denoise=False)

    vp = sdes["VPSDE"]

    def dmps():
        """DMPS (DDPM ancestral steps, lam = 1) with the exact prior score."""
        return DMPS(vp, inpaint, SIGMA_INPAINT, steps=args.steps).sample(
            prior.to(device).score_fn(vp), y_b[rows].to(device), seed=args.seed, shape=shape,
            backend=args.backend, return_trajectory=True, denoise=False)

    def vp_exact_posterior():
        """The same DDPM solver with the exact posterior score: what DMPS's score approximates."""
        return AncestralDDPM(vp, args.steps).sample(
            post_b.rows(rows).to(device).score_fn(vp), shape=shape, seed=args.seed, backend=args.backend,
            return_trajectory=True, dtype=torch.float64, device=device, denoise=False)

    rf = sdes["RF"]

    def velocity_of(mixture):
        """The exact velocity ``E[-x0 + z | x_t]`` of ``mixture`` under rectified flow: the
        probability-flow drift ``f x - g^2 score / 2`` of its exact score (what a perfectly
        trained flow-matching network returns)."""
        score = mixture.to(device).score_fn(rf)
        return lambda x, t: convert(rf, x, t, score(x, t), "score", "velocity")

    def dmps_flow(solver):
        """DMPS's Algorithm 2 (``"flow"``: Euler; ``"flow_heun"``) with the exact prior velocity."""
        return DMPS(rf, inpaint, SIGMA_INPAINT, steps=args.steps, solver=solver).sample(
            velocity_of(prior), y_b[rows].to(device), seed=args.seed, shape=shape, prediction="velocity",
            backend=args.backend, return_trajectory=True)

    def rf_exact_posterior():
        """Euler steps of the exact posterior velocity: what DMPS's flow version approximates."""
        post = post_b.rows(rows)
        return FlowODE(rf, args.steps).sample(
            post.to(device).score_fn(rf), shape=shape, seed=args.seed, backend=args.backend,
            return_trajectory=True, dtype=torch.float64, device=device)

    runs = [("OUVE, exact x_T", "a", lambda: driftrec(sdes["OUVE"], True)),
            ("OUVE, DriftRec x_T", "a", lambda: driftrec(sdes["OUVE"], False)),
            ("TSDVE, exact x_T", "a", lambda: driftrec(sdes["TSDVE"], True)),
            ("TSDVE, DriftRec x_T", "a", lambda: driftrec(sdes["TSDVE"], False)),
            ("DMPS (VPSDE, exact prior score)", "b", dmps),
            ("VPSDE, exact posterior score", "b", vp_exact_posterior),
            ("DMPS flow (RF, exact velocity)", "b", lambda: dmps_flow("flow")),
            ("DMPS flow, Heun (RF)", "b", lambda: dmps_flow("flow_heun")),
            ("RF, exact posterior velocity", "b", rf_exact_posterior)]

    # exact posterior draws, for the component histograms (their own generator: the runs' draws stay put)
    gen_exact = torch.Generator().manual_seed(args.seed + 1)
    exact_a, exact_b = cond.sample(M * S, gen_exact), post_b.rows(rows).sample(M * S, gen_exact)
    results, trajectories = {}, {}
    for name, part, run in tqdm(runs, desc="samplers", disable=args.quiet):
        sample, traj = run()
        post, exact = (post_a, exact_a) if part == "a" else (post_b, exact_b)
        results[name] = {"part": part, **compare(sample, post, M, prior, exact)}
        traj = traj.reshape(traj.shape[0], M, S, d)[:, 0].cpu()   # measurement 0: all S, every step
        trajectories[name] = {"paths": traj[:, :8], "mean": traj[-1].mean(0)}

    # baselines: no sampler at all
    for name, part, guess, post in (("corrupted y itself", "a", y_a, post_a),
                                    ("prior mean", "b", prior.mean().expand(M, d), post_b),
                                    ("zero-filled A^+ y", "b", inpaint.pinv(y_b), post_b)):
        results[name] = {"part": part, "mean_rmse": float((guess - post.mean()).pow(2).mean().sqrt())}
    floor = {part: math.sqrt(float(post.variance().mean()) / S) for part, post in (("a", post_a), ("b", post_b))}
    gaps = {"OUVE": t_eps_gap(sdes["OUVE"], post_a, y_a), "TSDVE": t_eps_gap(sdes["TSDVE"], post_a, y_a),
            "VPSDE": t_eps_gap(vp, post_b, y_b), "RF": t_eps_gap(rf, post_b, y_b)}
    out = {"rows": results, "mc_floor": floor, "var_ratio_spread": math.sqrt(2.0 / (S - 1)),
           "t_eps_gap": gaps, "marginal_std": marginal_table(sdes),
           "posterior_std": {"a": float(post_a.variance().mean().sqrt()), "b": float(post_b.variance().mean().sqrt())},
           "config": vars(args)}
    return finish_run(out, args, start,
                      lambda: figure(args, out, sdes, trajectories, x0, y_a, post_a, inpaint, y_b, post_b), report)


def report(out: dict, args) -> None:
    print(f"\nmarginal std(t) and mx(t) (t = {', '.join(f'{t:g}' for t in STD_TIMES)})")
    for name, row in out["marginal_std"].items():
        print(f"  {name:6s} std " + " ".join(f"{v:8.4f}" for v in row["std"])
              + "   mx " + " ".join(f"{v:6.3f}" for v in row["mx"]))
    titles = {"a": f"(a) DriftRec: 3x3 blur + noise {SIGMA_BLUR}, Euler-Maruyama, exact conditional score",
              "b": f"(b) DMPS: inpainting (half the pixels) + noise {SIGMA_INPAINT}, DDPM ancestral steps (VPSDE), "
                   "Euler / Heun steps of the velocity ODE (RF)"}
    print(f"\n{args.measurements} measurements x {args.samples} samples, {args.steps} steps; "
          "errors against the exact posterior p(x0 | y)")
    for part in ("a", "b"):
        print(f"\n{titles[part]}\n  exact posterior std (RMS over pixels) {out['posterior_std'][part]:.4f}; "
              f"Monte Carlo floor: mean RMSE ~ {out['mc_floor'][part]:.4f}, "
              f"var ratio 1 +- {out['var_ratio_spread']:.3f}")
        print(f"  {'method':34s} {'mean RMSE':>10s} {'var ratio':>10s} {'[min, max]':>15s} {'component TV':>13s}")
        for name, r in out["rows"].items():
            if r["part"] == part and "var_ratio" in r:
                print(f"  {name:34s} {r['mean_rmse']:10.4f} {r['var_ratio']:10.3f} "
                      f"  [{r['var_ratio_min']:5.2f}, {r['var_ratio_max']:5.2f}] {r['component_tv']:13.3f}")
            elif r["part"] == part:
                print(f"  {name:34s} {r['mean_rmse']:10.4f} {'-':>10s}   (no sampling)")
    print("\nt_eps gap (exact x(t_eps) | y vs p(x0 | y)): " + "; ".join(
        f"{n} mean {g['mean_rmse']:.1e}, var ratio {g['var_ratio']:.3f}" for n, g in out["t_eps_gap"].items()))
    if out["figure"]:
        print(f"figure: {out['figure']}")
    print(f"{out['seconds']:.1f} s")


def figure(args, out, sdes, trajectories, x0, y_a, post_a, inpaint, y_b, post_b) -> str | None:
    """Marginal std curves, reverse trajectories of one pixel, and the patches; ``None`` without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    fig = plt.figure(figsize=(15, 7), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.5, 1])
    axes = top.subplots(1, 4)
    for name, sde in sdes.items():  # matplotlib gets numpy arrays
        t = torch.linspace(0, sde.T, 201, dtype=torch.float64)
        line, = axes[0].plot(t.numpy(), sde.marginal_std(t).numpy(), label=f"{name} std")
        axes[0].plot(t.numpy(), sde.mean_coeffs(t)[0].numpy(), "--", color=line.get_color(), lw=0.8, label=f"{name} mx")
    axes[0].set(xlabel="t", title="marginal std(t) (solid) and mx(t) (dashed)", yscale="log", ylim=(1e-3, 1.5))
    axes[0].legend(fontsize=7)
    panels = [("OUVE, exact x_T", post_a, sdes["OUVE"]), ("TSDVE, DriftRec x_T", post_a, sdes["TSDVE"]),
              ("DMPS (VPSDE, exact prior score)", post_b, sdes["VPSDE"])]
    for ax, (name, post, sde) in zip(axes[1:], panels):
        pixel = int(post.variance()[0].argmax())  # the most uncertain pixel of patch 0
        paths = trajectories[name]["paths"][:, :, pixel].numpy()
        ax.plot(torch.linspace(sde.T, sde.t_eps, paths.shape[0]).numpy(), paths, lw=0.7)
        m, s = float(post.mean()[0, pixel]), float(post.variance()[0, pixel].sqrt())
        ax.axhspan(m - 2 * s, m + 2 * s, color="k", alpha=0.12, label="exact posterior mean +- 2 std")
        ax.axhline(m, color="k", lw=1)
        ax.set(xlabel="t (sampling runs from T, left, to t_eps)", title=f"{name}\npixel {pixel} of patch 0",
               xlim=(sde.T, 0.0))
        ax.legend(fontsize=7, loc="lower left")
    patches = [("clean x0", x0[0]), ("blurred y", y_a[0]), ("exact E[x0 | y]", post_a.mean()[0]),
               ("OUVE mean", trajectories["OUVE, exact x_T"]["mean"]),
               ("TSDVE mean", trajectories["TSDVE, exact x_T"]["mean"]),
               ("inpainting y", inpaint.V_range(y_b[:1]).masked_fill(~inpaint.mask.reshape(1, -1), torch.nan)),
               ("exact E[x0 | y]", post_b.mean()[0]),
               ("DMPS mean", trajectories["DMPS (VPSDE, exact prior score)"]["mean"])]
    axes = bottom.subplots(1, len(patches))
    for ax, (title, img) in zip(axes, patches):
        ax.imshow(img.reshape(SIZE, SIZE).numpy(), cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    bottom.suptitle(f"patch 0: (a) blur + noise, means of {args.samples} restorations; "
                    "(b) inpainting (missing pixels blank)", fontsize=10)
    return save_figure(fig, args.out, "gaussian_mixture.png")


if __name__ == "__main__":
    main()
