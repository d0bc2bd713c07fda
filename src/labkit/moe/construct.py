"""Expert construction: split each dense SwiGLU FFN into N experts (``moefy``) and set routing policies.

Split methods (which intermediate neurons go to which expert):

``contiguous``
    Expert i gets neurons ``[i·f/N, (i+1)·f/N)`` (LaDiMo's "N sub-matrices"; LLaMA-MoE-v2 default).
``kmeans``
    Balanced k-means on the L2-normalised concatenated gate/up rows (MoEfication ``ParamSplit``,
    EMoE): neurons with similar input weights share an expert.
``coactivation``
    Balanced k-means on each neuron's binary firing pattern over calibration tokens (a neuron
    "fires" on a token when its |SiLU(g)·u| is in the token's top quarter), so neurons that fire
    together share an expert (MoEfication's co-activation graph, with k-means instead of METIS).
``activation``
    Balanced k-means on each neuron's contribution profile ``|SiLU(g_j)·u_j|·‖W_d[:, j]‖`` over the
    calibration tokens (cosine similarity): neurons whose contributions rise and fall together
    share an expert, so a token's large contributions gather in few experts.

Shared expert (``shared_fraction`` > 0, needs calibration tokens): the neurons with the largest
mean contribution over the calibration tokens form one always-on expert (DeepSeekMoE's shared
experts); the rest are split into the N routed experts by the method above. With calibration
inputs the router starts from the ridge fit of :func:`fit_router` (analytic, from the same
activations) instead of the mean gate rows.

Uneven widths (``f`` not divisible by N) are supported: expert sizes differ by at most one and
the block zero-pads (exact; see :mod:`labkit.moe.block`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .block import MoEBlock
from .errors import MoEError, UnknownMethodError, UnsupportedModelError
from .hf import SwiGLU, child, is_swiglu
from .policies import Policy, parse_policy

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "METHODS",
    "balanced_kmeans",
    "decoder_layers",
    "fit_router",
    "moe_blocks",
    "moefy",
    "neuron_groups",
    "record_routing",
    "set_policy",
]

METHODS = ("contiguous", "kmeans", "coactivation", "activation")
NEEDS_CALIBRATION = ("coactivation", "activation")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of a LLaMA-style causal LM (``model.model.layers``).

    Raises
    ------
    UnsupportedModelError
        If the model has no ``model.layers`` with an ``mlp`` in each layer.
    """
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if (
        not isinstance(layers, nn.ModuleList)
        or len(layers) == 0
        or not all(hasattr(la, "mlp") for la in layers)
    ):
        raise UnsupportedModelError(
            f"{type(model).__name__} is not a LLaMA-style causal LM: expected model.model.layers[i].mlp"
        )
    return layers


def moe_blocks(model: nn.Module) -> list[MoEBlock]:
    """The :class:`MoEBlock` of every layer (raises if the model was not moefied)."""
    mlps = [child(layer, "mlp") for layer in decoder_layers(model)]
    blocks = [b for b in mlps if isinstance(b, MoEBlock)]
    if len(blocks) != len(mlps):
        raise UnsupportedModelError("the model has dense MLPs; call labkit.moe.moefy(model, ...) first")
    return blocks


def _check_mlp(mlp: object, layer: int) -> SwiGLU:
    names = ("gate_proj", "up_proj", "down_proj")
    if not is_swiglu(mlp):
        raise UnsupportedModelError(
            f"layer {layer}: {type(mlp).__name__} is not a LLaMA-style SwiGLU MLP "
            "(needs Linear gate_proj/up_proj/down_proj and act_fn)"
        )
    if any(getattr(mlp, n).bias is not None for n in names):
        raise UnsupportedModelError(f"layer {layer}: MLP biases (mlp_bias=True) are not supported")
    return mlp


