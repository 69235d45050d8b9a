"""The front doors' argument checks (sdekit._checks): the kinds and values each accepts, the
exception type of each refusal (TypeError for a wrong kind, ValueError for a wrong value) and an
error that names the argument."""
import math

import numpy as np
import pytest
import torch

from sdekit._checks import check_conditioning, check_int, check_real, check_real_in, check_t_eps, is_int, is_real


@pytest.mark.parametrize("v, want_int, want_real", [
    (3, True, True), (np.int64(3), True, True), (2.5, False, True), (np.float32(2.5), False, True),
    (True, False, False), (np.bool_(True), False, False), ("3", False, False), (None, False, False),
    (torch.tensor(3), False, False), (1 + 0j, False, False),
])
def test_is_int_and_is_real_take_python_and_numpy_numbers_but_not_bools(v, want_int, want_real):
    assert is_int(v) is want_int and is_real(v) is want_real


@pytest.mark.parametrize("lo, hi, closed, inside, outside", [
    (0.0, 1.0, "both", [0.0, 0.5, 1.0], [-1e-300, 1.0 + 2**-52]),
    (0.0, 1.0, "left", [0.0, 1.0 - 2**-53], [1.0, -1e-300]),
    (0.0, 1.0, "right", [1e-300, 1.0], [0.0, 1.0 + 2**-52]),
    (0.0, 1.0, "neither", [1e-300, 1.0 - 2**-53], [0.0, 1.0]),
    (1.0, math.inf, "left", [1.0, 1e300], [1.0 - 2**-53]),
])
def test_check_real_in_keeps_the_interval_ends_it_is_told_to(lo, hi, closed, inside, outside):
    for v in inside:
        assert check_real_in("v", v, lo, hi, closed=closed) == v
    for v in outside:
        with pytest.raises(ValueError, match=r"^v must be in [\[(]"):
            check_real_in("v", v, lo, hi, closed=closed)


@pytest.mark.parametrize("check", [lambda v: check_real("arg", v), lambda v: check_real_in("arg", v, 0, 1),
                                   lambda v: check_int("arg", v)])
@pytest.mark.parametrize("bad", ["0.5", True, None, torch.tensor(0.5), [0.5]])
def test_a_wrong_kind_is_a_type_error_naming_the_argument(check, bad):
    with pytest.raises(TypeError, match="^arg must be"):
        check(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_reals_are_value_errors_even_where_the_interval_is_unbounded(bad):
    with pytest.raises(ValueError, match="^arg must be finite"):
        check_real_in("arg", bad, 1.0, math.inf, closed="left")


def test_t_eps_is_in_0_T_and_zero_only_where_allowed():
    assert check_t_eps(np.float64(0.5), 1.0) == 0.5
    assert check_t_eps(0, 1.0, allow_zero=True) == 0.0
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"^t_eps must lie in"):
            check_t_eps(bad, 1.0)
    with pytest.raises(TypeError, match="^t_eps must be"):
        check_t_eps("0.1", 1.0)


def test_conditioning_is_required_with_a_y_drift_and_must_be_like_x():
    x = torch.zeros(2, 3, dtype=torch.float64)
    check_conditioning(None, x, "x0", has_y_drift=False)
    check_conditioning(torch.ones_like(x), x, "x0", has_y_drift=True)
    with pytest.raises(ValueError, match="depends on y"):
        check_conditioning(None, x, "x0", has_y_drift=True)
    with pytest.raises(ValueError, match=r"y has shape \(2, 2\), expected x0's shape"):
        check_conditioning(torch.zeros(2, 2, dtype=torch.float64), x, "x0", has_y_drift=True)
    with pytest.raises(TypeError, match="y has dtype torch.float32 but x0 has torch.float64"):
        check_conditioning(torch.zeros(2, 3), x, "x0", has_y_drift=False)
