"""The ``"cpu"`` backend of :class:`~labkit.moe.block.MoEBlock`: CPU paths without gradient.

Used by default on a CPU (:mod:`labkit.moe.backends`). Without gradient it picks, per call:

* **C kernels** (:mod:`labkit.moe.kernels`; float32 SiLU experts, a C compiler; switched off by
  ``block.use_kernels = False`` or ``LABKIT_MOE_KERNELS=0``): a decode step is one call, routing
  included for top-k, top-p and switch policies (unless routing statistics or logits are kept); a
  top-k prefill is one call too, token blocks in parallel, reading the experts from a packed copy
  of their weights (``block.pack_weights``; about the experts' memory again).
* **PyTorch paths** otherwise. Decode: only the chosen experts' slices are read, as two weighted
  row sums over ``w1.view(N·d, 2m)`` and ``w2.view(N·m, d)`` (``embedding_bag`` with per-sample
  weights x and g, split into bags that run on all cores; ``block.decode_impl = "bags"``), or one
  matrix-vector product per run of consecutive chosen experts (``"runs"``). Prefill: ``(expert,
  token)`` pairs grouped by expert, tokens gathered once into a reused buffer, one GEMM per expert,
  one ``index_add_`` back (LLaMA-MoE's ``UniversalCalculator`` pattern); with under ``_PAIR_ROWS``
  tokens per expert two experts share one batched GEMM, which splits better across cores.

With gradient (training) every call goes to :meth:`MoEBlock.eager`. All paths agree with it to
float32 rounding (``tests/test_moe_block.py``). Per-block caches (weight views, decode plans, the
packed weights) live in ``block._caches["cpu"]`` and follow replaced or moved parameters.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections.abc import Callable

import torch
from torch.nn import functional as F

from . import kernels as _kernels
from .policies import Policy, TopK, routing_weights

__all__ = ["CpuBackend"]

_SILU = {"SiLU", "SiLUActivation"}
_WORKSPACE = threading.local()
_WORKSPACE_MAX_BYTES = 1 << 30
_MIN_BAG_ROWS = 128  # a decode bag (one thread's share of a row sum) is not split below this
_PAIR_ROWS = 512  # prefill: below this many tokens per active expert, experts run in pairs


class _State:
    """One block's caches for this backend (a plain object: its attributes are cheap to touch)."""

    def __init__(self, num_experts: int) -> None:
        self.fused_calls = 0
        empty = torch.empty(0)  # placeholders until _weight_views builds them (views_key None)
        self.views: tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool] = (empty, empty, empty, False)
        self.views_key: tuple | None = None
        self.fused_weights: tuple[torch.Tensor, torch.Tensor] = (empty, empty)
        self.fused_prefill = False
        self.plans: dict = {}
        self.kplans: dict = {}
        self.rule_step: _kernels.RuleDecode | None = None
        self.pack: _kernels.PackedExperts | None = None
        self.pack_key: tuple | None = None
        self.all_ids = list(range(num_experts))

    def release(self) -> None:
        self.pack, self.pack_key = None, None  # freed with its last reference


def _state(block) -> _State:
    st = block._caches.get("cpu")
    if st is None:
        st = block._caches["cpu"] = _State(block.num_experts)
    return st


def _silu(block) -> bool:
    return type(block._modules["act_fn"]).__name__ in _SILU  # not block.act_fn: Module.__getattr__ is slow


def _workspace(numel: int, dtype: torch.dtype) -> torch.Tensor:
    """A reusable CPU scratch buffer of ``numel`` elements (one per thread and dtype): fresh pages of
    a long prefill's gather buffers cost the allocator and the kernel's zero-fill more than the gather."""
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    if nbytes > _WORKSPACE_MAX_BYTES:
        return torch.empty(numel, dtype=dtype)
    bufs = getattr(_WORKSPACE, "bufs", None)
    if bufs is None:
        bufs = _WORKSPACE.bufs = {}
    buf = bufs.get(dtype)
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # a normal tensor may be written in and out of inference mode
            buf = bufs[dtype] = torch.empty(numel, dtype=dtype)
    return buf[:numel]


def _pair(w: torch.Tensor, a: int, b: int) -> torch.Tensor:
    """Experts ``a < b`` of a stacked ``[N, r, c]`` weight as a ``[2, r, c]`` view (no copy)."""
    w = w.contiguous()
    n, r, c = w.shape
    return w.as_strided((2, r, c), ((b - a) * r * c, c, 1), w.storage_offset() + a * r * c)


