"""Sampling on several processes with torch.distributed: the same samples whatever their number.

    python examples/distributed_sampling.py                                  # one process
    torchrun --nproc_per_node 2 examples/distributed_sampling.py             # two (gloo on CPU)
    torchrun --nproc_per_node 8 examples/distributed_sampling.py --device cuda --samples 64000   # 8 GPUs (NCCL)

Data: "images" of ``--dim`` pixels, each pixel independently from the two-bump mixture
``0.5 N(-0.6, 0.1^2) + 0.5 N(0.6, 0.1^2)``.  Under the VP SDE each pixel's marginal is
``0.5 N(-0.6 mx, 0.01 mx^2 + v) + 0.5 N(0.6 mx, 0.01 mx^2 + v)``, whose score (:func:`score`) is
exact and pixel-wise, so no network is trained and the samples can be checked against the data
law: rank 0 prints the fraction of pixels per bump and each bump's mean and spread.  It also
prints a SHA-256 of the samples' bytes: the same for any ``--nproc_per_node`` (``--verify``
redraws the whole batch on rank 0 alone and compares bit for bit).

The same job from the command line (``score`` below as the score):

    torchrun --nproc_per_node 2 -m sdekit.cli sample --sde VPSDE --score examples/distributed_sampling.py:score \\
        --batch-size 4096 --sample-shape 16 --steps 200 --corrector-steps 1 --sampler reverse_diffusion \\
        --seed 0 --out-dir examples/out/samples
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import time

import torch

from sdekit import VPSDE, PredictorCorrector
from sdekit import distributed

BUMP, SPREAD = 0.6, 0.1


@functools.lru_cache(maxsize=1)
def vp() -> VPSDE:
    return VPSDE(0.1, 20.0)


def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Exact score of the two-bump data under ``VPSDE(0.1, 20)``, pixel by pixel:
    ``sum_k r_k(x) (mx mu_k - x) / C = (mx BUMP tanh(BUMP mx x / C) - x) / C``, ``C = mx^2 SPREAD^2 + v``
    (``r_k`` the bumps' responsibilities; equal weights and widths make ``r_+ - r_- = tanh``).

    Each row's result is independent of the batch around it, which world-size independent samples
    need: ``torch.tanh`` runs torch's vector math on every element, whereas ``torch.sigmoid``'s CPU
    kernel computes the last elements of a tensor with scalar ``exp`` (1 ulp apart), so with it the
    last row of a shard would depend on where the shard ends.
    """
    mx, _ = vp().mean_coeffs(t)
    v = vp().marginal_var(t)
    shape = (-1,) + (1,) * (x.dim() - 1)
    mx, v = mx.to(x.dtype).reshape(shape), v.to(x.dtype).reshape(shape)
    C = mx * mx * SPREAD**2 + v
    return (mx * BUMP * torch.tanh(BUMP * mx * x / C) - x) / C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=4096)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--verify", action="store_true", help="redraw on rank 0 alone and compare bitwise")
    args = p.parse_args()
    sampler = PredictorCorrector(vp(), args.steps, predictor="reverse_diffusion", corrector_steps=1)
    with distributed.process_group_from_env(args.device) as device:
        rank, world = distributed.rank_and_world()
        start = time.perf_counter()
        x = distributed.sample(sampler, score, args.samples, seed=args.seed, sample_shape=(args.dim,),
                               device=device, progress=True)
        seconds = time.perf_counter() - start
        if rank != 0:
            return
        x = x.cpu().double()
        print(f"{args.samples} samples x {args.dim} pixels, {args.steps} PC steps, {world} process(es): "
              f"{seconds:.1f} s")
        print(f"sha256 of the samples: {hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16]}")
        for sign, name in ((1, "+"), (-1, "-")):
            bump = x[sign * x > 0]
            print(f"bump {name}{BUMP}: {bump.numel() / x.numel():.3f} of pixels (data 0.5), "
                  f"mean {bump.mean():+.4f} (data {sign * BUMP:+.1f}), std {bump.std():.4f} (data {SPREAD})")
        if args.verify:
            alone = sampler.sample(score, shape=(args.samples, args.dim), seed=args.seed, device=device).cpu().double()
            print(f"bitwise identical to one process: {torch.equal(alone, x)}")


if __name__ == "__main__":
    main()
