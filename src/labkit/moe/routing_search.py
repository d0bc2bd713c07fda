"""Stage 2: training-free adaptive routing: profile routing weights, score per-layer policies, pick a point.

1. **Profile** (:func:`profile_routing`): per layer, the distribution of the sorted routing weights
   ``p_(1) ≥ p_(2) ≥ …`` on calibration inputs (histogram of the top weight, mean sorted profile).
2. **Candidates** (:func:`candidate_policies`): top-k for every k, top-p mass thresholds, and the
   LaDiMo-style switch rule ``k_min if p_(1) ≥ τ else k_max`` with τ at the layer's own p_(1)
   quartiles (so a known fraction of tokens takes the cheap path).
3. **Score** (:func:`score_candidates`): on held-out validation activations, each candidate's
   relative error ``‖MoE(x) − FFN(x)‖² / ‖FFN(x)‖²`` and its cost (mean fraction of the layer's
   FFN neurons activated, measured). All experts' outputs are computed once per layer, so a
   candidate costs one weighted sum.
4. **Allocate** (:func:`allocate`): a multiple-choice knapsack over layers solved by a Lagrangian
   sweep (each layer minimises ``err + λ·cost``), giving the front of total activated parameters vs
   summed layer error; the chosen policy is the lowest-error point with at least the target reduction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from .block import MoEBlock
from .capture import ActivationStore
from .construct import moe_blocks
from .errors import MoEError
from .policies import AllExperts, Policy, SwitchK, TopK, TopP, parse_policy, routing_weights

__all__ = [
    "Candidate",
    "SearchResult",
    "allocate",
    "candidate_policies",
    "pareto_front",
    "profile_routing",
    "score_candidates",
    "search_policies",
]


def _rows(store: ActivationStore, max_tokens: int) -> slice:
    return slice(0, min(store.num_tokens, max_tokens))


def profile_routing(
    model: torch.nn.Module, store: ActivationStore, *, max_tokens: int = 4096, bins: int = 20
) -> list[dict]:
    """Per-layer routing-weight statistics on captured inputs.

    Returns one dict per layer: ``p1_hist`` (counts of the top weight in ``bins`` equal bins on
    [0, 1]), ``p1_quantiles`` (25/50/75 %), ``mean_sorted`` (mean of the sorted weight vector),
    ``mean_p1``.
    """
    out = []
    rows = _rows(store, max_tokens)
    for i, block in enumerate(moe_blocks(model)):
        x = store.x(i, rows).to(block.router.weight.device, block.router.weight.dtype)
        with torch.no_grad():
            p = block.router(x).float().softmax(-1).sort(-1, descending=True).values.cpu()
        p1 = p[:, 0]
        hist = torch.histc(p1, bins=bins, min=0.0, max=1.0)
        out.append(
            {
                "layer": i,
                "p1_hist": hist.long().tolist(),
                "p1_quantiles": torch.quantile(p1, torch.tensor([0.25, 0.5, 0.75])).tolist(),
                "mean_sorted": p.mean(0).tolist(),
                "mean_p1": float(p1.mean()),
            }
        )
    return out


def candidate_policies(num_experts: int, p1_quantiles: list[float] | None = None) -> list[Policy]:
    """Candidate policies for one layer (see module docstring)."""
    n = num_experts
    cands: list[Policy] = [AllExperts()] + [TopK(k) for k in range(1, n)]
    cands += [TopP(t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
    for tau in p1_quantiles or []:
        for lo in range(1, n):
            for hi in (lo + 1, lo + 2):
                if hi <= n:
                    cands.append(SwitchK(round(float(tau), 4), lo, hi))
    return cands


@dataclass(frozen=True)
class Candidate:
    """One policy of one layer: its measured error and cost on validation activations."""

    layer: int
    policy: str
    rel_error: float
    ffn_fraction: float
    mean_k: float


def _apply(
    block: MoEBlock, pol: Policy, logits: torch.Tensor, experts: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if pol.unit_weights:
        mask = torch.ones_like(logits, dtype=torch.bool)
        g = mask.float()
    else:
        mask = pol.select(logits)
        g = routing_weights(logits, mask, block.weighting)
    return torch.einsum("tn,tnd->td", g, experts.float()), mask


def score_candidates(
    model: torch.nn.Module,
    store: ActivationStore,
    *,
    max_tokens: int = 4096,
    profiles: list[dict] | None = None,
) -> list[list[Candidate]]:
    """Score every candidate policy of every layer on validation activations with dense outputs."""
    if not store.has_outputs:
        raise MoEError(f"store {store.folder} needs the dense MLP outputs (capture with outputs=True)")
    rows = _rows(store, max_tokens)
    table = []
    for i, block in enumerate(moe_blocks(model)):
        dev, dt = block.w1.device, block.w1.dtype
        x = store.x(i, rows).to(dev, dt)
        y = store.y(i, rows).to(dev).float()
        quart = profiles[i]["p1_quantiles"] if profiles else None
        sizes = block.expert_sizes.float().to(dev)
        with torch.no_grad():
            experts = block.expert_forward(x)
            logits = block.router(x)
            denom = float(y.pow(2).mean()) + 1e-12
            layer = []
            for pol in candidate_policies(block.num_experts, quart):
                out, mask = _apply(block, pol, logits, experts)
                err = float((out - y).pow(2).mean()) / denom
                frac = float((mask.float() * sizes).sum(-1).mean() / sizes.sum())
                layer.append(Candidate(i, pol.spec(), err, frac, float(mask.sum(-1).float().mean())))
        table.append(layer)
    return table


def pareto_front(costs: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (lower cost and lower error are better), by cost."""
    order = np.lexsort((errors, costs))
    keep = []
    best = np.inf
    for j in order:
        if errors[j] < best - 1e-15:
            keep.append(j)
            best = errors[j]
    return np.array(keep, dtype=int)


