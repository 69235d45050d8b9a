"""Dirac on image patches: deblurring and box inpainting with early stopping, against DMPS and DPS.

Dirac (Fabian, Tinaz, Soltanolkotabi 2023, ``sdekit.inverse.Dirac``) treats the measurement as
the end point ``y_1`` of a stochastic degradation process ``y_t = A_t x0 + sigma_t z`` and runs
it backwards with a network ``x0_hat = Phi(y_t, t)``.  Two processes on 32 x 32 RGB patches in
``[-1, 1]``, with the geometric noise schedule ``sigma_t = 0.01 (0.05 / 0.01)^t``:

* ``deblur``: ``BlurFamily(1.5 t, 3, 32)``, a separable Gaussian blur of std ``1.5 t`` px with
  zero padding (at ``t = 1``: the std-1.5 blur of ``dmps_restore.py``'s deblurring, untruncated);
* ``inpaint``: ``BoxInpaintingFamily(3, 32, max_side=16)``, a centred box of side ``16 t`` removed.

So ``y_1 = A_1 x0 + 0.05 n``: the measurement model of ``dmps_restore.py`` (``sigma_y = 0.05``).

The network (``_imaging.ScoreUNet(3, width=16)`` with a residual output, ``Phi(y, t) = y +
net(y, t)``, as the authors' ``residual_prediction``) is trained per task with sdekit's
incremental reconstruction loss (``sdekit.losses.incremental_reconstruction_loss``, the paper's
eq. 14, look-ahead ``1 / --steps``, ``t`` on the sampler's grid) on the 32 x 32 training patches
of ``_imaging.TRAIN_RGB`` (stride 16, with left-right flips).  The checkpoints ship in
``examples/checkpoints/dirac_{deblur,inpaint}.pt``; ``--train`` (or a missing one) trains anew.

Each held-out ``astronaut`` patch (the ones ``dmps_restore.py`` uses for the same seed) is
measured once and reconstructed by ``Dirac(process, --steps, "look_ahead")`` run to the end;
early stopping at ``stop_t`` returns the ``x0_hat`` of the step where the run would stop, which
for the same seed is the ``x0_hat`` that the full run's trajectory holds at that step (the smoke
test checks this against ``Dirac(..., stop_t=...)``), so one run gives the whole curve.  Reported
per ``stop_t``: mean PSNR / SSIM (``[0, 1]`` scale) against the clean patches (distortion) and the
patch sliced Wasserstein distance ``_imaging.patch_swd`` of the reconstructions to the clean set
(perception), with a figure of the curve when matplotlib is present.  For the blur, the DPS and
DMPS rows of ``dmps_restore.py`` (same prior checkpoint, ``--dmps-steps`` DDPM steps) are run on
the same measurements with the same operator ``A_1``.

    python examples/dirac_restore.py                     # about 75 s on one CPU thread
    python examples/dirac_restore.py --images 4 --steps 10 --no-baselines --no-figure
    python examples/dirac_restore.py --train             # retrain both nets first (about 8 minutes)
"""
from __future__ import annotations

import argparse
import math
import os
import time

import _imaging as im  # examples/ is on sys.path when this runs as a script
import torch
from _figures import add_output_options, example_parser, finish_run, pyplot, save_figure

from sdekit.inverse import BlurFamily, BoxInpaintingFamily, Dirac, StochasticDegradation
from sdekit.losses import incremental_reconstruction_loss

PATCH, STRIDE = 32, 16
TASKS = ("deblur", "inpaint")
SIGMA_MIN, SIGMA_MAX = 0.01, 0.05
BLUR_STD, BOX_SIDE = 1.5, 16
STOP_TS = (1.0, 0.75, 0.5, 0.25, 0.1, 0.0)


def checkpoint_path(folder: str, task: str) -> str:
    return os.path.join(folder, f"dirac_{task}.pt")


