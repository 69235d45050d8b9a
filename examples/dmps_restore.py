"""Image restoration with DMPS on a small trained prior, against the pseudo-inverse and DPS.

A noise-predicting U-Net (``_imaging.ScoreUNet``, width 32) is the prior: trained with
:func:`sdekit.losses.denoising_score_matching` under the VP-SDE (``VPSDE()``, score_sde's
``beta_min = 0.1``, ``beta_max = 20``) on random 16 x 16 crops (with left-right flips) of
32 x 32 RGB patches of the training images ``_imaging.TRAIN_RGB`` (cut with stride 16), its
score being ``score(x, t) = -net(x, t) / std(t)``.  A trained checkpoint ships in
``examples/checkpoints/dmps_prior_vp.pt``; ``--train`` (or a missing checkpoint) trains anew.
The net is fully convolutional, so the prior learnt on 16 x 16 crops is applied to whole
32 x 32 test patches of the held-out image ``astronaut`` (``_imaging.TEST_RGB``).

Each test patch ``x0`` (in ``[-1, 1]``) is measured as ``y = A x0 + sigma_y n``, ``n ~ N(0, I)``,
with one of five operators from :mod:`sdekit.inverse`:

* ``deblur``: ``SeparableBlur`` with a normalised 9-tap Gaussian of std 1.5 px, zero padding;
* ``sr2``: 2 x super-resolution, ``SuperResolution(2, 3, 32)`` (2 x 2 block means);
* ``inpaint``: ``Inpainting``, half of the pixels (all three channels) missing at random;
* ``color``: ``Colorization(3)``, the mean of the three channels;
* ``denoise``: ``Denoising()``,

with ``sigma_y = 0.05`` on the ``[-1, 1]`` scale (a 2.5 % noise std of the pixel range), and
``sigma_y = 0.2`` for denoising (with 0.05 the noisy patch itself is already at 32 dB).

Three restorations of every measurement:

* ``pinv``: ``A^+ y = V S^+ U^T y``, the operator's own pseudo-inverse (no network);
* ``DPS`` (Chung et al. 2022, "Diffusion posterior sampling for general noisy inverse
  problems"): DDPM ancestral steps with the prior score, each followed by a step down the
  gradient of the measurement error of the Tweedie estimate (:func:`dps_sample`);
* ``DMPS`` (``sdekit.inverse.DMPS``, ``lam = 1``): DDPM ancestral steps with the prior score
  plus the closed-form pseudo-likelihood score (Meng & Kabashima 2022; see that module);
* ``DMPS-sc``: the same with the authors' shipped settings that ``DMPS`` offers, ``lam = 1.75``
  (their ``scale``) and ``clip_x0=True`` (their ``clip_denoised``);
* ``DMPS-code``: DMPS as the authors' code runs it (:func:`dmps_code_sample`): those settings and
  their evaluation point of the likelihood gradient, after the prior's ancestral step.

DPS and DMPS take the same ``--steps`` ancestral steps on the same time grid from the same
``x_T``, and, as DDPM's Algorithm 2, add no noise on the last step (``DMPS.sample(denoise=True)``;
that noise would have std 0.047 at 100 steps, 0.080 at 50, on the ``[-1, 1]`` scale).

Reported per task and method: mean PSNR and SSIM over the patches (``_imaging.psnr`` /
``ssim``, on the ``[0, 1]`` scale), the RMS measurement residual ``||A x - y|| / sqrt(m)``
(``sigma_y`` for the clean patch, and in expectation for an exact posterior sample) and the
seconds per image (the batch's wall time over its size).

    python examples/dmps_restore.py                     # about 2.5 minutes on one CPU thread
    python examples/dmps_restore.py --images 4 --steps 20 --no-figure
    python examples/dmps_restore.py --train             # retrain the prior first (10 more minutes)
"""
from __future__ import annotations

import argparse
import math
import os
import time

import _imaging as im  # examples/ is on sys.path when this runs as a script
from _figures import add_output_options, example_parser, finish_run
import torch
from tqdm.auto import tqdm

from sdekit import VPSDE
from sdekit.inverse import (DMPS, AncestralDDPM, Colorization, Denoising, Inpainting, LikelihoodScore, SeparableBlur,
                            SuperResolution)
from sdekit.kernels.rng import philox_normal_like
from sdekit.losses import denoising_score_matching

