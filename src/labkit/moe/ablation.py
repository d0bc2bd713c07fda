"""Ablation of the book's conversion recipe: what each ingredient adds, on one budget and one test split.

A row is a name, the :class:`~labkit.moe.pipeline.ConversionConfig` fields it changes and two
flags. Rows are cumulative, like the "+" lines of the table: each row starts from the previous
conversion row's settings (overrides and stage-3 flag) and applies its own. The first row is the
static-pruning baseline (:mod:`labkit.moe.prune`), which converts nothing.

Every row uses the same budget: ``train_tokens`` and ``valid_tokens`` are the profile's
``ablation_train_tokens`` and ``ablation_valid_tokens`` (:class:`labkit.config.MoESizes`), the
other sizes are the profile's. Every row is measured the
same way, on the held-out ``test`` split that no stage sees: perplexity over the dense model's,
zero-shot continuation accuracy on the profile's ``eval_items`` items
(:func:`labkit.moe.data.continuation_choices`, as the results chapter), and the activated-parameter
reduction measured with the model's own routing on the test tokens
(:func:`labkit.moe.accounting.activated_parameters` with recorded statistics).

Work is reused where it is free: conversions are cached by config (:func:`~labkit.moe.pipeline.convert`);
a row whose config differs from the previous row's only in stage-2 fields (:data:`STAGE2_FIELDS`)
reruns only stage 2 (:func:`~labkit.moe.routing_search.search_policies`) on the previous row's
trained experts, which gives the policies the full conversion of that config would choose (cached
too, by both configs' keys); a
stage-3 row trains a copy of the conversion without stage 3 (:func:`labkit.moe.finetune.end_to_end`,
with the settings of the results chapter).

To add a row, append an :class:`AblationRow` (or build a new tuple of rows) with the fields it
changes: ``AblationRow("+ my idea", {"my_field": True})``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from ..config import Profile, get_profile
from .errors import MoEError
from .pipeline import ConversionConfig

__all__ = [
    "ROWS",
    "STAGE2_FIELDS",
    "AblationRow",
    "Built",
    "Reference",
    "ResolvedRow",
    "RowResult",
    "check_budget",
    "reference",
    "resolve",
    "run_ablation",
    "run_row",
]

#: The config fields that only stage 2 reads; a row changing only these reuses the previous experts.
STAGE2_FIELDS = ("sensitivity", "min_k_fraction", "target_reduction", "front_evals")


@dataclass(frozen=True)
class AblationRow:
    """One row of the ablation table.

    Attributes
    ----------
    name:
        The row's label.
    overrides:
        :class:`~labkit.moe.pipeline.ConversionConfig` fields set on top of the previous
        conversion row's.
    prune:
        The static-pruning baseline instead of a conversion (ignores ``overrides``; does not pass
        its settings on).
    stage3:
        Run stage 3 (end-to-end KL to the dense model) after the conversion; ``None`` keeps the
        previous row's choice.
    """

    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    prune: bool = False
    stage3: bool | None = None


#: The rows of the book's ablation chapter. Static pruning, then the recipe's ingredients added
#: one at a time, ending at the recipe of :data:`labkit.config.MOE_RECIPE` and its optional
#: stage 3.
ROWS: tuple[AblationRow, ...] = (
    AblationRow("static prune", prune=True),
    AblationRow(
        "8 k-means experts",
        {
            "method": "kmeans",
            "num_experts": 8,
            "shared_fraction": 0.0,
            "sensitivity": False,
            "min_k_fraction": 0.0,
            "allocate_first": False,
        },
        stage3=False,
    ),
    AblationRow("+ always-on expert", {"shared_fraction": 0.25}),
    AblationRow("+ fine-grained experts", {"num_experts": 48, "method": "activation"}),
    AblationRow("+ sensitivity-aware stage 2", {"sensitivity": True, "min_k_fraction": 1 / 6}),
    AblationRow("+ allocate, then train", {"allocate_first": True}),
    AblationRow("+ stage 3", stage3=True),
)


@dataclass(frozen=True)
class ResolvedRow:
    """A row with its settings spelled out: the config it converts (for a pruning row, the config
    whose model, target and budget it prunes with) and whether stage 3 follows."""

    name: str
    config: ConversionConfig
    prune: bool
    stage3: bool


@dataclass(frozen=True)
class RowResult:
    """The measurements of one row on the test split.

    Attributes
    ----------
    name:
        The row's label.
    ppl:
        Held-out (test split) perplexity.
    ppl_ratio:
        ``ppl`` over the dense model's.
    accuracy:
        Zero-shot continuation accuracy (fraction of items).
    reduction:
        Measured fraction of the dense model's parameters not activated per token.
    seconds:
        Wall time to build the row's model from the dense one (conversion, stage 3 or pruning;
        a conversion loaded from the cache reports the time it took when it ran).
    reused_stage1:
        The row reran only stage 2, on the previous row's experts.
    """

    name: str
    ppl: float
    ppl_ratio: float
    accuracy: float
    reduction: float
    seconds: float
    reused_stage1: bool = False


def check_budget(profile: Profile) -> None:
    """Check the ablation budget of a profile before anything runs.

    Raises
    ------
    MoEError
        ``ablation_train_tokens`` or ``ablation_valid_tokens`` not an integer, or below
        ``seq_len`` (no whole block to train or validate on).
    """
    s = profile.moe
    for name in ("ablation_train_tokens", "ablation_valid_tokens"):
        n = getattr(s, name)
        if not isinstance(n, int) or isinstance(n, bool) or n < s.seq_len:
            raise MoEError(
                f"{name}={n!r} must be an integer ≥ seq_len={s.seq_len} (profile {profile.name!r})"
            )


def resolve(profile: Profile | str | None = None, rows: Sequence[AblationRow] = ROWS) -> list[ResolvedRow]:
    """The settings of every row (cumulative, see the module docstring), checked before any run.

    Raises
    ------
    MoEError
        A bad budget (:func:`check_budget`), no rows, an override naming no config field or a
        budget field, or a
        config value :meth:`~labkit.moe.pipeline.ConversionConfig.validate` rejects.
    """
    p = profile if isinstance(profile, Profile) else get_profile(profile)
    check_budget(p)
    if not rows:
        raise MoEError("rows=() : the ablation needs at least one row")
    known = {f.name for f in fields(ConversionConfig)}
    budget = {"train_tokens": p.moe.ablation_train_tokens, "valid_tokens": p.moe.ablation_valid_tokens}
    settings: dict[str, Any] = {}
    stage3 = False
    out = []
    for row in rows:
        bad = sorted(set(row.overrides) - known)
        if bad:
            raise MoEError(f"row {row.name!r}: overrides {bad} are not ConversionConfig fields")
        fixed = sorted(set(row.overrides) & set(budget))
        if fixed:
            raise MoEError(
                f"row {row.name!r}: overrides {fixed}, the ablation's budget; every row uses the "
                "profile's ablation_train_tokens and ablation_valid_tokens"
            )
        if row.prune:
            cfg = ConversionConfig.from_profile(p, **budget)
            cfg.validate()
            out.append(ResolvedRow(row.name, cfg, True, False))
            continue
        settings.update(row.overrides)
        if row.stage3 is not None:
            stage3 = row.stage3
        cfg = ConversionConfig.from_profile(p, **{**settings, **budget})
        cfg.validate()
        out.append(ResolvedRow(row.name, cfg, False, stage3))
    return out


@dataclass
class Reference:
    """What every row is measured against: the dense model, the test blocks and items, and the
    dense model's perplexity and accuracy on them."""

    model: Any
    tokenizer: Any
    test: torch.Tensor
    items: list
    ppl: float
    accuracy: float
    source: tuple[str, str, str] = ("", "", "")  # (model, dtype, device) it was loaded as


