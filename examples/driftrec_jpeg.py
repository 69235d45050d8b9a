"""DriftRec: JPEG artifact removal with the OUVE and TSDVE SDEs, against an L2 regression baseline.

DriftRec (Welker, Chapman, Gerkmann 2022) restores a corrupted image ``y`` by running the
reverse of a linear SDE whose drift pulls the clean image ``x0`` towards ``y``::

    dx = gamma t^alpha (y - x) dt + g(t) dw,     x(0) = x0,    alpha = 0 (OUVE) or 1 (TSDVE),

so ``x_t = mx(t) x0 + my(t) y + std(t) z`` with ``mx + my = 1``.  A network trained by
denoising score matching (DriftRec eq. 6, :func:`sdekit.losses.denoising_score_matching`)
returns the score of ``x_t`` given ``y``; sampling starts at ``N(y, std(T)^2 I)`` and runs
Euler-Maruyama (N = 100) down to ``t_eps = 0.01``.  The L2 baseline is the same network
without time input, trained to regress ``x0`` from ``y`` (``x0_hat = y + net(y)``): the
posterior mean, the best possible PSNR, and the blurriest answer.

Everything here runs offline.  Clean data: grey 32 x 32 patches of scikit-image's bundled
photographs (training and test images disjoint, ``examples/_imaging.py``).  Corruption:
Pillow's baseline JPEG at quality 10 and 20 of the whole image, then cut, so the 8 x 8 block
grid is the image's.  One network per method, trained on both qualities, on random 16 x 16
crops (the nets are fully convolutional and restore the 32 x 32 test patches).  The trained
weights live in ``examples/checkpoints/`` (CPU-trained; ``--train`` retrains).

Metrics over ``--images`` test patches: PSNR and SSIM (each restoration against its own
clean patch) and a distribution-level distance that needs no pretrained network,
:func:`_imaging.patch_swd` (sliced Wasserstein distance between the sets of 8 x 8 sub-patches
of the restorations and of the clean patches: 0 when the restorations look like clean data).

    python examples/driftrec_jpeg.py                 # about a minute on a CPU, with the checkpoints
    python examples/driftrec_jpeg.py --train         # retrain the three nets (~half an hour on a CPU)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _imaging as im  # noqa: E402
from _figures import add_output_options, example_parser, finish_run  # noqa: E402

from sdekit import OUVE, TSDVE, EulerMaruyama  # noqa: E402
from sdekit.losses import denoising_score_matching  # noqa: E402

QUALITIES = (10, 20)
PATCH, CROP = 32, 16          # data patches (stride 16) and training crops
METHODS = ("L2", "OUVE", "TSDVE")


def parse_args(argv=None) -> argparse.Namespace:
    p = example_parser(__doc__)
    p.add_argument("--steps", type=int, default=100, help="Euler-Maruyama steps (default: 100, DriftRec's N)")
    p.add_argument("--images", type=int, default=48, help="test patches per quality (default: 48)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test selection and the samplers (default: 0)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "triton", "cuda"),
                   help="sdekit kernel backend for the sampling steps (default: auto)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    p.add_argument("--train", action="store_true", help="train the three nets even if checkpoints exist")
    p.add_argument("--train-steps", type=int, default=2000, help="optimizer steps per net (default: 2000)")
    p.add_argument("--batch", type=int, default=64, help="training batch (default: 64)")
    p.add_argument("--width", type=int, default=32, help="U-Net width when training (default: 32)")
    p.add_argument("--checkpoints", default=im.CHECKPOINTS,
                   help="folder of the checkpoints driftrec_{l2,ouve,tsdve}.pt (default: examples/checkpoints)")
    add_output_options(p, "driftrec_jpeg.png")
    args = p.parse_args(argv)
    for name in ("steps", "images", "threads", "train_steps", "batch"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.width < 8 or args.width % 8:
        p.error("--width must be a positive multiple of 8")
    return args


def jpeg_data(names, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean patches ``(N, 1, 32, 32)`` and their JPEG versions ``(len(QUALITIES), N, 1, 32, 32)``."""
    clean = im.image_patches(names, PATCH, color=False, stride=stride)
    jpeg = torch.stack([im.image_patches(names, PATCH, color=False, stride=stride,
                                         transform=lambda img, q=q: im.jpeg_compress(img, q)) for q in QUALITIES])
    return clean, jpeg


