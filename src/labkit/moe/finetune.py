"""Optional stage 3: a short end-to-end distillation of the converted model to its dense teacher.

Stages 1 and 2 fit each layer alone, against the dense layer's outputs on the dense model's own
inputs. Errors of the sparsified layers compound through the network; stage 3 trains the MoE's
expert, shared-expert and router weights under their chosen policies on the token-level KL
divergence to the dense model's next-token distribution (Hinton et al. 2015; the end-to-end step
LaDiMo leaves out):

    L = (1/T) Σ_t KL( p_dense(· | x_<t) ‖ p_MoE(· | x_<t) )

Attention, norms and embeddings stay frozen. The book reports LaDiMo alone and LaDiMo + stage 3
side by side. Deterministic on a CPU for a given seed and thread count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from .construct import moe_blocks
from .errors import MoEError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["FinetuneResult", "end_to_end", "kl_to_teacher"]


@dataclass
class FinetuneResult:
    """Loss curve (mean KL per token, nats), steps, tokens and seconds of a stage-3 run."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    tokens: int = 0
    seconds: float = 0.0


def _kl(student_hidden, teacher_hidden, head, chunk: int = 1024) -> torch.Tensor:
    """Mean KL(teacher ‖ student) over positions, the LM head applied ``chunk`` rows at a time."""
    total = student_hidden.new_zeros(())
    n = student_hidden.shape[0]
    for s in range(0, n, chunk):
        with torch.no_grad():
            t = F.log_softmax(head(teacher_hidden[s : s + chunk]).float(), -1)
        q = F.log_softmax(head(student_hidden[s : s + chunk]).float(), -1)
        total = total + F.kl_div(q, t, log_target=True, reduction="sum")
    return total / n


@torch.no_grad()
def kl_to_teacher(
    model: PreTrainedModel, teacher: PreTrainedModel, blocks: torch.Tensor, *, batch_size: int = 4
) -> float:
    """Mean KL(teacher ‖ model) per token (nats) over token ``blocks`` ``[B, L]``."""
    dev = next(model.parameters()).device
    head = model.get_output_embeddings()
    total, count = 0.0, 0
    for s in range(0, blocks.shape[0], batch_size):
        ids = blocks[s : s + batch_size].to(dev)
        th = teacher.model(input_ids=ids, use_cache=False).last_hidden_state
        sh = model.model(input_ids=ids, use_cache=False).last_hidden_state
        d = sh.shape[-1]
        n = ids.numel()
        total += float(_kl(sh.reshape(-1, d), th.reshape(-1, d).to(sh.dtype), head)) * n
        count += n
    return total / count


def end_to_end(
    model: PreTrainedModel,
    teacher: PreTrainedModel,
    blocks: torch.Tensor,
    *,
    lr: float = 1e-4,
    batch_size: int = 4,
    epochs: int = 1,
    seed: int = 0,
    checkpointing: bool = True,
) -> FinetuneResult:
    """Train ``model``'s MoE blocks (in place) on the KL to ``teacher`` over token ``blocks`` ``[B, L]``.

    The weights train in the model's own dtype: give a float32 model (``model.float()``), since
    bfloat16 weights drop updates smaller than their rounding (~0.4 % of a weight's size). The
    teacher may stay in bfloat16. With ``checkpointing`` (transformers' activation checkpointing
    of each decoder layer) the backward pass recomputes a layer's activations instead of keeping them:
    memory grows with one layer's activations rather than all of them, for about a third more
    compute.

    Raises
    ------
    MoEError
        For ``lr`` ≤ 0, ``batch_size`` or ``epochs`` < 1, or models whose vocabularies differ.
    """
    if not (math.isfinite(lr) and lr > 0):
        raise MoEError(f"lr={lr!r} must be a finite number > 0")
    for name, v in (("batch_size", batch_size), ("epochs", epochs)):
        if not isinstance(v, int) or v < 1:
            raise MoEError(f"{name}={v!r} must be an integer ≥ 1")
    if model.config.vocab_size != teacher.config.vocab_size:
        raise MoEError(f"student vocabulary {model.config.vocab_size} ≠ teacher {teacher.config.vocab_size}")
    params = []
    for block in moe_blocks(model):
        params += [block.w1, block.w2, block.router.weight]
        if block.shared_size:
            params += [block.shared_w1, block.shared_w2]
    trainable = {id(p) for p in params}
    frozen = [p for p in model.parameters() if id(p) not in trainable]
    flags = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    dev = next(model.parameters()).device
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    head = model.get_output_embeddings()
    result = FinetuneResult()
    t0 = time.perf_counter()
    gc = checkpointing and getattr(model, "supports_gradient_checkpointing", False)
    if gc:
        model.activation_checkpointing_enable({"use_reentrant": False})
    model.train()
    try:
        for _ in range(epochs):
            order = torch.randperm(blocks.shape[0], generator=gen)
            for s in range(0, blocks.shape[0], batch_size):
                ids = blocks[order[s : s + batch_size]].to(dev)
                with torch.no_grad():
                    th = teacher.model(input_ids=ids, use_cache=False).last_hidden_state
                sh = model.model(input_ids=ids, use_cache=False).last_hidden_state
                d = sh.shape[-1]
                loss = _kl(sh.reshape(-1, d), th.reshape(-1, d).to(sh.dtype), head)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                result.losses.append(float(loss.detach()))
                result.steps += 1
                result.tokens += ids.numel()
    finally:
        model.eval()
        if gc:
            model.activation_checkpointing_disable()
        for p, flag in zip(frozen, flags, strict=True):
            p.requires_grad_(flag)
        for block in moe_blocks(model):
            block.release_kernel_caches()
    result.seconds = time.perf_counter() - t0
    return result
