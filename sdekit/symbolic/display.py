"""Text and LaTeX renderings of a derivation (shared by ``LinearSDE.latex`` and the CLI)."""
from __future__ import annotations

import sympy as sp

from .moments import Derivation
from .parse import x, y

_LABELS = {"mx": ("mx(t)", r"m_x(t)"), "my": ("my(t)", r"m_y(t)"), "v": ("v(t)", r"v(t)")}


def _solutions(d: Derivation) -> dict[str, sp.Expr | None]:
    return {"mx": d.mx, "my": d.my, "v": d.v}


def derivation_latex(d: Derivation, missing: dict[str, str] | None = None) -> str:
    """The SDE, its moment ODEs and their solutions as a LaTeX ``aligned`` block;
    ``missing[name]`` describes a solution without closed form (default "numerical")."""
    c = d.coefficients
    lines = [
        rf"dx &= \left({sp.latex(c.a * x + c.c * y)}\right) dt + {sp.latex(c.g)}\, dw",
        sp.latex(d.mean_ode).replace("=", "&=", 1),
        sp.latex(d.variance_ode).replace("=", "&=", 1),
    ]
    for name, expr in _solutions(d).items():
        body = sp.latex(expr) if expr is not None else r"\text{%s}" % (missing or {}).get(name, "numerical")
        lines.append(rf"{_LABELS[name][1]} &= {body}")
    return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"


def derivation_text(d: Derivation) -> str:
    """Plain-text rendering of the same."""
    c = d.coefficients
    names = ", ".join(p.name for p in c.params) or "(none)"
    rows = [
        f"SDE:           dx = ({c.a * x + c.c * y}) dt + ({c.g}) dw",
        f"parameters:    {names} (positive reals); v0 = Var x(0)",
        f"mean ODE:      d/dt m = {d.mean_ode.rhs}",
        f"variance ODE:  d/dt v = {d.variance_ode.rhs}",
    ]
    for name, expr in _solutions(d).items():
        rows.append(f"{_LABELS[name][0] + ':':<15}{expr if expr is not None else 'no closed form'}")
    return "\n".join(rows)
