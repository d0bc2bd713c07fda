"""Persistence: save/load a converted model, and export a Mixtral checkpoint for plain ``transformers``.

``save_moe(model, folder)`` writes ``model.safetensors`` (all weights, tied ones once),
``config.json`` (the base ``LlamaConfig``), ``labkit_moe.json`` (experts per layer, expert sizes,
policies), the tokenizer and a checksum manifest, into a temporary folder renamed at the end (never
half-written). It replaces ``folder`` only when that is new, empty or a folder labkit wrote
(:func:`labkit.storage.replace_dir`): a folder holding anyone else's files is refused, not emptied.
``load_moe`` verifies the checksums and names the damaged file.

Mixtral export and the routing-weight normalisation difference: Mixtral weighs its k selected
experts by ``softmax_S(r)_i`` (renormalised to sum one). labkit's ``"softmax"`` weighting uses
``k · softmax_S(r)_i`` (mean one): top-k of the softmax equals top-k of the logits, so selections
agree, and the factor k is folded into Mixtral's ``down_proj``, so the exported model gives the
same logits. labkit's default ``"unit"`` weighting (every selected expert weighs 1) has no Mixtral
equivalent: the export then keeps the same experts and selections but Mixtral applies its
renormalised softmax weights (× k), so logits differ; call ``block.set_weighting("softmax")``
and re-validate before exporting if exact agreement matters. Only a uniform top-k policy over
equal-size experts without a shared expert maps onto Mixtral; other cases raise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load_file, load_model, save_file

from ..storage import MANIFEST, check_output_dir, replace_dir, verify_manifest, write_manifest
from .block import MoEBlock
from .construct import decoder_layers, moe_blocks
from .errors import CheckpointMismatchError, MoEError
from .hf import child
from .policies import TopK, parse_policy

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["export_mixtral", "load_moe", "save_moe"]

FORMAT = "labkit-moe/2"  # /2: w1 stored [N, d, 2m] (input-major); /1 stored it [N, 2m, d]
_READABLE = (FORMAT, "labkit-moe/1")


def save_moe(
    model: PreTrainedModel,
    folder: str | os.PathLike,
    tokenizer=None,
    *,
    extra: dict | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Save a moefied model (and optionally its tokenizer) to ``folder`` atomically.

    ``files``: more text files to write into the folder (name → content), e.g. a conversion report.

    Raises
    ------
    labkit.storage.OutputPathError
        If ``folder`` is a file, a protected folder, or holds files labkit did not write.
    labkit.storage.StorageError
        On an I/O failure, naming the path and what to do.
    """
    blocks = moe_blocks(model)
    meta = {
        "format": FORMAT,
        "layers": [
            {
                "expert_sizes": b.expert_sizes.tolist(),
                "shared_size": b.shared_size,
                "policy": b.policy.spec(),
                "weighting": b.weighting,
            }
            for b in blocks
        ],
        "moe": getattr(model.config, "labkit_moe", None),
        "extra": extra or {},
    }

    def write(tmp: Path) -> None:
        model.config.to_json_file(str(tmp / "config.json"))
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied: stored once, as the input embeddings
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp / "model.safetensors")
        )
        (tmp / "labkit_moe.json").write_text(json.dumps(meta, indent=1))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        write_manifest(tmp)

    return replace_dir(Path(folder), write, kind="labkit-moe")


