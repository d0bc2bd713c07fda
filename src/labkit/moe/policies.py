"""Routing policies: which experts each token uses, and with what weights.

Notation: ``r = x W_rᵀ`` are the router logits of a token (one per expert, N experts),
``p = softmax(r)`` the routing weights, ``p_(1) ≥ p_(2) ≥ …`` the same sorted, and ``S`` the set
of experts a policy selects for the token. The block output is

    y = Σ_{i∈S} g_i E_i(x)

Two weightings (see :func:`routing_weights`):

``"unit"`` (default)
    ``g_i = 1`` in the forward pass, so a selected set is a plain partial sum of the dense FFN
    (all experts = the dense FFN exactly); the router still learns from the distillation loss
    through a straight-through term ``g_i = 1 + p_i − sg(p_i)`` (``sg`` = stop-gradient), i.e. the
    gradient it would get if the weights were ``p_i``. Measured on SmolLM2 layers this keeps the
    per-layer error an order of magnitude below the softmax weighting, whose top expert can get
    a weight near k on tokens with one dominant expert.
``"softmax"``
    The mean-one renormalised softmax ``g_i = |S| · exp(r_i) / Σ_{j∈S} exp(r_j)`` (LLaMA-MoE's
    ``scale_factor`` idea). Mixtral renormalises to sum 1 instead; the factor |S| = k is folded
    into the exported ``down_proj`` (:func:`labkit.moe.io.export_mixtral`), so this weighting
    exports exactly.

Policies (all produce a boolean selection mask of shape ``[tokens, N]``):

``AllExperts`` (``"all"``)
    S = all experts, g = 1.
``TopK(k)`` (``"top1"``, ``"top2"``, …)
    S = the k largest logits.
``TopP(tau, k_min, k_max)`` (``"topp0.8"``)
    Smallest prefix of the sorted experts whose routing mass reaches τ:
    ``k = min{j : Σ_{i≤j} p_(i) ≥ τ}``, clipped to ``[k_min, k_max]`` (top-p routing,
    Huang et al. 2024; D2DMoE's ``dynk`` on router weights).
``SwitchK(tau, k_min, k_max)`` (``"switch0.5:2-4"``)
    The LaDiMo-style rule: if the top weight is large one expert dominates and extra experts are
    redundant: ``k = k_min if p_(1) ≥ τ else k_max``.
"""

from __future__ import annotations

import math
import re
from array import array
from dataclasses import dataclass
from itertools import accumulate

import torch

from .errors import UnknownPolicyError
from .kernels import RULE_SWITCH, RULE_TOPK, RULE_TOPP

__all__ = [
    "AllExperts",
    "Policy",
    "SwitchK",
    "TopK",
    "TopP",
    "parse_policy",
    "renormalised_weights",
    "routing_weights",
]

WEIGHTINGS = ("unit", "softmax")


class Policy:
    """Base class: ``select(logits) -> mask`` and a nominal (upper-bound) expert count."""

    unit_weights: bool = False

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``[T, N]`` of selected experts for router logits ``[T, N]``."""
        raise NotImplementedError

    def select_one(self, logits: torch.Tensor) -> list[int]:
        """Sorted expert ids selected for one token's logits ``[N]`` (the decode fast path)."""
        return self.select(logits.unsqueeze(0))[0].nonzero().flatten().tolist()

    def nominal_k(self, num_experts: int) -> float:
        """Experts per token assumed by accounting when no statistics were recorded."""
        raise NotImplementedError

    def kernel_rule(self, num_experts: int) -> tuple[int, int, int, float] | None:
        """``(kind, k_min, k_max, tau)`` for the C decode kernel's routing
        (:meth:`labkit.moe.kernels.MoEKernels.rule_decoder`: kind 0 top-k, 1 top-p, 2 switch), or
        None when the kernel cannot apply this policy (it then routes in Python). Subclasses of
        the built-in policies get None (and the generic :meth:`select_one`) unless they define
        their own: the kernel knows only the built-in rules."""
        return None

    def validate(self, num_experts: int) -> None:
        """Raise :class:`UnknownPolicyError` if the policy cannot run with ``num_experts``."""

    def spec(self) -> str:
        """A string that :func:`parse_policy` turns back into an equal policy."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.spec()


def _mask_from_k(logits: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Select the ``k[t]`` largest logits of each row (``k`` is a long tensor ``[T]``)."""
    n = logits.shape[-1]
    order = logits.argsort(dim=-1, descending=True)
    take = torch.arange(n, device=logits.device).unsqueeze(0) < k.unsqueeze(-1)
    return torch.zeros_like(take).scatter(-1, order, take)


