"""Construction time of SDEs whose marginals take the numerical (tabulated) path.

    SDEKIT_CACHE_DIR=off python benchmarks/marginals_construction.py

Each SDE is built in a fresh interpreter (no in-process caches) with the on-disk cache off;
prints the wall-clock total and, of it, the time spent compiling the marginals
(``compile_marginals``: quadrature and Chebyshev tables, after sympy's derivation).
"""
import subprocess
import sys

CASES = ['LinearSDE("-x*t**t", "1")', "DriftVE(0.3, 2.0)", "DriftVE(7.5, 2.0)"]

SCRIPT = """
import time
import sdekit
import sdekit.sde.linear as linear

compiling = []
compile_marginals = linear.compile_marginals

def timed(*args, **kwargs):
    t0 = time.perf_counter()
    try:
        return compile_marginals(*args, **kwargs)
    finally:
        compiling.append(time.perf_counter() - t0)

linear.compile_marginals = timed
t0 = time.perf_counter()
sde = sdekit.{case}
total = time.perf_counter() - t0
print(f"total {{total:.2f}} s, compile_marginals {{sum(compiling):.2f}} s; paths: {{sde.paths}}")
"""

if __name__ == "__main__":
    for case in CASES:
        out = subprocess.run([sys.executable, "-c", SCRIPT.format(case=case)], capture_output=True, text=True)
        print(f"{case}: {out.stdout.strip() or out.stderr.strip()[-400:]}", flush=True)
