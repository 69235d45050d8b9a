"""Compile sdekit's GPU kernels ahead of time, without a GPU, and read what the compilers produced.

Triton: every launch a launcher (``sdekit.kernels.{steps,dawsn,spectral_scale}.triton``) makes is
recorded on CPU tensors, bound by Triton's own binder for ``GPUTarget("cuda", cap, 32)`` (so
pointers, and ints divisible by 16 or equal to 1, get the specialisations a real launch on
aligned tensors gets), compiled by ``triton.compile``, and the PTX is passed through Triton's
``ptxas -v``.  CUDA: instantiations of ``sdekit/csrc/*.cuh`` compiled by ``nvcc -arch=sm_90 -Xptxas -v``.

For each variant: registers, spill bytes, and the count of 128-bit (``.v4.b32`` / ``.v2.b64``)
and scalar global loads and stores in the PTX.  Run as a script (it must import Triton with
``TRITON_INTERPRET`` unset, so the tests run it in a subprocess)::

    python tools/gpu_compile.py [--exhaustive] [--arch 90,100] [--json out.json] [--cuda]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
CSRC = ROOT / "sdekit" / "csrc"

_PTXAS_RE = re.compile(r"Used (\d+) registers")
_SPILL_RE = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_FUNC_RE = re.compile(r"Compiling entry function '(\S+)'")
_PROPS_RE = re.compile(r"Function properties for (\S+)")


def ptx_access_counts(ptx: str) -> dict:
    """128-bit and narrower global loads/stores, FMAs and instructions in one PTX text."""
    ops = []
    for ln in ptx.splitlines():
        tok = ln.split()
        if tok and tok[0].startswith("@"):  # predicate
            tok = tok[1:]
        if tok and not tok[0].startswith(("//", ".", "{", "}", "$", "(", ")")):
            ops.append(tok[0].rstrip(";"))
    wide = re.compile(r"\.(v4\.(b32|f32|u32|s32)|v2\.(b64|f64|u64|s64))$")

    def count(op, vec):
        return sum(1 for o in ops if o.split(".")[0] == op and ".global" in o and bool(wide.search(o)) == vec)

    return {"ld_v128": count("ld", True), "st_v128": count("st", True),
            "ld_scalar": count("ld", False), "st_scalar": count("st", False),
            "fma": sum(o.startswith("fma.") for o in ops), "instructions": len(ops)}


def parse_ptxas(text: str) -> dict:
    """``{entry: {"regs", "spill_st", "spill_ld", "stack"}}`` from ``ptxas -v`` output (device
    functions such as the trig slow path are reported separately and skipped)."""
    out, cur = {}, None
    for ln in text.splitlines():
        if m := _FUNC_RE.search(ln):
            cur = m.group(1)
            out[cur] = {"regs": 0, "spill_st": 0, "spill_ld": 0, "stack": 0}
            continue
        if m := _PROPS_RE.search(ln):
            cur = m.group(1) if m.group(1) in out else None
            continue
        if cur is None:
            continue
        m = _SPILL_RE.search(ln)
        if m:
            out[cur]["spill_st"], out[cur]["spill_ld"] = int(m.group(1)), int(m.group(2))
            out[cur]["stack"] = int(re.search(r"(\d+) bytes stack frame", ln).group(1))
        m = _PTXAS_RE.search(ln)
        if m:
            out[cur]["regs"] = int(m.group(1))
    return out


# ------------------------------------------------------------------------------------------ Triton
class _Recorder:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](*args, **kw)`` records the call."""

    def __init__(self, kernel, calls):
        self.kernel, self.calls = kernel, calls

    def __getitem__(self, grid):
        return lambda *args, **kw: self.calls.append((self.kernel, args, kw))


def _step_cases(exhaustive: bool):
    """(label, call) for every specialisation the step launchers pick (a subset unless exhaustive)."""
    import torch

    from sdekit.kernels.steps import triton as st

    shapes = {"contig": (2, 3, 32, 32),      # N = 3072: a multiple of 16
              "tail": (2, 3, 7, 20),         # N = 420: a multiple of 4, not of 16
              "odd": (2, 3, 7, 5)}           # N = 105: not a multiple of 4
    cases = []
    for dt, layout in itertools.product((torch.float32, torch.float64), ("contig", "tail", "odd", "strided")):
        shape = shapes["contig" if layout == "strided" else layout]
        mk = (lambda: torch.randn(shape[0], shape[1], shape[3], shape[2], dtype=dt).transpose(-1, -2)) \
            if layout == "strided" else (lambda: torch.randn(*shape, dtype=dt))
        coef = torch.randn(4, shape[0], dtype=dt)
        combos = itertools.product((0, 1), repeat=4) if exhaustive or layout == "contig" else \
            [(1, 1, 1, 0), (1, 0, 1, 0)]
        for hs, hy, nz, hf in combos:
            if not exhaustive and layout == "contig" and (hs, hy, nz, hf) not in \
                    {(1, 1, 1, 0), (1, 0, 1, 0), (1, 0, 0, 0), (1, 1, 1, 1), (0, 0, 1, 0)}:
                continue
            label = f"affine_step {str(dt)[6:]} {layout} " + "".join(
                n for n, on in zip(("S", "Y", "N", "F"), (hs, hy, nz, hf)) if on)
            x = mk()
            kw = dict(score=mk() if hs else None, y=mk() if hy else None, noise=bool(nz),
                      flags=torch.zeros(2, dtype=torch.int32) if hf else None)
            cases.append((label, lambda x=x, coef=coef, kw=kw: st.affine_step(x, coef, **kw)))
        for_norms = mk()
        cases.append((f"sample_sq_norms {str(dt)[6:]} {layout}", lambda s=for_norms: st.sample_sq_norms(s)))
    return cases


