"""Turn derived sympy expressions into torch (and numpy) functions.

Generated functions take ``t`` and the parameter values as float64 tensors and are
cached by expression, so two SDEs of the same form (say ``OUVE(gamma=1)`` and
``OUVE(gamma=2)``) share one compiled function and sympy runs once.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.special
import sympy as sp
import torch


def _special_dawsn(x):
    from sdekit.special import dawsn as torch_dawsn

    return torch_dawsn(x)


def _tensor_args(fn):
    """``fn`` that also accepts python numbers (constant subexpressions such as ``sqrt(2)``)."""

    @functools.wraps(fn)
    def wrapped(*args):
        return fn(*(a if isinstance(a, torch.Tensor) else torch.tensor(float(a), dtype=torch.float64)
                    for a in args))

    return wrapped


_TORCH = {
    "exp": torch.exp, "expm1": torch.expm1, "log": torch.log, "log1p": torch.log1p,
    "sqrt": torch.sqrt, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan,
    "sinh": torch.sinh, "cosh": torch.cosh, "tanh": torch.tanh, "atan": torch.atan,
    "asin": torch.asin, "acos": torch.acos, "Abs": torch.abs, "erf": torch.special.erf,
    "erfc": torch.special.erfc, "dawsn": _special_dawsn, "Max": torch.maximum, "Min": torch.minimum,
}
_TORCH = {name: _tensor_args(fn) for name, fn in _TORCH.items()}
_NUMPY = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "sqrt": np.sqrt,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "atan": np.arctan, "asin": np.arcsin, "acos": np.arccos, "Abs": np.abs,
    "erf": scipy.special.erf, "erfc": scipy.special.erfc, "erfi": scipy.special.erfi,
    "dawsn": scipy.special.dawsn, "Max": np.maximum, "Min": np.minimum, "pi": math.pi,
}


def _numeric_constants(expr: sp.Expr) -> sp.Expr:
    """Evaluate symbol-free subexpressions (``sqrt(pi)``, ``1/3``) to float64 literals."""
    return expr.evalf(n=17)


def _check_functions(expr: sp.Expr, table: dict, target: str) -> None:
    for f in expr.atoms(sp.Function):
        name = type(f).__name__
        if name not in table:
            raise ValueError(f"function {name!r} in {expr} has no {target} implementation in sdekit")


@functools.lru_cache(maxsize=512)
def torch_function(expr: sp.Expr, args: tuple[sp.Symbol, ...]):
    """``f(*tensors) -> tensor`` computing ``expr``; arguments in the order of ``args``."""
    expr = _numeric_constants(expr)
    _check_functions(expr, _TORCH, "torch")
    return sp.lambdify(args, expr, modules=[_TORCH], cse=True)


@functools.lru_cache(maxsize=512)
def numpy_function(expr: sp.Expr, args: tuple[sp.Symbol, ...]):
    """``f(*arrays) -> array`` computing ``expr`` with numpy and scipy.special."""
    _check_functions(expr, _NUMPY, "numpy")
    return sp.lambdify(args, expr, modules=[_NUMPY, "numpy"])

