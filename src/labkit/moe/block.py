"""The MoE block that replaces a LLaMA ``LlamaMLP``: N SwiGLU experts sliced from the dense FFN + a router.

Expert ``i`` owns a set ``S_i`` of the dense FFN's intermediate neurons:

    E_i(x) = (SiLU(x W_g[S_i]ᵀ) ⊙ x W_u[S_i]ᵀ) W_d[:, S_i]ᵀ,   Σ_i E_i(x) = FFN(x)  exactly.

Storage, stacked per expert like transformers' Mixtral experts (input-major, so ``h = x @ w1[i]``):

* ``w1``: ``[N, d, 2m]``, columns ``0..m-1`` are expert i's gate neurons, ``m..2m-1`` its up neurons;
* ``w2``: ``[N, m, d]``, the transposed down-projection columns;
* ``m = ceil(f / N)``: uneven splits are zero-padded; a zero gate/up column and zero down row
  contribute exactly 0 and receive exactly zero gradient, so padding stays zero in training.
* optionally an always-on **shared expert** of ``s`` neurons (``shared_w1`` ``[d, 2s]``,
  ``shared_w2`` ``[s, d]``), added to every token's output whatever the policy (DeepSeekMoE's
  shared experts; LLaMA-MoE-v2's residual MoE). The policy then routes only the N routed experts:

      y_t = E_shared(x_t) + Σ_{i∈S_t} g_ti E_i(x_t),   E_shared + Σ_i E_i = FFN  exactly.

A forward pass is two steps kept apart: **routing** (:meth:`MoEBlock.route`: the router's logits,
the policy's selection mask ``[T, N]`` and the expert weights, see :mod:`labkit.moe.policies`) and
**execution** (``y_t = Σ_{i∈S_t} g_ti E_i(x_t)``). :meth:`MoEBlock.eager` is the readable reference
of the execution; faster ones (a grouped GEMM, labkit's CPU kernels) are picked from the registry in
:mod:`labkit.moe.backends` by name (:func:`labkit.moe.backends.set_backend`). Every backend computes
the same function to the dtype's rounding.
Reference: Zhu et al. 2024 (LLaMA-MoE); Kim et al. 2024 (LaDiMo); transformers' ``MixtralExperts``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .backends import resolve
from .hf import SwiGLU
from .policies import WEIGHTINGS, AllExperts, Policy, parse_policy, routing_weights

__all__ = ["MoEBlock", "RoutingStats"]

WEIGHT_LAYOUT = 2  # w1 is [N, d, 2m]; layout 1 (before 2026-11-28) stored [N, 2m, d]


class RoutingStats:
    """Accumulated routing statistics of one block: tokens, experts-per-token histogram, expert load."""

    def __init__(self, num_experts: int) -> None:
        self.num_experts = num_experts
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self.tokens = 0
        self.k_hist = torch.zeros(self.num_experts + 1, dtype=torch.long)
        self.load = torch.zeros(self.num_experts, dtype=torch.long)

    def update(self, mask: torch.Tensor) -> None:
        """Add a selection mask ``[T, N]``."""
        m = mask.detach().to("cpu")
        self.tokens += m.shape[0]
        self.k_hist += torch.bincount(m.sum(-1), minlength=self.num_experts + 1)
        self.load += m.sum(0)

    @property
    def mean_k(self) -> float:
        """Mean number of experts used per token (nan when nothing was recorded)."""
        if self.tokens == 0:
            return float("nan")
        return float((self.k_hist * torch.arange(self.num_experts + 1)).sum()) / self.tokens

    def as_dict(self) -> dict:
        """Plain-Python view for reports."""
        return {
            "tokens": self.tokens,
            "mean_k": self.mean_k,
            "k_hist": self.k_hist.tolist(),
            "load": self.load.tolist(),
        }


class MoEBlock(nn.Module):
    """Drop-in replacement for a SwiGLU ``LlamaMLP``: ``forward(x) -> y`` with the same shape.

    Build with :meth:`from_dense`. Attributes: ``policy`` (a :class:`~labkit.moe.policies.Policy`),
    ``weighting`` (``"unit"`` or ``"softmax"``), ``backend`` (a name of
    :mod:`labkit.moe.backends`, default ``"auto"``), ``record_stats`` (bool) and ``stats``
    (:class:`RoutingStats`), ``last_logits`` (router logits of the last call when ``keep_logits``).
    """

    # buffers (registered in __init__; declared for type checkers)
    expert_sizes: torch.Tensor
    neuron_index: torch.Tensor
    shared_index: torch.Tensor

    def __init__(
        self,
        hidden_size: int,
        expert_sizes: list[int],
        act_fn: nn.Module,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        shared_size: int = 0,
    ) -> None:
        super().__init__()
        n, m = len(expert_sizes), max(expert_sizes)
        self.hidden_size, self.num_experts, self.expert_dim = hidden_size, n, m
        self.act_fn = act_fn
        self.router = nn.Linear(hidden_size, n, bias=False, dtype=dtype, device=device)
        self.w1 = nn.Parameter(torch.zeros(n, hidden_size, 2 * m, dtype=dtype, device=device))
        self.w2 = nn.Parameter(torch.zeros(n, m, hidden_size, dtype=dtype, device=device))
        self.register_buffer("expert_sizes", torch.tensor(expert_sizes, dtype=torch.long), persistent=True)
        self.register_buffer("neuron_index", torch.full((n, m), -1, dtype=torch.long), persistent=True)
        self.shared_size = int(shared_size)
        if self.shared_size:
            s = self.shared_size
            self.shared_w1 = nn.Parameter(torch.zeros(hidden_size, 2 * s, dtype=dtype, device=device))
            self.shared_w2 = nn.Parameter(torch.zeros(s, hidden_size, dtype=dtype, device=device))
            self.register_buffer("shared_index", torch.full((s,), -1, dtype=torch.long), persistent=True)
        self.policy: Policy = AllExperts()
        self.weighting = "unit"
        self.backend = "auto"
        self.record_stats = False
        self.stats = RoutingStats(n)
        self.keep_logits = False
        self.last_logits: torch.Tensor | None = None
        # settings of the "cpu" backend (labkit.moe.cpu_backend): its C kernels, their packed
        # weight copy, the PyTorch decode variant ("bags"/"runs")
        self.use_kernels = True
        self.pack_weights = True
        self.decode_impl: str | None = None
        self._caches: dict = {}  # the backends' per-process caches (weight views, packs, plans)

    @classmethod
    def from_dense(
        cls, mlp: SwiGLU, groups: list[torch.Tensor], shared: torch.Tensor | None = None
    ) -> MoEBlock:
        """Slice a dense ``LlamaMLP`` into experts; ``groups[i]`` are the neuron indices of expert ``i``,
        ``shared`` those of the always-on shared expert (none by default)."""
        wg, wu, wd = mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight
        d = wg.shape[1]
        s = 0 if shared is None else int(shared.numel())
        sizes = [int(g.numel()) for g in groups]
        block = cls(d, sizes, mlp.act_fn, dtype=wg.dtype, device=wg.device, shared_size=s)
        m = block.expert_dim
        with torch.no_grad():
            if s and shared is not None:
                idx = shared.to(wg.device)
                block.shared_w1.copy_(torch.cat([wg[idx], wu[idx]]).t())
                block.shared_w2.copy_(wd[:, idx].t())
                block.shared_index.copy_(idx)
            for i, idx in enumerate(groups):
                idx = idx.to(wg.device)
                s = idx.numel()
                block.w1[i, :, :s] = wg[idx].t()
                block.w1[i, :, m : m + s] = wu[idx].t()
                block.w2[i, :s] = wd[:, idx].t()
                block.neuron_index[i, :s] = idx
                # router init: the expert's mean normalised gate row ("similarity selection",
                # MoEfication), scaled so initial logits are O(1); distillation refines it
                rows = F.normalize(wg[idx].float(), dim=-1).mean(0)
                block.router.weight[i] = (rows / (rows.norm() + 1e-6) * math.sqrt(d) / d).to(wg.dtype)
        return block

    def set_policy(self, policy: str | Policy) -> None:
        """Set the routing policy of this block (see :mod:`labkit.moe.policies`)."""
        pol = parse_policy(policy)
        pol.validate(self.num_experts)
        self.policy = pol

    def set_weighting(self, weighting: str) -> None:
        """``"unit"`` or ``"softmax"`` expert weights (see :mod:`labkit.moe.policies`)."""
        if weighting not in WEIGHTINGS:
            from .errors import UnknownPolicyError

            raise UnknownPolicyError(f"weighting={weighting!r} must be one of {WEIGHTINGS}")
        self.weighting = weighting

    def shared_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The shared expert's output for ``x`` ``[..., d]`` (zeros when there is none)."""
        if not self.shared_size:
            return torch.zeros_like(x)
        h = x @ self.shared_w1
        s = self.shared_size
        return (self.act_fn(h[..., :s]) * h[..., s:]) @ self.shared_w2

    def labkit_state(self) -> str:
        """Routing state that changes the outputs but is not a tensor (for cache fingerprints)."""
        return f"{self.policy.spec()}|{self.weighting}"

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, policy: Policy | None = None) -> torch.Tensor:
        """Apply the block to ``x`` of shape ``[..., d]``; ``policy`` overrides ``self.policy`` once."""
        pol = self.policy if policy is None else policy
        impl = resolve(self, x)
        y = impl.fused(self, x, pol)  # a backend may route and execute in one call (CPU kernels)
        if y is None:
            flat = x.reshape(-1, self.hidden_size)
            mask, weights = self.route(flat, pol)
            k = pol.nominal_k(self.num_experts)
            y = impl.experts(self, flat, mask, weights, k).reshape(x.shape)
        return y + self.shared_forward(x) if self.shared_size else y

    def route(self, x: torch.Tensor, pol: Policy) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(mask [T, N] or None for all experts, weights [T, N] or None for unit weights)``.

        Unit weights need no tensor without gradient; with gradient they carry the router's
        straight-through term (:func:`~labkit.moe.policies.routing_weights`).
        """
        if pol.unit_weights:
            if self.record_stats:
                self.stats.update(torch.ones(x.shape[0], self.num_experts, dtype=torch.bool))
            return None, None
        logits = self.router(x)
        if self.keep_logits:
            self.last_logits = logits.detach()
        mask = pol.select(logits)
        if self.record_stats:
            self.stats.update(mask)
        if torch.is_grad_enabled() or self.weighting != "unit":
            return mask, routing_weights(logits, mask, self.weighting)
        return mask, None

    def eager(self, x: torch.Tensor, mask: torch.Tensor | None, weights: torch.Tensor | None) -> torch.Tensor:
        """The reference execution: per expert, gather its tokens, SwiGLU, weigh, scatter-add."""
        m = self.expert_dim
        y = torch.zeros_like(x)
        for e, (w1, w2) in enumerate(zip(self.w1.unbind(0), self.w2.unbind(0), strict=True)):
            tok = None if mask is None else mask[:, e].nonzero().squeeze(-1)
            if tok is not None and tok.numel() == 0:
                continue
            xe = x if tok is None else x[tok]
            h = xe @ w1
            g = self.act_fn(h[:, :m]) * h[:, m:]
            if weights is not None:
                g = g * (weights[:, e] if tok is None else weights[tok, e]).unsqueeze(-1).to(g.dtype)
            y = y + g @ w2 if tok is None else y.index_add(0, tok, g @ w2)
        return y

    def expert_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert's output for ``x`` ``[T, d]``: ``[T, N, d]`` (for analysis and router fitting)."""
        m = self.expert_dim
        h = torch.einsum("td,ndk->tnk", x, self.w1)
        return torch.einsum("tnm,nmd->tnd", self.act_fn(h[..., :m]) * h[..., m:], self.w2)

    # ------------------------------------------------------------------ CPU backend hooks
    @property
    def fused_calls(self) -> int:
        """Forward calls served by the C kernels of the ``"cpu"`` backend (a diagnostic)."""
        cpu = self._caches.get("cpu")
        return 0 if cpu is None else cpu.fused_calls

    def release_kernel_caches(self) -> None:
        """Free the ``"cpu"`` backend's packed copy of the expert weights (rebuilt on its next prefill)."""
        cpu = self._caches.get("cpu")
        if cpu is not None:
            cpu.release()

    def __getstate__(self) -> dict:
        """Pickling (``torch.save``, ``copy.deepcopy``) drops the backends' per-process caches."""
        return {**self.__dict__, "_caches": {}}

    def extra_repr(self) -> str:
        return (
            f"hidden={self.hidden_size}, experts={self.num_experts}, expert_dim={self.expert_dim}, "
            f"shared={self.shared_size}, "
            f"policy={self.policy.spec()}, weighting={self.weighting}, backend={self.backend}"
        )
