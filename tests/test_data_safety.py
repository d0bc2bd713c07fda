"""Data-safety drills (issue #32), run as a new user would: on the tiny models, with real files,
real subprocesses killed with SIGKILL at a known point, concurrent runs, corruption and bad input.

Each test names the drill it automates; ``tests/DRILLS.md`` tabulates them with their outcome
before and after the change that made them pass.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_moe_io import TINY  # the tiny conversion config of the pipeline tests

from labkit import models, storage
from labkit.cli import main as cli_main
from labkit.evals import load_task, run_task
from labkit.evals.errors import EvalDataError, NonFiniteScoreError
from labkit.flagella import ecoli
from labkit.flagella.errors import FlagellaError
from labkit.flagella.population import flagella_number, population_experiment
from labkit.moe import io, pipeline
from labkit.moe.errors import MoEError

KOEN = Path(__file__).parent / "fixtures" / "evals" / "koen_items.jsonl"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _threads():
    """Subprocess drills run with one thread; so does this process (the thread count is in the
    conversion key, and results are bit-identical only at one thread count)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _child(code: str, cache: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python with ``LABKIT_CACHE=cache`` and one thread."""
    env = {**os.environ, "LABKIT_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    prelude = "import torch; torch.set_num_threads(1)\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], env=env, capture_output=True, text=True
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def _spawn(code: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "LABKIT_CACHE": str(cache), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    prelude = "import torch; torch.set_num_threads(1)\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _saved_moe(tmp_path: Path, name: str = "moe") -> tuple[Path, torch.nn.Module]:
    from labkit import moe

    model, tok = models.tiny_llama("tiny-llama", seed=3)
    moe.moefy(model, num_experts=4)
    moe.set_policy(model, "top2")
    return io.save_moe(model, tmp_path / name, tok), model


# =========================================================================== data loss
def test_out_folder_with_user_files_is_refused_and_kept(tmp_path):
    """Drill: `moe convert --out DIR` / save_moe / export_mixtral on a folder holding a user's files."""
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    (user / "sub").mkdir()
    (user / "sub" / "data.csv").write_text("1,2")
    from labkit import moe

    model, tok = models.tiny_llama("tiny-llama")
    moe.moefy(model, num_experts=4)
    moe.set_policy(model, "top2")
    with pytest.raises(storage.OutputPathError, match="labkit did not write"):
        io.save_moe(model, user, tok)
    with pytest.raises(storage.OutputPathError, match="labkit did not write"):
        io.export_mixtral(model, user, tok)
    assert (user / "thesis.tex").read_text() == "years of work" and (user / "sub" / "data.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no temporaries left
    rc = cli_main(["moe", "convert", "--model", "tiny-llama", "--out", str(user), "--no-progress"])
    assert rc == 1 and (user / "thesis.tex").is_file()


def test_out_dot_home_and_cache_root_are_refused(tmp_path, monkeypatch, capsys):
    """Drill: `--out .` emptied the working directory; home, the cache root and its parents too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep")
    cache = tmp_path / "cache"
    monkeypatch.setenv("LABKIT_CACHE", str(cache))
    for bad in (".", str(Path.home()), str(cache), str(tmp_path), "/"):
        with pytest.raises(storage.OutputPathError, match="choose a new subfolder"):
            storage.check_output_dir(bad, label="--out")
    assert cli_main(["moe", "convert", "--model", "tiny-llama", "--out", ".", "--no-progress"]) == 1
    assert "working directory" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "keep"


def test_labkit_output_is_replaced_but_not_if_a_user_added_files(tmp_path):
    """A folder labkit wrote is replaced by a new save; once a user adds a file to it, it is not.
    Drill: a kill during a save left 87 MB `.conv_ref-*` temporaries."""
    folder, model = _saved_moe(tmp_path)
    marker = json.loads((folder / storage.MARKER).read_text())
    assert marker["writer"] == "labkit" and "model.safetensors" in marker["files"]
    stale = tmp_path / f".moe.labkit-tmp-{_dead_pid()}-abcdef"  # a killed save's temporary (`.conv_ref-*`)
    stale.mkdir()
    io.save_moe(model, folder)  # ours: replaced
    assert not stale.exists()
    (folder / "my_notes.md").write_text("mine")
    with pytest.raises(storage.OutputPathError, match="my_notes.md"):
        io.save_moe(model, folder)
    assert (folder / "my_notes.md").read_text() == "mine" and (folder / "model.safetensors").is_file()


# =========================================================================== silent wrong results
def test_converted_moe_folder_loads_as_moe_everywhere(tmp_path, capsys):
    """Drill: a converted MoE folder as --model loaded as a dense LLaMA with random MLPs (acc 0.0)."""
    from labkit import moe

    folder, model = _saved_moe(tmp_path)
    loaded, tok = models.load_causal_lm(str(folder), device="cpu")
    assert len(moe.moe_blocks(loaded)) == 2
    ids = torch.randint(0, 256, (1, 11))
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
    rc = cli_main(
        [
            "eval",
            "run",
            "--task",
            "koen_parallel",
            "--lang",
            "en",
            "--model",
            str(folder),
            "--path",
            str(KOEN),
        ]
        + ["--cache", str(tmp_path / "c"), "--quiet"]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    direct = run_task(
        model, tok, "koen_parallel", model_id="x", lang="en", path=KOEN, cache=False, progress=False
    )
    assert printed["metrics"]["acc"]["value"] == round(
        direct.summary["metrics"]["acc"]["analytic"]["value"], 4
    )


def test_missing_or_unexpected_weights_are_an_error(tmp_path):
    """Drill: transformers only logged missing keys; the model ran with random weights."""
    from safetensors.torch import load_file, save_file

    model, tok = models.tiny_llama("tiny-llama")
    model.save_pretrained(tmp_path / "dense")
    tok.save_pretrained(tmp_path / "dense")
    path = tmp_path / "dense" / "model.safetensors"
    state = load_file(str(path))
    state.pop("model.layers.1.mlp.down_proj.weight")
    state["model.layers.1.mlp.extra"] = torch.zeros(2)
    save_file(state, str(path), metadata={"format": "pt"})
    with pytest.raises(models.WeightsMismatchError, match="missing.*down_proj.*unexpected.*extra"):
        models.load_causal_lm(str(tmp_path / "dense"), device="cpu")
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(models.ModelNotAvailableError, match=r"dense/model.safetensors is damaged"):
        models.load_causal_lm(str(tmp_path / "dense"), device="cpu")


def test_new_weights_in_the_same_folder_never_reuse_results(tmp_path):
    """Drill: eval and conversion caches were keyed by a local model's path (0.333 for a true 0.5)."""
    folder = tmp_path / "model"
    a, tok = models.tiny_llama("tiny-llama", seed=1)
    a.save_pretrained(folder)
    tok.save_pretrained(folder)
    m, t = models.load_causal_lm(str(folder), device="cpu")
    first = run_task(
        m,
        t,
        "koen_parallel",
        model_id=str(folder),
        lang="en",
        path=KOEN,
        cache=tmp_path / "c",
        progress=False,
    )
    key_a = replace(TINY, model=str(folder)).key()
    b, _ = models.tiny_llama("tiny-llama", seed=2)
    b.save_pretrained(folder)  # new weights, same path
    m2, t2 = models.load_causal_lm(str(folder), device="cpu")
    second = run_task(
        m2,
        t2,
        "koen_parallel",
        model_id=str(folder),
        lang="en",
        path=KOEN,
        cache=tmp_path / "c",
        progress=False,
    )
    assert second.scored_now == len(second.records) and second.folder != first.folder
    assert [r["lls"] for r in second.records] != [r["lls"] for r in first.records]
    assert replace(TINY, model=str(folder)).key() != key_a
    # the routing policy of an MoE is part of its identity too
    from labkit import moe

    moe.moefy(m2, num_experts=4)
    moe.set_policy(m2, "top2")
    fp2 = models.weights_fingerprint(m2)
    moe.set_policy(m2, "top3")
    assert models.weights_fingerprint(m2) != fp2


def test_thread_count_is_in_the_conversion_key():
    """Drill: the thread count changes a conversion's bytes (up to 4.7e-6) but was not in its key."""
    k1 = TINY.key()
    torch.set_num_threads(2)
    assert TINY.key() != k1


def _fake_smollm2(monkeypatch, tmp_path):
    """SmolLM2's cache built from a tiny model (no GGUF dequantisation in unit tests)."""
    import transformers

    tiny, tok = models.tiny_llama("tiny-llama")
    fake = tmp_path / models.SMOLLM2_GGUF
    fake.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: fake)
    real_model = transformers.LlamaForCausalLM.from_pretrained
    real_tok = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(  # only the GGUF reads are faked; the cache is loaded for real
        transformers.LlamaForCausalLM,
        "from_pretrained",
        lambda *a, **k: tiny if "gguf_file" in k else real_model(*a, **k),
    )
    monkeypatch.setattr(
        transformers.AutoTokenizer,
        "from_pretrained",
        lambda *a, **k: tok if "gguf_file" in k else real_tok(*a, **k),
    )
    return tiny


@pytest.mark.parametrize("damage", ["garbage", "truncate"])
def test_damaged_model_cache_is_quarantined_and_rebuilt(tmp_cache, tmp_path, monkeypatch, damage):
    """Drill: 4 KB of garbage in the cached SmolLM2 weights loaded with exit 0 and NaN loss; a truncated
    cache raised SafetensorError on every later run with no hint what to delete."""
    tiny = _fake_smollm2(monkeypatch, tmp_path)
    models.load_causal_lm("smollm2-135m", device="cpu")
    weights = tmp_cache / "models" / "smollm2-135m" / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    if damage == "garbage":
        raw[len(raw) // 2 : len(raw) // 2 + 4096] = os.urandom(4096)
        weights.write_bytes(bytes(raw))
    else:
        weights.write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.warns(storage.CacheRepairWarning, match="model.safetensors"):
        model, _ = models.load_causal_lm("smollm2-135m", device="cpu")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), tiny.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    quarantined = [p for p in (tmp_cache / "models").iterdir() if ".corrupt-" in p.name]
    assert len(quarantined) == 1  # moved aside, not deleted


def test_stale_build_temporaries_are_removed_on_the_next_start(tmp_cache, tmp_path, monkeypatch):
    """Drill: a kill left 514 MB `models/.smollm2-135m-*` temporaries forever."""
    _fake_smollm2(monkeypatch, tmp_path)
    parent = tmp_cache / "models"
    parent.mkdir(parents=True)
    stale = storage.temporary_path(parent / "smollm2-135m").with_name(
        f".smollm2-135m.labkit-tmp-{_dead_pid()}-abcdef"
    )
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"x" * 1000)
    live = parent / f".other.labkit-tmp-{os.getppid()}-abcdef"  # a live process's: kept
    live.mkdir()
    models.load_causal_lm("smollm2-135m", device="cpu")
    assert not stale.exists() and live.exists()