def make_process(task: str) -> StochasticDegradation:
    """The SDP of ``task`` (module docstring)."""
    family = BlurFamily(BLUR_STD, 3, PATCH) if task == "deblur" else BoxInpaintingFamily(3, PATCH, max_side=BOX_SIDE)
    return StochasticDegradation(family, SIGMA_MIN, SIGMA_MAX)


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(__doc__)
    p.add_argument("--steps", type=int, default=20, help="Dirac steps from t = 1 to 0 (default: 20)")
    p.add_argument("--images", type=int, default=16, help="number of 32x32 test patches of astronaut (default: 16)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS), help="tasks to run (default: both)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patches, noise, sampler and training (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--checkpoints", default=im.CHECKPOINTS,
                   help="folder of dirac_<task>.pt, read or written (default: examples/checkpoints)")
    p.add_argument("--train", action="store_true", help="train the nets and overwrite their checkpoints")
    p.add_argument("--train-steps", type=int, default=600, help="training steps per task (default: 600)")
    p.add_argument("--width", type=int, default=16, help="U-Net width, a multiple of 8 (default: 16)")
    p.add_argument("--batch", type=int, default=32, help="training batch size (default: 32)")
    p.add_argument("--dmps-steps", type=int, default=100, help="DDPM steps of the DPS / DMPS rows (default: 100)")
    p.add_argument("--no-baselines", action="store_true", help="skip the DPS and DMPS rows")
    add_output_options(p, "dirac_restore.png")
    args = p.parse_args(argv)
    for name in ("steps", "images", "threads", "train_steps", "width", "batch", "dmps_steps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.width % 8:
        p.error("--width must be a multiple of 8 (the U-Net's GroupNorm uses 8 groups)")
    available = len(im.image_patches(im.TEST_RGB, PATCH, color=True))
    if args.images > available:
        p.error(f"--images must be <= {available}, the number of {PATCH}x{PATCH} patches of {', '.join(im.TEST_RGB)}")
    args.tasks = [t for t in TASKS if t in args.tasks]
    for task in args.tasks:
        path = checkpoint_path(args.checkpoints, task)
        if not args.train and os.path.exists(path):
            have = torch.load(path, map_location="cpu", weights_only=True)["meta"]["config"]
            want = train_config(args, task)
            if have != want:
                diff = ", ".join(f"{k} {have.get(k)!r} (asked for {want.get(k)!r})"
                                 for k in sorted(have.keys() | want.keys()) if have.get(k) != want.get(k))
                p.error(f"{path} was trained with {diff}: pass --train to retrain it, or another --checkpoints")
    return args


# ----------------------------------------------------------------------------------------------
# the network

def train_config(args, task: str) -> dict:
    """What a checkpoint must have been trained with to be used for these arguments."""
    family = f"BlurFamily({BLUR_STD} t, 3, {PATCH})" if task == "deblur" else \
        f"BoxInpaintingFamily(3, {PATCH}, max_side={BOX_SIDE})"
    return {"task": task, "family": family, "sigma": [SIGMA_MIN, SIGMA_MAX], "images": list(im.TRAIN_RGB),
            "patch": PATCH,
            "stride": STRIDE, "width": args.width, "batch": args.batch, "steps": args.train_steps,
            "look_ahead_steps": args.steps}


def predictor(net):
    """``Phi(y, t) = y + net(y, t)`` (the authors' residual prediction)."""
    def x0_hat(y, t):
        return y + net(y, t)
    return x0_hat


def train_net(args, task: str, process) -> tuple[im.ScoreUNet, dict]:
    """Train ``ScoreUNet(3, width)`` with the incremental reconstruction loss (eq. 14) on random flipped
    patches; save it."""
    def loss(model, x0, noise):
        return incremental_reconstruction_loss(process, predictor(model), x0, 1.0 / args.steps, steps=args.steps,
                                               generator=noise)

    return im.train_rgb_net(args, loss, patch=PATCH, stride=STRIDE, crop=PATCH, config=train_config(args, task),
                            path=checkpoint_path(args.checkpoints, task), desc=f"train {task}")


def load_net(args, task: str, process) -> tuple[im.ScoreUNet, dict]:
    path = checkpoint_path(args.checkpoints, task)
    if args.train or not os.path.exists(path):
        return train_net(args, task, process)
    return im.load_checkpoint(path, args.device)


# ----------------------------------------------------------------------------------------------
# restoration

def held_out_patches(n: int, seed: int) -> torch.Tensor:
    """``dmps_restore.py``'s test patches: ``n`` distinct 32 x 32 patches of astronaut chosen with ``seed``."""
    patches = im.image_patches(im.TEST_RGB, PATCH, color=True)
    return patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(seed))[:n]]


def stop_curve(sampler: Dirac, trajectory) -> dict[float, torch.Tensor]:
    """``{stop_t: the early-stopped reconstruction}`` read off one full run's trajectory (module docstring)."""
    out = {}
    for stop_t in STOP_TS:
        n = Dirac(sampler.process, sampler.steps, sampler.update, stop_t=stop_t).last_step()
        out[stop_t] = trajectory.x0_hat[n]
    return out


def baselines(args, op, y, x0) -> dict[str, tuple[torch.Tensor, float]]:
    """DPS and DMPS of ``dmps_restore.py`` with its prior checkpoint, on the measurements ``y``."""
    import dmps_restore as dr
    from sdekit import VPSDE

    sde = VPSDE()
    ns = dr.parse_args(["--steps", str(args.dmps_steps), "--seed", str(args.seed), "--device", args.device,
                        "--images", str(args.images), "--tasks", "deblur", "--quiet"])
    net, _ = dr.load_prior(ns, sde)
    gen = torch.Generator(args.device).manual_seed(args.seed + 7)
    x_T = float(sde.marginal_std(sde.T)) * torch.randn(x0.shape, generator=gen, dtype=x0.dtype, device=x0.device)
    runs = dr.restore("deblur", op, y.flatten(1), x_T, sde, net, ns)
    return {m: runs[m] for m in ("DPS", "DMPS")}


