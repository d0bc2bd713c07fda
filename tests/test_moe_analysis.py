"""Evaluation helpers (perplexity, multiple choice, latency) and the routability analysis."""

from __future__ import annotations

import math

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import data, evaluate
from labkit.moe.analysis import capture_mlp_inputs, expert_concentration

pytestmark = pytest.mark.usefixtures("one_thread")


def test_perplexity_matches_mean_nll():
    model, tok = tiny_llama("tiny-llama")
    blocks = data.token_blocks(tok, "valid", 256, 64)
    with torch.no_grad():
        out = model(blocks, labels=blocks)
    assert evaluate.perplexity(model, blocks, batch_size=3) == pytest.approx(
        math.exp(float(out.loss)), rel=1e-5
    )
    # the LM head in chunks that straddle sequence boundaries gives the same number
    assert evaluate.perplexity(model, blocks, batch_size=2, head_chunk=37) == pytest.approx(
        math.exp(float(out.loss)), rel=1e-5
    )


def test_mc_accuracy_prefers_a_model_that_knows_the_answer():
    model, tok = tiny_llama("tiny-llama")
    items = data.continuation_choices(tok, num_items=12, context_tokens=16, continuation_tokens=4)
    acc = evaluate.mc_accuracy(model, items)
    assert 0.0 <= acc <= 1.0

    class Oracle(torch.nn.Module):
        """Puts all probability on the true next token of each item's right answer."""

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.answers = {tuple(it.context.tolist() + it.choices[it.answer].tolist()) for it in items}

        def forward(self, input_ids, use_cache=False):
            logits = torch.zeros(*input_ids.shape, 259)
            for b, row in enumerate(input_ids.tolist()):
                if tuple(row) in self.answers:
                    logits[b, :-1].scatter_(-1, input_ids[b, 1:, None], 50.0)
            return type("Out", (), {"logits": logits})()

    assert evaluate.mc_accuracy(Oracle(), items) == 1.0


def test_latency_reports_positive_times():
    model, _ = tiny_llama("tiny-llama")
    moe.moefy(model, num_experts=4)
    moe.set_policy(model, "top2")
    lat = evaluate.latency(model, prefill_tokens=40, decode_tokens=3, repeats=1)
    assert lat["prefill_s"] > 0 and lat["decode_s_per_token"] > 0


def test_expert_concentration_is_zero_with_all_experts_and_decreasing():
    model, tok = tiny_llama("tiny-llama")
    ids = data.token_blocks(tok, "train", 128, 64)
    x = capture_mlp_inputs(model, ids, [1])[1]
    assert x.shape == (128, 64)
    moe.moefy(model, num_experts=4)
    conc = expert_concentration(model.model.layers[1].mlp, x, [1, 2, 3, 4])
    assert conc[4] < 1e-10 and conc[1] > conc[2] > conc[3] > conc[4]
