"""End-to-end LaDiMo conversion (stage 1 + stage 2) with an on-disk cache keyed by the full config.

``convert(config)`` loads the dense model, captures activations on the calibration split
(streamed to disk), moefies, distils every layer (resumable), searches per-layer routing policies
for the target reduction, and saves the converted model plus a JSON report under
``labkit.paths.cache_dir()/moe/<key>/`` where ``key`` hashes every field of the config and the
corpus fingerprint. A second call with the same config (another chapter, a rerun, Part II) loads
the cached result in seconds. An interrupted conversion resumes from its per-layer checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..config import Profile, get_profile
from ..paths import atomic_write_text, cache_dir
from .errors import MoEError

__all__ = ["ConversionConfig", "conversion_dir", "convert", "load_or_convert", "peak_rss_mb"]

VERSION = 2  # 2: MoE weight layout 2 (see labkit.moe.block.WEIGHT_LAYOUT)


@dataclass(frozen=True)
class ConversionConfig:
    """Everything that determines a conversion's result (all fields enter the cache key).

    Attributes
    ----------
    model: zoo name, local folder or hub id of the dense LLaMA.
    num_experts: experts per FFN.  method: ``contiguous`` / ``kmeans`` / ``coactivation``.
    train_tokens: distillation budget (tokens of the ``train`` split).
    valid_tokens: tokens of the ``valid`` split for stage 2 (never used for training).
    seq_len: tokens per calibration block.  epochs, batch_tokens, lr, train_k: stage-1 settings.
    target_reduction: activated-parameter reduction the stage-2 choice must reach (0.2 = 20 %).
    front_evals: front points whose end-to-end validation perplexity is measured.
    seed, device, dtype, store_dtype: randomness, placement, and the activation storage dtype.
    """

    model: str = "smollm2-135m"
    num_experts: int = 8
    method: str = "kmeans"
    train_tokens: int = 100_000
    valid_tokens: int = 4096
    seq_len: int = 512
    epochs: int = 1
    batch_tokens: int = 1024
    lr: float = 1e-3
    train_k: tuple[int, int] | None = None
    target_reduction: float = 0.2
    front_evals: int = 3
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    store_dtype: str = "bfloat16"

    @classmethod
    def from_profile(cls, profile: Profile | str | None = None, **overrides) -> ConversionConfig:
        """The conversion config of a profile (``profile.moe`` sizes, device, dtype)."""
        p = profile if isinstance(profile, Profile) else get_profile(profile)
        s = p.moe
        cfg = cls(
            model=s.model,
            num_experts=s.num_experts,
            method=s.method,
            train_tokens=s.train_tokens,
            valid_tokens=s.valid_tokens,
            seq_len=s.seq_len,
            epochs=s.epochs,
            batch_tokens=s.batch_tokens,
            lr=s.lr,
            target_reduction=s.target_reduction,
            front_evals=s.front_evals,
            device=p.device,
            dtype=p.dtype,
        )
        return replace(cfg, **overrides)

    def key(self) -> str:
        """Cache key: hash of every field, the corpus fingerprint and the pipeline version."""
        from .data import corpus_fingerprint

        blob = json.dumps(
            {"config": asdict(self), "corpus": corpus_fingerprint(), "version": VERSION}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def conversion_dir(config: ConversionConfig) -> Path:
    """``cache_dir()/moe/<key>/`` of a config."""
    return cache_dir() / "moe" / config.key()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def _own_memory(model) -> None:
    """Copy parameters that are views of a memory-mapped checkpoint into ordinary memory.

    A safetensors load maps the whole file, and the mapping lives while any tensor uses it, so after
    ``moefy`` replaces the MLPs their dense weights would stay resident as file pages next to the
    experts' copies (SmolLM2-135M: ~0.4 GB of RSS for nothing).
    """
    import torch

    with torch.no_grad():
        for p in model.parameters():
            if p.device.type == "cpu":
                p.data = p.data.clone()


def _subsample(xs: list[float], n: int = 100) -> list[float]:
    if len(xs) <= n:
        return list(xs)
    step = len(xs) / n
    return [xs[int(i * step)] for i in range(n)]


@dataclass
class _Timer:
    stages: dict = field(default_factory=dict)
    peak_rss: dict = field(default_factory=dict)  # MB, the process's peak so far at each stage's end

    def run(self, name, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        self.done(name, t)
        return out

    def done(self, name: str, t0: float) -> None:
        self.stages[name] = time.perf_counter() - t0
        self.peak_rss[name] = peak_rss_mb()


def convert(
    config: ConversionConfig | None = None,
    *,
    progress: bool = True,
    keep_activations: bool = False,
    use_cache: bool = True,
    folder: str | Path | None = None,
):
    """Run (or load from cache) a conversion; returns ``(model, tokenizer, report)``.

    ``folder``: where the conversion keeps its activations, per-layer checkpoints, model and report
    (default :func:`conversion_dir`, the cache entry of the config). An empty folder gives a run
    from scratch (``bench_moe.py --convert`` times one in a temporary folder); with
    ``use_cache=False`` and an existing folder the run resumes from its layer checkpoints (the
    report's ``resumed_layers``).

    The report (a dict, also ``report.json``) holds: tokens used, wall time per stage, peak RSS,
    per-layer distillation losses, routing profiles, stage-2 candidates/front/chosen policy,
    activated parameters (dense, nominal and measured on validation), validation perplexities.

    Raises
    ------
    MoEError
        Bad config values (unknown method, budget larger than the text, …).
    """
    from ..models import load_causal_lm
    from . import capture, data, distill, evaluate, io, routing_search
    from .accounting import activated_parameters
    from .construct import METHODS, moefy, record_routing, set_policy

    cfg = config or ConversionConfig.from_profile()
    if cfg.method not in METHODS:
        from .errors import UnknownMethodError

        raise UnknownMethodError(f"method={cfg.method!r} is unknown; choose one of {METHODS}")
    folder = conversion_dir(cfg) if folder is None else Path(folder)
    model_dir, report_path = folder / "model", folder / "report.json"
    if use_cache and model_dir.is_dir() and report_path.is_file():
        model, tok = io.load_moe(model_dir, device=cfg.device)
        report = json.loads(report_path.read_text())
        report["from_cache"] = True
        return model, tok, report

    timer = _Timer()
    t_start = time.perf_counter()
    model, tok = timer.run("load", load_causal_lm, cfg.model, dtype=cfg.dtype, device=cfg.device)
    _own_memory(model)
    train = data.token_blocks(tok, "train", cfg.train_tokens, cfg.seq_len)
    valid = data.token_blocks(tok, "valid", cfg.valid_tokens, cfg.seq_len)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "config.json", json.dumps(asdict(cfg), indent=1))
    batch = max(1, 4096 // cfg.seq_len)
    train_store = timer.run(
        "capture",
        capture.capture_activations,
        model,
        train,
        folder / "acts" / "train",
        store_dtype=cfg.store_dtype,
        batch_size=batch,
        progress=progress,
    )
    valid_store = capture.capture_activations(
        model,
        valid,
        folder / "acts" / "valid",
        outputs=True,
        store_dtype="float32",
        batch_size=batch,
        progress=False,
    )
    dense_ppl_valid = evaluate.perplexity(model, valid)
    calib = train[: max(1, 4096 // cfg.seq_len)] if cfg.method == "coactivation" else None
    timer.run(
        "moefy",
        moefy,
        model,
        num_experts=cfg.num_experts,
        method=cfg.method,
        calibration=calib,
        seed=cfg.seed,
    )
    dcfg = distill.DistillConfig(
        epochs=cfg.epochs, batch_tokens=cfg.batch_tokens, lr=cfg.lr, train_k=cfg.train_k, seed=cfg.seed
    )
    layers = timer.run(
        "distill",
        distill.distill_layers,
        model,
        train_store,
        folder / "checkpoints",
        config=dcfg,
        progress=progress,
    )
    search = timer.run(
        "search",
        routing_search.search_policies,
        model,
        valid_store,
        target_reduction=cfg.target_reduction,
        max_tokens=cfg.valid_tokens,
    )

    # end-to-end validation perplexity of a few front points (cheapest, chosen, most accurate, …)
    front = search.front
    chosen_idx = front.index(next(p for p in front if p["policies"] == search.chosen))
    picks = sorted(
        {chosen_idx, 0, len(front) - 1}
        | {round(j * (len(front) - 1) / max(1, cfg.front_evals - 1)) for j in range(cfg.front_evals)}
    )
    t = time.perf_counter()
    for j in picks:
        set_policy(model, front[j]["policies"])
        front[j]["valid_ppl"] = evaluate.perplexity(model, valid)
    timer.done("front_eval", t)
    set_policy(model, search.chosen)
    record_routing(model, True)
    moe_ppl_valid = evaluate.perplexity(model, valid)
    measured = activated_parameters(model)
    record_routing(model, False)
    nominal = activated_parameters(model, use_stats=False)
    wall = time.perf_counter() - t_start
    report = {
        "config": asdict(cfg),
        "key": cfg.key(),
        "tokens": {
            "train": int(train.numel()),
            "valid": int(valid.numel()),
            "distill_steps_tokens": sum(r.tokens for r in layers),
        },
        "resumed_layers": [r.layer for r in layers if r.resumed],
        "wall_s": wall,
        "stages_s": timer.stages,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_by_stage": timer.peak_rss,
        "activation_disk_mb": (train_store.nbytes() + valid_store.nbytes()) / 2**20,
        "layers": [
            {
                "layer": r.layer,
                "initial_loss": r.initial_loss,
                "final_loss": r.final_loss,
                "seconds": r.seconds,
                "losses": _subsample(r.losses),
            }
            for r in layers
        ],
        "search": search.as_dict(),
        "chosen_policy": search.chosen,
        "activated_measured": measured.as_dict(),
        "activated_nominal": nominal.as_dict(),
        "reduction": measured.reduction,
        "valid_ppl": {"dense": dense_ppl_valid, "moe": moe_ppl_valid},
        "from_cache": False,
    }
    io.save_moe(model, model_dir, tok, extra={"key": cfg.key()})
    atomic_write_text(report_path, json.dumps(report, indent=1))
    if not keep_activations:
        shutil.rmtree(folder / "acts", ignore_errors=True)
    return model, tok, report


def load_or_convert(
    profile_or_config: Profile | ConversionConfig | str | None = None, *, progress: bool = True
):
    """The cached conversion of a profile (default: the active one) or config; converts on first use.

    Returns ``(model, tokenizer, report)``. Part II uses this to compare the converted MoE with
    the dense model.
    """
    if isinstance(profile_or_config, ConversionConfig):
        cfg = profile_or_config
    elif profile_or_config is None or isinstance(profile_or_config, (Profile, str)):
        cfg = ConversionConfig.from_profile(profile_or_config)
    else:
        raise MoEError(
            f"profile_or_config={profile_or_config!r}: expected a Profile, a profile name or a "
            "ConversionConfig"
        )
    return convert(cfg, progress=progress)


def dense_reference(config: ConversionConfig):
    """The dense model and tokenizer a config converts (for side-by-side comparisons)."""
    from ..models import load_causal_lm

    return load_causal_lm(config.model, dtype=config.dtype, device=config.device)
