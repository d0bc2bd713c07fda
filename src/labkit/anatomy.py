"""Where the parameters and FLOPs of a LLaMA-style decoder live.

:func:`llama_parameter_counts` works from a config alone (no weights needed, so LLaMA2-7B can be
analysed on a laptop); :func:`count_parameters` counts a loaded model's tensors by role. Unit
tests check that the two agree.

Per decoder layer (d = hidden size, f = FFN width, h/k = query/key-value heads, d_h = d/h):
attention ``d·h·d_h + 2·d·k·d_h + h·d_h·d``; SwiGLU FFN ``3·d·f`` (gate, up, down); two RMSNorms ``2d``.
Embeddings ``V·d`` plus an LM head ``V·d`` unless tied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ParamCounts", "count_parameters", "flops_per_token", "llama_parameter_counts"]


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts of a decoder-only LLaMA-style model, by role (numbers of scalars)."""

    embedding: int
    lm_head: int
    attention: int
    ffn: int
    norms: int
    num_layers: int

    @property
    def total(self) -> int:
        """All distinct parameters (a tied LM head counts once, in ``embedding``)."""
        return self.embedding + self.lm_head + self.attention + self.ffn + self.norms

    @property
    def ffn_share(self) -> float:
        """FFN parameters as a fraction of the total."""
        return self.ffn / self.total

    @property
    def ffn_per_layer(self) -> int:
        return self.ffn // self.num_layers

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(total=self.total, ffn_share=self.ffn_share)
        return d


def _get(config: Any, name: str, default: Any = None) -> Any:
    return getattr(config, name, default) if not isinstance(config, dict) else config.get(name, default)


def llama_parameter_counts(config: Any) -> ParamCounts:
    """Parameter counts from a ``LlamaConfig`` (or a dict with the same keys), without weights.

    Raises
    ------
    ValueError
        If a required field (``hidden_size``, ``intermediate_size``, ``num_hidden_layers``,
        ``num_attention_heads``, ``vocab_size``) is missing or not positive.
    """
    req = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"]
    vals = {}
    for name in req:
        v = _get(config, name)
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"config field {name}={v!r} must be a positive integer")
        vals[name] = v
    d, f, n_layers = vals["hidden_size"], vals["intermediate_size"], vals["num_hidden_layers"]
    h, vocab = vals["num_attention_heads"], vals["vocab_size"]
    kv = _get(config, "num_key_value_heads") or h
    head_dim = _get(config, "head_dim") or d // h
    attn_bias = bool(_get(config, "attention_bias", False))
    mlp_bias = bool(_get(config, "mlp_bias", False))
    attn = d * h * head_dim + 2 * d * kv * head_dim + h * head_dim * d
    if attn_bias:
        attn += h * head_dim + 2 * kv * head_dim + d
    ffn = 3 * d * f + ((2 * f + d) if mlp_bias else 0)
    tied = bool(_get(config, "tie_word_embeddings", False))
    return ParamCounts(
        embedding=vocab * d,
        lm_head=0 if tied else vocab * d,
        attention=n_layers * attn,
        ffn=n_layers * ffn,
        norms=n_layers * 2 * d + d,
        num_layers=n_layers,
    )


def count_parameters(model: Any) -> ParamCounts:
    """Count a loaded ``LlamaForCausalLM``'s parameters by role (shared tensors counted once).

    Roles are assigned by module name: ``embed_tokens``, ``lm_head``, ``self_attn``, ``mlp``,
    and norms (everything else inside the decoder).
    """
    seen: set[int] = set()
    buckets = dict(embedding=0, lm_head=0, attention=0, ffn=0, norms=0)
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        if "embed_tokens" in name:
            buckets["embedding"] += p.numel()
        elif name.startswith("lm_head"):
            buckets["lm_head"] += p.numel()
        elif ".self_attn." in name:
            buckets["attention"] += p.numel()
        elif ".mlp." in name:
            buckets["ffn"] += p.numel()
        else:
            buckets["norms"] += p.numel()
    return ParamCounts(num_layers=int(model.config.num_hidden_layers), **buckets)


def flops_per_token(config: Any, context: int = 0) -> dict[str, float]:
    """Forward FLOPs per token (multiply–add = 2 FLOPs), by role, at a given context length.

    Matrix multiplies cost ``2 × parameters``; attention scores and the weighted sum add
    ``4 · L · context · h · d_h``. Embedding lookups are free; the LM head is a matmul.
    """
    c = llama_parameter_counts(config)
    h = _get(config, "num_attention_heads")
    head_dim = _get(config, "head_dim") or _get(config, "hidden_size") // h
    lm_head = 2 * (c.lm_head or c.embedding)
    out = {
        "attention_proj": 2.0 * c.attention,
        "attention_scores": 4.0 * c.num_layers * context * h * head_dim,
        "ffn": 2.0 * c.ffn,
        "lm_head": float(lm_head),
    }
    out["total"] = sum(out.values())
    return out
