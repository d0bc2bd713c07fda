"""Typed exceptions of :mod:`labkit.moe`; each message names the offending field and value."""

from __future__ import annotations

__all__ = [
    "CheckpointMismatchError",
    "MoEError",
    "TokenBudgetError",
    "UnknownMethodError",
    "UnknownPolicyError",
    "UnsupportedModelError",
]


class MoEError(ValueError):
    """Base class of every bad-input error raised by :mod:`labkit.moe`."""


class UnsupportedModelError(MoEError):
    """The model is not a LLaMA-style decoder with SwiGLU ``gate_proj``/``up_proj``/``down_proj`` MLPs."""


class UnknownMethodError(MoEError):
    """An expert-construction method that :func:`labkit.moe.moefy` does not know."""


class UnknownPolicyError(MoEError):
    """A routing policy that :func:`labkit.moe.set_policy` cannot parse."""


class TokenBudgetError(MoEError):
    """A token budget larger than the text available for it."""


class CheckpointMismatchError(MoEError):
    """A checkpoint folder that belongs to another model or another conversion config."""
