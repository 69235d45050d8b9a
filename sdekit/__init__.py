"""sdekit: linear SDEs for score-based diffusion models.

    dx = (a(t) x + c(t) y) dt + g(t) dw

Marginals derived symbolically (sympy), evaluated stably in torch and verified
(``sdekit.symbolic``, ``sdekit.sde``); samplers as plans run by one loop, every update one
fused kernel (torch reference, Triton, CUDA, compiled CPU) with in-kernel counter-based
normals (``sdekit.solvers``, ``sdekit.kernels``); implicit-SVD inverse-problem operators,
DMPS, QCS-SGM(+) and Dirac (``sdekit.inverse``); likelihoods under the probability-flow ODE
(``sdekit.likelihood``); training losses (``sdekit.losses``); model-output conversions
(``sdekit.parameterisation``); sampling across processes (``sdekit.distributed``); Dawson's
function (``sdekit.special``).
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
