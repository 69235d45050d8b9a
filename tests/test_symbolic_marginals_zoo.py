"""Every zoo SDE's marginals against mpmath on a time grid dense near 0 (where the Taylor branch
is used and where the last sampling steps and the likelihood scores evaluate ``marginal_std``), in
float64 and float32, within the stated error bounds; and each zoo entry's self-check."""
import mpmath
import pytest
import torch

from sdekit import EDM, OUVE, TSDVE, CosineVP, DriftVE, RectifiedFlow, SubVPSDE, VESDE, VPSDE
from mpmath_moments import assert_within_stated_bounds, driftve_reference, mp_moments


# ----------------------------------------------------------------------------- the zoo near t = 0
def zoo():
    b0, b1 = mpmath.mpf("0.1"), mpmath.mpf(20)
    B = lambda s: b0 * s + (b1 - b0) * s**2 / 2  # noqa: E731  int_0^s beta
    vp = (VPSDE(), lambda s: -B(s) / 2, lambda s: B(s) / 2, lambda s: 0, lambda s: b0 + s * (b1 - b0), 0)
    subvp = (SubVPSDE(), lambda s: -B(s) / 2, lambda s: B(s) / 2, lambda s: 0,
             lambda s: (b0 + s * (b1 - b0)) * -mpmath.expm1(-2 * B(s)), 0)
    smin, smax = mpmath.mpf("0.01"), mpmath.mpf(50)
    ve = (VESDE(), lambda s: 0, lambda s: 0, lambda s: 0,
          lambda s: (smin * (smax / smin) ** s) ** 2 * 2 * mpmath.log(smax / smin), smin**2)
    out = [vp, subvp, ve]
    for sde in (OUVE(), TSDVE(), DriftVE(2, 2.0)):
        ref = driftve_reference(sde)
        out.append((sde, ref))
    return out


ZOO_IDS = ["VPSDE", "SubVPSDE", "VESDE", "OUVE", "TSDVE", "DriftVE2"]


@pytest.fixture(scope="module")
def zoo_entries():
    return dict(zip(ZOO_IDS, zoo()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ZOO_IDS)
def test_zoo_marginals_match_mpmath_on_a_grid_dense_near_zero(zoo_entries, name, dtype):
    entry = zoo_entries[name]
    sde = entry[0]
    if len(entry) == 2:
        reference = entry[1]
    else:
        _, A, a_abs, c, g2, v0 = entry
        reference = lambda t: mp_moments(A, a_abs, c, g2, mpmath.mpf(v0), t)  # noqa: E731
    T = sde.T
    times = sorted({sde.t_eps, 1e-5 * T, 1e-4 * T, 1e-3 * T, 2e-3 * T, 5e-3 * T, 0.01 * T, 0.05 * T, 0.3 * T, T}
                   | {r * f for r in sde.marginals.taylor_radius.values() if 0 < r < T for f in (0.5, 0.99, 1.01)})
    worst = assert_within_stated_bounds(sde, reference, times, dtype)
    if dtype == torch.float64:
        assert worst["std"] < 1e-12


def test_zoo_self_checks_pass():
    for sde in (VPSDE(), SubVPSDE(), VESDE(), OUVE(), TSDVE(), DriftVE(2, 2.0), TSDVE(gamma=400.0),
                RectifiedFlow(), CosineVP(), EDM()):
        errors = sde.self_check()
        assert all(e <= 1e-12 for e in errors.values()), (sde, errors)