def test_flipped_bit_in_a_layer_checkpoint_is_caught_and_retrained(tmp_path, monkeypatch):
    """Drill: a flipped bit in a layer checkpoint was accepted; an invalid layer_004.json printed
    'Expecting value: line 2 column 1' with no file named."""
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "c"))
    ref, _, _ = pipeline.convert(TINY, progress=False, folder=tmp_path / "ref")
    run = tmp_path / "run"
    pipeline.convert(TINY, progress=False, folder=run, keep_checkpoints=True)
    ck = run / "checkpoints"
    w = ck / "layer_001.safetensors"
    raw = bytearray(w.read_bytes())
    raw[-7] ^= 0x10
    w.write_bytes(bytes(raw))
    (ck / "layer_004.json").write_text("{\n")
    with pytest.warns(storage.CacheRepairWarning) as caught:
        model, _, report = pipeline.convert(TINY, progress=False, use_cache=False, folder=run)
    text = " ".join(str(w.message) for w in caught)
    assert "layer_001.safetensors" in text and "layer_004.json" in text
    assert report["resumed_layers"] == [0, 2, 3, 5]
    ids = torch.randint(0, 256, (1, 13))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)  # retrained layers: same bytes


def test_cleanup_after_a_conversion_removes_only_its_own_files(tmp_path, monkeypatch):
    """The capture and the layer checkpoints go once the model is saved; a file someone else put in
    those folders stays."""
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "c"))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "notes.txt").write_text("mine")
    pipeline.convert(TINY, progress=False, folder=run)
    assert (run / "checkpoints" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["notes.txt"]
    assert not (run / "acts").exists() and (run / "model" / "model.safetensors").is_file()


def test_damaged_cached_conversion_is_rebuilt_from_its_checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    ref, _, _ = pipeline.convert(TINY, progress=False, keep_checkpoints=True)
    weights = pipeline.conversion_dir(TINY) / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.warns(storage.CacheRepairWarning, match="damaged"):
        model, _, report = pipeline.convert(TINY, progress=False)
    assert not report["from_cache"] and report["resumed_layers"] == list(range(6))
    ids = torch.randint(0, 256, (1, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)


def test_nan_records_are_never_cached(tmp_path):
    """Drill: a model producing NaN wrote its NaN records into the results cache; the rerun after the
    model was fixed still failed."""
    good, tok = models.tiny_llama("tiny-llama", seed=1)
    bad, _ = models.tiny_llama("tiny-llama", seed=1)
    with torch.no_grad():
        bad.lm_head.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteScoreError, match="NaN/inf"):
        run_task(
            bad, tok, "koen_parallel", model_id="m", lang="en", path=KOEN, cache=tmp_path, progress=False
        )
    files = list(tmp_path.rglob("items.jsonl"))
    assert all("NaN" not in f.read_text() for f in files)
    ok = run_task(
        good, tok, "koen_parallel", model_id="m", lang="en", path=KOEN, cache=tmp_path, progress=False
    )
    assert ok.scored_now == 6 and all(np.isfinite(r["lls"]).all() for r in ok.records)


def test_damaged_results_file_is_moved_aside_and_rescored(tmp_path):
    m, t = models.tiny_llama("tiny-llama", seed=1)
    first = run_task(
        m, t, "koen_parallel", model_id="m", lang="en", path=KOEN, cache=tmp_path, progress=False
    )
    items = first.folder / "items.jsonl"
    items.write_text(items.read_text()[:-40])  # cut inside the last record
    with pytest.warns(storage.CacheRepairWarning, match="items.jsonl"):
        again = run_task(
            m, t, "koen_parallel", model_id="m", lang="en", path=KOEN, cache=tmp_path, progress=False
        )
    assert again.scored_now == 6 and again.summary == first.summary


def test_epochs_zero_and_other_bad_configs_fail_before_any_work(tmp_path, monkeypatch, capsys):
    """Drill: `--epochs 0` reported success with zero training steps; a bad --target or --experts was
    rejected only after capture and distillation (~4 GB left in acts/); --device cuda without CUDA,
    --dtype int8 and --out naming a file gave tracebacks, some after the whole run."""
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "c"))
    from labkit.moe import capture

    def no_capture(*a, **k):
        raise AssertionError("capture started")

    monkeypatch.setattr(capture, "capture_activations", no_capture)
    bad = {
        "epochs": (0, "epochs=0"),
        "target_reduction": (0.95, "cannot be reached"),
        "num_experts": (10**6, "exceeds the FFN width"),
        "train_tokens": (-5, "train_tokens=-5"),
        "lr": (float("nan"), "lr=nan"),
    }
    for field, (value, msg) in bad.items():
        with pytest.raises(MoEError, match=msg):
            pipeline.convert(replace(TINY, **{field: value}), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(models.DeviceError, match="no CUDA device"):
            pipeline.convert(replace(TINY, device="cuda"), progress=False)
    with pytest.raises(models.DeviceError, match="int8"):
        pipeline.convert(replace(TINY, dtype="int8"), progress=False)
    assert not (tmp_path / "c" / "moe").exists() or not list((tmp_path / "c" / "moe").rglob("*.npy"))
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for args, msg in (
        (["--out", str(a_file)], "is a file"),
        (["--out", str(tmp_path / "o"), "--epochs", "0"], "epochs=0"),
        (["--out", str(tmp_path / "o"), "--dtype", "int8"], "int8"),
        (["--out", str(tmp_path / "o"), "--target", "0.99"], "cannot be reached"),
    ):
        rc = cli_main(["moe", "convert", "--model", "tiny-llama", "--no-progress", *args])
        assert rc in (1, 2) and msg in capsys.readouterr().err
    assert cli_main(["eval", "run", "--task", "koen_parallel", "--path", str(KOEN), "--dtype", "int8"]) == 1
    assert "int8" in capsys.readouterr().err
    assert a_file.read_text() == "x"


def test_flagella_rejects_nan_and_negative_noise():
    """Drill: flagella_number(slope=nan) returned -9.2e18; population_experiment(tracking_noise=nan)
    returned NaN speeds; negative noise was accepted."""
    with pytest.raises(FlagellaError, match="slope"):
        flagella_number([2e-6], slope=float("nan"))
    with pytest.raises(FlagellaError, match="intercept"):
        flagella_number([2e-6], intercept=float("inf"))
    with pytest.raises(FlagellaError, match="noise"):
        flagella_number([2e-6], noise=-1.0)
    for kw in ({"tracking_noise": float("nan")}, {"tracking_noise": -1e-6}, {"motor_variability": -0.1}):
        with pytest.raises(FlagellaError, match=next(iter(kw))):
            population_experiment(ecoli(), 10, **kw)


def test_duplicate_json_keys_in_an_item_line_are_an_error(tmp_path):
    """Drill: duplicate JSON keys in an item line: the last one won silently."""
    line = json.loads(KOEN.read_text(encoding="utf-8").splitlines()[0])
    text = json.dumps(line, ensure_ascii=False)
    dup = text[:-1] + ', "label": 0}'
    (tmp_path / "items.jsonl").write_text(dup + "\n", encoding="utf-8")
    with pytest.raises(EvalDataError, match=r"items.jsonl:1: field 'label' appears twice"):
        load_task("koen_parallel", path=tmp_path / "items.jsonl")


# =========================================================================== unnamed failures
def test_disk_full_names_the_file_and_the_space(tmp_path, monkeypatch):
    """Drill: disk full gave a bare traceback."""
    from labkit.moe import capture
    from labkit.paths import atomic_write_text

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(storage.StorageError, match=r"cannot write .*report.json.*is full .*MB free"):
        atomic_write_text(tmp_path / "report.json", "x" * 10_000)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []  # no temporary left
    model, _ = models.tiny_llama("tiny-llama")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(
        storage.StorageError, match=r"not enough disk space for the activation capture .*needs about"
    ):
        capture.capture_activations(
            model, torch.zeros(2, 16, dtype=torch.long), tmp_path / "acts", progress=False
        )


def test_read_only_cache_and_out_are_named_before_work(tmp_path, monkeypatch, capsys):
    """Drill: a read-only --out / --cache / LABKIT_CACHE gave tracebacks, some after the whole run."""
    ro = Path("/sys/labkit-drill")  # sysfs: nothing can be created there, not even by root
    try:
        ro.mkdir()
        ro.rmdir()
        pytest.skip("/sys is writable here")
    except OSError:
        pass
    rc = cli_main(["moe", "convert", "--model", "tiny-llama", "--out", str(ro / "out"), "--no-progress"])
    assert rc == 1 and "not writable" in capsys.readouterr().err
    rc = cli_main(
        ["eval", "run", "--task", "koen_parallel", "--path", str(KOEN), "--model", "tiny-llama"]
        + ["--cache", str(ro)]
    )
    assert rc == 1 and "--cache" in capsys.readouterr().err
    monkeypatch.setenv("LABKIT_CACHE", str(ro / "cache"))
    rc = cli_main(["moe", "convert", "--model", "tiny-llama", "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc == 1 and "LABKIT_CACHE" in capsys.readouterr().err


# =========================================================================== kill -9 and concurrency
_CONVERT = """
import json, os, signal
from labkit.moe import pipeline, distill
cfg = pipeline.ConversionConfig(**json.loads({cfg!r}))
kill_at = {kill_at!r}
if kill_at is not None:
    real = distill.distill_layers
    def killing(*a, **k):
        def done(i):
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, on_layer_done=done, **k)
    distill.distill_layers = killing
model, tok, report = pipeline.convert(cfg, progress=False)
out = {{"from_cache": report["from_cache"], "resumed": report["resumed_layers"], "key": report["key"]}}
print(json.dumps(out))
"""


def _convert_code(kill_at=None) -> str:
    cfg = {k: v for k, v in asdict(TINY).items()}
    return _CONVERT.format(cfg=json.dumps(cfg), kill_at=kill_at)


def test_kill_9_mid_conversion_resumes_bit_identical_without_litter(tmp_path, monkeypatch):
    """Drill: kill -9 mid-conversion resumes without recomputing finished layers, ends bit-identical
    to an uninterrupted run, and leaves no capture temporaries behind."""
    cache = tmp_path / "cache"
    killed = _child(_convert_code(kill_at=2), cache, check=False)
    assert killed.returncode == -signal.SIGKILL
    out = json.loads(_child(_convert_code(), cache).stdout)
    assert out["resumed"] == [0, 1, 2] and not out["from_cache"]
    monkeypatch.setenv("LABKIT_CACHE", str(cache))
    model, _, report = pipeline.convert(TINY, progress=False)
    assert report["from_cache"] and report["key"] == out["key"]
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "fresh"))
    ref, _, _ = pipeline.convert(TINY, progress=False)
    ids = torch.randint(0, 256, (1, 17))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
    litter = [p for p in cache.rglob("*") if ".labkit-tmp-" in p.name]
    assert litter == []


def test_two_conversions_of_one_config_take_turns(tmp_path):
    """Drill: the second conversion's cleanup deleted the first's live capture files, or the first's
    final rmtree(acts) killed the second (`No such file …/acts/valid/x_004.npy`)."""
    cache = tmp_path / "cache"
    procs = [_spawn(_convert_code(), cache) for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    reports = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert sorted(r["from_cache"] for r in reports) == [False, True]  # one converted, one loaded it
    assert reports[0]["key"] == reports[1]["key"]


def test_capture_cleanup_spares_a_live_capture(tmp_path):
    """A capture removes the temporaries of dead processes only."""
    from labkit.moe import capture

    folder = tmp_path / "acts"
    folder.mkdir()
    dead = folder / f".x_000.npy.labkit-tmp-{_dead_pid()}-aaaaaa.npy"
    live = folder / f".x_000.npy.labkit-tmp-{os.getppid()}-bbbbbb.npy"
    dead.write_bytes(b"0")
    live.write_bytes(b"0")
    model, _ = models.tiny_llama("tiny-llama")
    capture.capture_activations(model, torch.zeros(2, 16, dtype=torch.long), folder, progress=False)
    assert not dead.exists() and live.exists()


_EVAL = """
import json, os, signal
from labkit.evals import runner
from labkit.evals.results import ResultStore
from labkit.models import tiny_llama
kill = {kill!r}
if kill:
    real_add = ResultStore.add
    def add(self, recs):
        real_add(self, recs)
        os.kill(os.getpid(), signal.SIGKILL)
    ResultStore.add = add
m, t = tiny_llama("tiny-llama", seed=1)
res = runner.run_task(
    m, t, "koen_parallel", model_id="tiny", path={path!r}, cache={cache!r}, progress=False, chunk_size=3
)
print(json.dumps({{"scored_now": res.scored_now, "summary": res.summary}}))
"""


def test_kill_9_mid_evaluation_resumes_without_rescoring(tmp_path):
    results = str(tmp_path / "results")
    killed = _child(_EVAL.format(kill=True, path=str(KOEN), cache=results), tmp_path / "c", check=False)
    assert killed.returncode == -signal.SIGKILL
    resumed = json.loads(
        _child(_EVAL.format(kill=False, path=str(KOEN), cache=results), tmp_path / "c").stdout
    )
    fresh = json.loads(
        _child(_EVAL.format(kill=False, path=str(KOEN), cache=str(tmp_path / "r2")), tmp_path / "c").stdout
    )
    assert resumed["scored_now"] == fresh["scored_now"] - 3
    assert resumed["summary"] == fresh["summary"]


def test_two_evaluations_on_one_results_folder_score_each_item_once(tmp_path):
    """Drill: two evaluations on one results folder each rewrote the whole file (394 items rescored)."""
    results = str(tmp_path / "results")
    code = _EVAL.format(kill=False, path=str(KOEN), cache=results)
    procs = [_spawn(code, tmp_path / "c") for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    got = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    n = got[0]["summary"]["n"]
    assert sorted(g["scored_now"] for g in got) == [0, n] and got[0]["summary"] == got[1]["summary"]


def test_lock_timeout_names_the_holder(tmp_path):
    holder = _spawn(
        f"""
        import time
        from labkit.storage import file_lock
        with file_lock({str(tmp_path / "x.lock")!r}, what="drill"):
            print("held", flush=True)
            time.sleep(30)
        """,
        tmp_path / "c",
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(storage.LockTimeoutError, match=rf"pid {holder.pid}"):
            with storage.file_lock(tmp_path / "x.lock", what="drill", timeout=0.5):
                pass
    finally:
        holder.kill()
        holder.wait()
    with storage.file_lock(tmp_path / "x.lock", what="drill", timeout=5):  # freed by the kill
        pass
