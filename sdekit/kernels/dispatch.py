"""The one place that chooses a backend for an operation.

Every fused operation (``dawsn``, an Euler-Maruyama step, ...) registers one
implementation per backend:

* ``"torch"``  -- eager reference, CPU and GPU, float32 and float64: the specification;
* ``"triton"`` -- Triton kernels; on a CPU tensor they run only under ``TRITON_INTERPRET=1``;
* ``"cuda"``   -- the CUDA kernels of ``sdekit/csrc/`` (ahead-of-time or just-in-time build);
* ``"cpu"``    -- the same ``sdekit/csrc/`` arithmetic compiled for the host at install time
  (the extension ``sdekit._cpu``, see :mod:`sdekit.kernels.cpu_ext`).

``resolve(op, backend, device)`` returns the callable.  ``backend="auto"`` picks the
fastest available one for the tensor's device: ``cuda``, then ``triton``, then
``torch`` on a GPU tensor; ``cpu``, then ``torch`` on a CPU tensor.  Solvers and special
functions call ``resolve`` and never branch on backend names themselves; this module is
the only one that lists them.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from typing import Callable

import torch

from . import cpu_ext  # imports nothing of sdekit; at the top, not per call (resolve runs on every op call)

BACKENDS = ("torch", "triton", "cuda", "cpu")
_AUTO_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpu", "torch")}

_registry: dict[str, dict[str, Callable]] = {}
# (op, backend, device) -> what resolve returned.  A backend that was available stays so for
# the process (an extension, once loaded, cannot unload; a failed build is not retried), so the
# answer holds until an implementation is registered -- except Triton on CPU tensors, which depends
# on TRITON_INTERPRET and is never kept.
_resolved: dict[tuple[str, str, torch.device], Callable] = {}


def register(op: str, backend: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as the ``backend`` implementation of ``op``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    def deco(fn: Callable) -> Callable:
        _registry.setdefault(op, {})[backend] = fn
        _resolved.clear()
        return fn

    return deco


def triton_interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=None)
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def backend_unavailable_reason(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot run on ``device`` (``None`` when it can)."""
    if backend == "torch":
        return None
    if backend == "triton":
        if not _triton_importable():
            return "triton is not installed"
        if device.type == "cuda" or (device.type == "cpu" and triton_interpreting()):
            return None
        return f"triton kernels need a CUDA tensor (or TRITON_INTERPRET=1 on CPU); got device {device}"
    if backend == "cuda":
        if device.type != "cuda":
            return f"the CUDA kernels need a CUDA tensor; got device {device}"
        from . import cuda_ext

        return cuda_ext.unavailable_reason()
    if backend == "cpu":
        if device.type != "cpu":
            return f"the compiled CPU kernels need a CPU tensor; got device {device}"
        return cpu_ext.unavailable_reason()
    raise ValueError(f"unknown backend {backend!r}; expected 'auto' or one of {BACKENDS}")


def available_backends(op: str, device: torch.device | str) -> list[str]:
    """Backends that implement ``op`` and can run on ``device``, fastest first."""
    device = torch.device(device)
    impls = _registry.get(op, {})
    order = _AUTO_ORDER.get(device.type, ("torch",)) + ("triton",)
    return [b for b in dict.fromkeys(order) if b in impls and backend_unavailable_reason(b, device) is None]


def resolve(op: str, backend: str, device: torch.device | str) -> Callable:
    """The implementation of ``op`` for ``backend`` (or ``"auto"``) on ``device``."""
    if not isinstance(device, torch.device):
        device = torch.device(device)
    key = (op, backend, device)  # the device itself: hashing it is cheaper than reading its type
    fn = _resolved.get(key)  # every op call asks: answer the repeated question from the table
    if fn is None:
        chosen, fn = _choose(op, backend, device)
        if not (chosen == "triton" and device.type == "cpu"):
            _resolved[key] = fn
    return fn


def _choose(op: str, backend: str, device: torch.device) -> tuple[str, Callable]:
    """``(backend name, implementation)`` that :func:`resolve` returns, decided afresh."""
    impls = _registry.get(op)
    if not impls:
        raise KeyError(f"no implementation registered for operation {op!r}")
    if backend == "auto":
        for b in _AUTO_ORDER.get(device.type, ("torch",)):
            if b in impls and backend_unavailable_reason(b, device) is None:
                return b, impls[b]
        raise RuntimeError(f"no backend can run {op!r} on {device}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    if backend not in impls:
        raise ValueError(f"operation {op!r} has no {backend!r} implementation (has: {sorted(impls)})")
    reason = backend_unavailable_reason(backend, device)
    if reason is not None:
        raise RuntimeError(f"backend {backend!r} is unavailable for {op!r}: {reason}")
    return backend, impls[backend]
