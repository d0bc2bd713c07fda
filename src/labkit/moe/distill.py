"""Stage 1: layer-wise distillation of each MoE block into its dense FFN (LaDiMo Eq. 4).

For layer ℓ with captured MLP inputs X_ℓ (frozen dense model, teacher-forced) and dense outputs
Y_ℓ = FFN_ℓ(X_ℓ), train the block's router and experts on

    L = MSE( MoE_ℓ(X_ℓ; top-k), Y_ℓ ) / mean(Y_ℓ²)

(the MSE of Eq. 4 divided by a per-layer constant so one learning rate suits every layer). The
number of experts k is drawn per step uniformly from ``train_k`` (default ``⌈N/2⌉..N``) so the
block works at every k the stage-2 search may later choose ("elastic" training). With ``k_hi = N``
in the range, "all experts" keeps reproducing the dense FFN after training and stays a safe choice
for a sensitive layer. A shared expert (if the block has one) is trained with the routed ones.
Y_ℓ needs no dense model: right after ``moefy`` the block with all experts and unit weights *is*
the dense FFN, so it is computed from the block before training starts.

Before the MSE phase the router is warm-started by ridge regression of its logits onto
``log ‖E_i(x)‖`` (the size of each expert's contribution; D2DMoE's router target), so the first
top-k choices already follow the experts that matter.

Layers are independent. Each finished layer is saved atomically as ``layer_LLL.safetensors`` +
``layer_LLL.json`` (which records the weights' SHA-256); a rerun verifies and loads finished layers
and trains only the rest. A damaged checkpoint (unreadable JSON, wrong checksum) is moved aside with a
:class:`~labkit.storage.CacheRepairWarning` and its layer retrained. Each layer's random
stream is seeded by ``(seed, layer)``, so an interrupted and resumed run ends with weights identical
to an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..paths import atomic_write_text
from ..storage import atomic_file, quarantine, remove_stale_temporaries, sha256_file, storage_error
from .block import WEIGHT_LAYOUT, MoEBlock
from .capture import ActivationStore
from .construct import fit_router, moe_blocks
from .errors import CheckpointMismatchError, MoEError
from .policies import AllExperts, TopK

__all__ = [
    "DistillConfig",
    "LayerResult",
    "distill_layers",
    "finished_layers",
    "fit_router",
    "reruns_bit_identical",
    "train_block",
]


_TRAINING_VERSION = 2  # 2: shared experts are trained with the routed ones


@dataclass(frozen=True)
class DistillConfig:
    """Stage-1 hyper-parameters.

    Attributes
    ----------
    epochs: passes over the layer's tokens.
    batch_tokens: tokens per AdamW step.
    lr: learning rate of the expert weights; the router uses ``lr * router_lr_scale``. The
        default suits SmolLM2's width; :func:`labkit.config.distill_lr` scales it to others.
    train_k: inclusive range ``(k_lo, k_hi)`` of experts per token drawn each step
        (default ``(ceil(N/2), N)``, which also trains "all experts").
    layer_k: one ``(k_lo, k_hi)`` range per layer, used instead of ``train_k`` (allocate-then-train:
        each layer trains around the k a first stage-2 search planned for it; see
        :func:`labkit.moe.pipeline.plan_train_k`).
    all_k_prob: probability that a step runs all N experts instead of a k drawn from the range,
        so "all experts" stays exact when the range stops short of N (0: never; no draw is made).
    router_fit: ridge warm start of the router before training.
    seed: base seed (layer ℓ uses ``seed * 1_000_003 + ℓ``).
    """

    epochs: int = 1
    batch_tokens: int = 1024
    lr: float = 1e-3
    router_lr_scale: float = 1.0
    weight_decay: float = 0.0
    train_k: tuple[int, int] | None = None
    layer_k: tuple[tuple[int, int], ...] | None = None
    all_k_prob: float = 0.0
    router_fit: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo in (("epochs", 1), ("batch_tokens", 1)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise MoEError(f"{name}={v!r} must be an integer ≥ {lo}")
        for name in ("lr", "router_lr_scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise MoEError(f"{name}={v!r} must be a finite number > 0")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise MoEError(f"weight_decay={self.weight_decay!r} must be a finite number ≥ 0")
        p = self.all_k_prob
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1):
            raise MoEError(f"all_k_prob={p!r} must be a number in [0, 1]")
        if self.layer_k is not None:
            for i, r in enumerate(self.layer_k):
                if not (len(r) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in r)):
                    raise MoEError(f"layer_k[{i}]={r!r} must be a pair of integers (k_lo, k_hi)")

    def key(self) -> str:
        """Hash identifying this config (checkpoints of another config are refused)."""
        blob = {**asdict(self), "version": _TRAINING_VERSION}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class LayerResult:
    """Outcome of one layer: loss curve (normalised MSE per step), time, tokens."""

    layer: int
    losses: list[float]
    initial_loss: float
    final_loss: float
    seconds: float
    tokens: int
    resumed: bool = False


def _shared_params(block: MoEBlock) -> list[torch.nn.Parameter]:
    return [block.shared_w1, block.shared_w2] if block.shared_size else []


def _shape(block: MoEBlock) -> list[int]:
    shape = [block.num_experts, block.expert_dim, block.hidden_size]
    return [*shape, block.shared_size] if block.shared_size else shape


def _layer_seed(seed: int, layer: int) -> int:
    return seed * 1_000_003 + layer


def _train_layer(
    block: MoEBlock, x: torch.Tensor, y: torch.Tensor, cfg: DistillConfig, layer: int, progress: bool
) -> tuple[list[float], float, float]:
    n = block.num_experts
    if cfg.layer_k is not None:
        if layer >= len(cfg.layer_k):
            raise MoEError(f"layer_k has {len(cfg.layer_k)} ranges; layer {layer} has none")
        lo, hi = cfg.layer_k[layer]
        name = f"layer_k[{layer}]"
    else:
        lo, hi = cfg.train_k or (math.ceil(n / 2), n)
        name = "train_k"
    if not 1 <= lo <= hi <= n:
        raise MoEError(f"{name}=({lo}, {hi}) must satisfy 1 ≤ k_lo ≤ k_hi ≤ num_experts={n}")
    gen = torch.Generator().manual_seed(_layer_seed(cfg.seed, layer))
    scale = float(y.pow(2).mean()) + 1e-12
    if cfg.router_fit:
        sub = x[torch.randperm(x.shape[0], generator=gen)[:8192]]
        fit_router(block, sub)
    opt = torch.optim.AdamW(
        [
            {"params": [block.w1, block.w2, *_shared_params(block)], "lr": cfg.lr},
            {"params": [block.router.weight], "lr": cfg.lr * cfg.router_lr_scale},
        ],
        weight_decay=cfg.weight_decay,
    )
    t = x.shape[0]
    bt = max(1, min(cfg.batch_tokens, t))
    steps = cfg.epochs * math.ceil(t / bt)
    losses: list[float] = []
    with torch.no_grad():
        probe = torch.arange(0, t, max(1, t // 2048))[:2048]
        k_mid = (lo + hi) // 2
        initial = float(((block(x[probe], policy=TopK(k_mid)) - y[probe]).pow(2).mean()) / scale)
    block.train()
    bar = tqdm(total=steps, desc=f"layer {layer}", leave=False, disable=not progress)
    for _ in range(cfg.epochs):
        perm = torch.randperm(t, generator=gen)
        for s in range(0, t, bt):
            idx = perm[s : s + bt]
            k = int(torch.randint(lo, hi + 1, (1,), generator=gen))
            if cfg.all_k_prob and float(torch.rand((), generator=gen)) < cfg.all_k_prob:
                k = n
            pred = block(x[idx], policy=TopK(k))
            loss = (pred - y[idx]).pow(2).mean() / scale
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            bar.update(1)
    bar.close()
    block.eval()
    with torch.no_grad():
        final = float(((block(x[probe], policy=TopK(k_mid)) - y[probe]).pow(2).mean()) / scale)
    block.release_kernel_caches()  # its packed weights would stay while the next layers train
    return losses, initial, final


def _ckpt_paths(folder: Path, layer: int) -> tuple[Path, Path]:
    return folder / f"layer_{layer:03d}.safetensors", folder / f"layer_{layer:03d}.json"


def _verified_meta(wpath: Path, mpath: Path) -> dict | None:
    """The metadata of a finished, intact layer checkpoint; ``None`` when there is none to resume.

    A pair that is half there, unreadable or fails its checksum is moved aside (with a warning) so the
    layer is trained again.
    """
    if not (wpath.is_file() or mpath.is_file()):
        return None
    problem = None
    meta = None
    if not (wpath.is_file() and mpath.is_file()):
        problem = f"{mpath if wpath.is_file() else wpath} is missing"
    else:
        try:
            meta = json.loads(mpath.read_text())
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            problem = f"{mpath} is unreadable ({err})"
        else:
            digest = meta.get("sha256")
            if digest is None:
                problem = f"{mpath} records no checksum (written by an older labkit)"
            elif sha256_file(wpath) != digest:
                problem = f"{wpath} does not match the checksum in {mpath.name} (corrupted on disk)"
    if problem is None:
        return meta
    for p in (wpath, mpath):
        if p.exists():
            quarantine(p, f"layer checkpoint damaged: {problem}")
    return None


def distill_layers(
    model: torch.nn.Module,
    store: ActivationStore,
    checkpoint_dir: str | os.PathLike,
    *,
    config: DistillConfig | None = None,
    progress: bool = True,
    on_layer_done: Callable[[int], None] | None = None,
    layers: Collection[int] | None = None,
) -> list[LayerResult]:
    """Distil every MoE block of a moefied ``model`` layer by layer from captured inputs ``store``.

    Finished layers found in ``checkpoint_dir`` (same config) are loaded instead of retrained.
    ``on_layer_done(layer)`` is called after each layer's checkpoint is written (tests use it to
    simulate an interruption). ``layers``: train (or load) only these layer indices and leave the
    other blocks as they are (one rank's share, :func:`labkit.moe.pipeline.convert` under torchrun);
    the results then cover these layers only.

    Raises
    ------
    CheckpointMismatchError
        If ``checkpoint_dir`` holds layers of another config or model shape.
    """
    cfg = config or DistillConfig()
    blocks = moe_blocks(model)
    if store.num_layers != len(blocks) or store.hidden_size != blocks[0].hidden_size:
        raise CheckpointMismatchError(
            f"activation store {store.folder} has {store.num_layers} layers × d={store.hidden_size}; "
            f"the model has {len(blocks)} × d={blocks[0].hidden_size}"
        )
    folder = Path(checkpoint_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage_error(err, folder, "create the checkpoint folder") from None
    remove_stale_temporaries(folder)
    key = cfg.key()
    results: list[LayerResult] = []
    todo = range(len(blocks)) if layers is None else sorted(set(layers))
    for i in tqdm(todo, desc="distil layers", disable=not progress):
        block = blocks[i]
        dev = block.w1.device  # a model placed by a device map has its layers on several devices
        wpath, mpath = _ckpt_paths(folder, i)
        meta = _verified_meta(wpath, mpath)
        if meta is not None:
            shape = _shape(block)
            if (
                meta.get("config_key") != key
                or meta.get("shape") != shape
                or meta.get("layout", 1) != WEIGHT_LAYOUT
            ):
                raise CheckpointMismatchError(
                    f"{wpath} was written for config {meta.get('config_key')} / shape {meta.get('shape')} / "
                    f"weight layout {meta.get('layout', 1)}, not {key} / {shape} / {WEIGHT_LAYOUT}; "
                    "use another checkpoint_dir or delete it"
                )
            state = load_file(str(wpath), device=str(dev))
            block.load_state_dict(state, strict=False)
            results.append(
                LayerResult(
                    i,
                    meta["losses"],
                    meta["initial_loss"],
                    meta["final_loss"],
                    meta["seconds"],
                    meta["tokens"],
                    resumed=True,
                )
            )
            continue
        t0 = time.perf_counter()
        dtype = block.w1.dtype
        x = store.x(i).to(dev, dtype)
        with torch.no_grad():
            y = torch.cat([block(x[s : s + 4096]) for s in range(0, x.shape[0], 4096)])  # all experts = dense
        block.float()
        losses, initial, final = _train_layer(block, x.float(), y.float(), cfg, i, progress)
        block.to(dtype)
        seconds = time.perf_counter() - t0
        state = {k: v.detach().contiguous().cpu() for k, v in block.state_dict().items()}
        with atomic_file(wpath, what="write the layer checkpoint") as tmp:
            save_file(state, str(tmp))
        meta = {
            "layer": i,
            "config_key": key,
            "sha256": sha256_file(wpath),
            "shape": _shape(block),
            "layout": WEIGHT_LAYOUT,
            "losses": losses,
            "initial_loss": initial,
            "final_loss": final,
            "seconds": seconds,
            "tokens": int(x.shape[0]) * cfg.epochs,
        }
        atomic_write_text(mpath, json.dumps(meta))
        results.append(LayerResult(i, losses, initial, final, seconds, int(x.shape[0]) * cfg.epochs))
        del x, y
        if on_layer_done is not None:
            on_layer_done(i)
    return results


def finished_layers(
    model: torch.nn.Module, checkpoint_dir: str | os.PathLike, config: DistillConfig | None = None
) -> list[int]:
    """Indices of the layers whose checkpoint in ``checkpoint_dir`` is intact and fits ``model``.

    What :func:`distill_layers` would load rather than train: a damaged checkpoint is moved aside
    (its layer is not finished). Rank 0 of a conversion over ranks asks this before dealing out the
    rest.

    Raises
    ------
    CheckpointMismatchError
        A checkpoint of another config, block shape or weight layout.
    """
    key = (config or DistillConfig()).key()
    folder = Path(checkpoint_dir)
    done = []
    for i, block in enumerate(moe_blocks(model)):
        wpath, mpath = _ckpt_paths(folder, i)
        meta = _verified_meta(wpath, mpath)
        if meta is None:
            continue
        got = (meta.get("config_key"), meta.get("shape"), meta.get("layout", 1))
        if got != (key, _shape(block), WEIGHT_LAYOUT):
            raise CheckpointMismatchError(
                f"{wpath} was written for config {got[0]} / shape {got[1]} / weight layout {got[2]}, "
                f"not {key} / {_shape(block)} / {WEIGHT_LAYOUT}; use another checkpoint_dir or delete it"
            )
        done.append(i)
    return done


def reruns_bit_identical(block: MoEBlock, x: torch.Tensor, config: DistillConfig | None = None) -> bool:
    """Whether two stage-1 trainings of copies of ``block`` on inputs ``x`` ``[T, d]`` end with the same bits.

    The determinism statement of chapter 5: on a CPU they do (same seed, same thread count); on CUDA
    ``index_add_`` and some cuBLAS algorithms accumulate in an order that can change between runs,
    unless ``torch.use_deterministic_algorithms(True)`` is set. ``block`` itself is not changed.
    """
    import copy

    cfg = config or DistillConfig(batch_tokens=max(1, x.shape[0] // 4))
    with torch.no_grad():
        ref = copy.deepcopy(block).float()
        y = ref(x.float(), policy=AllExperts())  # all experts = the dense FFN
    weights = []
    for _ in range(2):
        b = copy.deepcopy(block).float()
        _train_layer(b, x.float(), y, cfg, 0, False)
        weights.append(
            torch.cat([p.detach().flatten() for p in (b.w1, b.w2, b.router.weight, *_shared_params(b))])
        )
    return bool(torch.equal(weights[0], weights[1]))


def train_block(
    block: MoEBlock,
    x: torch.Tensor,
    y: torch.Tensor,
    config: DistillConfig | None = None,
    *,
    layer: int = 0,
) -> LayerResult:
    """Stage 1 on one block, in place: train it on inputs ``x`` ``[T, d]`` towards targets ``y``.

    The step :func:`distill_layers` applies to every layer (float32 training, the block's dtype
    restored after), without the captured store or checkpoints. ``y`` is normally the dense FFN's
    output (the block with all experts). ``initial_loss``/``final_loss`` are the normalised MSE
    ``‖block(x) − y‖² / ‖y‖²`` at the middle of the training range of k, on up to 2,048 tokens.
    """
    cfg = config or DistillConfig()
    dtype = block.w1.dtype
    t0 = time.perf_counter()
    block.float()
    losses, initial, final = _train_layer(block, x.float(), y.float(), cfg, layer, False)
    block.to(dtype)
    return LayerResult(layer, losses, initial, final, time.perf_counter() - t0, int(x.shape[0]) * cfg.epochs)
