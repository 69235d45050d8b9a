"""Benchmark collection: ``pytest benchmarks --benchmark-only`` runs every ``bench_*.py``."""
import os

import pytest
import torch

if not torch.cuda.is_available():  # as in tests/: Triton falls back to its interpreter
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
