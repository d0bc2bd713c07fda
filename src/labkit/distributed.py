"""Running labkit over several processes started by ``torchrun`` (torch.distributed).

labkit has no launcher of its own: ``torchrun`` starts the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; this module reads them::

    torchrun --standalone --nproc-per-node=2 -m labkit eval run --task koen_parallel

Without torchrun (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) nothing is initialised and every helper
answers for one process: :func:`rank` is 0, :func:`world_size` 1, :func:`shard` returns every item,
collectives return their input. With ``WORLD_SIZE > 1``, :func:`init` starts the default process group
(``gloo`` for CPU work, ``nccl`` for CUDA) once; :func:`teardown` (also run at exit) ends it.

Helpers for splitting work and agreeing on it:

* :func:`shard` — a deterministic contiguous or strided share of a sequence for one rank;
* :func:`deal_by_cost` — units of unequal cost dealt in rounds so that each rank gets about the
  same total cost, and the units of one round cost about the same;
* :func:`map_over_ranks` — apply a function to units dealt out over the ranks and give every rank
  all the results (an error on one rank stops every rank);
* :func:`broadcast_object`, :func:`all_gather_object` — small picklable Python objects;
* :func:`check_same_config` — every rank hashes its configuration; a difference raises
  :class:`DistributedConfigError` on every rank, naming the fields that differ (rank 0 reports it);
* :func:`check_world_size` — more ranks than units of work is an error, not idle processes;
* :func:`launch` — run ``python -m labkit ...`` as one process or under torchrun, with a given
  number of threads per process, and time it (the book's 1-process vs 2-process comparison).

The errors are :class:`DistributedConfigError` (a ``ValueError``), :class:`RankFailedError` (a
``RuntimeError``: another rank failed in :func:`map_over_ranks`) and :class:`LaunchError` (a
command started by :func:`launch` failed); those raised by all ranks together
carry ``all_ranks = True`` so that the command line prints them once, from rank 0.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "DistInfo",
    "DistributedConfigError",
    "LaunchError",
    "Launched",
    "RankFailedError",
    "all_gather_object",
    "barrier",
    "broadcast_object",
    "check_same_config",
    "check_world_size",
    "config_diff",
    "config_hash",
    "deal_by_cost",
    "env_info",
    "init",
    "is_distributed",
    "launch",
    "local_rank",
    "map_over_ranks",
    "rank",
    "session",
    "shard",
    "shard_bounds",
    "teardown",
    "world_size",
]

#: Environment variables torchrun sets that a multi-process run needs for its rendezvous.
RENDEZVOUS_VARS = ("MASTER_ADDR", "MASTER_PORT")
#: Variables of a torchrun rank that a command started from it (:func:`launch`) must not inherit.
TORCHRUN_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    *RENDEZVOUS_VARS,
)


class DistributedConfigError(ValueError):
    """A multi-process run that cannot go on: bad torchrun environment, ranks that disagree, too many ranks.

    ``all_ranks`` is true when every rank raised it together (a collective check); the command line
    then prints it from rank 0 only.
    """

    def __init__(self, message: str, *, all_ranks: bool = False):
        super().__init__(message)
        self.all_ranks = all_ranks


class RankFailedError(RuntimeError):
    """Another rank failed while doing its share of :func:`map_over_ranks`; this rank stopped too.

    ``rank`` is the (first) rank that failed and ``message`` its error; ``all_ranks`` is true (every
    rank but the failing one raises it, and the failing rank raises its own error), so the command
    line prints it once, from rank 0.
    """

    def __init__(self, rank: int, message: str, what: str):
        super().__init__(
            f"rank {rank} failed while doing its share of the {what} ({message}); the other ranks stopped"
        )
        self.rank, self.message, self.all_ranks = rank, message, True


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """This process's place in the job, as torchrun's environment gives it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def _env_int(name: str, default: int | None) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedConfigError(f"{name}={raw!r} is not an integer (torchrun sets it)") from None


