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
* :func:`broadcast_object`, :func:`all_gather_object` — small picklable Python objects;
* :func:`check_same_config` — every rank hashes its configuration; a difference raises
  :class:`DistributedConfigError` on every rank, naming the fields that differ (rank 0 reports it);
* :func:`check_world_size` — more ranks than units of work is an error, not idle processes.

The errors are :class:`DistributedConfigError` (a ``ValueError``); those detected by all ranks together
carry ``all_ranks = True`` so that the command line prints them once, from rank 0.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "DistInfo",
    "DistributedConfigError",
    "all_gather_object",
    "barrier",
    "broadcast_object",
    "check_same_config",
    "check_world_size",
    "config_diff",
    "config_hash",
    "env_info",
    "init",
    "is_distributed",
    "local_rank",
    "rank",
    "session",
    "shard",
    "shard_bounds",
    "teardown",
    "world_size",
]

#: Environment variables torchrun sets that a multi-process run needs for its rendezvous.
RENDEZVOUS_VARS = ("MASTER_ADDR", "MASTER_PORT")


class DistributedConfigError(ValueError):
    """A multi-process run that cannot go on: bad torchrun environment, ranks that disagree, too many ranks.

    ``all_ranks`` is true when every rank raised it together (a collective check); the command line
    then prints it from rank 0 only.
    """

    def __init__(self, message: str, *, all_ranks: bool = False):
        super().__init__(message)
        self.all_ranks = all_ranks


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
