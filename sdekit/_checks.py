"""The argument checks of sdekit's front doors: one function per kind of argument, errors name it.

Each check returns the normalised value (``int``, ``float``, ``torch.device``, ...) so that a front
door validates and converts in one line, e.g. ``steps = check_int("steps", steps, min=1)``.
Checks run once, where a user's value enters (a constructor, ``sample``, ``simulate``, a public
kernel call); nothing below a front door checks again.
"""
from __future__ import annotations

import math
import numbers

import torch

SEED_MAX = 2**64 - 1  # seeds are the 64-bit Philox key (sdekit.kernels.rng)
FLOAT_DTYPES = (torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)
# Where complex data is accepted (named in the error everywhere else).
COMPLEX_SUPPORT = ("the fixed-step samplers, EulerMaruyama.simulate, the marginals and "
                   "denoising_score_matching take complex data")


def is_int(v) -> bool:
    """Whether ``v`` is an integer (Python or numpy) and not a bool: for arguments that take a
    count or something else (a sequence, a tensor), before the matching check."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v) -> bool:
    """Whether ``v`` is a real number (Python or numpy) and not a bool (see :func:`is_int`)."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_bool(name: str, v) -> bool:
    """``v`` must be a ``bool``."""
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return v


def check_int(name: str, v, *, min: int | None = None) -> int:  # noqa: A002 - reads best at call sites
    """``v`` must be an integer (not a bool), ``>= min`` when given."""
    if not is_int(v):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if min is not None and v < min:
        raise ValueError(f"{name} must be >= {min}, got {v}")
    return int(v)


def check_real(name: str, v, *, positive: bool = False, nonnegative: bool = False) -> float:
    """``v`` must be a finite real number (not a bool); ``> 0`` or ``>= 0`` when asked."""
    if not is_real(v):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if positive and not v > 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    if nonnegative and not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


_CLOSED = {"both": "[]", "left": "[)", "right": "(]", "neither": "()"}


def check_real_in(name: str, v, lo: float, hi: float, *, closed: str = "both") -> float:
    """``v`` must be a finite real number (not a bool) in the interval from ``lo`` to ``hi``,
    closed on ``"both"`` ends, the ``"left"``, the ``"right"`` or ``"neither"`` (pandas'
    ``Interval`` words): ``check_real_in("rho", rho, 0, 1, closed="left")`` asks ``0 <= rho < 1``."""
    v = check_real(name, v)
    left, right = _CLOSED[closed]
    if not ((lo <= v if left == "[" else lo < v) and (v <= hi if right == "]" else v < hi)):
        raise ValueError(f"{name} must be in {left}{lo}, {hi}{right}, got {v}")
    return v


def check_t_eps(t_eps, T: float, *, allow_zero: bool = False) -> float:
    """``t_eps`` must be a real in ``(0, T)`` (``[0, T)`` with ``allow_zero``)."""
    if not is_real(t_eps):
        raise TypeError(f"t_eps must be a float, got {type(t_eps).__name__}")
    t_eps = float(t_eps)
    if not ((0.0 <= t_eps if allow_zero else 0.0 < t_eps) and t_eps < T):
        raise ValueError(f"t_eps must lie in {'[' if allow_zero else '('}0, T) = (0, {T}), got {t_eps}")
    return t_eps


def check_seed(seed) -> int | None:
    """``seed`` must be ``None`` or an int in ``[0, 2**64 - 1]`` (the 64-bit Philox key: larger
    seeds would wrap onto smaller ones silently)."""
    if seed is None:
        return None
    if not is_int(seed):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must lie in [0, 2**64 - 1], got {seed}")
    return int(seed)


def check_backend(backend) -> str:
    """``backend`` must be ``"auto"`` or one of :data:`sdekit.kernels.dispatch.BACKENDS`."""
    from .kernels.dispatch import BACKENDS

    if backend != "auto" and backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto' or one of {BACKENDS}, got {backend!r}")
    return backend


