"""Sampling across processes (gloo on CPU): the samples do not depend on the number of processes.

The reference of every multi-process run is the plain one-process call of the same sampler on the
whole batch (no process group).  Ranks are forked from the test process (a spawned one would
import torch and sdekit again: seconds per rank on a loaded machine) and meet through a
``file://`` rendezvous in ``tmp_path``.
"""
import multiprocessing
import queue
import time
import traceback
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from sdekit import EulerMaruyama, PredictorCorrector
from sdekit import distributed as sd
from sdekit.inverse import DMPS, SuperResolution

from _problems import gaussian_score, shared_vpsde

BATCH = 7  # 7 = 4 + 3 = 3 + 2 + 2: uneven splits on 2 and 3 ranks
SEED = 20260
SHAPE = (3, 5)


def jobs():
    """``name -> (sampler, score, sampler keywords)`` of the runs compared (float64 and float32)."""
    vp = shared_vpsde()
    score = gaussian_score(vp)
    # DMPS's likelihood score through an operator computed row by row (block means): bitwise the
    # same whatever the batch.  A DenseOperator's GEMM blocks rows by batch size (last-bit changes).
    op = SuperResolution(2, 1, 4)
    g = torch.Generator().manual_seed(1)
    y = op(torch.randn(BATCH, 1, 4, 4, generator=g, dtype=torch.float64)) + 0.1 * torch.randn(BATCH, op.m, generator=g,
                                                                                              dtype=torch.float64)
    return {
        "em": (EulerMaruyama(vp, 6), score, {"sample_shape": SHAPE, "dtype": torch.float64}),
        "pc": (PredictorCorrector(vp, 4, corrector_steps=2), score, {"sample_shape": SHAPE, "dtype": torch.float32}),
        "dmps": (DMPS(vp, op, 0.1, steps=5), score, {"y": y}),
    }


def plain(name, device="cpu"):
    """The one-process run of job ``name``: the sampler's own ``sample`` on the whole batch."""
    sampler, score, kw = jobs()[name]
    kw = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
    if "sample_shape" in kw:
        kw["shape"] = (BATCH, *kw.pop("sample_shape"))
        kw["device"] = torch.device(device)
    if isinstance(sampler, DMPS):
        return sampler.sample(score, kw.pop("y"), SEED, **kw)
    return sampler.sample(score, seed=SEED, **kw)


def _worker(rank, world, init, results, body, args, result_path, backend="gloo"):
    try:
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, init_method=init, rank=rank, world_size=world, timeout=timedelta(seconds=60))
        try:
            torch.save(body(*args), result_path)  # tensors go through a file: a queue would share their memory
            results.put((rank, "ok", None))
        finally:
            dist.destroy_process_group()
    except BaseException as err:  # noqa: BLE001 - reported to the test
        results.put((rank, "error", (type(err).__name__, str(err), traceback.format_exc())))


def run_ranks(world, tmp_path, body, *args, wait_s=120, backend="gloo"):
    """Run ``body(*args)`` on ``world`` ranks; ``{rank: ("ok", value) or ("error", (type, msg, tb))}``.
    gloo ranks are forked; NCCL ranks (one GPU each) are spawned, as CUDA does not survive a fork."""
    ctx = multiprocessing.get_context("fork" if backend == "gloo" else "spawn")
    results = ctx.Queue()
    run = f"{world}-{time.monotonic_ns()}"
    init = f"file://{tmp_path / f'rendezvous-{run}'}"
    paths = [tmp_path / f"result-{run}-{r}.pt" for r in range(world)]
    procs = [ctx.Process(target=_worker, args=(r, world, init, results, body, args, paths[r], backend))
             for r in range(world)]
    for p in procs:
        p.start()
    out = {}
    deadline = time.monotonic() + wait_s
    try:
        while len(out) < world:
            try:
                rank, status, value = results.get(timeout=max(deadline - time.monotonic(), 0.1))
            except queue.Empty:
                pytest.fail(f"ranks {sorted(set(range(world)) - set(out))} hung: no result within {wait_s} s")
            out[rank] = (status, torch.load(paths[rank], weights_only=False) if status == "ok" else value)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return out


def _gathered_runs(names):
    found = {}
    for name in names:
        sampler, score, kw = jobs()[name]
        found[name] = sd.sample(sampler, score, BATCH, seed=SEED, **kw)
    return found


