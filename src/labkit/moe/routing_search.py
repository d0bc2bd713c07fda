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
4. **Sensitivity** (:func:`layer_sensitivity`, optional): layers differ in how much a unit of
   relative error costs the model end to end. Sparsifying one layer at a time on validation text
   measures ``w_ℓ = ΔNLL_ℓ / e_ℓ``, the validation NLL increase per unit of that layer's error.
   A per-layer latency table measured on the running device (:func:`latency_table`: one decode
   step of the block at each k) gives each candidate its expected time, so the front can be read,
   or searched (``cost="latency"``), in seconds as LaDiMo does, not only in parameters.
5. **Allocate** (:func:`allocate`): a multiple-choice knapsack over layers solved by a Lagrangian
   sweep (each layer minimises ``w_ℓ·err + λ·cost``), giving the front of total activated
   parameters vs the predicted NLL increase ``Σ_ℓ w_ℓ e_ℓ`` (vs the summed error when every
   ``w_ℓ = 1``); the chosen policy is the best point with at least the target reduction. Every
   layer keeps the "all experts" candidate, so a sensitive layer can stay (almost) dense. An
   optional floor (:func:`floor_candidates`) leaves out candidates that run fewer than ``min_k``
   routed experts per token: the linear model ``w_ℓ·e_ℓ`` is measured at one probe point and
   under-predicts the loss of a layer cut far below it.

Steps 1, 3 and 4 are per layer. Under ``torchrun`` :func:`search_policies` deals the layers out
over the ranks (each profiles, scores and probes its own, and one rank measures the all-experts
baseline), gathers the results and allocates on every rank; each layer's numbers are computed as
one process computes them, so the result is the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .. import distributed as dist
from .block import MoEBlock
from .capture import ActivationStore
from .construct import moe_blocks
from .errors import MoEError
from .policies import AllExperts, Policy, SwitchK, TopK, TopP, parse_policy, routing_weights

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "Candidate",
    "SearchResult",
    "allocate",
    "candidate_policies",
    "floor_candidates",
    "latency_table",
    "layer_sensitivity",
    "pareto_front",
    "profile_routing",
    "score_candidates",
    "search_policies",
]


#: :func:`layer_sensitivity` probes each layer with the top-k candidate nearest this FFN fraction.
PROBE_FRACTION = 0.6
#: Histogram bins of :func:`profile_routing`'s top routing weight.
PROFILE_BINS = 20


def _rows(store: ActivationStore, max_tokens: int) -> slice:
    return slice(0, min(store.num_tokens, max_tokens))


def profile_routing(
    model: torch.nn.Module, store: ActivationStore, *, max_tokens: int = 4096, bins: int = PROFILE_BINS
) -> list[dict]:
    """Per-layer routing-weight statistics on captured inputs.

    Returns one dict per layer: ``p1_hist`` (counts of the top weight in ``bins`` equal bins on
    [0, 1]), ``p1_quantiles`` (25/50/75 %), ``mean_sorted`` (mean of the sorted weight vector),
    ``mean_p1``.
    """
    rows = _rows(store, max_tokens)
    return [_profile_layer(block, i, store, rows, bins) for i, block in enumerate(moe_blocks(model))]


def _profile_layer(block: MoEBlock, i: int, store: ActivationStore, rows: slice, bins: int) -> dict:
    """:func:`profile_routing` of layer ``i``."""
    x = store.x(i, rows).to(block.router.weight.device, block.router.weight.dtype)
    with torch.no_grad():
        p = block.router(x).float().softmax(-1).sort(-1, descending=True).values.cpu()
    p1 = p[:, 0]
    hist = torch.histc(p1, bins=bins, min=0.0, max=1.0)
    return {
        "layer": i,
        "p1_hist": hist.long().tolist(),
        "p1_quantiles": torch.quantile(p1, torch.tensor([0.25, 0.5, 0.75])).tolist(),
        "mean_sorted": p.mean(0).tolist(),
        "mean_p1": float(p1.mean()),
    }


