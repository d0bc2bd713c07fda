"""Analyses the Part I chapters show: how routable a split is, and dense-vs-MoE comparisons.

``expert_concentration`` measures, for each token, how much of the FFN output an *oracle* that
knows every expert's output could keep with only k experts: the relative error
``‖Σ_{i∈best k} E_i(x) − FFN(x)‖² / ‖FFN(x)‖²`` where "best k" are the k experts with the largest
output norms. A split whose per-token contributions are concentrated in few experts (low oracle
error) is easier to route. ``compare_dense_moe`` measures the results table of the last chapter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ..config import Profile, get_profile
from .block import MoEBlock
from .construct import decoder_layers
from .hf import child

__all__ = ["capture_mlp_inputs", "compare_dense_moe", "expert_concentration"]


@torch.no_grad()
def capture_mlp_inputs(
    model: torch.nn.Module, ids: torch.Tensor, layers: Sequence[int]
) -> dict[int, torch.Tensor]:
    """MLP inputs ``[T, d]`` of the chosen layers for token ids ``[B, L]`` (in memory; small inputs only)."""
    found: dict[int, torch.Tensor] = {}
    hooks = []
    all_layers = decoder_layers(model)
    for i in layers:

        def hook(_m, args, i=i):
            found[i] = args[0].detach().reshape(-1, args[0].shape[-1]).float().cpu()

        hooks.append(child(all_layers[i], "mlp").register_forward_pre_hook(hook))
    try:
        child(model, "model")(input_ids=ids.to(next(model.parameters()).device), use_cache=False)
    finally:
        for h in hooks:
            h.remove()
    return found


@torch.no_grad()
def expert_concentration(block: MoEBlock, x: torch.Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Mean oracle relative error of keeping the k largest experts, for each k in ``ks``.

    A shared expert (if any) is always kept: the error is
    ``‖E_shared + Σ_{best k} E_i − FFN‖² / ‖FFN‖²``.
    """
    x = x.to(block.w1.device, block.w1.dtype)
    experts = block.expert_forward(x).float()  # [T, N, d]
    shared = block.shared_forward(x).float()
    full = experts.sum(1) + shared
    order = experts.norm(dim=-1).argsort(-1, descending=True)
    denom = full.pow(2).sum(-1).clamp_min(1e-12)
    out = {}
    for k in ks:
        idx = order[:, :k, None].expand(-1, -1, experts.shape[-1])
        part = experts.gather(1, idx).sum(1) + shared
        out[int(k)] = float(((part - full).pow(2).sum(-1) / denom).mean())
    return out


def compare_dense_moe(profile: Profile | str | None = None, *, progress: bool = False) -> dict:
    """The dense-vs-MoE results table for a profile (conversion loaded from the cache or run).

    Measures, on the held-out ``test`` split: perplexity, multiple-choice continuation accuracy,
    activated parameters (routing statistics recorded on the perplexity tokens) and prefill/decode
    latency of both models, interleaved (:func:`~labkit.moe.evaluate.latency_side_by_side`);
    ``fused_calls`` counts the MoE blocks' calls served by
    the C kernels (:mod:`labkit.moe.kernels`) during the latency measurement.
    """
    from . import data, evaluate
    from .accounting import activated_parameters, llama_breakdown
    from .block import MoEBlock
    from .construct import record_routing
    from .pipeline import ConversionConfig, dense_reference, load_or_convert

    p = profile if isinstance(profile, Profile) else get_profile(profile)
    cfg = ConversionConfig.from_profile(p)
    moe_model, tok, report = load_or_convert(cfg, progress=progress)
    dense, _ = dense_reference(cfg)
    s = p.moe
    test = data.token_blocks(tok, "test", s.heldout_tokens, s.seq_len)
    items = data.continuation_choices(tok, num_items=s.eval_items, seed=0)
    out: dict = {"tokens_test": int(test.numel()), "mc_items": len(items)}
    t0 = time.perf_counter()
    out["ppl_dense"] = evaluate.perplexity(dense, test)
    record_routing(moe_model, True)
    out["ppl_moe"] = evaluate.perplexity(moe_model, test)
    acc = activated_parameters(moe_model)
    record_routing(moe_model, False)
    out["acc_dense"] = evaluate.mc_accuracy(dense, items)
    out["acc_moe"] = evaluate.mc_accuracy(moe_model, items)
    blocks = [m for m in moe_model.modules() if isinstance(m, MoEBlock)]
    fused_before = sum(b.fused_calls for b in blocks)
    lat = evaluate.latency_side_by_side({"dense": dense, "moe": moe_model}, prefill_tokens=s.latency_tokens)
    lat_d, lat_m = lat["dense"], lat["moe"]
    out["fused_calls"] = sum(b.fused_calls for b in blocks) - fused_before  # C-kernel calls while timing
    out.update(
        {
            "params_dense": acc.dense_total,
            "params_total_moe": acc.total,
            "params_activated_moe": acc.activated,
            "reduction": acc.reduction,
            "ffn_active_fraction": acc.ffn_active_fraction,
            "prefill_dense_s": lat_d["prefill_s"],
            "prefill_moe_s": lat_m["prefill_s"],
            "decode_dense_ms": lat_d["decode_s_per_token"] * 1e3,
            "decode_moe_ms": lat_m["decode_s_per_token"] * 1e3,
            "train_tokens": report["tokens"]["train"],
            "conversion_wall_s": report["wall_s"],
            "eval_wall_s": time.perf_counter() - t0,
            "mc_chance": 1 / len(items[0].choices),
            "breakdown": llama_breakdown(dense.config),
        }
    )
    return out
