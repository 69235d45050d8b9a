"""Command line: ``sdekit derive``, ``sdekit info`` and ``sdekit sample``.

    sdekit derive --drift "gamma*t*(y - x)" --diffusion "sigma_min*(sigma_max/sigma_min)**t"
    sdekit derive ... --latex
    sdekit info
    torchrun --nproc_per_node 4 -m sdekit.cli sample --sde VPSDE --score mypkg.nets:score \
        --batch-size 50000 --sample-shape 3,32,32 --steps 1000 --seed 0 --out-dir samples/
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import platform
import sys
import time
from pathlib import Path

import sympy as sp

from .symbolic.moments import DIVERGES, derive
from .symbolic.display import derivation_latex, derivation_text
from .symbolic.parse import RESERVED, identifiers, parse_linear_sde


def _free_parameters(*exprs: str) -> list[str]:
    """Identifiers in the expressions that are neither variables nor functions: the parameters."""
    return sorted(set().union(*(identifiers(e) for e in exprs)) - set(RESERVED))


def _derive(args) -> int:
    names = _free_parameters(args.drift, args.diffusion)
    coeffs = parse_linear_sde(args.drift, args.diffusion, names)
    d = derive(coeffs)
    numerical = [k for k, v in (("mx", d.mx), ("my", d.my), ("v", d.v)) if v is None]
    diverging = [k for k in numerical if d.reasons.get(k) == DIVERGES]
    if diverging:
        raise ValueError(f"the drift or diffusion is not integrable from t = 0: the integral for "
                         f"{', '.join(diverging)} diverges (LinearSDE refuses such coefficients)")
    print(derivation_latex(d) if args.latex else derivation_text(d))
    if numerical:
        why = "; ".join(f"{k}: {d.reasons.get(k, 'no closed form')}" for k in numerical)
        print(f"note: no closed form for {', '.join(numerical)} ({why}); sdekit evaluates "
              "them by quadrature tabulated as a Chebyshev series (LinearSDE.paths gives the error bound)",
              file=sys.stderr if args.latex else sys.stdout)
    return 0


def _info(args) -> int:
    import numpy
    import scipy
    import torch

    from . import __version__
    from .kernels import cpu_ext
    from .kernels.dispatch import BACKENDS, backend_unavailable_reason

    print(f"sdekit   {__version__}")
    print(f"python   {platform.python_version()}")
    print(f"torch    {torch.__version__} (CUDA {torch.version.cuda or 'none'}, "
          f"device available: {torch.cuda.is_available()})")
    try:
        import triton

        print(f"triton   {triton.__version__}")
    except ImportError:
        print("triton   not installed")
    print(f"numpy    {numpy.__version__}\nscipy    {scipy.__version__}\nsympy    {sp.__version__}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        for b in BACKENDS:
            reason = backend_unavailable_reason(b, torch.device(dev))
            state = "available" if reason is None else "unavailable: " + reason
            if b == "cpu" and reason is None:
                state += f" ({cpu_ext.vector_kernels()} kernels)"
            print(f"backend {b:<7} on {dev:<5} {state}")
    return 0


def _zoo() -> dict[str, type]:
    """The SDE classes of :mod:`sdekit.sde.zoo`, by name."""
    from .sde import LinearSDE, zoo

    return {name: cls for name, cls in vars(zoo).items()
            if inspect.isclass(cls) and issubclass(cls, LinearSDE) and cls is not LinearSDE}


def load_callable(spec: str):
    """``"package.module:function"`` or ``"path/to/file.py:function"`` -> the callable (``function``
    may be a dotted attribute path)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--score must be module:function or file.py:function, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"--score: no file {module_name!r}")
            loader_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--score: cannot import {module_name!r}: {err}") from err
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"--score: {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"--score: {spec!r} is not callable")
    return obj