def env_info() -> DistInfo:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun) and check them.

    Without ``WORLD_SIZE`` this is a single process (rank 0 of 1). With ``WORLD_SIZE > 1``, ``RANK``,
    ``MASTER_ADDR`` and ``MASTER_PORT`` must be set too.

    Raises
    ------
    DistributedConfigError
        Malformed or missing variables (a missing rendezvous), or a rank outside ``[0, WORLD_SIZE)``.
    """
    ws = _env_int("WORLD_SIZE", 1)
    assert ws is not None
    if ws < 1:
        raise DistributedConfigError(f"WORLD_SIZE={ws} must be at least 1")
    if ws == 1:
        return DistInfo(0, 1, _env_int("LOCAL_RANK", 0) or 0)
    r = _env_int("RANK", None)
    missing = [v for v in ("RANK", *RENDEZVOUS_VARS) if not os.environ.get(v)]
    if missing:
        raise DistributedConfigError(
            f"WORLD_SIZE={ws} but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: no "
            "rendezvous for the processes. Start multi-process runs with torchrun, e.g. "
            "`torchrun --standalone --nproc-per-node=2 -m labkit eval run ...`, which sets them; "
            "or unset WORLD_SIZE for a single process"
        )
    assert r is not None
    if not 0 <= r < ws:
        raise DistributedConfigError(f"RANK={r} is outside 0..{ws - 1} (WORLD_SIZE={ws})")
    lr = _env_int("LOCAL_RANK", r)
    assert lr is not None
    return DistInfo(r, ws, lr)


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() else None


def is_distributed() -> bool:
    """Whether a process group of more than one rank is running in this process."""
    dist = _dist()
    return bool(dist is not None and dist.is_initialized() and dist.get_world_size() > 1)


def init(device: str | None = None, *, timeout_s: float | None = None) -> DistInfo:
    """Start the default process group when torchrun asked for more than one process (idempotent).

    Parameters
    ----------
    device:
        ``"cuda"``/``"cuda:N"`` selects ``nccl`` (and this rank's ``LOCAL_RANK`` GPU); anything else,
        or ``None`` without CUDA, selects ``gloo``.
    timeout_s:
        How long a collective waits for the other ranks (default ``LABKIT_DIST_TIMEOUT`` or 1800 s).

    Returns this process's :class:`DistInfo`; a single process initialises nothing.

    Raises
    ------
    DistributedConfigError
        A bad torchrun environment (:func:`env_info`) or a rendezvous that fails.
    """
    info = env_info()
    dist = _dist()
    if info.world_size == 1:
        return info
    if dist is None:  # pragma: no cover - every supported torch build has it
        raise DistributedConfigError("this torch build has no torch.distributed; run a single process")
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)
    import torch

    use_cuda = (str(device).startswith("cuda")) if device is not None else torch.cuda.is_available()
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if timeout_s is None:
        timeout_s = float(os.environ.get("LABKIT_DIST_TIMEOUT", "1800"))
    try:
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=info.rank,
            world_size=info.world_size,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    except (RuntimeError, ValueError, OSError) as err:
        raise DistributedConfigError(
            f"rank {info.rank}: cannot join the {backend} process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} ({err})"
        ) from None
    atexit.register(teardown)
    return info


def teardown() -> None:
    """End the process group if one is running (safe to call twice, or without one)."""
    dist = _dist()
    if dist is not None and dist.is_initialized():
        with contextlib.suppress(RuntimeError, ValueError):
            dist.destroy_process_group()


@contextlib.contextmanager
def session(device: str | None = None) -> Iterator[DistInfo]:
    """:func:`init` on entry, :func:`teardown` on exit (however it exits)."""
    info = init(device)
    try:
        yield info
    finally:
        teardown()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    dist = _dist()
    return dist.get_rank() if dist is not None and dist.is_initialized() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    dist = _dist()
    return dist.get_world_size() if dist is not None and dist.is_initialized() else 1


_this_rank, _this_world_size = rank, world_size  # for functions whose parameters shadow the names


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``; 0 without torchrun)."""
    return env_info().local_rank


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if is_distributed():
        _dist().barrier()  # type: ignore[union-attr]


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (a picklable Python object; returned as is in one process)."""
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src)  # type: ignore[union-attr]
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    _dist().all_gather_object(out, obj)  # type: ignore[union-attr]
    return out


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous share of ``n`` items: sizes differ by at most one,
    the first ``n % world_size`` ranks take one more."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise DistributedConfigError(f"rank {rank} is outside 0..{world_size - 1}")
    q, extra = divmod(n, world_size)
    start = rank * q + min(rank, extra)
    return start, start + q + (rank < extra)


def shard(
    items: Sequence[Any], *, strided: bool = False, rank: int | None = None, world_size: int | None = None
) -> list[Any]:
    """This rank's share of ``items``: deterministic, disjoint across ranks, covering every item.

    ``strided=False`` gives a contiguous block (:func:`shard_bounds`); ``strided=True`` gives items
    ``rank, rank + world_size, ...``. ``rank``/``world_size`` default to this process's.
    """
    r = _this_rank() if rank is None else rank
    ws = _this_world_size() if world_size is None else world_size
    if strided:
        shard_bounds(len(items), r, ws)  # validates rank/world_size
        return list(items[r::ws])
    start, stop = shard_bounds(len(items), r, ws)
    return list(items[start:stop])


def deal_by_cost(costs: Sequence[float], world_size: int) -> list[list[int]]:
    """Deal units of unequal cost (e.g. tokens) to ``world_size`` ranks in rounds of one unit per rank.

    The units are sorted by cost, largest first (ties by index), and cut into rounds of
    ``world_size``: round ``k`` holds the ``k``-th ``world_size`` largest, so the units done at the
    same time cost about the same and a round's slowest unit keeps the others waiting little.
    Within a round the largest unit goes to the rank with the least cost so far, the next to the
    next (ties by rank), so that the ranks' totals stay close. Only the last round can be short.

    Returns one list of unit indices per rank, in the order it does them (element ``k`` is its unit
    of round ``k``). Deterministic; every unit appears once. Two ranks' totals differ by at most the
    largest cost, and the rounds' slowest units add up to the least any split into such rounds
    gives, at most ``sum(costs) / world_size + max(costs)`` (vs ``sum(costs)`` on one rank).

    Raises
    ------
    DistributedConfigError
        ``world_size`` < 1, or a cost that is negative or not finite (naming its index).
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise DistributedConfigError(f"world_size={world_size!r} must be an integer ≥ 1")
    for i, c in enumerate(costs):
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
            raise DistributedConfigError(f"costs[{i}]={c!r} must be a finite number ≥ 0")
    order = sorted(range(len(costs)), key=lambda i: (-costs[i], i))
    shares: list[list[int]] = [[] for _ in range(world_size)]
    totals = [0.0] * world_size
    for k in range(0, len(order), world_size):
        neediest = sorted(range(world_size), key=lambda r: (totals[r], r))
        for r, i in zip(neediest, order[k : k + world_size], strict=False):
            shares[r].append(i)
            totals[r] += costs[i]
    return shares


def map_over_ranks(fn: Callable[[Any], Any], units: Sequence[Hashable], *, what: str = "work") -> dict:
    """``{unit: fn(unit)}`` for every unit (distinct, hashable), each computed by one rank, on every rank.

    The units are dealt out round-robin (:func:`shard` with ``strided=True``); each rank applies
    ``fn`` to its own, in order, and the results (picklable) are gathered with
    :func:`all_gather_object`. ``fn`` must compute the same thing on whichever rank runs it: the
    result is then that of one process applying ``fn`` to every unit in order, which is what this
    does without a process group. The returned dict lists the units in ``units``' order.

    Raises
    ------
    RankFailedError
        On every other rank when one rank's ``fn`` raised; that rank re-raises its own error. No rank
        waits forever for a failed one.
    """
    if not is_distributed():
        return {u: fn(u) for u in units}
    mine = shard(units, strided=True, rank=rank(), world_size=world_size())
    done: dict = {}
    error: BaseException | None = None
    try:
        for u in mine:
            done[u] = fn(u)
    except Exception as err:  # sent to every rank, so that none waits for this one
        error = err
    parts = all_gather_object(
        {"done": done, "error": None if error is None else f"{type(error).__name__}: {error}"}
    )
    if error is not None:
        raise error
    failed = [(r, p["error"]) for r, p in enumerate(parts) if p["error"] is not None]
    if failed:
        raise RankFailedError(*failed[0], what=what)
    merged = {u: r for p in parts for u, r in p["done"].items()}
    return {u: merged[u] for u in units}


def check_world_size(n: int, what: str = "items") -> None:
    """Raise :class:`DistributedConfigError` (on every rank) when there are more ranks than ``n`` ``what``."""
    ws = world_size()
    if ws > n:
        raise DistributedConfigError(
            f"world size {ws} is larger than the number of {what} ({n}): some ranks would have nothing "
            f"to do. Run with --nproc-per-node={max(n, 1)} or fewer",
            all_ranks=True,
        )


def _flatten(cfg: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(cfg, Mapping):
        out: dict[str, str] = {}
        for k in sorted(cfg, key=str):
            out.update(_flatten(cfg[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: json.dumps(cfg, sort_keys=True, ensure_ascii=False, default=str)}


def config_hash(cfg: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a JSON-able configuration, independent of key order."""
    blob = json.dumps(_flatten(cfg), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Dotted names of the fields where two configurations differ (``"prompt.seed"``), sorted."""
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def check_same_config(cfg: Mapping[str, Any], what: str = "configuration") -> str:
    """Check that every rank runs with the same ``cfg``; returns its hash.

    Each rank sends the hash of its configuration; when they differ, the configurations themselves
    are gathered and every rank raises :class:`DistributedConfigError` naming the ranks and fields
    that differ from rank 0 (printed by rank 0). In one process this only hashes.
    """
    h = config_hash(cfg)
    if not is_distributed():
        return h
    hashes = all_gather_object(h)
    if len(set(hashes)) == 1:
        return h
    cfgs = all_gather_object(dict(cfg))
    parts = []
    for r, c in enumerate(cfgs):
        if hashes[r] != hashes[0]:
            fields = config_diff(cfgs[0], c)
            shown = ", ".join(
                f"{f} ({_flatten(cfgs[0]).get(f, '<absent>')} vs {_flatten(c).get(f, '<absent>')})"
                for f in fields[:5]
            )
            parts.append(f"rank {r} differs from rank 0 in {shown}" + (" ..." if len(fields) > 5 else ""))
    raise DistributedConfigError(
        f"the ranks disagree on the {what}: {'; '.join(parts)}. Every rank must get the same "
        "arguments, data and model; nothing was written",
        all_ranks=True,
    )


class LaunchError(RuntimeError):
    """A command started by :func:`launch` failed or ran out of time (its error output is quoted)."""


@dataclasses.dataclass(frozen=True)
class Launched:
    """A finished :func:`launch`: the command, its layout, its wall time (s) and its output."""

    command: tuple[str, ...]
    processes: int
    threads: int
    wall_s: float
    stdout: str
    stderr: str


def launch(
    args: Sequence[str],
    *,
    processes: int = 1,
    threads: int = 1,
    timeout_s: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Launched:
    """Run ``python -m labkit ARGS`` in ``processes`` processes of ``threads`` threads each; wait for it.

    One process runs ``python -m labkit ARGS``; more run ``python -m torch.distributed.run
    --standalone --nproc-per-node=N -m labkit ARGS`` on this machine. Each process gets
    ``OMP_NUM_THREADS`` = ``MKL_NUM_THREADS`` = ``threads``, the labkit package this process imported
    (first on ``PYTHONPATH``), and no torchrun variables of its own parent; ``env`` adds or replaces
    variables. ``wall_s`` is the wall time of the whole command, start-up, imports and model loading
    included, measured with ``time.perf_counter``.

    Example (the book's comparison, in a fresh results folder each time)::

        one = launch([*eval_args, "--cache", "a"], threads=2)
        two = launch([*eval_args, "--cache", "b"], processes=2, threads=1)

    Raises
    ------
    DistributedConfigError
        ``processes`` or ``threads`` below 1.
    LaunchError
        The command exited with an error (its last error lines are quoted) or outlasted
        ``timeout_s``.
    """
    for name, v in (("processes", processes), ("threads", threads)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise DistributedConfigError(f"{name}={v!r} must be an integer ≥ 1")
    from pathlib import Path

    here = str(Path(__file__).resolve().parents[1])  # the folder holding this labkit package
    run_env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    run_env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p),
    )
    run_env.update(env or {})
    cmd = [sys.executable, "-m", "labkit", *args]
    if processes > 1:
        run = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd = [*run, f"--nproc-per-node={processes}", "-m", "labkit", *args]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise LaunchError(f"`{' '.join(cmd)}` ran past {timeout_s} s and was stopped") from None
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise LaunchError(f"`{' '.join(cmd)}` exited with status {p.returncode}:\n{p.stderr[-2000:]}")
    return Launched(tuple(cmd), processes, threads, wall, p.stdout, p.stderr)
