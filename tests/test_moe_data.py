"""Offline calibration corpus, splits, token blocks and the multiple-choice set."""

from __future__ import annotations

import pytest
import torch

from labkit.models import byte_tokenizer
from labkit.moe import TokenBudgetError, data


def test_splits_are_disjoint_and_deterministic():
    names = {}
    for split in data.SPLITS:
        docs = data.split_documents(split)
        assert docs, split
        names[split] = set(docs)
    assert not (names["train"] & names["test"]) and not (names["train"] & names["valid"])
    assert not (names["valid"] & names["test"])
    assert data.corpus_fingerprint() == data.corpus_fingerprint()


def test_token_blocks_and_budget_error():
    tok = byte_tokenizer()
    blocks = data.token_blocks(tok, "valid", 1000, 128)
    assert blocks.shape == (7, 128)
    stream = data.token_stream(tok, "valid")
    assert torch.equal(blocks.flatten(), stream[: 7 * 128])
    with pytest.raises(TokenBudgetError, match="exceeds"):
        data.token_blocks(tok, "valid", stream.numel() + 1, 128)
    with pytest.raises(TokenBudgetError):
        data.token_blocks(tok, "valid", 10, 128)


def test_continuation_choices_hold_the_true_continuation():
    tok = byte_tokenizer()
    items = data.continuation_choices(tok, num_items=20, context_tokens=32, continuation_tokens=8)
    stream = data.token_stream(tok, "test")
    text = stream.tolist()
    for it in items:
        assert len(it.choices) == 4 and all(c.numel() == 8 for c in it.choices)
        whole = it.context.tolist() + it.choices[it.answer].tolist()
        # the right answer continues the context in the held-out text
        assert any(text[i : i + 40] == whole for i in range(0, len(text) - 40, 40))
    assert len({it.answer for it in items}) > 1


def test_module_docs_use_own_docstrings_only():
    """Inherited docstrings depend on the process (a Jupyter kernel patches pdb): never use them."""
    text = data._module_text("pdb")
    assert text and "Generic Python debugger base class" not in text  # bdb.Bdb's, inherited by pdb.Pdb
