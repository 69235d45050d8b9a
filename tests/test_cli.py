"""The command line: ``sdekit derive`` and ``sdekit info``."""
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
