"""tools/gpu_session.sh and tools/gpu_timing.py, checked on a CPU before the GPU run they plan.

The device returns at most 8 files, at most 2 folders deep, and a command may run 10 minutes;
the script must stop each stage inside its budget and keep what it wrote.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from _toolchain import ROOT

from sdekit.kernels.dispatch import backend_unavailable_reason

SCRIPT = ROOT / "tools/gpu_session.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils timeout")


def _run(out, budget, *args, timeout):
    env = {**os.environ, "OUT": str(out), "SDEKIT_GPU_BUDGET_S": str(budget), "PYTHON": sys.executable}
    t0 = time.monotonic()
    res = subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=timeout)
    return res, time.monotonic() - t0


def test_session_skips_every_stage_it_has_no_budget_for_and_ends_inside_it(tmp_path):
    res, wall = _run(tmp_path, 12, "--dry-run", timeout=120)
    assert res.returncode == 0, res.stderr
    log = (tmp_path / "session.log").read_text()
    stages = [line for line in log.splitlines() if line.startswith("=== ")]
    assert [s.split()[1] for s in stages] == ["1.", "2.", "3.", "4.", "done"]
    assert log.count("skipped (only") >= 2  # tests and timings: no 15 s slot left in a 12 s budget
    assert wall < 12 + 60  # the setup probes finish; nothing starts past the budget


def test_timing_dry_run_writes_a_row_per_measurement_and_a_table(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_timing
    finally:
        sys.path.pop(0)
    rec = gpu_timing.main([str(tmp_path), "--dry-run"])
    doc = json.loads((tmp_path / "timing.json").read_text())
    assert doc["rows"] == rec.rows and doc["meta"]["device"] == "cpu"
    whats = {r["what"] for r in doc["rows"]}
    assert {"EM step", "dawsn", "100-step loop, us/step"} <= whats
    assert sum(w.startswith("DMPS score b1") for w in whats) == 2
    measured = [r for r in doc["rows"] if r["us"] is not None]
    assert all(r["us"] > 0 for r in measured)
    # on a CPU the fused backends are reported unavailable, never as errors
    assert all("error" not in r for r in doc["rows"]), [r for r in doc["rows"] if "error" in r]
    table = (tmp_path / "timing.md").read_text()
    # copy, eager, triton, cuda, cpu (no compile on a dry run) x 2 sizes
    assert table.count("| EM step |") == 2 * 5
    # the compiled cpu backend is timed through the front doors wherever it is built
    cpu_rows = [r for r in doc["rows"] if r["impl"] in ("cpu", "cpu eager")]
    assert {r["what"] for r in cpu_rows} == {"EM step", "dawsn", "100-step loop, us/step"} | {
        w for w in whats if w.startswith("DMPS score b1")}
    reason = backend_unavailable_reason("cpu", torch.device("cpu"))
    if reason is None:
        assert all(r["us"] > 0 for r in cpu_rows), cpu_rows
    else:
        assert all(r["us"] is None and reason in r["note"] for r in cpu_rows), cpu_rows


@pytest.mark.slow
def test_dry_run_session_writes_at_most_8_files_one_folder_deep(tmp_path):
    res, wall = _run(tmp_path, 450, "--dry-run", timeout=600)
    assert res.returncode == 0, res.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert 4 <= len(files) <= 8 and all(p.parent == tmp_path for p in files), files
    assert all(p.stat().st_size <= 16 << 20 for p in files)
    assert wall < 450