def candidate_policies(
    num_experts: int, p1_quantiles: list[float] | None = None, max_k_values: int = 24
) -> list[Policy]:
    """Candidate policies for one layer (see module docstring).

    With more than ``max_k_values`` experts (fine-grained splits), top-k and the switch rule's
    ``k_min`` take ``max_k_values`` values spread evenly over ``1..N-1`` instead of every k.
    """
    n = num_experts
    ks = sorted({int(round(v)) for v in np.linspace(1, n - 1, min(n - 1, max_k_values))})
    step = max(1, (n - 1) // max(1, len(ks) - 1)) if n - 1 > max_k_values else 1
    cands: list[Policy] = [AllExperts()] + [TopK(k) for k in ks]
    cands += [TopP(t) for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
    for tau in p1_quantiles or []:
        for lo in ks:
            for hi in (lo + step, lo + 2 * step):
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
    latency_s: float | None = None


def score_candidates(
    model: torch.nn.Module,
    store: ActivationStore,
    *,
    max_tokens: int = 4096,
    profiles: list[dict] | None = None,
) -> list[list[Candidate]]:
    """Score every candidate policy of every layer on validation activations with dense outputs."""
    _check_outputs(store)
    rows = _rows(store, max_tokens)
    return [
        _score_layer(block, i, store, rows, profiles[i]["p1_quantiles"] if profiles else None)
        for i, block in enumerate(moe_blocks(model))
    ]


def _check_outputs(store: ActivationStore) -> None:
    if not store.has_outputs:
        raise MoEError(f"store {store.folder} needs the dense MLP outputs (capture with outputs=True)")


def _score_layer(
    block: MoEBlock, i: int, store: ActivationStore, rows: slice, quart: list[float] | None
) -> list[Candidate]:
    """:func:`score_candidates` of layer ``i`` (``quart``: its p_(1) quartiles, or ``None``).

    A candidate's output is ``s + Σ_n g_n E_n`` (shared expert ``s``, routed outputs ``E_n``,
    weights ``g``), so its squared error per token is the quadratic form
    ``gᵀ G g + 2 gᵀ b + ‖s − y‖²`` with the Gram matrix ``G_nm = E_n·E_m`` and ``b_n = E_n·(s − y)``,
    computed once per layer: a candidate then costs ``N²`` per token instead of ``N·d`` (12× less
    at SmolLM2's d = 576 and N = 48). "All experts" is scored directly (its error can be ~0, below
    the quadratic form's rounding).
    """
    dev, dt = block.w1.device, block.w1.dtype
    x = store.x(i, rows).to(dev, dt)
    y = store.y(i, rows).to(dev).float()
    sizes = block.expert_sizes.float().to(dev)
    s = float(block.shared_size)
    with torch.no_grad():
        experts = block.expert_forward(x).float()
        resid = block.shared_forward(x).float() - y
        logits = block.router(x)
        denom = float(y.pow(2).mean()) + 1e-12
        scale = 1.0 / (y.numel() * denom)
        gram = torch.bmm(experts, experts.transpose(1, 2)).double()  # [T, N, N]
        cross = torch.einsum("tnd,td->tn", experts, resid).double()  # [T, N]
        rr = float(resid.double().pow(2).sum())
        layer = []
        for pol in candidate_policies(block.num_experts, quart):
            if pol.unit_weights:
                mask = torch.ones_like(logits, dtype=torch.bool)
                err = float((experts.sum(1) + resid).pow(2).mean()) / denom
            else:
                mask = pol.select(logits)
                g = routing_weights(logits, mask, block.weighting).double()
                quad = torch.einsum("tn,tnm,tm->", g, gram, g) + 2 * (g * cross).sum()
                err = max(float(quad) + rr, 0.0) * scale
            frac = float(((mask.float() * sizes).sum(-1).mean() + s) / (sizes.sum() + s))
            layer.append(Candidate(i, pol.spec(), err, frac, float(mask.sum(-1).float().mean())))
    return layer


def floor_candidates(table: list[list[Candidate]], min_k: float) -> list[list[Candidate]]:
    """Each layer's candidates that run at least ``min_k`` routed experts per token on average
    (``mean_k``), and "all experts" in any case."""
    return [[c for c in layer if c.policy == "all" or c.mean_k >= min_k - 1e-9] for layer in table]


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
    weights: list[float] | None = None,
    cost: str = "params",
) -> tuple[list[dict], int | None]:
    """Lagrangian sweep over per-layer choices; returns (front, index of the chosen front point or None).

    Each front point: ``reduction`` (1 − activated/dense, with measured FFN fractions),
    ``error`` (``Σ_ℓ w_ℓ e_ℓ``: the sum of layer relative errors weighted by ``weights``, one
    per layer, default 1), ``policies`` (one spec per layer), and ``latency_ms`` (the layers'
    summed candidate latencies) when the candidates carry them. Router parameters are counted as
    activated. ``cost="latency"`` sweeps error against that latency instead of parameters, and
    the front is then non-dominated in (latency, error); the chosen point must still reach
    ``target_reduction``. On a block so small that routing costs more than the experts it skips,
    "all experts" is both fastest and exact, and no point may reach the target.
    """
    if cost not in ("params", "latency"):
        raise MoEError(f"cost={cost!r} must be 'params' or 'latency'")
    timed = all(c.latency_s is not None for layer in table for c in layer)
    if cost == "latency" and not timed:
        raise MoEError("cost='latency' needs candidates with latency_s (search with latency=True)")
    w = [1.0] * len(table) if weights is None else [float(v) for v in weights]
    if len(w) != len(table) or not all(np.isfinite(v) and v >= 0 for v in w):
        raise MoEError(f"weights must be {len(table)} finite numbers ≥ 0, got {weights!r}")
    mean_ffn = float(np.mean(ffn_params))
    sols: dict[tuple[int, ...], None] = {}  # an ordered set of per-layer picks
    for lam in np.concatenate([[0.0], np.geomspace(1e-7, 1e2, num_lambdas)]):
        pick = []
        for layer, cands in enumerate(table):
            if cost == "latency":
                score = [w[layer] * c.rel_error + lam * c.latency_s * 1e3 for c in cands]
            else:
                score = [
                    w[layer] * c.rel_error + lam * c.ffn_fraction * ffn_params[layer] / mean_ffn
                    for c in cands
                ]
            pick.append(int(np.argmin(score)))
        sols[tuple(pick)] = None
    points: list[dict[str, Any]] = []
    for sol in sols:
        act_ffn = sum(table[layer][j].ffn_fraction * ffn_params[layer] for layer, j in enumerate(sol))
        activated = non_ffn + act_ffn
        err = sum(w[layer] * table[layer][j].rel_error for layer, j in enumerate(sol))
        points.append(
            {
                "reduction": 1 - activated / dense_total,
                "error": err,
                "policies": [table[layer][j].policy for layer, j in enumerate(sol)],
            }
        )
        if timed:
            points[-1]["latency_ms"] = 1e3 * sum(table[la][j].latency_s or 0.0 for la, j in enumerate(sol))
    if cost == "latency":
        costs = np.array([p["latency_ms"] for p in points])
    else:
        costs = np.array([-p["reduction"] for p in points])
    errs = np.array([p["error"] for p in points])
    front = [points[j] for j in pareto_front(costs, errs)]
    ok = [j for j, p in enumerate(front) if p["reduction"] >= target_reduction - 1e-12]
    chosen = min(ok, key=lambda j: front[j]["error"]) if ok else None
    return front, chosen


def latency_table(block: MoEBlock, ks: list[int], *, tokens: int = 1, min_run_s: float = 0.05) -> dict:
    """Median seconds of one call of ``block`` on ``tokens`` tokens under top-k, for each k in ``ks``,
    and under "all experts" (key ``"all"``), measured with :mod:`torch.utils.benchmark` on the
    block's device and dtype (decode when ``tokens`` = 1)."""
    from torch.utils import benchmark

    from .policies import TopK

    x = torch.randn(1, tokens, block.hidden_size, device=block.w1.device, dtype=block.w1.dtype)
    table: dict = {}
    with torch.no_grad():
        keys: list[int | str] = [*ks, "all"]
        for k in keys:
            pol = AllExperts() if k == "all" else TopK(int(k))
            timer = benchmark.Timer(
                stmt="block(x, policy=pol)",
                globals={"block": block, "x": x, "pol": pol},
                num_threads=torch.get_num_threads(),
            )
            table[k] = float(timer.adaptive_autorange(min_run_time=min_run_s).median)
    return table


def _with_latency(table: list[list[Candidate]], lat: dict, num_experts: int) -> list[list[Candidate]]:
    ks = sorted(k for k in lat if k != "all")
    xs, ys = [*ks, num_experts], [lat[k] for k in ks] + [lat["all"]]
    return [
        [
            replace(c, latency_s=float(lat["all"] if c.policy == "all" else np.interp(c.mean_k, xs, ys)))
            for c in layer
        ]
        for layer in table
    ]


class _SuffixProbe:
    """Log-perplexity of token ``blocks`` with one layer's policy changed, computed from that layer on.

    One pass with every layer on all experts records each decoder layer's input (and the arguments
    the body passes to every layer: mask, rotary embeddings). Sparsifying layer ℓ leaves layers
    0..ℓ-1 as they were, so a probe of layer ℓ reruns only layers ℓ..L-1, the final norm and the LM
    head on the recorded inputs: on average half the layers, with the same operations on the same
    tensors as a full forward. The NLL is summed as :func:`labkit.moe.evaluate.perplexity` sums it.
    Memory: the layer inputs, ``L × tokens × d`` values in the model's dtype.
    """

    def __init__(self, model: PreTrainedModel, blocks: torch.Tensor, batch_size: int = 4) -> None:
        from .construct import decoder_layers, set_policy

        self.model, self.blocks, self.batch_size = model, blocks, batch_size
        self.layers = decoder_layers(model)
        self.body, self.head = model.model, model.get_output_embeddings()
        self.dev = next(model.parameters()).device
        self.inputs: list[list[torch.Tensor]] = []  # per batch, per layer
        self.kwargs: list[dict] = []
        set_policy(model, "all")
        current: list[torch.Tensor] = []

        def record(i):
            def hook(_mod, args, kwargs):
                current.append(args[0] if args else kwargs["hidden_states"])
                if i == 0:
                    self.kwargs.append({k: v for k, v in kwargs.items() if k != "hidden_states"})

            return hook

        hooks = [
            layer.register_forward_pre_hook(record(i), with_kwargs=True)
            for i, layer in enumerate(self.layers)
        ]
        try:
            nll = 0.0
            with torch.no_grad():
                for s in range(0, blocks.shape[0], batch_size):
                    current = []
                    ids = blocks[s : s + batch_size].to(self.dev)
                    hidden = self.body(input_ids=ids, use_cache=False).last_hidden_state
                    nll += self._head_nll(hidden, ids)
                    self.inputs.append(current)
        finally:
            for h in hooks:
                h.remove()
        self.count = int(blocks.shape[0]) * (int(blocks.shape[1]) - 1)
        self.base = nll / self.count  # mean NLL (nats), all experts

    def _head_nll(self, hidden: torch.Tensor, ids: torch.Tensor) -> float:
        from .evaluate import head_nll

        return head_nll(self.head, hidden, ids)

    def mean_nll(self, layer: int, policy: Policy) -> float:
        """Mean NLL (nats) with ``layer`` under ``policy`` and every other layer on all experts."""
        block = moe_blocks(self.model)[layer]
        saved = block.policy
        block.policy = policy
        nll = 0.0
        try:
            with torch.no_grad():
                for b, s in enumerate(range(0, self.blocks.shape[0], self.batch_size)):
                    h = self.inputs[b][layer]
                    for dec in self.layers[layer:]:
                        h = dec(h, **self.kwargs[b])
                        h = h[0] if isinstance(h, tuple) else h
                    ids = self.blocks[s : s + self.batch_size].to(self.dev)
                    nll += self._head_nll(self.body.norm(h), ids)
        finally:
            block.policy = saved
        return nll / self.count


def layer_sensitivity(
    model: PreTrainedModel,
    blocks: torch.Tensor,
    table: list[list[Candidate]],
    *,
    probe_fraction: float = PROBE_FRACTION,
) -> list[dict]:
    """End-to-end sensitivity of each layer: validation NLL increase per unit of relative error.

    For layer ℓ alone, the top-k candidate whose FFN fraction is nearest ``probe_fraction``
    replaces "all experts" (every other layer keeps all experts); ``ΔNLL_ℓ`` is the increase of the
    mean next-token NLL (nats) on token ``blocks`` ``[B, L]`` and ``w_ℓ = ΔNLL_ℓ / e_ℓ`` with
    ``e_ℓ`` that candidate's relative error from ``table``. Restores the model's policies. Each
    probe reruns only layers ℓ..L-1 on the recorded inputs of an all-experts pass (``_SuffixProbe``),
    which gives the same numbers as a full forward in about half the time.
    Returns one dict per layer: ``layer``, ``probe``, ``delta_nll``, ``rel_error``, ``weight``.
    """
    blocks_ = moe_blocks(model)
    saved = [b.policy for b in blocks_]
    out = []
    try:
        probe_run = _SuffixProbe(model, blocks)
        for layer, cands in enumerate(table):
            probe = _probe(cands, probe_fraction)
            delta = probe_run.mean_nll(layer, parse_policy(probe.policy)) - probe_run.base
            out.append(_sensitivity_row(layer, probe, delta))
    finally:
        for b, pol in zip(blocks_, saved, strict=True):
            b.policy = pol
    return out


def _probe(cands: list[Candidate], probe_fraction: float) -> Candidate:
    """The top-k candidate whose FFN fraction is nearest ``probe_fraction``."""
    tops = [c for c in cands if c.policy.startswith("top") and not c.policy.startswith("topp")]
    return min(tops, key=lambda c: abs(c.ffn_fraction - probe_fraction))


def _sensitivity_row(layer: int, probe: Candidate, delta: float) -> dict:
    weight = max(delta, 0.0) / max(probe.rel_error, 1e-9)
    return {
        "layer": layer,
        "probe": probe.policy,
        "delta_nll": delta,
        "rel_error": probe.rel_error,
        "weight": weight,
    }


def search_policies(
    model: PreTrainedModel,
    valid: ActivationStore,
    *,
    target_reduction: float = 0.2,
    max_tokens: int = 4096,
    profile_store: ActivationStore | None = None,
    sensitivity_blocks: torch.Tensor | None = None,
    latency: bool = False,
    cost: str = "params",
    min_k: float = 1.0,
    sensitivity: list[dict] | None = None,
    distributed: bool | None = None,
) -> SearchResult:
    """Run stage 2 and set nothing: returns the front and the chosen per-layer policy.

    ``valid`` must hold dense MLP outputs; ``profile_store`` (default ``valid``) supplies the
    routing-weight profiles. With ``sensitivity_blocks`` (validation token ids ``[B, L]``) the
    search weighs each layer's error by its measured :func:`layer_sensitivity` and the front's
    ``error`` is the predicted NLL increase; without, all layers weigh 1. With ``latency`` a
    decode latency table of the first block (every layer has its shape) annotates candidates and
    front points (``latency_ms``), and ``cost="latency"`` searches on it. If no point reaches
    ``target_reduction`` the cheapest front point is chosen and ``target_met`` is False.

    ``min_k`` is the fewest routed experts per token (mean over the validation tokens) a layer
    may run: candidates below it are left out ("all experts" always stays). The sensitivity
    weights are measured at one probe point (about 60 % of the FFN's neurons, see
    :func:`layer_sensitivity`), and a layer cut far below it loses more than the linear model
    ``w_ℓ·e_ℓ`` predicts; the floor keeps the search nearer to where that model was measured.
    ``candidates`` keeps every candidate; the floor is ``extra["min_k"]``.

    ``sensitivity``: rows of an earlier :func:`layer_sensitivity` (one per layer) whose weights are
    used instead of measuring them again (``sensitivity_blocks`` is then not needed). A layer's
    weight ``ΔNLL_ℓ / e_ℓ`` is a property of where the layer sits more than of its experts' exact
    weights, so allocate-then-train (:func:`labkit.moe.pipeline.convert`) measures it once, on the
    untrained MoE, and reuses it after stage 1.

    Under torchrun (``distributed=None``: whenever a process group of several ranks is running;
    ``False``: never) every rank calls this with the same model and stores, and the layers are dealt
    out (:func:`labkit.distributed.map_over_ranks`): each rank profiles, scores and (with
    ``sensitivity_blocks``) probes its own layers, one rank evaluates the all-experts baseline, and
    the results are gathered. Each layer's numbers are computed as one process computes them, so
    every rank returns the result one process returns (bit for bit with the same thread count);
    the latency table is measured by rank 0 and sent to the others.
    """
    from .accounting import activated_parameters

    if not 0.0 <= target_reduction < 1.0:
        raise MoEError(f"target_reduction={target_reduction} must be in [0, 1)")
    n_exp = moe_blocks(model)[0].num_experts
    if not (isinstance(min_k, (int, float)) and 1 <= min_k <= n_exp):
        raise MoEError(f"min_k={min_k!r} must be a number in [1, num_experts={n_exp}]")
    n_layers = len(moe_blocks(model))
    if sensitivity is not None:
        if len(sensitivity) != n_layers or not all(
            isinstance(r, dict) and np.isfinite(r.get("weight", np.nan)) for r in sensitivity
        ):
            raise MoEError(
                f"sensitivity must be {n_layers} rows with a finite 'weight' (one per layer), "
                f"got {len(sensitivity)} rows"
            )
        sensitivity_blocks = None
    over_ranks = distributed is not False and dist.is_distributed()
    sens = None if sensitivity is None else [dict(r) for r in sensitivity]
    if over_ranks:
        profiles, table, measured = _layers_over_ranks(
            model, valid, profile_store or valid, max_tokens, sensitivity_blocks
        )
        sens = measured if sens is None else sens
    else:
        profiles = profile_routing(model, profile_store or valid, max_tokens=max_tokens)
        table = score_candidates(model, valid, max_tokens=max_tokens, profiles=profiles)
    acc = activated_parameters(model, use_stats=False)
    ffn_params = [r["ffn_params"] for r in acc.per_layer]
    routers = sum(r["router_params"] for r in acc.per_layer)
    lat = None
    if latency or cost == "latency":
        first = moe_blocks(model)[0]
        ks = sorted({c.mean_k for c in table[0] if c.policy.startswith("top") and "p" not in c.policy[3:]})
        if not over_ranks or dist.rank() == 0:
            lat = latency_table(first, [int(k) for k in ks])
        if over_ranks:
            lat = dist.broadcast_object(lat)
        assert lat is not None
        table = _with_latency(table, lat, first.num_experts)
    if sensitivity_blocks is not None and not over_ranks:
        sens = layer_sensitivity(model, sensitivity_blocks, table)
    weights = None if sens is None else [s["weight"] for s in sens]
    front, chosen = allocate(
        floor_candidates(table, min_k),
        ffn_params,
        acc.non_ffn + routers,
        acc.dense_total,
        target_reduction,
        weights=weights,
        cost=cost,
    )
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
        extra={
            "min_k": min_k,
            **({} if sens is None else {"sensitivity": sens}),
            **({} if sensitivity is None else {"sensitivity_reused": True}),
            **({} if lat is None else {"latency_table_s": {str(k): v for k, v in lat.items()}}),
        },
    )


