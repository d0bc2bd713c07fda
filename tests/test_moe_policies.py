"""Routing policies, bad input, and activated-parameter accounting of labkit.moe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe.accounting import llama_breakdown
from labkit.moe.policies import SwitchK, TopK, TopP, parse_policy

pytestmark = pytest.mark.usefixtures("one_thread")


def test_parse_round_trip_and_unknown():
    for spec in ["all", "top1", "top3", "topp0.8", "topp0.7:2-5", "switch0.5:2-4"]:
        assert parse_policy(spec).spec() == spec
        assert parse_policy(parse_policy(spec).spec()) == parse_policy(spec)
    for bad in ["top", "bottom2", "topp", "switch0.5", 3, None]:
        with pytest.raises(moe.UnknownPolicyError):
            parse_policy(bad)


def test_adaptive_rules_follow_their_formulas():
    # routing weights p = softmax(logits): token 0 peaked, token 1 flat
    logits = torch.log(torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.3, 0.3, 0.2, 0.2]]))
    assert TopP(0.65).select(logits).sum(-1).tolist() == [1, 3]  # 0.7 ≥ .65; .3+.3 < .65 ≤ .8
    assert TopP(0.65, 2, 2).select(logits).sum(-1).tolist() == [2, 2]
    assert SwitchK(0.5, 1, 3).select(logits).sum(-1).tolist() == [1, 3]
    mask = TopK(2).select(logits)
    assert mask[0, 0] and mask.sum().item() == 4


def _near_threshold(pol, logits: torch.Tensor) -> torch.Tensor:
    """Rows whose rule compares a weight within float32 rounding (1e-6) of its threshold."""
    p = logits.double().softmax(-1).sort(-1, descending=True).values
    if isinstance(pol, TopP):
        return ((p.cumsum(-1)[:, :-1] - (pol.tau - 1e-7)).abs() < 1e-6).any(-1)  # the last is clamped
    if isinstance(pol, SwitchK):
        return (p[:, 0] - pol.tau).abs() < 1e-6
    return torch.zeros(len(logits), dtype=torch.bool)


@pytest.mark.parametrize("n", [2, 5, 8, 16, 64])
def test_select_one_matches_select(n):
    """The decode path's per-token rule (Python floats) picks what the tensor rule picks, except
    where a weight is within float32 rounding of the rule's threshold."""
    g = torch.Generator().manual_seed(n)
    scale = torch.tensor([0.3, 1.0, 3.0]).repeat_interleave(134)[:400, None]  # flat to peaked rows
    logits = torch.randn(400, n, generator=g) * scale
    policies = [TopK(min(3, n)), TopP(0.5), TopP(0.7), TopP(0.9), TopP(0.95), TopP(0.99)]
    policies += [TopP(0.8, 2, max(2, n - 1)), SwitchK(0.3, 1, n), SwitchK(0.5, 1, min(2, n))]
    policies += [SwitchK(2.0 / n, max(1, n // 2), n)]
    for pol in policies:
        mask = pol.select(logits)
        near = _near_threshold(pol, logits)
        assert near.float().mean() < 0.05, pol
        got = [pol.select_one(row) for row, skip in zip(logits, near, strict=True) if not skip]
        want = [row.nonzero().flatten().tolist() for row, skip in zip(mask, near, strict=True) if not skip]
        assert got == want, pol
        if pol in (TopP(0.7), TopP(0.9)) and n > 2:
            assert len({len(s) for s in got}) > 1, pol  # the rows reach both sides of the rule
    # bf16 logits (the gpu profile) are read exactly
    row = logits[7].bfloat16()
    assert TopP(0.7).select_one(row) == TopP(0.7).select(row[None])[0].nonzero().flatten().tolist()


def test_select_one_boundaries_and_ties():
    # exact masses: p = (0.5, 0.25, 0.25) reaches tau = 0.75 with two experts, not three
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25]))
    assert TopP(0.75).select_one(logits) == TopP(0.75).select(logits[None])[0].nonzero().flatten().tolist()
    assert len(TopP(0.75).select_one(logits)) == 2
    assert SwitchK(0.5, 1, 3).select_one(logits) == [0]  # p_(1) = 0.5 ≥ τ
    assert SwitchK(0.5001, 1, 3).select_one(logits) == [0, 1, 2]
    # ties go to the lower expert id, as TopK.select_one
    tied = torch.tensor([1.0, 2.0, 2.0, 2.0])
    assert TopP(0.25).select_one(tied) == [1]
    assert SwitchK(0.9, 2, 2).select_one(tied) == [1, 2]