# --------------------------------------------------------------------------- clustering
@contextlib.contextmanager
def _one_thread():
    """Run many tiny tensor ops on one thread (thread synchronisation would dominate them)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def balanced_kmeans(
    features: torch.Tensor, num_clusters: int, *, seed: int = 0, iters: int = 15
) -> list[torch.Tensor]:
    """Cluster the rows of ``features`` ``[n, D]`` into groups whose sizes differ by at most one."""
    with _one_thread():
        return _balanced_kmeans(features, num_clusters, seed=seed, iters=iters)


def _balanced_kmeans(
    features: torch.Tensor, num_clusters: int, *, seed: int = 0, iters: int = 15
) -> list[torch.Tensor]:
    """Cluster the rows of ``features`` ``[n, D]`` into groups whose sizes differ by at most one.

    Cosine k-means (k-means++ seeding) with a balanced assignment each round: every unassigned
    row bids for its most similar open cluster, a cluster keeps its most similar bidders up to its
    size and the rest retry elsewhere (at most K rounds, vectorised). Deterministic for a given
    seed. Returns sorted index tensors (on the CPU). Runs on ``features``' device (a GPU clusters a
    LLaMA2-7B layer in well under a second); the random draws come from a CPU generator, so the
    seeding is the same everywhere.
    """
    n = features.shape[0]
    x = torch.nn.functional.normalize(features.float(), dim=-1)
    sizes = [n // num_clusters + (1 if i < n % num_clusters else 0) for i in range(num_clusters)]
    gen = torch.Generator().manual_seed(seed)
    # k-means++ seeding on cosine distance
    first = int(torch.randint(n, (1,), generator=gen))
    centers = [x[first]]
    dist = 1 - x @ x[first]
    for _ in range(1, num_clusters):
        probs = (dist.clamp(min=0) ** 2).cpu()
        if float(probs.sum()) <= 0:
            probs = torch.ones(n)
        nxt = int(torch.multinomial(probs, 1, generator=gen))
        centers.append(x[nxt])
        dist = torch.minimum(dist, 1 - x @ x[nxt])
    c = torch.stack(centers)
    assign = torch.zeros(n, dtype=torch.long, device=x.device)
    for _ in range(iters):
        new = _balanced_assign(x @ c.t(), sizes)
        if torch.equal(new, assign):
            break
        assign = new
        c = torch.stack(
            [torch.nn.functional.normalize(x[assign == k].mean(0), dim=0) for k in range(num_clusters)]
        )
    return [torch.nonzero(assign == k).flatten().cpu() for k in range(num_clusters)]


def _balanced_assign(sim: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Greedy capacity-constrained assignment of rows of ``sim`` ``[n, K]`` to clusters of ``sizes``."""
    s = sim.clone()
    n, k_total = s.shape
    assign = torch.full((n,), -1, dtype=torch.long, device=s.device)
    room = list(sizes)
    for _ in range(k_total + 1):
        rows = torch.nonzero(assign < 0).flatten()
        if rows.numel() == 0:
            break
        best = s[rows].argmax(-1)
        for k in range(k_total):
            cand = rows[best == k]
            if cand.numel() == 0:
                continue
            take = min(room[k], cand.numel())
            if take > 0:
                top = cand[s[cand, k].topk(take).indices]
                assign[top] = k
                room[k] -= take
            if room[k] == 0:
                s[:, k] = float("-inf")
    return assign


def _coactivation_features(mlp: SwiGLU, hidden: torch.Tensor, top_frac: float = 0.25) -> torch.Tensor:
    """Binary firing pattern ``[f, T]`` of each neuron over calibration inputs ``hidden`` ``[T, d]``."""
    with torch.no_grad():
        h = (mlp.act_fn(mlp.gate_proj(hidden)) * mlp.up_proj(hidden)).abs().float()  # [T, f]
        kth = max(1, int(h.shape[1] * top_frac))
        thresh = h.topk(kth, dim=-1).values[:, -1:]
        fires = (h >= thresh).float()
    return fires.t() - fires.t().mean(-1, keepdim=True)


def neuron_contributions(mlp: SwiGLU, hidden: torch.Tensor) -> torch.Tensor:
    """``|SiLU(g_j)·u_j| · ‖W_d[:, j]‖`` ``[T, f]``: how much neuron j adds to each token's output."""
    with torch.no_grad():
        x = hidden.to(mlp.gate_proj.weight.dtype)
        h = (mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)).abs().float()
        return h * mlp.down_proj.weight.float().norm(dim=0)


