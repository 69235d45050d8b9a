"""Kernels: torch reference, Triton and CUDA implementations behind one dispatch point."""
from .dispatch import available_backends, register, resolve

__all__ = ["available_backends", "register", "resolve"]
