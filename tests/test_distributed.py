"""labkit.distributed and ``labkit eval run`` over ranks: torchrun, gloo, 2 CPU processes, a tiny model.

The multi-process tests start ``python -m torch.distributed.run --standalone --nproc-per-node=2`` on the
7 Korean + 6 English fixture items with ``--chunk-size 2`` (7 chunks, both ranks busy) and compare with
one process scoring the same chunks with one thread (torchrun gives each rank one thread): the files
must be byte-identical apart from ``meta.json``'s ``"world_size"``.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labkit import distributed as dist
from labkit.cli import main as cli_main
from labkit.evals import run_task
from labkit.evals.errors import EvalDataError
from labkit.evals.results import RunAgreement, compare_runs
from labkit.models import tiny_llama

FIX = Path(__file__).parent / "fixtures" / "evals"
KOEN = FIX / "koen_items.jsonl"
RESULT_FILES = ("items.jsonl", "meta.json", "summary.json")


# --------------------------------------------------------------------------- one process, no torchrun
@pytest.fixture
def no_torchrun(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.mark.parametrize("n,ws", [(13, 2), (7, 3), (2, 2), (0, 4), (5, 1)])
def test_shard_covers_every_item_once(n, ws):
    items = list(range(n))
    for strided in (False, True):
        parts = [dist.shard(items, strided=strided, rank=r, world_size=ws) for r in range(ws)]
        assert sorted(x for p in parts for x in p) == items
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert parts == [dist.shard(items, strided=strided, rank=r, world_size=ws) for r in range(ws)]
    assert dist.shard(list(range(7)), rank=1, world_size=3) == [3, 4]  # contiguous: 3, 2, 2
    assert dist.shard(list(range(7)), strided=True, rank=1, world_size=3) == [1, 4]
    with pytest.raises(dist.DistributedConfigError, match="outside"):
        dist.shard(items, rank=ws, world_size=ws)


def test_deal_by_cost_balances_tokens_and_rounds():
    # four long items then four short ones (a Korean block before an English one): contiguous
    # blocks give one rank ten times the other's tokens; dealt by cost, each gets 22
    costs = [10, 10, 10, 10, 1, 1, 1, 1]
    contiguous = [sum(dist.shard(costs, rank=r, world_size=2)) for r in range(2)]
    assert contiguous == [40, 4]
    shares = dist.deal_by_cost(costs, 2)
    assert shares == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert [sum(costs[i] for i in s) for s in shares] == [22, 22]
    # rounds of the largest left (9 8 | 7 5 | 3 2 | 1); the larger to the rank with less so far
    assert dist.deal_by_cost([5, 1, 9, 3, 7, 2, 8], 2) == [[2, 0, 3, 1], [6, 4, 5]]
    rng = random.Random(0)
    for ws in (1, 2, 3, 5):
        for n in (0, 1, ws - 1, ws, 17, 64):
            costs = [rng.choice([0, rng.randint(1, 500), rng.random() * 3000]) for _ in range(max(n, 0))]
            shares = dist.deal_by_cost(costs, ws)
            assert shares == dist.deal_by_cost(list(costs), ws)  # deterministic
            assert sorted(i for s in shares for i in s) == list(range(len(costs)))
            assert max(map(len, shares)) - min(map(len, shares)) <= 1
            totals = [sum(costs[i] for i in s) for s in shares]
            top = max(costs, default=0)
            assert max(totals) - min(totals) <= top + 1e-9
            # ranks wait for the slowest unit of each round: at most an even share plus one unit
            rounds = max(map(len, shares))
            slowest = [max(costs[s[k]] for s in shares if k < len(s)) for k in range(rounds)]
            assert sum(slowest) <= sum(costs) / ws + top + 1e-9
    assert dist.deal_by_cost([3, 3, 3], 2) == [[0, 2], [1]]  # equal costs and totals: index order
    for bad, match in (([1, -1], r"costs\[1\]=-1"), ([math.nan], r"costs\[0\]=nan")):
        with pytest.raises(dist.DistributedConfigError, match=match):
            dist.deal_by_cost(bad, 2)
    with pytest.raises(dist.DistributedConfigError, match="world_size=0"):
        dist.deal_by_cost([1], 0)


def _fake_group(monkeypatch, rank: int, peer) -> list:
    """This process as rank ``rank`` of 2; the other rank's ``all_gather_object`` payloads come from
    ``peer(payload)``. Returns the list of this rank's payloads."""
    sent: list = []

    def gather(payload):
        sent.append(payload)
        other = peer(payload)
        return [payload, other] if rank == 0 else [other, payload]

    monkeypatch.setattr(dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dist, "rank", lambda: rank)
    monkeypatch.setattr(dist, "world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", gather)
    return sent


