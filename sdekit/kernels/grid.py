"""The GPU launch grid's row limit, and the chunks of a batch that stay under it.

The Triton and CUDA launchers give each sample (or row) its own index along the grid's second
dimension, which CUDA caps at ``MAX_GRID_ROWS = 65535``.  A larger batch is launched in
consecutive chunks of at most that many rows, each on row-offset views of its tensors; a
kernel whose rows draw counter-based normals is told the global index of its chunk's first
sample (``sample_offset + chunk start``), so the chunks give the numbers one launch would.
"""
from __future__ import annotations

MAX_GRID_ROWS = 65535  # CUDA's limit on a grid's second (and third) dimension

__all__ = ["MAX_GRID_ROWS", "row_chunks"]


def row_chunks(B: int) -> list[slice]:
    """Consecutive slices of at most :data:`MAX_GRID_ROWS` rows covering ``range(B)`` in order;
    ``B = 0`` is one empty slice, so a launcher makes for an empty batch the one call it makes for
    any small batch (and returns that call's empty result)."""
    return [slice(start, min(B, start + MAX_GRID_ROWS)) for start in range(0, max(B, 1), MAX_GRID_ROWS)]
