"""How a sampling run is carried out, as opposed to what is sampled: one frozen object.

Every sampler's ``sample`` (and :meth:`EulerMaruyama.simulate`) takes these fields as keywords,
``seed``, ``backend``, ``progress`` and ``return_trajectory`` also positionally in that order, or
as one ``options=RunOptions(...)`` whose fields explicit keywords then override.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._checks import check_backend, check_bool, check_device, check_dtype, check_int, check_seed
from ..kernels.rng import check_sample_offset


@dataclass(frozen=True)
class RunOptions:
    """The run options of a sampler; each field is checked when the object is built.

    Attributes:
        seed: key of the counter-based normals (an int in ``[0, 2**64 - 1]``); ``None`` draws one
            from torch's global CPU generator, so ``torch.manual_seed`` makes runs repeatable.
        backend: ``"auto"`` or one of :data:`sdekit.kernels.dispatch.BACKENDS`; every backend
            draws the same numbers for the same seed.
        progress: show a tqdm bar.
        return_trajectory: also return the ``(steps + 1, *shape)`` states.
        check_every: look at the kernels' finiteness flags every this many steps (one host sync
            each); ``0`` looks once at the end.  Flags are never reset and NaN propagates through
            the affine update, so looking once at the end misses nothing.
        cuda_graph: on CUDA, capture the loop in a CUDA graph (falls back to the eager loop with a
            warning when capture fails; ignored elsewhere).
        dtype: dtype of a prior draw when neither ``x_T`` nor ``y`` fixes it (default float32;
            complex64/complex128 draw complex data where the sampler takes it); when given it
            must agree with theirs.
        device: likewise for the device (default CPU).
        denoise: leave the normals out of the last update and return its mean: DDPM's Algorithm 2
            (``z = 0`` at its last step) and score_sde's ``noise_removal=True``, the default of
            both, and so sdekit's for every sampler.  The noise of that step (std ``N`` of the
            last row of the coefficient table, about ``g(t_eps) sqrt(h)``) is far larger than
            the detail left to resolve at ``t_eps``; the mean is the better sample of the data.
            ``denoise=False`` returns a draw of the discretised chain's law at ``t_eps``, which
            is what a Monte Carlo check against the marginal at ``t_eps`` wants.
        sample_offset: the global index of this batch's first sample: row ``b`` draws the normals
            of sample ``sample_offset + b`` (:mod:`sdekit.kernels.rng`), so a process sampling rows
            ``[k, k + B)`` of a larger run with ``sample_offset=k`` draws exactly those rows of
            the one-process run (:mod:`sdekit.distributed`).  ``sample_offset + B <= 2**32``.
    """

    seed: int | None = None
    backend: str = "auto"
    progress: bool = False
    return_trajectory: bool = False
    check_every: int = 0
    cuda_graph: bool = False
    dtype: torch.dtype | None = None
    device: torch.device | None = None
    denoise: bool = True
    sample_offset: int = 0  # reaches the kernels through ``sdekit.solvers.loop.rng_key`` and the prior draw alone

    def __post_init__(self):
        fix = object.__setattr__
        fix(self, "seed", check_seed(self.seed))
        fix(self, "backend", check_backend(self.backend))
        for name in ("progress", "return_trajectory", "cuda_graph", "denoise"):
            check_bool(name, getattr(self, name))
        fix(self, "check_every", check_int("check_every", self.check_every, min=0))
        fix(self, "sample_offset", check_sample_offset(self.sample_offset))
        fix(self, "dtype", check_dtype("dtype", self.dtype, allow_complex=True))
        fix(self, "device", check_device("device", self.device))

    @classmethod
    def merge(cls, options: RunOptions | None, args: tuple, kwargs: dict) -> RunOptions:
        """``options`` (default: all defaults) with the positional ``args`` (``seed``, ``backend``,
        ``progress``, ``return_trajectory``) and the keywords ``kwargs`` put over it."""
        if options is not None and not isinstance(options, RunOptions):
            raise TypeError(f"options must be a RunOptions, got {type(options).__name__}")
        positional = ("seed", "backend", "progress", "return_trajectory")
        if len(args) > len(positional):
            raise TypeError(f"at most {len(positional)} run options go positionally ({', '.join(positional)}); "
                            f"got {len(args)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise TypeError(f"unknown run option(s) {unknown}; RunOptions has {sorted(fields)}")
        changes = dict(zip(positional, args))
        twice = sorted(set(changes) & set(kwargs))
        if twice:
            raise TypeError(f"run option(s) {twice} given both positionally and by keyword")
        changes.update(kwargs)
        return dataclasses.replace(options or cls(), **changes)
