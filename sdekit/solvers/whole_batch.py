"""Statistics of the whole batch when a run holds only one shard of it (:mod:`sdekit.distributed`).

Every update is row-wise except where a statistic of the whole batch enters it: the Langevin
corrector's ``"batch_mean"`` step size (score_sde's rule) averages per-sample norms over the
batch.  A run over rows ``[k, k + b)`` of a larger batch installs a gatherer with
:func:`gathering`; :func:`whole_batch_rows` then returns the per-sample rows of *every* shard,
in global order and identical on every process, so the statistic (and with it every sample) is
bitwise the one a single process holding the whole batch computes.  Without a gatherer it is
the identity: the batch is the whole batch.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import torch

_gather: contextvars.ContextVar[Callable[[torch.Tensor], torch.Tensor] | None] = contextvars.ContextVar(
    "sdekit_whole_batch_gather", default=None)

__all__ = ["gathering", "whole_batch_rows"]


def whole_batch_rows(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (one row per local sample) extended to the rows of the whole batch, global order."""
    gather = _gather.get()
    return rows if gather is None else gather(rows)


@contextlib.contextmanager
def gathering(gather: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Within the block, :func:`whole_batch_rows` calls ``gather`` (local rows -> global rows)."""
    token = _gather.set(gather)
    try:
        yield
    finally:
        _gather.reset(token)
