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
# Added at the end for the inverse-problem operators, scores and losses.  check_int, check_real,
# check_seed and SEED_MAX are verbatim the loop branch's (which adds them at the top of this file):
# at merge keep one copy.
import math  # noqa: E402
import numbers  # noqa: E402

SEED_MAX = 2**64 - 1  # seeds are the 64-bit Philox key (sdekit.kernels.rng)


def check_int(name: str, v, *, min: int | None = None) -> int:  # noqa: A002 - reads best at call sites
    """``v`` must be an integer (not a bool), ``>= min`` when given."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if min is not None and v < min:
        raise ValueError(f"{name} must be >= {min}, got {v}")
    return int(v)


def check_real(name: str, v, *, positive: bool = False, nonnegative: bool = False) -> float:
    """``v`` must be a finite real number (not a bool); ``> 0`` or ``>= 0`` when asked."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def check_seed(seed) -> int | None:
    """``seed`` must be ``None`` or an int in ``[0, 2**64 - 1]`` (the 64-bit Philox key: larger
    seeds would wrap onto smaller ones silently)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must lie in [0, 2**64 - 1], got {seed}")
    return int(seed)


def check_size2(name: str, size) -> tuple[int, int]:
    """An image size: a positive int ``s`` (meaning ``(s, s)``) or a pair ``(H, W)`` of positive ints.

    Strings are refused (``"48"`` is not ``(4, 8)``), as are non-integers (``(4.5, 4)`` is not
    truncated to ``(4, 4)``); errors name ``name`` (or ``name[0]``, ``name[1]``).
    """
    if isinstance(size, (tuple, list, torch.Size)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or a pair (H, W), got {len(size)} entries: {size!r}")
        return check_int(f"{name}[0]", size[0], min=1), check_int(f"{name}[1]", size[1], min=1)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"{name} must be an int or a pair (H, W) of ints, got {type(size).__name__} {size!r}")
    s = check_int(name, size, min=1)
    return s, s


def check_shape(name: str, shape) -> tuple[int, ...]:
    """A tensor shape: a tuple, list or ``torch.Size`` of positive ints (``5`` alone, ``(2.5, 3)``,
    ``(-1, 3)`` and strings are refused with an error naming ``name``)."""
    if not isinstance(shape, (tuple, list, torch.Size)):
        raise TypeError(f"{name} must be a tuple of ints, got {type(shape).__name__} {shape!r}")
    if len(shape) == 0:
        raise ValueError(f"{name} must have at least one (batch) dimension, got {tuple(shape)}")
    return tuple(check_int(f"{name}[{i}]", d, min=1) for i, d in enumerate(shape))


def check_generator(name: str, generator, device) -> None:
    """``None`` or a ``torch.Generator`` on ``device``'s type."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__} {generator!r}")
    if generator.device.type != torch.device(device).type:
        raise ValueError(f"{name} is on {generator.device} but the data is on {device}")
