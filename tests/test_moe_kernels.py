"""The fused C kernels of labkit.moe (decode and prefill) against PyTorch, and their build/fallback."""

from __future__ import annotations

import ctypes

import pytest
import torch
from torch.nn import functional as F

from labkit import moe
from labkit.models import tiny_llama
from labkit.moe import kernels
from labkit.moe.policies import SwitchK, TopP

needs_cc = pytest.mark.skipif(kernels._compiler() is None, reason="no C compiler")


def _experts(n: int, d: int, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, 2 * m, generator=g) / d**0.5, torch.randn(n, m, d, generator=g) / m**0.5


def _reference(x, w1, w2, mask, wts):
    """y_t = Σ_e mask[t,e]·w[t,e]·(SiLU(x w1[e][:, :m]) ⊙ x w1[e][:, m:]) w2[e], in float64."""
    m = w2.shape[1]
    h = torch.einsum("td,edk->tek", x.double(), w1.double())
    g = F.silu(h[..., :m]) * h[..., m:]
    scale = mask.double() if wts is None else wts.double() * mask
    return torch.einsum("tem,emd->td", g * scale[..., None], w2.double()).float()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def _prefill_kernel(block, x):
    """The cpu backend's choice of prefill kernel for ``x`` (None: PyTorch paths)."""
    from labkit.moe import cpu_backend

    return cpu_backend._prefill_kernel(block, cpu_backend._state(block), x)


def _pack(block):
    st = block._caches.get("cpu")
    return None if st is None else st.pack


@pytest.fixture
def threads():
    old = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(old)


@needs_cc
def test_kernels_build_and_pass_their_self_test():
    k = kernels.get()
    assert k is not None and k.path.exists()
    assert k.has_prefill == torch.backends.mkl.is_available()


@needs_cc
@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_prefill_kernel_matches_reference(nthreads, weighted, threads):
    k = kernels.get()
    if k is None or not k.has_prefill:
        pytest.skip("no prefill kernel (needs MKL)")
    threads(nthreads)
    n, d, m, t = 7, 45, 13, 301
    w1, w2 = _experts(n, d, m)
    x = torch.randn(t, d)
    mask = torch.rand(t, n) < 0.4
    mask[5] = False  # a token with no expert gives exactly zero
    mask[:, 3] = False  # an expert with no token is skipped
    mask[200:, 0] = True  # an expert with more rows than one GEMM chunk
    wts = torch.rand(t, n) * mask if weighted else None
    ref = _reference(x, w1, w2, mask, wts)
    for block, chunk in ((1, 1), (16, 5), (64, 128), (128, 32), (1000, 128)):
        y = k.prefill(x, w1, w2, mask, wts, block, chunk)
        assert y.shape == (t, d) and _rel(y, ref) < 1e-5, (block, chunk)
        assert torch.count_nonzero(y[5]) == 0


@needs_cc
@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_decode_kernel_matches_reference_for_every_k(nthreads, threads):
    k = kernels.get()
    assert k is not None
    threads(nthreads)
    n, d, m = 6, 37, 11
    w1, w2 = _experts(n, d, m, seed=1)
    x = torch.randn(d)
    for ids in ([], [4], [0, 5], [1, 2, 3], list(range(n))):
        mask = torch.zeros(1, n, dtype=torch.bool)
        mask[0, ids] = True
        wts = torch.rand(1, n) * mask
        arr = (ctypes.c_int64 * max(1, len(ids)))(*ids)
        for w in (None, wts[0, ids].contiguous()):
            y = k.decode(x, w1, w2, arr, len(ids), w)
            ref = _reference(x[None], w1, w2, mask, None if w is None else wts)[0]
            if ids:
                assert _rel(y, ref) < 1e-5, (ids, w is None)
            else:
                assert torch.count_nonzero(y) == 0


