"""The compiled CPU extension ``sdekit._cpu``: the ``sdekit/csrc`` arithmetic built for the host.

``setup.py`` compiles ``sdekit/csrc/cpu/ops.cpp`` (which includes the same ``SDEKIT_HD``
headers as the CUDA kernels) into ``sdekit._cpu`` at install time, whenever a C++
compiler is found; ``pip install -e .`` does it for a source checkout.  Importing it
registers the ``CPU`` implementations of the ops whose schemas the op folders define
(``torch.ops.sdekit.dawsn``, ``sde_affine_step``, ``sde_sample_sq_norms``,
``spectral_scale``).  There is no build on first use: when the extension is missing
(no compiler at install, or a checkout that was never installed) the ``"cpu"`` backend
is unavailable, ``backend="auto"`` falls back to the torch reference, and one warning
says why (``sdekit info`` says it too).
"""
from __future__ import annotations

import importlib
import threading
import warnings

_lock = threading.Lock()
_state: dict[str, object] = {}


def load() -> None:
    """Import ``sdekit._cpu`` (registers its CPU kernels); raises ``RuntimeError`` saying why not."""
    if _state.get("loaded"):  # without the lock: launchers call this every time, also inside torch.compile
        return
    with _lock:
        if "error" not in _state and not _state.get("loaded"):
            try:
                importlib.import_module("sdekit._cpu")
                _state["loaded"] = True
            except ImportError as exc:
                _state["error"] = (f"the compiled CPU extension sdekit._cpu is not built or does not load ({exc}); "
                                   "reinstall with a C++ compiler present (pip install -e .) to build it")
                warnings.warn(f"sdekit: {_state['error']}; using the torch reference on CPU tensors",
                              RuntimeWarning, stacklevel=3)
        if "error" in _state:
            raise RuntimeError(_state["error"])


def unavailable_reason() -> str | None:
    """Why the compiled CPU kernels cannot run, or ``None`` when they can."""
    if _state.get("loaded"):  # the common case first: every CPU-tensor call of an op asks
        return None
    if "error" in _state:
        return str(_state["error"])
    try:
        load()
    except RuntimeError as exc:
        return str(exc)
    return None


def vector_kernels() -> str | None:
    """The vector kernels the built extension carries: ``"avx512"``, ``"avx2"`` (AVX2 + FMA) or
    ``"scalar"`` (``setup.py``'s ``-march`` decides); ``None`` when the extension is unavailable."""
    if unavailable_reason() is not None:
        return None
    return importlib.import_module("sdekit._cpu").vector_kernels
