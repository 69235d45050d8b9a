"""Sampling across processes with ``torch.distributed``: the same samples whatever the number of processes.

A global batch of ``batch_size`` samples is cut into contiguous blocks, one per process (rank):
rank ``r`` of ``W`` draws the rows

    [start_r, start_r + b_r),   b_r = batch_size // W + (r < batch_size % W),   start_r = sum_{q<r} b_q

(block sizes differ by at most one, so no rank idles behind a short last block).  It runs the
sampler on its rows with ``sample_offset = start_r``: every normal of sdekit's counter-based
generator is a pure function of ``(seed, RNG word, global sample index, element)``
(:mod:`sdekit.kernels.rng`), so rank ``r`` draws exactly rows ``[start_r, start_r + b_r)`` of the
one-process run.  The one statistic of the whole batch an update uses (the Langevin corrector's
``"batch_mean"`` step size) is formed from the per-sample norms of every rank, gathered in global
order (:mod:`sdekit.solvers.whole_batch`).  So with the same seed, 1, 2 or N processes give
**bitwise the same** samples on any one backend (torch, cpu, Triton, CUDA), provided that

* ``score_fn`` computes each row independently of the other rows and of the batch size, as an
  elementwise or per-sample score does.  Known exceptions, which keep the normals and change the
  score in its last bits: a network whose kernels choose their summation order by batch size;
  DMPS with a ``DenseOperator`` (BLAS blocks its matrix products by batch size; the
  block-structured ``SuperResolution`` and ``Inpainting`` are row by row); on CPU,
  ``torch.sigmoid``, whose kernel computes a tensor's last elements with scalar math 1 ulp from
  its vector math (``torch.tanh``, ``exp``, ``log`` do not);
* torch's per-sample reductions run single-threaded (``torchrun`` sets ``OMP_NUM_THREADS=1``):
  a multi-threaded reduction over few rows may split one row's sum across threads.

Results either come back to rank 0 (:func:`run_sharded` / :func:`sample` with ``out_dir=None``)
or stay on disk, one ``.pt`` file per rank with its global row range (``out_dir``), for outputs
too large to gather; :func:`load_shards` puts them back together.  Without an initialised process
group everything is a plain one-process call.

Failures: the rank whose sampler raises (say, in the user's score) re-raises its own error after
posting it to the process group's store; every other rank waits on its collectives by polling
(never a blocking wait) and raises :class:`DistributedSamplingError` naming that rank and its
error as soon as it is posted (or, when its own last collective completed first, at the end of
the run).  A rank stuck or gone without a word (killed) makes the ranks waiting for it raise
:class:`TimeoutError` after ``timeout`` seconds, which they post in turn.  No rank hangs.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist

from ._checks import check_int, check_real, check_seed
from .solvers.whole_batch import gathering

__all__ = ["DistributedSamplingError", "load_shards", "process_group_from_env", "rank_and_world", "run_sharded",
           "sample", "shard_rows"]

DEFAULT_TIMEOUT_S = 600.0
POLL_MAX_S = 0.002  # a wait on a collective sleeps at most this long between looks at it
STORE_LOOK_S = 0.05  # and looks at the store for a posted failure this often
SHARD_PATTERN = "shard-{rank:05d}-of-{world:05d}.pt"
_run_ids = itertools.count()  # every rank starts its runs in the same order: the same id names the same run


class DistributedSamplingError(RuntimeError):
    """Another rank of the run failed; the message names it and its error."""


def rank_and_world(group=None) -> tuple[int, int]:
    """``(rank, world size)`` in ``group`` (default: the default group), ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


@contextlib.contextmanager
def process_group_from_env(device: torch.device | str = "cpu",
                           timeout: float | timedelta = DEFAULT_TIMEOUT_S) -> Iterator[torch.device]:
    """The default process group of a ``torchrun`` launch for the block; yields this rank's device.

    With ``WORLD_SIZE > 1`` in the environment (``torchrun`` sets it, with ``RANK``, ``LOCAL_RANK``
    and the rendezvous address) it joins the group (``env://``; NCCL for a CUDA ``device``, whose
    index becomes ``LOCAL_RANK``, gloo otherwise) and leaves it after the block; otherwise (a plain
    launch, or a group someone already set up) it leaves things as they are.
    """
    device = torch.device(device)
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    timeout = check_real("timeout", timeout, positive=True)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world <= 1 or dist.is_initialized():
        yield device
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout))
    try:
        yield device
    finally:
        dist.destroy_process_group()


