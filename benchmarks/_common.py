"""Helpers shared by the benchmarks and ``tools/gpu_timing.py`` (plain torch: no pytest, no
pytest-benchmark, so the timing script runs where only torch is installed)."""
from __future__ import annotations

from typing import Callable

import torch


def capture_cuda_graph(loop: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """``loop`` captured in a CUDA graph (replay it with ``graph.replay()``).

    ``loop`` runs once on a side stream first, so that every kernel variant it launches is
    compiled (Triton) or loaded before the capture, which must not compile anything.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        loop()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loop()
    return graph
