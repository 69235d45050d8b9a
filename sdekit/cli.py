"""Command line: ``sdekit derive`` and ``sdekit info``.

    sdekit derive --drift "gamma*t*(y - x)" --diffusion "sigma_min*(sigma_max/sigma_min)**t"
    sdekit derive ... --latex
    sdekit info
"""
from __future__ import annotations

import argparse
import platform
import sys

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
            print(f"backend {b:<7} on {dev:<5} {'available' if reason is None else 'unavailable: ' + reason}")
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
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"sdekit: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
