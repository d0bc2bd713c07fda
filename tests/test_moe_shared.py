"""Shared (always-on) experts, fine-grained activation-clustered experts, sensitivity-aware stage 2."""

from __future__ import annotations

import copy

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import capture, data, distill, io, routing_search
from labkit.moe.backends import set_backend
from labkit.moe.errors import MoEError

pytestmark = pytest.mark.usefixtures("one_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.fixture(scope="module")
def dense():
    model, tok = tiny_llama("tiny-llama-deep", seed=4)
    calib = data.token_blocks(tok, "train", 1024, 128)
    return model, tok, calib


def _moefied(dense, **kw):
    model, _, calib = dense
    args = dict(num_experts=6, method="activation", calibration=calib, shared_fraction=0.25) | kw
    return moe.moefy(copy.deepcopy(model), **args)


def test_shared_expert_keeps_the_dense_function_and_counts_as_always_active(dense):
    model, _, calib = dense
    moe_model = _moefied(dense)
    block = moe_model.model.layers[2].mlp
    f = model.config.intermediate_size
    assert block.shared_size == round(0.25 * f) and int(block.expert_sizes.sum()) == f - block.shared_size
    used = torch.cat([block.shared_index, block.neuron_index[block.neuron_index >= 0]])
    assert sorted(used.tolist()) == list(range(f))  # every neuron exactly once
    # the shared expert holds the most active neurons: its mean contribution beats the routed ones'
    x = torch.randn(64, block.hidden_size)
    contrib = moe.construct.neuron_contributions(model.model.layers[2].mlp, x).mean(0)
    assert contrib[block.shared_index].mean() > contrib[block.neuron_index[block.neuron_index >= 0]].mean()
    with torch.no_grad():
        ids = calib[:2]
        ref = model(ids).logits
        assert _rel(moe_model(ids).logits, ref) < 1e-5  # all experts + shared = dense
        moe.set_policy(moe_model, "top1")
        sparse = moe_model(ids).logits
    assert _rel(sparse, ref) > 1e-3  # routing really drops experts
    acc = moe.activated_parameters(moe_model, use_stats=False)
    layer = acc.per_layer[2]
    d = block.hidden_size
    routed_one = float(block.expert_sizes.float().mean()) * 3 * d
    assert layer["ffn_activated"] == pytest.approx(block.shared_size * 3 * d + routed_one)


@pytest.mark.parametrize("backend", ["eager", "grouped_mm", "cpu"])
def test_backends_agree_with_a_shared_expert(dense, backend):
    moe_model = _moefied(dense, num_experts=5)
    block = moe_model.model.layers[1].mlp
    x = torch.randn(11, block.hidden_size)
    block.set_policy("top2")
    with torch.no_grad():
        set_backend(block, "eager")
        ref = block(x)
        one = block(x[:1])
        set_backend(block, backend)
        assert _rel(block(x), ref) < 1e-5
        assert _rel(block(x[:1]), one) < 1e-5  # the decode path adds the shared expert too


def test_save_load_roundtrip_and_mixtral_refusal(dense, tmp_path):
    moe_model = _moefied(dense)
    moe.set_policy(moe_model, "top2")
    _, tok, calib = dense
    io.save_moe(moe_model, tmp_path / "m", tok)
    back, _ = io.load_moe(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(back(calib[:1]).logits, moe_model(calib[:1]).logits)
    assert back.model.layers[0].mlp.shared_size == moe_model.model.layers[0].mlp.shared_size
    with pytest.raises(MoEError, match="shared"):
        io.export_mixtral(moe_model, tmp_path / "mx")


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"shared_fraction": 1.0}, "shared_fraction=1.0"),
        ({"shared_fraction": -0.1}, "shared_fraction=-0.1"),
        ({"num_experts": 10**6}, "num_experts=1000000"),
        ({"calibration": None}, "calibration"),
    ],
)
def test_bad_shared_settings_are_refused(dense, kw, match):
    with pytest.raises(MoEError, match=match):
        _moefied(dense, **kw)


