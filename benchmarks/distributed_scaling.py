"""Wall time of one fixed global sampling job on 1, 2, ... processes (``sdekit.distributed``).

    nice python benchmarks/distributed_scaling.py                          # CPU, gloo: 1 and 2 processes
    python benchmarks/distributed_scaling.py --device cuda --procs 1 2 4 8 # GPU machine: NCCL, one GPU each

The job: ``--batch`` samples of ``--dim`` float32 pixels, ``--steps`` predictor-corrector steps
(reverse diffusion + one Langevin step with the batch-mean step size, so every corrector update
gathers per-sample norms from all processes; ``--sampler em``: Euler-Maruyama, no collective
until the final gather) on ``--backend`` (default ``auto``), the exact pixel-wise score of
``examples/distributed_sampling.py``, gathered to rank 0.  Each process runs one intra-op thread
(as under ``torchrun``).  Timed on rank 0 from a barrier to the gathered result (process start,
imports and the process group's rendezvous excluded), min and median over ``--repeats`` runs
after one warm-up run.  The samples' SHA-256 must be the same for every process count: the script
says so, or fails.  Results: ``benchmarks/RESULTS.md``, "Distributed sampling".
"""
from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))


def _rank_main(rank, world, port, args, results):
    torch.set_num_threads(1)
    from distributed_sampling import score, vp

    from sdekit import EulerMaruyama, PredictorCorrector
    from sdekit import distributed as sd

    device = torch.device("cuda", rank) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world, timeout=timedelta(seconds=600))
    try:
        if args.sampler == "pc":
            sampler = PredictorCorrector(vp(), args.steps, predictor="reverse_diffusion", corrector_steps=1)
        else:
            sampler = EulerMaruyama(vp(), args.steps)

        def job():
            return sd.sample(sampler, score, args.batch, seed=0, sample_shape=(args.dim,), device=device,
                             backend=args.backend)

        job()  # warm-up: kernels, caches, the score's first call
        times = []
        for _ in range(args.repeats):
            dist.barrier()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            x = job()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        if rank == 0:
            results.put((times, hashlib.sha256(x.cpu().numpy().tobytes()).hexdigest()))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--sampler", choices=("pc", "em"), default="pc")
    p.add_argument("--backend", default="auto")
    args = p.parse_args()
    if args.device == "cuda" and max(args.procs) > torch.cuda.device_count():
        sys.exit(f"--procs {max(args.procs)} needs as many GPUs; this machine has {torch.cuda.device_count()}")
    print(f"job: {args.batch} x {args.dim} float32, {args.steps} {args.sampler} steps, backend {args.backend}, "
          f"{args.device}; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    ctx = mp.get_context("spawn")
    hashes, base = set(), None
    for world in args.procs:
        results = ctx.Queue()
        mp.start_processes(_rank_main, args=(world, _free_port(), args, results), nprocs=world, join=True,
                           start_method="spawn")
        times, digest = results.get()
        hashes.add(digest)
        best, median = min(times), statistics.median(times)
        base = base or best
        print(f"{world} process(es): min {best:.2f} s, median {median:.2f} s, speed-up {base / best:.2f}x, "
              f"sha256 {digest[:16]}, load average after: {os.getloadavg()[0]:.1f}")
    if len(hashes) != 1:
        sys.exit("FAILED: the samples differ between process counts")
    print("the samples are bitwise identical for every process count")


if __name__ == "__main__":
    main()
