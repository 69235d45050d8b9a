"""SDE classes: the general :class:`LinearSDE` and the zoo built on it."""
from .batch import per_sample
from .linear import LinearSDE
from .reverse import ReverseSDE
from .zoo import EDM, OUVE, TSDVE, CosineVP, DriftVE, RectifiedFlow, SubVPSDE, VESDE, VPSDE

__all__ = ["LinearSDE", "ReverseSDE", "VESDE", "VPSDE", "SubVPSDE", "OUVE", "TSDVE", "DriftVE", "RectifiedFlow", "CosineVP", "EDM",
           "per_sample"]
