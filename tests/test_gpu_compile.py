"""Every GPU kernel compiles for real GPU targets on a machine without a GPU, and the compiled
code has the registers, spills and memory access it was written for.

Triton: ``tools/gpu_compile.py`` records the launches the launchers make on CPU tensors, binds
them with Triton's own binder for ``GPUTarget("cuda", 90, 32)`` (and 100 in the slow sweep),
so aligned contiguous tensors get the specialisations a real launch gives them, and compiles
them with ``triton.compile`` and ptxas.  It runs in a subprocess because this session's
Triton is in interpreter mode (``TRITON_INTERPRET=1``, set by conftest), and with
``TRITON_DEFAULT_FP_FUSION=0`` so that the FMA contraction the kernels pin per launch is what
is checked.  CUDA: ``sdekit/csrc/`` instantiations through ``nvcc -arch=sm_90 -Xptxas -v``.

"128-bit access" is counted in the PTX (``ld/st.global.v4.b32|f32`` or ``.v2.b64|f64``).
The tables these numbers come from are in ``benchmarks/RESULTS.md``.
"""
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from _toolchain import NVCC, ROOT

sys.path.insert(0, str(ROOT / "tools"))
try:
    import gpu_compile
finally:
    sys.path.pop(0)

pytest.importorskip("triton")

# With 256 threads per block, 128 registers still let two blocks share an SM; the launchers
# pin ``maxnreg=128`` so ptxas spills nothing instead of squeezing into 64 (see steps/triton.py).
MAX_REGISTERS = 128
STRIDED_MAX_REGISTERS = 96  # one group per thread (before: 216-255 registers at 4 groups)


