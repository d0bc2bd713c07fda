"""Parameter and FLOP accounting: where a LLaMA's parameters live, and how many an MoE activates per token.

Activated parameters (LLaMA-MoE's ``param_estimation`` generalised to per-layer, data-dependent k):

    act = P_nonFFN + Σ_ℓ ( P_router,ℓ + s_ℓ · 3d + Σ_i π_ℓ,i · |S_ℓ,i| · 3d )

where ``s_ℓ`` is the size of layer ℓ's always-on shared expert (0 without one), ``π_ℓ,i`` the
fraction of tokens that used expert i of layer ℓ (measured routing statistics when recorded, else
the policy's nominal ``k/N``), ``|S_ℓ,i|`` the expert's neuron count, and ``3d`` the gate, up and
down weights of one neuron. Tied embeddings are counted once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..anatomy import llama_parameter_counts
from .block import MoEBlock
from .construct import decoder_layers
from .hf import child

__all__ = [
    "ActivatedParameters",
    "LlamaBreakdown",
    "activated_parameters",
    "llama2_7b_config",
    "llama_breakdown",
]


@dataclass(frozen=True)
class LlamaBreakdown:
    """Parameter counts (and forward FLOPs per token) of a LLaMA config, by component.

    ``flops_per_token`` counts 2 FLOPs per multiply-accumulate of every weight matrix that a token
    passes through (embedding lookup excluded, LM head included), ignoring attention-score FLOPs.
    """

    embeddings: int
    lm_head: int
    attention: int
    ffn: int
    norms: int
    num_layers: int
    ffn_per_layer: int
    total: int
    flops_per_token: int

    def shares(self) -> dict[str, float]:
        """Fraction of the total held by each component."""
        keys = ("embeddings", "lm_head", "attention", "ffn", "norms")
        return {k: getattr(self, k) / self.total for k in keys}

    def ffn_fraction_for_reduction(self, reduction: float) -> float:
        """Average fraction of FFN neurons that may stay active for ``reduction`` fewer activated params."""
        return max(0.0, 1.0 - reduction * self.total / self.ffn)


def llama_breakdown(config) -> LlamaBreakdown:
    """Count parameters of a ``LlamaConfig`` (no weights needed), via :mod:`labkit.anatomy`."""
    c = llama_parameter_counts(config)
    flops = 2 * (c.attention + c.ffn + config.vocab_size * config.hidden_size)
    return LlamaBreakdown(
        c.embedding, c.lm_head, c.attention, c.ffn, c.norms, c.num_layers, c.ffn_per_layer, c.total, flops
    )


@dataclass
class ActivatedParameters:
    """Total and activated parameters of an MoE-converted model (``reduction`` is vs the dense model)."""

    dense_total: int
    total: int
    activated: float
    non_ffn: int
    per_layer: list[dict] = field(default_factory=list)
    measured: bool = False

    @property
    def reduction(self) -> float:
        """``1 - activated / dense_total``."""
        return 1.0 - self.activated / self.dense_total

    @property
    def ffn_active_fraction(self) -> float:
        """Activated FFN parameters / dense FFN parameters, over all layers."""
        ffn = sum(r["ffn_params"] for r in self.per_layer)
        return sum(r["ffn_activated"] for r in self.per_layer) / ffn if ffn else 1.0

    def as_dict(self) -> dict:
        """Plain dict (for JSON reports)."""
        out = asdict(self)
        out["reduction"] = self.reduction
        out["ffn_active_fraction"] = self.ffn_active_fraction
        return out


def _unique_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())  # parameters() deduplicates tied weights


def activated_parameters(model: nn.Module, *, use_stats: bool = True) -> ActivatedParameters:
    """Total and activated parameters per layer and overall (see module docstring for the formula).

    Uses each block's recorded routing statistics when present (``use_stats`` and tokens > 0),
    else the policy's nominal k (for adaptive policies the nominal k is the upper bound ``k_max``).
    A dense (not moefied) model is reported with every parameter activated.
    """
    layers = decoder_layers(model)
    all_params = _unique_params(model)
    per_layer: list[dict[str, Any]] = []
    moe_stored = 0
    ffn_dense_total = 0
    activated_ffn = 0.0
    measured = True
    for i, layer in enumerate(layers):
        mlp = child(layer, "mlp")
        if isinstance(mlp, MoEBlock):
            d = mlp.hidden_size
            sizes = mlp.expert_sizes.float().cpu()
            shared = mlp.shared_size
            ffn_params = (int(sizes.sum()) + shared) * 3 * d
            router = mlp.router.weight.numel()
            if use_stats and mlp.stats.tokens > 0:
                frac = mlp.stats.load.float() / mlp.stats.tokens
                mean_k = mlp.stats.mean_k
                layer_measured = True
            else:
                k = mlp.policy.nominal_k(mlp.num_experts)
                frac = sizes.new_full((mlp.num_experts,), k / mlp.num_experts)
                mean_k = k
                layer_measured = False
            measured = measured and layer_measured
            ffn_act = (float((frac * sizes).sum()) + shared) * 3 * d
            moe_stored += _unique_params(mlp)
            per_layer.append(
                {
                    "layer": i,
                    "ffn_params": ffn_params,
                    "router_params": router,
                    "ffn_activated": ffn_act,
                    "mean_k": mean_k,
                    "num_experts": mlp.num_experts,
                    "shared_neurons": shared,
                    "policy": mlp.policy.spec(),
                    "measured": layer_measured,
                }
            )
            ffn_dense_total += ffn_params
            activated_ffn += ffn_act + router
        else:
            p = _unique_params(mlp)
            moe_stored += p
            ffn_dense_total += p
            activated_ffn += p
            per_layer.append(
                {
                    "layer": i,
                    "ffn_params": p,
                    "router_params": 0,
                    "ffn_activated": float(p),
                    "mean_k": None,
                    "num_experts": 1,
                    "policy": "dense",
                    "measured": False,
                }
            )
            measured = False
    non_ffn = all_params - moe_stored
    total = non_ffn + sum(r["ffn_params"] + r["router_params"] for r in per_layer)
    return ActivatedParameters(
        dense_total=non_ffn + ffn_dense_total,
        total=total,
        activated=non_ffn + activated_ffn,
        non_ffn=non_ffn,
        per_layer=per_layer,
        measured=measured,
    )


def llama2_7b_config():
    """The published LLaMA2-7B architecture (Touvron et al. 2023) as a ``LlamaConfig`` (no weights)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=32000,
        tie_word_embeddings=False,
    )
