"""How an MoE block's experts are executed, picked by name: ``eager``, ``grouped_mm``, ``cpu``, ``auto``.

Routing (which experts a token uses, with which weights) is the block's and the policy's
(:meth:`labkit.moe.block.MoEBlock.route`); a backend only executes the chosen experts. All backends
compute ``y_t = Σ_{i∈S_t} g_ti E_i(x_t)``, agreeing with ``eager`` to the dtype's rounding:

``eager``
    :meth:`~labkit.moe.block.MoEBlock.eager`, the readable reference: a loop over experts, each
    gathering its tokens (any device, any dtype, training included).
``grouped_mm``
    Tokens sorted by expert and one ``torch.nn.functional.grouped_mm`` per projection (PyTorch's
    grouped GEMM: CUTLASS kernels for bfloat16 on Hopper-class GPUs, a CPU implementation
    too, so the tests run it), following transformers' ``grouped_mm`` experts. Routing masks are cut
    to the policy's largest k by a ``topk``; unselected (token, expert) pairs are sorted to the end
    and skipped by the offsets, so nothing waits on the host: a decode step has no device-to-host
    synchronisation. Training (autograd) goes to ``eager``.
``cpu``
    labkit's C kernels for float32 SiLU experts on a CPU (:mod:`labkit.moe.cpu_backend`, optional:
    without a compiler, for other dtypes and activations, it runs PyTorch paths tuned for CPUs).
``auto`` (the default)
    ``grouped_mm`` on CUDA (``eager`` where the op is missing), ``cpu`` on a CPU, ``eager`` elsewhere.

:func:`set_backend` sets a model's or a block's backend; an unavailable one raises
:class:`BackendUnavailableError` saying why.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .errors import MoEError

__all__ = ["BACKENDS", "BackendUnavailableError", "available", "resolve", "set_backend"]

BACKENDS = ("auto", "eager", "grouped_mm", "cpu")


class BackendUnavailableError(MoEError):
    """A backend name that is unknown, or that cannot run here (the message says why)."""


class Eager:
    """The reference: :meth:`MoEBlock.eager`."""

    name = "eager"

    @staticmethod
    def fused(block, x, policy):
        return None

    @staticmethod
    def experts(block, x, mask, weights, k_max):
        return block.eager(x, mask, weights)


def _grouped_mm_op():
    return getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


class GroupedMM:
    """Sort (token, expert) pairs by expert; one grouped GEMM per projection; scatter-add back."""

    name = "grouped_mm"

    @staticmethod
    def fused(block, x, policy):
        return None

    @staticmethod
    def experts(block, x, mask, weights, k_max):
        if torch.is_grad_enabled() and (x.requires_grad or block.w1.requires_grad):
            return block.eager(x, mask, weights)  # the grouped GEMM has no CPU backward
        t, n = x.shape[0], block.num_experts
        k = n if mask is None else max(1, min(int(k_max), n))
        if mask is None:
            experts = torch.arange(n, device=x.device).expand(t, n)
        else:  # the ≤ k selected experts of each token; unselected slots get the sentinel n
            chosen, idx = mask.to(torch.int8).topk(k, dim=-1)
            experts = torch.where(chosen.bool(), idx, n)
        flat = experts.reshape(-1)
        order = torch.argsort(flat, stable=True)
        sorted_ids = flat[order]
        token = order // k
        counts = torch.histc(
            sorted_ids.float() if x.device.type in ("cpu", "mps") else sorted_ids.int(),
            bins=n,
            min=0,
            max=n - 1,
        )
        offs = torch.cumsum(counts, 0, dtype=torch.int32)
        w1, w2, mp = _aligned(block, x.dtype)
        xs = _pad_cols(x, w1.shape[1])[token]
        h = _grouped_mm_op()(xs, w1, offs=offs)
        g = block.act_fn(h[:, :mp]) * h[:, mp:]
        if weights is not None:
            g = g * weights.reshape(-1)[token * n + sorted_ids.clamp(max=n - 1)].unsqueeze(-1).to(g.dtype)
        out = _grouped_mm_op()(g, w2, offs=offs)[:, : block.hidden_size]
        out = torch.where((sorted_ids < n).unsqueeze(-1), out, 0)  # rows past the offsets are not computed
        return torch.zeros_like(x).index_add_(0, token, out.to(x.dtype))


def _aligned(block, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(w1, w2, m')`` with rows padded to 16 bytes (the grouped GEMM's stride rule), cached per version.

    ``w1 [N, d', 2m']`` keeps gate columns ``0..m'-1`` and up columns ``m'..2m'-1``; padding is zero,
    so it adds nothing. Shapes that are already aligned (LLaMA's) use the parameters as they are.
    """
    w1, w2 = block.w1.detach(), block.w2.detach()
    step = max(1, 16 // w1.element_size())
    n, d, two_m = w1.shape
    m = two_m // 2
    dp, mp = -(-d // step) * step, -(-m // step) * step
    if (dp, mp) == (d, m):
        return w1, w2, m
    key = (w1.data_ptr(), w2.data_ptr(), block.w1._version, block.w2._version, dtype)
    cache = block._caches.get("aligned")
    if cache is None or cache[0] != key:
        a = w1.new_zeros(n, dp, 2 * mp)
        a[:, :d, :m], a[:, :d, mp : mp + m] = w1[..., :m], w1[..., m:]
        b = w2.new_zeros(n, mp, dp)
        b[:, :m, :d] = w2
        cache = block._caches["aligned"] = (key, a, b, mp)
    return cache[1], cache[2], cache[3]


def _pad_cols(x: torch.Tensor, width: int) -> torch.Tensor:
    return x if x.shape[1] == width else F.pad(x, (0, width - x.shape[1]))


def _cpu():
    from .cpu_backend import CpuBackend

    return CpuBackend


def available(name: str, device: torch.device | str = "cpu") -> str | None:
    """``None`` if backend ``name`` can run on ``device``, else the reason it cannot."""
    dev = torch.device(device)
    if name not in BACKENDS:
        return f"backend {name!r} is unknown; choose one of {BACKENDS}"
    if name == "grouped_mm" and _grouped_mm_op() is None:
        return f"torch {torch.__version__} has no grouped_mm (torch.nn.functional.grouped_mm, torch>=2.9)"
    if name == "cpu" and dev.type != "cpu":
        return f"the 'cpu' backend runs CPU tensors only, not {dev.type}"
    return None


def _pick(name: str, device: torch.device):
    if name == "auto":
        if device.type == "cuda" and _grouped_mm_op() is not None:
            return GroupedMM
        name = "cpu" if device.type == "cpu" else "eager"
    why = available(name, device)
    if why is not None:
        raise BackendUnavailableError(why)
    return _cpu() if name == "cpu" else {"eager": Eager, "grouped_mm": GroupedMM}[name]


def resolve(block, x: torch.Tensor):
    """The backend object that runs ``block`` on ``x`` (its ``backend`` name for ``x``'s device)."""
    key = (block.backend, x.device.type)
    hit = block._caches.get("backend")
    if hit is None or hit[0] != key:
        hit = block._caches["backend"] = (key, _pick(block.backend, x.device))
    return hit[1]


def set_backend(model_or_block: nn.Module, name: str) -> None:
    """Run the MoE blocks of a model (or one block) with backend ``name``.

    Raises
    ------
    BackendUnavailableError
        An unknown name, or a backend that cannot run on the blocks' device (the message says why).
    """
    from .block import MoEBlock

    blocks = (
        [model_or_block]
        if isinstance(model_or_block, MoEBlock)
        else [m for m in model_or_block.modules() if isinstance(m, MoEBlock)]
    )
    if not blocks:
        raise MoEError("set_backend: no MoE blocks in this model (moefy it first)")
    if name != "auto":
        why = available(name, blocks[0].w1.device)
        if why is not None:
            raise BackendUnavailableError(why)
    for b in blocks:
        b.backend = name