def shard_rows(batch_size: int, rank: int, world_size: int) -> range:
    """The global rows rank ``rank`` of ``world_size`` draws (module docstring: contiguous blocks
    whose sizes differ by at most one, the larger ones first)."""
    world_size = check_int("world_size", world_size, min=1)
    batch_size = check_int("batch_size", batch_size, min=world_size)
    rank = check_int("rank", rank, min=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size = {world_size}, got {rank}")
    base, extra = divmod(batch_size, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


class _Collectives:
    """The run's collectives, each waited on by polling, with the failure protocol of the module docstring."""

    def __init__(self, group, timeout_s: float):
        self.group, self.timeout_s = group, timeout_s
        self.rank, self.world = rank_and_world(group)
        self.key = f"sdekit.distributed/run-{next(_run_ids)}/failed"
        self.store = None
        if self.world > 1:
            try:
                self.store = dist.distributed_c10d._get_default_store()
            except (AttributeError, RuntimeError, ValueError):  # no store to post failures to: timeout only
                self.store = None

    def device(self, like: torch.Tensor | None = None) -> torch.device:
        if like is not None:
            return like.device
        if dist.get_backend(self.group) == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def post_failure(self, err: BaseException) -> None:
        """Tell the other ranks this rank failed (they raise as soon as they look)."""
        if self.store is not None:
            try:
                self.store.set(self.key, f"rank {self.rank} failed: {type(err).__name__}: {err}")
            except Exception:  # noqa: BLE001 - the store may be gone with its host; the timeout still bounds the others
                pass

    def _peer_failure(self) -> str | None:
        if self.store is None:
            return None
        try:
            if self.store.check([self.key]):
                return self.store.get(self.key).decode()
        except Exception:  # noqa: BLE001 - an unreachable store is reported by the caller's own error
            return None
        return None

    def raise_if_peer_failed(self, what: str) -> None:
        failure = self._peer_failure()
        if failure is not None:
            raise DistributedSamplingError(f"{what} on rank {self.rank} stopped: {failure}")

    def wait(self, work, what: str) -> None:
        """Wait for ``work`` without blocking: raise on a peer's posted failure or after the timeout."""
        start = time.monotonic()
        delay, next_look = 1e-5, start + STORE_LOOK_S
        try:
            while not work.is_completed():
                time.sleep(delay)
                delay = min(2 * delay, POLL_MAX_S)
                now = time.monotonic()
                if now < next_look:
                    continue
                next_look = now + STORE_LOOK_S  # one store round trip per look
                self.raise_if_peer_failed(what)
                if now - start > self.timeout_s:
                    raise TimeoutError(f"{what} on rank {self.rank} did not complete within {self.timeout_s:g} s: "
                                       "another rank is stuck or gone (pass timeout= to wait longer)")
            work.wait()
        except RuntimeError as err:  # a peer's connection closed: say which rank failed, when it said so
            if isinstance(err, DistributedSamplingError):
                raise
            time.sleep(0.1)  # a failing rank posts before it exits
            failure = self._peer_failure()
            if failure is None:
                raise
            raise DistributedSamplingError(f"{what} on rank {self.rank} stopped: {failure}") from err

    def all_gather(self, t: torch.Tensor, what: str) -> list[torch.Tensor]:
        parts = [torch.empty_like(t) for _ in range(self.world)]
        self.wait(dist.all_gather(parts, t.contiguous(), group=self.group, async_op=True), what)
        return parts

    def gather_rows(self, rows: torch.Tensor, sizes: list[int], what: str, to_rank0_only: bool = False):
        """Rows of every rank (``sizes[r]`` each), concatenated in rank order (padded to the largest
        block for the collective, which wants equal sizes).  ``to_rank0_only``: ``None`` elsewhere."""
        padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
        padded[: rows.shape[0]] = rows
        if to_rank0_only:
            parts = [torch.empty_like(padded) for _ in range(self.world)] if self.rank == 0 else None
            self.wait(dist.gather(padded, parts, dst=0 if self.group is None else dist.get_global_rank(self.group, 0),
                                  group=self.group, async_op=True), what)
            if self.rank != 0:
                return None
        else:
            parts = self.all_gather(padded, what)
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])


