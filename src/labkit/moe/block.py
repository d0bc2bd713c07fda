"""The MoE block that replaces a LLaMA ``LlamaMLP``: N SwiGLU experts sliced from the dense FFN + a router.

Expert ``i`` owns a set ``S_i`` of the dense FFN's intermediate neurons:

    E_i(x) = (SiLU(x W_g[S_i]ᵀ) ⊙ x W_u[S_i]ᵀ) W_d[:, S_i]ᵀ,   Σ_i E_i(x) = FFN(x)  exactly.

Storage (stacked, so a run of consecutive experts is one contiguous matrix):

* ``w1``: ``[N, 2m, d]``, rows ``0..m-1`` are expert i's gate rows, ``m..2m-1`` its up rows;
* ``w2``: ``[N, m, d]``, the transposed down-projection columns (``y = h @ w2[i]``);
* ``m = ceil(f / N)``: uneven splits are zero-padded; a zero gate/up row and zero down column
  contribute exactly 0 and receive exactly zero gradient, so padding stays zero in training.

Dispatch (no Python loop over tokens): the policy gives a selection mask ``[T, N]``;
``mask.T.nonzero()`` lists (expert, token) pairs already grouped by expert; tokens are gathered
once, each expert runs one GEMM on its contiguous group, and results are scattered back with one
``index_add_`` (the LLaMA-MoE ``UniversalCalculator`` pattern). A single decode token instead
multiplies only the selected experts' slices, merging consecutive experts into one matrix-vector
product. Reference: Zhu et al. 2024 (LLaMA-MoE); Kim et al. 2024 (LaDiMo).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .policies import WEIGHTINGS, AllExperts, Policy, parse_policy, routing_weights

__all__ = ["MoEBlock", "RoutingStats"]

_SILU = {"SiLU", "SiLUActivation"}


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
    ``record_stats`` (bool) and ``stats`` (:class:`RoutingStats`), ``last_logits`` (router logits of
    the last call when ``keep_logits`` is set).
    """

    def __init__(
        self,
        hidden_size: int,
        expert_sizes: list[int],
        act_fn: nn.Module,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        n = len(expert_sizes)
        m = max(expert_sizes)
        self.hidden_size = hidden_size
        self.num_experts = n
        self.expert_dim = m
        self.act_fn = act_fn
        self.router = nn.Linear(hidden_size, n, bias=False, dtype=dtype, device=device)
        self.w1 = nn.Parameter(torch.zeros(n, 2 * m, hidden_size, dtype=dtype, device=device))
        self.w2 = nn.Parameter(torch.zeros(n, m, hidden_size, dtype=dtype, device=device))
        self.register_buffer("expert_sizes", torch.tensor(expert_sizes, dtype=torch.long), persistent=True)
        self.register_buffer("neuron_index", torch.full((n, m), -1, dtype=torch.long), persistent=True)
        self.policy: Policy = AllExperts()
        self.weighting = "unit"
        self.record_stats = False
        self.stats = RoutingStats(n)
        self.keep_logits = False
        self.last_logits: torch.Tensor | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dense(cls, mlp: nn.Module, groups: list[torch.Tensor]) -> MoEBlock:
        """Slice a dense ``LlamaMLP`` into experts; ``groups[i]`` are the neuron indices of expert ``i``."""
        wg, wu, wd = mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight
        d = wg.shape[1]
        sizes = [int(g.numel()) for g in groups]
        block = cls(d, sizes, mlp.act_fn, dtype=wg.dtype, device=wg.device)
        m = block.expert_dim
        with torch.no_grad():
            for i, idx in enumerate(groups):
                idx = idx.to(wg.device)
                s = idx.numel()
                block.w1[i, :s] = wg[idx]
                block.w1[i, m : m + s] = wu[idx]
                block.w2[i, :s] = wd[:, idx].t()
                block.neuron_index[i, :s] = idx
            # Router init: each expert's mean normalised gate row ("similarity selection",
            # MoEfication), scaled so initial logits are O(1); distillation refines it.
            for i, idx in enumerate(groups):
                rows = F.normalize(wg[idx.to(wg.device)].float(), dim=-1).mean(0)
                block.router.weight[i] = (rows / (rows.norm() + 1e-6) * math.sqrt(d) / d).to(wg.dtype)
        return block

    def set_weighting(self, weighting: str) -> None:
        """``"unit"`` or ``"softmax"`` expert weights (see :mod:`labkit.moe.policies`)."""
        if weighting not in WEIGHTINGS:
            from .errors import UnknownPolicyError

            raise UnknownPolicyError(f"weighting={weighting!r} must be one of {WEIGHTINGS}")
        self.weighting = weighting

    def set_policy(self, policy: str | Policy) -> None:
        """Set the routing policy of this block (see :mod:`labkit.moe.policies`)."""
        pol = parse_policy(policy)
        pol.validate(self.num_experts)
        self.policy = pol

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, policy: Policy | None = None) -> torch.Tensor:
        """Apply the block to ``x`` of shape ``[..., d]``; ``policy`` overrides ``self.policy`` once."""
        pol = self.policy if policy is None else policy
        shape = x.shape
        flat = x.reshape(-1, self.hidden_size)
        if pol.unit_weights:
            if self.record_stats:
                self.stats.update(torch.ones(flat.shape[0], self.num_experts, dtype=torch.bool))
            return self._all_experts(flat).reshape(shape)
        logits = self.router(flat)
        if self.keep_logits:
            self.last_logits = logits.detach()
        mask = pol.select(logits)
        weights = routing_weights(logits, mask, self.weighting)
        if self.record_stats:
            self.stats.update(mask)
        if flat.shape[0] == 1:
            out = self._decode_one(flat, mask[0], weights[0])
        else:
            out = self._grouped(flat, mask, weights)
        return out.reshape(shape)

    def _all_experts(self, x: torch.Tensor) -> torch.Tensor:
        n, m, d = self.num_experts, self.expert_dim, self.hidden_size
        h = F.linear(x, self.w1.reshape(n * 2 * m, d)).view(-1, n, 2, m)
        h = self.act_fn(h[:, :, 0]) * h[:, :, 1]
        return h.reshape(-1, n * m) @ self.w2.reshape(n * m, d)

    def _grouped(self, x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Sort/gather → one GEMM per expert → scatter-add."""
        m = self.expert_dim
        mt = mask.t()
        pairs = mt.nonzero()  # (expert, token), grouped by expert
        tok = pairs[:, 1]
        gw = weights.t()[mt].to(x.dtype).unsqueeze(-1)  # same (expert, token) order
        counts = mt.sum(-1).tolist()
        xs = x.index_select(0, tok)
        w1s, w2s = self.w1.unbind(0), self.w2.unbind(0)  # one gradient stack, not one per expert
        if not torch.is_grad_enabled():
            return self._grouped_inference(x, xs, tok, counts, gw, w1s, w2s)
        outs = []
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            h = F.linear(xs[start : start + c], w1s[e])
            h = self.act_fn(h[:, :m]) * h[:, m:] * gw[start : start + c]
            outs.append(h @ w2s[e])
            start += c
        y = torch.zeros_like(x)
        if outs:
            y = y.index_add(0, tok, torch.cat(outs) if len(outs) > 1 else outs[0])
        return y

    def _grouped_inference(self, x, xs, tok, counts, gw, w1s, w2s) -> torch.Tensor:
        """No-grad variant: in-place activation, results written straight into one buffer."""
        m = self.expert_dim
        unit = self.weighting == "unit"
        buf = torch.empty_like(xs)
        start = 0
        for e, c in enumerate(counts):
            if c == 0:
                continue
            h = F.linear(xs[start : start + c], w1s[e])
            g = h[:, :m]
            if type(self.act_fn).__name__ in _SILU:
                F.silu(g, inplace=True)
            else:
                g = self.act_fn(g)
            g.mul_(h[:, m:])
            if not unit:
                g.mul_(gw[start : start + c])
            torch.mm(g, w2s[e], out=buf[start : start + c])
            start += c
        return torch.zeros_like(x).index_add_(0, tok, buf)

    def _decode_one(self, x: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """One token: multiply only the chosen experts' slices (consecutive experts merged)."""
        m, d = self.expert_dim, self.hidden_size
        idx = mask.nonzero().flatten().tolist()
        runs: list[tuple[int, int]] = []
        for e in idx:
            if runs and runs[-1][1] == e:
                runs[-1] = (runs[-1][0], e + 1)
            else:
                runs.append((e, e + 1))
        y = None
        for a, b in runs:
            h = F.linear(x, self.w1[a:b].reshape(-1, d)).view(b - a, 2, m)
            h = self.act_fn(h[:, 0]) * h[:, 1] * weights[a:b, None].to(x.dtype)
            part = h.reshape(1, -1) @ self.w2[a:b].reshape(-1, d)
            y = part if y is None else y + part
        return y if y is not None else torch.zeros_like(x)

    # ------------------------------------------------------------------ helpers
    def expert_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert's output for ``x`` ``[T, d]``: ``[T, N, d]`` (for analysis and router fitting)."""
        n, m, d = self.num_experts, self.expert_dim, self.hidden_size
        h = F.linear(x, self.w1.reshape(n * 2 * m, d)).view(-1, n, 2, m)
        h = self.act_fn(h[:, :, 0]) * h[:, :, 1]
        return torch.einsum("tnm,nmd->tnd", h, self.w2)

    def extra_repr(self) -> str:
        return (
            f"hidden={self.hidden_size}, experts={self.num_experts}, expert_dim={self.expert_dim}, "
            f"policy={self.policy.spec()}, weighting={self.weighting}"
        )
