"""Typed access to the parts of a LLaMA-style causal LM (transformers) that :mod:`labkit.moe` uses.

``torch.nn.Module.__getattr__`` gives every submodule the static type ``Tensor | Module``. These
helpers check at run time what the code relies on and hand back precise types: :func:`child` a
submodule, :func:`is_swiglu` narrows a dense FFN to :class:`SwiGLU`. A model without the part
raises :class:`~labkit.moe.errors.UnsupportedModelError` naming it.
"""

from __future__ import annotations

from typing import Protocol, TypeGuard

import torch
from torch import nn

from .errors import UnsupportedModelError

__all__ = ["PROJECTIONS", "SwiGLU", "child", "is_swiglu"]

PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


class SwiGLU(Protocol):
    """A LLaMA-style gated FFN ``down_proj(act_fn(gate_proj(x)) * up_proj(x))`` (``LlamaMLP``).

    ``gate_proj``/``up_proj`` weights are ``[f, d]``, ``down_proj`` ``[d, f]`` (``f`` neurons).
    """

    gate_proj: nn.Linear
    up_proj: nn.Linear
    down_proj: nn.Linear
    act_fn: nn.Module

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def is_swiglu(module: object) -> TypeGuard[SwiGLU]:
    """Whether ``module`` has Linear ``gate_proj``/``up_proj``/``down_proj`` and an ``act_fn`` module."""
    return (
        isinstance(module, nn.Module)
        and all(isinstance(getattr(module, n, None), nn.Linear) for n in PROJECTIONS)
        and isinstance(getattr(module, "act_fn", None), nn.Module)
    )


def child(parent: nn.Module, name: str) -> nn.Module:
    """``parent.<name>`` as a module (e.g. ``child(model, "model")``, ``child(layer, "mlp")``).

    Raises
    ------
    UnsupportedModelError
        If ``parent`` has no submodule ``name``.
    """
    sub = getattr(parent, name, None)
    if not isinstance(sub, nn.Module):
        raise UnsupportedModelError(
            f"{type(parent).__name__} has no submodule {name!r}; labkit.moe needs a LLaMA-style "
            "causal LM (model.model.layers[i].mlp)"
        )
    return sub