CHECKPOINT = os.path.join(im.CHECKPOINTS, "dmps_prior_vp.pt")
PATCH, CROP, STRIDE = 32, 16, 16          # training patches, training crops, stride of the patches
TASKS = ("deblur", "sr2", "inpaint", "color", "denoise")
SIGMA_Y = {"deblur": 0.05, "sr2": 0.05, "inpaint": 0.05, "color": 0.05, "denoise": 0.2}
# DPS's step size: by mean PSNR on 8 patches of the training images chelsea and coffee at 100 steps,
# over zeta in {0.1, 0.3, 1, 2, 3, 5, 10}, 3 is best or within 0.4 dB of the best for every task.
DPS_ZETA = 3.0
# The authors' shipped DMPS settings (mengxiangming/dmps: configs/*_config.yaml "scale: 1.75"; DPS's
# configs/diffusion_config.yaml, which their main.py reads, "clip_denoised: True").
CODE_SCALE, CODE_CLIP = 1.75, (-1.0, 1.0)


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(__doc__, "torch device for the net and the samplers",
                       epilog="Tasks, methods and metrics: see the module docstring.")
    p.add_argument("--steps", type=int, default=100, help="DDPM ancestral steps of DPS and DMPS (default: 100)")
    p.add_argument("--images", type=int, default=16,
                   help="number of 32x32 test patches of astronaut, chosen with the seed (default: 16)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS),
                   help=f"restoration tasks to run (default: all of {' '.join(TASKS)})")
    p.add_argument("--zeta", type=float, default=DPS_ZETA,
                   help=f"DPS step size (default: {DPS_ZETA}, chosen on training patches at 100 steps)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the test patches, masks, noise and samplers, and of training (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--checkpoint", default=CHECKPOINT,
                   help="prior checkpoint to load, or to write when training (default: examples/checkpoints/"
                        "dmps_prior_vp.pt)")
    p.add_argument("--train", action="store_true", help="train the prior and overwrite --checkpoint")
    p.add_argument("--train-steps", type=int, default=2500, help="training steps (default: 2500)")
    p.add_argument("--width", type=int, default=32, help="U-Net width, a multiple of 8 (default: 32)")
    p.add_argument("--batch", type=int, default=64, help="training batch size (default: 64)")
    add_output_options(p, "dmps_restore.png")
    args = p.parse_args(argv)
    for name in ("steps", "images", "threads", "train_steps", "width", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.width % 8:
        p.error("--width must be a multiple of 8 (the U-Net's GroupNorm uses 8 groups)")
    if not (math.isfinite(args.zeta) and args.zeta >= 0):
        p.error("--zeta must be a finite number >= 0")
    available = len(im.image_patches(im.TEST_RGB, PATCH, color=True))
    if args.images > available:
        p.error(f"--images must be <= {available}, the number of {PATCH}x{PATCH} patches of {', '.join(im.TEST_RGB)}")
    args.tasks = [t for t in TASKS if t in args.tasks]          # canonical order, no repeats
    if not args.train and os.path.exists(args.checkpoint):
        have = torch.load(args.checkpoint, map_location="cpu", weights_only=True)["meta"]["config"]
        want = train_config(args)
        if have != want:
            diff = ", ".join(f"{k} {have.get(k)!r} (asked for {want.get(k)!r})"
                             for k in sorted(have.keys() | want.keys()) if have.get(k) != want.get(k))
            p.error(f"{args.checkpoint} was trained with {diff}: pass --train to retrain it, or another --checkpoint")
    return args


# ----------------------------------------------------------------------------------------------
# the prior

def train_config(args) -> dict:
    """What a checkpoint must have been trained with to be used for these arguments."""
    return {"sde": "VPSDE(beta_min=0.1, beta_max=20)", "images": list(im.TRAIN_RGB), "patch": PATCH,
            "stride": STRIDE, "crop": CROP, "width": args.width, "batch": args.batch, "steps": args.train_steps}


def train_prior(args, sde) -> tuple[im.ScoreUNet, dict]:
    """Train ``ScoreUNet(3, width)`` by denoising score matching on random flipped crops; save it."""
    def loss(model, x0, noise):
        return denoising_score_matching(sde, im.score_from_noise(sde, model), x0, generator=noise)

    return im.train_rgb_net(args, loss, patch=PATCH, stride=STRIDE, crop=CROP, config=train_config(args),
                            path=args.checkpoint, desc="train prior", final_window=100)


def load_prior(args, sde) -> tuple[im.ScoreUNet, dict]:
    """The checkpoint (``parse_args`` checked its config), or a freshly trained net."""
    if args.train or not os.path.exists(args.checkpoint):
        return train_prior(args, sde)
    return im.load_checkpoint(args.checkpoint, args.device)


# ----------------------------------------------------------------------------------------------
# measurements and restorations

def gaussian_kernel(std: float = 1.5, taps: int = 9) -> torch.Tensor:
    """``k_j = exp(-j^2 / (2 std^2))``, ``j = -(taps - 1)/2 .. (taps - 1)/2``, normalised to sum 1."""
    j = torch.arange(taps, dtype=torch.float64) - (taps - 1) / 2
    k = torch.exp(-j**2 / (2 * std**2))
    return k / k.sum()


def make_operator(task: str, seed: int):
    """The measurement operator of ``task`` for ``(B, 3, 32, 32)`` images (module docstring)."""
    if task == "deblur":
        k = gaussian_kernel()
        return SeparableBlur(k, k, 3, PATCH)
    if task == "sr2":
        return SuperResolution(2, 3, PATCH)
    if task == "inpaint":
        mask = torch.rand(PATCH, PATCH, generator=torch.Generator().manual_seed(seed)) < 0.5
        return Inpainting(mask, 3)
    if task == "color":
        return Colorization(3, PATCH)
    return Denoising(3 * PATCH * PATCH)


def dps_sample(sde, net, op, y: torch.Tensor, x_T: torch.Tensor, steps: int, zeta: float, seed: int,
               progress: bool = False) -> torch.Tensor:
    r"""DPS (Chung et al. 2022, Algorithm 1) on :class:`sdekit.inverse.AncestralDDPM`'s steps.

    sdekit's samplers take a score, not a gradient through the network, so the loop is here.
    For each step ``t -> s`` of the time grid, with ``eps = net(x_t, t)``:

        x0_hat = (x_t - std(t) eps) / mx(t)                    (Tweedie: x_t + std^2 score, over mx)
        x_s'   = A_t x_t + S_t score(x_t, t) + N_t z           (the ancestral step, AncestralDDPM's table;
                                                                z = 0 on the last step)
        x_s    = x_s' - zeta grad_{x_t} ||y - A x0_hat||_2      (per image)

    DPS's Algorithm 1 writes the last term as ``zeta_i grad ||y - A x0_hat||^2`` with
    ``zeta_i = zeta' / ||y - A x0_hat||``; the authors' code differentiates the norm itself,
    i.e. ``zeta_i = zeta / (2 ||y - A x0_hat||)``, which is what is done here.  ``z`` comes
    from a ``torch.Generator`` seeded with ``seed``.
    """
    sampler = AncestralDDPM(sde, steps)
    ts = sampler.time_grid()
    a, _, s, n = (c.tolist() for c in sampler.step_coefficients(ts[:-1], ts[1:]))
    mx, std = sde.mean_coeffs(ts[:-1])[0].tolist(), sde.marginal_std(ts[:-1]).tolist()
    gen = torch.Generator(x_T.device).manual_seed(seed)
    x = x_T.clone()
    for i in tqdm(range(steps), desc="DPS", disable=not progress, leave=False):
        t = torch.full((x.shape[0],), float(ts[i]), dtype=x.dtype, device=x.device)
        x.requires_grad_(True)
        eps = net(x, t)
        x0_hat = (x - std[i] * eps) / mx[i]
        residual = (y - op(x0_hat)).norm(dim=1).sum()           # the sum's gradient is each image's own
        grad, = torch.autograd.grad(residual, x)
        with torch.no_grad():
            z = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device) if i < steps - 1 else 0.0
            x = a[i] * x - s[i] / std[i] * eps + n[i] * z - zeta * grad
    return x.detach()


