"""The one table of sampler names: what ``PredictorCorrector(predictor=...)``,
``PredictorCorrector(corrector=...)`` and ``DMPS(solver=...)`` accept.

A sampler module registers its class with :func:`register_sampler` (a
:class:`~sdekit.solvers.base.ReverseSampler`) or :func:`register_corrector` (a
:class:`~sdekit.solvers.base.Corrector`); importing :mod:`sdekit.solvers` imports them all.
"""
from __future__ import annotations

from typing import Callable

SAMPLERS: dict[str, type] = {}
CORRECTORS: dict[str, type] = {}


def register_sampler(name: str) -> Callable[[type], type]:
    """Class decorator: ``name`` selects this reverse sampler."""
    return _register(SAMPLERS, name)


def register_corrector(name: str) -> Callable[[type], type]:
    """Class decorator: ``name`` selects this corrector."""
    return _register(CORRECTORS, name)


def _register(table: dict, name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        if name in table and table[name] is not cls:
            raise ValueError(f"name {name!r} is already registered for {table[name].__name__}")
        table[name] = cls
        return cls

    return deco


def lookup(table: dict, name, argument: str) -> type:
    """The class registered as ``name`` in ``table``; ``ValueError`` naming ``argument`` otherwise."""
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"{argument} must be one of {sorted(table)}, got {name!r}")
    return table[name]