def _dawsn_cases():
    import torch

    from sdekit.kernels.dawsn import triton as dw

    return [(f"dawsn {str(dt)[6:]} {tag}", lambda n=n, dt=dt: dw.dawsn_triton(torch.randn(n, dtype=dt)))
            for dt in (torch.float32, torch.float64) for tag, n in (("contig", 4096), ("tail", 4100))]


def _spectral_cases():
    import torch

    from sdekit.kernels.spectral_scale import triton as sp

    def case(dt, k, per_sample):
        z, uy = torch.randn(2, 2, k, dtype=dt)
        S = torch.rand(k, dtype=dt)
        s = torch.full((2, 1), 0.7, dtype=dt) if per_sample else 0.7
        return lambda: sp.spectral_scale_triton(z, uy, S, s, 0.01, 0.3)
    return [(f"spectral_scale {str(dt)[6:]} {tag}{' per-sample' if ps else ''}", case(dt, k, ps))
            for dt, tag, k, ps in ((torch.float32, "contig", 4096, False), (torch.float32, "contig", 4096, True),
                                   (torch.float32, "tail", 4100, False), (torch.float64, "contig", 4096, True))]


def record_triton_launches(exhaustive: bool):
    """``[(label, kernel, args, kwargs)]``: what the launchers pass to each kernel launch."""
    from sdekit.kernels.dawsn import triton as dw
    from sdekit.kernels.spectral_scale import triton as sp
    from sdekit.kernels.steps import triton as st

    calls: list = []
    kernels = ((st, "_affine_step_kernel"), (st, "_sq_norms_kernel"), (dw, "_dawsn_kernel"),
               (sp, "_spectral_scale_kernel"))
    saved = [getattr(mod, name) for mod, name in kernels]
    for (mod, name), kernel in zip(kernels, saved):
        setattr(mod, name, _Recorder(kernel, calls))
    out = []
    try:
        for label, call in _step_cases(exhaustive) + _dawsn_cases() + _spectral_cases():
            n = len(calls)
            call()
            out += [(label, *c) for c in calls[n:]]
    finally:
        for (mod, name), kernel in zip(kernels, saved):
            setattr(mod, name, kernel)
    return out


def compile_triton(kernel, args, kwargs, cap: int) -> dict:
    """Bind ``args`` for ``cuda:cap`` as a launch would, compile, and read the PTX and ``ptxas -v``."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability
    from triton.runtime.jit import create_function_from_signature

    target = GPUTarget("cuda", cap, 32)
    backend = make_backend(target)
    binder = create_function_from_signature(kernel.signature, kernel.params, backend)
    bound, spec, opts = binder(*args, **kwargs)
    options, sig, constexprs, attrs = kernel._pack_args(backend, dict(kwargs), bound, spec, opts)
    ck = triton.compile(ASTSource(kernel, sig, constexprs, attrs), target=target, options=options.__dict__)
    ptx = ck.asm["ptx"]
    with tempfile.TemporaryDirectory() as tmp:  # ptxas again, as Triton ran it, for its -v report
        src = pathlib.Path(tmp) / "k.ptx"
        src.write_text(ptx)
        fmad = [] if options.enable_fp_fusion else ["--fmad=false"]
        res = subprocess.run([get_ptxas(cap).path, *fmad, "-v", "--regAllocOptLevel=2",
                              f"--gpu-name={sm_arch_from_capability(cap)}", str(src), "-o", str(src) + ".o"],
                             capture_output=True, text=True, check=True)
    (usage,) = parse_ptxas(res.stderr + res.stdout).values()
    return {**usage, **ptx_access_counts(ptx), "fp_fusion": options.enable_fp_fusion,
            "warps": options.num_warps, "block": constexprs.get((list(kernel.arg_names).index("BLOCK"),))}


def can_target_cuda() -> str | None:
    """``None`` if this Triton compiles for CUDA without a GPU, else why not."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return "TRITON_INTERPRET is set: kernels are interpreter functions"
    try:
        import triton
        from triton.backends.compiler import GPUTarget  # noqa: F401
        from triton.compiler import make_backend

        make_backend(GPUTarget("cuda", 90, 32))
        from triton.backends.nvidia.compiler import get_ptxas

        if not pathlib.Path(get_ptxas(90).path).exists():
            return "Triton's bundled ptxas is missing"
    except Exception as e:  # noqa: BLE001 - any failure means: cannot target CUDA here
        return f"this Triton cannot target CUDA offline: {type(e).__name__}: {e}"
    return None


