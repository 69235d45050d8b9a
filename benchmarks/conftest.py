"""Benchmark collection: ``pytest benchmarks --benchmark-only`` runs every ``bench_*.py``."""
import os

import pytest
import torch

if not torch.cuda.is_available():  # as in tests/: Triton falls back to its interpreter
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Every torch.compile of one function shares its code object's cache: bench_dawson compiles
# dawsn_reference for ~10 static shapes, and past dynamo's default limit of 8 the rest would
# silently run eagerly under a "compiled" label.
import torch._dynamo  # noqa: E402

for _name in ("recompile_limit", "cache_size_limit"):  # the name changed across torch versions
    if hasattr(torch._dynamo.config, _name):
        setattr(torch._dynamo.config, _name, 64)


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)


@pytest.fixture
def one_cpu_thread():
    """CPU timings on one intra-op thread (restored afterwards); modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_cpu_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
