"""Sizing a conversion over several GPUs from a model's config alone (no weights needed).

:func:`rank_plan` answers, for a LLaMA config, a calibration budget and ``N`` devices of a given
memory: how many bytes the dense weights take (bfloat16) in all and per decoder layer, how many the
captured MLP inputs take per layer and in all (bfloat16 on disk, as :mod:`labkit.moe.capture`
stores them), how much device memory distilling one layer needs (:mod:`labkit.moe.distill` trains
the block in float32 with AdamW on the layer's inputs and dense outputs held in float32), how many
devices hold the dense model for the capture (accelerate's ``device_map="auto"``), and how many
layers each of the ``N`` ranks distils. Counts come from :func:`labkit.moe.accounting.llama_breakdown`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .accounting import llama_breakdown

__all__ = ["RankPlan", "llama2_70b_config", "rank_plan"]

#: Bytes per trained parameter in stage 1: float32 weight, gradient and AdamW's two moments.
TRAIN_BYTES_PER_PARAM = 4 * 4


@dataclass(frozen=True)
class RankPlan:
    """Sizes of a conversion spread over ``ranks`` devices of ``device_gb`` GB each (GB = 10⁹ bytes).

    Attributes
    ----------
    weights_gb: dense weights in bfloat16, all of them.
    layer_weights_gb: one decoder layer's weights (attention, FFN, norms) in bfloat16.
    capture_layer_gb: one layer's captured MLP inputs, ``tokens × hidden_size`` in bfloat16.
    capture_gb: the captured inputs of every layer (the disk a capture needs).
    distill_layer_gb: device memory to distil one layer: its FFN trained in float32 with AdamW
        (``TRAIN_BYTES_PER_PARAM`` bytes per weight) plus the layer's inputs and dense outputs in float32.
    capture_devices: devices of ``device_gb`` that hold the bfloat16 weights (at least 1).
    layers_per_rank: most layers one rank distils when the layers are dealt out round-robin.
    """

    num_layers: int
    ranks: int
    tokens: int
    device_gb: float
    weights_gb: float
    layer_weights_gb: float
    capture_layer_gb: float
    capture_gb: float
    distill_layer_gb: float
    capture_devices: int
    layers_per_rank: int


def llama2_70b_config():
    """The published LLaMA2-70B architecture (Touvron et al. 2023) as a ``LlamaConfig`` (no weights):
    80 layers, d = 8192, FFN width 28672, 64 query heads sharing 8 key/value heads."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=8192,
        intermediate_size=28672,
        num_hidden_layers=80,
        num_attention_heads=64,
        num_key_value_heads=8,
        vocab_size=32000,
        tie_word_embeddings=False,
    )


def rank_plan(config, *, tokens: int = 100_000, ranks: int = 8, device_gb: float = 80.0) -> RankPlan:
    """Sizes of converting ``config`` on ``tokens`` calibration tokens over ``ranks`` devices.

    Raises
    ------
    ValueError
        ``tokens`` or ``ranks`` below 1, ``device_gb`` not positive, or more ranks than layers
        (:func:`labkit.distributed.check_world_size` refuses those runs).
    """
    if tokens < 1 or ranks < 1 or not device_gb > 0:
        raise ValueError(f"tokens={tokens}, ranks={ranks} must be ≥ 1 and device_gb={device_gb} > 0")
    b = llama_breakdown(config)
    if ranks > b.num_layers:
        raise ValueError(f"ranks={ranks} is more than the {b.num_layers} layers to deal out")
    d, gb = config.hidden_size, 1e9
    layer_params = (b.attention + b.ffn + b.norms) / b.num_layers
    capture_layer = tokens * d * 2 / gb
    return RankPlan(
        num_layers=b.num_layers,
        ranks=ranks,
        tokens=tokens,
        device_gb=device_gb,
        weights_gb=b.total * 2 / gb,
        layer_weights_gb=layer_params * 2 / gb,
        capture_layer_gb=capture_layer,
        capture_gb=capture_layer * b.num_layers,
        distill_layer_gb=(b.ffn_per_layer * TRAIN_BYTES_PER_PARAM + 2 * tokens * d * 4) / gb,
        capture_devices=max(1, math.ceil(b.total * 2 / gb / device_gb)),
        layers_per_rank=math.ceil(b.num_layers / ranks),
    )