@dataclass
class SearchResult:
    """Stage-2 outcome: per-layer profiles and candidates, the global front and the chosen policy."""

    profiles: list[dict]
    candidates: list[list[dict]]
    front: list[dict]
    chosen: list[str]
    chosen_reduction: float
    chosen_error: float
    target_reduction: float
    target_met: bool
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        return asdict(self)


def allocate(
    table: list[list[Candidate]],
    ffn_params: list[int],
    non_ffn: int,
    dense_total: int,
    target_reduction: float,
    num_lambdas: int = 400,
) -> tuple[list[dict], int | None]:
    """Lagrangian sweep over per-layer choices; returns (front, index of the chosen front point or None).

    Each front point: ``reduction`` (1 − activated/dense, with measured FFN fractions),
    ``error`` (sum of layer relative errors), ``policies`` (one spec per layer).
    Router parameters are counted as activated.
    """
    mean_ffn = float(np.mean(ffn_params))
    sols = {}
    for lam in np.concatenate([[0.0], np.geomspace(1e-5, 1e2, num_lambdas)]):
        pick = []
        for layer, cands in enumerate(table):
            score = [c.rel_error + lam * c.ffn_fraction * ffn_params[layer] / mean_ffn for c in cands]
            pick.append(int(np.argmin(score)))
        sols[tuple(pick)] = None
    points = []
    for pick in sols:
        act_ffn = sum(table[layer][j].ffn_fraction * ffn_params[layer] for layer, j in enumerate(pick))
        activated = non_ffn + act_ffn
        err = sum(table[layer][j].rel_error for layer, j in enumerate(pick))
        points.append(
            {
                "reduction": 1 - activated / dense_total,
                "error": err,
                "policies": [table[layer][j].policy for layer, j in enumerate(pick)],
            }
        )
    costs = np.array([-p["reduction"] for p in points])
    errs = np.array([p["error"] for p in points])
    front = [points[j] for j in pareto_front(costs, errs)]
    ok = [j for j, p in enumerate(front) if p["reduction"] >= target_reduction - 1e-12]
    chosen = min(ok, key=lambda j: front[j]["error"]) if ok else None
    return front, chosen


def search_policies(
    model: torch.nn.Module,
    valid: ActivationStore,
    *,
    target_reduction: float = 0.2,
    max_tokens: int = 4096,
    profile_store: ActivationStore | None = None,
) -> SearchResult:
    """Run stage 2 and set nothing: returns the front and the chosen per-layer policy.

    ``valid`` must hold dense MLP outputs; ``profile_store`` (default ``valid``) supplies the
    routing-weight profiles. If no point reaches ``target_reduction`` the cheapest front point is
    chosen and ``target_met`` is False.
    """
    from .accounting import activated_parameters

    if not 0.0 <= target_reduction < 1.0:
        raise MoEError(f"target_reduction={target_reduction} must be in [0, 1)")
    profiles = profile_routing(model, profile_store or valid, max_tokens=max_tokens)
    table = score_candidates(model, valid, max_tokens=max_tokens, profiles=profiles)
    acc = activated_parameters(model, use_stats=False)
    ffn_params = [r["ffn_params"] for r in acc.per_layer]
    routers = sum(r["router_params"] for r in acc.per_layer)
    front, chosen = allocate(table, ffn_params, acc.non_ffn + routers, acc.dense_total, target_reduction)
    met = chosen is not None
    if chosen is None:
        chosen = int(np.argmax([p["reduction"] for p in front]))
    point = front[chosen]
    for spec in point["policies"]:
        parse_policy(spec)
    return SearchResult(
        profiles=profiles,
        candidates=[[asdict(c) for c in layer] for layer in table],
        front=front,
        chosen=point["policies"],
        chosen_reduction=point["reduction"],
        chosen_error=point["error"],
        target_reduction=target_reduction,
        target_met=met,
    )