def train_net(args, method: str, sde, clean: torch.Tensor, jpeg: torch.Tensor, path: str) -> im.ScoreUNet:
    """Train one net on (clean, JPEG) crops, save it to ``path`` and return its EMA weights:
    the L2 regression (``sde=None``) or the conditional noise-prediction net of ``sde``."""
    device = clean.device
    gen = torch.Generator().manual_seed(args.seed)                   # crops and qualities (CPU)
    noise_gen = torch.Generator(device).manual_seed(args.seed)       # t and z of the loss, on the data's device

    def batch(idx):
        """Random crops of (clean, JPEG at a random quality) pairs."""
        q = torch.randint(len(QUALITIES), (len(idx),), generator=gen).to(device)
        return im.random_crops([clean[idx.to(device)], jpeg[q, idx.to(device)]], CROP, gen)

    if sde is None:
        net = im.ScoreUNet(1, width=args.width, time=False).to(device)

        def loss_fn(model, idx):
            x0, y = batch(idx)
            return (y + model(y) - x0).pow(2).mean()
    else:
        net = im.ScoreUNet(1, cond_channels=1, width=args.width).to(device)

        def loss_fn(model, idx):
            x0, y = batch(idx)
            return denoising_score_matching(sde, im.score_from_noise(sde, model), x0, y, generator=noise_gen)
    start = time.perf_counter()
    avg, losses = im.train(net, loss_fn, clean, args.train_steps, batch=args.batch, seed=args.seed,
                           progress=not args.quiet, desc=f"train {method}")
    meta = {"method": method, "steps": args.train_steps, "batch": args.batch, "crop": CROP,
            "qualities": list(QUALITIES), "images": list(im.TRAIN_GRAY),
            "final_loss": float(torch.tensor(losses[-100:]).mean()),
            "seconds": time.perf_counter() - start, "device": str(device), "threads": args.threads}
    im.save_checkpoint(path, avg, meta)
    return avg


def train_nets(args, sdes: dict, device) -> dict:
    """Load the L2 baseline and one conditional score net per SDE, training those that are
    missing (all of them with ``--train``)."""
    nets, data = {}, None
    for method in METHODS:
        path = os.path.join(args.checkpoints, f"driftrec_{method.lower()}.pt")
        if os.path.exists(path) and not args.train:
            nets[method], _ = im.load_checkpoint(path, device)
            continue
        if data is None:
            data = [v.to(device) for v in jpeg_data(im.TRAIN_GRAY, stride=PATCH // 2)]
        nets[method] = train_net(args, method, sdes.get(method), *data, path)
    return nets


def main(argv=None) -> dict:
    """Restore ``--images`` JPEG test patches per quality with every method; print and return the metrics."""
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sdes = {"OUVE": OUVE(), "TSDVE": TSDVE()}
    nets = train_nets(args, sdes, device)

    clean_all, jpeg_all = jpeg_data(im.TEST_GRAY, stride=PATCH)
    pick = torch.randperm(len(clean_all), generator=torch.Generator().manual_seed(args.seed))[:args.images]
    clean = clean_all[pick].to(device)
    rows, restored, seconds = {}, {}, {}
    for qi, quality in enumerate(QUALITIES):
        y = jpeg_all[qi, pick].to(device)
        out = {"JPEG": y}
        with torch.no_grad():
            with im.Stopwatch(device) as w:
                out["L2"] = y + nets["L2"](y)
            seconds[(quality, "L2")] = w.seconds
            for name, sde in sdes.items():
                score_fn = im.score_from_noise(sde, nets[name], y)
                with im.Stopwatch(device) as w:
                    out[name] = EulerMaruyama(sde, args.steps).sample(
                        score_fn, y=y, seed=args.seed + qi, backend=args.backend, progress=not args.quiet,
                        denoise=False)
                seconds[(quality, name)] = w.seconds
        for name, x in out.items():
            rows[(quality, name)] = {"psnr": float(im.psnr(x, clean).mean()), "ssim": float(im.ssim(x, clean).mean()),
                                     "swd": im.patch_swd(x, clean),
                                     "ms_per_image": 1e3 * seconds.get((quality, name), 0.0) / args.images}
        restored[quality] = out
    result = {"rows": rows, "config": vars(args), "test_patches": pick.tolist()}
    return finish_run(result, args, start, lambda: im.save_grid(
        os.path.join(args.out, "driftrec_jpeg.png"),
        [(f"JPEG q{q}" if name == "JPEG" else f"{name} (q{q})", restored[q][name])
         for q in QUALITIES for name in ("JPEG", *METHODS)] + [("clean", clean)],
        title=f"JPEG artifact removal, {args.steps} Euler-Maruyama steps (OUVE, TSDVE); L2: posterior-mean regression"),
        report)


def report(result: dict, args) -> None:
    print(f"\n{args.images} grey 32x32 test patches ({', '.join(im.TEST_GRAY)}) per JPEG quality; "
          f"{args.steps} Euler-Maruyama steps; seed {args.seed}")
    print("PSNR/SSIM: each restoration against its clean patch (higher is better); "
          "SWD: 8x8 sub-patch set vs clean set (lower is better)")
    print(f"  {'quality':>7s} {'method':8s} {'PSNR dB':>8s} {'SSIM':>7s} {'SWD':>7s} {'ms/image':>9s}")
    for (quality, name), r in result["rows"].items():
        ms = f"{r['ms_per_image']:9.1f}" if name != "JPEG" else f"{'-':>9s}"
        print(f"  {quality:>7d} {name:8s} {r['psnr']:8.2f} {r['ssim']:7.4f} {r['swd']:7.4f} {ms}")
    if result["figure"]:
        print(f"figure: {result['figure']}")
    print(f"{result['seconds']:.1f} s")


if __name__ == "__main__":
    main()