def load_moe(
    folder: str | os.PathLike, *, device: str | torch.device | None = None, dtype: torch.dtype | None = None
):
    """Load a model saved by :func:`save_moe`; returns ``(model, tokenizer or None)``.

    Raises
    ------
    CheckpointMismatchError
        If the folder is not a labkit MoE checkpoint or its weights do not fit its config.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    meta_path = folder / "labkit_moe.json"
    if not meta_path.is_file() or not (folder / "model.safetensors").is_file():
        raise CheckpointMismatchError(
            f"{folder} is not a labkit MoE checkpoint (no labkit_moe.json/model.safetensors)"
        )
    if (folder / MANIFEST).exists():  # folders saved before checksums existed have none
        problems = verify_manifest(folder)
        if problems:
            raise CheckpointMismatchError(
                f"{folder} is damaged: {'; '.join(problems[:3])}. Save or convert the model again"
            )
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as err:
        raise CheckpointMismatchError(f"{meta_path} is not valid JSON ({err}); save again") from None
    if meta.get("format") not in _READABLE:
        raise CheckpointMismatchError(f"{meta_path}: format {meta.get('format')!r} is not one of {_READABLE}")
    config = AutoConfig.from_pretrained(str(folder))
    target = torch.device(device) if device is not None else torch.device("cpu")
    stored = _stored_dtype(folder / "model.safetensors")
    # built on the meta device, then materialised and filled where it will run: no CPU copy of a
    # model that is loaded to a GPU (a 7B model would otherwise need ~27 GB of host memory)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=stored)
        layers = decoder_layers(model)
        if len(layers) != len(meta["layers"]):
            raise CheckpointMismatchError(
                f"{folder}: config has {len(layers)} layers, labkit_moe.json {len(meta['layers'])}"
            )
        for layer, lm in zip(layers, meta["layers"], strict=True):
            block = MoEBlock(
                config.hidden_size,
                lm["expert_sizes"],
                child(child(layer, "mlp"), "act_fn"),
                dtype=stored,
                shared_size=int(lm.get("shared_size", 0)),
            )
            block.policy = parse_policy(lm["policy"])
            block.set_weighting(lm.get("weighting", "unit"))
            layer.mlp = block
    model = model.to_empty(device=target)
    try:
        if meta["format"] == FORMAT:
            missing, unexpected = load_model(
                model, str(folder / "model.safetensors"), strict=False, device=str(target)
            )
        else:  # labkit-moe/1: expert gate/up weights stored [N, 2m, d]
            state = load_file(str(folder / "model.safetensors"), device=str(target))
            for key in [k for k in state if k.endswith(".mlp.w1")]:
                state[key] = state[key].transpose(1, 2).contiguous()
            missing, unexpected = model.load_state_dict(state, strict=False)
            del state
    except Exception as err:  # RuntimeError (shapes), safetensors' SafetensorError (damaged file)
        if not isinstance(err, RuntimeError) and type(err).__name__ != "SafetensorError":
            raise
        raise CheckpointMismatchError(
            f"{folder / 'model.safetensors'}: weights do not fit the saved config or the file is damaged "
            f"({err}); save the model again"
        ) from err
    missing = [k for k in missing if not k.endswith("lm_head.weight")]
    if missing or unexpected:
        raise CheckpointMismatchError(f"{folder}: missing={missing[:5]} unexpected={unexpected[:5]}")
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
    # meta-device init left non-persistent buffers (RoPE inv_freq) empty: rebuild them
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config).to(target)
    if dtype is not None:
        model.to(dtype)
    model.eval()
    tokenizer = None
    if (folder / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return model, tokenizer


def _stored_dtype(path: Path) -> torch.dtype:
    """The floating dtype of the weights in a safetensors file (read from its header)."""
    from safetensors import safe_open

    names = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}
    try:
        with safe_open(str(path), "pt") as fh:
            for key in fh.keys():
                dt = fh.get_slice(key).get_dtype()
                if dt in names:
                    return names[dt]
    except Exception as err:  # safetensors' SafetensorError on a damaged header
        raise CheckpointMismatchError(f"{path} is damaged ({err}); save the model again") from err
    return torch.float32


def export_mixtral(model: PreTrainedModel, folder: str | os.PathLike, tokenizer=None) -> Path:
    """Write a ``MixtralForCausalLM`` checkpoint equivalent to ``model`` under its uniform top-k policy.

    Raises
    ------
    MoEError
        If the policy is not the same top-k in every layer, experts differ in size, or the number
        of experts differs between layers.
    """
    from transformers import MixtralConfig, MixtralForCausalLM

    check_output_dir(folder, label="Mixtral export folder")
    blocks = moe_blocks(model)
    pols = {b.policy for b in blocks}
    pol = next(iter(pols))
    if len(pols) != 1 or not isinstance(pol, TopK):
        raise MoEError(
            f"Mixtral export needs one top-k policy in every layer, got {sorted(p.spec() for p in pols)}"
        )
    k = pol.k
    n = blocks[0].num_experts
    if any(b.num_experts != n or len(set(b.expert_sizes.tolist())) != 1 for b in blocks):
        raise MoEError("Mixtral export needs the same number of equal-size experts in every layer")
    if any(b.shared_size for b in blocks):
        raise MoEError(
            "Mixtral export: Mixtral has no shared (always-on) expert; convert with shared_fraction=0 "
            "to export, or save with labkit.moe.save_moe"
        )
    c = model.config
    if getattr(c, "attention_bias", False):  # Mixtral's attention projections have no biases
        raise MoEError("Mixtral export does not support attention biases")
    mcfg = MixtralConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.hidden_size,
        intermediate_size=blocks[0].expert_dim,
        num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads,
        head_dim=getattr(c, "head_dim", None),
        hidden_act=c.hidden_act,
        max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps,
        rope_parameters=getattr(c, "rope_parameters", None),
        tie_word_embeddings=c.tie_word_embeddings,
        num_local_experts=n,
        num_experts_per_tok=k,
        router_jitter_noise=0.0,
        sliding_window=None,
        bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id,
        pad_token_id=getattr(c, "pad_token_id", None),
    )
    state = {}
    for key, val in model.state_dict().items():
        if ".mlp." in key:
            continue
        state[key] = val
    for i, b in enumerate(blocks):
        pre = f"model.layers.{i}.mlp."
        state[pre + "gate.weight"] = b.router.weight.detach()
        state[pre + "experts.gate_up_proj"] = b.w1.detach().transpose(1, 2).contiguous()  # [N, 2m, d]
        state[pre + "experts.down_proj"] = (b.w2.detach() * k).transpose(1, 2).contiguous()
    # transformers wraps PreTrainedModel.to in functools.wraps, and mypy then does not bind ``self``
    mixtral = MixtralForCausalLM(mcfg).to(blocks[0].w1.dtype)  # type: ignore[arg-type]
    missing, unexpected = mixtral.load_state_dict(state, strict=False)
    missing = [m for m in missing if not m.endswith("lm_head.weight")]
    if missing or unexpected:
        raise MoEError(f"Mixtral export mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    if mcfg.tie_word_embeddings:
        mixtral.tie_weights()

    def write(tmp: Path) -> None:
        mixtral.save_pretrained(str(tmp))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        write_manifest(tmp)

    return replace_dir(Path(folder), write, kind="mixtral-export")
