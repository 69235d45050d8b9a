"""Smoke test of ``examples/distributed_sampling.py``: its exact score is right, and it runs."""
import math
import sys

import pytest
import torch

from _examples import load_example

pytestmark = pytest.mark.examples


@pytest.fixture(scope="module")
def example():
    return load_example("distributed_sampling")


def test_example_score_is_the_gradient_of_the_two_bump_marginal_log_density(example):
    t = torch.tensor([0.05, 0.3, 0.9], dtype=torch.float64)
    x = torch.linspace(-1.5, 1.5, 3 * 7, dtype=torch.float64).reshape(3, 7)
    mx, _ = example.vp().mean_coeffs(t)
    var = mx**2 * example.SPREAD**2 + example.vp().marginal_var(t)

    def log_p(x):
        m, v = mx[:, None], var[:, None]
        bumps = [-(x - s * example.BUMP * m) ** 2 / (2 * v) for s in (1, -1)]
        return (torch.logsumexp(torch.stack(bumps), 0) - 0.5 * torch.log(2 * math.pi * v) + math.log(0.5)).sum()

    xr = x.clone().requires_grad_()
    want, = torch.autograd.grad(log_p(xr), xr)
    torch.testing.assert_close(example.score(x, t), want, rtol=1e-12, atol=1e-12)


def test_example_runs_and_says_its_samples_are_bitwise_those_of_one_process(example, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["distributed_sampling.py", "--samples", "64", "--dim", "4", "--steps", "20",
                                      "--verify"])
    example.main()
    out = capsys.readouterr().out
    assert "64 samples x 4 pixels, 20 PC steps, 1 process(es)" in out
    assert "bitwise identical to one process: True" in out


def test_example_score_of_a_row_does_not_depend_on_the_batch_around_it(example):
    """What world-size independent samples need of a score: rows [k, k + b) of a batch's score are
    the score of those rows alone, bit for bit (torch.sigmoid here would fail: see score)."""
    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(301, 16, generator=g, dtype=torch.float64).to(dtype)
        t = torch.full((301,), 0.37, dtype=dtype)
        full = example.score(x, t)
        for k, stop in ((0, 151), (151, 301), (7, 8), (0, 3), (298, 301)):
            assert torch.equal(example.score(x[k:stop], t[k:stop]), full[k:stop])