def triton_report(exhaustive: bool, caps=(90,)) -> list[dict]:
    return [{"variant": label, "kernel": kernel.__name__.strip("_"), "cap": cap,
             **compile_triton(kernel, args, kwargs, cap)}
            for label, kernel, args, kwargs in record_triton_launches(exhaustive) for cap in caps]


# -------------------------------------------------------------------------------------------- CUDA
def cuda_instantiations(exhaustive: bool = True) -> str:
    """A translation unit instantiating the kernel templates the torch bindings launch: all of
    them, or (``exhaustive=False``) the 16-byte paths of affine_step and every other kernel."""
    layouts = (("true", "true"), ("true", "false"), ("false", "false"))
    lines = ['#include "sde_steps.cuh"', '#include "dawson.cuh"', "namespace sdekit {"]
    for t in ("float", "double"):
        for hs, hy, nz, hf in itertools.product(("false", "true"), repeat=4):
            for contig, vec in layouts if exhaustive else layouts[:1]:
                lines.append(f"template __global__ void affine_step_kernel<{t}, {hs}, {hy}, {nz}, {hf}, "
                             f"{contig}, {vec}>(AffineStepArgs<{t}>);")
        for contig, vec in layouts:
            lines.append(f"template __global__ void sample_sq_norms_kernel<{t}, {contig}, 256, {vec}>("
                         f"const {t}*, {t}*, int64_t, int64_t, int64_t, Strides4, uint64_t, uint64_t, uint32_t);")
        g = 4 if t == "float" else 2
        for v in (g, 1):
            lines.append(f"template __global__ void dawson::dawsn_kernel<{t}, {v}>(const {t}*, {t}*, long long);")
    return "\n".join(lines + ["}"]) + "\n"


_TEMPLATE_RE = re.compile(r"(affine_step_kernel|sample_sq_norms_kernel|dawsn_kernel)")


def _demangle_all(names):
    filt = shutil.which("cu++filt") or shutil.which("c++filt")
    res = subprocess.run([filt], input="\n".join(names), capture_output=True, text=True, check=True)
    return dict(zip(names, res.stdout.splitlines()))


def cuda_report(nvcc: str, workdir: pathlib.Path, arch: str = "sm_90", exhaustive: bool = True) -> list[dict]:
    """Registers, spills and PTX access counts of each instantiation (one nvcc call for each output)."""
    src = workdir / "instantiate.cu"
    src.write_text(cuda_instantiations(exhaustive))
    common = [nvcc, f"-arch={arch}", "-O3", "-std=c++17", f"-I{CSRC}"]
    res = subprocess.run([*common, "-Xptxas", "-v", "-c", str(src), "-o", str(workdir / "inst.o")],
                         capture_output=True, text=True, timeout=600)
    if res.returncode:
        raise RuntimeError(res.stderr[-4000:])
    usage = parse_ptxas(res.stderr)
    subprocess.run([*common, "-ptx", str(src), "-o", str(workdir / "inst.ptx")], check=True, timeout=600)
    ptx = (workdir / "inst.ptx").read_text()
    bodies = {m.group(1): m.start() for m in re.finditer(r"\.entry\s+(\S+)\(", ptx)}
    starts = sorted(bodies.items(), key=lambda kv: kv[1]) + [("", len(ptx))]
    names = _demangle_all([n for n in usage])
    rows = []
    for (name, a), (_, b) in zip(starts, starts[1:]):
        pretty = names.get(name, name)
        pretty = re.sub(r"^void |\(.*$", "", pretty).replace("sdekit::", "")
        rows.append({"variant": pretty, "kernel": _TEMPLATE_RE.search(pretty).group(1), "cap": int(arch[3:]),
                     **usage[name], **ptx_access_counts(ptx[a:b])})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exhaustive", action="store_true", help="every specialisation, not one per kernel and dtype")
    ap.add_argument("--arch", default="90", help="comma-separated compute capabilities for Triton (90,100)")
    ap.add_argument("--cuda", action="store_true", help="also the sdekit/csrc/ instantiations with nvcc")
    ap.add_argument("--json", help="write the rows here (default: print a table)")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    why = can_target_cuda()
    rows = [] if why else triton_report(a.exhaustive, tuple(int(c) for c in a.arch.split(",")))
    if a.cuda:
        with tempfile.TemporaryDirectory() as tmp:
            rows += cuda_report(shutil.which("nvcc"), pathlib.Path(tmp), exhaustive=a.exhaustive)
    doc = {"skip_reason": why, "rows": rows}
    if a.json:
        pathlib.Path(a.json).write_text(json.dumps(doc))
    else:
        cols = ("regs", "spill_st", "ld_v128", "st_v128", "ld_scalar", "st_scalar", "fma", "instructions")
        print("| variant | sm | " + " | ".join(cols) + " |")
        for r in rows:
            print(f"| {r['variant']} | {r['cap']} | " + " | ".join(str(r[c]) for c in cols) + " |")
        if why:
            print("Triton skipped:", why)


if __name__ == "__main__":
    main()
