"""The first GPU run's timings, side by side in one process, without pytest or pytest-benchmark.

In priority order (issue 19), each result appended to ``OUT/timing.json`` as soon as it is
measured (a timeout loses nothing measured) and the table rewritten to ``OUT/timing.md``:

1. the EM step ``x = A x + C y + S score + N z`` and ``dawsn``, float32 at 2^20 and 2^26:
   copy / eager / torch.compile / Triton / CUDA / the compiled ``cpu`` backend, with GB/s and
   the fraction of the copy's;
2. the 100-step EM loop at 2^10 (score = -x), eagerly and replayed from a CUDA graph, us/step;
3. the DMPS likelihood score at batch 1, 256 x 256 x 3, for deblurring and 4x super-resolution.

The fused rows call each op's front door (:func:`sdekit.kernels.steps.affine_step`,
:func:`sdekit.kernels.dawsn.dawsn`, :func:`sdekit.inverse.likelihood_score`) with an explicit
``backend``, so they time what a caller gets, argument checks included.  A backend that cannot
run on the device (``cpu`` on a GPU tensor, ``cuda`` on a CPU one) is a row noting why.

Times are medians of CUDA-event intervals (``time.perf_counter`` on a CPU); every row records
its error instead of stopping the run.  ``--dry-run`` runs the same code on the CPU at 2^10
and 2^12 (what the CPU tests check).

    python tools/gpu_timing.py OUT [--dry-run]
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import statistics
import sys
import time
import traceback

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import capture_cuda_graph  # noqa: E402
from sdekit.kernels import steps as fused  # noqa: E402
from sdekit.kernels.dispatch import backend_unavailable_reason  # noqa: E402

FUSED_BACKENDS = ("triton", "cuda", "cpu")  # the cpu backend: the same arithmetic compiled for the host
BYTES_PER_ELEMENT = {"EM step": 16, "dawsn": 8, "copy": 8}  # float32: read 3 + write 1; read 1 + write 1


class Recorder:
    """Appends rows to ``timing.json`` and rewrites ``timing.md`` after every measurement."""

    def __init__(self, out: pathlib.Path, device: torch.device):
        self.out, self.rows = out, []
        self.meta = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                     "torch": torch.__version__, "cuda": torch.version.cuda}
        try:
            import triton

            self.meta["triton"] = triton.__version__
        except ImportError:
            self.meta["triton"] = None

    def add(self, **row):
        self.rows.append(row)
        (self.out / "timing.json").write_text(json.dumps({"meta": self.meta, "rows": self.rows}, indent=1))
        (self.out / "timing.md").write_text(self.table())
        print(json.dumps(row), flush=True)

    def table(self) -> str:
        copy = {(r["what"], r["n"]): r["us"] for r in self.rows if r["impl"] == "copy" and "us" in r}
        lines = [f"device: {self.meta}", "", "| what | n | impl | us | GB/s | fraction of copy | note |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            us = r.get("us")
            c = copy.get((r["what"], r["n"]))
            frac = f"{c / us:.2f}" if us and c and r["impl"] != "copy" and r.get("bytes") else ""
            gbs = f"{r['bytes'] / us / 1e3:.0f}" if us and r.get("bytes") else ""
            lines.append(f"| {r['what']} | {r['n']} | {r['impl']} | {'' if us is None else f'{us:.2f}'} | {gbs} | "
                         f"{frac} | {r.get('error', r.get('note', ''))} |")
        return "\n".join(lines) + "\n"


def timer(device: torch.device):
    """``median_us(fn, reps)``: CUDA events on a GPU, perf_counter on a CPU."""
    def median_us(fn, reps):
        fn()  # warm-up (compiles)
        fn()
        times = []
        for _ in range(reps):
            if device.type == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) * 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e6)
        return statistics.median(times)
    return median_us


class Unavailable(Exception):
    """This backend cannot run here (recorded as a note, not as an error)."""


def measure(rec: Recorder, median_us, what, n, impl, make, reps, per_call=1, bytes_=None):
    try:
        us = median_us(make(), reps) / per_call
        rec.add(what=what, n=n, impl=impl, us=us, bytes=bytes_)
    except Unavailable as e:
        rec.add(what=what, n=n, impl=impl, us=None, note=f"skipped: {e}")
    except Exception as e:  # noqa: BLE001 - record and go on: one failure must not lose the rest
        rec.add(what=what, n=n, impl=impl, us=None, error=f"{type(e).__name__}: {e}"[:300],
                trace=traceback.format_exc()[-1500:])


def _unavailable(backend, device):
    reason = backend_unavailable_reason(backend, device)
    if reason:
        raise Unavailable(reason)


def em_step_rows(rec, median_us, device, n, reps, compile_ok):
    g = torch.Generator(device=device).manual_seed(0)
    x, y, s = (torch.randn(1, n, generator=g, device=device) for _ in range(3))
    A, C, S, N = (torch.tensor(v, device=device) for v in (0.99, -0.01, 0.02, 0.1))
    coef = torch.stack([A, C, S, N]).reshape(4, 1)
    eager = lambda: A * x + C * y + S * s + N * torch.randn_like(x)  # noqa: E731
    nbytes = BYTES_PER_ELEMENT["EM step"] * n
    measure(rec, median_us, "EM step", n, "copy", lambda: (lambda: x.copy_(y)), reps, bytes_=8 * n)
    measure(rec, median_us, "EM step", n, "eager", lambda: eager, reps, bytes_=nbytes)
    for backend in FUSED_BACKENDS:
        def fused_step(backend=backend):
            _unavailable(backend, device)
            return lambda: fused.affine_step(x, coef, score=s, y=y, seed=1, step=2, out=x, backend=backend)
        measure(rec, median_us, "EM step", n, backend, fused_step, reps, bytes_=nbytes)
    if compile_ok:  # last: its compile takes the longest, so a timeout loses it first
        def compiled():
            f = torch.compile(lambda x, y, s, A, C, S, N: A * x + C * y + S * s + N * torch.randn_like(x),
                              dynamic=False)
            return lambda: f(x, y, s, A, C, S, N)
        measure(rec, median_us, "EM step", n, "torch.compile", compiled, reps, bytes_=nbytes)


def dawsn_rows(rec, median_us, device, n, reps, compile_ok):
    from sdekit.kernels.dawsn import dawsn
    from sdekit.kernels.dawsn.reference import dawsn_reference

    x = torch.randn(n, device=device) * 4
    out = torch.empty_like(x)
    nbytes = BYTES_PER_ELEMENT["dawsn"] * n
    measure(rec, median_us, "dawsn", n, "copy", lambda: (lambda: out.copy_(x)), reps, bytes_=nbytes)
    measure(rec, median_us, "dawsn", n, "eager", lambda: (lambda: dawsn_reference(x)), reps, bytes_=nbytes)
    for backend in FUSED_BACKENDS:
        def run(backend=backend):
            _unavailable(backend, device)
            return lambda: dawsn(x, backend=backend)
        measure(rec, median_us, "dawsn", n, backend, run, reps, bytes_=nbytes)
    if compile_ok:
        measure(rec, median_us, "dawsn", n, "torch.compile",
                lambda: (lambda f=torch.compile(dawsn_reference, dynamic=False): f(x)), reps, bytes_=nbytes)


def loop_rows(rec, median_us, device, reps):
    from sdekit.sde import OUVE
    from sdekit.solvers import EulerMaruyama

    n, steps = 2**10, 100
    sde = OUVE()
    g = torch.Generator(device=device).manual_seed(0)
    x_T, y = (torch.randn(1, n, generator=g, device=device) for _ in range(2))
    for backend in ("torch", *FUSED_BACKENDS):
        def eager_loop(backend=backend):
            _unavailable(backend, device)
            em = EulerMaruyama(sde, steps)
            return lambda: em.sample(lambda x, t: -x, y=y, x_T=x_T, seed=1, backend=backend)
        measure(rec, median_us, "100-step loop, us/step", n, f"{backend} eager", eager_loop, reps, per_call=steps)
        if backend in ("torch", "cpu"):  # no graphs to replay
            continue

        def graphed(backend=backend):
            _unavailable(backend, device)
            if device.type != "cuda":
                raise Unavailable("CUDA graphs need a GPU")
            h = (sde.T - sde.t_eps) / steps
            table = torch.stack([torch.tensor([1.0 - 0.1 * h, -0.1 * h, h, math.sqrt(h)], device=device)
                                 .reshape(4, 1) for _ in range(steps)])
            x = x_T.clone()

            def loop():
                for k in range(steps):
                    fused.affine_step(x, table[k], score=torch.neg(x), y=y, seed=1, step=k, out=x, backend=backend)
            return capture_cuda_graph(loop).replay
        measure(rec, median_us, "100-step loop, us/step", n, f"{backend} CUDA graph", graphed, reps, per_call=steps)


def dmps_rows(rec, median_us, device, reps, size):
    from sdekit.inverse import SeparableBlur, SuperResolution, likelihood_score

    j = torch.arange(-9, 10, dtype=torch.float64)
    k = torch.exp(-j**2 / 18.0)
    k = k / k.sum()
    ops = {"deblur (gauss, separable)": lambda: SeparableBlur(k, k, 3, size),
           "SR x4": lambda: SuperResolution(4, 3, size)}
    backends = ("torch", "triton", "cuda") if device.type == "cuda" else ("torch", "cpu")
    for name, make_op in ops.items():
        for backend in backends:
            def run(make_op=make_op, backend=backend):
                _unavailable(backend, device)
                op = make_op()
                g = torch.Generator(device=device).manual_seed(1)
                x = torch.randn(1, 3, size, size, device=device, generator=g)
                y = op.forward(torch.randn(1, 3, size, size, device=device, generator=g))
                return lambda: likelihood_score(op, y, x, mean_scale=0.6, std=0.8, sigma_y=0.05, backend=backend)
            measure(rec, median_us, f"DMPS score b1 {size}x{size}x3 {name}", 1, backend, run, reps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--dry-run", action="store_true", help="CPU, small sizes: checks the script, measures nothing")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu" if a.dry_run or not torch.cuda.is_available() else "cuda")
    rec = Recorder(a.out, device)
    median_us = timer(device)
    sizes, reps, size = ((2**10, 2**12), 3, 64) if a.dry_run else ((2**20, 2**26), 20, 256)
    compile_ok = not a.dry_run  # inductor's C++ build on a CPU would dominate a dry run
    with torch.no_grad():
        for n in sizes:
            em_step_rows(rec, median_us, device, n, reps, compile_ok)
            dawsn_rows(rec, median_us, device, n, reps, compile_ok)
        loop_rows(rec, median_us, device, reps)
        dmps_rows(rec, median_us, device, reps, size)
    return rec


if __name__ == "__main__":
    main()