def test_subclassed_policies_keep_their_own_rule():
    """A subclass that redefines select is routed by it on every path, the C decode kernel's
    built-in rules included (kernel_rule is None for subclasses)."""

    class FirstExpert(TopP):
        def select(self, logits):
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask[:, 0] = True
            return mask

    class Always2(TopK):
        def select(self, logits):
            return TopK(2).select(-logits)  # the two *smallest* logits

    model, _ = tiny_llama("tiny-llama-odd", seed=3)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    nn.init.normal_(block.router.weight, std=0.5)
    x = torch.randn(1, 5, block.hidden_size)
    for pol in (FirstExpert(0.5), Always2(2)):
        assert pol.kernel_rule(4) is None
        block.set_policy(pol)
        with torch.no_grad():
            full = block(x)  # tensor path: pol.select
            for t in range(x.shape[1]):  # decode path, kernels on where available
                one = block(x[:, t : t + 1])
                assert torch.allclose(one, full[:, t : t + 1], atol=1e-5), (pol, t)
        logits = block.router(x[0, 0])
        assert pol.select_one(logits) == pol.select(logits[None])[0].nonzero().flatten().tolist()
    assert TopP(0.5).kernel_rule(4) == (1, 1, 4, 0.5) and SwitchK(0.5, 1, 3).kernel_rule(4) == (2, 1, 3, 0.5)


def test_set_policy_checks_values_and_lengths():
    model, _ = tiny_llama("tiny-llama")
    with pytest.raises(moe.UnsupportedModelError):
        moe.set_policy(model, "top1")  # not moefied yet
    moe.moefy(model, num_experts=4)
    with pytest.raises(moe.UnknownPolicyError, match="1..4"):
        moe.set_policy(model, "top5")
    with pytest.raises(moe.UnknownPolicyError, match="one per layer"):
        moe.set_policy(model, ["top1"])
    moe.set_policy(model, ["top1", TopP(0.9)])
    assert [b.policy.spec() for b in moe.moe_blocks(model)] == ["top1", "topp0.9"]


def test_bad_input_to_moefy():
    model, _ = tiny_llama("tiny-llama")
    with pytest.raises(moe.UnknownMethodError, match="spectral"):
        moe.moefy(model, num_experts=4, method="spectral")
    with pytest.raises(moe.MoEError, match="num_experts"):
        moe.moefy(model, num_experts=1)
    with pytest.raises(moe.MoEError, match="num_experts"):
        moe.moefy(model, num_experts=10_000)
    with pytest.raises(moe.MoEError, match="calibration"):
        moe.moefy(model, num_experts=4, method="coactivation")
    with pytest.raises(moe.UnsupportedModelError):
        moe.moefy(nn.Linear(3, 3), num_experts=2)

    class GeluMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 128)

    model.model.layers[1].mlp = GeluMLP()
    with pytest.raises(moe.UnsupportedModelError, match="layer 1"):
        moe.moefy(model, num_experts=4)
    assert not isinstance(model.model.layers[0].mlp, moe.MoEBlock)  # nothing replaced on refusal


def test_llama_breakdown_matches_real_parameter_count():
    model, _ = tiny_llama("tiny-llama-deep")
    b = llama_breakdown(model.config)
    assert b.total == sum(p.numel() for p in model.parameters())
    assert b.ffn == 6 * 3 * 64 * 256
    # LLaMA2-7B from its config alone
    from transformers import LlamaConfig

    b7 = llama_breakdown(
        LlamaConfig(
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            vocab_size=32000,
        )
    )
    assert abs(b7.total / 1e9 - 6.738) < 0.001 and abs(b7.ffn / 1e9 - 4.329) < 0.001
    assert abs(b7.ffn_fraction_for_reduction(0.2) - 0.689) < 0.001


def test_activated_parameters_nominal_and_measured():
    model, _ = tiny_llama("tiny-llama")
    dense = sum(p.numel() for p in model.parameters())
    acc0 = moe.activated_parameters(model)
    assert acc0.activated == dense and acc0.reduction == 0.0
    moe.moefy(model, num_experts=4)
    acc = moe.activated_parameters(model)
    assert acc.dense_total == dense
    routers = 2 * 4 * 64
    assert acc.total == dense + routers and acc.activated == dense + routers  # policy "all"
    moe.set_policy(model, "top1")
    ffn = 2 * 3 * 64 * 176
    acc = moe.activated_parameters(model)
    assert acc.activated == pytest.approx(dense - ffn + ffn / 4 + routers)
    assert not acc.measured
    moe.set_policy(model, ["top1", "topp0.99"])
    moe.record_routing(model)
    with torch.no_grad():
        model(torch.randint(0, 256, (1, 12)))
    acc = moe.activated_parameters(model)
    assert acc.measured
    k1 = model.model.layers[1].mlp.stats.mean_k
    assert acc.per_layer[1]["mean_k"] == k1
    expect = dense - ffn + ffn / 2 * (1 / 4 + k1 / 4) + routers
    assert acc.activated == pytest.approx(expect)


def test_package_exports_are_listed_and_resolve():
    """``labkit.moe.__all__`` (a literal, for linters) lists exactly the lazy exports, and each resolves."""
    import labkit.moe as moe_pkg

    assert moe_pkg.__all__ == sorted(moe_pkg._EXPORTS)
    for name in moe_pkg.__all__:
        assert getattr(moe_pkg, name) is not None
