"""cuda_ext.op: the Python-side registration of the CUDA ops (fake kernel, autograd), on CPU.

The compiled ops need a GPU; here a stand-in op with a CPU kernel is defined in the same
``sdekit`` namespace, and the extension load is skipped, so the helper's own work is tested:
one registration however often it is called, a fake kernel that ``torch.compile`` traces
through without a graph break, and the autograd formula.
"""
import pytest
import torch

from sdekit.kernels import cuda_ext

_lib = torch.library.Library("sdekit", "FRAGMENT")
_lib.define("_test_square(Tensor x) -> Tensor")
_lib.impl("_test_square", lambda x: x * x, "CPU")
calls = {"fake": 0}


def _fake(x):
    calls["fake"] += 1
    return torch.empty_like(x)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    return 2 * x * grad


@pytest.fixture
def no_build(monkeypatch):
    monkeypatch.setattr(cuda_ext, "load", lambda: None)


def test_op_registers_fake_and_autograd_once(no_build):
    sq = cuda_ext.op("_test_square", fake=_fake, backward=_backward, setup_context=_setup)
    again = cuda_ext.op("_test_square", fake=_fake, backward=_backward, setup_context=_setup)  # no re-registration
    assert again is sq
    x = torch.tensor([1.5, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sq, (x,))
    torch.testing.assert_close(torch.autograd.grad(sq(x).sum(), x)[0], 2 * x.detach())
    compiled = torch.compile(lambda v: sq(v) + 1.0, backend="eager", fullgraph=True)  # fullgraph: a break fails
    before = calls["fake"]
    torch.testing.assert_close(compiled(x.detach()), x.detach() ** 2 + 1.0)
    assert calls["fake"] > before  # traced through the fake kernel
