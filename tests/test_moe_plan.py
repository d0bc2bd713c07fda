"""Allocate, then train: a first stage-2 search plans each layer's k, stage 1 trains around it."""

from __future__ import annotations

import json

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import capture, data, distill, pipeline, routing_search
from labkit.moe.errors import MoEError

pytestmark = pytest.mark.usefixtures("one_thread")


def _search(chosen: list[str], mean_k: dict[str, float]) -> dict:
    cands = [[{"policy": p, "mean_k": k} for p, k in mean_k.items()] for _ in chosen]
    return {"chosen": chosen, "candidates": cands}


def test_plan_ranges_centre_on_the_chosen_k_and_respect_n_and_the_floor():
    res = _search(
        ["top10", "all", "top2", "switch(0.4,3,6)"],
        {"top10": 10, "top2": 2, "all": 48, "switch(0.4,3,6)": 4.6},
    )
    ranges = pipeline.plan_train_k(res, 48, band=1 / 8, min_k=8)
    assert ranges[0] == (8, 16)  # 10 ± 6, cut at the floor 8
    assert ranges[1] == (42, 48)  # "all": N, cut at N
    assert ranges[2] == (8, 8)  # planned below the floor: trains at the floor
    assert ranges[3] == (8, 11)  # mean k 4.6 → 5 ± 6
    assert pipeline.plan_train_k(res, 48, band=1 / 8)[2] == (1, 8)
    with pytest.raises(MoEError, match="band="):
        pipeline.plan_train_k(res, 48, band=0)
    with pytest.raises(MoEError, match="'top3' is not among"):
        pipeline.plan_train_k(_search(["top3"], {"top2": 2}), 48)


def test_layer_ranges_and_the_all_experts_share_are_trained_and_checked():
    model, tok = tiny_llama("tiny-llama-deep", seed=4)
    calib = data.token_blocks(tok, "train", 512, 128)
    moe.moefy(model, num_experts=4, method="activation", calibration=calib)
    block = moe.moe_blocks(model)[0]
    x = torch.randn(256, block.hidden_size)
    with torch.no_grad():
        y = block(x)
    seen: list[int] = []
    orig = block.forward

    def spy(inp, policy=None):
        if policy is not None and torch.is_grad_enabled():
            seen.append(policy.k)
        return orig(inp, policy=policy)

    block.forward = spy  # type: ignore[method-assign]
    cfg = distill.DistillConfig(batch_tokens=8, layer_k=((1, 2), (3, 4)), all_k_prob=0.25)
    distill.train_block(block, x, y, cfg, layer=0)
    assert set(seen) <= {1, 2, 4} and 4 in seen and {1, 2} <= set(seen)  # range, plus all N
    for bad, match in (
        (dict(all_k_prob=1.5), "all_k_prob="),
        (dict(layer_k=((1, 2, 3),)), r"layer_k\[0\]="),
    ):
        with pytest.raises(MoEError, match=match):
            distill.DistillConfig(**bad)
    with pytest.raises(MoEError, match=r"layer_k\[0\]=\(3, 9\)"):
        distill.train_block(block, x, y, distill.DistillConfig(layer_k=((3, 9),)), layer=0)


def test_a_search_can_reuse_measured_sensitivities(tmp_path, monkeypatch):
    model, tok = tiny_llama("tiny-llama-deep", seed=4)
    calib = data.token_blocks(tok, "train", 1024, 128)
    valid = data.token_blocks(tok, "valid", 512, 128)
    va = capture.capture_activations(
        model, valid, tmp_path / "va", outputs=True, store_dtype="float32", progress=False
    )
    moe.moefy(model, num_experts=6, method="activation", calibration=calib, shared_fraction=0.25)
    measured = routing_search.search_policies(model, va, target_reduction=0.1, sensitivity_blocks=valid)
    sens = measured.extra["sensitivity"]

    def no_eval(*a, **k):
        raise AssertionError("a reused sensitivity must not be measured again")

    monkeypatch.setattr(routing_search, "layer_sensitivity", no_eval)
    reused = routing_search.search_policies(model, va, target_reduction=0.1, sensitivity=sens)
    assert reused.chosen == measured.chosen and reused.front == measured.front
    assert reused.extra["sensitivity_reused"] and "sensitivity_reused" not in measured.extra
    with pytest.raises(MoEError, match="sensitivity must be 6 rows"):
        routing_search.search_policies(model, va, sensitivity=sens[:2])


