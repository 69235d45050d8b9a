"""Special functions that sympy lacks, used by the stable rewrites.

``dawsn(z)`` is Dawson's integral ``D(z) = exp(-z^2) int_0^z exp(u^2) du``.  It is the
bounded form of the imaginary error function, ``erfi(z) = 2/sqrt(pi) exp(z^2) D(z)``:
sympy's integrator returns ``erfi``, which overflows in float64 for ``|z| > 26.6``,
while ``D`` decays like ``1/(2z)``.  Generated torch code calls
:func:`sdekit.special.dawsn`.
"""
from __future__ import annotations

import sympy as sp


class dawsn(sp.Function):
    """Dawson's integral, ``D(z) = sqrt(pi)/2 exp(-z^2) erfi(z)``; ``D'(z) = 1 - 2 z D(z)``."""

    nargs = 1

    @classmethod
    def eval(cls, z):
        if z.is_zero:
            return sp.S.Zero
        if z.could_extract_minus_sign():
            return -cls(-z)
        return None

    def fdiff(self, argindex=1):
        (z,) = self.args
        return 1 - 2 * z * dawsn(z)

    def _eval_rewrite_as_erfi(self, z, **kwargs):
        return sp.sqrt(sp.pi) / 2 * sp.exp(-z**2) * sp.erfi(z)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_evalf(self, prec):
        import mpmath

        if not self.args[0].is_number:
            return None
        z = self.args[0]._to_mpmath(prec)
        with mpmath.workprec(prec):
            value = mpmath.sqrt(mpmath.pi) / 2 * mpmath.exp(-z**2) * mpmath.erfi(z)
        return sp.Float(value, precision=prec)

    def _latex(self, printer):
        return r"\operatorname{D}\left(%s\right)" % printer._print(self.args[0])
