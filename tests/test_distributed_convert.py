"""``labkit moe convert`` over ranks: torchrun, gloo, 2 CPU processes, the 6-layer tiny LLaMA.

The reference is one process with one thread (torchrun gives each rank one thread) converting the same
config: 8192 calibration tokens in blocks of 128, so the capture forms two batches of 32 blocks and
each rank captures one; the 6 layers are dealt out 3 and 3. The saved weights must be byte-identical
and the chosen policies the same, also after a run started with 2 ranks is killed and finished by 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from labkit import distributed as dist
from labkit.cli import main as cli_main
from labkit.models import load_causal_lm, tiny_llama
from labkit.moe import capture, pipeline

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[1]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
ARGS = [
    "moe",
    "convert",
    "--profile",
    "smoke",
    "--model",
    "tiny-llama-deep",
    "--experts",
    "4",
    "--tokens",
    "8192",
    "--seq-len",
    "128",
    "--target",
    "0.1",
    "--no-progress",
]


@pytest.fixture
def no_torchrun(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def _env(cache: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*TORCHRUN_VARS, "LABKIT_PROFILE")}
    env.update(OMP_NUM_THREADS="1", LABKIT_CACHE=str(cache), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    return env


def _torchrun(tmp_path: Path, target: list[str], cache: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *target]
    return subprocess.run(cmd, cwd=tmp_path, env=_env(cache), capture_output=True, text=True, timeout=300)


def _worker(tmp_path: Path, body: str) -> str:
    """A script that runs ``labkit.cli.main`` after ``body`` (which may patch labkit per rank)."""
    path = tmp_path / "worker.py"
    path.write_text(
        "import os, signal, sys\n"
        "from labkit.moe import distill\n"
        "from labkit.cli import main\n"
        "RANK = int(os.environ['RANK'])\n"
        + textwrap.dedent(body)
        + "\nraise SystemExit(main(sys.argv[1:]))\n"
    )
    return str(path)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(scope="module")
def reference(tmp_path_factory, one_thread):
    """One process, one thread: the folder every multi-process conversion must reproduce."""
    root = tmp_path_factory.mktemp("ref")
    saved = {k: os.environ.pop(k, None) for k in (*TORCHRUN_VARS, "LABKIT_CACHE", "LABKIT_PROFILE")}
    os.environ["LABKIT_CACHE"] = str(root / "cache")
    try:
        assert cli_main([*ARGS, "--out", str(root / "out")]) == 0
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    report = json.loads((root / "out" / "report.json").read_text())
    assert report["world_size"] == 1 and report["resumed_layers"] == []
    return root / "out"


def _same_as_reference(out: Path, reference: Path) -> dict:
    assert (out / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    meta, ref_meta = (json.loads((d / "labkit_moe.json").read_text()) for d in (out, reference))
    assert meta == ref_meta  # experts, shapes and each layer's chosen policy
    report, ref_report = (json.loads((d / "report.json").read_text()) for d in (out, reference))
    assert report["chosen_policy"] == ref_report["chosen_policy"]
    assert report["valid_ppl"] == ref_report["valid_ppl"] and report["key"] == ref_report["key"]
    return report


@pytest.mark.slow
def test_two_ranks_convert_what_one_process_converts(tmp_path, reference):
    cache, out = tmp_path / "cache", tmp_path / "out"
    p = _torchrun(tmp_path, ["-m", "labkit", *ARGS, "--out", str(out)], cache)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("converted tiny-llama-deep") == 1  # rank 0 alone reports
    report = _same_as_reference(out, reference)
    assert report["world_size"] == 2 and report["resumed_layers"] == []
    assert [layer["layer"] for layer in report["layers"]] == list(range(6))
    (folder,) = (cache / "moe").iterdir()
    # the capture and the layer checkpoints are gone; nothing half-written is left
    assert sorted(p.name for p in folder.iterdir()) == [".labkit.lock", "config.json", "model", "report.json"]
    assert not [p for p in cache.rglob("*") if ".labkit-tmp-" in p.name]


@pytest.mark.slow
def test_run_started_with_two_ranks_finishes_with_one(tmp_path, reference, no_torchrun, capsys):
    cache = tmp_path / "cache"
    # rank 1 dies (SIGKILL) after its first layer (layer 1); torchrun then stops rank 0
    worker = _worker(
        tmp_path,
        """
        real = distill.distill_layers
        def dying(*a, **k):
            def done(i):
                if RANK == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, on_layer_done=done, **k)
        distill.distill_layers = dying
        """,
    )
    p = _torchrun(tmp_path, [worker, *ARGS, "--out", str(tmp_path / "out")], cache)
    assert p.returncode != 0 and ("SIGKILL" in p.stderr or ": -9" in p.stderr), p.stderr[-3000:]
    (folder,) = (cache / "moe").iterdir()
    finished = sorted(int(f.name[6:9]) for f in (folder / "checkpoints").glob("layer_*.json"))
    assert 1 in finished and 3 not in finished and len(finished) < 6  # rank 0 may have done 0, 2, 4
    assert not (folder / "model").exists() and not (folder / "report.json").exists()
    # one process (world size 1) finishes it: only the missing layers are trained
    no_torchrun.setenv("LABKIT_CACHE", str(cache))
    assert cli_main([*ARGS, "--out", str(tmp_path / "out")]) == 0
    report = _same_as_reference(tmp_path / "out", reference)
    assert report["world_size"] == 1 and report["resumed_layers"] == finished
    assert not [p for p in cache.rglob("*") if ".labkit-tmp-" in p.name]


@pytest.mark.slow
def test_ranks_that_disagree_fail_before_writing(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    worker = _worker(tmp_path, "if RANK == 1:\n    sys.argv += ['--seed', '99']\n")
    p = _torchrun(tmp_path, [worker, *ARGS, "--out", str(out)], cache)
    assert p.returncode != 0
    errors = [x for x in p.stderr.splitlines() if x.startswith("labkit: error")]
    assert len(errors) == 1, p.stderr[-3000:]
    assert errors[0].startswith("labkit: error (rank 0): the ranks disagree on the conversion")
    assert "rank 1 differs from rank 0 in" in errors[0] and "config.seed (0 vs 99)" in errors[0]
    assert _files(cache) == [] and not out.exists()


def test_missing_rendezvous_writes_nothing(no_torchrun, tmp_path, capsys):
    no_torchrun.setenv("WORLD_SIZE", "2")
    no_torchrun.setenv("RANK", "0")
    no_torchrun.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    assert cli_main([*ARGS, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "labkit: error (rank 0): WORLD_SIZE=2 but MASTER_ADDR, MASTER_PORT are not set" in err
    assert "torchrun --standalone" in err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_more_ranks_than_layers_and_a_device_map_over_ranks(no_torchrun, tmp_path, capsys):
    """Checked with a world size faked in one process (the printing from rank 0 alone is tested above):
    tiny-llama has 2 layers, so 3 ranks are refused before anything is written."""
    no_torchrun.setattr(dist, "world_size", lambda: 3)
    no_torchrun.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    args = [*ARGS, "--model", "tiny-llama", "--out", str(tmp_path / "out")]
    assert cli_main(args) == 1
    assert capsys.readouterr().err == (
        "labkit: error: world size 3 is larger than the number of layers (2): some ranks would have "
        "nothing to do. Run with --nproc-per-node=2 or fewer\n"
    )
    assert _files(tmp_path / "cache") == [] and not (tmp_path / "out").exists()
    cfg = pipeline.ConversionConfig(model="tiny-llama", num_experts=4, train_tokens=512, seq_len=128)
    with pytest.raises(dist.DistributedConfigError, match="device_map='auto' spreads") as info:
        pipeline.convert(cfg, progress=False, folder=tmp_path / "run", device_map="auto")
    assert info.value.all_ranks and not (tmp_path / "run").exists()


def test_device_map_gives_identical_captures(tmp_path):
    """accelerate's placement (in-memory dispatch of a built model; ``from_pretrained(device_map=...)``
    of a saved one) computes what the model moved to the CPU computes: byte-identical captures."""
    model, tok = tiny_llama("tiny-llama-deep", seed=3)
    model.save_pretrained(tmp_path / "dense")
    tok.save_pretrained(tmp_path / "dense")
    blocks = torch.randint(0, 256, (6, 32), generator=torch.Generator().manual_seed(0))
    per_layer = {f"model.layers.{i}": "cpu" for i in range(6)}
    split = {"model.embed_tokens": "cpu", **per_layer, "model.norm": "cpu", "model.rotary_emb": "cpu"}
    loads = {
        "plain": lambda: load_causal_lm(str(tmp_path / "dense"), device="cpu"),
        "pretrained-auto": lambda: load_causal_lm(str(tmp_path / "dense"), device_map="auto"),
        "pretrained-split": lambda: load_causal_lm(
            str(tmp_path / "dense"), device_map={**split, "lm_head": "cpu"}
        ),
        "tiny-auto": lambda: load_causal_lm("tiny-llama-deep", seed=3, device_map="auto"),
        "tiny-cpu": lambda: load_causal_lm("tiny-llama-deep", seed=3, device_map="cpu"),
    }
    files = {}
    for name, load in loads.items():
        m, _ = load()
        store = capture.capture_activations(
            m, blocks, tmp_path / name, outputs=True, batch_size=4, progress=False
        )
        files[name] = [(store.folder / f"{p}_{i:03d}.npy").read_bytes() for p in "xy" for i in range(6)]
    assert all(v == files["plain"] for v in files.values()), [
        k for k, v in files.items() if v != files["plain"]
    ]


@pytest.mark.slow
def test_conversion_with_a_device_map_is_the_plain_conversion(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    cfg = pipeline.ConversionConfig(
        model="tiny-llama-deep",
        num_experts=4,
        train_tokens=1024,
        valid_tokens=256,
        seq_len=128,
        batch_tokens=256,
        target_reduction=0.1,
        front_evals=2,
    )
    ref, _, ref_report = pipeline.convert(cfg, progress=False, folder=tmp_path / "plain")
    model, _, report = pipeline.convert(cfg, progress=False, folder=tmp_path / "auto", device_map="auto")
    assert report["chosen_policy"] == ref_report["chosen_policy"]
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True)
    )


# --------------------------------------------------------------------------- stage 2 over ranks
SENSITIVITY_ARGS = [*ARGS, "--model", "tiny-llama-odd", "--tokens", "4096", "--sensitivity"]
TIMING_KEYS = ("wall_s", "stages_s", "peak_rss_mb", "peak_rss_mb_by_stage", "peak_gpu_mb_by_stage")


def _without_timings(report: dict) -> dict:
    out = {k: v for k, v in report.items() if k not in (*TIMING_KEYS, "world_size")}
    out["layers"] = [{k: v for k, v in layer.items() if k != "seconds"} for layer in report["layers"]]
    return out


@pytest.mark.slow
def test_two_ranks_share_stage_2_and_match_one_process(tmp_path, no_torchrun):
    """With ``sensitivity`` stage 2 runs one end-to-end probe per layer and a baseline: over 2 ranks the
    3 layers of tiny-llama-odd and the baseline are dealt out (rank 0: layers 0, 2; rank 1: layer 1
    and the baseline), and the result is the single process's: weights byte for byte, the whole
    report apart from timings and the world size. The smoke profile allocates first, so stage 2
    runs twice: the plan (with the probes) and the final search (reusing them: no baseline)."""
    no_torchrun.setenv("LABKIT_CACHE", str(tmp_path / "ref-cache"))
    assert cli_main([*SENSITIVITY_ARGS, "--out", str(tmp_path / "ref")]) == 0
    log = tmp_path / "units.log"
    worker = _worker(  # each rank logs the units of work it does itself
        tmp_path,
        f"""
        from labkit import distributed
        real = distributed.map_over_ranks
        def logged(fn, units, *, what):
            def unit(u):
                with open({str(log)!r}, "a") as f:
                    f.write(f"{{RANK}}|{{what}}|{{u}}\\n")
                return fn(u)
            return real(unit, units, what=what)
        distributed.map_over_ranks = logged
        """,
    )
    p = _torchrun(tmp_path, [worker, *SENSITIVITY_ARGS, "--out", str(tmp_path / "out")], tmp_path / "cache")
    assert p.returncode == 0, p.stderr[-3000:]
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert (out / "model.safetensors").read_bytes() == (ref / "model.safetensors").read_bytes()
    assert (out / "labkit_moe.json").read_bytes() == (ref / "labkit_moe.json").read_bytes()
    report, ref_report = (json.loads((d / "report.json").read_text()) for d in (out, ref))
    assert (report["world_size"], ref_report["world_size"]) == (2, 1)
    assert len(report["search"]["extra"]["sensitivity"]) == 3
    assert _without_timings(report) == _without_timings(ref_report)
    done = [tuple(line.split("|")) for line in log.read_text().splitlines()]
    stage2 = {r: [u for rr, what, u in done if rr == r and what.startswith("routing")] for r in "01"}
    assert stage2 == {"0": ["0", "2", "0", "2"], "1": ["1", "base", "1"]}
    front = [str(j) for j, point in enumerate(report["search"]["front"]) if "valid_ppl" in point]
    evals = {r: [u for rr, what, u in done if rr == r and what.startswith("front")] for r in "01"}
    assert evals == {"0": front[0::2], "1": front[1::2]}