def _key_values(pairs: list[str]) -> dict[str, float]:
    """``["beta_max=20", ...]`` -> ``{"beta_max": 20.0, ...}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not (sep and key):
                raise ValueError
            out[key] = float(value)
        except ValueError:
            raise ValueError(f"--sde-param must be name=number, got {pair!r}") from None
    return out


def _sample(args) -> int:
    import torch

    from . import distributed
    from .solvers import PredictorCorrector
    from .solvers.registry import SAMPLERS

    zoo = _zoo()
    if args.sde not in zoo:
        raise ValueError(f"--sde must be one of {sorted(zoo)}, got {args.sde!r}")
    try:
        sde = zoo[args.sde](**_key_values(args.sde_param))
    except TypeError as err:
        raise ValueError(f"--sde-param: {err}") from err
    if sde.has_y_drift:
        raise ValueError(f"{args.sde}'s drift depends on y (conditioning); sample it from Python with "
                         "sdekit.distributed.sample(..., y=...)")
    try:
        shape = tuple(int(d) for d in args.sample_shape.split(","))
    except ValueError:
        raise ValueError(f"--sample-shape must be comma-separated ints, got {args.sample_shape!r}") from None
    score = load_callable(args.score)
    if args.sampler not in SAMPLERS:
        raise ValueError(f"--sampler must be one of {sorted(SAMPLERS)}, got {args.sampler!r}")
    if args.corrector_steps:
        sampler = PredictorCorrector(sde, args.steps, predictor=args.sampler, corrector_steps=args.corrector_steps,
                                     snr=args.snr)
    else:
        sampler = SAMPLERS[args.sampler](sde, args.steps)
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    with distributed.process_group_from_env(args.device, args.timeout) as device:
        rank, world = distributed.rank_and_world()
        start = time.perf_counter()
        out_dir = Path(args.out_dir)
        result = distributed.sample(sampler, score, args.batch_size, seed=args.seed, sample_shape=shape,
                                    out_dir=None if args.gather else out_dir, timeout=args.timeout,
                                    progress=not args.no_progress, dtype=dtype, device=device, backend=args.backend)
        if args.gather and rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"samples": result.cpu(), "seed": args.seed, "world_size": world}, out_dir / "samples.pt")
        if rank == 0:
            what = "samples.pt" if args.gather else f"{world} shard file(s) (sdekit.distributed.load_shards)"
            print(f"sdekit sample: {args.batch_size} samples of shape {shape} by {world} process(es) in "
                  f"{time.perf_counter() - start:.1f} s -> {out_dir}/ ({what})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sdekit", description="Linear SDEs for score-based diffusion.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("derive", help="derive the mean/variance ODEs of a linear SDE and solve them")
    p.add_argument("--drift", required=True, help='affine in x and y, e.g. "gamma*t*(y - x)"')
    p.add_argument("--diffusion", required=True, help='a function of t, e.g. "sigma*exp(t)"')
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    p.set_defaults(func=_derive)
    p = sub.add_parser("info", help="versions and available backends")
    p.set_defaults(func=_info)
    p = sub.add_parser("sample", help="draw samples with a score, on one or many processes (launch with torchrun)",
                       description="Draw --batch-size samples; under torchrun each process draws its block of "
                                   "rows, and the samples are bitwise the same for any number of processes.")
    p.add_argument("--sde", required=True, help="a zoo SDE without y-drift: VPSDE, VESDE, SubVPSDE")
    p.add_argument("--sde-param", action="append", default=[], metavar="NAME=VALUE",
                   help="constructor argument of the SDE, e.g. beta_max=20 (repeatable)")
    p.add_argument("--score", required=True, help="score(x, t) as module:function or file.py:function")
    p.add_argument("--batch-size", type=int, required=True, help="global number of samples")
    p.add_argument("--sample-shape", required=True, help="shape of one sample, e.g. 3,32,32")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--sampler", default="euler_maruyama", help="a registered sampler (the predictor with a corrector)")
    p.add_argument("--corrector-steps", type=int, default=0, help="Langevin corrector steps per step (0: none)")
    p.add_argument("--snr", type=float, default=0.16, help="the Langevin corrector's signal-to-noise ratio")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out-dir", required=True, help="one shard-RRRRR-of-WWWWW.pt per process (or samples.pt)")
    p.add_argument("--gather", action="store_true", help="gather to rank 0 and write one samples.pt")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--device", default="cpu", help="cpu or cuda (each process takes cuda:LOCAL_RANK)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds any process waits for another")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown on rank 0 only)")
    p.set_defaults(func=_sample)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"sdekit: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