def test_map_over_ranks(no_torchrun):
    units = [0, 1, 2, "base"]
    assert dist.map_over_ranks(lambda u: f"<{u}>", units) == {u: f"<{u}>" for u in units}
    # rank 1 of a faked group: computes units 1 and "base", gets rank 0's from the gather
    ran: list = []
    sent = _fake_group(no_torchrun, 1, lambda _: {"done": {0: "<0>", 2: "<2>"}, "error": None})
    out = dist.map_over_ranks(lambda u: ran.append(u) or f"<{u}>", units)
    assert ran == [1, "base"] and sent == [{"done": {1: "<1>", "base": "<base>"}, "error": None}]
    assert list(out.items()) == [(0, "<0>"), (1, "<1>"), (2, "<2>"), ("base", "<base>")]
    # rank 0 failed: rank 1 stops too, naming it; a rank that fails raises its own error
    _fake_group(no_torchrun, 1, lambda _: {"done": {}, "error": "MemoryError: out of memory"})
    with pytest.raises(dist.RankFailedError, match=r"rank 0 failed .* of the probes \(MemoryError") as info:
        dist.map_over_ranks(str, units, what="probes")
    assert info.value.all_ranks and info.value.rank == 0

    def boom(u):
        raise KeyError(u)

    sent = _fake_group(no_torchrun, 0, lambda _: {"done": {1: "1"}, "error": None})
    with pytest.raises(KeyError):
        dist.map_over_ranks(boom, units)
    assert sent == [{"done": {}, "error": "KeyError: 0"}]  # the others hear of it instead of waiting


def test_single_process_helpers(no_torchrun):
    assert dist.env_info() == dist.DistInfo(0, 1, 0)
    assert dist.init() == dist.DistInfo(0, 1, 0) and not dist.is_distributed()
    assert (dist.rank(), dist.world_size()) == (0, 1)
    assert dist.shard([1, 2, 3]) == [1, 2, 3]
    assert dist.broadcast_object({"a": 1}) == {"a": 1} and dist.all_gather_object(5) == [5]
    dist.barrier()
    dist.check_world_size(1)
    assert dist.check_same_config({"a": 1}) == dist.config_hash({"a": 1})
    dist.teardown()


def test_config_hash_and_diff():
    a = {"model": "m", "prompt": {"seed": 1, "shots": 0}}
    assert dist.config_hash(a) == dist.config_hash({"prompt": {"shots": 0, "seed": 1}, "model": "m"})
    b = {"model": "m", "prompt": {"seed": 2, "shots": 0}, "extra": True}
    assert dist.config_hash(a) != dist.config_hash(b)
    assert dist.config_diff(a, b) == ["extra", "prompt.seed"]


@pytest.mark.parametrize(
    "env,match",
    [
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR, MASTER_PORT are not set"),
        ({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}, "RANK is not set"),
        ({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "x", "MASTER_PORT": "1"}, "outside 0..1"),
        ({"WORLD_SIZE": "two"}, "not an integer"),
        ({"WORLD_SIZE": "0"}, "at least 1"),
    ],
)
def test_bad_torchrun_environment(no_torchrun, env, match):
    for k, v in env.items():
        no_torchrun.setenv(k, v)
    with pytest.raises(dist.DistributedConfigError, match=match):
        dist.init()
    assert not dist.is_distributed()


