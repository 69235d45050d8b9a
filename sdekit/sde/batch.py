"""Broadcasting per-sample coefficients over a batch (shared by the SDEs, the reverse SDE and the losses)."""
from __future__ import annotations

import torch


def per_sample(coef: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Broadcast a per-sample coefficient over a batch: ``coef`` of shape ``()`` or ``(B,)``
    becomes shape ``()`` or ``(B, 1, ..., 1)`` (as many dimensions as ``x``, of shape
    ``(B, ...)``), on ``x``'s device and in its dtype, so that ``per_sample(coef, x) * x``
    scales sample ``i`` by ``coef[i]``.  ``ValueError`` for any other shape."""
    coef = coef.to(device=x.device, dtype=x.dtype)
    if coef.dim() == 0:
        return coef
    if coef.dim() != 1 or x.dim() == 0 or coef.shape[0] != x.shape[0]:
        raise ValueError(f"t must be a scalar or of shape (batch,) = ({x.shape[0] if x.dim() else ''},); "
                         f"got shape {tuple(coef.shape)} for x of shape {tuple(x.shape)}")
    return coef.view(-1, *([1] * (x.dim() - 1)))
