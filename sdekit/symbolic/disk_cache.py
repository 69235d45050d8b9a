"""A cache on disk for derived solutions, so a new process does not re-run sympy.

Deriving TSDVE's variance takes sympy about 2 s; every fresh process (a training
script, the CLI, a test run) would pay it again.  Solutions are stored as ``srepr``
text under ``$SDEKIT_CACHE_DIR`` (default ``$XDG_CACHE_HOME/sdekit`` or
``~/.cache/sdekit``), keyed by a hash of the coefficients, the sympy version and the
source of :mod:`sdekit.symbolic` (so a change to the derivation invalidates old
entries).  ``SDEKIT_CACHE_DIR=off`` disables it.  Only complete closed forms are
stored, never a result cut short by the time budget, and an entry is written only
after it reads back equal.  Any I/O problem just means no caching.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import tempfile

import sympy as sp
from sympy.codegen.cfunctions import expm1

from .functions import dawsn

_NAMES = ("A", "mx", "my", "v")


def cache_dir() -> pathlib.Path | None:
    configured = os.environ.get("SDEKIT_CACHE_DIR")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "none") else pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "sdekit"


@functools.lru_cache(maxsize=1)
def _source_fingerprint() -> str:
    h = hashlib.sha256(sp.__version__.encode())
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def _key(coefficients) -> str:
    parts = [_source_fingerprint(), sp.srepr(coefficients.a), sp.srepr(coefficients.c),
             sp.srepr(coefficients.g), sp.srepr(coefficients.params)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _parse(text: str) -> sp.Expr:
    return sp.sympify(text, locals={"dawsn": dawsn, "expm1": expm1})


def load(coefficients) -> tuple | None:
    """``(A, mx, my, v)`` stored for ``coefficients``, or ``None``."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        stored = json.loads((folder / f"{_key(coefficients)}.json").read_text())
        return tuple(_parse(stored[name]) for name in _NAMES)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, sp.SympifyError):
        return None


def store(coefficients, solutions: tuple) -> bool:
    """Write ``(A, mx, my, v)``; ``False`` when not stored (incomplete, not round-trippable, I/O)."""
    folder = cache_dir()
    if folder is None or any(e is None for e in solutions):
        return False
    texts = {name: sp.srepr(e) for name, e in zip(_NAMES, solutions)}
    if any("Dummy" in text for text in texts.values()):
        return False
    try:
        if tuple(_parse(texts[name]) for name in _NAMES) != tuple(solutions):
            return False
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
            json.dump(texts, f)
        os.replace(f.name, folder / f"{_key(coefficients)}.json")
    except (OSError, ValueError, TypeError, SyntaxError, sp.SympifyError):
        return False
    return True
