import pytest

from labkit.anatomy import count_parameters, flops_per_token, llama_parameter_counts
from labkit.models import TINY_CONFIGS, tiny_llama


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_config_counts_equal_tensor_counts(name):
    model, _ = tiny_llama(name)
    counts = count_parameters(model)
    assert counts == llama_parameter_counts(model.config)
    assert counts.total == sum(p.numel() for p in model.parameters())


def test_llama2_7b_numbers():
    cfg = dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        tie_word_embeddings=False,
    )
    c = llama_parameter_counts(cfg)
    assert c.total == 6_738_415_616  # the published 6.74B
    assert c.ffn == 32 * 3 * 4096 * 11008
    assert round(c.ffn_share, 3) == 0.642
    f = flops_per_token(cfg, context=0)
    assert f["total"] == pytest.approx(2 * (c.total - c.embedding - c.norms))


def test_bad_config_is_clear():
    with pytest.raises(ValueError, match="intermediate_size"):
        llama_parameter_counts(
            dict(
                hidden_size=8, intermediate_size=0, num_hidden_layers=1, num_attention_heads=1, vocab_size=10
            )
        )