def neuron_groups(
    mlp: SwiGLU,
    num_experts: int,
    method: str,
    *,
    hidden: torch.Tensor | None = None,
    seed: int = 0,
    neurons: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Neuron index sets of the ``num_experts`` experts of one dense MLP (see module docstring).

    ``neurons``: split only these neuron indices (default: all ``f``), e.g. those left after the
    shared expert took the most active ones.
    """
    f = mlp.gate_proj.weight.shape[0]
    pool = torch.arange(f) if neurons is None else neurons.cpu()
    if method == "contiguous":
        parts = np.array_split(pool.numpy(), num_experts)
        return [torch.as_tensor(a, dtype=torch.long) for a in parts]
    if method == "kmeans":
        feats = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=1).detach()
        groups = balanced_kmeans(feats[pool.to(feats.device)], num_experts, seed=seed)
    elif method in NEEDS_CALIBRATION:
        if hidden is None:
            raise MoEError(f"method={method!r} needs calibration inputs (calibration=...)")
        if method == "coactivation":
            feats = _coactivation_features(mlp, hidden)
        else:
            feats = neuron_contributions(mlp, hidden).t()
        groups = balanced_kmeans(feats[pool.to(feats.device)], num_experts, seed=seed)
    else:
        raise UnknownMethodError(f"method={method!r} is unknown; choose one of {METHODS}")
    return [pool[g].sort().values for g in groups]


def shared_neurons(mlp: SwiGLU, hidden: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` neurons with the largest mean contribution on calibration inputs (sorted ids)."""
    mean = neuron_contributions(mlp, hidden).mean(0).cpu()
    return mean.topk(size).indices.sort().values


def fit_router(block: MoEBlock, x: torch.Tensor, ridge: float = 1e-2) -> None:
    """Set router logits ≈ centred ``log ‖E_i(x)‖`` by ridge regression on inputs ``x`` ``[T, d]``.

    The analytic router initialisation: a token's logit for expert i predicts the size of that
    expert's contribution (D2DMoE's router target), solved in closed form.
    """
    with torch.no_grad():
        x = x.to(block.w1.device, block.w1.dtype)
        norms = block.expert_forward(x).float().norm(dim=-1).clamp_min(1e-8)  # [T, N]
        target = norms.log()
        target = target - target.mean(-1, keepdim=True)
        xf = x.float()
        eye = torch.eye(x.shape[1], device=x.device)
        a = xf.t() @ xf + ridge * x.shape[0] * eye * xf.pow(2).mean()
        w = torch.linalg.solve(a, xf.t() @ target)  # [d, N]
        block.router.weight.copy_(w.t().to(block.router.weight.dtype))


def _calibration_hidden(
    model: nn.Module, calibration: torch.Tensor, max_tokens: int = 4096
) -> list[torch.Tensor]:
    """MLP inputs ``[T, d]`` of every layer for calibration token ids ``[B, L]`` (dense model)."""
    layers = decoder_layers(model)
    captured: list[torch.Tensor | None] = [None] * len(layers)
    hooks = []
    for i, layer in enumerate(layers):

        def hook(_mod, args, i=i):
            captured[i] = args[0].detach().reshape(-1, args[0].shape[-1])[:max_tokens]

        hooks.append(child(layer, "mlp").register_forward_pre_hook(hook))
    try:
        ids = torch.as_tensor(calibration)
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        dev = next(model.parameters()).device
        with torch.no_grad():
            child(model, "model")(input_ids=ids.to(dev))
    finally:
        for h in hooks:
            h.remove()
    return captured  # type: ignore[return-value]


def moefy(
    model: PreTrainedModel,
    *,
    num_experts: int,
    method: str = "contiguous",
    calibration: torch.Tensor | None = None,
    seed: int = 0,
    shared_fraction: float = 0.0,
) -> PreTrainedModel:
    """Replace every ``LlamaMLP`` of ``model`` (in place) by an :class:`MoEBlock` and return the model.

    Parameters
    ----------
    model:
        A transformers ``LlamaForCausalLM`` (or any model with LLaMA-style SwiGLU MLPs at
        ``model.model.layers[i].mlp``).
    num_experts:
        Experts per FFN, ``2 ≤ N ≤ f``; ``f`` need not be divisible by N (sizes differ by ≤ 1).
    method:
        ``"contiguous"``, ``"kmeans"``, ``"coactivation"`` or ``"activation"`` (the last two need
        ``calibration``).
    calibration:
        Token ids ``[B, L]`` (or ``[L]``): the activations for ``coactivation``/``activation``, the
        shared expert and the router's ridge initialisation.
    seed:
        Seed of the clustering methods.
    shared_fraction:
        Fraction of each FFN's neurons in the always-on shared expert (0 = none; needs
        ``calibration``); ``num_experts`` routed experts split the rest.

    After ``moefy`` the policy is :class:`~labkit.moe.policies.AllExperts` ("all experts, unit
    weights"), so the model reproduces the dense model up to float rounding.

    Raises
    ------
    UnsupportedModelError, UnknownMethodError, MoEError
        Non-LLaMA MLPs, an unknown method, a bad ``num_experts``, or missing calibration.
    """
    if method not in METHODS:
        raise UnknownMethodError(f"method={method!r} is unknown; choose one of {METHODS}")
    layers = decoder_layers(model)
    dense: list[SwiGLU] = []
    for i, layer in enumerate(layers):
        if isinstance(layer.mlp, MoEBlock):
            raise MoEError(f"layer {i} is already an MoE block; moefy a fresh dense model")
        dense.append(_check_mlp(layer.mlp, i))
    f = dense[0].gate_proj.weight.shape[0]
    sf = shared_fraction
    if not (isinstance(sf, (int, float)) and not isinstance(sf, bool) and 0 <= sf < 1):
        raise MoEError(f"shared_fraction={sf!r} must be a number in [0, 1)")
    n_shared = int(round(sf * f))
    routed = f - n_shared
    if not isinstance(num_experts, int) or isinstance(num_experts, bool) or not 2 <= num_experts <= routed:
        raise MoEError(
            f"num_experts={num_experts!r} must be an integer in 2..{routed} "
            f"(the FFN width {f} less the shared expert's {n_shared} neurons)"
        )
    hidden = None
    if method in NEEDS_CALIBRATION or n_shared:
        if calibration is None:
            why = f"method={method!r}" if method in NEEDS_CALIBRATION else f"shared_fraction={sf}"
            raise MoEError(f"{why} needs calibration token ids (calibration=...)")
        hidden = _calibration_hidden(model, calibration)
    with _one_thread():  # thousands of small slicing/clustering ops
        for i, layer in enumerate(layers):
            h = None if hidden is None else hidden[i]
            shared = shared_neurons(dense[i], h, n_shared) if n_shared and h is not None else None
            rest = None
            if shared is not None:
                keep = torch.ones(f, dtype=torch.bool)
                keep[shared] = False
                rest = keep.nonzero().flatten()
            groups = neuron_groups(dense[i], num_experts, method, hidden=h, seed=seed + i, neurons=rest)
            layer.mlp = block = MoEBlock.from_dense(dense[i], groups, shared=shared)
            if h is not None:
                fit_router(block, h)
    model.config.labkit_moe = {
        "num_experts": num_experts,
        "method": method,
        "seed": seed,
        "shared_fraction": sf,
    }
    return model


def set_policy(model: nn.Module, policy: str | Policy | Sequence[str | Policy]) -> nn.Module:
    """Set the routing policy: one for every layer, or a sequence with one per layer.

    Strings ``"all"``, ``"top1"``, ``"top2"``, …, ``"topp0.8[:kmin-kmax]"``, ``"switchTAU:kmin-kmax"``
    or :class:`~labkit.moe.policies.Policy` objects. Returns the model.

    Raises
    ------
    UnknownPolicyError
        Unknown policy, k out of range, or a list of the wrong length.
    """
    from .errors import UnknownPolicyError

    blocks = moe_blocks(model)
    if isinstance(policy, (str, Policy)):
        pols = [parse_policy(policy)] * len(blocks)
    else:
        pols = [parse_policy(p) for p in policy]
        if len(pols) != len(blocks):
            raise UnknownPolicyError(f"got {len(pols)} policies for {len(blocks)} layers; give one per layer")
    for block, pol in zip(blocks, pols, strict=True):
        pol.validate(block.num_experts)
    for block, pol in zip(blocks, pols, strict=True):
        block.policy = pol
    return model


def record_routing(model: nn.Module, enabled: bool = True, reset: bool = True) -> None:
    """Turn per-layer routing statistics on or off (and optionally clear them)."""
    for block in moe_blocks(model):
        block.record_stats = enabled
        if reset:
            block.stats.reset()
