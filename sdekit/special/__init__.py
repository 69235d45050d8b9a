"""Special functions: Dawson's integral ``dawsn`` (equations, reference and kernels in :mod:`sdekit.kernels.dawsn`)."""
from ..kernels.dawsn import dawsn

__all__ = ["dawsn"]
