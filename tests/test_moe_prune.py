"""Static FFN pruning (the ablation's baseline): importance, exact removal, reduction accounting."""

from __future__ import annotations

import copy

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import data
from labkit.moe.analysis import capture_mlp_inputs
from labkit.moe.errors import MoEError
from labkit.moe.prune import neuron_importance, prune_ffn, prune_to_reduction

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dense():
    model, tok = tiny_llama("tiny-llama", seed=1)
    calib = data.token_blocks(tok, "train", 512, 128)
    return model, calib


def test_importance_is_the_mean_activation_magnitude(dense):
    model, calib = dense
    scores = neuron_importance(model, calib, batch_size=3)  # batches of 3 and 1 block
    assert len(scores) == model.config.num_hidden_layers
    x = capture_mlp_inputs(model, calib, [1])[1]
    mlp = model.model.layers[1].mlp
    with torch.no_grad():
        ref = (mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)).abs().mean(0)
    torch.testing.assert_close(scores[1], ref, rtol=1e-4, atol=1e-6)


def test_pruning_removes_exactly_the_dropped_neurons(dense):
    model, calib = dense
    pruned = copy.deepcopy(model)
    f = model.config.intermediate_size
    kept = [torch.arange(0, f, 2), torch.arange(f // 3)]
    prune_ffn(pruned, kept)
    x = torch.randn(5, model.config.hidden_size)
    mlp, small = model.model.layers[0].mlp, pruned.model.layers[0].mlp
    with torch.no_grad():
        h = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
        mask = torch.zeros(f)
        mask[kept[0]] = 1
        ref = mlp.down_proj(h * mask)
        torch.testing.assert_close(small(x), ref, rtol=1e-5, atol=1e-6)
    assert pruned.model.layers[1].mlp.down_proj.weight.shape == (model.config.hidden_size, f // 3)
    with torch.no_grad():
        pruned(calib[:1])  # the whole model still runs


def test_prune_to_reduction_reaches_the_target_with_the_least_active_neurons(dense):
    model, calib = dense
    pruned = copy.deepcopy(model)
    res = prune_to_reduction(pruned, calib, 0.2)
    dense_params = sum(p.numel() for p in model.parameters())
    assert res.params_dense == dense_params
    assert res.params_pruned == sum(p.numel() for p in pruned.parameters())
    d, layers = model.config.hidden_size, model.config.num_hidden_layers
    assert 0.2 <= res.reduction < 0.2 + 3 * d * layers / dense_params  # the fewest neurons that reach it
    widths = {k.numel() for k in res.kept}
    assert len(widths) == 1  # uniform over layers
    scores = neuron_importance(model, calib)
    for s, k in zip(scores, res.kept, strict=True):
        dropped = torch.ones_like(s, dtype=torch.bool)
        dropped[k] = False
        assert s[dropped].max() <= s[k].min()  # the least active ones went


def test_bad_inputs_name_field_and_value(dense):
    model, calib = dense
    with pytest.raises(MoEError, match="target_reduction=0.99"):
        prune_to_reduction(copy.deepcopy(model), calib, 0.99)
    with pytest.raises(MoEError, match="target_reduction=-0.1"):
        prune_to_reduction(copy.deepcopy(model), calib, -0.1)
    with pytest.raises(MoEError, match="kept has 1 entries"):
        prune_ffn(copy.deepcopy(model), [torch.arange(3)])
    with pytest.raises(MoEError, match=r"kept\[1\]"):
        prune_ffn(copy.deepcopy(model), [torch.arange(3), torch.tensor([0, 0])])
    moefied = moe.moefy(copy.deepcopy(model), num_experts=4)
    with pytest.raises(MoEError, match="not a dense SwiGLU"):
        neuron_importance(moefied, calib)
