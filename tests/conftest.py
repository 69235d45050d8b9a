"""Shared test configuration: GPU marker, Triton interpreter, hypothesis profiles, shared SDE fixtures.

Shared test problems (helpers, not fixtures) live in ``tests/_problems.py``."""
import os

import torch

# Triton kernels run in the CPU interpreter when there is no GPU; it must be chosen
# before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The tests check derivations, not files cached by an earlier run (tests/test_disk_cache.py
# turns the cache on where it is the subject).
os.environ.setdefault("SDEKIT_CACHE_DIR", "off")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=12, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("SDEKIT_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def triton_device() -> str:
    """Where Triton kernels run in this session: ``"cpu"`` under the interpreter (no GPU),
    ``"cuda"`` when Triton compiles for a GPU (it cannot read CPU tensors then)."""
    pytest.importorskip("triton")
    from sdekit.kernels.dispatch import triton_interpreting

    return "cpu" if triton_interpreting() else "cuda"


@pytest.fixture(scope="session")
def vp():
    """The default VPSDE(0.1, 20), built once per session."""
    from _problems import shared_vpsde

    return shared_vpsde()


@pytest.fixture(scope="session")
def ouve():
    """DriftRec's OUVE with the paper's defaults, built once per session."""
    from sdekit import OUVE

    return OUVE()


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread: the tests use small tensors, and on a shared 2-core machine OpenMP
    barriers waiting on a descheduled second thread made small ops 13-20x slower.  Results do
    not depend on the thread count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