@needs_cc
def test_block_uses_kernels_only_where_they_apply():
    """float32 SiLU experts on CPU take the kernels; bf16 and a non-SiLU act fall back (same results)."""
    model, _ = tiny_llama("tiny-llama-odd", seed=2)
    moe.moefy(model, num_experts=5)
    block = model.model.layers[0].mlp
    torch.nn.init.normal_(block.router.weight, std=0.5)
    block.set_policy("top2")
    x = torch.randn(1, 40, block.hidden_size)
    with torch.no_grad():
        fused = block(x)
        one = block(x[:, :1])  # top-k: routing and experts in one kernel call
        block.set_policy("topp0.8")
        calls = block.fused_calls
        adaptive = block(x[:, :1])  # adaptive policies too: routing and experts in one kernel call
        assert block.fused_calls == calls + 1 and not block._caches["cpu"].kplans
        block.record_stats = True
        recorded = block(x[:, :1])  # recording statistics: routing in Python, experts in the kernel
        assert block.fused_calls == calls + 2 and block._caches["cpu"].kplans
        block.record_stats = False
        block.use_kernels = False
        assert _rel(adaptive, block(x[:, :1])) < 1e-5 and _rel(recorded, block(x[:, :1])) < 1e-5
        block.set_policy("top2")
        assert _rel(fused, block(x)) < 1e-5 and _rel(one, block(x[:, :1])) < 1e-5
        block.use_kernels = True
        assert _prefill_kernel(block, x) is not None or not kernels.get().has_prefill
        assert _prefill_kernel(block, x.bfloat16()) is None
        block.act_fn = torch.nn.GELU()
        assert _prefill_kernel(block, x) is None


@needs_cc
def test_large_experts_prefill_through_pytorch(monkeypatch):
    """Experts above PREFILL_MAX_EXPERT_BYTES (e.g. LLaMA2-7B's) take the PyTorch prefill."""
    model, _ = tiny_llama("tiny-llama", seed=2)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    x = torch.randn(5, block.hidden_size)
    expert_bytes = 3 * block.hidden_size * block.expert_dim * 4
    monkeypatch.setattr(kernels, "PREFILL_MAX_EXPERT_BYTES", expert_bytes - 1)
    block.w1.data = block.w1.data.clone()  # new storage: the block re-derives its kernel choices
    assert _prefill_kernel(block, x) is None
    monkeypatch.setattr(kernels, "PREFILL_MAX_EXPERT_BYTES", expert_bytes)
    block.w1.data = block.w1.data.clone()
    assert _prefill_kernel(block, x) is not None or not kernels.get().has_prefill


@needs_cc
def test_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("LABKIT_MOE_KERNELS", "0")
    assert kernels.get() is None
    model, _ = tiny_llama("tiny-llama", seed=1)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    block.set_policy("top2")
    with torch.no_grad():
        block(torch.randn(1, 1, block.hidden_size))
    assert not block._caches["cpu"].kplans


@pytest.mark.parametrize("cc", ["/nonexistent/cc", "false"])
def test_missing_or_broken_compiler_falls_back_with_a_warning(cc, tmp_cache, monkeypatch):
    monkeypatch.setattr(kernels, "_STATE", {})
    monkeypatch.setenv("CC", cc)
    with pytest.warns(RuntimeWarning, match="pure-PyTorch"):
        assert kernels.get() is None
    assert kernels.get() is None  # decided once per process
    built = tmp_cache / "kernels"
    assert not built.exists() or not [p for p in built.rglob("*") if p.is_file()]  # nothing half-written


@needs_cc
def test_build_is_cached_by_source_compiler_and_cpu(tmp_cache):
    cc = kernels._compiler()
    first = kernels._build(cc)
    stamp = first.stat().st_mtime_ns
    assert kernels._build(cc) == first and first.stat().st_mtime_ns == stamp
    assert first.parent.parent == tmp_cache / "kernels"


def test_prefill_block_size():
    assert kernels.prefill_block(4096, 16, 4.0, 2) == 2048
    assert kernels.prefill_block(16384, 16, 4.0, 2) == 2048
    assert kernels.prefill_block(4096, 64, 2.0, 4) == 1024  # still at most one block per thread
    assert kernels.prefill_block(65536, 64, 2.0, 2) == 4096  # ~128 rows per expert GEMM
    assert kernels.prefill_block(300, 16, 4.0, 2) == 150  # every thread gets a block
    assert kernels.prefill_block(10, 4, 1.0, 4) == 16


