"""Generate the coefficient tables of ``sdekit.special.dawsn``.

    python tools/dawson_minimax.py > sdekit/kernels/dawsn/coefficients.py.body

prints (in about a minute and a half) the tables that
``sdekit/kernels/dawsn/coefficients.py`` holds below its docstring; then run
``python tools/gen_dawson_header.py`` for ``sdekit/csrc/dawson_coeffs.h``.  Nothing here
runs when the library is imported.  Reference values: ``D(x) = sqrt(pi)/2 *
exp(-x^2) * erfi(x)`` in 60-digit mpmath.

* Taylor table for ``|x| < SPLIT`` (:func:`taylor_rows`): exact Taylor coefficients
  of ``D`` at ``x0 = i * step`` from ``D' = 1 - 2xD``, rounded to the dtype, with
  ``D(x0)`` as a double-word ``hi + lo``.
* Tail for ``|x| >= SPLIT``: ``D = (1 + y (1/2 + y P(y)/Q(y))) / (2x)``, ``y = 1/x^2``,
  where ``P/Q`` approximates ``T(y) = (h - 1 - y/2) / y^2``, ``h = 2xD``, minimax in
  the relative error it causes in ``D`` (weight ``y^2 T / h``), by the rational Remez
  exchange (:func:`remez`) on a dense Chebyshev grid.  The printed errors are of
  the exact quotient and of the quotient with coefficients rounded to the dtype.

The other fit shapes (``inner``: ``x P(x^2)/Q(x^2)``; ``mid``/``hmid``/``tmid``) are kept
because they document what was tried: they approximate well (``inner`` (12, 13) on
[0, 5): 3e-18) but their floating-point evaluation does not (Horner rounding in
``P(x^2)`` reached 6 ulp), or their coefficients cancel (``hmid``, ``tmid``).
* AVX2 float64 vector kernel without a table (``VECTOR_TABLE_FREE``): ``inner`` (7, 8) on
  ``[0, 2.25)``, where its Horner rounding stays near 3 ulp, and the Chebyshev interpolant
  of ``h = 2xD`` on ``[2.25, 5)`` in ``s = x - 3.625`` (:func:`mid_polynomial`).
"""
from __future__ import annotations

import argparse
import sys

import mpmath as mp

mp.mp.dps = 60


def dawson_mp(x):
    """Dawson's integral at high precision (x >= 0)."""
    x = mp.mpf(x)
    if x == 0:
        return mp.mpf(0)
    return mp.sqrt(mp.pi) / 2 * mp.exp(-x * x) * mp.erfi(x)


def inner_target(t):
    """g(t) = D(sqrt t)/sqrt t."""
    t = mp.mpf(t)
    if t == 0:
        return mp.mpf(1)
    x = mp.sqrt(t)
    return dawson_mp(x) / x


def outer_target(y):
    """h(y) = 2 x D(x) with x = 1/sqrt(y)."""
    y = mp.mpf(y)
    if y == 0:
        return mp.mpf(1)
    x = 1 / mp.sqrt(y)
    return 2 * x * dawson_mp(x)


def tail_target(y):
    """T(y) = (h(y) - 1 - y/2) / y^2, so that h = 1 + y (1/2 + y T); T(0) = 3/4."""
    y = mp.mpf(y)
    if y == 0:
        return mp.mpf(3) / 4
    return (outer_target(y) - 1 - y / 2) / (y * y)


def _polyval(c, z):
    acc = mp.mpf(0)
    for ck in reversed(c):
        acc = acc * z + ck
    return acc


def tail_weight(y):
    """How a relative error of T shows in D: y^2 T(y) / h(y)."""
    return y * y * tail_target(y) / outer_target(y)


