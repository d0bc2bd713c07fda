"""labkit.likelihood: the packed token-level scorer shared by Parts I and II."""

from __future__ import annotations

import pytest
import torch

from labkit.likelihood import ScoringError, loglikelihood_tokens
from labkit.models import tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")


def test_packed_scores_equal_one_forward_pass_per_request():
    model, _ = tiny_llama("tiny-llama")
    gen = torch.Generator().manual_seed(0)
    ctx = torch.randint(259, (12,), generator=gen).tolist()
    other = torch.randint(259, (5,), generator=gen).tolist()
    conts = [torch.randint(259, (n,), generator=gen).tolist() for n in (1, 3, 4)]
    requests = [(ctx, c) for c in conts] + [(other, conts[1])]
    got = loglikelihood_tokens(model, requests, batch_size=1)
    with torch.no_grad():
        for (c, k), (lp, greedy) in zip(requests, got, strict=True):
            logp = model(input_ids=torch.tensor([c + k[:-1]])).logits[0, len(c) - 1 :].log_softmax(-1)
            want = logp.gather(1, torch.tensor(k)[:, None]).sum()
            assert lp == pytest.approx(float(want), abs=1e-4)
            assert greedy == bool((logp.argmax(-1) == torch.tensor(k)).all())
    budget = loglikelihood_tokens(model, requests)  # batched under the token budget instead
    assert [lp for lp, _ in budget] == pytest.approx([lp for lp, _ in got], abs=1e-5)
    assert [g for _, g in budget] == [g for _, g in got]


def test_empty_requests_and_bad_batch_size_are_typed_errors():
    model, _ = tiny_llama("tiny-llama")
    with pytest.raises(ScoringError, match="request 1: context of 0"):
        loglikelihood_tokens(model, [([1, 2], [3]), ([], [3])])
    with pytest.raises(ScoringError, match="batch_size"):
        loglikelihood_tokens(model, [([1, 2], [3])], batch_size=0)