def run_sharded(draw: Callable[[range], torch.Tensor], batch_size: int, *, seed: int | None = None,
                out_dir: str | Path | None = None, timeout: float | timedelta = DEFAULT_TIMEOUT_S, group=None):
    """Run ``draw`` on this rank's rows of a global batch and collect the results: the generic entry.

    ``draw(rows)`` returns the ``len(rows)`` samples of the global rows ``rows`` (a ``range``);
    it must pass ``rows.start`` as ``sample_offset`` to the sampler (:func:`sample` does this for
    sdekit's samplers).  ``batch_size`` and ``seed`` (recorded in shard files) must agree on every
    rank, which is checked.  With ``out_dir=None`` the samples are gathered: rank 0 returns the
    ``(batch_size, ...)`` tensor, the other ranks ``None``.  With ``out_dir``, each rank saves
    ``{"samples", "start", "stop", "batch_size", "seed", "world_size"}`` to its own
    ``shard-RRRRR-of-WWWWW.pt`` there and returns that path, once every rank has saved.
    ``timeout`` (seconds or a ``timedelta``) bounds every wait for another rank, including a
    finished rank's wait for the slowest one at the final gather.
    """
    if not callable(draw):
        raise TypeError(f"draw must be callable as draw(rows), got {type(draw).__name__}")
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    timeout = check_real("timeout", timeout, positive=True)
    seed = check_seed(seed)
    rank, world = rank_and_world(group)
    rows = shard_rows(batch_size, rank, world)
    sizes = [len(shard_rows(batch_size, r, world)) for r in range(world)]
    out_dir = None if out_dir is None else Path(out_dir)
    coll = _Collectives(group, timeout) if world > 1 else None
    if coll is not None:
        _check_same_job(coll, batch_size, seed, out_dir)
    try:
        result = _draw_and_collect(draw, rows, sizes, coll, out_dir, {"batch_size": batch_size, "seed": seed,
                                                                      "world_size": world})
        if coll is not None:  # a rank that gave up after this one's last collective completed (a send to it)
            coll.raise_if_peer_failed("the run")
        return result
    except DistributedSamplingError:
        raise
    except BaseException as err:  # this rank's own failure (draw, or its collectives): tell the others
        if coll is not None:
            coll.post_failure(err)
        raise