def reference(profile: Profile | str | None = None) -> Reference:
    """Load the dense model of a profile and measure it on the ablation's test split and items."""
    from . import data, evaluate
    from .pipeline import dense_reference

    p = profile if isinstance(profile, Profile) else get_profile(profile)
    check_budget(p)
    cfg = ConversionConfig.from_profile(p)
    model, tok = dense_reference(cfg)
    model.eval()
    s = p.moe
    test = data.token_blocks(tok, "test", s.heldout_tokens, s.seq_len)
    items = data.continuation_choices(tok, num_items=s.eval_items, seed=0)
    ppl, acc = evaluate.perplexity(model, test), evaluate.mc_accuracy(model, items)
    return Reference(model, tok, test, items, ppl, acc, (cfg.model, cfg.dtype, cfg.device))


def _measure(name: str, model, ref: Reference, reduction: float | None, seconds: float, reused=False):
    """Perplexity, accuracy and (for an MoE, measured with its routing on the test blocks) reduction."""
    from . import evaluate
    from .accounting import activated_parameters
    from .construct import record_routing

    moe = reduction is None
    if moe:
        record_routing(model, True)
    ppl = evaluate.perplexity(model, ref.test)
    if moe:
        reduction = activated_parameters(model).reduction
        record_routing(model, False)
    acc = evaluate.mc_accuracy(model, ref.items)
    assert reduction is not None
    return RowResult(name, ppl, ppl / ref.ppl, acc, reduction, seconds, reused)


