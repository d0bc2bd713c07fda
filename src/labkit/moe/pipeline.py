"""End-to-end LaDiMo conversion (stage 1 + stage 2) with an on-disk cache keyed by the full config.

``convert(config)`` loads the dense model, captures activations on the calibration split
(streamed to disk), moefies, (with ``allocate_first``) plans each layer's k by a first stage-2
search on the untrained MoE, distils every layer (resumable), searches per-layer routing policies
for the target reduction, and saves the converted model plus a JSON report under
``labkit.paths.cache_dir()/moe/<key>/`` where ``key`` hashes every field of the config, the
fingerprint of the dense model's weights (:func:`labkit.models.source_fingerprint`: new weights saved
to the same folder get a new key), the corpus fingerprint and the number of CPU threads (which
changes the float rounding). A second call with the same config (another chapter, a rerun, Part II)
loads the cached result in seconds. An interrupted conversion resumes from its per-layer checkpoints.

Safety: the config, device, dtype, expert count and target are checked before the first expensive
step; two runs of one config take turns on a lock (the second then loads the first's result); a
damaged cached model is moved aside and rebuilt from its layer checkpoints.

Over ranks (``torchrun --standalone --nproc-per-node=N -m labkit moe convert ...``, see
:mod:`labkit.distributed`): every rank calls :func:`convert` with the same config. The ranks first
agree on the config, folder and thread count and check that there are no more ranks than layers,
before anything is written. Each rank captures its share of the calibration batches into the shared
files, then distils its share of the layers not yet finished (round-robin) and loads the others'
layer checkpoints. Stage 2 is dealt out too: each rank profiles and scores its share of the layers
and, with ``sensitivity``, runs their end-to-end probes
(:func:`labkit.moe.routing_search.search_policies`); the validation perplexities of the front points
are shared out the same way. Every rank allocates the same per-layer policies from the gathered
results; rank 0 holds the lock, evaluates the chosen point and saves the model and the report
(``"world_size"``) while the others wait. Per-layer checkpoints do not depend on the number of
ranks, so a run can resume with another one; with the same threads per process the result is
bit-identical to a single process's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import resource
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .. import distributed as dist
from ..config import ConversionSizes, Profile, get_profile
from ..paths import atomic_write_text, cache_dir
from ..storage import file_lock, quarantine, remove_stale_temporaries
from .errors import CheckpointMismatchError, MoEError

__all__ = [
    "ConversionConfig",
    "conversion_dir",
    "convert",
    "load_or_convert",
    "peak_rss_mb",
    "plan_train_k",
]

# 2: MoE weight layout 2 (see labkit.moe.block.WEIGHT_LAYOUT); 3: shared experts; 4: stage-2 floor;
# 5: allocate-then-train
VERSION = 5

#: With ``allocate_first`` each layer trains k within ± this fraction of N around its planned k ...
PLAN_BAND = 1 / 8
#: ... and runs all N experts in this fraction of its steps, so "all experts" stays exact.
PLAN_ALL_K_PROB = 1 / 8


@dataclass(frozen=True)
class ConversionConfig(ConversionSizes):
    """Everything that determines a conversion's result (all fields enter the cache key).

    The fields of :class:`labkit.config.ConversionSizes` (a profile's ``moe`` section: model,
    num_experts, method, train_tokens, valid_tokens, seq_len, epochs, batch_tokens, lr,
    target_reduction, front_evals, shared_fraction, sensitivity, min_k_fraction), and:

    Attributes
    ----------
    train_k: inclusive range ``(k_lo, k_hi)`` of experts per token in stage 1 (default ⌈N/2⌉..N;
        with ``allocate_first`` each layer's planned range replaces it).
    seed, device, dtype, store_dtype: randomness, placement, and the activation storage dtype.
    """

    train_k: tuple[int, int] | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    store_dtype: str = "bfloat16"

    @classmethod
    def from_profile(cls, profile: Profile | str | None = None, **overrides: Any) -> ConversionConfig:
        """The conversion config of a profile (``profile.moe`` sizes, device, dtype)."""
        p = profile if isinstance(profile, Profile) else get_profile(profile)
        sizes = {f.name: getattr(p.moe, f.name) for f in fields(ConversionSizes)}
        return replace(cls(**sizes, device=p.device, dtype=p.dtype), **overrides)

    def validate(self, model_config=None) -> None:
        """Check every field (and, given the dense model's config, the expert count and target).

        Raises
        ------
        MoEError
            Naming the field and value: unknown method, budgets or epochs < 1, a target outside
            [0, 1) or beyond what the FFNs can give, more experts than FFN neurons.
        labkit.models.DeviceError
            A device this machine lacks (``cuda`` without CUDA) or a dtype that is not a float type.
        """
        from ..models import resolve_device, resolve_dtype
        from .construct import METHODS

        if self.method not in METHODS:
            from .errors import UnknownMethodError

            raise UnknownMethodError(f"method={self.method!r} is unknown; choose one of {METHODS}")
        for name in ("train_tokens", "valid_tokens", "seq_len", "epochs", "batch_tokens", "front_evals"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise MoEError(f"{name}={v!r} must be an integer ≥ 1")
        n = self.num_experts
        if not isinstance(n, int) or isinstance(n, bool) or n < 2:
            raise MoEError(f"num_experts={n!r} must be an integer ≥ 2")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise MoEError(f"lr={self.lr!r} must be a finite number > 0")
        t = self.target_reduction
        if not (isinstance(t, (int, float)) and math.isfinite(t) and 0 <= t < 1):
            raise MoEError(f"target_reduction={t!r} must be in [0, 1)")
        sf = self.shared_fraction
        if not (isinstance(sf, (int, float)) and not isinstance(sf, bool) and 0 <= sf < 1):
            raise MoEError(f"shared_fraction={sf!r} must be a number in [0, 1)")
        mk = self.min_k_fraction
        if not (isinstance(mk, (int, float)) and not isinstance(mk, bool) and 0 <= mk <= 1):
            raise MoEError(f"min_k_fraction={mk!r} must be a number in [0, 1]")
        if self.store_dtype not in ("bfloat16", "float32"):
            raise MoEError(f"store_dtype={self.store_dtype!r} must be 'bfloat16' or 'float32'")
        resolve_dtype(self.dtype, resolve_device(self.device))
        if model_config is None:
            return
        from .accounting import llama_breakdown

        f = model_config.intermediate_size
        routed = f - int(round(sf * f))
        if n > routed:
            raise MoEError(
                f"num_experts={n} exceeds the FFN width {f} of {self.model} less its shared "
                f"expert: {routed} routed neurons (shared_fraction={sf})"
            )
        b = llama_breakdown(model_config)
        # One expert per token: the routed FFN share times (1 - 1/N), less the routers (equal
        # experts); unequal k-means experts can do a little better, never more than the routed share.
        ffn_routed = b.ffn * routed / f
        equal = (ffn_routed * (1 - 1 / n) - b.num_layers * n * model_config.hidden_size) / b.total
        reachable = equal if self.method == "contiguous" else ffn_routed / b.total
        if t > reachable:
            raise MoEError(
                f"target_reduction={t} cannot be reached: {self.model}'s FFNs hold "
                f"{b.ffn / b.total:.1%} of its parameters, so {n} experts can remove at most about "
                f"{max(equal, 0):.1%} (top-1 routing)"
            )

    def key(self) -> str:
        """Cache key: hash of every field, the dense weights' and the corpus' fingerprints, the
        thread count and the pipeline version."""
        import torch

        from ..models import source_fingerprint
        from .data import corpus_fingerprint

        blob = json.dumps(
            {
                "config": asdict(self),
                "weights": source_fingerprint(self.model),
                "corpus": corpus_fingerprint(),
                "threads": torch.get_num_threads(),
                "version": VERSION,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def conversion_dir(config: ConversionConfig) -> Path:
    """``cache_dir()/moe/<key>/`` of a config."""
    return cache_dir() / "moe" / config.key()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024


def plan_train_k(
    search, num_experts: int, *, band: float = PLAN_BAND, min_k: float = 1.0
) -> tuple[tuple[int, int], ...]:
    """Each layer's stage-1 range of k around the k a stage-2 search chose for it.

    ``search``: a :class:`labkit.moe.routing_search.SearchResult` (or its ``as_dict()``). Layer ℓ's
    chosen policy runs ``k_ℓ`` routed experts per token on average (its candidate's ``mean_k``; N
    for "all experts"); it trains on ``round(k_ℓ) ± round(band·N)``, cut to ``[⌈min_k⌉, N]``
    (the final search's floor: k below it will not be chosen, so training there is wasted).
    Training where the layer will run, instead of uniformly over ⌈N/2⌉..N, is the point of
    allocating first.

    Raises
    ------
    MoEError
        A ``band`` outside (0, 1] or a chosen policy missing from the search's candidates.
    """
    if not (isinstance(band, (int, float)) and 0 < band <= 1):
        raise MoEError(f"band={band!r} must be a number in (0, 1]")
    res = search if isinstance(search, dict) else search.as_dict()
    half = max(1, round(band * num_experts))
    floor = max(1, min(num_experts, math.ceil(min_k - 1e-9)))
    ranges = []
    for layer, (spec, cands) in enumerate(zip(res["chosen"], res["candidates"], strict=True)):
        if spec == "all":
            k = float(num_experts)
        else:
            match = [c["mean_k"] for c in cands if c["policy"] == spec]
            if not match:
                raise MoEError(f"layer {layer}: chosen policy {spec!r} is not among its candidates")
            k = match[0]
        c = min(num_experts, max(1, round(k)))
        lo, hi = max(floor, c - half), min(num_experts, c + half)
        ranges.append((min(lo, hi), hi))
    return tuple(ranges)


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
    peak_gpu: dict = field(default_factory=dict)  # MB of CUDA memory allocated at most during each stage

    def run(self, name, fn, *a, **k):
        t = time.perf_counter()
        out = fn(*a, **k)
        self.done(name, t)
        return out

    def done(self, name: str, t0: float) -> None:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
            self.peak_gpu[name] = torch.cuda.max_memory_allocated() / 2**20
            torch.cuda.reset_peak_memory_stats()
        self.stages[name] = time.perf_counter() - t0
        self.peak_rss[name] = peak_rss_mb()


def convert(
    config: ConversionConfig | None = None,
    *,
    progress: bool = True,
    keep_activations: bool = False,
    use_cache: bool = True,
    folder: str | Path | None = None,
    dense: tuple | None = None,
    keep_checkpoints: bool = False,
    device_map: str | dict | None = None,
):
    """Run (or load from cache) a conversion; returns ``(model, tokenizer, report)``.

    ``device_map``: load the dense model with accelerate's placement (``"auto"`` spreads a model
    larger than one device over the GPUs, then CPU memory; see :func:`labkit.models.load_causal_lm`)
    instead of moving it to ``config.device``. It changes where the layers run, not what they
    compute, so it is not part of the cache key. One process only (under torchrun every rank holds
    a whole model). Every layer must land on a device: modules accelerate offloads to CPU or disk
    while GPUs are in the map keep their weights outside the module, where the MoE construction
    cannot read them.

    Under torchrun every rank calls this with the same arguments (see the module docstring); every
    rank returns the converted model (ranks > 0 load it from the folder rank 0 saved).

    ``dense``: an already loaded ``(model, tokenizer)`` to convert instead of loading ``config.model``
    (``benchmarks/gpu_check.py`` converts a random LLaMA2-7B-shaped model so); needs ``folder``, since
    the cache key names weights by ``config.model``. The model is converted in place.

    ``keep_checkpoints``: keep the per-layer distillation checkpoints (and ``plan.json``, the
    layers' planned ranges of k when ``allocate_first``) after the converted model is saved (by
    default they are removed then: a LLaMA2-7B conversion's take ~9 GB; a kept set lets a
    damaged cached model be rebuilt without retraining).

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

    cfg = config or ConversionConfig.from_profile()
    cfg.validate(_peek_config(cfg.model) if dense is None else dense[0].config)
    if dense is not None and folder is None:
        raise MoEError("convert(dense=...) needs folder=: the cache key cannot name in-memory weights")
    folder = conversion_dir(cfg) if folder is None else Path(folder)
    options = dict(keep_activations=keep_activations, use_cache=use_cache, keep_checkpoints=keep_checkpoints)
    _agree_over_ranks(cfg, folder, dense, device_map, options)  # before anything is written
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from ..storage import storage_error

        raise storage_error(err, folder, "create the conversion folder") from None
    lead = dist.rank() == 0  # rank 0 holds the lock for every rank (the others would wait forever)
    lock = file_lock(folder / ".labkit.lock", what=f"the conversion in {folder}")
    with lock if lead else contextlib.nullcontext():
        return _convert_locked(
            cfg, folder, progress, keep_activations, use_cache, dense, keep_checkpoints, device_map
        )


def _agree_over_ranks(
    cfg: ConversionConfig, folder: Path, dense: tuple | None, device_map, options: dict
) -> None:
    """Join the torchrun process group (none in one process) and check, on every rank together, that
    the ranks convert the same thing into the same folder and that no rank would be left without a
    layer.

    Raises
    ------
    labkit.distributed.DistributedConfigError
        A missing rendezvous, ranks that disagree (naming the fields), more ranks than layers, or a
        device map under torchrun.
    """
    dist.init(cfg.device)
    if dist.world_size() == 1:
        return
    if device_map is not None:
        raise dist.DistributedConfigError(
            f"device_map={device_map!r} spreads one process's model over several devices; under "
            "torchrun every rank holds a whole model. Convert in one process with the device map, "
            "or over ranks without it",
            all_ranks=True,
        )
    agreed = dict(config=asdict(cfg), key=cfg.key(), folder=str(folder.resolve()), **options)
    if dense is not None:
        from ..models import weights_fingerprint

        agreed["dense_weights"] = weights_fingerprint(dense[0])
    dist.check_same_config(agreed, what="conversion")
    model_config = _peek_config(cfg.model) if dense is None else dense[0].config
    if model_config is not None:
        dist.check_world_size(model_config.num_hidden_layers, "layers")


def _peek_config(name: str):
    """The dense model's config without loading its weights, when that is cheap (else ``None``)."""
    from ..models import SMOLLM2, TINY_CONFIGS, _smollm2_cache

    if name in TINY_CONFIGS:
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=259, **TINY_CONFIGS[name])
    path = _smollm2_cache() if name == SMOLLM2 else Path(name).expanduser()
    if (path / "config.json").is_file() and not (path / "labkit_moe.json").is_file():
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(str(path))
        except (OSError, ValueError):
            return None
    return None


def _cached(model_dir: Path, report_path: Path, device: str):
    """The finished conversion in a folder, or ``None``; a damaged one is moved aside (and redone)."""
    from . import io

    if not (model_dir.is_dir() and report_path.is_file()):
        return None
    try:
        report = json.loads(report_path.read_text())
        model, tok = io.load_moe(model_dir, device=device)
    except (ValueError, CheckpointMismatchError) as err:
        quarantine(model_dir, f"cached converted model is damaged ({err})")
        return None
    report["from_cache"] = True
    return model, tok, report


def _convert_locked(
    cfg: ConversionConfig,
    folder: Path,
    progress: bool,
    keep_activations: bool,
    use_cache: bool,
    dense,
    keep_checkpoints: bool,
    device_map=None,
):
    from ..models import load_causal_lm
    from . import capture, data, distill, evaluate, io, routing_search
    from .accounting import activated_parameters
    from .construct import NEEDS_CALIBRATION, moefy, record_routing, set_policy

    remove_stale_temporaries(folder)  # half-written files of a killed run
    model_dir, report_path = folder / "model", folder / "report.json"
    if use_cache and (hit := _cached_on_ranks(model_dir, report_path, cfg.device)) is not None:
        return hit
    lead, ws = dist.rank() == 0, dist.world_size()

    timer = _Timer()
    t_start = time.perf_counter()
    if dense is None:
        placement = {"device_map": device_map} if device_map is not None else {}
        model, tok = timer.run(
            "load", load_causal_lm, cfg.model, dtype=cfg.dtype, device=cfg.device, **placement
        )
    else:
        (model, tok), timer.stages["load"], timer.peak_rss["load"] = dense, 0.0, peak_rss_mb()
    cfg.validate(model.config)
    if ws > 1:  # a model whose config could not be read before loading it
        dist.check_world_size(model.config.num_hidden_layers, "layers")
    _own_memory(model)
    train = data.token_blocks(tok, "train", cfg.train_tokens, cfg.seq_len)
    valid = data.token_blocks(tok, "valid", cfg.valid_tokens, cfg.seq_len)
    if lead:
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
    dense_ppl_valid = evaluate.perplexity(model, valid) if lead else math.nan
    needs_calib = cfg.method in NEEDS_CALIBRATION or cfg.shared_fraction > 0
    calib = train[: max(1, 4096 // cfg.seq_len)] if needs_calib else None
    timer.run(
        "moefy",
        moefy,
        model,
        num_experts=cfg.num_experts,
        method=cfg.method,
        calibration=calib,
        seed=cfg.seed,
        shared_fraction=cfg.shared_fraction,
    )
    min_k = max(1.0, cfg.min_k_fraction * cfg.num_experts)
    sens_blocks = valid if cfg.sensitivity else None
    plan = None
    if cfg.allocate_first:  # a first search on the untrained MoE plans each layer's k
        plan = timer.run(
            "plan",
            _plan_stage,
            cfg,
            model,
            valid_store,
            folder / "plan.json",
            sensitivity_blocks=sens_blocks,
            min_k=min_k,
        )
    dcfg = distill.DistillConfig(
        epochs=cfg.epochs,
        batch_tokens=cfg.batch_tokens,
        lr=cfg.lr,
        train_k=cfg.train_k,
        layer_k=None if plan is None else tuple(map(tuple, plan["train_k"])),
        all_k_prob=0.0 if plan is None else PLAN_ALL_K_PROB,
        seed=cfg.seed,
    )
    layers = timer.run(
        "distill",
        _distill_stage,
        model,
        train_store,
        folder / "checkpoints",
        config=dcfg,
        progress=progress,
    )
    # every rank holds every layer now; over ranks, each scores and probes its share of the layers
    search = timer.run(
        "search",
        routing_search.search_policies,
        model,
        valid_store,
        target_reduction=cfg.target_reduction,
        max_tokens=cfg.valid_tokens,
        sensitivity_blocks=None if plan is not None else sens_blocks,
        sensitivity=None if plan is None else plan.get("sensitivity"),
        min_k=min_k,
    )

    # end-to-end validation perplexity of a few front points (cheapest, chosen, most accurate, …),
    # dealt out over the ranks
    front = search.front
    chosen_idx = front.index(next(p for p in front if p["policies"] == search.chosen))
    picks = sorted(
        {chosen_idx, 0, len(front) - 1}
        | {round(j * (len(front) - 1) / max(1, cfg.front_evals - 1)) for j in range(cfg.front_evals)}
    )
    t = time.perf_counter()

    def front_ppl(j: int) -> float:
        set_policy(model, front[j]["policies"])
        return evaluate.perplexity(model, valid)

    for j, ppl in dist.map_over_ranks(front_ppl, picks, what="front evaluations").items():
        front[j]["valid_ppl"] = ppl
    timer.done("front_eval", t)
    if not lead:  # rank 0 alone evaluates the chosen policy and saves; this rank waits, then loads
        return _follow_rank0(model_dir, cfg.device, tok)
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
        "peak_gpu_mb_by_stage": timer.peak_gpu,
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
        "plan": plan,
        "search": search.as_dict(),
        "chosen_policy": search.chosen,
        "activated_measured": measured.as_dict(),
        "activated_nominal": nominal.as_dict(),
        "reduction": measured.reduction,
        "valid_ppl": {"dense": dense_ppl_valid, "moe": moe_ppl_valid},
        "from_cache": False,
        "world_size": ws,
    }
    io.save_moe(model, model_dir, tok, extra={"key": cfg.key()})
    atomic_write_text(report_path, json.dumps(report, indent=1))
    if not keep_activations:  # this run's own capture files, under its lock
        _remove_files(folder / "acts", ("*/x_*.npy", "*/y_*.npy", "*/meta.json"))
    if not keep_checkpoints:  # now inside model/ (and the plan in the report)
        _remove_files(folder / "checkpoints", ("layer_*.safetensors", "layer_*.json"))
        (folder / "plan.json").unlink(missing_ok=True)
    if ws > 1:
        dist.broadcast_object(report)  # the waiting ranks go on
    return model, tok, report


def _plan_stage(
    cfg: ConversionConfig,
    model,
    valid_store,
    path: Path,
    *,
    sensitivity_blocks,
    min_k: float,
) -> dict:
    """Allocate first: stage 2 on the untrained MoE, and each layer's planned range of k.

    Returns ``{"key", "chosen", "planned_k", "reduction", "error", "target_met", "train_k",
    "sensitivity"}`` (``planned_k``: each layer's mean routed experts per token under its planned
    policy); kept in
    ``path`` (``plan.json``), so a resumed run trains the same ranges without searching again.
    Over ranks the search is dealt out as stage 2 is, and rank 0 decides whether a kept plan is
    used (every rank then uses the same).
    """
    from . import routing_search

    key = cfg.key()
    kept = None
    if dist.rank() == 0 and path.is_file():
        try:
            got = json.loads(path.read_text())
            kept = got if isinstance(got, dict) and got.get("key") == key else None
        except (OSError, ValueError):
            kept = None  # unreadable: planned again and rewritten
    if dist.is_distributed():
        kept = dist.broadcast_object(kept)
    if kept is not None:
        return kept
    search = routing_search.search_policies(
        model,
        valid_store,
        target_reduction=cfg.target_reduction,
        max_tokens=cfg.valid_tokens,
        sensitivity_blocks=sensitivity_blocks,
        min_k=min_k,
    )
    mean_k = {(c["layer"], c["policy"]): c["mean_k"] for layer in search.candidates for c in layer}
    plan = {
        "key": key,
        "chosen": search.chosen,
        "planned_k": [
            float(cfg.num_experts) if p == "all" else mean_k[(i, p)] for i, p in enumerate(search.chosen)
        ],
        "reduction": search.chosen_reduction,
        "error": search.chosen_error,
        "target_met": search.target_met,
        "train_k": [list(r) for r in plan_train_k(search, cfg.num_experts, min_k=min_k)],
        "sensitivity": search.extra.get("sensitivity"),
    }
    if dist.rank() == 0:
        atomic_write_text(path, json.dumps(plan, indent=1))
    return plan


def _cached_on_ranks(model_dir: Path, report_path: Path, device: str):
    """:func:`_cached` decided by rank 0 for every rank (each then loads the model itself)."""
    if not dist.is_distributed():
        return _cached(model_dir, report_path, device)
    from . import io

    hit = _cached(model_dir, report_path, device) if dist.rank() == 0 else None
    report = dist.broadcast_object(hit[2] if hit is not None else None)
    if report is None or hit is not None:
        return hit
    model, tok = io.load_moe(model_dir, device=device)
    return model, tok, report


def _distill_stage(model, store, checkpoint_dir: Path, *, config, progress: bool) -> list:
    """Stage 1 in one process, or over the ranks: the layers not finished yet are dealt out
    round-robin, each rank distils its share into the shared checkpoint folder, and every rank then
    loads every other layer from its checkpoint (stage 2 needs them all). Rank 0 returns a result
    per layer (``resumed``: finished before this run); the other ranks return their own layers'
    results."""
    from . import distill
    from .errors import CheckpointMismatchError

    if not dist.is_distributed():
        return distill.distill_layers(model, store, checkpoint_dir, config=config, progress=progress)
    lead = dist.rank() == 0
    status: dict = {"done": [], "error": None}
    if lead:  # verifies (and moves aside damaged) checkpoints once, before any rank trains
        try:
            status["done"] = distill.finished_layers(model, checkpoint_dir, config)
        except CheckpointMismatchError as err:
            status["error"] = str(err)
    status = dist.broadcast_object(status)
    if status["error"]:
        raise CheckpointMismatchError(status["error"])
    pending = [i for i in range(store.num_layers) if i not in status["done"]]
    mine = dist.shard(pending, strided=True)
    ours = distill.distill_layers(
        model, store, checkpoint_dir, config=config, progress=progress and lead, layers=mine
    )
    trained = {r.layer: r for part in dist.all_gather_object(ours) for r in part}  # all written now
    others = [i for i in range(store.num_layers) if i not in mine]
    loaded = distill.distill_layers(  # every rank needs every layer for stage 2
        model, store, checkpoint_dir, config=config, progress=False, layers=others
    )
    if not lead:
        return ours
    by_layer = {r.layer: r for r in ours + loaded}
    by_layer.update({i: r for i, r in trained.items() if not r.resumed})  # trained now by another rank
    return [by_layer[i] for i in range(store.num_layers)]


def _follow_rank0(model_dir: Path, device: str, tok):
    """A rank > 0 after stage 1: wait for rank 0's report, then load the model rank 0 saved."""
    from . import io

    report = dist.broadcast_object(None)
    model, _ = io.load_moe(model_dir, device=device)
    return model, tok, report


def _remove_files(root: Path, patterns: tuple[str, ...]) -> None:
    """Delete the files labkit wrote under ``root`` (by name pattern), then the folders left empty;
    anything else someone put there stays."""
    for pattern in patterns:
        for f in root.glob(pattern):
            f.unlink(missing_ok=True)
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(d.iterdir()):
            d.rmdir()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()


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
