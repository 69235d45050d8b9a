"""Where the kernel sources are and which nvcc compiles them, for the tests that build them offline."""
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository root
CSRC = ROOT / "sdekit" / "csrc"
NVCC = shutil.which("nvcc")