def _draw_and_collect(draw, rows: range, sizes: list[int], coll: _Collectives | None, out_dir: Path | None,
                      run: dict):
    """:func:`run_sharded`'s work on one rank: draw the rows, then gather them or save them."""
    if coll is None:
        local = draw(rows)
    else:
        with gathering(lambda t: coll.gather_rows(t, sizes, "gathering per-sample statistics")):
            local = draw(rows)
    if not isinstance(local, torch.Tensor) or local.dim() < 1 or local.shape[0] != len(rows):
        got = tuple(local.shape) if isinstance(local, torch.Tensor) else type(local).__name__
        raise ValueError(f"draw(rows) must return a tensor of len(rows) = {len(rows)} rows, got {got}")
    if out_dir is None:
        if coll is None:
            return local
        return coll.gather_rows(local, sizes, "gathering the samples to rank 0", to_rank0_only=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SHARD_PATTERN.format(rank=0 if coll is None else coll.rank, world=run["world_size"])
    torch.save({"samples": local.detach().cpu(), "start": rows.start, "stop": rows.stop, **run}, path)
    if coll is not None:  # every shard is on disk when any rank returns, and a failure anywhere stops all
        coll.all_gather(torch.ones(1, device=coll.device(local)), "waiting for every rank's shard")
    return path


def _check_same_job(coll: _Collectives, batch_size: int, seed: int | None, out_dir: Path | None) -> None:
    """Every rank must run the same job: same batch size, seed and output mode (one collective)."""
    words = [batch_size, -1 if seed is None else seed & 0xFFFFFFFF, -1 if seed is None else seed >> 32,
             out_dir is None]
    parts = coll.all_gather(torch.tensor(words, dtype=torch.int64, device=coll.device()), "checking the job")
    mine = parts[coll.rank].tolist()
    for r, p in enumerate(parts):
        if p.tolist() != mine:
            raise ValueError(f"rank {r} runs another job than rank {coll.rank}: batch_size, seed and out_dir "
                             f"(set or not) must agree on every rank (got {p.tolist()} vs {mine})")


def sample(sampler, score_fn, batch_size: int, *, seed: int, sample_shape=None, y: torch.Tensor | None = None,
           x_T: torch.Tensor | None = None, out_dir: str | Path | None = None,
           timeout: float | timedelta = DEFAULT_TIMEOUT_S, group=None, progress: bool = False, options=None,
           **run_options):
    """Draw ``batch_size`` samples with an sdekit sampler, this rank drawing its rows (:func:`shard_rows`).

    ``sampler`` is any sampler called as ``sampler.sample(score_fn, y, x_T=..., shape=..., options=...,
    seed=..., sample_offset=...)``: every :class:`~sdekit.solvers.ReverseSampler` (``EulerMaruyama``,
    ``PredictorCorrector``, ``ExponentialIntegrator``, ...) and :class:`~sdekit.inverse.DMPS`
    (``score_fn`` is then the prior score and ``y`` the measurements).  Others go through
    :func:`run_sharded` with a ``draw`` of their own.

    Args:
        seed: the run's seed, the same on every rank (required: a drawn one would differ per rank).
        sample_shape: the per-sample shape of a prior draw (``None``: from ``x_T`` or ``y``).
        y, x_T: the global conditioning tensor / initial states, ``batch_size`` rows each; each rank
            passes its rows on.  A ``y`` of one row (one DMPS measurement for every sample) goes
            whole to every rank, and ``sample_shape`` is then required.
        out_dir, timeout, group: as in :func:`run_sharded`.
        progress: a progress bar, on rank 0 only.
        options, **run_options: the sampler's other run options
            (:class:`~sdekit.solvers.RunOptions`), the same on every rank; ``return_trajectory`` is
            not supported (only the samples are collected).

    Returns what :func:`run_sharded` returns: the ``(batch_size, ...)`` samples on rank 0 (``None``
    on the others), or this rank's shard file with ``out_dir``.
    """
    if not callable(getattr(sampler, "sample", None)):
        raise TypeError(f"sampler must have a sample method (an sdekit sampler), got {type(sampler).__name__}")
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("seed must be given: every rank must draw from the same seed")
    batch_size = check_int("batch_size", batch_size, min=1)
    if "sample_offset" in run_options or (options is not None and options.sample_offset != 0):
        raise ValueError("sample_offset is set by distributed.sample (each rank's first global row); leave it out")
    if run_options.get("return_trajectory") or (options is not None and options.return_trajectory):
        raise ValueError("return_trajectory is not supported by distributed.sample (only samples are collected)")
    if sample_shape is not None:
        sample_shape = tuple(check_int("sample_shape", d, min=0) for d in sample_shape)
    broadcast_y = y is not None and y.dim() >= 1 and y.shape[0] == 1 and batch_size > 1
    if broadcast_y and sample_shape is None:
        raise ValueError("a y of one row (one measurement for every sample) needs sample_shape")
    for name, t in (("y", None if broadcast_y else y), ("x_T", x_T)):
        if t is not None and (not isinstance(t, torch.Tensor) or t.dim() < 1 or t.shape[0] != batch_size):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} must have batch_size = {batch_size} rows, got {got}")
    rank, _ = rank_and_world(group)

    def draw(rows: range) -> torch.Tensor:
        own = slice(rows.start, rows.stop)
        shape = None if sample_shape is None else (len(rows), *sample_shape)
        return sampler.sample(score_fn, y if (y is None or broadcast_y) else y[own],
                              x_T=None if x_T is None else x_T[own], shape=shape, options=options, seed=seed,
                              sample_offset=rows.start, progress=bool(progress) and rank == 0, **run_options)

    return run_sharded(draw, batch_size, seed=seed, out_dir=out_dir, timeout=timeout, group=group)


def load_shards(out_dir: str | Path) -> torch.Tensor:
    """The ``(batch_size, ...)`` samples of a run saved by :func:`run_sharded` with ``out_dir``.

    Checks that the shards are of one run (same batch size, seed and world size) and cover its
    rows exactly once."""
    out_dir = Path(out_dir)
    paths = sorted(out_dir.glob("shard-*-of-*.pt"))
    if not paths:
        raise ValueError(f"out_dir {str(out_dir)!r} holds no shard-*-of-*.pt files")
    shards = sorted((torch.load(p, map_location="cpu", weights_only=True) for p in paths), key=lambda s: s["start"])
    run = {(s["batch_size"], s["seed"], s["world_size"]) for s in shards}
    if len(run) != 1:
        raise ValueError(f"out_dir {str(out_dir)!r} mixes shards of different runs (batch_size, seed, world_size): "
                         f"{sorted(run, key=str)}")
    batch_size, _, world = run.pop()
    stop = 0
    for s in shards:
        if s["start"] != stop or s["samples"].shape[0] != s["stop"] - s["start"]:
            raise ValueError(f"out_dir {str(out_dir)!r}: shards do not tile rows [0, {batch_size}) "
                             f"(a shard of rows [{s['start']}, {s['stop']}) follows row {stop}); "
                             f"{len(shards)} of {world} shards present")
        stop = s["stop"]
    if stop != batch_size:
        raise ValueError(f"out_dir {str(out_dir)!r}: shards cover rows [0, {stop}) of {batch_size}; "
                         f"{len(shards)} of {world} shards present")
    return torch.cat([s["samples"] for s in shards])
