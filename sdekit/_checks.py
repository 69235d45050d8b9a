"""Argument checks shared across layers (kernels, SDEs, solvers): errors name the argument."""
from __future__ import annotations

import torch


def check_like(name: str, t, ref: torch.Tensor, ref_name: str = "x") -> None:
    """``t`` (called ``name`` in errors) must be a tensor of ``ref``'s shape, device and dtype."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or None, got {type(t).__name__}")
    if t.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {ref_name}'s shape {tuple(ref.shape)}")
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}")
    if t.dtype != ref.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {ref_name} has {ref.dtype}")


def check_batched_float(name: str, t) -> None:
    """``t`` must be a float32 or float64 tensor with a leading batch dimension."""
    if not isinstance(t, torch.Tensor) or t.dtype not in (torch.float32, torch.float64) or t.dim() < 1:
        raise TypeError(f"{name} must be a float32/float64 tensor with a batch dimension")


# ----------------------------------------------------------- numbers, sizes, shapes, seeds
# Added for the inverse-problem operators, scores and losses; usable at any front door.
import math  # noqa: E402  (kept with the functions below so the file's head stays as it was)
import numbers  # noqa: E402
import operator  # noqa: E402


def check_int(name: str, v, *, minimum: int = 1) -> int:
    """``v`` as a Python int ``>= minimum``: Python/numpy integers and integer 0-d tensors pass;
    ``bool``, floats (even integral ones: ``2.5`` would be truncated) and strings get a TypeError."""
    if isinstance(v, bool) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool):
        raise TypeError(f"{name} must be an int, got bool {v!r}")
    try:
        i = operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}") from None
    if i < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {i}")
    return i


def check_size2(name: str, size) -> tuple[int, int]:
    """An image size: a positive int ``s`` (meaning ``(s, s)``) or a pair ``(H, W)`` of positive ints.

    Strings are refused (``"48"`` is not ``(4, 8)``), as are non-integers (``(4.5, 4)``).
    """
    if isinstance(size, (str, bytes)) or isinstance(size, bool):
        raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {size!r}")
    if isinstance(size, (tuple, list, torch.Size)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or a pair (H, W), got {len(size)} entries: {size!r}")
        return check_int(f"{name}[0]", size[0]), check_int(f"{name}[1]", size[1])
    s = check_int(name, size)
    return s, s


def check_shape(name: str, shape) -> tuple[int, ...]:
    """A tensor shape: a tuple, list or ``torch.Size`` of positive ints (``5`` alone, ``(2.5, 3)``,
    ``(-1, 3)`` and strings are refused with an error naming ``name``)."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    if len(shape) == 0:
        raise ValueError(f"{name} must have at least one (batch) dimension, got {tuple(shape)}")
    return tuple(check_int(f"{name}[{i}]", d) for i, d in enumerate(shape))


def check_real(name: str, v, *, minimum: float = 0.0) -> float:
    """A finite Python/numpy real ``>= minimum`` as a float (``bool`` and strings: TypeError)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    f = float(v)
    if not math.isfinite(f) or f < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {v!r}")
    return f


def check_seed(name: str, seed) -> int:
    """A seed for ``torch.Generator.manual_seed``: an int in ``[0, 2**64)`` (larger ones would wrap)."""
    s = check_int(name, seed, minimum=0)
    if s >= 2**64:
        raise ValueError(f"{name} must be < 2**64, got {s}")
    return s


def check_generator(name: str, generator, device: torch.device) -> None:
    """``None`` or a ``torch.Generator`` on ``device``'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__} {generator!r}")
    if generator.device.type != torch.device(device).type:
        raise ValueError(f"{name} is on {generator.device} but the data is on {device}")
