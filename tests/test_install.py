"""sdekit installed from a built wheel, away from the source tree, runs its compiled CPU kernels.

The wheel is built against this environment's torch (``--no-build-isolation``) and installed
with ``--target`` into a temporary directory that is put first on ``PYTHONPATH``, so the check
runs the installed copy -- its ``sdekit._cpu`` and the kernel sources shipped in the package --
not this checkout.  Slow (compiles the extension): run with ``-m slow``.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_CHECK = """
import pathlib, sys, torch
import sdekit, sdekit.special
from sdekit.kernels import cuda_ext, steps
from sdekit.kernels.dispatch import backend_unavailable_reason
from sdekit.kernels.dawsn.reference import dawsn_reference
assert pathlib.Path(sdekit.__file__).is_relative_to(sys.argv[1]), sdekit.__file__
assert backend_unavailable_reason("cpu", torch.device("cpu")) is None, backend_unavailable_reason("cpu", torch.device("cpu"))
x = torch.linspace(-7, 7, 1001, dtype=torch.float32)  # float32: bitwise the reference on every build
assert torch.equal(sdekit.special.dawsn(x), dawsn_reference(x))
z = steps.affine_step(torch.zeros(2, 1000), torch.tensor([[0.0], [0.0], [0.0], [1.0]]), seed=3, backend="cpu")
assert abs(z.std().item() - 1) < 0.1
assert {"dawson.cu", "sde_steps.cu", "spectral_scale.cu"} <= {pathlib.Path(s).name for s in cuda_ext.sources()}
assert (cuda_ext.CSRC / "philox.cuh").is_file() and cuda_ext.CSRC.is_relative_to(sys.argv[1])
print("ok")
"""


@pytest.mark.slow
def test_wheel_installed_outside_the_checkout_runs_the_compiled_cpu_kernels(tmp_path):
    dist, site = tmp_path / "dist", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=1200)
    (wheel,) = dist.glob("sdekit-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    r = subprocess.run([sys.executable, "-c", _CHECK, str(site)], cwd=tmp_path, capture_output=True, text=True,
                       env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