@needs_cc
@pytest.mark.parametrize("n", [3, 8, 16, 40])
def test_rule_decode_kernel_selects_like_select_one(n):
    """Top-p and switch routing inside the decode kernel pick select_one's experts (returned count
    and ids), over flat to peaked logits; rows whose weights sit within float32 rounding of the
    threshold are left out (the kernel's logits are its own dot products)."""
    k = kernels.get()
    assert k is not None
    g = torch.Generator().manual_seed(n)
    d, m = 24, 5
    wr = torch.randn(n, d, generator=g)
    w1, w2 = torch.randn(n, d, 2 * m, generator=g), torch.randn(n, m, d, generator=g)
    xs = torch.randn(300, d, generator=g) * torch.tensor([0.05, 0.2, 0.6]).repeat_interleave(100)[:, None]
    y, out = torch.empty(d), torch.empty(n, dtype=torch.int64)
    policies = [TopP(0.5), TopP(0.8), TopP(0.9, 2, max(2, n - 1))]
    policies += [SwitchK(min(0.6, 3.0 / n), 1, n), SwitchK(2.0 / n, 1, 2)]
    for pol in policies:
        kind, lo, hi, tau = pol.kernel_rule(n)
        counts = set()
        for x in xs:
            logits = wr @ x
            p = logits.double().softmax(-1).sort(descending=True).values
            edge = (p.cumsum(-1)[:-1] - (tau - 1e-7)).abs() if kind == 1 else (p[:1] - tau).abs()
            if edge.min() < 1e-5:
                continue
            ptrs = (x.data_ptr(), wr.data_ptr(), w1.data_ptr(), w2.data_ptr(), d, m, n)
            got = k.lib.lk_moe_decode_rule(*ptrs, kind, lo, hi, tau, 0, y.data_ptr(), out.data_ptr(), 1)
            want = pol.select_one(logits)
            assert got == len(want) and out[:got].tolist() == want, (pol, x)
            counts.add(got)
        assert len(counts) > 1 or lo == hi, pol  # the rule's both sides were reached
    ptrs = (x.data_ptr(), wr.data_ptr(), w1.data_ptr(), w2.data_ptr(), d, m, n)
    for kind, lo, hi in ((3, 1, 1), (1, 0, 1), (1, 2, 1), (2, 1, n + 1)):
        assert k.lib.lk_moe_decode_rule(*ptrs, kind, lo, hi, 0.5, 0, y.data_ptr(), None, 1) == -3


@needs_cc
@pytest.mark.parametrize("nthreads", [1, 2])
def test_topk_decode_kernel_routes_like_the_policy(nthreads, threads):
    """Router, top-k (ties to the lower id), weights and experts in one call = the PyTorch path."""
    k = kernels.get()
    assert k is not None
    threads(nthreads)
    model, _ = tiny_llama("tiny-llama-odd", seed=5)
    moe.moefy(model, num_experts=6)
    block = model.model.layers[0].mlp
    torch.nn.init.normal_(block.router.weight, std=0.5)
    wr = block.router.weight.detach()
    w1, w2 = block.w1.detach(), block.w2.detach()
    xs = torch.randn(8, block.hidden_size)
    with torch.no_grad():
        for top in (1, 2, 6):
            for weighting in ("unit", "softmax"):
                block.set_policy(f"top{top}")
                block.set_weighting(weighting)
                block.use_kernels = False
                for x in xs:
                    ref = block(x[None])
                    y = k.decode_topk(x[None].contiguous(), wr, w1, w2, top, weighting == "softmax")
                    assert y.shape == (1, block.hidden_size) and _rel(y, ref) < 1e-5, (top, weighting)
        xt = torch.randn(70, block.hidden_size)  # prefill: routing per block of tokens
        for top in (1, 3, 6):
            for weighting in ("unit", "softmax"):
                block.set_policy(f"top{top}")
                block.set_weighting(weighting)
                block.use_kernels = False
                ref = block(xt)
                if k.has_prefill:
                    for blk, chunk in ((1, 1), (16, 4), (128, 128)):
                        y = k.prefill_topk(xt, wr, w1, w2, top, weighting == "softmax", blk, chunk)
                        assert _rel(y, ref) < 1e-5, (top, weighting, blk)
    # exact ties (small integers: every summation order gives the same logits) go to the lower id
    d, m = block.hidden_size, block.expert_dim
    wr = torch.zeros(6, d)
    wr[:, 0] = torch.tensor([1.0, 3.0, 2.0, 0.0, 3.0, 3.0])
    x = torch.zeros(d)
    x[0] = 2.0
    y = torch.empty(d)
    out = torch.empty(2, dtype=torch.int64)
    ptrs = (x.data_ptr(), wr.data_ptr(), w1.data_ptr(), w2.data_ptr())
    assert k.lib.lk_moe_decode_rule(*ptrs, d, m, 6, 0, 2, 2, 0.0, 0, y.data_ptr(), out.data_ptr(), 1) == 2
    assert out.tolist() == [1, 4] == block.policy.__class__(2).select_one(wr @ x)
    assert k.lib.lk_moe_decode_rule(*ptrs, d, m, 6, 0, 7, 7, 0.0, 0, y.data_ptr(), None, 1) == -3  # k > N
    if k.has_prefill:
        xt = torch.zeros(3, d)
        xt[:, 0] = 2.0
        yt = k.prefill_topk(xt, wr, w1, w2, 2, False, 2)
        assert _rel(yt, y.expand(3, d)) < 1e-6  # the same experts, 1 and 4, for every token
        with pytest.raises(RuntimeError, match="code -3"):
            k.prefill_topk(xt, wr, w1, w2, 7, False, 2)


