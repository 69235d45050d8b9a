"""Samplers of linear SDEs: the SDE gives the coefficients, the solver the update, the kernel the arithmetic.

Every update is one fused kernel ``x <- A x + C y + S score + N z`` (:mod:`sdekit.kernels.steps`)
with counter-based normals keyed by ``(seed, word, element)``, so the ``torch``, ``triton`` and
``cuda`` backends draw the same numbers for the same seed.  The modules:

* :mod:`.base`: the abstract :class:`ReverseSampler` (a sampler is its ``step_coefficients``)
  and :class:`Corrector`, and the front door that checks a run;
* :mod:`.plan`: a run's :class:`Plan` (grid, ``(A, C, S, N)`` table, corrector, second stage, RNG words);
* :mod:`.options`: :class:`RunOptions` (seed, backend, ..., denoise), one frozen object;
* :mod:`.loop`: the one loop that executes a plan (forward and reverse);
* :mod:`.registry`: the names ``PredictorCorrector`` and ``DMPS`` accept;
* :mod:`.complex_data`: complex data (sgmse's spectrograms) run as real pairs;
* :mod:`.whole_batch`: statistics of the whole batch when a run holds one shard of it
  (:mod:`sdekit.distributed`);
* one module per family of samplers (equation, order and source in each class docstring).
"""
from .adaptive import AdaptiveProbabilityFlow, DormandPrince, ODESolution
from .ancestral import AncestralDDPM, AncestralSampling
from .annealed_langevin import AnnealedLangevin
from .base import Corrector, ReverseSampler
from .euler_maruyama import EulerMaruyama
from .exponential import ExponentialIntegrator
from .flow import FlowHeun, FlowODE
from .loop import NonFiniteError, SolverError
from .options import RunOptions
from .plan import Plan
from .predictor_corrector import (AnnealedLangevinCorrector, LangevinCorrector, NonePredictor, PredictorCorrector,
                                  ReverseDiffusion, SnrCorrector)
from .probability_flow import ProbabilityFlow

__all__ = [
    "AdaptiveProbabilityFlow", "AncestralDDPM", "AncestralSampling", "AnnealedLangevin", "AnnealedLangevinCorrector",
    "Corrector", "DormandPrince", "EulerMaruyama", "ExponentialIntegrator", "FlowHeun", "FlowODE", "LangevinCorrector",
    "NonFiniteError", "NonePredictor", "ODESolution", "Plan", "PredictorCorrector", "ProbabilityFlow",
    "ReverseDiffusion", "ReverseSampler", "RunOptions", "SnrCorrector", "SolverError",
]