def remez(f, lo, hi, m, n, *, weight=None, grid=6000, iters=40, verbose=False):
    """Minimax weighted relative-error rational approximation P_m/Q_n of f on [lo, hi].

    Minimises ``max |w(z) (f(z) - P(z)/Q(z)) / f(z)|`` (``w = 1`` by default) by the
    discrete Remez exchange on a Chebyshev-clustered grid.  Returns ``(p, q, E)``
    with ``q[0] = 1`` and ``E`` the levelled weighted relative error.
    """
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    zs = [lo + (hi - lo) * (1 - mp.cos(mp.pi * k / (grid - 1))) / 2 for k in range(grid)]
    if weight is not None:  # a zero weight carries no information; drop those points
        zs = [z for z in zs if weight(z) != 0]
        grid = len(zs)
        ws = [weight(z) for z in zs]
    else:
        ws = [mp.mpf(1)] * grid
    fs = [f(z) for z in zs]
    N = m + n + 2
    # initial reference: grid points nearest the Chebyshev extrema
    ref = sorted({round((grid - 1) * k / (N - 1)) for k in range(N)})
    best = None
    for it in range(iters):
        E = mp.mpf(0)
        qprev = [mp.mpf(1)] + [mp.mpf(0)] * n
        for _ in range(12):
            A = mp.matrix(N, N)
            b = mp.matrix(N, 1)
            for i, gi in enumerate(ref):
                z, fz, wz = zs[gi], fs[gi], ws[gi]
                zk = mp.mpf(1)
                for k in range(m + 1):
                    A[i, k] = zk
                    zk *= z
                zk = z
                for k in range(1, n + 1):
                    A[i, m + k] = -fz * zk
                    zk *= z
                A[i, N - 1] = (-1) ** i * fz / wz * _polyval(qprev, z)
                b[i] = fz
            sol = mp.lu_solve(A, b)
            p = [sol[k] for k in range(m + 1)]
            q = [mp.mpf(1)] + [sol[m + k] for k in range(1, n + 1)]
            Enew = sol[N - 1]
            done = abs(Enew - E) <= abs(Enew) * mp.mpf("1e-12")
            E, qprev = Enew, q
            if done:
                break
        errs = [wz * (fz - _polyval(p, z) / _polyval(q, z)) / fz for z, fz, wz in zip(zs, fs, ws)]
        emax = max(abs(e) for e in errs)
        if best is None or emax < best[2]:
            best = (p, q, emax)
        if verbose:
            print(f"  iter {it}: levelled {float(abs(E)):.3e}, max {float(emax):.3e}", file=sys.stderr)
        if emax <= abs(E) * (1 + mp.mpf("1e-4")):
            break
        # new reference: alternating extrema of the error curve
        ext = [0]
        for k in range(1, grid - 1):
            if (errs[k] - errs[k - 1]) * (errs[k + 1] - errs[k]) <= 0 and errs[k] != 0:
                ext.append(k)
        ext.append(grid - 1)
        # merge runs of equal sign, keeping the largest
        alt = []
        for k in ext:
            if alt and (errs[k] > 0) == (errs[alt[-1]] > 0):
                if abs(errs[k]) > abs(errs[alt[-1]]):
                    alt[-1] = k
            else:
                alt.append(k)
        while len(alt) > N:
            # drop the smaller end (keeps alternation)
            if abs(errs[alt[0]]) < abs(errs[alt[-1]]):
                alt.pop(0)
            else:
                alt.pop()
        if len(alt) < N:
            if verbose:
                print(f"  only {len(alt)} alternations; stopping", file=sys.stderr)
            break
        ref = alt
    return best


def taylor_rows(step, split, K, to_float):
    """Rows ``(hi, lo, c_1, ..., c_K)`` of the Taylor table on the grid ``x0 = i * step``.

    ``D(x0 + s) = sum_k c_k s^k`` with ``c_0 = hi + lo`` (a double-word value, so the
    table adds no rounding of its own) and, from ``D' = 1 - 2 x D``,
    ``c_1 = 1 - 2 x0 c_0`` and ``c_(k+1) = -2 (x0 c_k + c_(k-1)) / (k+1)``.
    Rows cover ``0 <= x0 <= split`` (the last one serves ``split - step/2 <= x < split``).
    """
    rows = []
    step = mp.mpf(step)
    for i in range(int(mp.ceil(mp.mpf(split) / step)) + 1):
        x0 = i * step
        c = [dawson_mp(x0), 1 - 2 * x0 * dawson_mp(x0)]
        for k in range(1, K):
            c.append(-2 * (x0 * c[k] + c[k - 1]) / (k + 1))
        hi = to_float(c[0])
        lo = to_float(c[0] - mp.mpf(hi))
        rows.append((hi, lo) + tuple(to_float(ck) for ck in c[1:]))
    return rows


def to_f32(c):
    import numpy as np

    return float(np.float32(float(c)))


# (name, kind, x_lo, x_hi, m, n) per precision; x_hi = None means infinity.
# "inner": D = x P(t)/Q(t), t = x^2, plain relative error.
# "tail":  D = (1 + y (1/2 + y P(y)/Q(y))) / (2x), y = 1/x^2, with P/Q ~ T(y) =
#          (h - 1 - y/2)/y^2 fitted in the relative error it causes in D
#          (weight y^2 T / h <= 0.0012 for x >= 5), so the conditioning of the
#          tail's coefficients (alternating, from poles near y < 0) is damped by
#          that factor and the leading "1 + y/2" is exact.
LAYOUTS = {
    "float64": [
        ("inner", "inner", 0.0, 5.0, 12, 13),
        ("tail", "tail", 5.0, None, 8, 8),
    ],
    "float32": [
        ("inner", "inner", 0.0, 4.0, 7, 7),
        ("tail", "tail", 4.0, None, 3, 3),
    ],
}


