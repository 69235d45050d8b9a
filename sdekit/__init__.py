"""sdekit: linear SDEs for score-based diffusion models.

    dx = (a(t) x + c(t) y) dt + g(t) dw

Marginals derived symbolically (sympy) and evaluated stably in torch; fused
sampling kernels (Triton, CUDA) with in-kernel counter-based normals; implicit-SVD
inverse-problem operators (``sdekit.inverse``); Dawson's function (``sdekit.special``).
"""
from .sde import EDM, OUVE, TSDVE, CosineVP, DriftVE, LinearSDE, RectifiedFlow, ReverseSDE, SubVPSDE, VESDE, VPSDE
from .losses import denoising_score_matching
from .likelihood import bits_per_dim, log_likelihood
from .solvers import (AdaptiveProbabilityFlow, DormandPrince, EulerMaruyama, ExponentialIntegrator, FlowODE,
                      LangevinCorrector, PredictorCorrector, ProbabilityFlow, ReverseDiffusion)

__version__ = "0.1.0"

__all__ = [
    "LinearSDE", "ReverseSDE", "VESDE", "VPSDE", "SubVPSDE", "OUVE", "TSDVE", "DriftVE",
    "RectifiedFlow", "CosineVP", "EDM",
    "EulerMaruyama", "PredictorCorrector", "ReverseDiffusion", "LangevinCorrector",
    "ProbabilityFlow", "ExponentialIntegrator", "denoising_score_matching",
    "AdaptiveProbabilityFlow", "DormandPrince", "log_likelihood", "bits_per_dim", "FlowODE",
]
