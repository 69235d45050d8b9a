"""Fused kernels, one folder per operation, behind one dispatch point.

Every operation ``<op>`` lives in ``sdekit/kernels/<op>/``:

* ``__init__.py`` -- the contract every backend honours (shapes, strides, batch sizes,
  dtypes), the argument checks, the schema of the compiled ``torch.ops.sdekit`` op, the
  autograd formula where there is one, and the front door that asks :mod:`.dispatch`;
* ``reference.py`` -- the torch reference, the specification the kernels are tested against;
* ``triton.py``, ``cuda.py``, ``cpu.py`` -- the kernels (Triton; the CUDA and host builds of
  the same ``sdekit/csrc`` arithmetic, see :mod:`.cuda_ext` and :mod:`.cpu_ext`).

Operations: :mod:`.steps` (``affine_step``, ``sample_sq_norms``: every sampler's update),
:mod:`.dawsn` (Dawson's integral), :mod:`.spectral_scale` (the DMPS likelihood's spectral
middle).  :mod:`.rng` is the counter-based normal generator the steps share.  Importing
this package (``import sdekit`` does) registers every operation and backend.
"""
from .dispatch import BACKENDS, available_backends, register, resolve
from . import dawsn, spectral_scale, steps  # noqa: E402,F401  (registers every op and backend)

__all__ = ["BACKENDS", "available_backends", "register", "resolve"]