def test_dispatch_names_the_code_that_runs(monkeypatch):
    assert "cuda" in kernels.dispatch("cuda", "bfloat16")
    assert "float32-only" in kernels.dispatch("cpu", "bfloat16")
    monkeypatch.setenv("LABKIT_MOE_KERNELS", "0")
    assert "pure-PyTorch" in kernels.dispatch("cpu", torch.float32)
    monkeypatch.delenv("LABKIT_MOE_KERNELS")
    if kernels.get() is not None and kernels.get().has_prefill:
        assert kernels.dispatch() == "labkit's compiled C kernels for both prefill and decode"
        limit = kernels.PREFILL_MAX_EXPERT_BYTES
        assert kernels.dispatch(expert_bytes=limit) == kernels.dispatch()
        assert "PyTorch prefill (experts above 8 MB)" in kernels.dispatch(expert_bytes=limit + 1)


def test_block_pickles_and_copies_after_using_the_kernels():
    """The cached ctypes objects never travel: pickle and deepcopy rebuild them and agree."""
    import copy
    import io

    model, _ = tiny_llama("tiny-llama", seed=3)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    torch.nn.init.normal_(block.router.weight, std=0.5)
    x = torch.randn(1, 1, block.hidden_size)
    with torch.no_grad():
        for policy in ("top2", "topp0.7"):
            block.set_policy(policy)
            ref = block(x)
            buf = io.BytesIO()
            torch.save(block, buf)
            buf.seek(0)
            loaded = torch.load(buf, weights_only=False)
            twin = copy.deepcopy(block)
            assert torch.equal(loaded(x), ref) and torch.equal(twin(x), ref)
            twin.w2.mul_(2.0)  # the copy has its own weights; the original is untouched
            assert torch.equal(block(x), ref) and _rel(twin(x), 2 * ref) < 1e-6


@needs_cc
def test_kernel_silu_is_accurate_over_the_float_range():
    """The kernels' own exp (vectorisable, clamped): silu(v)·v through a 1×1 expert, v from -200 to 100."""
    k = kernels.get()
    assert k is not None
    w1, w2 = torch.ones(1, 1, 2), torch.ones(1, 1, 1)
    arr = (ctypes.c_int64 * 1)(0)
    for v in (-200.0, -88.5, -87.0, -20.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 5.0, 20.0, 88.5, 100.0):
        y = k.decode(torch.tensor([v]), w1, w2, arr, 1).item()
        ref = (F.silu(torch.tensor(v, dtype=torch.float64)) * v).item()
        assert abs(y - ref) <= 2e-7 * abs(ref) + 1e-30, v


@needs_cc
def test_fused_calls_count_the_kernel_path_only():
    model, _ = tiny_llama("tiny-llama", seed=4)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    x = torch.randn(1, 6, block.hidden_size)
    with torch.no_grad():
        for policy in ("top2", "topp0.8"):
            block.set_policy(policy)
            block(x)
            block(x[:, :1])
        assert block.fused_calls == (4 if kernels.get().has_prefill else 2)
        block.use_kernels = False
        block(x)
        block(x[:, :1])
        assert block.fused_calls == (4 if kernels.get().has_prefill else 2)


