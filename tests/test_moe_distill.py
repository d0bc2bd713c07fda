"""Stage 1 (streamed capture, layer-wise distillation, resume) and stage 2 (routing search)."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import capture, data, distill, routing_search
from labkit.moe.errors import CheckpointMismatchError

CFG = distill.DistillConfig(batch_tokens=256, lr=1e-3, epochs=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    model, tok = tiny_llama("tiny-llama-deep", seed=4)
    root = tmp_path_factory.mktemp("acts")
    train = data.token_blocks(tok, "train", 2048, 128)
    valid = data.token_blocks(tok, "valid", 512, 128)
    tr = capture.capture_activations(model, train, root / "train", batch_size=4, progress=False)
    va = capture.capture_activations(
        model, valid, root / "valid", outputs=True, store_dtype="float32", progress=False
    )
    return model, tr, va


def test_capture_matches_mlp_io(stores):
    model, tr, va = stores
    assert tr.num_tokens == 2048 and tr.num_layers == 6 and not tr.has_outputs
    x, y = va.x(3), va.y(3)
    with torch.no_grad():
        assert torch.allclose(model.model.layers[3].mlp(x), y, atol=1e-5)
    # bfloat16 storage: inputs within bf16 rounding of float32
    assert capture.ActivationStore.open(tr.folder) == tr
    with pytest.raises(FileNotFoundError):
        tr.y(0)


def test_distillation_reduces_loss_and_resumes_identically(stores, tmp_path):
    dense, tr, _ = stores
    full = moe.moefy(copy.deepcopy(dense), num_experts=4)
    part = copy.deepcopy(full)
    results = distill.distill_layers(full, tr, tmp_path / "a", config=CFG, progress=False)
    assert len(results) == 6
    assert all(r.final_loss < r.initial_loss for r in results)
    # no packed copies of finished layers' weights stay behind (memory while later layers train)
    blocks = [b for b in full.modules() if isinstance(b, moe.MoEBlock)]
    assert all(b._caches.get("cpu") is None or b._caches["cpu"].pack is None for b in blocks)

    class Interrupt(Exception):
        pass

    def stop_after_two(layer: int) -> None:
        if layer == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        distill.distill_layers(
            part, tr, tmp_path / "b", config=CFG, progress=False, on_layer_done=stop_after_two
        )
    assert sorted(p.name for p in (tmp_path / "b").glob("*.safetensors")) == [
        "layer_000.safetensors",
        "layer_001.safetensors",
    ]
    fresh = moe.moefy(copy.deepcopy(dense), num_experts=4)  # a new process: nothing in memory
    resumed = distill.distill_layers(fresh, tr, tmp_path / "b", config=CFG, progress=False)
    assert [r.resumed for r in resumed] == [True, True, False, False, False, False]
    for a, b in zip(full.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_checkpoint_of_another_config_is_refused(stores, tmp_path):
    dense, tr, _ = stores
    model = moe.moefy(copy.deepcopy(dense), num_experts=4)
    with pytest.raises(_Stop):
        distill.distill_layers(model, tr, tmp_path, config=CFG, progress=False, on_layer_done=_stop_first)
    other = moe.moefy(copy.deepcopy(dense), num_experts=4)
    with pytest.raises(CheckpointMismatchError, match="config"):
        distill.distill_layers(other, tr, tmp_path, config=distill.DistillConfig(lr=5e-4), progress=False)
    eight = moe.moefy(copy.deepcopy(dense), num_experts=8)
    with pytest.raises(CheckpointMismatchError):
        distill.distill_layers(eight, tr, tmp_path, config=CFG, progress=False)
    meta_path = next(tmp_path.glob("*.json"))
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "layout"}))  # written by layout 1
    same = moe.moefy(copy.deepcopy(dense), num_experts=4)
    with pytest.raises(CheckpointMismatchError, match="weight layout 1"):
        distill.distill_layers(same, tr, tmp_path, config=CFG, progress=False)


def _stop_first(layer: int) -> None:
    raise _Stop


class _Stop(Exception):
    pass


def test_routing_search_reaches_target(stores, tmp_path):
    dense, tr, va = stores
    model = moe.moefy(copy.deepcopy(dense), num_experts=4, method="kmeans")
    distill.distill_layers(model, tr, tmp_path, config=CFG, progress=False)
    res = routing_search.search_policies(model, va, target_reduction=0.15)
    assert res.target_met and res.chosen_reduction >= 0.15
    assert len(res.chosen) == 6 and len(res.profiles) == 6
    assert sum(res.profiles[0]["p1_hist"]) == 512
    red = [p["reduction"] for p in res.front]
    err = [p["error"] for p in res.front]
    assert red == sorted(red, reverse=True) and err == sorted(err, reverse=True)  # a true front
    moe.set_policy(model, res.chosen)
    moe.record_routing(model)
    with torch.no_grad():
        for i, layer in enumerate(model.model.layers):
            layer.mlp(va.x(i))
    measured = moe.activated_parameters(model).reduction
    assert measured == pytest.approx(res.chosen_reduction, abs=1e-6)  # same tokens → same measurement
