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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the lazy exports, visible to type checkers
    from .accounting import activated_parameters, llama_breakdown
    from .backends import BackendUnavailableError, set_backend
    from .block import MoEBlock, RoutingStats
    from .construct import METHODS, moe_blocks, moefy, record_routing, set_policy
    from .distill import DistillConfig, distill_layers
    from .errors import (
        CheckpointMismatchError,
        MoEError,
        TokenBudgetError,
        UnknownMethodError,
        UnknownPolicyError,
        UnsupportedModelError,
    )
    from .io import export_mixtral, load_moe, save_moe
    from .pipeline import ConversionConfig, convert, load_or_convert
    from .policies import AllExperts, Policy, SwitchK, TopK, TopP, parse_policy
    from .routing_search import search_policies

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

__all__ = [  # the keys of _EXPORTS (a literal, so that linters see the re-exports)
    "AllExperts",
    "BackendUnavailableError",
    "CheckpointMismatchError",
    "ConversionConfig",
    "DistillConfig",
    "METHODS",
    "MoEBlock",
    "MoEError",
    "Policy",
    "RoutingStats",
    "SwitchK",
    "TokenBudgetError",
    "TopK",
    "TopP",
    "UnknownMethodError",
    "UnknownPolicyError",
    "UnsupportedModelError",
    "activated_parameters",
    "convert",
    "distill_layers",
    "export_mixtral",
    "llama_breakdown",
    "load_moe",
    "load_or_convert",
    "moe_blocks",
    "moefy",
    "parse_policy",
    "record_routing",
    "save_moe",
    "search_policies",
    "set_backend",
    "set_policy",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'labkit.moe' has no attribute {name!r}")