def _packing_kernels() -> kernels.MoEKernels:
    k = kernels.get()
    if k is None or not k.has_pack:
        pytest.skip("no MKL packed GEMM")
    return k


@needs_cc
@pytest.mark.parametrize("nthreads", [1, 2])
@pytest.mark.parametrize("own", [False, True])
@pytest.mark.parametrize(("d", "m"), [(41, 19), (68, 24), (50, 25)])
def test_packed_weights_give_the_same_prefill(nthreads, own, d, m, threads):
    """Packed experts, in MKL's layout or labkit's own panels (24 neurons, 48 output columns: the
    shapes give partial and full panels): both prefill kernels agree with the reference, for GEMM
    chunks above, at and below the rows they were packed for (a larger chunk is clamped to them)
    and row groups of 1-8 tokens."""
    k = _packing_kernels()
    if own and not k.has_own_layout:
        pytest.skip("no AVX-512: MKL's layout only")
    threads(nthreads)
    n, t = 5, 211
    w1, w2 = _experts(n, d, m, seed=5)
    x = torch.randn(t, d)
    mask = torch.rand(t, n) < 0.5
    mask[:, 2] = True
    mask[7] = False  # a token with no expert gives exactly zero
    mask[:, 4] = False  # an expert with no token is skipped
    wts = torch.rand(t, n) * mask
    ref = _reference(x, w1, w2, mask, wts)
    packed = k.pack(w1, w2, rows=16, own=own)
    assert packed is not None and packed.shape == (n, d, m) and packed.own == own
    assert torch.count_nonzero(k.prefill(x, w1, w2, mask, wts, 64, 16, packed)[7]) == 0
    assert 0 < packed.resident_bytes <= 2 * (w1.numel() + w2.numel()) * 4 + (1 << 20)
    for block, chunk in ((7, 3), (64, 16), (300, 128)):
        y = k.prefill(x, w1, w2, mask, wts, block, chunk, packed)
        assert _rel(y, ref) < 1e-5, (block, chunk)
    wr = torch.randn(n, d)
    top = k.prefill_topk(x, wr, w1, w2, 2, True, 32, 128)
    ptop = k.prefill_topk(x, wr, w1, w2, 2, True, 32, 128, packed)
    assert _rel(ptop, top) < 1e-5
    # any shape [..., d], contiguous or not; y has x's shape
    strided = x.t().contiguous().t()
    assert not strided.is_contiguous() and torch.equal(strided, x)
    assert torch.equal(k.prefill_topk(strided, wr, w1, w2, 2, True, 32, 128, packed), ptop)
    y3 = k.prefill_topk(x.view(1, t, d), wr, w1, w2, 2, True, 32, 128, packed)
    assert y3.shape == (1, t, d) and torch.equal(y3[0], ptop)
    other = k.pack(*_experts(n, d, m + 1), rows=16)
    with pytest.raises(ValueError, match="packed weights"):
        k.prefill(x, w1, w2, mask, wts, 64, 16, other)
    # weights edited after packing (the kernels sample 128 of each matrix): refused, nothing computed
    for edited in (w1.clone().mul_(2.0), w1.clone().add_(1.0)):
        with pytest.raises(kernels.StalePackError, match="repack"):
            k.prefill(x, edited, w2, mask, wts, 64, 16, packed)
        with pytest.raises(kernels.StalePackError, match="repack"):
            k.prefill_topk(x, wr, edited, w2, 2, True, 32, 128, packed)
    with pytest.raises(kernels.StalePackError, match="repack"):
        k.prefill_topk(x, wr, w1, w2.clone().mul_(2.0), 2, True, 32, 128, packed)
    packed.free()
    packed.free()  # idempotent
    assert packed.handle is None


@needs_cc
def test_own_layout_runs_large_experts_in_panel_sets():
    """own=True for experts past the 1 MiB rule (d=576, m=250: 11 gate/up panels one by one,
    12 down panels in sets of 10, a partial last gate/up panel): same prefill as the reference."""
    k = _packing_kernels()
    if not k.has_own_layout:
        pytest.skip("no AVX-512: MKL's layout only")
    n, d, m, t = 3, 576, 250, 70
    w1, w2 = _experts(n, d, m, seed=9)
    x = torch.randn(t, d)
    mask = torch.rand(t, n) < 0.6
    wts = torch.rand(t, n) * mask
    packed = k.pack(w1, w2, own=True)
    assert packed is not None and packed.own
    y = k.prefill(x, w1, w2, mask, wts, 32, 128, packed)
    assert _rel(y, _reference(x, w1, w2, mask, wts)) < 1e-5