def check_dtype(name: str, dtype, *, allow_complex: bool = False) -> torch.dtype | None:
    """``dtype`` must be ``None``, ``torch.float32`` or ``torch.float64`` (or ``torch.complex64``,
    ``torch.complex128`` with ``allow_complex``)."""
    if dtype is None:
        return None
    allowed = FLOAT_DTYPES + (COMPLEX_DTYPES if allow_complex else ())
    if not isinstance(dtype, torch.dtype) or dtype not in allowed:
        extra = " (or torch.complex64, torch.complex128)" if allow_complex else ""
        raise TypeError(f"{name} must be torch.float32 or torch.float64{extra}, got {dtype!r}")
    return dtype


def check_device(name: str, device) -> torch.device | None:
    """``device`` must be ``None`` or a device torch knows and this build can use, and not
    ``"meta"`` (meta tensors carry shapes but no data; sdekit computes numbers).  For a tensor's
    device, ``name`` is ``"x_T's device"`` and the like (:func:`check_float_batch`)."""
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device or a string such as 'cpu' or 'cuda', got {device!r}")
    try:
        device = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{name}={device!r} is not a torch device ('cpu', 'cuda', 'cuda:1', ...): {err}") from None
    if device.type == "meta":
        raise ValueError(f"{name} is 'meta': meta tensors carry no data and sdekit computes numbers; "
                         f"use 'cpu' or 'cuda'")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={str(device)!r} but this torch build sees no CUDA device "
                         f"(torch.cuda.is_available() is False)")
    return device


def check_float_batch(name: str, x, *, allow_empty: bool = False, allow_complex: bool = False) -> torch.Tensor:
    """``x`` must be a float32/float64 tensor (complex64/complex128 too with ``allow_complex``)
    with a leading batch dimension (non-empty unless ``allow_empty``).  A complex ``x`` where it
    is not allowed gets an error that says where complex data is taken.  A tensor on the meta
    device (no data) is refused by :func:`check_device`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    check_device(f"{name}'s device", x.device)
    if x.is_complex() and not allow_complex:
        raise TypeError(f"{name} is complex ({x.dtype}) but this takes real float32/float64 data ({COMPLEX_SUPPORT})")
    if x.dtype not in FLOAT_DTYPES + (COMPLEX_DTYPES if allow_complex else ()):
        extra = " (or complex64, complex128)" if allow_complex else ""
        raise TypeError(f"{name} must be float32 or float64{extra}, got {x.dtype}")
    if x.dim() < 1 or (x.shape[0] < 1 and not allow_empty):
        raise ValueError(f"{name} must have a non-empty leading batch dimension, got shape {tuple(x.shape)}")
    return x


def check_finite(name: str, x: torch.Tensor) -> None:
    """``x`` must hold no NaN or infinity (one host synchronisation)."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")


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


def check_conditioning(y, x: torch.Tensor, x_name: str, *, has_y_drift: bool) -> None:
    """The conditioning tensor ``y`` of an SDE's drift ``a x + c y``: ``None`` only when the SDE
    has no ``y``-drift (``has_y_drift=False``), else a tensor of the shape, device and dtype of
    ``x`` (called ``x_name`` in errors)."""
    if y is None:
        if has_y_drift:
            raise ValueError("this SDE's drift depends on y: pass y (the conditioning tensor)")
        return
    check_like("y", y, x, x_name)


def check_batched_float(name: str, t) -> None:
    """The kernels' form of :func:`check_float_batch`: an empty batch is allowed."""
    check_float_batch(name, t, allow_empty=True)


def check_size2(name: str, size) -> tuple[int, int]:
    """An image size: a positive int ``s`` (meaning ``(s, s)``) or a pair ``(H, W)`` of positive ints.

    Strings are refused (``"48"`` is not ``(4, 8)``), as are non-integers (``(4.5, 4)`` is not
    truncated to ``(4, 4)``); errors name ``name`` (or ``name[0]``, ``name[1]``).
    """
    if isinstance(size, (tuple, list, torch.Size)):
        if len(size) != 2:
            raise ValueError(f"{name} must be an int or a pair (H, W), got {len(size)} entries: {size!r}")
        return check_int(f"{name}[0]", size[0], min=1), check_int(f"{name}[1]", size[1], min=1)
    if not is_int(size):
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