def _sharded_run(name, out_dir):
    sampler, score, kw = jobs()[name]
    path = sd.sample(sampler, score, BATCH, seed=SEED, out_dir=out_dir, **kw)
    return str(path)


def assert_bitwise(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b) and a.numpy().tobytes() == b.numpy().tobytes()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_gathered_samples_are_bitwise_those_of_one_process_for_em_pc_and_dmps(world, tmp_path):
    names = ["em", "pc", "dmps"]
    out = run_ranks(world, tmp_path, _gathered_runs, names)
    assert all(status == "ok" for status, _ in out.values()), out
    for name in names:
        assert_bitwise(out[0][1][name], plain(name))
        assert all(out[r][1][name] is None for r in range(1, world))  # gathered to rank 0 only


@pytest.mark.parametrize("world", [2, 3])
def test_sharded_outputs_hold_each_ranks_rows_and_reassemble_bitwise(world, tmp_path):
    out_dir = tmp_path / "shards"
    out = run_ranks(world, tmp_path, _sharded_run, "pc", out_dir)
    assert all(status == "ok" for status, _ in out.values()), out
    reference = plain("pc")
    for r in range(world):
        shard = torch.load(out[r][1], weights_only=True)
        rows = sd.shard_rows(BATCH, r, world)
        want = (rows.start, rows.stop, world, SEED)
        assert (shard["start"], shard["stop"], shard["world_size"], shard["seed"]) == want
        assert_bitwise(shard["samples"], reference[rows.start:rows.stop])
    assert_bitwise(sd.load_shards(out_dir), reference)


def _failing_run(bad_rank, name):
    sampler, score, kw = jobs()[name]
    calls = [0]

    def flaky(x, t):
        calls[0] += 1
        if dist.get_rank() == bad_rank and calls[0] == 3:
            raise ArithmeticError(f"score blew up on rank {bad_rank}")
        return score(x, t)

    return sd.sample(sampler, flaky, BATCH, seed=SEED, timeout=60, **kw)


@pytest.mark.parametrize("name", ["pc", "em"])  # pc: inside the loop's collectives; em: at the final gather
def test_an_exception_in_one_ranks_score_stops_every_rank_with_that_error(name, tmp_path):
    start = time.monotonic()
    out = run_ranks(2, tmp_path, _failing_run, 1, name, wait_s=60)
    elapsed = time.monotonic() - start
    assert out[1][0] == "error" and out[1][1][0] == "ArithmeticError"  # the failing rank: its own error
    assert out[0][0] == "error" and out[0][1][0] == "DistributedSamplingError", out[0]
    assert "rank 1 failed: ArithmeticError: score blew up on rank 1" in out[0][1][1]
    assert elapsed < 40  # stopped by the posted error, long before the 60 s timeout


def _stalling_run(stall_rank, stall_s):
    sampler, score, kw = jobs()["em"]
    calls = [0]

    def slow(x, t):
        calls[0] += 1
        if dist.get_rank() == stall_rank and calls[0] == 1:
            time.sleep(stall_s)  # a stuck rank: no error to post
        return score(x, t)

    return sd.sample(sampler, slow, BATCH, seed=SEED, timeout=1.0, **kw)


def test_a_stuck_rank_stops_the_others_after_the_timeout_not_a_hang(tmp_path):
    start = time.monotonic()
    out = run_ranks(2, tmp_path, _stalling_run, 1, 6.0, wait_s=60)
    assert time.monotonic() - start < 40
    assert out[0][0] == "error" and out[0][1][0] == "TimeoutError", out[0]  # rank 0 waited 1 s at the gather
    assert "did not complete within 1 s" in out[0][1][1]
    assert out[1][0] == "error" and out[1][1][0] == "DistributedSamplingError", out[1]  # and said so to rank 1
    assert "rank 0 failed: TimeoutError" in out[1][1][1]


def _progress_flags():
    sampler, score, kw = jobs()["em"]
    seen = []

    class Recording:  # the sampler as sample() calls it, with what it was told about the bar
        def sample(self, *args, **kwargs):
            seen.append(kwargs["progress"])
            return sampler.sample(*args, **kwargs)

    sd.sample(Recording(), score, BATCH, seed=SEED, progress=True, **kw)
    return seen


def test_the_progress_bar_shows_on_rank_0_only(tmp_path):
    out = run_ranks(3, tmp_path, _progress_flags)
    assert [out[r] for r in range(3)] == [("ok", [True]), ("ok", [False]), ("ok", [False])]