def _layers_over_ranks(
    model: PreTrainedModel,
    valid: ActivationStore,
    profile_store: ActivationStore,
    max_tokens: int,
    sensitivity_blocks: torch.Tensor | None,
) -> tuple[list[dict], list[list[Candidate]], list[dict] | None]:
    """:func:`search_policies`' per-layer work dealt out over the ranks: ``(profiles, table, sensitivity)``.

    A unit is a layer (its profile, its candidates' scores and, with ``sensitivity_blocks``, the
    mean NLL with that layer alone on its probe) or ``"base"`` (the mean NLL with every layer on all
    experts); a rank that probes records its own all-experts pass first (``_SuffixProbe``). Each
    unit computes exactly what :func:`profile_routing`, :func:`score_candidates` and
    :func:`layer_sensitivity` compute for it in one process, so the gathered results are theirs.
    Restores the model's policies.
    """
    _check_outputs(valid)
    blocks_ = moe_blocks(model)
    prows, vrows = _rows(profile_store, max_tokens), _rows(valid, max_tokens)
    runs: list[_SuffixProbe] = []  # this rank's recorded all-experts pass, made on first use

    def probe_run() -> _SuffixProbe:
        if not runs:
            assert sensitivity_blocks is not None
            runs.append(_SuffixProbe(model, sensitivity_blocks))
        return runs[0]

    def unit(u: int | str) -> Any:
        if u == "base":
            return probe_run().base
        assert isinstance(u, int)
        prof = _profile_layer(blocks_[u], u, profile_store, prows, PROFILE_BINS)
        cands = _score_layer(blocks_[u], u, valid, vrows, prof["p1_quantiles"])
        if sensitivity_blocks is None:
            return prof, cands, None
        return prof, cands, probe_run().mean_nll(u, parse_policy(_probe(cands, PROBE_FRACTION).policy))

    units: list[int | str] = [*range(len(blocks_)), *(["base"] if sensitivity_blocks is not None else [])]
    saved = [b.policy for b in blocks_]
    try:
        done = dist.map_over_ranks(unit, units, what="routing search (stage 2)")
    finally:
        for b, pol in zip(blocks_, saved, strict=True):
            b.policy = pol
    layers = range(len(blocks_))
    profiles = [done[i][0] for i in layers]
    table = [done[i][1] for i in layers]
    if sensitivity_blocks is None:
        return profiles, table, None
    base = done["base"]
    sens = [_sensitivity_row(i, _probe(table[i], PROBE_FRACTION), done[i][2] - base) for i in layers]
    return profiles, table, sens