def _run_triton_compile(tmp_path_factory, *args):
    out = tmp_path_factory.mktemp("aot") / "rows.json"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "0"  # the kernels must not depend on it
    res = subprocess.run([sys.executable, str(ROOT / "tools/gpu_compile.py"), "--json", str(out), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert res.returncode == 0, res.stderr[-4000:]
    doc = json.loads(out.read_text())
    if doc["skip_reason"]:
        pytest.skip(doc["skip_reason"])
    return doc["rows"]


@pytest.fixture(scope="module")
def triton_rows(tmp_path_factory):
    """Each kernel with each dtype and layout, the flag combinations that bound the register use."""
    return _run_triton_compile(tmp_path_factory, "--arch", "90")


@pytest.fixture(scope="module")
def triton_rows_all(tmp_path_factory):
    """Every specialisation the launchers can pick, for sm_90 and sm_100 (minutes: slow)."""
    return _run_triton_compile(tmp_path_factory, "--exhaustive", "--arch", "90,100")


def _flags(row):
    """The optional inputs of an affine_step variant label (S score, Y y, N noise, F flags)."""
    tail = row["variant"].split()[-1]
    return set(tail) if tail.isupper() else set()


def _layout(row):
    return row["variant"].split()[2]


def check_triton_rows(rows):
    assert {(r["kernel"], r["variant"].split()[1]) for r in rows} == {
        (k, dt) for k in ("affine_step_kernel", "sq_norms_kernel", "dawsn_kernel", "spectral_scale_kernel")
        for dt in ("float32", "float64")}
    for r in rows:
        where = f"{r['variant']} sm_{r['cap']}"
        assert r["spill_st"] == 0 and r["spill_ld"] == 0, where
        assert r["fp_fusion"], where
        if r["kernel"] != "dawsn_kernel":
            assert r["regs"] <= MAX_REGISTERS, (where, r["regs"])
        if _layout(r) == "strided":
            assert r["regs"] <= STRIDED_MAX_REGISTERS, (where, r["regs"])
        if r["kernel"] == "affine_step_kernel" and _layout(r) in ("contig", "tail"):
            # N a multiple of the group (tail: not of 16): every tensor moves 16 bytes at a
            # time, two groups per thread; the only scalar stores are the flag words
            read = 1 + ("S" in _flags(r)) + ("Y" in _flags(r))
            assert r["ld_v128"] >= 2 * read and r["st_v128"] == 2, (where, r)
            flag_words = ("F" in _flags(r)) * (1 + ("S" in _flags(r)))  # output flag; score flag with a score
            assert r["st_scalar"] == flag_words, (where, r)
        if r["kernel"] == "sq_norms_kernel" and _layout(r) in ("contig", "tail"):
            assert r["ld_v128"] >= 2, (where, r)
        if r["kernel"] == "spectral_scale_kernel" and _layout(r) == "contig":
            assert r["ld_v128"] >= 3 and r["st_v128"] >= 1, (where, r)
        if r["kernel"] == "dawsn_kernel":
            # whole blocks unmasked: 16-byte loads and stores also when n is not a multiple of 16
            assert r["ld_v128"] >= 2 and r["st_v128"] >= 2, (where, r)
            assert r["fma"] > 0, where  # contracted although TRITON_DEFAULT_FP_FUSION=0


def test_triton_kernels_compile_for_sm90_without_spills_with_16_byte_access(triton_rows):
    check_triton_rows(triton_rows)
    assert {_layout(r) for r in triton_rows} >= {"contig", "tail", "odd", "strided"}


@pytest.mark.slow
def test_every_triton_specialisation_compiles_for_sm90_and_sm100_without_spills(triton_rows_all):
    check_triton_rows(triton_rows_all)
    assert {r["cap"] for r in triton_rows_all} == {90, 100}
    # 16 flag combinations x 4 layouts + 4 sq_norms layouts + 2 dawsn, per dtype; 4 spectral_scale
    assert len(triton_rows_all) == 2 * (2 * (16 * 4 + 4 + 2) + 4)


def test_fma_contraction_does_not_follow_the_triton_default(triton_rows):
    """Compiled with TRITON_DEFAULT_FP_FUSION=0, the kernels still contract (pinned per launch)."""
    for r in triton_rows:
        assert r["fp_fusion"] is True, r["variant"]
        if r["kernel"] != "spectral_scale_kernel":  # its one multiply-add is S * S + ... in a division
            assert r["fma"] > 0, r["variant"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_group_masked_tail_path_equals_reference(dtype, triton_device):
    """The path the `tail` rows compile (N a multiple of the group but not of 16, batch strides
    passed in groups, mask per group), over several tiles with a partial last one, contiguous
    and as a channel slice, for affine_step and sample_sq_norms (through the front door, so the
    arguments are the checked ones the launcher gets in use)."""
    from sdekit.kernels import steps

    g = torch.Generator().manual_seed(3)
    x, s, y = (torch.randn(2, 3, 7, 100, generator=g, dtype=dtype).to(triton_device) for _ in range(3))  # N = 2100
    coef = torch.randn(4, 2, generator=g, dtype=dtype).to(triton_device)
    sliced = torch.randn(2, 6, 7, 100, generator=g, dtype=dtype).to(triton_device)[:, ::2]  # batch stride 8400
    tol = 8 * torch.finfo(dtype).eps
    for xx in (x, sliced):
        got = steps.affine_step(xx, coef, score=s, y=y, seed=4, step=5, backend="triton")
        want = steps.affine_step(xx, coef, score=s, y=y, seed=4, step=5, backend="torch")
        assert (got - want).abs().max() <= tol * (1 + want.abs().max()), dtype
        n_got = steps.sample_sq_norms(xx, seed=4, step=5, backend="triton")
        n_want = steps.sample_sq_norms(xx, seed=4, step=5, backend="torch")
        assert ((n_got - n_want).abs() <= 64 * tol * n_want.abs()).all(), (n_got, n_want)


# ---------------------------------------------------------------------------------------- CUDA
def _cuda_rows(tmp_path_factory, exhaustive):
    if NVCC is None:
        pytest.skip("nvcc is not on PATH")
    return gpu_compile.cuda_report(NVCC, tmp_path_factory.mktemp("cuda"), exhaustive=exhaustive)


@pytest.fixture(scope="module")
def cuda_rows(tmp_path_factory):
    return _cuda_rows(tmp_path_factory, exhaustive=False)


def _template_args(row):
    return [a.strip() for a in re.search(r"<(.*)>", row["variant"]).group(1).split(",")]


def check_cuda_rows(rows):
    for r in rows:
        assert r["spill_st"] == 0 and r["spill_ld"] == 0, r["variant"]
        args = _template_args(r)
        if r["kernel"] == "affine_step_kernel" and args[6] == "true":  # VEC: one 16-byte group per thread
            hs, hy, hf = (a == "true" for a in (args[1], args[2], args[4]))
            assert r["st_v128"] == 1 and r["st_scalar"] == (2 if hf else 0), r
            assert r["ld_v128"] >= 1 + hs + hy, r
    norms = {(_template_args(r)[1], _template_args(r)[3]): r for r in rows
             if r["kernel"] == "sample_sq_norms_kernel" and _template_args(r)[0] == "float"}
    assert norms[("true", "true")]["ld_v128"] >= 1 and norms[("true", "false")]["ld_v128"] == 0


def test_cuda_kernels_compile_for_sm90_without_spills_and_store_16_bytes_per_group(cuda_rows):
    check_cuda_rows(cuda_rows)
    assert sum(r["kernel"] == "affine_step_kernel" for r in cuda_rows) == 32


@pytest.mark.slow
def test_every_cuda_instantiation_compiles_for_sm90_without_spills(tmp_path_factory):
    rows = _cuda_rows(tmp_path_factory, exhaustive=True)
    check_cuda_rows(rows)
    assert len(rows) == 2 * (16 * 3 + 3 + 2)


def test_ptx_counter_tells_vector_from_scalar_access():
    ptx = """
    ld.global.v4.f32 {%f1, %f2, %f3, %f4}, [%rd1];
    ld.global.nc.v2.b64 {%rd5, %rd6}, [%rd2];
    @%p1 ld.global.b32 %r1, [%rd3];
    st.global.v4.b32 [%rd4], {%r1, %r2, %r3, %r4};
    @%p2 st.global.b32 [%rd4], %r5;
    st.global.f32 [%rd4+4], %f5;
    fma.rn.f32 %f6, %f1, %f2, %f3;
    ld.shared.v4.f32 {%f1, %f2, %f3, %f4}, [%r9];
    """
    c = gpu_compile.ptx_access_counts(ptx)
    assert (c["ld_v128"], c["ld_scalar"], c["st_v128"], c["st_scalar"], c["fma"]) == (2, 1, 1, 2, 1)


def test_ptxas_report_is_read_per_entry_not_per_device_function():
    log = """ptxas info    : Compiling entry function '_k' for 'sm_90a'
ptxas info    : Function properties for _k
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 64 registers, used 1 barriers, 8 bytes cumulative stack size
ptxas info    : Function properties for __internal_trig_reduction_slowpathd
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
"""
    assert gpu_compile.parse_ptxas(log) == {"_k": {"regs": 64, "spill_st": 4, "spill_ld": 4, "stack": 8}}


def test_offline_compile_reports_why_it_cannot_run_in_interpreter_mode(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert "TRITON_INTERPRET" in gpu_compile.can_target_cuda()

