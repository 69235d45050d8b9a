"""Independent references for marginals: mpmath quadrature (30 digits) of the integrating-factor
integrals, with coefficient functions written out by the tests; shared by the test_symbolic_* modules."""
import mpmath
import torch


def integral(f, t):
    """int_0^t f by mpmath's tanh-sinh quadrature, on [0, 1] and normalised to order 1 (its
    convergence test is absolute: an integral of 1e-32 would otherwise be accepted to 1e-9)."""
    unit = lambda u: f(t * u) * t  # noqa: E731
    size = max(abs(unit(mpmath.mpf(u))) for u in (0.3, 0.7, 1))
    if size == 0:
        return mpmath.quad(unit, [0, 1])
    return mpmath.quad(lambda u: unit(u) / size, [0, 1]) * size


def mp_moments(A, a_abs, c, g2, v0, t):
    """mx, my, the scale int exp(A(t) - A(s)) |c(s)| ds of my, v and kappa at t, by mpmath quadrature
    (30 digits) of the integrating-factor integrals; A is the antiderivative of a, a_abs of |a|."""
    with mpmath.workdps(30):
        t = mpmath.mpf(t)
        At = A(t)
        my = integral(lambda s: mpmath.exp(At - A(s)) * c(s), t)
        scale = integral(lambda s: mpmath.exp(At - A(s)) * abs(c(s)), t)
        v = mpmath.exp(2 * At) * v0 + integral(lambda s: mpmath.exp(2 * (At - A(s))) * g2(s), t)
        return {"mx": mpmath.exp(At), "my": my, "my_scale": scale, "v": v, "kappa": 1 + 2 * a_abs(t)}


def assert_within_stated_bounds(sde, reference, times, dtype=torch.float64):
    """Every moment at every time within its stated bound; in float32, within rounding of it.
    Returns the largest measured error over kappa, by moment."""
    t = torch.tensor(times, dtype=dtype)
    mx, my = sde.mean_coeffs(t)
    got = {"mx": mx, "my": my, "v": sde.marginal_var(t), "std": sde.marginal_std(t)}
    worst = {}
    for i, ti in enumerate(t.double().tolist()):  # the reference at the time actually passed
        ref = reference(ti)
        ref["std"], ref["std_scale"] = mpmath.sqrt(ref["v"]), mpmath.sqrt(ref["v"])
        for name in ("mx", "my", "v", "std"):
            scale = ref.get(name + "_scale", abs(ref[name]))
            if scale == 0:
                assert float(got[name][i]) == 0.0
                continue
            err = float(abs(mpmath.mpf(float(got[name][i])) - ref[name]) / scale)
            bound = sde.marginals.error_bounds["v" if name == "std" else name] * float(ref["kappa"])
            if dtype == torch.float32:
                bound = bound + 2.0**-23  # correctly rounded to float32 from a float64 within the bound
            assert err <= bound + 1e-15, f"{name}({ti}): relative error {err:.2e} > {bound:.2e}"
            worst[name] = max(worst.get(name, 0.0), err / float(ref["kappa"]))
    return worst


def driftve_reference(sde):
    alpha, gamma, nu = mpmath.mpf(sde.alpha), mpmath.mpf(sde.gamma), mpmath.mpf(sde.nu)
    smin, smax = mpmath.mpf(sde.sigma_min), mpmath.mpf(sde.sigma_max)

    def A(s):
        return -gamma * s ** (alpha + 1) / (alpha + 1)

    return lambda t: mp_moments(A, lambda s: -A(s), lambda s: gamma * s**alpha,
                                lambda s: (nu * smin * (smax / smin) ** s) ** 2, 0, t)
