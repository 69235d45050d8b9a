"""The compiled CUDA extension: ahead of time (``sdekit._C``) or just in time.

How CUDA kernels live in sdekit (follow this when adding one):

* ``sdekit/csrc/<name>.cuh`` -- the arithmetic, plain C++ with ``SDEKIT_HD`` functions and no
  torch includes, so ``nvcc`` can compile it on a machine without a GPU or a CUDA torch
  (``tests/test_cuda_build.py`` does, for ``sm_90``) and ``g++`` compiles the same
  functions for the ``"cpu"`` backend (``sdekit/csrc/cpu/ops.cpp``).
* ``sdekit/csrc/<name>.cu`` -- the CUDA launcher plus ::

      TORCH_LIBRARY_IMPL(sdekit, CUDA, m) { m.impl("<op>", &<op>_cuda); }

  The op's schema, fake (meta) kernel and autograd formula are defined once, in Python, by
  the op's folder ``sdekit/kernels/<op>/__init__.py`` (so the CUDA and CPU extensions
  implement one contract), and the op is reached as ``torch.ops.sdekit.<op>``.
* ``sdekit/csrc/<name>_args.h`` (where the op has host-side work worth sharing) -- host C++ with
  torch headers: the schema's arguments unpacked into the kernel's argument struct and the
  device-independent checks, included by both the ``.cu`` binding and ``cpu/ops.cpp``.
* ``sdekit/csrc/module.cpp`` -- an empty Python module, so that the ahead-of-time build
  is importable as ``sdekit._C``.

The sources ship inside the package, so the just-in-time build works from a wheel too.
Building: ``setup.py`` compiles every ``sdekit/csrc/*.cu`` and ``*.cpp`` into ``sdekit._C``
when torch is a CUDA build and ``nvcc`` is found (or ``SDEKIT_BUILD_CUDA=1``).  Otherwise
:func:`load` compiles the same files with ``torch.utils.cpp_extension.load(...,
is_python_module=False)`` on first use (a minute or two, cached by torch in
``TORCH_EXTENSIONS_DIR``); set ``SDEKIT_CUDA_JIT=0`` to forbid that.
:func:`unavailable_reason` says why the ops cannot run (``None`` when they can); the
dispatcher (``sdekit.kernels.dispatch``) calls it before choosing the ``"cuda"`` backend.
"""
from __future__ import annotations

import glob
import importlib
import os
import pathlib
import shutil
import threading

import torch

CSRC = pathlib.Path(__file__).resolve().parents[1] / "csrc"

_lock = threading.Lock()
_state: dict[str, object] = {}


def sources() -> list[str]:
    """The files of the CUDA extension: every ``sdekit/csrc/*.cu`` and ``sdekit/csrc/*.cpp``."""
    return sorted(glob.glob(str(CSRC / "*.cu")) + glob.glob(str(CSRC / "*.cpp")))


def _build_jit() -> None:
    from torch.utils.cpp_extension import load as cpp_load

    cpp_load(
        name="sdekit_C",
        sources=sources(),
        extra_include_paths=[str(CSRC)],
        extra_cuda_cflags=["-O3", "--expt-relaxed-constexpr"],
        extra_cflags=["-O3"],
        is_python_module=False,
        verbose=os.environ.get("SDEKIT_CUDA_VERBOSE", "0") not in ("", "0"),
    )


def load() -> None:
    """Make the ``torch.ops.sdekit.*`` CUDA ops available (raises if it cannot)."""
    with _lock:
        if _state.get("loaded"):
            return
        if "error" in _state:
            raise RuntimeError(_state["error"])
        try:
            try:
                importlib.import_module("sdekit._C")
            except ImportError:
                if os.environ.get("SDEKIT_CUDA_JIT", "1") in ("", "0"):
                    raise RuntimeError("sdekit._C is not built and SDEKIT_CUDA_JIT=0 forbids a just-in-time build")
                if shutil.which("nvcc") is None and not os.environ.get("CUDA_HOME"):
                    raise RuntimeError("sdekit._C is not built and nvcc is not on PATH for a just-in-time build")
                _build_jit()
        except Exception as exc:  # remember the reason; do not retry a failed build every call
            _state["error"] = f"{type(exc).__name__}: {exc}"
            raise RuntimeError(_state["error"]) from exc
        _state["loaded"] = True


def unavailable_reason() -> str | None:
    """Why the CUDA ops cannot run here, or ``None`` when they can (builds on first call)."""
    if torch.version.cuda is None:
        return "torch is a CPU-only build (torch.version.cuda is None)"
    if not torch.cuda.is_available():
        return "no CUDA device is available"
    try:
        load()
    except RuntimeError as exc:
        return f"the CUDA extension could not be loaded: {exc}"
    return None


def op(name: str):
    """``torch.ops.sdekit.<name>`` after loading the extension that holds its CUDA kernel."""
    load()
    return getattr(torch.ops.sdekit, name)
