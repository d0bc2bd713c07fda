"""generate_until stops through transformers' stop_strings exactly where decoding each step would."""

from __future__ import annotations

import warnings

import pytest
import torch

from labkit.evals import lm
from labkit.models import tiny_llama


class _DecodeEachStep:
    """The criterion labkit used before: decode every row's new text at every step, look for a stop."""

    def __init__(self, tokenizer, stops, start: int) -> None:
        self.tokenizer, self.stops, self.start = tokenizer, list(stops), start

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.start :], skip_special_tokens=False)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _with_decoding_criterion(model, tokenizer):
    """``model.generate`` as labkit called it before (a stopping criterion, no stop_strings)."""
    original = model.generate

    def generate(*args, stop_strings=None, tokenizer=None, **kwargs):
        if stop_strings:
            width = kwargs["input_ids"].shape[1]
            kwargs["stopping_criteria"] = [_DecodeEachStep(tokenizer, stop_strings, width)]
        return original(*args, **kwargs)

    return generate


@pytest.mark.parametrize("until", [["\n"], ["."], ["O", "\n\n"], ["kk", "h"], [","]])
@pytest.mark.parametrize("sampled", [False, True])
def test_stop_strings_give_the_outputs_of_decoding_each_step(monkeypatch, until, sampled):
    model, tok = tiny_llama("tiny-llama", seed=1)
    prompts = ["Question: what is 2+2?\nAnswer:", "The capital of France is", "질문: 하늘은?", "x"]
    kw = dict(max_new_tokens=20, batch_size=3, progress=False)
    if sampled:
        kw.update(temperature=0.9, num_samples=2, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = lm.generate_until(model, tok, prompts, until=until, **kw)
        monkeypatch.setattr(model, "generate", _with_decoding_criterion(model, tok))
        old = lm.generate_until(model, tok, prompts, until=until, **kw)
    assert new == old