def _f32(values: list[float]) -> list[float]:
    """The values rounded to float32 (the tensor path stores softmax weights and sums in float32)."""
    return array("f", values).tolist()


def _ranked_softmax(logits: torch.Tensor) -> tuple[list[int], list[float]]:
    """One token's expert ids by descending logit (ties: lower id first) and their softmax weights
    in that order, float32-rounded as ``logits.float().softmax(-1)`` stores them.

    The per-token decode path (:meth:`Policy.select_one`): for N of a few dozen, Python floats
    take a few microseconds where the tensor ops of :meth:`Policy.select` take ~50-90 µs. The two
    agree except when a cumulative weight lies within float32 rounding (~1e-7) of a threshold.
    """
    vals = logits.tolist()
    order = sorted(range(len(vals)), key=lambda i: -vals[i])
    top = vals[order[0]]
    ex = _f32([math.exp(vals[i] - top) for i in order])
    inv = _f32([1.0 / _f32([sum(ex)])[0]])[0]
    return order, _f32([e * inv for e in ex])


@dataclass(frozen=True)
class AllExperts(Policy):
    """Every expert, unit weights: reproduces the dense FFN exactly."""

    unit_weights = True

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(logits, dtype=torch.bool)

    def nominal_k(self, num_experts: int) -> float:
        return float(num_experts)

    def spec(self) -> str:
        return "all"


@dataclass(frozen=True)
class TopK(Policy):
    """The ``k`` experts with the largest router logits."""

    k: int

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        k = min(self.k, logits.shape[-1])
        idx = logits.topk(k, dim=-1).indices
        return torch.zeros_like(logits, dtype=torch.bool).scatter(-1, idx, True)

    def select_one(self, logits: torch.Tensor) -> list[int]:
        # N is small (≤ a few dozen): ranking the logits in Python is cheaper than topk + tolist.
        # Ties go to the lower expert id (torch.topk leaves the order of exact ties unspecified).
        if type(self) is not TopK:  # a subclass may have its own select
            return super().select_one(logits)
        vals = logits.tolist()
        return sorted(sorted(range(len(vals)), key=lambda i: -vals[i])[: self.k])

    def nominal_k(self, num_experts: int) -> float:
        return float(min(self.k, num_experts))

    def kernel_rule(self, num_experts: int) -> tuple[int, int, int, float] | None:
        return (RULE_TOPK, self.k, self.k, 0.0) if type(self) is TopK else None

    def validate(self, num_experts: int) -> None:
        if not 1 <= self.k <= num_experts:
            raise UnknownPolicyError(f"policy top{self.k}: k must be in 1..{num_experts} (num_experts)")

    def spec(self) -> str:
        return f"top{self.k}"


@dataclass(frozen=True)
class TopP(Policy):
    """Smallest expert set whose routing mass reaches ``tau``, with ``k_min ≤ k ≤ k_max``."""

    tau: float
    k_min: int = 1
    k_max: int | None = None

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        n = logits.shape[-1]
        p = logits.float().softmax(-1).sort(dim=-1, descending=True).values
        cum = p.cumsum(-1)
        k = (cum < self.tau - 1e-7).sum(-1) + 1
        k = k.clamp(self.k_min, self.k_max or n).clamp(max=n)
        return _mask_from_k(logits, k)

    def select_one(self, logits: torch.Tensor) -> list[int]:
        # as select: cumulative sums accumulated in float64 and stored in float32 (torch.cumsum on
        # a CPU), compared with the float32 threshold; ties to the lower expert id
        if type(self) is not TopP:  # a subclass may have its own select
            return super().select_one(logits)
        order, p = _ranked_softmax(logits)
        thresh = _f32([self.tau - 1e-7])[0]
        k = 1 + sum(c < thresh for c in _f32(list(accumulate(p))))
        n = len(order)
        k = min(max(k, self.k_min), self.k_max or n, n)
        return sorted(order[:k])

    def nominal_k(self, num_experts: int) -> float:
        return float(min(self.k_max or num_experts, num_experts))

    def kernel_rule(self, num_experts: int) -> tuple[int, int, int, float] | None:
        if type(self) is not TopP:
            return None
        return (RULE_TOPP, self.k_min, min(self.k_max or num_experts, num_experts), self.tau)

    def validate(self, num_experts: int) -> None:
        if not 0.0 < self.tau <= 1.0:
            raise UnknownPolicyError(f"policy {self.spec()}: tau={self.tau} must be in (0, 1]")
        kmax = self.k_max or num_experts
        if not 1 <= self.k_min <= kmax <= num_experts:
            raise UnknownPolicyError(
                f"policy {self.spec()}: need 1 ≤ k_min={self.k_min} ≤ k_max={kmax} ≤ {num_experts}"
            )

    def spec(self) -> str:
        bounds = f":{self.k_min}-{self.k_max}" if (self.k_min != 1 or self.k_max is not None) else ""
        return f"topp{self.tau:g}{bounds}"


