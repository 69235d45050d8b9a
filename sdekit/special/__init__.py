"""Special functions: Dawson's integral ``dawsn``."""
from .dawson import dawsn

__all__ = ["dawsn"]