# Taylor table below the tail: grid step, number of terms K (truncation < 1e-18
# relative in float64 and < 2e-9 in float32 for |s| <= step/2; computed in
# /tools by bounding sum_{k>K} |c_k| (step/2)^k / D(x0 - step/2)).
TAYLOR = {"float64": (1 / 16, 12), "float32": (1 / 16, 6)}
SPLIT = {"float64": 5.0, "float32": 4.0}
# The AVX2 float64 kernel without tables (sdekit/csrc/cpu/dawson_simd.h at 4 doubles a vector, where the
# 16-row lookup costs more than the arithmetic): three forms on every lane, selected by compares, no
# lookups:
#   x <  VECTOR_TABLE_FREE_INNER:  D = x P(x^2)/Q(x^2), ("inner", (7, 8)); up to 2.25 its Horner
#                                  rounding stays below 3 ulp (to 4.5, (12, 13), it reached 7);
#   x <  SPLIT:                    D = (1/(2x)) h, h = 2xD a polynomial in s = x - c, c the middle
#                                  of [INNER, SPLIT]: Chebyshev interpolant of degree 28 (mpmath's
#                                  chebyfit; the coefficients fall by about 2 a power, so Horner in
#                                  |s| <= 1.375 adds little rounding); a rational in s did not fit
#                                  (the "mid" fits above stall at 1e-13);
#   x >= SPLIT:                    the tail above.
VECTOR_TABLE_FREE = {"float64": {"inner": ("inner", "inner", 0.0, 2.25, 7, 8), "mid_terms": 29}}
# The same Taylor form on a coarser grid for the CPU vector kernels (sdekit/csrc/cpu/dawson_simd.h):
# AVX-512 holds each coefficient's 16 rows in two registers and picks them with one permute, so the
# grid has 16 points below SPLIT: step 21/64 (x0 = i * step and s = x - x0 exact, |s| <= 0.165),
# K = 16 (truncation 2e-18 relative, 0.02 ulp, for |s| <= 1.001 step / 2).
VECTOR_TAYLOR = {"float64": (21 / 64, 16)}


def region_target(kind, xlo, xhi):
    """(f, weight, lo, hi) of the fit in its own variable (t inner, s mid, y tail)."""
    if kind == "mid":
        c = (mp.mpf(xlo) + mp.mpf(xhi)) / 2
        return (lambda s: dawson_mp(c + s)), None, mp.mpf(xlo) - c, mp.mpf(xhi) - c
    if kind == "inner":
        return inner_target, None, mp.mpf(xlo) ** 2, mp.mpf(xhi) ** 2
    if kind == "tmid":  # the tail's T(y) on a bounded interval [1/xhi^2, 1/xlo^2]
        return tail_target, tail_weight, 1 / mp.mpf(xhi) ** 2, 1 / mp.mpf(xlo) ** 2
    if kind == "hmid":  # h(y) = 2 x D(x) in w = y - y_c, y_c the middle of [1/xhi^2, 1/xlo^2]
        ylo, yhi = 1 / mp.mpf(xhi) ** 2, 1 / mp.mpf(xlo) ** 2
        yc = (ylo + yhi) / 2
        return (lambda w: outer_target(yc + w)), None, ylo - yc, yhi - yc
    lo = 0 if xhi is None else 1 / mp.mpf(xhi) ** 2
    return tail_target, tail_weight, lo, 1 / mp.mpf(xlo) ** 2


def mid_polynomial(lo, hi, terms):
    """Chebyshev interpolant of ``h = 2xD`` on ``[lo, hi]`` in ``s = x - c`` (``c`` the middle),
    lowest power first, and the interpolation error mpmath's ``chebyfit`` estimates."""
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    c = (lo + hi) / 2
    poly, err = mp.chebyfit(lambda s: 2 * (c + s) * dawson_mp(c + s), [lo - c, hi - c], terms, error=True)
    return c, list(reversed(poly)), err


def rounded_error(f, weight, lo, hi, p, q, to_float, *, samples=2000):
    """Max weighted relative error of P/Q with coefficients rounded by ``to_float`` (exact evaluation)."""
    pr = [mp.mpf(to_float(c)) for c in p]
    qr = [mp.mpf(to_float(c)) for c in q]
    worst = mp.mpf(0)
    for k in range(samples):
        z = lo + (hi - lo) * (1 - mp.cos(mp.pi * (k + 0.5) / samples)) / 2
        fz = f(z)
        w = 1 if weight is None else weight(z)
        worst = max(worst, abs(w * (fz - _polyval(pr, z) / _polyval(qr, z)) / fz))
    return worst


