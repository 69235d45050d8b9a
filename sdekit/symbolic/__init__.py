"""Symbolic derivation of linear-SDE marginals: parse, solve, stabilise, compile."""
from .moments import Derivation, derive
from .functions import dawsn
from .parse import LinearCoefficients, parse_linear_sde

__all__ = ["Derivation", "derive", "dawsn", "LinearCoefficients", "parse_linear_sde"]
