"""Plumbing shared by the examples: the command line's common options, the end of a run (figure,
timing, table) and figures (matplotlib is optional: ``pip install 'sdekit[examples]'``)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def example_parser(doc: str, device_help: str = "torch device", epilog: str | None = None) -> argparse.ArgumentParser:
    """An example's parser: the first paragraph of its docstring ``doc`` as description, and ``--device``
    (default ``cpu``; ``device_help`` says what runs there)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=epilog)
    p.add_argument("--device", default="cpu", help=f"{device_help} (default: cpu)")
    return p


def add_output_options(p: argparse.ArgumentParser, figure_name: str, progress: str = "progress bars") -> None:
    """``--no-figure`` (of ``figure_name``), ``--out`` (its folder) and ``--quiet`` (no ``progress`` and no table)."""
    p.add_argument("--no-figure", action="store_true", help=f"do not write examples/out/{figure_name}")
    p.add_argument("--out", default=OUT_DIR, help="folder for the figure (default: examples/out)")
    p.add_argument("--quiet", action="store_true", help=f"no {progress} and no table")


def finish_run(out: dict, args, start: float, draw_figure: Callable[[], str | None],
               report: Callable[[dict, argparse.Namespace], None]) -> dict:
    """Complete an example's result ``out``: ``figure`` (the path ``draw_figure()`` wrote, ``None`` under
    ``--no-figure``), ``seconds`` since ``start`` (``time.perf_counter``); print ``report(out, args)``
    unless ``--quiet``.  Returns ``out``."""
    out["figure"] = None if args.no_figure else draw_figure()
    out["seconds"] = time.perf_counter() - start
    if not args.quiet:
        report(out, args)
    return out


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend, or ``None`` (with a message on
    stderr) when matplotlib is not installed: the examples then print their numbers without a figure."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'sdekit[examples]'): no figure", file=sys.stderr)
        return None
    return plt


def save_figure(fig, out_dir: str, name: str, dpi: int = 100) -> str:
    """Write ``fig`` to ``out_dir/name`` (creating the folder), close it, return the path."""
    import matplotlib.pyplot as plt
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