def fit_region(region, to_float, grid=4000, verbose=False):
    name, kind, xlo, xhi, m, n = region
    f, weight, lo, hi = region_target(kind, xlo, xhi)
    p, q, E = remez(f, lo, hi, m, n, weight=weight, grid=grid, verbose=verbose)
    Er = rounded_error(f, weight, lo, hi, p, q, to_float)
    return (name, kind, xlo, xhi, p, q, E, Er)


def fit(layout, to_float, verbose=False, workers=1):
    if workers == 1:
        return [fit_region(r, to_float, verbose=verbose) for r in layout]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as ex:
        return list(ex.map(fit_region, layout, [to_float] * len(layout)))


def print_rows(name: str, rows) -> None:
    """``name = (`` the rows as tuples of reprs ``)``: a table as coefficients.py holds it."""
    print(f"{name} = (")
    for r in rows:
        print("    (" + ", ".join(repr(v) for v in r) + "),")
    print(")")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", choices=sorted(LAYOUTS), nargs="*", default=sorted(LAYOUTS))
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-j", "--workers", type=int, default=2)
    args = ap.parse_args(argv)
    for dtype in args.dtype:
        to_float = float if dtype == "float64" else to_f32
        P = dtype.upper()
        print(f"{P}_SPLIT = {SPLIT[dtype]!r}")
        tail = [r for r in LAYOUTS[dtype] if r[1] == "tail"]
        for name, kind, xlo, xhi, p, q, E, Er in fit(tail, to_float, args.verbose, args.workers):
            print(f"# {dtype} {name} ({kind}) x in [{xlo}, {xhi}): minimax rel err {float(E):.3e}, "
                  f"after rounding coefficients {float(Er):.3e}")
            print(f"{P}_{name.upper()}_P = ({', '.join(repr(to_float(c)) for c in p)},)")
            print(f"{P}_{name.upper()}_Q = ({', '.join(repr(to_float(c)) for c in q)},)")
        step, K = TAYLOR[dtype]
        rows = taylor_rows(step, SPLIT[dtype], K, to_float)
        print(f"# {dtype} Taylor table: x0 = i * {step}, rows (hi, lo, c_1, ..., c_{K})")
        print(f"{P}_TAYLOR_STEP = {step!r}")
        print_rows(f"{P}_TAYLOR", rows)
        if dtype in VECTOR_TAYLOR:
            step, K = VECTOR_TAYLOR[dtype]
            nrows = int(mp.floor(SPLIT[dtype] / mp.mpf(step) + mp.mpf(1) / 2)) + 1  # rows nearest to x < SPLIT
            rows = taylor_rows(step, SPLIT[dtype], K, to_float)[:nrows]
            print(f"# {dtype} Taylor table of the CPU vector kernels: x0 = i * {step}, rows (hi, lo, c_1, ..., c_{K})")
            print(f"{P}_VECTOR_TAYLOR_STEP = {step!r}")
            print_rows(f"{P}_VECTOR_TAYLOR", rows)
        if dtype in VECTOR_TABLE_FREE:
            spec = VECTOR_TABLE_FREE[dtype]
            _, _, xlo, xhi, p, q, E, Er = fit_region(spec["inner"], to_float)
            print(f"# {dtype} AVX2 vector kernel, x < {xhi}: D = x P(x^2)/Q(x^2), minimax rel err {float(E):.3e}, "
                  f"after rounding coefficients {float(Er):.3e}")
            print(f"{P}_VECTOR_INNER_SPLIT = {xhi!r}")
            print(f"{P}_VECTOR_INNER_P = ({', '.join(repr(to_float(c)) for c in p)},)")
            print(f"{P}_VECTOR_INNER_Q = ({', '.join(repr(to_float(c)) for c in q)},)")
            c, h, err = mid_polynomial(xhi, SPLIT[dtype], spec["mid_terms"])
            print(f"# {dtype} AVX2 vector kernel, {xhi} <= x < {SPLIT[dtype]}: D = h/(2x), h = 2xD a polynomial in "
                  f"s = x - {float(c)!r} (Chebyshev interpolant, error {float(err):.2e}), lowest power first")
            print(f"{P}_VECTOR_MID_CENTER = {to_float(c)!r}")
            print(f"{P}_VECTOR_MID_H = ({', '.join(repr(to_float(v)) for v in h)},)")


if __name__ == "__main__":
    main()
