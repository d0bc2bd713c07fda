"""labkit.moe: LaDiMo-style dense→MoE conversion of LLaMA models (Part I of the book).

Entry points: :func:`moefy` (expert construction), :func:`set_policy` (routing policies),
:func:`set_backend` (how experts execute: ``eager``, ``grouped_mm``, ``cpu``, ``auto``),
:func:`activated_parameters` (accounting), :func:`distill_layers` (stage 1),
:func:`search_policies` (stage 2), :func:`save_moe` / :func:`load_moe` / :func:`export_mixtral`
(persistence), :func:`convert` / :func:`load_or_convert` (pipeline). Reference: Kim et al. 2024,
"LaDiMo: Layer-wise Distillation Inspired MoEfier", arXiv:2408.04278.

Submodules are imported lazily so ``import labkit.moe`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MoEBlock": "block",
    "RoutingStats": "block",
    "set_backend": "backends",
    "BackendUnavailableError": "backends",
    "moefy": "construct",
    "set_policy": "construct",
    "moe_blocks": "construct",
    "record_routing": "construct",
    "METHODS": "construct",
    "AllExperts": "policies",
    "TopK": "policies",
    "TopP": "policies",
    "SwitchK": "policies",
    "Policy": "policies",
    "parse_policy": "policies",
    "activated_parameters": "accounting",
    "llama_breakdown": "accounting",
    "MoEError": "errors",
    "UnsupportedModelError": "errors",
    "UnknownMethodError": "errors",
    "UnknownPolicyError": "errors",
    "TokenBudgetError": "errors",
    "CheckpointMismatchError": "errors",
    "distill_layers": "distill",
    "DistillConfig": "distill",
    "search_policies": "routing_search",
    "save_moe": "io",
    "load_moe": "io",
    "export_mixtral": "io",
    "convert": "pipeline",
    "load_or_convert": "pipeline",
    "ConversionConfig": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'labkit.moe' has no attribute {name!r}")
