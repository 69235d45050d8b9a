"""Build script.

Two optional compiled extensions, both from the kernel sources shipped inside the package
(``sdekit/csrc``), so that the installed package and a wheel carry them too:

* ``sdekit._cpu`` -- the ``"cpu"`` backend (``sdekit/csrc/cpu/ops.cpp`` and the ``SDEKIT_HD``
  headers), built whenever a C++ compiler is found, so that ``pip install -e .`` leaves
  nothing to compile on first use.  ``SDEKIT_BUILD_CPU=0`` skips it; a failed build is
  reported and the install goes on without it (``sdekit info`` then says the ``"cpu"``
  backend is unavailable, and CPU tensors use the torch reference).  ``SDEKIT_CPU_ARCH``
  is passed as ``-march`` (default ``native``: the kernels are built on the machine that
  runs them; set e.g. ``x86-64-v3`` for a wheel meant for other machines).
* ``sdekit._C`` -- the CUDA kernels, compiled ahead of time when a CUDA build of torch and
  ``nvcc`` are both present (or ``SDEKIT_BUILD_CUDA=1``); otherwise they are compiled just
  in time on first use (see ``sdekit/kernels/cuda_ext.py``).  ``SDEKIT_BUILD_CUDA=0``
  forces no CUDA build.

The extensions are built against the torch of the environment they are installed into
(their C++ ABI is that torch's), so torch must be installed there *before* sdekit:
``pip install torch && pip install -e .``.  pip's build isolation hides that torch from the
build; this script finds it anyway (it asks the environment's own interpreter), so
``--no-build-isolation`` is not needed.  When torch is not installed yet (one ``pip install``
command installing both), sdekit is installed without compiled kernels and says so.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("sdekit", "csrc")


def _flag(name: str):
    v = os.environ.get(name)
    return None if v is None else v not in ("", "0")


def _want_cuda(torch) -> bool:
    flag = _flag("SDEKIT_BUILD_CUDA")
    if flag is not None:
        return flag
    return torch.version.cuda is not None and (shutil.which("nvcc") is not None or bool(os.environ.get("CUDA_HOME")))


def _have_cxx() -> bool:
    cxx = (os.environ.get("CXX") or sysconfig.get_config_var("CXX") or "c++").split()[0]
    return shutil.which(cxx) is not None


def _find_target_torch() -> bool:
    """Make the installation target's torch importable here, also under pip's build isolation.

    An isolated build runs this environment's interpreter with ``PYTHONPATH`` (a sitecustomize
    hiding site-packages) and ``PYTHONNOUSERSITE`` set; without them the same interpreter sees
    the environment's own site-packages, where the torch the extensions will run with lives.
    """
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        pass
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE")}
    probe = "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))"
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return False
    sys.path.append(r.stdout.strip().splitlines()[-1])  # after the build environment's own packages
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def _setup_kwargs() -> dict:
    if not _find_target_torch():
        print("sdekit: torch is not installed yet, so no kernels are compiled (install torch first, then "
              "sdekit, to build the 'cpu' backend)", file=sys.stderr)
        return {}
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    exts = []
    if _flag("SDEKIT_BUILD_CPU") is not False:
        if _have_cxx():
            arch = os.environ.get("SDEKIT_CPU_ARCH", "native")
            exts.append(CppExtension(
                name="sdekit._cpu",
                sources=[os.path.join(CSRC, "cpu", "ops.cpp")],
                include_dirs=[os.path.join(HERE, CSRC)],
                extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", *([f"-march={arch}"] if arch else [])],
                extra_link_args=["-fopenmp"],
                optional=True))  # a failed build is reported and left out: sdekit runs without it
        else:
            print("sdekit: no C++ compiler found; the 'cpu' backend is not built "
                  "(CPU tensors use the torch reference)", file=sys.stderr)
    if _want_cuda(torch):
        exts.append(CUDAExtension(
            name="sdekit._C",
            sources=sorted(glob.glob(os.path.join(CSRC, "*.cu")) + glob.glob(os.path.join(CSRC, "*.cpp"))),
            include_dirs=[os.path.join(HERE, CSRC)],
            extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "--expt-relaxed-constexpr"]},
            optional=True))
    if not exts:
        return {}

    return {"ext_modules": exts, "cmdclass": {"build_ext": BuildExtension}}


setup(**_setup_kwargs())
