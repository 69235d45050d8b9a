"""``sample_offset``: a batch of ``b`` samples drawn with ``sample_offset = k`` is rows ``[k, k + b)`` of one big run.

The reference is always the big draw (or run) itself, with offset 0, cut to the rows; the
offset-0 results are pinned to what sdekit drew before the offset existed by the Random123
known answers of ``test_rng.py`` (the bits) and by the unchanged tests of every sampler.
"""
import math

import pytest
import torch

from sdekit import EulerMaruyama, PredictorCorrector
from sdekit.solvers import RunOptions
from sdekit.kernels import rng
from sdekit.kernels.dispatch import backend_unavailable_reason
from sdekit.kernels import steps

from _problems import gaussian_score, shared_vpsde

DTYPES = [torch.float32, torch.float64]
BACKENDS = ["torch", "cpu", "triton"]  # every backend that runs without a GPU
TOL = {torch.float32: 4e-7, torch.float64: 1e-15}  # backends differ by the last ulps of log/cos/sin (test_rng.py)
BIG, N = 11, 13  # 13 elements: a partial Philox group at the end of every row
BLOCKS = [(0, 4), (4, 11), (3, 5), (10, 11)]


def assert_bitwise(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def backend_device(backend, request):
    """The device a backend's kernels run on here (Triton: its interpreter on CPU without a GPU);
    skips when the backend cannot run (the compiled cpu extension not built)."""
    device = request.getfixturevalue("triton_device") if backend == "triton" else "cpu"
    reason = backend_unavailable_reason(backend, torch.device(device))
    if reason is not None:
        pytest.skip(reason)
    return device


@pytest.mark.parametrize("dtype", DTYPES)
def test_normals_of_an_offset_block_are_the_rows_of_one_big_draw(dtype):
    big = rng.philox_normal(BIG, N, 2**40 + 7, 5, dtype)
    for k, stop in BLOCKS:
        assert_bitwise(rng.philox_normal(stop - k, N, 2**40 + 7, 5, dtype, sample_offset=k), big[k:stop])


@pytest.mark.parametrize("dtype", DTYPES)
def test_triton_normals_of_an_offset_block_are_the_rows_of_its_big_draw_and_the_references(dtype, triton_device):
    big = rng.philox_normal_triton(BIG, N, 2**40 + 7, 5, dtype, device=triton_device).cpu()
    ref = rng.philox_normal(BIG, N, 2**40 + 7, 5, dtype)
    assert torch.all((big - ref).abs() <= TOL[dtype] * (1 + ref.abs()))  # the ulps of test_rng.py
    for k, stop in BLOCKS:
        got = rng.philox_normal_triton(stop - k, N, 2**40 + 7, 5, dtype, device=triton_device, sample_offset=k)
        assert_bitwise(got.cpu(), big[k:stop])
    top = rng.philox_normal_triton(2, N, 9, 1, dtype, device=triton_device, sample_offset=2**32 - 2).cpu()
    ref = rng.philox_normal(2, N, 9, 1, dtype, sample_offset=2**32 - 2)
    assert torch.all((top - ref).abs() <= TOL[dtype] * (1 + ref.abs()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [0, 2**32 - 2])  # offset 0 draws what sdekit drew before offsets; the top of the word
def test_normals_of_global_sample_k_plus_b_follow_the_spec(dtype, k):
    """Row ``b`` with offset ``k``: Box-Muller of the Philox words of counter ``(q, k + b, step)``,
    transcribed from the spec in the module docstring (the Philox bits are Random123-checked)."""
    seed, step = 9, 2**33 + 1
    z = rng.philox_normal(2, 5, seed, step, dtype, sample_offset=k)
    G = 4 if dtype == torch.float32 else 2
    k0, k1 = rng.split_seed(seed)
    for b in range(2):
        for j in range(5):
            q, r = divmod(j, G)
            o = [int(v) for v in rng.philox4x32(*(torch.tensor([w]) for w in (q, k + b, step & 0xFFFFFFFF, step >> 32)),
                                                k0, k1)]
            if dtype == torch.float32:
                a, c = (o[0], o[1]) if r < 2 else (o[2], o[3])
                u1, u2 = ((a >> 8) + 1) * 2.0**-24, (c >> 8) * 2.0**-24
            else:
                u1, u2 = (((o[0] << 21) | (o[2] >> 11)) + 1) * 2.0**-53, ((o[1] << 21) | (o[3] >> 11)) * 2.0**-53
            trig = math.cos if r % 2 == 0 else math.sin
            want = math.sqrt(-2 * math.log(u1)) * trig(2 * math.pi * u2)
            assert abs(float(z[b, j]) - want) <= 4 * torch.finfo(dtype).eps * (1 + abs(want))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_step_and_norms_of_an_offset_block_are_the_rows_of_the_whole_batch(dtype, backend, request):
    device = backend_device(backend, request)
    g = torch.Generator().manual_seed(0)
    x, score = (torch.randn(BIG, 3, 5, generator=g, dtype=torch.float64).to(dtype).to(device) for _ in range(2))
    coef = torch.tensor([[0.9], [0.0], [0.3], [0.7]], dtype=dtype, device=device)
    only_noise = torch.tensor([[0.0], [0.0], [0.0], [1.0]], dtype=dtype, device=device)

    def affine(*args, **kw):
        return steps.affine_step(*args, backend=backend, **kw)

    def norms(*args, **kw):
        return steps.sample_sq_norms(*args, backend=backend, **kw)

    big_x = affine(x, coef, score=score, seed=4, step=8)
    big_n = norms(score, seed=4, step=8)
    for k, stop in BLOCKS:
        assert_bitwise(affine(x[k:stop], coef, score=score[k:stop], seed=4, step=8, sample_offset=k), big_x[k:stop])
        assert_bitwise(norms(score[k:stop], seed=4, step=8, sample_offset=k), big_n[k:stop])
        z = affine(x[k:stop], only_noise, seed=4, step=8, sample_offset=k).cpu()  # the global rows' normals
        ref = rng.philox_normal_like(z, 4, 8, sample_offset=k)
        assert torch.all((z - ref).abs() <= TOL[dtype] * (1 + ref.abs()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ["torch", "cpu", pytest.param("triton", marks=pytest.mark.slow)])  # Triton: ~15 s
def test_samplers_and_simulate_on_an_offset_block_give_the_rows_of_the_big_run(dtype, backend, request):
    device = backend_device(backend, request)
    vp = shared_vpsde()
    score = gaussian_score(vp)
    em = EulerMaruyama(vp, 5)
    pc = PredictorCorrector(vp, 3, corrector_steps=1, norm="sample")  # per-sample steps: no whole-batch statistic
    x0 = torch.linspace(-1, 1, BIG * 4, dtype=dtype, device=device).reshape(BIG, 4)
    run = {"dtype": dtype, "device": device, "backend": backend, "seed": 3}
    big = {"em": em.sample(score, shape=(BIG, 4), **run), "pc": pc.sample(score, shape=(BIG, 4), **run),
           "simulate": em.simulate(x0, seed=3, backend=backend)}
    for k, stop in BLOCKS:
        b = stop - k
        assert_bitwise(em.sample(score, shape=(b, 4), sample_offset=k, **run), big["em"][k:stop])
        assert_bitwise(pc.sample(score, shape=(b, 4), sample_offset=k, **run), big["pc"][k:stop])
        assert_bitwise(em.simulate(x0[k:stop], seed=3, backend=backend, sample_offset=k), big["simulate"][k:stop])


def test_a_nonzero_offset_draws_other_normals_than_offset_zero():
    a = rng.philox_normal(3, 8, 1, 1, sample_offset=0)
    b = rng.philox_normal(3, 8, 1, 1, sample_offset=3)
    assert not torch.isclose(a, b).any()


def test_bad_sample_offsets_are_refused_naming_the_argument():
    for bad, err in ((-1, ValueError), (2**32, ValueError), (1.0, TypeError), (True, TypeError), ("3", TypeError)):
        with pytest.raises(err, match="sample_offset"):
            RunOptions(sample_offset=bad)
        with pytest.raises(err, match="sample_offset"):
            rng.philox_normal(1, 4, 0, 0, sample_offset=bad)
    with pytest.raises(ValueError, match="sample_offset"):  # the last global index would pass 2^32 - 1
        rng.philox_normal(3, 4, 0, 0, sample_offset=2**32 - 2)
    with pytest.raises(ValueError, match="sample_offset"):
        EulerMaruyama(shared_vpsde(), 2).sample(gaussian_score(shared_vpsde()), shape=(3, 2), seed=0,
                                                sample_offset=2**32 - 2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dirac_and_its_degradation_on_an_offset_block_give_the_rows_of_the_big_run(dtype):
    """Dirac (Fabian et al. 2023) takes the offset too; an elementwise predictor keeps rows independent."""
    from sdekit.inverse import BoxInpaintingFamily, Dirac, StochasticDegradation

    proc = StochasticDegradation(BoxInpaintingFamily(1, 6, max_side=4), 0.02, 0.3)
    x0 = torch.linspace(-1, 1, BIG * 36, dtype=dtype).reshape(BIG, 1, 6, 6)
    y = proc.sample(x0, 1.0, seed=5)
    sampler = Dirac(proc, 4, x0_hat_last_step=False)

    def predictor(y_t, t):
        return torch.tanh(y_t)

    big = sampler.sample(predictor, y, seed=6)
    for k, stop in BLOCKS:
        assert_bitwise(proc.sample(x0[k:stop], 1.0, seed=5, sample_offset=k), y[k:stop])
        assert_bitwise(sampler.sample(predictor, y[k:stop], seed=6, sample_offset=k), big[k:stop])