def dmps_code_sample(sde, score, op, y: torch.Tensor, sigma_y: float, x_T: torch.Tensor, steps: int, seed: int,
                     scale: float = CODE_SCALE, clip=CODE_CLIP, likelihood_at: str = "after_step") -> torch.Tensor:
    r"""DMPS as its authors' code runs it (``PosteriorSampling_meng.conditioning`` after guided-diffusion's
    ``p_sample``), on :class:`sdekit.inverse.AncestralDDPM`'s steps ``x_s = A x_t + S score + N z``.

    For each step ``t -> s`` (``S = var / phi``, the code's ``(1 - alpha_t) / sqrt(alpha_t)``)::

        x0^ = clip((x_t + std_t^2 score) / mx_t)             (clip_denoised; no clipping for clip=None)
        x'  = A x_t + S (mx_t x0^ - x_t) / std_t^2 + N z      (the ancestral step with the clipped x0^)
        x_s = x' + scale S grad log p~(y | x'; mx_t, std_t)    (likelihood_at="after_step": the code)
        x_s = x' + scale S grad log p~(y | x_t; mx_t, std_t)   (likelihood_at="x_t": the paper, sdekit)

    The schedule stays sdekit's (the continuous VP-SDE's transition, ancestral variance ``beta``) where
    the code has 1000 discrete betas and the network's learned variance: differences 3 of
    :mod:`sdekit.inverse.dmps`, which this prior (no learned variance) cannot reproduce.  The normals
    ``z`` are sdekit's ``(seed, step)`` ones that ``DMPS.sample`` draws, so rows differ by the method
    only; no noise on the last step (``denoise=True``).  With ``scale = 1``, ``clip=None`` and
    ``likelihood_at="x_t"`` this is ``DMPS(sde, op, sigma_y).sample`` (the smoke test checks it).
    """
    sampler = AncestralDDPM(sde, steps)
    ts = sampler.time_grid()
    a, _, s, n = (c.tolist() for c in sampler.step_coefficients(ts[:-1], ts[1:]))
    mx, std = sde.mean_coeffs(ts[:-1])[0].tolist(), sde.marginal_std(ts[:-1]).tolist()
    likelihood = LikelihoodScore(op, y.to(x_T.dtype), sigma_y, n=x_T[0].numel())
    x = x_T.clone()
    for i in range(steps):
        t = torch.full((x.shape[0],), float(ts[i]), dtype=x.dtype, device=x.device)
        prior = score(x, t)
        if clip is not None:
            prior = (mx[i] * ((x + std[i] ** 2 * prior) / mx[i]).clamp(*clip) - x) / std[i] ** 2
        at = x
        x = a[i] * x + s[i] * prior + (n[i] * philox_normal_like(x, seed, i) if i < steps - 1 else 0.0)
        x = x + scale * s[i] * likelihood(x if likelihood_at == "after_step" else at, mx[i], std[i])
    return x


