"""Static pruning: the baseline an MoE conversion has to beat at the same activated-parameter cut.

Instead of routing each token to a few experts, remove the same FFN neurons for every token. Each
neuron j of a SwiGLU FFN gets an importance, its mean ``|act_fn(g_j)·u_j|`` over calibration
tokens (the magnitude of its activation, as in activation-based structured pruning, e.g.
Wanda's activation norms or LLM-Pruner's width pruning). Every layer loses the same number of its
least important neurons (uniform widths), the smallest number that reaches the target reduction:

    removed per layer r = ⌈ target · P_dense / (3 d · L) ⌉

where ``3d`` counts one neuron's gate, up and down weights and ``L`` is the number of layers. The
pruned model stores and runs only the kept neurons, so its activated parameters are its stored
parameters; the reduction is ``1 − P_pruned / P_dense``, the same accounting as
:func:`labkit.moe.accounting.activated_parameters` (tied embeddings counted once). No routing, no
training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .construct import decoder_layers
from .errors import MoEError
from .hf import SwiGLU, child, is_swiglu

__all__ = ["PruneResult", "neuron_importance", "prune_ffn", "prune_to_reduction"]


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_to_reduction` did: neurons kept per layer and the parameter counts.

    ``reduction`` is ``1 − params_pruned / params_dense`` (every stored parameter is activated).
    """

    kept: list[torch.Tensor]
    params_dense: int
    params_pruned: int

    @property
    def reduction(self) -> float:
        """Fraction of the dense model's (activated) parameters removed."""
        return 1.0 - self.params_pruned / self.params_dense


def _mlps(model: nn.Module) -> list[SwiGLU]:
    out: list[SwiGLU] = []
    for i, layer in enumerate(decoder_layers(model)):
        mlp = child(layer, "mlp")
        if not is_swiglu(mlp):
            raise MoEError(f"layer {i}: {type(mlp).__name__} is not a dense SwiGLU MLP (prune a dense model)")
        if any(getattr(mlp, n).bias is not None for n in ("gate_proj", "up_proj", "down_proj")):
            raise MoEError(f"layer {i}: MLP biases (mlp_bias=True) are not supported")
        out.append(mlp)
    return out


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() counts tied weights once


@torch.no_grad()
def neuron_importance(
    model: nn.Module, calibration: torch.Tensor, *, batch_size: int = 4
) -> list[torch.Tensor]:
    """Mean ``|act_fn(gate_j(x))·up_j(x)|`` of every FFN neuron over calibration tokens.

    ``calibration``: token ids ``[B, L]``. Returns one float32 tensor ``[f]`` per layer (on the
    CPU). The inputs are the MLP inputs of the (dense) model itself, summed batch by batch, so the
    calibration set may be larger than memory would hold as activations.
    """
    mlps = _mlps(model)
    ids = torch.as_tensor(calibration)
    if ids.dim() != 2 or ids.numel() == 0:
        raise MoEError(f"calibration of shape {tuple(ids.shape)}: expected token ids [B, L], B, L ≥ 1")
    sums = [torch.zeros(m.gate_proj.weight.shape[0], dtype=torch.float64) for m in mlps]
    count = 0
    hooks = []
    for i, mlp in enumerate(mlps):

        def hook(_m, args, i=i, mlp=mlp):
            x = args[0].reshape(-1, args[0].shape[-1])
            h = (mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)).abs()
            sums[i] += h.double().sum(0).cpu()

        hooks.append(child(decoder_layers(model)[i], "mlp").register_forward_pre_hook(hook))
    dev = next(model.parameters()).device
    body = child(model, "model")
    try:
        for s in range(0, ids.shape[0], batch_size):
            batch = ids[s : s + batch_size].to(dev)
            body(input_ids=batch, use_cache=False)
            count += batch.numel()
    finally:
        for h in hooks:
            h.remove()
    return [(s / count).float() for s in sums]


@torch.no_grad()
def prune_ffn(model: nn.Module, kept: list[torch.Tensor]) -> nn.Module:
    """Keep only neurons ``kept[ℓ]`` (indices) of layer ℓ's FFN, in place; returns the model.

    The gate and up rows and the down columns of the other neurons are removed, so the pruned FFN
    computes exactly the dense FFN's output less those neurons' contributions.

    Raises
    ------
    MoEError
        One index list per layer is needed, each non-empty, unique and within the FFN width.
    """
    mlps = _mlps(model)
    if len(kept) != len(mlps):
        raise MoEError(f"kept has {len(kept)} entries for {len(mlps)} layers; give one per layer")
    for i, (mlp, idx) in enumerate(zip(mlps, kept, strict=True)):
        f = mlp.gate_proj.weight.shape[0]
        idx = torch.as_tensor(idx, dtype=torch.long).flatten().cpu()
        if idx.numel() == 0 or idx.unique().numel() != idx.numel() or idx.min() < 0 or idx.max() >= f:
            raise MoEError(f"kept[{i}] must hold 1..{f} distinct neuron indices in [0, {f})")
        idx = idx.sort().values.to(mlp.gate_proj.weight.device)
        for name in ("gate_proj", "up_proj"):
            old: nn.Linear = getattr(mlp, name)
            new = nn.Linear(
                old.in_features, idx.numel(), bias=False, device=old.weight.device, dtype=old.weight.dtype
            )
            new.weight.copy_(old.weight[idx])
            setattr(mlp, name, new)
        old = mlp.down_proj
        new = nn.Linear(
            idx.numel(), old.out_features, bias=False, device=old.weight.device, dtype=old.weight.dtype
        )
        new.weight.copy_(old.weight[:, idx])
        mlp.down_proj = new
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = idx.numel()
    return model


def prune_to_reduction(
    model: nn.Module,
    calibration: torch.Tensor,
    target_reduction: float,
    *,
    batch_size: int = 4,
) -> PruneResult:
    """Prune every FFN uniformly (in place) to at least ``target_reduction`` fewer parameters.

    Each layer drops its ``r`` least important neurons (:func:`neuron_importance` on
    ``calibration`` token ids ``[B, L]``), ``r`` the smallest count that reaches the target (see the
    module docstring); ties go to the lower index.

    Raises
    ------
    MoEError
        ``target_reduction`` outside [0, 1), or beyond what removing all but one neuron per layer
        could give.
    """
    t = target_reduction
    if not (isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and 0 <= t < 1):
        raise MoEError(f"target_reduction={t!r} must be a number in [0, 1)")
    mlps = _mlps(model)
    dense = _params(model)
    d = mlps[0].gate_proj.weight.shape[1]
    f = min(m.gate_proj.weight.shape[0] for m in mlps)
    per_neuron = 3 * d * len(mlps)
    r = math.ceil(t * dense / per_neuron - 1e-9)
    if r > f - 1:
        raise MoEError(
            f"target_reduction={t} cannot be reached by pruning: removing all but one of the {f} "
            f"neurons of every FFN removes {(f - 1) * per_neuron / dense:.1%} of the parameters"
        )
    scores = neuron_importance(model, calibration, batch_size=batch_size)
    kept = []
    for s in scores:
        order = torch.sort(s, descending=True, stable=True).indices  # ties: lower index first
        kept.append(order[: s.numel() - r].sort().values)
    prune_ffn(model, kept)
    return PruneResult(kept=kept, params_dense=dense, params_pruned=_params(model))
