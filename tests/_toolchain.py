"""Where the kernel sources are and which compilers build them, for the tests that build them offline."""
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository root
CSRC = ROOT / "sdekit" / "csrc"
NVCC = shutil.which("nvcc")
CXX = shutil.which("c++") or shutil.which("g++")

# The -march values a harness of the "cpu" backend's vector headers is built for: the extension's
# default (setup.py's SDEKIT_CPU_ARCH) and AVX2 + FMA only (a wheel for other machines).
SIMD_ARCHS = ["native", "x86-64-v3"]


def _host_runs(arch: str) -> bool:
    if arch == "native":
        return True
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return all(f" {f}" in flags for f in ("avx2", "fma", "bmi2", "movbe"))  # x86-64-v3


def build_simd_harness(source: str, arch: str, directory: pathlib.Path) -> pathlib.Path:
    """Compile ``source`` (which includes headers of ``sdekit/csrc``) with the flags of the extension's
    build (``setup.py``: no contraction, ``-fno-math-errno``) and ``-march=arch``; the executable's path.
    Skips the calling test where there is no C++ compiler or the host cannot run ``arch`` code."""
    if CXX is None:
        pytest.skip("no C++ compiler on PATH")
    if not _host_runs(arch):
        pytest.skip(f"the host cannot run -march={arch} code")
    (directory / "h.cpp").write_text(source)
    subprocess.run([CXX, "-O2", "-std=c++17", f"-march={arch}", "-ffp-contract=off", "-fno-math-errno",
                    f"-I{CSRC}", str(directory / "h.cpp"), "-o", str(directory / "h")], check=True)
    return directory / "h"