def restore(task: str, op, y: torch.Tensor, x_T: torch.Tensor, sde, net, args) -> dict[str, tuple]:
    """``{method: (restored (B, 3, 32, 32), seconds)}`` for one task."""
    shape, out = tuple(x_T.shape), {}
    score = im.score_from_noise(sde, net)
    progress = not args.quiet
    with im.Stopwatch(args.device) as w:
        x = op.pinv(y).reshape(shape)
    out["pinv"] = (x, w.seconds)
    with im.Stopwatch(args.device) as w:
        x = dps_sample(sde, net, op, y, x_T, args.steps, args.zeta, args.seed, progress)
    out["DPS"] = (x, w.seconds)
    with im.Stopwatch(args.device) as w, torch.no_grad():
        x = DMPS(sde, op, SIGMA_Y[task], lam=1.0, steps=args.steps).sample(score, y, seed=args.seed, x_T=x_T,
                                                                              progress=progress, denoise=True)
    out["DMPS"] = (x, w.seconds)
    with im.Stopwatch(args.device) as w, torch.no_grad():
        x = DMPS(sde, op, SIGMA_Y[task], lam=CODE_SCALE, steps=args.steps, clip_x0=CODE_CLIP).sample(
            score, y, seed=args.seed, x_T=x_T, progress=progress, denoise=True)
    out["DMPS-sc"] = (x, w.seconds)
    with im.Stopwatch(args.device) as w, torch.no_grad():
        x = dmps_code_sample(sde, score, op, y, SIGMA_Y[task], x_T, args.steps, args.seed)
    out["DMPS-code"] = (x, w.seconds)
    return out


def metrics(x: torch.Tensor, x0: torch.Tensor, op, y: torch.Tensor, seconds: float) -> dict:
    """Mean PSNR / SSIM against ``x0``, RMS measurement residual, seconds per image."""
    x, x0 = x.detach().cpu(), x0.cpu()
    residual = (op(x.double()) - y.cpu().double()).norm(dim=1) / math.sqrt(y.shape[1])
    return {"psnr": float(im.psnr(x, x0).mean()), "ssim": float(im.ssim(x, x0).mean()),
            "residual": float(residual.mean()), "seconds_per_image": seconds / x.shape[0]}