TINY_PLAN = pipeline.ConversionConfig(
    model="tiny-llama-deep",
    num_experts=8,
    method="activation",
    shared_fraction=0.25,
    train_tokens=1024,
    valid_tokens=256,
    seq_len=128,
    batch_tokens=256,
    target_reduction=0.1,
    front_evals=2,
    sensitivity=True,
    allocate_first=True,
)


def test_conversion_allocates_first_and_a_resumed_run_reuses_the_plan(tmp_path, monkeypatch):
    out = tmp_path / "conv"
    _, _, report = pipeline.convert(TINY_PLAN, progress=False, folder=out, keep_checkpoints=True)
    plan = report["plan"]
    n_layers = len(report["layers"])
    assert len(plan["train_k"]) == n_layers and len(plan["chosen"]) == n_layers
    # each layer trains around its planned k (cut at N = 8 and the floor 1)
    planned = {
        "chosen": ["p"] * n_layers,
        "candidates": [[{"policy": "p", "mean_k": k}] for k in plan["planned_k"]],
    }
    assert plan["train_k"] == [list(r) for r in pipeline.plan_train_k(planned, 8)]
    assert all(lo <= round(k) <= hi for (lo, hi), k in zip(plan["train_k"], plan["planned_k"], strict=True))
    assert "plan" in report["stages_s"]
    # the final search reuses the plan's sensitivities instead of measuring them again
    assert report["search"]["extra"]["sensitivity_reused"]
    assert report["search"]["extra"]["sensitivity"] == plan["sensitivity"]
    kept = json.loads((out / "plan.json").read_text())
    assert kept["key"] == TINY_PLAN.key() and kept["train_k"] == plan["train_k"]

    def no_search(*a, **k):
        raise AssertionError("a kept plan must not be searched again")

    (out / "report.json").unlink()  # resume: layers and plan are on disk
    real = routing_search.search_policies
    calls = []

    def counted(*a, **k):
        calls.append(k.get("sensitivity") is not None)
        return real(*a, **k)

    monkeypatch.setattr(routing_search, "search_policies", counted)
    _, _, again = pipeline.convert(TINY_PLAN, progress=False, folder=out, use_cache=False)
    assert calls == [True]  # only the final search ran, with the kept plan's sensitivities
    assert again["chosen_policy"] == report["chosen_policy"]
    assert again["resumed_layers"] == list(range(n_layers))


def test_allocate_first_is_a_config_field_and_changes_the_key():
    plain = pipeline.ConversionConfig(**{**TINY_PLAN.__dict__, "allocate_first": False})
    assert plain.key() != TINY_PLAN.key()


def test_sensitivity_probes_rerun_only_the_suffix_and_match_a_full_forward():
    import math

    from labkit.moe.evaluate import perplexity
    from labkit.moe.policies import parse_policy

    model, tok = tiny_llama("tiny-llama-deep", seed=4)
    calib = data.token_blocks(tok, "train", 1024, 128)
    valid = data.token_blocks(tok, "valid", 512, 128)
    moe.moefy(model, num_experts=6, method="activation", calibration=calib, shared_fraction=0.25)
    run = routing_search._SuffixProbe(model, valid)
    moe.set_policy(model, "all")
    assert run.base == math.log(perplexity(model, valid))
    for layer in (0, 3, 5):
        moe.set_policy(model, "all")
        moe.moe_blocks(model)[layer].policy = parse_policy("top2")
        full = math.log(perplexity(model, valid))
        assert run.mean_nll(layer, parse_policy("top2")) == pytest.approx(full, rel=1e-12, abs=1e-12)
        assert moe.moe_blocks(model)[layer].policy.spec() == "top2"  # the probe restored it