@dataclass(frozen=True)
class SwitchK(Policy):
    """``k_min`` experts when the top routing weight is at least ``tau``, else ``k_max``."""

    tau: float
    k_min: int
    k_max: int

    def select(self, logits: torch.Tensor) -> torch.Tensor:
        p1 = logits.float().softmax(-1).amax(-1)
        k = torch.where(p1 >= self.tau, self.k_min, self.k_max).long()
        return _mask_from_k(logits, k)

    def select_one(self, logits: torch.Tensor) -> list[int]:
        if type(self) is not SwitchK:  # a subclass may have its own select
            return super().select_one(logits)
        order, p = _ranked_softmax(logits)  # ties to the lower expert id
        k = self.k_min if p[0] >= _f32([self.tau])[0] else self.k_max
        return sorted(order[:k])

    def nominal_k(self, num_experts: int) -> float:
        return float(self.k_max)

    def kernel_rule(self, num_experts: int) -> tuple[int, int, int, float] | None:
        return (RULE_SWITCH, self.k_min, self.k_max, self.tau) if type(self) is SwitchK else None

    def validate(self, num_experts: int) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise UnknownPolicyError(f"policy {self.spec()}: tau={self.tau} must be in [0, 1]")
        if not 1 <= self.k_min <= self.k_max <= num_experts:
            raise UnknownPolicyError(
                f"policy {self.spec()}: need 1 ≤ k_min={self.k_min} ≤ k_max={self.k_max} ≤ {num_experts}"
            )

    def spec(self) -> str:
        return f"switch{self.tau:g}:{self.k_min}-{self.k_max}"


_TOPK = re.compile(r"^top(\d+)$")
_TOPP = re.compile(r"^topp([0-9.]+)(?::(\d+)-(\d+))?$")
_SWITCH = re.compile(r"^switch([0-9.]+):(\d+)-(\d+)$")


def parse_policy(policy: str | Policy) -> Policy:
    """Parse ``"all"``, ``"top2"``, ``"topp0.8"``, ``"topp0.8:2-6"``, ``"switch0.5:2-4"`` or a Policy.

    Raises
    ------
    UnknownPolicyError
        For any other value.
    """
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, str):
        raise UnknownPolicyError(f"policy={policy!r}: expected a string like 'top2' or a Policy object")
    s = policy.strip().lower()
    if s == "all":
        return AllExperts()
    if m := _TOPK.match(s):
        return TopK(int(m.group(1)))
    try:
        if m := _TOPP.match(s):
            lo = int(m.group(2)) if m.group(2) else 1
            hi = int(m.group(3)) if m.group(3) else None
            return TopP(float(m.group(1)), lo, hi)
        if m := _SWITCH.match(s):
            return SwitchK(float(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError as err:
        raise UnknownPolicyError(f"policy={policy!r}: {err}") from err
    raise UnknownPolicyError(
        f"policy={policy!r} is unknown; use 'all', 'topK' (e.g. 'top2'), 'toppTAU[:KMIN-KMAX]' "
        "(e.g. 'topp0.8'), 'switchTAU:KMIN-KMAX' (e.g. 'switch0.5:2-4') or a Policy object"
    )


def renormalised_weights(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean-one weights ``g_i = |S|·softmax_S(r)_i`` on the selected experts, 0 elsewhere (float32)."""
    masked = logits.float().masked_fill(~mask, float("-inf"))
    return masked.softmax(-1) * mask.sum(-1, keepdim=True)


def routing_weights(logits: torch.Tensor, mask: torch.Tensor, weighting: str = "unit") -> torch.Tensor:
    """Expert weights ``[T, N]`` (float32, 0 off the selection) for ``"unit"`` or ``"softmax"`` weighting."""
    if weighting == "softmax":
        return renormalised_weights(logits, mask)
    if weighting != "unit":
        raise UnknownPolicyError(f"weighting={weighting!r} must be one of {WEIGHTINGS}")
    if not torch.is_grad_enabled():  # the straight-through term is zero: only its gradient counts
        return mask.float()
    p = logits.float().softmax(-1)
    return (mask.float() + (p - p.detach())) * mask