def held_out_patches(n: int, seed: int) -> torch.Tensor:
    """``n`` distinct non-overlapping 32 x 32 patches of the test image(s), chosen with ``seed``."""
    patches = im.image_patches(im.TEST_RGB, PATCH, color=True)
    return patches[torch.randperm(len(patches), generator=torch.Generator().manual_seed(seed))[:n]]


def main(argv=None) -> dict:
    """Load (or train) the prior, measure, restore, print the table (unless ``--quiet``) and return the numbers.

    The returned dict has ``rows[task][method]`` (``psnr``, ``ssim``, ``residual``,
    ``seconds_per_image``), the tensors ``clean``, ``y[task]`` and ``restored[task][method]``
    (CPU), the checkpoint's ``prior`` meta, ``config``, ``figure`` and ``seconds``.
    """
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sde = VPSDE()
    net, prior = load_prior(args, sde)

    x0 = held_out_patches(args.images, args.seed).to(device)
    rows, ys, restored = {}, {}, {}
    for task in tqdm(args.tasks, desc="tasks", disable=args.quiet):
        # a generator per (seed, task): a task's numbers do not depend on which other tasks run
        gen = torch.Generator(device).manual_seed(args.seed * len(TASKS) + TASKS.index(task))
        op = make_operator(task, args.seed)
        clean = op(x0)
        y = clean + SIGMA_Y[task] * torch.randn(clean.shape, generator=gen, dtype=clean.dtype, device=device)
        x_T = float(sde.marginal_std(sde.T)) * torch.randn(x0.shape, generator=gen, dtype=x0.dtype, device=device)
        runs = restore(task, op, y, x_T, sde, net, args)
        rows[task] = {m: metrics(x, x0, op, y, sec) for m, (x, sec) in runs.items()}
        ys[task] = y.cpu()
        restored[task] = {m: x.detach().cpu() for m, (x, _) in runs.items()}

    out = {"rows": rows, "clean": x0.cpu(), "y": ys, "restored": restored, "prior": prior, "config": vars(args)}
    return finish_run(out, args, start, lambda: figure(args, out), report)


def report(out: dict, args) -> None:
    prior = out["prior"]
    print(f"\nprior: {args.checkpoint} (width {prior['config']['width']}, {prior['config']['steps']} training steps, "
          f"final loss {prior['final_loss']:.4f}, trained in {prior['seconds'] / 60:.1f} min on {prior['device']})")
    print(f"{args.images} test patches {PATCH}x{PATCH} of {', '.join(im.TEST_RGB)}; VPSDE, {args.steps} DDPM steps, "
          f"seed {args.seed}; PSNR in dB on [0, 1]; residual: RMS of A x - y")
    print(f"  {'task':8s} {'sigma_y':>7s} {'method':9s} {'PSNR':>6s} {'SSIM':>6s} {'residual':>9s} {'s/image':>8s}")
    for task, methods in out["rows"].items():
        for m, r in methods.items():
            print(f"  {task:8s} {SIGMA_Y[task]:7.2f} {m:9s} {r['psnr']:6.2f} {r['ssim']:6.3f} {r['residual']:9.4f} "
                  f"{r['seconds_per_image']:8.4f}")
    if out["figure"]:
        print(f"figure: {out['figure']}")
    print(f"{out['seconds']:.1f} s")


def figure(args, out) -> str | None:
    """Rows: test patches; columns: clean, then per task the measurement, DPS and DMPS.

    The measurement column shows ``y`` itself where it is an image of the patch's size
    (deblurring, denoising) and ``A^+ y`` otherwise (block-constant upsampling, zero filling
    at the missing pixels, the grey level in every channel)."""
    clean = out["clean"]
    columns = [("clean", clean)]
    for task in args.tasks:
        y, restored = out["y"][task], out["restored"][task]
        shown = y.reshape(clean.shape) if y[0].numel() == clean[0].numel() else restored["pinv"]
        columns += [(f"{task}: y", shown), (f"{task}: DPS", restored["DPS"]), (f"{task}: DMPS", restored["DMPS"])]
    return im.save_grid(os.path.join(args.out, "dmps_restore.png"), columns, rows=4,
                        title=f"DPS and DMPS, VPSDE prior, {args.steps} DDPM steps")


if __name__ == "__main__":
    main()
