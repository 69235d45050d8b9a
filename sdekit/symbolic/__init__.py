"""Symbolic derivation of linear-SDE marginals: parse, solve, stabilise, compile.

``parse`` checks the SDE is linear; ``moments`` solves the mean and variance ODEs with sympy
(integrating factor, on a time budget); ``stable`` rewrites the solutions (``expm1``, Dawson);
``series`` the Taylor branch near ``t = 0`` and its verified radius; ``numeric`` the tabulated
quadrature where sympy finds no closed form; ``marginals`` chooses among them and returns a
:class:`~sdekit.symbolic.marginals.Marginals` with stated error bounds and a self-check.
"""
from .moments import Derivation, derive
from .functions import dawsn
from .parse import LinearCoefficients, parse_linear_sde

__all__ = ["Derivation", "derive", "dawsn", "LinearCoefficients", "parse_linear_sde"]
