"""Model parameterisations (``sdekit.parameterisation``): exact conversions between score, noise,
data, velocity and DDPM v-prediction.

References are independent of the module: round trips (a map followed by its inverse must give
the input back to rounding), and for Gaussian data ``x0 ~ N(MU, S0^2)`` the exact conditional
expectations ``E[z | x_t]``, ``E[x0 | x_t]`` written here from closed-form ``a_t, b_t`` and
their hand-derived derivatives (VP, VE, OUVE, rectified flow), whose score must come back as
the exact Gaussian score ``-(x - a MU - m y) / (a^2 S0^2 + b^2)``.
"""
import itertools

import pytest
import torch

from sdekit import EDM, OUVE, TSDVE, VESDE, CosineVP, DriftVE, SubVPSDE
from sdekit.parameterisation import PREDICTIONS, MarginalCoefficients, as_score_fn, convert, score_sensitivity

from _problems import marginal_closed_forms, shared_rectified_flow, shared_vpsde

F64 = torch.float64
MU, S0 = 0.4, 0.7
ZOO = {"VP": shared_vpsde, "VE": lambda: VESDE(), "subVP": lambda: SubVPSDE(), "OUVE": lambda: OUVE(),
       "TSDVE": lambda: TSDVE(), "DriftVE(2)": lambda: DriftVE(2, 3.0), "RF": shared_rectified_flow,
       "CosineVP": lambda: CosineVP(), "EDM": lambda: EDM()}
_built = {}


def zoo(name):
    if name not in _built:
        _built[name] = ZOO[name]()
    return _built[name]


def draws(sde, dtype, B=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = sde.t_eps + (sde.T - sde.t_eps) * torch.rand(B, generator=g, dtype=F64)
    x, out, y = (torch.randn(B, 3, 2, generator=g, dtype=F64).to(dtype) for _ in range(3))
    return t.to(dtype), x, out, (y if sde.has_y_drift else None)


def rounding_bound(sde, t, x, out, y, source, target):
    """What rounding allows for ``target -> source`` after ``source -> target``: a few ulp of the
    terms of each affine map (``|alpha x| + |beta out| + |gamma y|``), the first map's error carried
    through the second's ``beta``.  The coefficients' magnitudes come from the module (they only
    size the tolerance; the expected value is the input itself)."""
    coefs = MarginalCoefficients(sde, t)
    (a1, b1, g1), (a2, b2, g2) = (tuple(c.reshape(-1, 1, 1).to(x.dtype) for c in coefs.conversion(*st))
                                  for st in ((source, target), (target, source)))
    yy = y.abs() if y is not None else 0.0
    first = a1.abs() * x.abs() + b1.abs() * out.abs() + g1.abs() * yy
    there = a1 * x + b1 * out + (g1 * y if y is not None else 0.0)
    return 16 * torch.finfo(x.dtype).eps * (b2.abs() * first + a2.abs() * x.abs() + b2.abs() * there.abs()
                                            + g2.abs() * yy)


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("dtype", [F64, torch.float32])
def test_every_conversion_round_trips_to_rounding_for_every_zoo_sde(name, dtype):
    sde = zoo(name)
    t, x, out, y = draws(sde, dtype)
    for source, target in itertools.permutations(PREDICTIONS, 2):
        there = convert(sde, x, t, out, source, target, y=y)
        back = convert(sde, x, t, there, target, source, y=y)
        assert there.dtype == back.dtype == dtype and back.shape == out.shape
        bound = rounding_bound(sde, t, x, out, y, source, target)
        excess = float(((back - out).abs() / bound).max())
        assert excess <= 1.0, (source, target, excess)


@pytest.mark.parametrize("name", ["VP", "VE", "OUVE", "RF"])
def test_the_wrapper_turns_exact_gaussian_predictions_into_the_exact_gaussian_score(name):
    sde = zoo(name)
    B = 32
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, 5, generator=g, dtype=F64)
    y = torch.randn(B, 5, generator=g, dtype=F64) if sde.has_y_drift else None
    t_fixed = torch.linspace(sde.t_eps, sde.T, B, dtype=F64)

    def exact(prediction):
        def model(xx, t):
            assert torch.equal(t, t_fixed)
            a, m, b, da, dm, db = (c[:, None] for c in marginal_closed_forms(name, t))
            V = a * a * S0**2 + b * b
            resid = xx - a * MU - (m * y if y is not None else 0.0)
            e_z, e_x0 = b * resid / V, MU + a * S0**2 * resid / V
            return {"eps": e_z, "x0": e_x0, "v": a * e_z - b * e_x0, "score": -resid / V,
                    "velocity": da * e_x0 + db * e_z + (dm * y if y is not None else 0.0)}[prediction]
        return model

    want = exact("score")(x, t_fixed)
    for prediction in PREDICTIONS:
        got = as_score_fn(exact(prediction), sde, prediction, y=y)(x, t_fixed)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9 * float(want.abs().max()), msg=prediction)


def test_score_sensitivity_is_the_derivative_of_each_output_in_the_score():
    sde = zoo("VP")
    t = torch.tensor([0.01, 0.3, 0.9], dtype=F64)
    x, s = torch.randn(3, 4, dtype=F64), torch.randn(3, 4, dtype=F64)
    for prediction in PREDICTIONS:
        k = score_sensitivity(sde, t, prediction)[:, None]
        diff = convert(sde, x, t, s + 1.0, "score", prediction) - convert(sde, x, t, s, "score", prediction)
        torch.testing.assert_close(diff, k.expand_as(diff), rtol=1e-10, atol=0)
    # the velocity's is -g^2 / 2: the probability-flow drift f x - g^2 score / 2
    _, _, gg = sde.coefficients(t)
    torch.testing.assert_close(score_sensitivity(sde, t, "velocity"), -gg**2 / 2, rtol=1e-12, atol=0)


def test_conversions_name_their_bad_arguments():
    sde = zoo("VP")
    x = torch.randn(2, 3, dtype=F64)
    with pytest.raises(ValueError, match="source"):
        convert(sde, x, 0.5, x, "noise", "x0")
    with pytest.raises(ValueError, match="target"):
        convert(sde, x, 0.5, x, "eps", "data")
    with pytest.raises(ValueError, match="out must have"):
        convert(sde, x, 0.5, x[:1], "eps", "x0")
    with pytest.raises(TypeError, match="x must"):
        convert(sde, x.long(), 0.5, x, "eps", "x0")
    with pytest.raises(ValueError, match="t must"):
        convert(sde, x, torch.full((3,), 0.5), x, "eps", "x0")
    with pytest.raises(ValueError, match="t must lie"):
        convert(sde, x, 1.5, x, "eps", "x0")
    with pytest.raises(ValueError, match="depends on y"):
        convert(zoo("OUVE"), x, 0.5, x, "eps", "x0")
    with pytest.raises(ValueError, match="depends on y"):
        as_score_fn(lambda a, b: a, zoo("OUVE"), "eps")
    with pytest.raises(TypeError, match="model"):
        as_score_fn(3, sde, "eps")
    with pytest.raises(ValueError, match="prediction"):
        as_score_fn(lambda a, b: a, sde, "epsilon")
    with pytest.raises(TypeError, match="sde"):
        as_score_fn(lambda a, b: a, object(), "eps")
