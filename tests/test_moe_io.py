"""Persistence (save/load, Mixtral export), the conversion pipeline with its cache, and the CLI."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import io, pipeline

pytestmark = pytest.mark.usefixtures("one_thread")


def _routed_model(weighting: str = "unit"):
    model, tok = tiny_llama("tiny-llama", seed=5)
    moe.moefy(model, num_experts=4, method="kmeans")
    gen = torch.Generator().manual_seed(0)
    for b in moe.moe_blocks(model):
        b.router.weight.data = torch.randn(b.router.weight.shape, generator=gen)
        b.set_weighting(weighting)
    return model, tok


def test_save_load_gives_identical_logits(tmp_path):
    model, tok = _routed_model()
    moe.set_policy(model, ["top2", "switch0.4:1-3"])
    ids = torch.randint(0, 256, (2, 13))
    with torch.no_grad():
        ref = model(ids).logits
    io.save_moe(model, tmp_path / "m", tok)
    loaded, tok2 = io.load_moe(tmp_path / "m")
    assert [b.policy.spec() for b in moe.moe_blocks(loaded)] == ["top2", "switch0.4:1-3"]
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, ref)
    assert tok2 is not None and tok2("abc")["input_ids"] == tok("abc")["input_ids"]
    assert not list(tmp_path.glob(".m-*"))  # no temporary folder left behind


def test_load_reads_format_1_weight_layout(tmp_path):
    """A labkit-moe/1 checkpoint (w1 stored [N, 2m, d]) loads into the current layout, same logits."""
    from safetensors.torch import load_file, save_file

    model, tok = _routed_model()
    moe.set_policy(model, "top2")
    ids = torch.randint(0, 256, (1, 9))
    with torch.no_grad():
        ref = model(ids).logits
    folder = io.save_moe(model, tmp_path / "m", tok)
    (folder / "labkit_checksums.json").unlink()  # format-1 folders were written before checksums
    state = load_file(str(folder / "model.safetensors"))
    old = {k: (v.transpose(1, 2).contiguous() if k.endswith(".mlp.w1") else v) for k, v in state.items()}
    save_file(old, str(folder / "model.safetensors"))
    meta = json.loads((folder / "labkit_moe.json").read_text())
    (folder / "labkit_moe.json").write_text(json.dumps({**meta, "format": "labkit-moe/1"}))
    loaded, _ = io.load_moe(folder)
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, ref)
    (folder / "labkit_moe.json").write_text(json.dumps({**meta, "format": "labkit-moe/9"}))
    with pytest.raises(moe.CheckpointMismatchError, match="labkit-moe/9"):
        io.load_moe(folder)


def test_load_refuses_foreign_or_corrupt_folders(tmp_path):
    with pytest.raises(moe.CheckpointMismatchError, match="not a labkit MoE checkpoint"):
        io.load_moe(tmp_path)
    model, tok = _routed_model()
    io.save_moe(model, tmp_path / "m", tok)
    meta = json.loads((tmp_path / "m" / "labkit_moe.json").read_text())
    meta["layers"][0]["expert_sizes"] = [10, 10, 10, 10]
    (tmp_path / "m" / "labkit_moe.json").write_text(json.dumps(meta))
    with pytest.raises(moe.CheckpointMismatchError):
        io.load_moe(tmp_path / "m")


def test_mixtral_export_matches_transformers_logits(tmp_path):
    from transformers import MixtralForCausalLM

    ids = torch.randint(0, 256, (2, 11))
    model, tok = _routed_model("softmax")  # the weighting Mixtral implements: exact
    moe.set_policy(model, "top2")
    io.export_mixtral(model, tmp_path / "mx", tok)
    mx = MixtralForCausalLM.from_pretrained(tmp_path / "mx")
    with torch.no_grad():
        ref, out = model(ids).logits, mx(ids).logits
    assert float((out - ref).norm() / ref.norm()) < 1e-5
    # labkit's default unit weights: same experts and selections, but Mixtral renormalises the
    # weights, so the logits differ (the documented normalisation difference)
    unit, _ = _routed_model("unit")
    moe.set_policy(unit, "top2")
    io.export_mixtral(unit, tmp_path / "mx2")
    mx2 = MixtralForCausalLM.from_pretrained(tmp_path / "mx2")
    with torch.no_grad():
        assert float((mx2(ids).logits - unit(ids).logits).norm() / unit(ids).logits.norm()) > 1e-4
    moe.set_policy(model, ["top1", "top2"])
    with pytest.raises(moe.MoEError, match="one top-k"):
        io.export_mixtral(model, tmp_path / "bad")
    odd, _ = tiny_llama("tiny-llama-odd")
    moe.moefy(odd, num_experts=4)
    moe.set_policy(odd, "top2")
    with pytest.raises(moe.MoEError, match="equal-size"):
        io.export_mixtral(odd, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


TINY = pipeline.ConversionConfig(
    model="tiny-llama-deep",
    num_experts=4,
    train_tokens=1024,
    valid_tokens=256,
    seq_len=128,
    batch_tokens=256,
    target_reduction=0.1,
    front_evals=2,
    train_k=(2, 3),  # probed at top-2, where 4 steps of training have room to show
)


def test_convert_caches_by_config_and_reports(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    model, tok, report = pipeline.convert(TINY, progress=False)
    assert not report["from_cache"] and report["tokens"]["train"] == 1024
    assert report["reduction"] >= 0.1 - 1e-9 and len(report["chosen_policy"]) == 6
    assert all(layer["final_loss"] < layer["initial_loss"] for layer in report["layers"])
    stages = ["load", "capture", "moefy", "distill", "search", "front_eval"]
    assert list(report["stages_s"]) == stages and list(report["peak_rss_mb_by_stage"]) == stages
    peaks = list(report["peak_rss_mb_by_stage"].values())
    assert peaks == sorted(peaks) and peaks[-1] <= report["peak_rss_mb"]  # a running maximum
    folder = pipeline.conversion_dir(TINY)
    assert (folder / "report.json").is_file() and not (folder / "acts").exists()
    assert not (folder / "checkpoints").exists()  # removed once the model is saved
    again, _, rep2 = pipeline.load_or_convert(TINY, progress=False)
    assert rep2["from_cache"] and rep2["key"] == report["key"]
    ids = torch.randint(0, 256, (1, 9))
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)
    other = pipeline.ConversionConfig(**{**TINY.__dict__, "seed": 1})
    assert other.key() != TINY.key()


def test_convert_into_a_folder_runs_from_scratch_then_resumes(tmp_path, monkeypatch):
    """``folder=``: the run works there, not in the cache; an empty folder is a run from scratch,
    a rerun with ``use_cache=False`` resumes every layer from its checkpoint (same weights)."""
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    model, _, report = pipeline.convert(TINY, progress=False, folder=out, keep_checkpoints=True)
    assert report["resumed_layers"] == [] and (out / "report.json").is_file()
    assert (out / "checkpoints").is_dir()
    assert not pipeline.conversion_dir(TINY).exists()
    again, _, rep2 = pipeline.convert(TINY, progress=False, use_cache=False, folder=out)
    assert rep2["resumed_layers"] == list(range(6)) and not rep2["from_cache"]
    ids = torch.randint(0, 256, (1, 9))
    with torch.no_grad():
        assert torch.equal(again(ids).logits, model(ids).logits)


def test_convert_refuses_bad_config(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path))
    with pytest.raises(moe.TokenBudgetError, match="exceeds"):
        pipeline.convert(
            pipeline.ConversionConfig(**{**TINY.__dict__, "train_tokens": 10**8}), progress=False
        )
    with pytest.raises(moe.UnknownMethodError):
        pipeline.convert(pipeline.ConversionConfig(**{**TINY.__dict__, "method": "magic"}), progress=False)
    with pytest.raises(moe.MoEError):
        pipeline.load_or_convert(42)


def test_cli_convert(tmp_path, monkeypatch, capsys):
    from labkit.moe import cli

    monkeypatch.setenv("LABKIT_CACHE", str(tmp_path / "cache"))
    parser = argparse.ArgumentParser(prog="labkit")
    cli.register(parser.add_subparsers(dest="group"))
    args = parser.parse_args(
        [
            "moe",
            "convert",
            "--model",
            "tiny-llama-deep",
            "--out",
            str(tmp_path / "out"),
            "--profile",
            "smoke",
            "--experts",
            "4",
            "--tokens",
            "1024",
            "--seq-len",
            "128",
            "--no-progress",
            "--mixtral",
            str(tmp_path / "mx"),
        ]
    )
    monkeypatch.setattr(pipeline.ConversionConfig, "from_profile", classmethod(lambda cls, p=None, **k: TINY))
    assert args.func(args) == 0
    assert "fewer activated parameters" in capsys.readouterr().out
    loaded, _ = io.load_moe(tmp_path / "out")
    assert len(moe.moe_blocks(loaded)) == 6 and (tmp_path / "mx" / "config.json").is_file()
    bad = parser.parse_args(
        [
            "moe",
            "convert",
            "--model",
            "tiny-llama-deep",
            "--out",
            str(tmp_path / "o2"),
            "--tokens",
            str(10**8),
            "--no-progress",
        ]
    )
    assert bad.func(bad) == 2
    assert "exceeds" in capsys.readouterr().err


def test_save_load_with_tied_embeddings(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).eval()
    moe.moefy(model, num_experts=3)
    moe.set_policy(model, "top2")
    ids = torch.randint(0, 300, (1, 7))
    io.save_moe(model, tmp_path / "tied")
    loaded, _ = io.load_moe(tmp_path / "tied")
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model(ids).logits)
