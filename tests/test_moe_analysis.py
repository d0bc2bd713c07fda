"""Evaluation helpers (perplexity, multiple choice, latency) and the routability analysis."""

from __future__ import annotations

import itertools
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
        """Puts all probability on the true next token wherever the tokens a position sees (read
        from the scorer's 4-D attention mask: its context, then its own option) are a prefix of an
        item's context + right answer; so it scores 1.0 only if options never see each other."""

        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(1, 259, bias=False)  # the scorer reads the vocabulary here
            self.answers = [it.context.tolist() + it.choices[it.answer].tolist() for it in items]

        def get_output_embeddings(self):
            return self.head

        def forward(self, input_ids, attention_mask, position_ids, use_cache, logits_to_keep):
            logits = torch.zeros(*input_ids.shape, 259)
            for b in range(input_ids.shape[0]):
                for j in range(input_ids.shape[1]):
                    seen = input_ids[b][attention_mask[b, 0, j] == 0].tolist()
                    for true in self.answers:
                        if len(seen) < len(true) and true[: len(seen)] == seen:
                            logits[b, j, true[len(seen)]] = 50.0
            return type("Out", (), {"logits": logits[:, logits_to_keep]})()

    assert evaluate.mc_accuracy(Oracle(), items) == 1.0
    assert evaluate.mc_accuracy(Oracle(), items, batch_size=5) == 1.0  # items split over batches


def test_latency_reports_positive_times():
    model, _ = tiny_llama("tiny-llama")
    moe.moefy(model, num_experts=4)
    moe.set_policy(model, "top2")
    lat = evaluate.latency(model, prefill_tokens=40, decode_tokens=3, repeats=1)
    assert lat["prefill_s"] > 0 and lat["decode_s_per_token"] > 0


def test_latency_side_by_side_interleaves_the_models():
    """Each repeat times every model's prefill, then every model's decode (round-robin), after
    one warm-up of each; the same token ids go to every model."""
    models = {}
    for name in ("dense", "moe"):
        models[name], _ = tiny_llama("tiny-llama")
    moe.moefy(models["moe"], num_experts=4)
    calls: list[tuple[str, str, int]] = []
    for name, model in models.items():

        def hook(mod, args, kwargs, name=name):
            ids = kwargs["input_ids"]
            kind = "prefill" if not kwargs.get("use_cache") else ("prompt" if ids.shape[1] > 1 else "step")
            assert not torch.is_grad_enabled()  # timed as inference: no autograd graph
            calls.append((name, kind, int(ids.sum())))

        model.register_forward_pre_hook(hook, with_kwargs=True)
    lat = evaluate.latency_side_by_side(models, prefill_tokens=40, decode_tokens=2, repeats=2)
    assert set(lat) == {"dense", "moe"}
    assert all(v["prefill_s"] > 0 and v["decode_s_per_token"] > 0 for v in lat.values())
    prefills = [(n, ids) for n, kind, ids in calls if kind == "prefill"]
    prompts = [n for n, kind, _ in calls if kind == "prompt"]
    # one untimed warm-up call each, then per repeat one benchmark of each model (several calls)
    assert [n for n, _ in itertools.groupby(n for n, _ in prefills)] == ["dense", "moe"] * 3
    assert prompts == ["dense", "moe"] * 3
    assert len({ids for _, ids in prefills}) == 1  # the same tokens for both
    with pytest.raises(ValueError, match="at least one"):
        evaluate.latency_side_by_side({})
    with pytest.raises(ValueError, match="repeats"):
        evaluate.latency_side_by_side(models, repeats=0)


def test_expert_concentration_is_zero_with_all_experts_and_decreasing():
    model, tok = tiny_llama("tiny-llama")
    ids = data.token_blocks(tok, "train", 128, 64)
    x = capture_mlp_inputs(model, ids, [1])[1]
    assert x.shape == (128, 64)
    moe.moefy(model, num_experts=4)
    conc = expert_concentration(model.model.layers[1].mlp, x, [1, 2, 3, 4])
    assert conc[4] < 1e-10 and conc[1] > conc[2] > conc[3] > conc[4]
