"""Figure plumbing shared by the examples: matplotlib is optional (``pip install 'sdekit[examples]'``)."""
from __future__ import annotations

import os
import sys


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