@needs_cc
def test_pack_picks_the_own_layout_for_small_experts():
    """own=None: labkit's panels while an expert's gate/up panels take <= 1 MiB (d=576: up to 9
    panels of 24 neurons, m <= 216), MKL's layout above; without AVX-512 always MKL's. own=False
    asks for MKL's layout at a width where it fits the 2x memory limit on every CPU tried (MKL's
    packed copy of m = 96 experts takes 2.9x their memory on an AMD EPYC, and is then refused)."""
    k = _packing_kernels()
    small, large = k.pack(*_experts(2, 576, 216)), k.pack(*_experts(2, 576, 217))
    assert small.own == k.has_own_layout and not large.own
    assert not k.pack(*_experts(2, 576, 216), own=False).own


@needs_cc
def test_block_repacks_when_its_weights_change():
    """The packed copy follows in-place updates (version counters) and replaced parameters; it
    can be switched off; tensors made under inference_mode are not packed (no version counter)."""
    k = _packing_kernels()
    model, _ = tiny_llama("tiny-llama", seed=6)
    moe.moefy(model, num_experts=4)
    block = model.model.layers[0].mlp
    torch.nn.init.normal_(block.router.weight, std=0.5)
    block.set_policy("top2")
    x = torch.randn(1, 50, block.hidden_size)

    def pytorch_path():
        block.use_kernels = False
        try:
            return block(x)
        finally:
            block.use_kernels = True

    with torch.no_grad():
        y = block(x)
        first = _pack(block)
        assert first is not None and _rel(y, pytorch_path()) < 1e-5
        block(x)
        assert _pack(block) is first  # unchanged weights: reused
        block.w2.mul_(2.0)  # in place: same storage, new version
        assert _rel(block(x), 2 * y) < 1e-5 and _pack(block) is not first
        block.set_policy("topp0.8")  # the mask kernel uses it too
        assert _rel(block(x), pytorch_path()) < 1e-5
        block.w1.data = block.w1.data.clone() * 0.5  # replaced
        assert _rel(block(x), pytorch_path()) < 1e-5
        version = block.w2._version
        block.w2.data.mul_(3.0)  # through .data: no version bump, seen by the sampled weights
        assert block.w2._version == version and _rel(block(x), pytorch_path()) < 1e-5
        block.set_policy("top2")  # the same in the top-k kernel (it checks the samples itself)
        current = _pack(block)
        assert _rel(block(x), pytorch_path()) < 1e-5 and _pack(block) is current
        block.w1.data.mul_(-1.5)  # now stale: the kernel refuses it, the block repacks
        assert _rel(block(x), pytorch_path()) < 1e-5 and _pack(block) is not current
        block.pack_weights = False
        block.w1.mul_(2.0)
        assert _rel(block(x), pytorch_path()) < 1e-5 and _pack(block) is None
    assert k.has_pack
    with torch.inference_mode():
        model2, _ = tiny_llama("tiny-llama", seed=6)
        moe.moefy(model2, num_experts=4)
        b2 = model2.model.layers[0].mlp
        b2.set_policy("top2")
        y2 = b2(x)
        assert _pack(b2) is None and b2.fused_calls == 1
        b2.use_kernels = False
        assert _rel(y2, b2(x)) < 1e-5


