"""Inverse problems: exact implicit-SVD operators and pseudo-likelihood scores.

    from sdekit.inverse import Denoising, Inpainting, SuperResolution, Colorization
    from sdekit.inverse import SeparableBlur, DenseOperator, WalshHadamardCS
    from sdekit.inverse import LikelihoodScore, likelihood_score, likelihood_score_at
    from sdekit.inverse import quantized_likelihood_score, quantized_likelihood_score_at, quantize
    from sdekit.inverse import QCSPlus, ill_conditioned_matrix, correlated_matrix
    from sdekit.inverse import DMPS
    from sdekit.inverse import BlurFamily, BoxInpaintingFamily, DegradationFamily, StochasticDegradation, Dirac

Every operator is ``A = U diag(S) V^T`` kept implicit (DDRM's ``V, Vt, U, Ut,
singulars, add_zeros``, plus the range-space maps ``Vt_range, Ut_range, V_range``), exact
(``singulars()`` truncates nothing; ``pinv`` and the likelihood scores treat rounding-level
singular values as zeros), batched, float32 / float64, CPU / GPU.  See
:mod:`sdekit.inverse.base` for the conventions and the input layouts.
"""
from .base import SVDOperator
from .dirac import UPDATE_RULES, DataConsistencyGuidance, Dirac, DiracTrajectory, StochasticDegradation
from .dirac_families import (BlurFamily, BoxInpaintingFamily, DegradationFamily, DiagonalOperator,
                             PiecewiseLinearSchedule, greedy_schedule)
from .dmps import DMPS, AncestralDDPM
from .hadamard import WalshHadamardCS
from .operators import Colorization, Denoising, DenseOperator, Inpainting, SuperResolution
from .posterior import posterior_score_fn
from .qcs_plus import EPInfo, QCSPlus
from .quantized import (quantize, quantized_likelihood_score, quantized_likelihood_score_at, row_norms_sq,
                        truncated_normal_mean)
from .random_matrices import correlated_matrix, haar_orthogonal, ill_conditioned_matrix, toeplitz_sqrt
from .scores import LikelihoodScore, likelihood_score, likelihood_score_at
from .svd_blur import SeparableBlur

__all__ = [
    "SVDOperator", "Denoising", "DenseOperator", "Inpainting", "SuperResolution", "Colorization",
    "SeparableBlur", "WalshHadamardCS",
    "LikelihoodScore", "likelihood_score", "likelihood_score_at",
    "quantized_likelihood_score", "quantized_likelihood_score_at", "quantize", "truncated_normal_mean",
    "row_norms_sq", "QCSPlus", "EPInfo", "posterior_score_fn",
    "ill_conditioned_matrix", "correlated_matrix", "haar_orthogonal", "toeplitz_sqrt",
    "DMPS", "AncestralDDPM",
    "DegradationFamily", "BlurFamily", "BoxInpaintingFamily", "DiagonalOperator", "PiecewiseLinearSchedule",
    "greedy_schedule", "StochasticDegradation", "Dirac", "DataConsistencyGuidance", "DiracTrajectory", "UPDATE_RULES",
]
