"""The on-disk cache of derived solutions: written once, read back by a new process's
derivation without running sympy, invalidated by nothing but a different key."""
import json
import math
import os
import pathlib
import subprocess
import sys

import pytest
import sympy as sp

import sdekit.symbolic.moments as moments
from sdekit.symbolic import disk_cache, parse_linear_sde

FORM = ("-k*(1 + t)*x + k*y", "s*exp(t)", ("k", "s"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SDEKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(moments, "DEFAULT_TIME_BUDGET", math.inf)  # a loaded machine must not cut sympy short
    moments._derive_cached.cache_clear()
    yield tmp_path
    moments._derive_cached.cache_clear()


def test_a_new_process_reads_the_derivation_from_disk(cache, monkeypatch):
    coeffs = parse_linear_sde(*FORM)
    first = moments.derive(coeffs)
    assert len(list(cache.glob("*.json"))) == 1

    moments._derive_cached.cache_clear()  # as in a new process

    def no_sympy(*args, **kwargs):
        raise AssertionError("sympy ran although the solution is cached")

    monkeypatch.setattr(moments, "_solve", no_sympy)
    second = moments.derive(coeffs)
    assert (second.A, second.mx, second.my, second.v) == (first.A, first.mx, first.my, first.v)
    assert second.mean_ode == first.mean_ode


def test_corrupt_entries_are_ignored(cache):
    coeffs = parse_linear_sde(*FORM)
    expected = moments.derive(coeffs).v
    for f in cache.glob("*.json"):
        f.write_text("{not json")
    moments._derive_cached.cache_clear()
    assert moments.derive(coeffs).v == expected


def test_incomplete_derivations_are_not_stored(cache):
    t, s_ = sp.Symbol("t"), sp.Symbol("s")
    assert not disk_cache.store(parse_linear_sde(*FORM), (t, sp.exp(t), None, s_))
    assert not list(cache.glob("*.json"))


def test_off_disables_the_cache(monkeypatch):
    monkeypatch.setenv("SDEKIT_CACHE_DIR", "off")
    assert disk_cache.cache_dir() is None
    assert disk_cache.load(parse_linear_sde(*FORM)) is None


# ----------------------------------------------------------------------------- as users run it
# Forms that differ only in g, only in c, and one form at other T and v0; the exact marginals at
# t = 1 of dx = (-x + k y) dt + s dw with v(0) = v0:  my = k (1 - e^-1),  v = v0 e^-2 + s^2 (1 - e^-2) / 2.
FIRST = [("-x", "1", 1.0, 0.0), ("-x + y", "1", 1.0, 0.0)]
SIBLINGS = [("-x", "2", 1.0, 0.0), ("-x + 2*y", "1", 1.0, 0.0), ("-x", "1", 2.0, 0.0), ("-x", "1", 1.0, 0.5)]
PROCESS = """
import json, sys
from sdekit import LinearSDE
out = []
for drift, diffusion, T, v0 in json.loads(sys.argv[1]):
    sde = LinearSDE(drift, diffusion, T=T, v0=v0)
    out.append([float(sde.mean_coeffs(1.0)[1]), float(sde.marginal_var(1.0))])
print(json.dumps(out))
"""


def _run_fresh_process(cache_dir, forms):
    env = {**os.environ, "SDEKIT_CACHE_DIR": str(cache_dir), "SDEKIT_SYMPY_BUDGET": "inf"}
    done = subprocess.run([sys.executable, "-c", PROCESS, json.dumps(forms)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=pathlib.Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _exact(drift, diffusion, T, v0):
    k = {"-x": 0.0, "-x + y": 1.0, "-x + 2*y": 2.0}[drift]
    s = float(diffusion)
    return [k * (1 - math.exp(-1)), v0 * math.exp(-2) + s**2 * (1 - math.exp(-2)) / 2]


def test_forms_differing_only_in_g_c_t_or_v0_each_get_their_own_values_across_processes(tmp_path):
    """Issue 12: with g left out of the cache key, a process deriving LinearSDE("-x", "2") after
    another derived LinearSDE("-x", "1") got v(1) = 0.432 (exact 1.729)."""
    first = _run_fresh_process(tmp_path, FIRST)
    entries = set(tmp_path.glob("*.json"))
    assert len(entries) == 2
    second = _run_fresh_process(tmp_path, SIBLINGS + FIRST)  # FIRST read back from disk
    # g and c are part of the form: new entries; T and v0 are values: the same entry as ("-x", "1").
    assert len(set(tmp_path.glob("*.json"))) == 4
    for form, got in zip(FIRST + SIBLINGS + FIRST, first + second):
        assert got == pytest.approx(_exact(*form), rel=1e-13, abs=1e-300), form
