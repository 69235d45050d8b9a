"""Samplers of linear SDEs: the SDE gives the coefficients, the solver the update, the kernel the arithmetic.

Every update is one fused kernel ``x <- A x + C y + S score + N z`` (:mod:`sdekit.kernels.steps`)
with counter-based normals keyed by ``(seed, step, element)``, so the ``torch``, ``triton``
and ``cuda`` backends draw the same numbers for the same seed.
"""
from .annealed_langevin import AnnealedLangevin
from .base import NonFiniteError, ReverseSampler, SolverError
from .euler_maruyama import EulerMaruyama
from .exponential import ExponentialIntegrator
from .predictor_corrector import LangevinCorrector, PredictorCorrector, ReverseDiffusion
from .probability_flow import ProbabilityFlow

__all__ = [
    "AnnealedLangevin", "EulerMaruyama", "ExponentialIntegrator", "LangevinCorrector", "NonFiniteError", "PredictorCorrector",
    "ProbabilityFlow", "ReverseDiffusion", "ReverseSampler", "SolverError",
]
