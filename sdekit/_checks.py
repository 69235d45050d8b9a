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
