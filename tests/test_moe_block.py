"""Expert construction exactness, policies, and the dispatch of labkit.moe.MoEBlock."""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe.block import MoEBlock
from labkit.moe.policies import routing_weights

pytestmark = pytest.mark.usefixtures("one_thread")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def ids() -> torch.Tensor:
    return torch.randint(0, 256, (2, 19), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-llama-odd"])
@pytest.mark.parametrize("method", ["contiguous", "kmeans", "coactivation"])
@pytest.mark.parametrize("num_experts", [2, 4, 7, 16])
def test_moefy_all_experts_reproduces_dense(name, method, num_experts, ids):
    model, _ = tiny_llama(name, seed=3)
    with torch.no_grad():
        ref = model(ids).logits
        moe.moefy(model, num_experts=num_experts, method=method, calibration=ids, seed=1)
        out = model(ids).logits
    assert all(isinstance(layer.mlp, MoEBlock) for layer in model.model.layers)
    assert _rel(out, ref) <= 1e-5
    block = model.model.layers[0].mlp
    f = model.config.intermediate_size
    # every dense neuron appears exactly once, sizes differ by at most one (uneven widths padded)
    idx = block.neuron_index[block.neuron_index >= 0]
    assert sorted(idx.tolist()) == list(range(f))
    assert int(block.expert_sizes.max() - block.expert_sizes.min()) <= 1


def test_uneven_padding_is_zero_and_stays_exact():
    model, _ = tiny_llama("tiny-llama-odd")
    moe.moefy(model, num_experts=4)  # 150 = 4·37 + 2
    block = model.model.layers[0].mlp
    assert block.expert_sizes.tolist() == [38, 38, 37, 37]
    m = block.expert_dim
    assert torch.count_nonzero(block.w1[2, :, 37:m]) == 0
    assert torch.count_nonzero(block.w1[2, :, m + 37 :]) == 0
    assert torch.count_nonzero(block.w2[3, 37:]) == 0


def _reference(block: MoEBlock, x: torch.Tensor) -> torch.Tensor:
    """Per-token loop: y_t = Σ_{i∈S_t} g_ti E_i(x_t)."""
    flat = x.reshape(-1, x.shape[-1])
    logits = block.router(flat)
    mask = block.policy.select(logits)
    g = routing_weights(logits, mask, block.weighting)
    experts = block.expert_forward(flat)
    out = torch.stack([(g[t, :, None] * experts[t]).sum(0) for t in range(flat.shape[0])])
    return out.reshape(x.shape)


# fused C kernels / per-expert GEMM loop / experts in pairs (bmm)
@pytest.mark.parametrize("path", ["kernels", "loop", "pairs"])
@pytest.mark.parametrize("weighting", ["unit", "softmax"])
@pytest.mark.parametrize(
    "policy", ["top1", "top2", "top3", "top4", "topp0.6", "topp0.9:2-3", "switch0.4:1-3"]
)
def test_dispatch_matches_per_token_reference(policy, weighting, path, monkeypatch):
    from labkit.moe import cpu_backend

    monkeypatch.setattr(cpu_backend, "_PAIR_ROWS", 512 if path == "pairs" else 0)
    model, _ = tiny_llama("tiny-llama-odd", seed=1)
    moe.moefy(model, num_experts=4, method="kmeans")
    block = model.model.layers[1].mlp
    block.use_kernels = path == "kernels"
    torch.nn.init.normal_(block.router.weight, std=0.5)
    block.set_policy(policy)
    block.set_weighting(weighting)
    x = torch.randn(3, 11, block.hidden_size)
    with torch.no_grad():
        ref = _reference(block, x)
        assert _rel(block(x), ref) < 1e-5
        for t in range(x.shape[1]):  # the single-token decode path, token by token
            one = x[:1, t : t + 1]
            assert _rel(block(one), _reference(block, one)) < 1e-5
        with torch.inference_mode():
            assert _rel(block(x[1:2, :1]), ref[1:2, :1]) < 1e-5
            assert _rel(block(x), ref) < 1e-5


@pytest.mark.parametrize("impl", ["fused", "bags", "runs"])
@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("weighting", ["unit", "softmax"])
def test_decode_implementations_match_reference(impl, threads, weighting, monkeypatch):
    """Every single-token path: the C kernel and both PyTorch ones (bags split across threads,
    with sub-bags for k < threads)."""
    from labkit.moe import cpu_backend

    monkeypatch.setattr(cpu_backend, "_MIN_BAG_ROWS", 4)
    model, _ = tiny_llama("tiny-llama-odd", seed=4)
    moe.moefy(model, num_experts=7, method="contiguous")
    block = model.model.layers[0].mlp
    torch.nn.init.normal_(block.router.weight, std=0.5)
    block.use_kernels = impl == "fused"
    block.decode_impl = None if impl == "fused" else impl
    block.set_weighting(weighting)
    x = torch.randn(6, 1, block.hidden_size)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            policies = ["top1", "top2", "top5", "topp0.7", "switch0.4:1-3"]
            for policy in policies + (["all"] if weighting == "unit" else []):  # "all" ignores weighting
                block.set_policy(policy)
                for t in range(x.shape[0]):
                    assert _rel(block(x[t : t + 1]), _reference(block, x[t : t + 1])) < 1e-5, (policy, t)
    finally:
        torch.set_num_threads(old)
    if impl == "fused":
        # the C kernels ran (every policy here routes inside the kernel; "all" uses the Python-routed
        # kernel and its cached id arrays), the bags never did
        st = block._caches["cpu"]
        assert block.fused_calls > 0 and not st.plans
        assert bool(st.kplans) == (weighting == "unit") and st.rule_step is not None
    if impl == "bags" and threads > 1:
        plans = block._caches["cpu"].plans
        assert any(plan[2] > 1 for plan in plans.values())  # sub-bags were used for top1
        assert any(plan[4].numel() > 1 for plan in plans.values())  # split down projection


def test_decode_fast_path_statistics_and_moved_weights():
    """Decode records the same routing statistics as prefill and follows replaced/moved weights."""
    model, _ = tiny_llama("tiny-llama-odd", seed=3)
    moe.moefy(model, num_experts=7, method="contiguous")
    block = model.model.layers[0].mlp
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        block.router.weight.copy_(0.5 * torch.randn(block.router.weight.shape, generator=gen))
    block.set_policy("top3")
    # tokens whose 3rd and 4th router logits lie far apart, so that top-3 is the same in every
    # summation order (prefill GEMM, decode kernel, any thread count) and in bfloat16: a near-tie
    # could flip and change the statistics or the bfloat16 output
    cand = torch.randn(256, block.hidden_size, generator=gen)
    top = (cand.double() @ block.router.weight.double().t()).sort(-1, descending=True).values
    gap = top[:, 2] - top[:, 3]
    order = gap.argsort(descending=True)[:9]
    assert gap[order[-1]] > 0.5  # bfloat16 rounds these logits by a few hundredths at most
    x = cand[order]
    with torch.no_grad():
        block.record_stats = True
        block(x)
        prefill = block.stats.as_dict()
        block.stats.reset()
        per_token = torch.cat([block(x[t : t + 1]) for t in range(9)])
        assert block.stats.as_dict() == prefill
        block.w2.data = block.w2.data * 2.0  # a replaced parameter: cached views must not go stale
        assert _rel(block(x[:1]), 2.0 * per_token[:1]) < 1e-6
        half = copy.deepcopy(block).to(torch.bfloat16)
        y = half(x[:1].bfloat16())
        assert y.dtype == torch.bfloat16 and _rel(y.float(), 2.0 * per_token[:1]) < 0.05


def test_decode_path_uses_only_chosen_experts():
    model, _ = tiny_llama("tiny-llama")
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    block.set_policy("top1")
    x = torch.randn(1, 1, block.hidden_size)
    chosen = int(block.router(x.reshape(1, -1)).argmax())
    with torch.no_grad():
        before = block(x)
        for e in range(4):
            if e != chosen:
                block.w1[e].fill_(float("nan"))  # an unselected expert must never be touched
        after = block(x)
    assert torch.equal(before, after)


def test_generate_with_kv_cache_padding_batch_and_bf16():
    model, tok = tiny_llama("tiny-llama", seed=2)
    moe.moefy(model, num_experts=4, method="kmeans")
    moe.set_policy(model, "top2")
    tok.padding_side = "left"
    batch = tok(["hello world", "a"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        assert out.shape == (2, batch["input_ids"].shape[1] + 6)
        # cached decoding equals recomputing the full sequence without a cache
        ids = out[:1]
        full = model(ids, use_cache=False).logits[:, -1]
        pre = model(ids[:, :-1], use_cache=True)
        kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        step = model(ids[:, -1:], use_cache=True, **{kw: getattr(pre, kw)}).logits[:, -1]
        assert _rel(step, full) < 1e-4
        bf = copy.deepcopy(model).to(torch.bfloat16)
        logits = bf(ids).logits
        assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
        assert _rel(logits.float(), model(ids).logits) < 0.1


def test_gradients_reach_router_and_experts():
    model, _ = tiny_llama("tiny-llama")
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    block.set_policy("top2")
    x = torch.randn(8, block.hidden_size)
    block(x).pow(2).sum().backward()
    assert block.router.weight.grad.abs().sum() > 0 and block.w1.grad.abs().sum() > 0


def test_routing_statistics_recorded():
    model, _ = tiny_llama("tiny-llama")
    moe.moefy(model, num_experts=4)
    moe.set_policy(model, ["top1", "top3"])
    moe.record_routing(model)
    with torch.no_grad():
        model(torch.randint(0, 256, (2, 10)))
    s0, s1 = (layer.mlp.stats for layer in model.model.layers)
    assert s0.tokens == 20 and s0.mean_k == 1.0 and s1.mean_k == 3.0
    assert int(s1.load.sum()) == 60


@pytest.mark.parametrize("pair_rows", [0, 512])
def test_non_silu_activation_on_every_path(pair_rows, monkeypatch):
    """A GELU FFN goes through the prefill loop, the paired GEMMs and both PyTorch decode paths
    (the C kernels are SiLU-only and must step aside)."""
    from labkit.moe import cpu_backend

    monkeypatch.setattr(cpu_backend, "_PAIR_ROWS", pair_rows)
    model, _ = tiny_llama("tiny-llama", seed=6)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    block.act_fn = torch.nn.GELU()
    torch.nn.init.normal_(block.router.weight, std=0.5)
    block.set_policy("top2")
    x = torch.randn(1, 9, block.hidden_size)
    with torch.no_grad():
        ref = _reference(block, x)
        assert _rel(block(x), ref) < 1e-5
        for impl in ("bags", "runs"):
            block.decode_impl = impl
            assert _rel(block(x[:, :1]), ref[:, :1]) < 1e-5
    assert not block._caches["cpu"].kplans