def test_shard_rows_are_contiguous_blocks_that_differ_by_at_most_one():
    for batch in range(1, 30):
        for world in range(1, min(batch, 7) + 1):
            blocks = [sd.shard_rows(batch, r, world) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(batch))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert list(sd.shard_rows(7, 2, 3)) == [5, 6]


def test_one_process_without_a_process_group_is_the_plain_call(tmp_path):
    assert not dist.is_initialized()
    assert_bitwise(_gathered_runs(["pc"])["pc"], plain("pc"))
    path = _sharded_run("em", tmp_path / "one")
    assert path.endswith("shard-00000-of-00001.pt")
    assert_bitwise(sd.load_shards(tmp_path / "one"), plain("em"))


def test_bad_arguments_are_refused_naming_the_argument(tmp_path):
    sampler, score, kw = jobs()["em"]
    with pytest.raises(ValueError, match="seed must be given"):
        sd.sample(sampler, score, BATCH, seed=None, **kw)
    with pytest.raises(ValueError, match="batch_size"):
        sd.sample(sampler, score, 0, seed=1, **kw)
    with pytest.raises(ValueError, match="sample_offset"):
        sd.sample(sampler, score, BATCH, seed=1, sample_offset=3, **kw)
    with pytest.raises(ValueError, match="return_trajectory"):
        sd.sample(sampler, score, BATCH, seed=1, return_trajectory=True, **kw)
    with pytest.raises(ValueError, match="x_T must have batch_size = 7 rows"):
        sd.sample(sampler, score, BATCH, seed=1, x_T=torch.zeros(3, 2))
    with pytest.raises(TypeError, match="sampler"):
        sd.sample(object(), score, BATCH, seed=1)
    with pytest.raises(ValueError, match="timeout"):
        sd.run_sharded(lambda rows: torch.zeros(len(rows)), 3, timeout=0)
    with pytest.raises(ValueError, match="draw"):
        sd.run_sharded(lambda rows: torch.zeros(2), 3)
    with pytest.raises(ValueError, match="rank must be < world_size"):
        sd.shard_rows(5, 2, 2)
    with pytest.raises(ValueError, match="no shard"):
        sd.load_shards(tmp_path)


def _cli_run(argv):
    from sdekit.cli import main

    return main(argv)


def test_the_sample_command_on_three_ranks_writes_the_one_process_samples(tmp_path):
    """What ``torchrun --nproc_per_node 3 -m sdekit.cli sample ...`` runs, on three forked ranks
    (the command joins an existing group as it joins torchrun's)."""
    import os

    from sdekit.cli import load_callable

    score = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                         "distributed_sampling.py") + ":score"
    argv = ["sample", "--sde", "VPSDE", "--score", score, "--batch-size", str(BATCH), "--sample-shape", "4",
            "--steps", "3", "--corrector-steps", "1", "--sampler", "reverse_diffusion", "--seed", str(SEED),
            "--out-dir", str(tmp_path / "cli"), "--no-progress"]
    out = run_ranks(3, tmp_path, _cli_run, argv)
    assert all(out[r] == ("ok", 0) for r in range(3)), out
    want = PredictorCorrector(shared_vpsde(), 3, corrector_steps=1).sample(load_callable(score), shape=(BATCH, 4),
                                                                           seed=SEED)
    assert_bitwise(sd.load_shards(tmp_path / "cli"), want)


def _gpu_runs(names):
    device = torch.device("cuda", dist.get_rank())
    found = {}
    for name in names:
        sampler, score, kw = jobs()[name]
        kw = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kw.items()}
        kw.setdefault("device", device)
        x = sd.sample(sampler, score, BATCH, seed=SEED, **kw)
        found[name] = None if x is None else x.cpu()
    return found


@pytest.mark.gpu
def test_nccl_ranks_on_two_gpus_give_the_one_gpu_samples_bitwise(tmp_path):
    """The multi-GPU run (NCCL, auto backend: the CUDA kernels) against one GPU's plain call."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    names = ["em", "pc", "dmps"]
    out = run_ranks(2, tmp_path, _gpu_runs, names, backend="nccl", wait_s=600)
    assert all(status == "ok" for status, _ in out.values()), out
    for name in names:
        assert_bitwise(out[0][1][name], plain(name, "cuda:0").cpu())
