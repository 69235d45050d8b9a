"""The command line: ``sdekit derive``, ``sdekit info`` and ``sdekit sample``."""
import pytest

from sdekit.cli import main


def test_derive_tsdve_prints_odes_and_dawson_solution(capsys):
    assert main(["derive", "--drift", "gamma*t*(y - x)", "--diffusion", "sigma_min*(sigma_max/sigma_min)**t"]) == 0
    out = capsys.readouterr().out
    assert "variance ODE:  d/dt v = -2*gamma*t*v(t)" in out
    assert "dawsn(" in out and "mx(t):         exp(-gamma*t**2/2)" in out and "no closed form" not in out


def test_derive_latex_says_when_numerical(capsys):
    assert main(["derive", "--drift", "gamma*t**2*(y - x)", "--diffusion", "s*exp(t)", "--latex"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(r"\begin{aligned}") and r"v(t) &= \text{numerical}" in captured.out
    assert "no closed form for v" in captured.err


@pytest.mark.parametrize("drift, diffusion, message", [
    ("x**2", "1", "not linear in x"), ("-x", "x", "diffusion"), ("-x +", "1", "cannot parse"),
])
def test_derive_reports_bad_input(capsys, drift, diffusion, message):
    assert main(["derive", f"--drift={drift}", f"--diffusion={diffusion}"]) == 2
    assert message in capsys.readouterr().err


def test_info_lists_versions_and_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "sympy" in out and "backend torch   on cpu   available" in out


def _example_score_spec():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(root, "examples", "distributed_sampling.py") + ":score"


def test_sample_writes_shards_equal_to_the_samplers_own_run(tmp_path, capsys):
    import torch

    from sdekit import VPSDE, PredictorCorrector
    from sdekit.cli import load_callable
    from sdekit.distributed import load_shards

    args = ["sample", "--sde", "VPSDE", "--sde-param", "beta_max=20", "--score", _example_score_spec(),
            "--batch-size", "5", "--sample-shape", "2,3", "--steps", "4", "--sampler", "reverse_diffusion",
            "--corrector-steps", "1", "--seed", "7", "--dtype", "float64", "--no-progress"]
    assert main(args + ["--out-dir", str(tmp_path / "shards")]) == 0
    assert "5 samples of shape (2, 3) by 1 process(es)" in capsys.readouterr().out
    want = PredictorCorrector(VPSDE(0.1, 20.0), 4, corrector_steps=1).sample(
        load_callable(_example_score_spec()), shape=(5, 2, 3), seed=7, dtype=torch.float64)
    assert torch.equal(load_shards(tmp_path / "shards"), want)
    assert main(args + ["--out-dir", str(tmp_path / "gathered"), "--gather"]) == 0
    assert torch.equal(torch.load(tmp_path / "gathered" / "samples.pt")["samples"], want)


@pytest.mark.parametrize("change, message", [
    (["--sde", "OUVE"], "depends on y"), (["--sde", "Nope"], "--sde must be one of"),
    (["--sde-param", "beta_max"], "--sde-param must be name=number"), (["--sde-param", "gamma=2"], "--sde-param"),
    (["--score", "no_such_module_xyz:score"], "cannot import"), (["--score", "sdekit:nothing"], "has no attribute"),
    (["--score", "score"], "module:function"), (["--sample-shape", "2,x"], "--sample-shape"),
    (["--sampler", "rk4"], "--sampler must be one of"), (["--batch-size", "0"], "batch_size"),
])
def test_sample_reports_bad_input(capsys, tmp_path, change, message):
    args = {"--sde": "VPSDE", "--score": _example_score_spec(), "--batch-size": "3", "--sample-shape": "2",
            "--steps": "2", "--seed": "0", "--out-dir": str(tmp_path)}
    flat = [a for kv in args.items() for a in kv] + change
    assert main(["sample", *flat, "--no-progress"]) == 2
    assert message in capsys.readouterr().err

def test_derive_falls_back_within_the_time_budget_and_says_why(capsys, monkeypatch):
    """Issue 12: `sdekit derive` with t**(3/10) spent about 43 s in sympy."""
    import time

    import sdekit.symbolic.moments as moments

    monkeypatch.setattr(moments, "DEFAULT_TIME_BUDGET", 1.0)
    start = time.monotonic()
    assert main(["derive", "--drift", "gamma*t**(3/10)*(y - x)", "--diffusion", "s*exp(t)"]) == 0
    assert time.monotonic() - start < 20
    out = capsys.readouterr().out
    assert "no closed form for" in out and "sympy's time budget ran out" in out


def test_derive_names_an_unsupported_function(capsys):
    assert main(["derive", "--drift=-x", "--diffusion=besselj(0, t)"]) == 2
    assert "'besselj', which sdekit does not support" in capsys.readouterr().err
