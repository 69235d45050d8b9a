"""The on-disk cache of derived solutions: written once, read back by a new process's
derivation without running sympy, invalidated by nothing but a different key."""
import pytest
import sympy as sp

import sdekit.symbolic.moments as moments
from sdekit.symbolic import disk_cache, parse_linear_sde

FORM = ("-k*(1 + t)*x + k*y", "s*exp(t)", ("k", "s"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SDEKIT_CACHE_DIR", str(tmp_path))
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