def _act_mul(block, h: torch.Tensor) -> torch.Tensor:
    """``act(gate) ⊙ up`` of ``h = [..., 2m]`` as a new ``[..., m]`` tensor."""
    gate, up = h.chunk(2, -1)
    return (F.silu(gate) if _silu(block) else block.act_fn(gate)).mul_(up)


class CpuBackend:
    """Registered as ``"cpu"`` in :mod:`labkit.moe.backends`."""

    name = "cpu"

    @staticmethod
    def fused(block, x: torch.Tensor, pol) -> torch.Tensor | None:
        """A decode token (routing included), or a top-k prefill through the C kernel; else None."""
        if torch.is_grad_enabled():
            return None
        if x.numel() == block.hidden_size:
            return _decode(block, _state(block), x, pol)
        if type(pol) is TopK and not (block.record_stats or block.keep_logits):
            st = _state(block)
            kern = _prefill_kernel(block, st, x)
            if kern is not None:  # routing and experts in one kernel call, on x as it is (no reshape)
                st.fused_calls += 1
                k, threads = pol.k, torch.get_num_threads()
                blk = _kernels.prefill_block(x.numel() // block.hidden_size, block.num_experts, k, threads)
                softmax, wr, (w1, w2) = block.weighting == "softmax", st.views[0], st.fused_weights
                args = (x, wr, w1, w2, k, softmax, blk)
                return _with_pack(block, st, kern, kern.prefill_topk, *args, threads=threads)
        return None

    @staticmethod
    def experts(block, x, mask, weights, k_max) -> torch.Tensor:
        """Execute a routed prefill ``x [T, d]`` (mask None: every expert, unit weights)."""
        if torch.is_grad_enabled():
            return block.eager(x, mask, weights)
        if mask is None:
            n, m = block.num_experts, block.expert_dim
            h = torch.empty(x.shape[0], n, 2 * m, dtype=x.dtype)
            for e, w in enumerate(block.w1.unbind(0)):
                torch.mm(x, w, out=h[:, e])
            g = block.act_fn(h[..., :m]) * h[..., m:]
            return g.reshape(-1, n * m) @ block.w2.reshape(n * m, block.hidden_size)
        st = _state(block)
        kern = _prefill_kernel(block, st, x)
        if kern is not None:
            st.fused_calls += 1
            t = x.shape[0]
            blk = _kernels.prefill_block(t, block.num_experts, mask.sum().item() / max(1, t))
            w = None if weights is None else weights.to(torch.float32).contiguous()
            w1, w2 = st.fused_weights
            return _with_pack(
                block, st, kern, kern.prefill, x.contiguous(), w1, w2, mask.to(torch.bool), w, blk
            )
        mt = mask.t()
        tok = mt.nonzero()[:, 1]  # (expert, token) pairs, grouped by expert
        gw = None if weights is None else weights.t()[mt].to(x.dtype).unsqueeze(-1)
        counts = mt.sum(-1).tolist()
        active = sum(1 for c in counts if c)
        if active > 1 and tok.numel() < _PAIR_ROWS * active:
            return _grouped_pairs(block, x, tok, counts, gw)
        return _grouped_loop(block, x, tok, counts, gw)


def _grouped_loop(block, x, tok, counts, gw) -> torch.Tensor:
    """Gather the tokens once into a reused buffer, one GEMM per expert, one ``index_add_``."""
    m = block.expert_dim
    rows, d = tok.numel(), x.shape[1]
    ws = _workspace(2 * rows * d + max(counts) * 2 * m, x.dtype)
    xs = torch.index_select(x, 0, tok, out=ws[: rows * d].view(rows, d))
    buf = ws[rows * d : 2 * rows * d].view(rows, d)
    hbuf = ws[2 * rows * d :]
    w1s, w2s = block.w1.detach().unbind(0), block.w2.detach().unbind(0)
    start = 0
    for e, c in enumerate(counts):
        if c == 0:
            continue
        h = torch.mm(xs[start : start + c], w1s[e], out=hbuf[: c * 2 * m].view(c, 2 * m))
        g = h[:, :m]
        g = F.silu(g, inplace=True) if _silu(block) else block.act_fn(g)
        g.mul_(h[:, m:])
        if gw is not None:
            g.mul_(gw[start : start + c])
        torch.mm(g, w2s[e], out=buf[start : start + c])
        start += c
    return torch.zeros_like(x).index_add_(0, tok, buf)


def _grouped_pairs(block, x, tok, counts, gw) -> torch.Tensor:
    """Few tokens per expert: two experts per batched GEMM (``bmm``), paired by token count and
    padded to the larger one; a threaded GEMM splits a few hundred rows too little across cores."""
    m, d = block.expert_dim, x.shape[1]
    w1, w2 = block.w1.detach(), block.w2.detach()
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    order = sorted((e for e, c in enumerate(counts) if c), key=lambda e: -counts[e])
    y = torch.zeros_like(x)
    if len(order) % 2:  # the smallest expert alone
        e = order.pop()
        sl = slice(starts[e], starts[e + 1])
        g = _act_mul(block, x.index_select(0, tok[sl]) @ w1[e])
        if gw is not None:
            g.mul_(gw[sl])
        y.index_add_(0, tok[sl], g @ w2[e])
    mp = counts[order[0]]  # the largest pair's padded size
    ws = _workspace(2 * mp * (2 * d + 2 * m), x.dtype)
    for i in range(0, len(order), 2):
        a, b = sorted(order[i : i + 2])
        mp = max(counts[a], counts[b])
        xp = ws[: 2 * mp * d].view(2, mp, d)
        hp = ws[2 * mp * d : 2 * mp * (d + 2 * m)].view(2, mp, 2 * m)
        op = ws[2 * mp * (d + 2 * m) : 2 * mp * (2 * d + 2 * m)].view(2, mp, d)
        sls = (slice(starts[a], starts[a + 1]), slice(starts[b], starts[b + 1]))
        for j, (e, sl) in enumerate(zip((a, b), sls, strict=True)):
            torch.index_select(x, 0, tok[sl], out=xp[j, : counts[e]])
        torch.bmm(xp, _pair(w1, a, b), out=hp)
        gate, up = hp.chunk(2, -1)
        g = (
            F.silu(gate, inplace=True).mul_(up)
            if _silu(block)
            else torch.mul(block.act_fn(gate), up, out=gate)
        )
        if gw is not None:
            for j, (e, sl) in enumerate(zip((a, b), sls, strict=True)):
                g[j, : counts[e]].mul_(gw[sl])
        torch.bmm(g, _pair(w2, a, b), out=op)
        for j, (e, sl) in enumerate(zip((a, b), sls, strict=True)):
            y.index_add_(0, tok[sl], op[j, : counts[e]])
    return y


# ---------------------------------------------------------------------------- decode
def _decode(block, st: _State, x: torch.Tensor, pol: Policy) -> torch.Tensor:
    """One token (``x.numel() == d``): only the chosen experts' slices are read. Kept lean: a decode
    step's FFN is tens of microseconds on a CPU, so every extra tensor call shows."""
    wr, w1_rows, w2_rows, fusable = _weight_views(block, st)
    kern = None
    if fusable and block.use_kernels and x.dtype == torch.float32 and _silu(block):
        kern = _kernels.get()
        if kern is not None and not (block.record_stats or block.keep_logits):
            rule = pol.kernel_rule(block.num_experts)
            if rule is not None:  # routing and experts in one kernel call
                st.fused_calls += 1
                step = st.rule_step
                if step is None:
                    step = st.rule_step = kern.rule_decoder(wr, *st.fused_weights)
                return step(x.contiguous(), *rule, block.weighting == "softmax")
    xv = x.reshape(-1)
    n = block.num_experts
    w = None
    if pol.unit_weights:  # all experts, weight 1: the dense FFN
        if block.record_stats:
            block.stats.update(torch.ones(1, n, dtype=torch.bool))
        idx = st.all_ids
    else:
        logits = torch.mv(wr, xv)
        if block.keep_logits:
            block.last_logits = logits.unsqueeze(0)
        idx = pol.select_one(logits)
        if block.record_stats:
            mask = torch.zeros(n, dtype=torch.bool)
            mask[idx] = True
            block.stats.update(mask.unsqueeze(0))
        if block.weighting == "softmax" and idx:
            # renormalised weights for one token, in Python floats (a few µs, not ~100)
            vals = logits.tolist()
            top = max(vals[i] for i in idx)
            ex = [math.exp(vals[i] - top) for i in idx]
            scale = len(idx) / sum(ex)
            w = torch.tensor([[e * scale] for e in ex], dtype=x.dtype)
        elif block.weighting != "unit":
            mask = torch.zeros(1, n, dtype=torch.bool)
            mask[0, idx] = True
            w = routing_weights(logits.unsqueeze(0), mask, block.weighting)[0]  # raises: unknown weighting
            w = w[idx].to(x.dtype).unsqueeze(-1)
        if not idx:
            return torch.zeros_like(x)
    if kern is not None:
        return _decode_kernel(st, kern, xv, idx, w).view(x.shape)
    if (block.decode_impl or "bags") == "bags":
        return _decode_bags(block, st, xv, idx, w, w1_rows, w2_rows).view(x.shape)
    return _decode_runs(block, xv, idx, w).view(x.shape)


def _decode_kernel(
    st: _State, kern: _kernels.MoEKernels, xv: torch.Tensor, idx: list[int], w
) -> torch.Tensor:
    """The fused C decode kernel; the ctypes array of expert ids is cached per selection."""
    st.fused_calls += 1
    key = tuple(idx)
    arr = st.kplans.get(key)
    if arr is None:
        if len(st.kplans) > 4096:
            st.kplans.clear()
        arr = st.kplans[key] = (ctypes.c_int64 * len(idx))(*idx)
    w1, w2 = st.fused_weights
    return kern.decode(xv.contiguous(), w1, w2, arr, len(idx), w)


def _decode_bags(block, st: _State, xv, idx: list[int], w, w1_rows, w2_rows) -> torch.Tensor:
    """Two weighted row sums: ``h[j] = Σ_i x_i w1[e_j, i]`` then ``y = Σ_(j,r) g[j, r] w2[e_j, r]``.

    Each chosen expert is one bag of ``d`` rows (split in ``s`` sub-bags when there are fewer
    experts than threads, summed afterwards); the down projection's ``k·m`` rows are split in
    as many bags as threads (none under ``_MIN_BAG_ROWS`` rows) and summed.
    """
    k = len(idx)
    idx1, off1, sub, idx2, off2 = _plan(block, st, tuple(idx), torch.get_num_threads())
    xs = xv.expand(k, xv.shape[0]).reshape(-1)
    h = torch.embedding_bag(w1_rows, idx1, off1, False, 0, False, xs, False, None)[0]
    if sub > 1:
        h = h.view(k, sub, -1).sum(1)
    g = _act_mul(block, h)
    if w is not None:
        g.mul_(w)
    y = torch.embedding_bag(w2_rows, idx2, off2, False, 0, False, g.reshape(-1), False, None)[0]
    return y[0] if y.shape[0] == 1 else y.sum(0)


def _plan(block, st: _State, idx: tuple[int, ...], threads: int) -> tuple:
    """Row indices and bag offsets of a selection (cached; the cache is bounded to ~32 MB)."""
    key = (idx, threads)
    plan = st.plans.get(key)
    if plan is not None:
        return plan
    k, m, d = len(idx), block.expert_dim, block.hidden_size
    if len(st.plans) * k * (d + m) * 8 > 1 << 25:
        st.plans.clear()
    sel = torch.tensor(idx, dtype=torch.long).unsqueeze(1)
    sub = 1
    while k * sub * 2 <= threads and d % (sub * 2) == 0 and d // (sub * 2) >= _MIN_BAG_ROWS:
        sub *= 2
    idx1 = torch.add(torch.arange(d), sel, alpha=d).view(-1)
    off1 = torch.arange(0, k * d, d // sub)
    rows = k * m
    bags2 = max(1, min(threads, rows // _MIN_BAG_ROWS))
    idx2 = torch.add(torch.arange(m), sel, alpha=m).view(-1)
    off2 = torch.arange(0, rows, -(-rows // bags2))
    plan = st.plans[key] = (idx1, off1, sub, idx2, off2)
    return plan


def _decode_runs(block, xv, idx: list[int], w) -> torch.Tensor:
    """One matrix-vector product per run of consecutive chosen experts (gate/up and down)."""
    d = block.hidden_size
    w1, w2 = block.w1.detach(), block.w2.detach()
    h = torch.empty(len(idx), 2 * block.expert_dim, dtype=xv.dtype)
    spans: list[list[int]] = []  # sorted expert ids merged into runs [a, b)
    for e in idx:
        if spans and spans[-1][1] == e:
            spans[-1][1] = e + 1
        else:
            spans.append([e, e + 1])
    off = 0
    for a, b in spans:
        torch.matmul(xv, w1[a:b], out=h[off : off + b - a])
        off += b - a
    g = _act_mul(block, h)
    if w is not None:
        g.mul_(w)
    y, off = None, 0
    for a, b in spans:
        part = g[off : off + b - a].reshape(-1)
        w2r = w2[a:b].reshape(-1, d).t()
        y = torch.mv(w2r, part) if y is None else y.addmv_(w2r, part)
        off += b - a
    assert y is not None, "no expert chosen"  # the caller returns zeros for an empty selection
    return y


def _weight_views(block, st: _State) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """``(router weight, w1 rows [N·d, 2m], w2 rows [N·m, d], fusable)``, detached, for decoding.

    ``fusable``: the weights suit the C kernels (float32, contiguous; ``st.fused_weights`` holds
    them). Rebuilt only when a parameter is replaced or moved; in-place updates keep views valid.
    """
    w1, w2 = block._parameters["w1"], block._parameters["w2"]  # plain dict lookups: __getattr__ is slow
    wr = block._modules["router"]._parameters["weight"]
    key = (w1.data_ptr(), w2.data_ptr(), wr.data_ptr(), w1.dtype, w2.dtype)
    if st.views_key != key:
        w1c, w2c = w1.detach().contiguous(), w2.detach().contiguous()
        fusable = block.num_experts <= _kernels.MAX_TOPK_EXPERTS and all(
            w.dtype == torch.float32 and w.is_contiguous() for w in (w1, w2, wr)
        )
        st.views = (wr.detach(), w1c.view(-1, w1.shape[-1]), w2c.view(-1, w2.shape[-1]), fusable)
        st.fused_weights = (w1.detach(), w2.detach())
        expert_bytes = 3 * block.hidden_size * block.expert_dim * 4
        st.fused_prefill = fusable and expert_bytes <= _kernels.PREFILL_MAX_EXPERT_BYTES
        st.rule_step = None  # kernels.rule_decoder bound to these weights, built on first use
        st.views_key = key
        st.plans = {}
    return st.views


# ---------------------------------------------------------------------------- prefill kernels
def _prefill_kernel(block, st: _State, x: torch.Tensor) -> _kernels.MoEKernels | None:
    """The fused prefill kernels when they apply (float32 input and weights, SiLU, cache-sized
    experts: ``kernels.PREFILL_MAX_EXPERT_BYTES``, MKL present), else None."""
    if not (block.use_kernels and x.dtype == torch.float32 and _silu(block)):
        return None
    _weight_views(block, st)
    if not st.fused_prefill:
        return None
    kern = _kernels.get()
    return kern if kern is not None and kern.has_prefill else None


def _packed(block, st: _State, kern: _kernels.MoEKernels) -> _kernels.PackedExperts | None:
    """The expert weights packed for the prefill kernels (``kernels.MoEKernels.pack``), or None.

    Rebuilt whenever the weights change, in place included: the parameters' version counters are
    part of the key, and the kernels compare 256 sampled weights on every call for edits that
    bypass them (``block.w1.data.mul_(...)``; :func:`_with_pack` then repacks; an edit of a few
    weights through ``.data`` is not seen: set ``block.pack_weights = False`` around such edits).
    Not used for tensors made under ``torch.inference_mode`` (no version counter).
    """
    w1, w2 = block._parameters["w1"], block._parameters["w2"]
    key = None
    if block.pack_weights and kern.has_pack:
        try:
            key = (w1.data_ptr(), w2.data_ptr(), w1._version, w2._version, w1.shape, w2.shape)
        except RuntimeError:  # an inference tensor: in-place changes could not be seen
            key = None
    if st.pack_key != key:
        st.pack = None  # dropped, not freed: a call in another thread may still hold it
        if key is not None:
            st.pack = kern.pack(*st.fused_weights, rows=_kernels.PREFILL_CHUNK)
        st.pack_key = key
    return st.pack


def _with_pack(block, st: _State, kern, fn: Callable[..., torch.Tensor], *args, **kwargs) -> torch.Tensor:
    """``fn(*args, packed=..., **kwargs)`` with the block's packed weights; when the kernel finds them
    stale (weights edited through ``.data``) they are rebuilt and the call made again."""
    try:
        return fn(*args, packed=_packed(block, st, kern), **kwargs)
    except _kernels.StalePackError:
        st.release()
        return fn(*args, packed=_packed(block, st, kern), **kwargs)
