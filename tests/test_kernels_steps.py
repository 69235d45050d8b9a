"""Fused step kernels (Triton, CUDA) equal the torch reference for the same seed."""
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from sdekit.kernels.steps import reference as ref
from sdekit.kernels.dispatch import backend_unavailable_reason

triton = pytest.importorskip("triton")
from sdekit.kernels.steps import triton as steps_triton  # noqa: E402

# Kernels use FMA and their own log/cos/sin: agreement to a few ulps of the largest term.
TOL = {torch.float32: 2e-6, torch.float64: 4e-15}
DTYPES = [torch.float32, torch.float64]



def _close(a, b, dtype, scale=1.0):
    err = (a - b).abs().max().item()
    assert err <= TOL[dtype] * scale * (1 + b.abs().max().item()), err


def _inputs(dtype, B=3, shape=(3, 17, 9), seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x, s, y = (torch.randn(B, *shape, generator=g, dtype=dtype) for _ in range(3))
    return tuple(t.to(device) for t in (x, s, y, torch.randn(4, B, generator=g, dtype=dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("terms", ["x+y+score+noise", "x+score+noise", "x+noise", "x+y+score"])
@pytest.mark.parametrize("per_sample", [True, False])
def test_triton_affine_step_equals_reference(dtype, terms, per_sample, triton_device):
    x, s, y, coef = _inputs(dtype, device=triton_device)
    if not per_sample:
        coef = coef[:, :1]
    kw = dict(score=s if "score" in terms else None, y=y if "y" in terms else None,
              noise="noise" in terms, seed=123, step=45)
    _close(steps_triton.affine_step(x, coef, **kw), ref.affine_step(x, coef, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_affine_step_on_strided_views_equals_reference(dtype, triton_device):
    dev = triton_device
    x, s, y, coef = _inputs(dtype, device=dev)
    xs = torch.randn(3, 6, 17, 9, dtype=dtype, device=dev)[:, ::2]                 # channel slice
    ss = torch.randn(3, 9, 17, 3, dtype=dtype, device=dev).permute(0, 3, 2, 1)     # transposed image
    ys = torch.randn(5, 3, 17, 9, dtype=dtype, device=dev)[1:4]                    # batch slice
    out = torch.empty(3, 3, 17, 18, dtype=dtype, device=dev)[..., ::2]             # strided output
    got = steps_triton.affine_step(xs, coef, score=ss, y=ys, seed=9, step=2**40 + 1, out=out)
    assert got is out
    _close(out, ref.affine_step(xs, coef, score=ss, y=ys, seed=9, step=2**40 + 1), dtype)
    # Five inner axes that do not merge: copied to contiguous memory, same numbers.
    x5 = torch.randn(2, 2, 3, 2, 3, 2, dtype=dtype, device=dev).transpose(1, 4)
    c5 = coef[:, :2]
    _close(steps_triton.affine_step(x5, c5, seed=1, step=1), ref.affine_step(x5, c5, seed=1, step=1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_affine_step_in_place_equals_reference(dtype, triton_device):
    x, s, y, coef = _inputs(dtype, shape=(1000,), device=triton_device)
    expected = ref.affine_step(x, coef, score=s, y=y, seed=5, step=6)
    steps_triton.affine_step(x, coef, score=s, y=y, seed=5, step=6, out=x)
    _close(x, expected, dtype)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's numpy on inf - inf
@pytest.mark.parametrize("impl", ["torch", "triton"])
def test_affine_step_flags_non_finite_score_and_output(impl, triton_device):
    fn = ref.affine_step if impl == "torch" else steps_triton.affine_step
    x, s, y, coef = _inputs(torch.float32, device=triton_device)
    flags = torch.zeros(2, dtype=torch.int32, device=triton_device)
    fn(x, coef, score=s, flags=flags)
    assert flags.tolist() == [0, 0]
    s[1, 2, 3, 4] = float("nan")
    fn(x, coef, score=s, flags=flags)
    assert flags.tolist() == [1, 1]
    flags.zero_()
    x[0, 0, 0, 0] = float("inf")
    fn(x, coef, score=torch.zeros_like(x), flags=flags)
    assert flags.tolist() == [0, 1]


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_sample_sq_norms_equals_reference(dtype, triton_device):
    s = torch.randn(3, 9, 17, 5, dtype=dtype, device=triton_device).permute(0, 3, 2, 1)
    got = steps_triton.sample_sq_norms(s, seed=3, step=4)
    want = ref.sample_sq_norms(s, seed=3, step=4)
    assert torch.allclose(got, want, rtol=100 * TOL[dtype], atol=0)
    # sum z^2 over N elements is about N.
    assert torch.allclose(want[:, 1].cpu(), torch.full((3,), 765.0, dtype=dtype), rtol=0.2)


def test_per_step_arguments_do_not_multiply_compiled_variants():
    """The step counter, seed words, flags word and coefficient row change every step (the sample
    offset every shard); compiled Triton (not the interpreter) must not specialise on their values,
    or a CUDA-graph capture would hit a compile midway (see sdekit/kernels/steps/triton.py's
    _one_variant).  Checked on the JIT objects."""
    import os
    import sys

    code = ("from sdekit.kernels.steps import triton as s\n"
            "for k in (s._affine_step_kernel, s._sq_norms_kernel):\n"
            "    print(type(k).__name__, sorted(p.name for p in k.params if p.do_not_specialize))\n")
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["JITFunction ['coef_ptr', 'flag_ptr', 'k0', 'k1', 'off', 't0', 't1']",
                                "JITFunction ['k0', 'k1', 'off', 't0', 't1']"]


@pytest.mark.parametrize("backend", ["torch", "triton", "cpu"])
def test_step_arguments_are_validated_naming_the_argument(backend):
    """The front door checks once, before any backend runs (the backends take checked arguments)."""
    from sdekit.kernels import steps

    x, s, y, coef = _inputs(torch.float32)
    with pytest.raises(ValueError, match="score has shape"):
        steps.affine_step(x, coef, score=s[:, :2], backend=backend)
    with pytest.raises(TypeError, match="y has dtype"):
        steps.affine_step(x, coef, y=y.double(), backend=backend)
    with pytest.raises(ValueError, match="coef must be"):
        steps.affine_step(x, coef[:, :2], backend=backend)
    with pytest.raises(TypeError, match="float32 or float64"):
        steps.affine_step(x.half(), coef.half(), backend=backend)
    with pytest.raises(ValueError, match="flags must be"):
        steps.affine_step(x, coef, flags=torch.zeros(2), backend=backend)


_HEADER_INSTANTIATION = r"""
#include "sde_steps.cuh"
template __global__ void sdekit::affine_step_kernel<float, true, true, true, true, true, true>(sdekit::AffineStepArgs<float>);
template __global__ void sdekit::affine_step_kernel<float, true, false, true, false, false, false>(sdekit::AffineStepArgs<float>);
template __global__ void sdekit::affine_step_kernel<double, true, true, true, true, true, true>(sdekit::AffineStepArgs<double>);
template __global__ void sdekit::sample_sq_norms_kernel<float, true, 256>(const float*, float*, int64_t, int64_t, int64_t, sdekit::Strides4, uint64_t, uint64_t, uint32_t);
template __global__ void sdekit::sample_sq_norms_kernel<double, false, 256>(const double*, double*, int64_t, int64_t, int64_t, sdekit::Strides4, uint64_t, uint64_t, uint32_t);
"""


def test_cuda_step_kernels_compile_for_sm90(tmp_path):
    """The plain-CUDA header of the fused steps compiles to sm_90 device code (runs on the GPU machine)."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    src = tmp_path / "steps.cu"
    src.write_text(_HEADER_INSTANTIATION)
    csrc = Path(__file__).resolve().parents[1] / "sdekit" / "csrc"
    r = subprocess.run([nvcc, "-I", str(csrc), "-arch=sm_90", "-c", "-o", str(tmp_path / "steps.o"), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def _cuda_device_for(backend: str) -> torch.device:
    """The CUDA device, or a skip saying why ``backend`` cannot run there."""
    dev = torch.device("cuda")
    reason = backend_unavailable_reason(backend, dev)
    if reason:
        pytest.skip(reason)
    return dev


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_affine_step_equals_reference(backend, dtype):
    dev = _cuda_device_for(backend)
    from sdekit.kernels import steps
    x, s, y, coef = (t.to(dev) for t in _inputs(dtype, B=4, shape=(3, 64, 65)))
    for kw in (dict(score=s, y=y), dict(score=s), dict(score=s, y=y, noise=False)):
        got = steps.affine_step(x, coef, backend=backend, seed=77, step=3, **kw)
        _close(got.cpu(), ref.affine_step(x.cpu(), coef.cpu(), seed=77, step=3,
                                          **{k: (v.cpu() if torch.is_tensor(v) else v) for k, v in kw.items()}),
               dtype, scale=4)
    xs = x[:, ::2]
    got = steps.affine_step(xs, coef, score=s[:, ::2], backend=backend, seed=1, step=2)
    _close(got.cpu(), ref.affine_step(xs.cpu(), coef.cpu(), score=s[:, ::2].cpu(), seed=1, step=2), dtype, scale=4)
    n = steps.sample_sq_norms(s, backend=backend, seed=3, step=4)
    assert torch.allclose(n.cpu(), ref.sample_sq_norms(s.cpu(), seed=3, step=4), rtol=1e-4)
    flags = torch.zeros(2, dtype=torch.int32, device=dev)
    s2 = s.clone()
    s2[0, 0, 0, 0] = float("nan")
    steps.affine_step(x, coef, score=s2, backend=backend, flags=flags)
    assert flags.tolist() == [1, 1]


class _EmulatedCudaOps:
    """The contract of sdekit/csrc/sde_steps.cu, emulated in torch: (B, D1, D2, D3) views from the
    launcher's dims and per-tensor strides, seed and step as int64 bit patterns, the sample offset as is,
    at most 65535 samples a launch (the op's TORCH_CHECK), flags set, never reset.  ``launches``
    records each call's (batch, sample_offset)."""

    def __init__(self):
        self.launches = []

    def _launch(self, B, sample_offset):
        if B > 65535:
            raise RuntimeError("batch exceeds 65535")  # as the op's TORCH_CHECK
        self.launches.append((B, sample_offset))

    @staticmethod
    def _view(t, B, dims, st):
        return t.as_strided((B, *dims), st, t.storage_offset())

    def sde_affine_step(self, out, x, score, y, coef, flags, dims, strides, seed, step, sample_offset, noise, contig):
        from sdekit.kernels.rng import philox_normal
        B, N = x.shape[0], dims[0] * dims[1] * dims[2]
        self._launch(B, sample_offset)
        st = [strides[4 * k:4 * k + 4] for k in range(4)]
        cb = coef if coef.shape[1] == B else coef.expand(4, B)
        c = [cb[k].view(B, 1, 1, 1) for k in range(4)]
        acc = c[0] * self._view(x, B, dims, st[1])
        if y is not None:
            acc = acc + c[1] * self._view(y, B, dims, st[3])
        if score is not None:
            acc = acc + c[2] * self._view(score, B, dims, st[2])
        if noise:
            z = philox_normal(B, N, seed % 2**64, step % 2**64, x.dtype, sample_offset=sample_offset).view(B, *dims)
            acc = acc + c[3] * z
        if flags is not None and score is not None and not torch.isfinite(self._view(score, B, dims, st[2])).all():
            flags[0] = 1
        if flags is not None and not torch.isfinite(acc).all():
            flags[1] = 1
        self._view(out, B, dims, st[0]).copy_(acc)

    def sde_sample_sq_norms(self, score, dims, strides, seed, step, sample_offset, contig):
        from sdekit.kernels.rng import philox_normal
        B, N = score.shape[0], dims[0] * dims[1] * dims[2]
        self._launch(B, sample_offset)
        s = self._view(score, B, dims, strides).reshape(B, N)
        z = philox_normal(B, N, seed % 2**64, step % 2**64, score.dtype, sample_offset=sample_offset)
        return torch.stack([s.square().sum(1), z.square().sum(1)], dim=1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_launcher_passes_layout_seed_step_and_offset_as_the_kernel_expects(monkeypatch, dtype):
    """The Python side of the CUDA backend, against an emulation of the op's contract (runs on CPU)."""
    from sdekit.kernels.steps import cuda as steps_cuda
    monkeypatch.setattr(steps_cuda, "_ops", lambda: _EmulatedCudaOps())
    x, s, y, coef = _inputs(dtype)
    xs = torch.randn(3, 6, 17, 9, dtype=dtype)[:, ::2]
    ss = torch.randn(3, 9, 17, 3, dtype=dtype).permute(0, 3, 2, 1)
    for seed, step, off in [(0, 0, 0), (-3, 2**63 + 5, 2**32 - 3), (2**64 - 1, 7, 11)]:
        key = {"seed": seed, "step": step, "sample_offset": off}
        got = steps_cuda.affine_step(xs, coef, score=ss, y=y, **key)
        _close(got, ref.affine_step(xs, coef, score=ss, y=y, **key), dtype)
        n = steps_cuda.sample_sq_norms(ss, **key)
        assert torch.allclose(n, ref.sample_sq_norms(ss, **key), rtol=1e-5)


@pytest.mark.parametrize("B", [0, 1, 65535, 65536, 70_001, 3 * 65535 + 2])
def test_batch_chunks_cover_the_batch_in_order_with_at_most_65535_rows_a_launch(B):
    """The GPU launchers' chunks (sdekit/kernels/steps/layout.py's batch_chunks): row views of every
    tensor, coef's columns of the same samples, and the global index of each chunk's first sample."""
    from sdekit.kernels.steps.layout import batch_chunks

    x = torch.arange(B, dtype=torch.float64)[:, None].expand(B, 2)     # row b holds b; batch stride 1
    coef = torch.arange(4 * B, dtype=torch.float64).view(B, 4).T       # (4, B), column b holds 4b..4b+3
    chunks = list(batch_chunks([x, None], coef, 7))
    assert len(chunks) == max(1, -(-B // 65535))                       # B = 0: one empty launch
    start = 0
    for (xv, absent), cv, first in chunks:
        n = xv.shape[0]
        assert absent is None and n <= 65535 and first == 7 + start
        assert xv.data_ptr() == x.data_ptr() + start * x.stride(0) * x.element_size()  # a view, not a copy
        assert torch.equal(xv[:, 0], torch.arange(start, start + n, dtype=torch.float64))
        assert torch.equal(cv[0], 4 * torch.arange(start, start + n, dtype=torch.float64))
        start += n
    assert start == B
    shared = torch.ones(4, 1, dtype=torch.float64)
    assert all(cv is shared for _, cv, _ in batch_chunks([x], shared, 0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("per_sample", [True, False])
def test_cuda_launcher_takes_batches_past_65535_in_chunks_equal_to_the_reference(monkeypatch, dtype, per_sample):
    """70001 samples: two launches of the op (65535 + 4466 rows, the second told sample
    sample_offset + 65535), the numbers of the reference's one pass, one flags word for both."""
    from sdekit.kernels.steps import cuda as steps_cuda
    ops = _EmulatedCudaOps()
    monkeypatch.setattr(steps_cuda, "_ops", lambda: ops)
    B, off = 70_001, 123_456
    _, s, y, coef = _inputs(dtype, B=B, shape=(3,))
    x = torch.randn(B, 2, 3, dtype=dtype)[:, 1]                         # batch stride 6: strided rows
    coef = coef if per_sample else coef[:, :1]
    key = dict(seed=5, step=2**40 + 3, sample_offset=off)
    flags = torch.zeros(2, dtype=torch.int32)
    for kw in (dict(score=s, y=y), dict(score=s), dict(y=y, noise=False)):
        ops.launches.clear()
        _close(steps_cuda.affine_step(x, coef, flags=flags, **kw, **key), ref.affine_step(x, coef, **kw, **key), dtype)
        assert ops.launches == [(65535, off), (B - 65535, off + 65535)]
    assert flags.tolist() == [0, 0]
    ops.launches.clear()
    norms = steps_cuda.sample_sq_norms(s, **key)
    assert ops.launches == [(65535, off), (B - 65535, off + 65535)]
    assert norms.shape == (B, 2)
    assert torch.allclose(norms, ref.sample_sq_norms(s, **key), rtol=1e-12 if dtype == torch.float64 else 1e-5)
    s[B - 1, 2] = float("nan")                                          # in the second chunk only
    steps_cuda.affine_step(x, coef, score=s, flags=flags, **key)
    assert flags.tolist() == [1, 1]


class _GridRecorder:
    """Stands in for a Triton kernel object: records each launch's grid rows and launches the kernel."""

    def __init__(self, kernel):
        self.kernel, self.rows = kernel, []

    def __getitem__(self, grid):
        self.rows.append(grid[1])
        return self.kernel[grid]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the interpreter's numpy on NaN
@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_steps_in_chunks_equal_one_launch_bitwise_and_the_reference(monkeypatch, dtype, triton_device):
    """The Triton launchers past the grid limit, with the limit lowered to 4 rows (the interpreter takes
    20-40 ms a grid program on this machine, so 70001 rows would take 25-45 min; the GPU test below takes
    70001): 11 samples in launches of 4, 4 and 3 rows give bitwise the numbers of one launch and the
    reference's, one flags word shared by the launches."""
    from sdekit.kernels import grid

    B, off = 11, 2**32 - 11 - 5                                         # near the top of the sample word
    x, s, y, coef = _inputs(dtype, B=B, shape=(5,), device=triton_device)
    key = dict(seed=7, step=9, sample_offset=off)
    cases = [dict(score=s, y=y, coef=coef), dict(score=s, coef=coef[:, :1])]
    one_launch = [steps_triton.affine_step(x, **kw, **key) for kw in cases]
    norms_one_launch = steps_triton.sample_sq_norms(s, **key)
    monkeypatch.setattr(grid, "MAX_GRID_ROWS", 4)
    for name in ("_affine_step_kernel", "_sq_norms_kernel"):
        monkeypatch.setattr(steps_triton, name, _GridRecorder(getattr(steps_triton, name)))
    flags = torch.zeros(2, dtype=torch.int32, device=triton_device)
    for kw, want in zip(cases, one_launch):
        got = steps_triton.affine_step(x, flags=flags, **kw, **key)
        assert torch.equal(got, want)
        _close(got.cpu(), ref.affine_step(x, **kw, **key).cpu(), dtype)
    assert steps_triton._affine_step_kernel.rows == [4, 4, 3, 4, 4, 3]
    assert flags.tolist() == [0, 0]
    norms = steps_triton.sample_sq_norms(s, **key)
    assert steps_triton._sq_norms_kernel.rows == [4, 4, 3]
    assert torch.equal(norms, norms_one_launch)
    assert torch.allclose(norms.cpu(), ref.sample_sq_norms(s, **key).cpu(), rtol=100 * TOL[dtype], atol=0)
    s[B - 1, 3] = float("nan")                                          # in the last chunk only
    steps_triton.affine_step(x, coef, score=s, flags=flags, **key)
    assert flags.tolist() == [1, 1]


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpu_steps_take_batches_past_65535(backend, dtype):
    """70001 samples on the GPU (two launches of at most 65535 grid rows) equal the torch reference."""
    dev = _cuda_device_for(backend)
    from sdekit.kernels import steps
    B, off = 70_001, 1000
    x, s, y, coef = (t.to(dev) for t in _inputs(dtype, B=B, shape=(6,)))
    key = dict(seed=11, step=3, sample_offset=off)
    flags = torch.zeros(2, dtype=torch.int32, device=dev)
    for c in (coef, coef[:, :1]):
        got = steps.affine_step(x, c, score=s, y=y, flags=flags, backend=backend, **key)
        _close(got.cpu(), ref.affine_step(x.cpu(), c.cpu(), score=s.cpu(), y=y.cpu(), **key), dtype, scale=4)
    assert flags.tolist() == [0, 0]
    n = steps.sample_sq_norms(s, backend=backend, **key)
    assert torch.allclose(n.cpu(), ref.sample_sq_norms(s.cpu(), **key), rtol=1e-4)
    s[B - 1, 0] = float("nan")
    steps.affine_step(x, coef, score=s, flags=flags, backend=backend, **key)
    assert flags.tolist() == [1, 1]