@needs_cc
@pytest.mark.parametrize("n", [5, 8, 16, 64, 70])
def test_prefill_topk_selects_like_the_policy_with_exact_ties(n):
    """Top-k inside the prefill kernel (ranks by vector compares up to 16 experts on AVX-512, by
    scalar ones up to 64, k passes above) picks what TopK.select_one picks, ties to the lower id;
    integer logits make ties exact in any order."""
    from labkit.moe.policies import TopK

    k = kernels.get()
    if k is None or not k.has_prefill:
        pytest.skip("no prefill kernel (needs MKL)")
    d, m, t = 24, 3, 90
    g = torch.Generator().manual_seed(n)
    w1, w2 = _experts(n, d, m, seed=n)
    wr = torch.randint(-2, 3, (n, d), generator=g).float()
    x = torch.randint(-1, 2, (t, d), generator=g).float()
    logits = x @ wr.t()
    for top in sorted({1, 3, n // 2, n}):
        mask = torch.zeros(t, n, dtype=torch.bool)
        for i in range(t):
            mask[i, TopK(top).select_one(logits[i])] = True
        ref = _reference(x, w1, w2, mask, None)
        y = k.prefill_topk(x, wr, w1, w2, top, False, 32)
        assert _rel(y, ref) < 1e-5, top


@needs_cc
@pytest.mark.parametrize("layout", ["plain", "mkl", "own"])
@pytest.mark.parametrize(("d", "t"), [(45, 301), (4096, 600)])
def test_prefill_is_bit_identical_for_any_thread_count(layout, d, t, threads):
    """Both prefill kernels, all three weight layouts: on 2, 3 and 4 threads every call's output
    equals one thread's bit for bit, and one thread's matches the float64 reference. With one
    block for all tokens, threads without a block take expert chunks from the back of the
    owner's (work stealing) and the owner adds their outputs in expert order; with 64-token
    blocks each thread also runs blocks of its own. Which thread ran which item depends on timing
    (on a loaded machine a thread may never get to take one) and is not asserted: the output must
    be the same whichever way the work was shared. At d = 4096 the owner's 4 MiB buffer holds 256
    token rows, fewer than the whole block's (token, expert) rows (~1440 for the mask, 1200 for
    top-2): the items that would not fit stay with the owner. MKL's packed layout is refused for
    m = 10 experts at d = 4096 (its copy takes over twice their memory): that case has m = 192."""
    k = kernels.get()
    if k is None or not k.has_prefill:
        pytest.skip("no prefill kernel (needs MKL)")
    n, m = 6, 10
    if (layout, d) == ("mkl", 4096):
        m, t = 192, 200  # (see above) fewer tokens keep it quick: ~480 (token, expert) rows, still > 256
    w1, w2 = _experts(n, d, m, seed=3)
    packed = None
    if layout != "plain":
        if layout == "own" and not k.has_own_layout:
            pytest.skip("no AVX-512: MKL's layout only")
        packed = _packing_kernels().pack(w1, w2, rows=16, own=layout == "own")
        if packed is None or packed.own != (layout == "own"):
            pytest.skip(f"the {layout} layout is not available for these experts on this CPU")
    g = torch.Generator().manual_seed(d)
    x = torch.randn(t, d, generator=g)
    mask = torch.rand(t, n, generator=g) < 0.4
    wts = torch.rand(t, n, generator=g) * mask
    wr = torch.randn(n, d, generator=g)
    # top-2 with mean-one softmax weights, in float64; the seeded logits keep the 2nd and 3rd apart
    logits = x.double() @ wr.double().t()
    ranked = logits.sort(dim=1, descending=True)
    assert float((ranked.values[:, 1] - ranked.values[:, 2]).min()) > 1e-3
    top = ranked.indices[:, :2]
    mask2 = torch.zeros(t, n, dtype=torch.bool).scatter_(1, top, True)
    wts2 = torch.zeros(t, n, dtype=torch.float64).scatter_(1, top, 2 * logits.gather(1, top).softmax(1))
    refs = {"mask": _reference(x, w1, w2, mask, wts), "top-2": _reference(x, w1, w2, mask2, wts2)}

    def run(kernel: str, block: int) -> torch.Tensor:
        if kernel == "mask":
            return k.prefill(x, w1, w2, mask, wts, block, 16, packed)
        return k.prefill_topk(x, wr, w1, w2, 2, True, block, 16, packed)

    for block in (t, 64):
        threads(1)
        ones = {kernel: run(kernel, block) for kernel in refs}
        for kernel, ref in refs.items():
            assert _rel(ones[kernel], ref) < 1e-5, (kernel, block)
        for nthreads in (2, 3, 4):
            threads(nthreads)
            for kernel, one in ones.items():
                for _ in range(3):  # the work is shared differently from call to call
                    assert torch.equal(run(kernel, block), one), (kernel, block, nthreads)