def scores(x: torch.Tensor, x0: torch.Tensor) -> dict:
    x, x0 = x.detach().cpu(), x0.cpu()
    return {"psnr": float(im.psnr(x, x0).mean()), "ssim": float(im.ssim(x, x0).mean()), "swd": im.patch_swd(x, x0)}


def main(argv=None) -> dict:
    """Load (or train) the nets, measure, reconstruct, print the table (unless ``--quiet``), return the numbers.

    The dict has ``rows[task][label]`` (``psnr``, ``ssim``, ``swd``, ``residual``, and ``seconds_per_image``
    for the samplers; labels ``"y"``, ``"stop_t=<v>"``, ``"DPS"``, ``"DMPS"``), the tensors ``clean``,
    ``y[task]``, ``restored[task][label]`` and ``trajectory[task]``, the nets' ``meta``, ``figure``, ``seconds``.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    x0 = held_out_patches(args.images, args.seed).to(device)
    rows, ys, restored, trajectories, metas = {}, {}, {}, {}, {}
    for task in args.tasks:
        process = make_process(task)
        net, metas[task] = load_net(args, task, process)
        y = process.sample(x0, 1.0, seed=args.seed * len(TASKS) + TASKS.index(task))
        sampler = Dirac(process, args.steps, "look_ahead")
        with im.Stopwatch(device) as w, torch.no_grad():
            _, traj = sampler.sample(predictor(net), y, seed=args.seed, return_trajectory=True,
                                     progress=not args.quiet)
        A1 = process.family.at(1.0)
        outs = {"y": (y, None)}
        outs.update({f"stop_t={s:g}": (x, w.seconds) for s, x in stop_curve(sampler, traj).items()})
        if task == "deblur" and not args.no_baselines:
            outs.update(baselines(args, A1, y, x0))
        rows[task] = {}
        for label, (x, sec) in outs.items():
            r = scores(x, x0)
            residual = (A1(x.double()) - y.flatten(1).double()).norm(dim=1) / math.sqrt(y[0].numel())
            r["residual"] = float(residual.mean())
            if sec is not None:
                r["seconds_per_image"] = sec / x.shape[0]
            rows[task][label] = r
        ys[task], trajectories[task] = y.cpu(), traj
        restored[task] = {label: x.detach().cpu() for label, (x, _) in outs.items()}
    out = {"rows": rows, "clean": x0.cpu(), "y": ys, "restored": restored, "trajectory": trajectories,
           "meta": metas, "config": vars(args)}
    return finish_run(out, args, start, lambda: figure(args, out), report)


def report(out: dict, args) -> None:
    for task, meta in out["meta"].items():
        print(f"{task}: net width {meta['config']['width']}, {meta['config']['steps']} training steps, "
              f"final loss {meta['final_loss']:.5f}, trained in {meta['seconds'] / 60:.1f} min on {meta['device']}")
    print(f"{args.images} test patches {PATCH}x{PATCH} of {', '.join(im.TEST_RGB)}; "
          f"sigma_t = {SIGMA_MIN} .. {SIGMA_MAX}, "
          f"{args.steps} Dirac steps (look_ahead), seed {args.seed}; PSNR in dB on [0, 1]; SWD: patch SWD to the "
          "clean set; residual: RMS of A_1 x - y")
    print(f"  {'task':8s} {'method':11s} {'PSNR':>6s} {'SSIM':>6s} {'SWD':>7s} {'residual':>9s} {'s/image':>8s}")
    for task, methods in out["rows"].items():
        for m, r in methods.items():
            sec = f"{r['seconds_per_image']:8.4f}" if "seconds_per_image" in r else f"{'':8s}"
            print(f"  {task:8s} {m:11s} {r['psnr']:6.2f} {r['ssim']:6.3f} {r['swd']:7.4f} {r['residual']:9.4f} {sec}")
    if out["figure"]:
        print(f"figure: {out['figure']}")
    print(f"{out['seconds']:.1f} s")


def figure(args, out) -> str | None:
    """The perception-distortion curve: PSNR (distortion) against patch SWD (perception), one point per stop_t."""
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, len(out["rows"]), figsize=(4.6 * len(out["rows"]), 3.6), squeeze=False)
    for ax, (task, methods) in zip(axes[0], out["rows"].items(), strict=True):
        curve = [(float(m.split("=")[1]), r) for m, r in methods.items() if m.startswith("stop_t=")]
        ax.plot([r["swd"] for _, r in curve], [r["psnr"] for _, r in curve], "o-", label="Dirac, stop_t")
        for s, r in curve:
            ax.annotate(f"{s:g}", (r["swd"], r["psnr"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for m in ("DPS", "DMPS"):
            if m in methods:
                ax.plot(methods[m]["swd"], methods[m]["psnr"], "s", label=m)
        ax.set_xlabel("patch SWD to clean (perception, lower is better)")
        ax.set_ylabel("PSNR dB (distortion, higher is better)")
        ax.set_title(task, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, args.out, "dirac_restore.png", dpi=110)


if __name__ == "__main__":
    main()
