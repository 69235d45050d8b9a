"""How the CUDA extension plugs into the ops, checked on a machine without a GPU.

The compiled ops' schemas, fake kernels and autograd are defined once, in Python, by the op
folders (``sdekit/kernels/<op>/__init__.py``); the ``.cu`` files and the CPU extension only
register kernels for them.  So the sources must not define a schema of their own (two
definitions of one op fail to load together), and every op a ``.cu`` file implements must be
defined by ``import sdekit``.
"""
import pathlib
import re

import pytest
import torch

import sdekit  # noqa: F401  (defines every op)
from sdekit.kernels import cuda_ext

CSRC = pathlib.Path(sdekit.__file__).parent / "csrc"


def _impls(path: pathlib.Path) -> set[str]:
    return set(re.findall(r'm\.impl\("(\w+)"', path.read_text()))


def test_kernel_sources_register_kernels_only_for_ops_that_import_sdekit_defines():
    sources = sorted(CSRC.glob("*.cu")) + [CSRC / "cpu" / "ops.cpp"]
    assert len(sources) == 4
    for src in sources:
        text = src.read_text()
        assert "m.def(" not in text and "TORCH_LIBRARY(" not in text and "TORCH_LIBRARY_FRAGMENT" not in text, src
        for name in _impls(src):
            torch._C._dispatch_find_schema_or_throw(f"sdekit::{name}", "")  # raises when undefined
    cuda_ops = set().union(*(_impls(s) for s in CSRC.glob("*.cu")))
    assert cuda_ops == _impls(CSRC / "cpu" / "ops.cpp")  # one contract: the CPU build implements every op


def test_op_loads_the_extension_then_returns_the_sdekit_op(monkeypatch):
    loads = []
    monkeypatch.setattr(cuda_ext, "load", lambda: loads.append(1))
    assert cuda_ext.op("dawsn") is torch.ops.sdekit.dawsn
    assert loads == [1]


def test_sources_ship_inside_the_package():
    """The just-in-time build compiles what the installed package holds (a wheel has no checkout)."""
    assert cuda_ext.CSRC == CSRC
    names = {pathlib.Path(s).name for s in cuda_ext.sources()}
    assert {"dawson.cu", "sde_steps.cu", "spectral_scale.cu", "module.cpp"} <= names
    assert "ops.cpp" not in names  # the host build is the separate extension sdekit._cpu


@pytest.mark.skipif(torch.version.cuda is not None and torch.cuda.is_available(), reason="checks the CPU-only message")
def test_unavailable_reason_on_a_machine_without_a_gpu():
    assert cuda_ext.unavailable_reason() is not None