def test_stage1_trains_the_shared_expert_and_keeps_all_experts_close(dense, tmp_path):
    model, tok, calib = dense
    tr = capture.capture_activations(model, calib, tmp_path / "tr", batch_size=4, progress=False)
    moe_model = _moefied(dense)
    before = moe_model.model.layers[0].mlp.shared_w1.detach().clone()
    n = moe_model.model.layers[0].mlp.num_experts
    cfg = distill.DistillConfig(batch_tokens=128, lr=1e-3, epochs=4, train_k=(n // 2, n))
    res = distill.distill_layers(moe_model, tr, tmp_path / "ck", config=cfg, progress=False)
    assert not torch.equal(moe_model.model.layers[0].mlp.shared_w1, before)
    assert sum(r.final_loss for r in res) < 0.9 * sum(r.initial_loss for r in res)
    # k = N is trained too, so "all experts" still reproduces the dense FFN closely
    x = tr.x(0).float()
    with torch.no_grad():
        err = _rel(moe_model.model.layers[0].mlp(x), model.model.layers[0].mlp(x))
    assert err**2 < 0.05  # squared relative error, the metric stage 2 uses


def test_sensitivity_weights_the_search(dense, tmp_path):
    model, tok, calib = dense
    valid = data.token_blocks(tok, "valid", 512, 128)
    va = capture.capture_activations(
        model, valid, tmp_path / "va", outputs=True, store_dtype="float32", progress=False
    )
    moe_model = _moefied(dense)
    plain = routing_search.search_policies(moe_model, va, target_reduction=0.1)
    weighted = routing_search.search_policies(moe_model, va, target_reduction=0.1, sensitivity_blocks=valid)
    sens = weighted.extra["sensitivity"]
    assert len(sens) == 6 and all(s["weight"] >= 0 for s in sens)
    assert "sensitivity" not in plain.extra
    # the weighted front's error is the predicted NLL increase: Σ w·e of its own choice
    table = {(c["layer"], c["policy"]): c["rel_error"] for layer in weighted.candidates for c in layer}
    pairs = enumerate(zip(sens, weighted.chosen, strict=True))
    pred = sum(s["weight"] * table[(i, p)] for i, (s, p) in pairs)
    assert weighted.chosen_error == pytest.approx(pred)
    with pytest.raises(MoEError, match="weights"):
        routing_search.allocate([[]], [1], 0, 1, 0.1, weights=[-1.0])


def test_stage3_end_to_end_lowers_the_kl_to_the_teacher(dense):
    from labkit.moe import finetune

    model, tok, calib = dense
    student = _moefied(dense)
    moe.set_policy(student, "top2")
    frozen = student.model.embed_tokens.weight.detach().clone()
    res = finetune.end_to_end(student, model, calib, lr=3e-3, batch_size=2, epochs=3)
    assert res.steps == 12 and res.tokens == 3 * calib.numel()
    first, last = sum(res.losses[:4]) / 4, sum(res.losses[-4:]) / 4
    assert last < 0.8 * first  # the KL to the dense model falls
    assert torch.equal(student.model.embed_tokens.weight, frozen)  # only MoE weights train
    assert all(p.requires_grad for p in student.model.embed_tokens.parameters())  # flags restored
    with pytest.raises(MoEError, match="lr=0"):
        finetune.end_to_end(student, model, calib, lr=0)


def test_latency_table_annotates_and_can_drive_the_search(dense, tmp_path):
    model, tok, _ = dense
    valid = data.token_blocks(tok, "valid", 512, 128)
    va = capture.capture_activations(
        model, valid, tmp_path / "va", outputs=True, store_dtype="float32", progress=False
    )
    moe_model = _moefied(dense)
    res = routing_search.search_policies(moe_model, va, target_reduction=0.1, latency=True)
    lat = res.extra["latency_table_s"]
    assert set(lat) >= {"1", "all"} and all(v > 0 for v in lat.values())
    assert all("latency_ms" in p for p in res.front)
    by_lat = routing_search.search_policies(moe_model, va, target_reduction=0.1, cost="latency")
    lat_ms = [p["latency_ms"] for p in by_lat.front]
    errs = [p["error"] for p in by_lat.front]
    assert lat_ms == sorted(lat_ms) and errs == sorted(errs, reverse=True)  # a front in time
    # on this tiny block routing can cost more than it saves: the target is met iff a point has it
    assert by_lat.target_met == any(p["reduction"] >= 0.1 - 1e-12 for p in by_lat.front)
    with pytest.raises(MoEError, match="cost="):
        routing_search.allocate([[]], [1], 0, 1, 0.1, cost="watts")


def test_the_floor_keeps_every_layer_at_min_k_or_more(dense, tmp_path):
    model, tok, _ = dense
    valid = data.token_blocks(tok, "valid", 512, 128)
    va = capture.capture_activations(
        model, valid, tmp_path / "va", outputs=True, store_dtype="float32", progress=False
    )
    moe_model = _moefied(dense)
    n = routing_search.moe_blocks(moe_model)[0].num_experts
    free = routing_search.search_policies(moe_model, va, target_reduction=0.1)
    mean_k = {(c["layer"], c["policy"]): c["mean_k"] for layer in free.candidates for c in layer}
    lowest = min(mean_k[(i, p)] for i, p in enumerate(free.chosen) if p != "all")
    floor = lowest + 0.5  # above the free search's sparsest layer
    floored = routing_search.search_policies(moe_model, va, target_reduction=0.1, min_k=floor)
    assert floored.chosen != free.chosen
    assert all(p == "all" or mean_k[(i, p)] >= floor for i, p in enumerate(floored.chosen))
    assert floored.extra["min_k"] == floor
    assert floored.candidates == free.candidates  # every candidate is kept in the record
    for bad in (0, n + 1, "2"):
        with pytest.raises(MoEError, match="min_k="):
            routing_search.search_policies(moe_model, va, min_k=bad)


@pytest.mark.parametrize("value", [-0.1, 1.5, True])
def test_a_bad_min_k_fraction_is_refused(value):
    from labkit.moe.pipeline import ConversionConfig

    with pytest.raises(MoEError, match="min_k_fraction="):
        ConversionConfig(model="tiny-llama", num_experts=4, min_k_fraction=value).validate()