def _prune_row(row: ResolvedRow, ref: Reference) -> RowResult:
    import copy

    from . import data
    from .prune import prune_to_reduction

    cfg = row.config
    t0 = time.perf_counter()
    model = copy.deepcopy(ref.model)
    calib = data.token_blocks(ref.tokenizer, "train", cfg.train_tokens, cfg.seq_len)
    res = prune_to_reduction(model, calib, cfg.target_reduction)
    seconds = time.perf_counter() - t0
    out = _measure(row.name, model, ref, res.reduction, seconds)
    del model
    return out


def _stage2_only(a: ConversionConfig, b: ConversionConfig) -> bool:
    """Whether two configs differ, and only in stage-2 fields (:data:`STAGE2_FIELDS`)."""
    return a != b and all(
        getattr(a, f.name) == getattr(b, f.name) for f in fields(a) if f.name not in STAGE2_FIELDS
    )


def _restage_path(before: ConversionConfig, cfg: ConversionConfig) -> Path:
    """Where a rerun stage 2 keeps its chosen policies: named by both configs' cache keys (the
    experts come from ``before``'s conversion, the search settings from ``cfg``)."""
    from ..paths import cache_dir

    return cache_dir() / "moe" / "ablation-stage2" / f"{before.key()}-{cfg.key()}.json"


def _restage(model, before: ConversionConfig, cfg: ConversionConfig, ref: Reference) -> float:
    """Rerun stage 2 of ``cfg`` on the experts of ``before``'s conversion (in place); returns the
    seconds it took (when it first ran: the chosen policies are cached, like conversions).

    The validation split is captured from the dense model as :func:`~labkit.moe.pipeline.convert`
    captures it (MLP inputs and outputs, float32), so the search sees what that conversion's sees.
    """
    import json

    from ..paths import atomic_write_text
    from . import capture, data
    from .construct import set_policy
    from .routing_search import search_policies

    path = _restage_path(before, cfg)
    if path.is_file():
        try:
            done = json.loads(path.read_text())
            set_policy(model, done["policies"])
            return float(done["seconds"])
        except (ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # damaged: search again
    t0 = time.perf_counter()
    valid = data.token_blocks(ref.tokenizer, "valid", cfg.valid_tokens, cfg.seq_len)
    with tempfile.TemporaryDirectory(prefix="labkit-ablation-") as tmp:
        store = capture.capture_activations(
            ref.model,
            valid,
            Path(tmp) / "valid",
            outputs=True,
            store_dtype="float32",
            batch_size=max(1, 4096 // cfg.seq_len),
            progress=False,
            distributed=False,
        )
        set_policy(model, "all")
        search = search_policies(
            model,
            store,
            target_reduction=cfg.target_reduction,
            max_tokens=cfg.valid_tokens,
            sensitivity_blocks=valid if cfg.sensitivity else None,
            min_k=max(1.0, cfg.min_k_fraction * cfg.num_experts),
            distributed=False,
        )
    set_policy(model, search.chosen)
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"policies": search.chosen, "seconds": seconds}))
    return seconds