def test_cli_missing_rendezvous_writes_nothing(no_torchrun, tmp_path, capsys):
    no_torchrun.setenv("WORLD_SIZE", "2")
    no_torchrun.setenv("RANK", "0")
    cache = tmp_path / "c"
    rc = cli_main([*_eval_args(cache), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1 and "labkit: error (rank 0): WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT" in err
    assert "torchrun --standalone" in err
    assert not cache.exists() and not (tmp_path / "out").exists()


def test_rank0_deals_chunks_by_tokens_and_stops_on_a_failed_peer(no_torchrun, tmp_path, one_thread):
    """Rank 0's side of a faked 2-rank group: rank 1's chunks arrive through all_gather_object."""
    import labkit.evals.runner as runner
    from labkit.evals import evaluate, load_task
    from labkit.evals.errors import EvalError
    from labkit.evals.lm import model_max_length
    from labkit.evals.results import ResultStore

    m, t = tiny_llama("tiny-llama", seed=0)
    items = load_task("koen_parallel", path=KOEN)
    ref, _ = evaluate(m, t, items, chunk_size=2, progress=False)
    chunks = [ref[i : i + 2] for i in range(0, len(ref), 2)]
    # the 7 chunks are dealt by their token counts: the Korean ones (7 items, bytes of Hangul) first
    tokens = runner.prompt_tokens(items, t, max_length=model_max_length(m, t))
    costs = [sum(tokens[i : i + 2]) for i in range(0, len(items), 2)]
    shares = dist.deal_by_cost(costs, 2)
    assert shares != [[0, 2, 4, 6], [1, 3, 5]]  # not round-robin over the item order
    assert abs(sum(costs[c] for c in shares[0]) - sum(costs[c] for c in shares[1])) <= max(costs)
    rounds = []

    def gather(payload):
        if "done" in payload:  # the token counts: rank 0 counted chunks 0, 2, 4, 6; rank 1 the others
            assert payload == {"done": {c: costs[c] for c in range(0, 7, 2)}, "error": None}
            return [payload, {"done": {c: costs[c] for c in range(1, 7, 2)}, "error": None}]
        k = len(rounds)
        rounds.append([x["id"] for x in payload["records"]])
        peer = {"records": chunks[shares[1][k]], "bad": [], "error": None}
        if k == 2:
            peer = {"records": [], "bad": [], "error": "RuntimeError: rank 1 ran out of memory"}
        return [payload, peer]

    for name, fake in dict(
        is_distributed=lambda: True,
        rank=lambda: 0,
        world_size=lambda: 2,
        broadcast_object=lambda obj, src=0: obj,
        all_gather_object=gather,
        barrier=lambda: None,
    ).items():
        no_torchrun.setattr(runner.dist, name, fake)
    store = ResultStore(tmp_path / "r")
    with pytest.raises(EvalError, match="rank 1 failed while scoring its items .*ran out of memory"):
        evaluate(m, t, items, chunk_size=2, store=store, progress=False)
    assert rounds == [[r["id"] for r in chunks[c]] for c in shares[0][:3]]
    on_disk = [
        json.loads(x) for x in (tmp_path / "r" / "items.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    # two full rounds, then rank 0's chunk of the third, in the order they arrived
    arrived = [shares[0][0], shares[1][0], shares[0][1], shares[1][1], shares[0][2]]
    assert on_disk == [rec for c in arrived for rec in chunks[c]]
    no_torchrun.undo()
    again, scored = evaluate(m, t, items, chunk_size=2, store=ResultStore(tmp_path / "r"), progress=False)
    assert scored == len(ref) - len(on_disk) and again == ref
    # the resumed single process leaves items.jsonl in item order, as one process writes it
    lines = (tmp_path / "r" / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == ref


def test_result_store_order_as(tmp_path):
    from labkit.evals.results import ResultStore

    store = ResultStore(tmp_path / "r")
    recs = [{"id": i, "item_hash": "h", "lls": [0.0]} for i in "cabd"]
    store.add(recs)
    before = (tmp_path / "r" / "items.jsonl").stat().st_mtime_ns
    store.order_as(["c", "a", "b"])  # already in this order: not rewritten
    assert (tmp_path / "r" / "items.jsonl").stat().st_mtime_ns == before
    store.order_as(["a", "b", "x", "c"])  # unknown ids are skipped, the others ("d") go last
    ids = [json.loads(x)["id"] for x in (tmp_path / "r" / "items.jsonl").read_text().splitlines()]
    assert (
        ids == ["a", "b", "c", "d"]
        and [r["id"] for r in ResultStore(tmp_path / "r")._records.values()] == ids
    )


# --------------------------------------------------------------------------- torchrun, 2 processes
def _eval_args(cache: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "run",
        "--task",
        "koen_parallel",
        "--model",
        "tiny-llama",
        "--path",
        str(KOEN),
        "--cache",
        str(cache),
        "--chunk-size",
        "2",
        "--quiet",
        *extra,
    ]


def _env(cache_root: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LABKIT_PROFILE")
    }
    env.update(OMP_NUM_THREADS="1", LABKIT_CACHE=str(cache_root), PYTHONUNBUFFERED="1")
    return env


def _torchrun(tmp_path: Path, target: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *target,
    ]
    return subprocess.run(
        cmd, cwd=tmp_path, env=_env(tmp_path / "labkit-cache"), capture_output=True, text=True, timeout=180
    )


def _worker(tmp_path: Path, body: str) -> str:
    """A script that runs ``labkit.cli.main`` after ``body`` (which may patch labkit per rank)."""
    path = tmp_path / "worker.py"
    path.write_text(
        "import os, signal, sys\n"
        "import labkit.evals.runner as runner\n"
        "from labkit.cli import main\n"
        "RANK = int(os.environ['RANK'])\n"
        + textwrap.dedent(body)
        + "\nraise SystemExit(main(sys.argv[1:]))\n"
    )
    return str(path)


def _run_folder(cache: Path) -> Path:
    (folder,) = cache.glob("tiny-llama/koen_parallel-all-*")
    return folder


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread):
    """One process, one thread, the same chunks: the files every multi-process run must reproduce."""
    m, t = tiny_llama("tiny-llama", seed=0)
    root = tmp_path_factory.mktemp("ref")
    res = run_task(
        m, t, "koen_parallel", model_id="tiny-llama", path=KOEN, cache=root, chunk_size=2, progress=False
    )
    assert res.scored_now == 13 and res.meta["world_size"] == 1
    return res.folder


def _same_as_reference(folder: Path, reference: Path, world_size: int) -> None:
    for name in RESULT_FILES:
        got, ref = (folder / name).read_text(encoding="utf-8"), (reference / name).read_text(encoding="utf-8")
        if name == "meta.json":
            got, ref = json.loads(got), json.loads(ref)
            assert got.pop("world_size") == world_size and ref.pop("world_size") == 1
        assert got == ref, name
    assert sorted(p.name for p in folder.iterdir()) == sorted([".labkit.lock", *RESULT_FILES])


@pytest.mark.slow
def test_two_ranks_write_what_one_process_writes(tmp_path, reference):
    out = tmp_path / "out"
    cache = tmp_path / "c"
    p = _torchrun(tmp_path, ["-m", "labkit", *_eval_args(cache, "--out", str(out))])
    assert p.returncode == 0, p.stderr[-3000:]
    printed = json.loads(p.stdout)  # rank 0 alone reports
    assert printed["n"] == 13 and printed["scored_now"] == 13
    _same_as_reference(_run_folder(cache), reference, world_size=2)
    assert sorted(x.name for x in out.iterdir()) == sorted([".labkit-output.json", *RESULT_FILES])
    assert (out / "summary.json").read_bytes() == (reference / "summary.json").read_bytes()
    agree = compare_runs(reference, _run_folder(cache))
    assert agree == RunAgreement(True, True, True, 0.0, (1, 2))
    with pytest.raises(EvalDataError, match="has no items.jsonl"):
        compare_runs(reference, tmp_path)


def test_launch(no_torchrun, tmp_path):
    """``distributed.launch`` runs ``python -m labkit`` in a fresh process (torchrun is tested above)."""
    no_torchrun.setenv("WORLD_SIZE", "2")  # a parent's torchrun variables do not reach the command
    args = _eval_args(tmp_path / "c", "--lang", "en", "--max-items", "2")
    done = dist.launch(args, threads=1, env={"LABKIT_CACHE": str(tmp_path)})
    brief = json.loads(done.stdout)
    assert brief["n"] == brief["scored_now"] == 2 and brief["seconds"] > 0
    assert done.wall_s > brief["seconds"] and (done.processes, done.threads) == (1, 1)
    meta = json.loads((Path(brief["folder"]) / "meta.json").read_text(encoding="utf-8"))
    assert meta["world_size"] == 1
    with pytest.raises(dist.LaunchError, match="(?s)exited with status 2:.*invalid choice: 'nonsense'"):
        dist.launch(["nonsense"])
    for bad in ({"processes": 0}, {"threads": True}):
        with pytest.raises(dist.DistributedConfigError, match="must be an integer"):
            dist.launch(["eval", "list"], **bad)


@pytest.mark.slow
def test_killed_rank_resumes_with_another_world_size(tmp_path, reference, no_torchrun, one_thread, capsys):
    cache = tmp_path / "c"
    # rank 1 dies (SIGKILL) as it starts its second chunk; torchrun then stops rank 0
    worker = _worker(
        tmp_path,
        """
        real, calls = runner.loglikelihood, [0]
        def dying(*a, **k):
            calls[0] += 1
            if RANK == 1 and calls[0] == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        runner.loglikelihood = dying
        """,
    )
    p = _torchrun(tmp_path, [worker, *_eval_args(cache)])
    assert p.returncode != 0
    folder = _run_folder(cache)
    partial = [json.loads(x) for x in (folder / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    # round 1 (chunks 0, 1) is on disk before round 2 starts; rank 0 may have saved chunk 2 too
    assert len(partial) in (4, 6)
    assert not (folder / "summary.json").exists()
    # resume in one process (world size 1): only the rest is scored, and the result is the reference's
    capsys.readouterr()
    assert cli_main(_eval_args(cache)) == 0
    assert json.loads(capsys.readouterr().out)["scored_now"] == 13 - len(partial)
    _same_as_reference(folder, reference, world_size=1)


@pytest.mark.slow
def test_ranks_that_disagree_fail_before_writing(tmp_path):
    cache = tmp_path / "c"
    worker = _worker(tmp_path, "if RANK == 1:\n    sys.argv += ['--seed', '99']\n")
    p = _torchrun(tmp_path, [worker, *_eval_args(cache, "--out", str(tmp_path / "out"))])
    assert p.returncode != 0
    errors = [x for x in p.stderr.splitlines() if x.startswith("labkit: error")]
    assert len(errors) == 1 and errors[0].startswith("labkit: error (rank 0): the ranks disagree"), p.stderr[
        -3000:
    ]
    assert "rank 1 differs from rank 0 in" in errors[0] and "prompt.seed (1234 vs 99)" in errors[0]
    assert not list(cache.rglob("*.json*")) and not (tmp_path / "out").exists()


def test_more_ranks_than_items(no_torchrun, tmp_path, capsys):
    """Checked in one process with a world size of 2 faked: by the CLI before the model is loaded, and by
    run_task before anything is written (the printing from rank 0 alone is tested above)."""
    no_torchrun.setattr(dist, "world_size", lambda: 2)
    cache = tmp_path / "c"
    assert cli_main(_eval_args(cache, "--lang", "en", "--max-items", "1")) == 1
    assert capsys.readouterr().err == (
        "labkit: error: world size 2 is larger than the number of items (1): some ranks would have "
        "nothing to do. Run with --nproc-per-node=1 or fewer\n"
    )
    m, t = tiny_llama("tiny-llama", seed=0)
    with pytest.raises(dist.DistributedConfigError, match=r"number of items \(1\)") as info:
        run_task(m, t, "koen_parallel", model_id="tiny-llama", path=KOEN, lang="en", max_items=1, cache=cache)
    assert info.value.all_ranks and not cache.exists()