def _stage3(model, cfg: ConversionConfig, ref: Reference) -> float:
    """Stage 3 as the results chapter runs it (float32 weights, ≤ 32 blocks of the training
    budget, lr = 0.3 × stage 1's, batches of 4, one epoch), then back to ``cfg.dtype``; seconds."""
    from . import data
    from .finetune import end_to_end

    model.float()  # bf16 weights would round small updates away
    blocks = data.token_blocks(ref.tokenizer, "train", min(cfg.train_tokens, 32 * cfg.seq_len), cfg.seq_len)
    run = end_to_end(model, ref.model, blocks, lr=0.3 * cfg.lr, batch_size=4, epochs=1, seed=cfg.seed)
    model.to(getattr(torch, cfg.dtype))
    return run.seconds


@dataclass
class Built:
    """A conversion row's model after stage 2 (before any stage 3), kept for the next row.

    ``stage1_s`` and ``stage2_s``: seconds of the conversion before and of stage 2 (search and
    front evaluations; a rerun stage 2 counts its search only).
    """

    model: Any
    config: ConversionConfig
    stage1_s: float
    stage2_s: float


def _dense_copy(cfg: ConversionConfig, ref: Reference) -> dict:
    """``convert`` arguments that start a conversion from a copy of the reference's dense model
    instead of loading it again (the same weights: the reference loaded ``cfg.model`` in the
    same dtype on the same device), into the config's own cache folder; none if the row changes
    the model, dtype or device, or if the conversion is cached already."""
    import copy

    from .pipeline import conversion_dir

    if (cfg.model, cfg.dtype, cfg.device) != ref.source:
        return {}
    folder = conversion_dir(cfg)
    if (folder / "report.json").is_file():
        return {}
    return {"dense": (copy.deepcopy(ref.model), ref.tokenizer), "folder": folder}


def run_row(
    row: ResolvedRow, ref: Reference, *, previous: Built | None = None, progress: bool = False
) -> tuple[RowResult, Built | None]:
    """Build one resolved row's model (:func:`resolve`) and measure it against ``ref``.

    ``previous``: the last conversion row's :class:`Built`. Its model is reused as it is when the
    configs are equal (a row that adds only stage 3), and gets a new stage 2 (in place) when they
    differ only in :data:`STAGE2_FIELDS`; otherwise the row converts (or loads from the cache) its
    own config. Returns the measurements and what the next row may reuse (``None`` after a
    pruning row, which passes nothing on).
    """
    from .pipeline import convert

    if row.prune:
        return _prune_row(row, ref), None
    reused = previous is not None and _stage2_only(previous.config, row.config)
    if previous is not None and previous.config == row.config:
        built = previous
    elif reused:
        assert previous is not None
        s2 = _restage(previous.model, previous.config, row.config, ref)
        built = Built(previous.model, row.config, previous.stage1_s, s2)
    else:
        model, _, report = convert(row.config, progress=progress, **_dense_copy(row.config, ref))
        stages = report["stages_s"]
        s2 = float(stages.get("search", 0.0) + stages.get("front_eval", 0.0))
        built = Built(model, row.config, float(report["wall_s"]) - s2, s2)
    seconds = built.stage1_s + built.stage2_s
    if row.stage3:
        import copy

        student = copy.deepcopy(built.model)
        seconds += _stage3(student, row.config, ref)
        result = _measure(row.name, student, ref, None, seconds, reused)
        del student
    else:
        result = _measure(row.name, built.model, ref, None, seconds, reused)
    return result, built


def run_ablation(
    profile: Profile | str | None = None,
    rows: Sequence[AblationRow] = ROWS,
    *,
    progress: bool = False,
    ref: Reference | None = None,
) -> tuple[RowResult, list[RowResult]]:
    """Run every row; returns the dense model as a row (ratio 1, reduction 0) and the rows' results.

    Everything is checked (:func:`resolve`) before the first model loads.
    """
    p = profile if isinstance(profile, Profile) else get_profile(profile)
    resolved = resolve(p, rows)
    ref = ref or reference(p)
    dense = RowResult("dense", ref.ppl, 1.0, ref.accuracy, 0.0, 0.0)
    results = []
    previous: Built | None = None
    for row in resolved:
        res, built = run_row(row, ref, previous=previous, progress=progress)
        results.append(res)
        if built is not None:
            previous = built
    return dense, results
