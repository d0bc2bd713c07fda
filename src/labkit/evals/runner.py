"""Run a task: items → prompts → log-likelihoods (or generations) → per-item records and a summary.

Three scoring styles share one runner (:class:`~labkit.evals.prompts.PromptConfig`'s ``style``, set
per benchmark by the registry): ``cloze`` and ``letters`` score log-likelihoods; ``generate`` (HCX's
ARC) has the model generate its answer greedily and records the option the text names by prefix
match (:func:`~labkit.evals.scoring.match_option`). Every style writes the same folder layout, is
resumable item by item and is cached under the same key scheme.

:func:`evaluate` scores a list of items with one :class:`~labkit.evals.prompts.PromptConfig`;
:func:`run_task` loads a registered task and caches the run under ``$LABKIT_CACHE/evals`` keyed by
model, task, language, prompt configuration and item selection, so a second call (e.g. the book
build after ``make test``) reads the finished records instead of running the model.

Under ``torchrun`` (:mod:`labkit.distributed`, ``WORLD_SIZE > 1``) both spread the work over the
ranks. The items still to score are cut into the chunks one process would score, and the chunks
are dealt out by their token counts (:func:`prompt_tokens`): in each round every rank scores one
chunk, the round's chunks cost about the same, and every rank gets about the same number of
tokens. After each round every rank's records reach rank 0, which alone writes the run folder.
Each chunk is scored exactly as one process scores it, so ``items.jsonl`` (put in item order at
the end) and ``summary.json`` are those of a single-process run; ``meta.json`` records the
``"world_size"``. A run killed part-way resumes, with any number of ranks, from the records written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import distributed as dist
from ..paths import atomic_write_text
from .errors import EvalDataError, EvalError, NonFiniteScoreError, UnknownMetricError
from .lm import encode_pair, generate_until, loglikelihood, model_max_length, tok_encode
from .prompts import GENERATION_FIELDS, PromptConfig, build_prompt, select_shots, shuffle_options
from .results import ResultStore, is_finite_record, item_hash, results_dir, run_key
from .schema import Item
from .scoring import cloze_predictions, exact_match, letter_choice, macro_f1, match_option, normalize_answer
from .stats import Estimate, clustered_se, mean_se
from .tasks import get_task, load_fewshot, load_task, protocol

__all__ = [
    "TaskResult",
    "check_generation_items",
    "check_shots",
    "evaluate",
    "evaluate_generation",
    "prompt_tokens",
    "resolve_protocol",
    "run_task",
    "summarize",
]

_PROMPT_FIELDS = tuple(f.name for f in dataclasses.fields(PromptConfig))


def resolve_protocol(
    task: str, prompt: PromptConfig | None = None, overrides: Mapping[str, object] | None = None
) -> tuple[PromptConfig, tuple[str, ...] | None, dict]:
    """The prompt configuration and subsets a run of ``task`` uses, and how they deviate from the registry.

    The registry's protocol (:func:`labkit.evals.tasks.protocol`: shots, sampler, same-subject shots,
    subject header, option shuffling, style, subset) is the default. ``prompt`` replaces it as a whole
    (every field that differs from the registry counts as an override); ``overrides`` (field → value,
    including ``"subsets"``; ``None`` subsets = all) replace single fields on top.

    Returns ``(config, subsets, deviations)`` where ``deviations`` maps each overridden field to
    ``{"registry": ..., "used": ...}``; runs record it in their metadata. The generation settings
    (``max_new_tokens``, ``until``) count only when the style used is ``generate``.
    """
    proto = protocol(task)
    reg_subsets = proto.pop("subsets")
    registry = PromptConfig(**proto)
    over = dict(overrides or {})
    unknown = sorted(set(over) - set(_PROMPT_FIELDS) - {"subsets"})
    if unknown:
        raise EvalError(f"unknown override(s) {unknown}; allowed: {[*_PROMPT_FIELDS, 'subsets']}")
    subsets = reg_subsets
    if "subsets" in over:
        v = over.pop("subsets")
        subsets = tuple(v) if v is not None else None
    cfg = prompt or registry
    try:
        cfg = dataclasses.replace(cfg, **over)
    except TypeError as err:  # pragma: no cover - guarded by the field check above
        raise EvalError(str(err)) from None
    dev = {
        k: {"registry": getattr(registry, k), "used": getattr(cfg, k)}
        for k in _PROMPT_FIELDS
        if getattr(cfg, k) != getattr(registry, k) and (cfg.style == "generate" or k not in GENERATION_FIELDS)
    }
    if subsets != reg_subsets:
        dev["subsets"] = {
            "registry": list(reg_subsets) if reg_subsets else None,
            "used": list(subsets) if subsets else None,
        }
    return cfg, subsets, dev


def check_shots(task: str, cfg: PromptConfig, items: Sequence[Item], pool: Sequence[Item]) -> None:
    """Raise :class:`EvalDataError` if ``cfg.shots`` asks for more examples than the few-shot split
    holds (per subject with ``cfg.same_subject``), or for shots without a few-shot split."""
    if cfg.shots == 0:
        return
    if not pool:
        raise EvalDataError(
            f"task {task!r}: shots={cfg.shots} but no few-shot split was loaded; "
            "pass fewshot_path= (or --fewshot-path), or shots=0"
        )
    if cfg.same_subject:
        have: dict[str | None, int] = {}
        for p in pool:
            have[p.category] = have.get(p.category, 0) + 1
        for cat in sorted({str(it.category) for it in items}):
            n = have.get(cat if cat != "None" else None, 0)
            if cfg.shots > n:
                raise EvalDataError(
                    f"task {task!r}: shots={cfg.shots} is larger than the few-shot split of subject "
                    f"{cat!r} ({n} items)"
                )
    elif cfg.shots > len(pool):
        raise EvalDataError(
            f"task {task!r}: shots={cfg.shots} is larger than the few-shot split ({len(pool)} items)"
        )


@dataclass
class TaskResult:
    """Per-item records (in item order) and the summary of one run."""

    task: str
    lang: str | None
    model_id: str
    prompt: PromptConfig
    records: list[dict]
    summary: dict
    folder: Path | None = None
    scored_now: int = 0
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        return list(self.records[0]["correct"]) if self.records else []

    def correct(self, metric: str = "acc") -> np.ndarray:
        """0/1 correctness per item under ``metric``."""
        self._check(metric, self.metrics)
        return np.array([float(r["correct"][metric]) for r in self.records])

    def _check(self, metric: str, have) -> None:
        if metric not in have:
            raise UnknownMetricError(f"metric {metric!r} is not in this run; have {list(have)}")

    def ids(self) -> list[str]:
        return [r["id"] for r in self.records]

    def clusters(self) -> list[str | None]:
        return [r.get("cluster") for r in self.records]

    def estimate(self, metric: str = "acc", clustered: bool = False) -> Estimate:
        """The summary's estimate of ``metric`` (analytic, or clustered SE)."""
        self._check(metric, self.summary["metrics"])
        d = self.summary["metrics"][metric]["clustered" if clustered else "analytic"]
        return Estimate(d["value"], d["se"], tuple(d["ci"]), d["n"], d.get("n_clusters"), d["method"])


def _fit_shots(item: Item, template: str, cfg: PromptConfig, shots: list[Item], tokenizer, window: int):
    """Drop whole shots (last first) until context + longest continuation fits the window (as HELM)."""
    while True:
        prompt = build_prompt(item, template, cfg, shots, tokenizer)
        if not shots:
            return prompt
        n = len(tok_encode(tokenizer, prompt.context)) + max(
            len(tok_encode(tokenizer, c, add_special_tokens=False)) for c in prompt.continuations
        )
        if n <= window:
            return prompt
        shots = shots[:-1]


def _score_item(item: Item, prompt, lls: list[tuple[float, bool]], cfg: PromptConfig, tokenizer) -> dict:
    ll = [x[0] for x in lls]
    rec = dict(
        id=item.id,
        item_hash=item_hash(item),
        lang=item.lang,
        category=item.category,
        cluster=item.cluster,
        pair_id=item.meta.get("pair_id"),
        label=item.label,
        context=prompt.context,
        continuations=list(prompt.continuations),
        shot_ids=list(prompt.shot_ids),
        lls=ll,
        greedy=[x[1] for x in lls],
    )
    if cfg.style == "letters":
        pred, p_gold, probs = letter_choice(ll, item.label)
        rec.update(preds={"acc": pred}, p_gold=p_gold, probs=probs)
    else:
        ntok = [len(encode_pair(tokenizer, prompt.context, c)[1]) for c in prompt.continuations]
        rec.update(preds=cloze_predictions(ll, item.choices, ntok), n_tokens=ntok)
        z = np.exp(np.array(ll) - max(ll))
        rec["p_gold"] = float(z[item.label] / z.sum())
    rec["correct"] = {m: bool(p == item.label) for m, p in rec["preds"].items()}
    return rec


def summarize(records: Sequence[dict]) -> dict:
    """Per-metric analytic and clustered estimates (+ macro-F1 of the ``acc`` predictions).

    ``p_gold`` (the gold option's probability) is summarised when every record has it; generated
    answers (``generate`` style) have none. Their ``acc`` prediction is the option named, ``-1``
    when the generation names none (a class of its own in macro-F1).
    """
    if not records:
        raise EvalError("no records to summarise")
    clusters = [r.get("cluster") for r in records]
    out: dict = {"n": len(records), "metrics": {}}
    for m in records[0]["correct"]:
        x = [float(r["correct"][m]) for r in records]
        out["metrics"][m] = dict(analytic=mean_se(x).as_dict(), clustered=clustered_se(x, clusters).as_dict())
    if all("p_gold" in r for r in records):
        x = [float(r["p_gold"]) for r in records]
        out["metrics"]["p_gold"] = dict(
            analytic=mean_se(x).as_dict(), clustered=clustered_se(x, clusters).as_dict()
        )
    out["macro_f1"] = macro_f1([r["label"] for r in records], [r["preds"]["acc"] for r in records])
    return out


def _fit_generation(item: Item, template: str, cfg: PromptConfig, shots: list[Item], tokenizer, window: int):
    """Drop whole shots (last first) until the context leaves ``cfg.max_new_tokens`` of the window."""
    while True:
        prompt = build_prompt(item, template, cfg, shots, tokenizer)
        if not shots or len(tok_encode(tokenizer, prompt.context)) + cfg.max_new_tokens <= window:
            return prompt
        shots = shots[:-1]


def check_generation_items(items: Sequence[Item]) -> None:
    """Raise :class:`EvalDataError` for an item the ``generate`` style cannot score: one without a
    gold option (``label`` -1) or whose gold option's text is empty once normalised (prefix match
    against an empty text would accept any generation)."""
    for it in items:
        if not 0 <= it.label < len(it.choices):
            raise EvalDataError(
                f"item {it.id!r}: field 'label'={it.label!r} names no option; the generate style "
                f"scores multiple-choice items ({len(it.choices)} choices)"
            )
        gold = it.choices[it.label]
        if not normalize_answer(gold):
            raise EvalDataError(
                f"item {it.id!r}: gold option choices[{it.label}]={gold!r} is empty after "
                "normalisation (case, ASCII punctuation, whitespace); prefix match needs a gold text"
            )


def _generate_chunk(
    model, tokenizer, chunk: Sequence[Item], template: str, cfg: PromptConfig, pool, batch_size, window
) -> list[dict]:
    """Records of one chunk of items in the ``generate`` style: greedy answers, the option each names."""
    prompts = [
        _fit_generation(it, template, cfg, select_shots(it, pool, cfg), tokenizer, window) for it in chunk
    ]
    outs = generate_until(
        model,
        tokenizer,
        [p.context for p in prompts],
        until=cfg.until,
        max_new_tokens=cfg.max_new_tokens,
        batch_size=batch_size or 8,
        progress=False,
    )
    recs = []
    for it, p, out in zip(chunk, prompts, outs, strict=True):
        text = out[0]
        named = match_option(text, it.choices)
        recs.append(
            dict(
                id=it.id,
                item_hash=item_hash(it),
                lang=it.lang,
                category=it.category,
                cluster=it.cluster,
                pair_id=it.meta.get("pair_id"),
                label=it.label,
                context=p.context,
                options=list(it.choices),
                option_order=it.meta.get("option_order"),
                shot_ids=list(p.shot_ids),
                generation=text,
                matched=named,
                matched_text=None if named is None else it.choices[named],
                preds={"acc": -1 if named is None else named},
                correct={"acc": named == it.label, "exact_match": exact_match(text, it.choices[it.label])},
            )
        )
    return recs


def _score_chunk(
    model, tokenizer, chunk: Sequence[Item], template: str, cfg: PromptConfig, pool, batch_size, window
) -> list[dict]:
    """Records of one chunk of items: their prompts scored in one :func:`loglikelihood` call (or, in
    the ``generate`` style, answered in one :func:`generate_until` call)."""
    if cfg.style == "generate":
        return _generate_chunk(model, tokenizer, chunk, template, cfg, pool, batch_size, window)
    prompts = [_fit_shots(it, template, cfg, select_shots(it, pool, cfg), tokenizer, window) for it in chunk]
    reqs = [(p.context, c) for p in prompts for c in p.continuations]
    lls = loglikelihood(model, tokenizer, reqs, batch_size=batch_size, max_length=window, progress=False)
    recs, k = [], 0
    for it, p in zip(chunk, prompts, strict=True):
        n = len(p.continuations)
        recs.append(_score_item(it, p, lls[k : k + n], cfg, tokenizer))
        k += n
    return recs


def prompt_tokens(
    items: Sequence[Item],
    tokenizer,
    *,
    template: str = "generic",
    prompt: PromptConfig | None = None,
    fewshot_pool: Sequence[Item] = (),
    max_length: int = 2048,
) -> list[int]:
    """Tokens the model handles to score each item, a measure of its cost.

    The prompt is built as :func:`evaluate` builds it (few-shot examples, dropped from the last
    while it does not fit ``max_length`` tokens); the count is its context's tokens plus each
    continuation's (the log-likelihood styles), or plus ``prompt.max_new_tokens`` (``generate``).
    Under torchrun :func:`evaluate` deals the chunks of items to the ranks by these counts.
    """
    cfg = prompt or PromptConfig()
    counts = []
    for it in items:
        shots = select_shots(it, fewshot_pool, cfg)
        if cfg.style == "generate":
            p = _fit_generation(it, template, cfg, shots, tokenizer, max_length)
            counts.append(len(tok_encode(tokenizer, p.context)) + cfg.max_new_tokens)
            continue
        p = _fit_shots(it, template, cfg, shots, tokenizer, max_length)
        conts = sum(len(tok_encode(tokenizer, c, add_special_tokens=False)) for c in p.continuations)
        counts.append(len(tok_encode(tokenizer, p.context)) + conts)
    return counts


def _non_finite(bad: Sequence[str]) -> NonFiniteScoreError:
    return NonFiniteScoreError(
        f"the model gave NaN/inf log-likelihoods for {len(bad)} item(s) ({', '.join(bad[:5])}); "
        "they were not cached. Check the weights and dtype (float16 overflows on CPU), then rerun"
    )


def evaluate(
    model,
    tokenizer,
    items: Sequence[Item],
    *,
    template: str = "generic",
    prompt: PromptConfig | None = None,
    fewshot_pool: Sequence[Item] = (),
    store: ResultStore | None = None,
    batch_size: int | None = None,
    chunk_size: int = 32,
    progress: bool = True,
    max_length: int | None = None,
    distributed: bool | None = None,
) -> tuple[list[dict], int]:
    """Score ``items``; records already in ``store`` (same item content) are reused, not rescored.

    Items are scored ``chunk_size`` at a time, and each chunk is saved to ``store`` when it is done.
    Under ``torchrun`` (``distributed=None``: whenever a process group of several ranks is running;
    ``False``: never) the chunks are spread over the ranks, and every rank must call this with the
    same arguments; only rank 0's ``store`` is used (pass ``None`` on the others). Every rank gets
    all the records back.

    In the ``generate`` style (``prompt.style``) each record holds the generated text
    (``generation``), the option it names (``matched``, an index into the record's ``options``, as
    shown, i.e. shuffled; ``None`` if none) and ``correct["acc"]`` (named option is the gold one) and
    ``correct["exact_match"]`` (the normalised generation *is* the gold text); ``batch_size`` is
    then the number of prompts per ``generate`` call (default 8).

    Returns ``(records in item order, number of items scored now)`` (summed over the ranks).

    Raises
    ------
    NonFiniteScoreError
        If the model gives NaN/inf log-likelihoods for some items (named). The finite records
        are stored; the others never are, so a rerun with a repaired model scores them afresh.
    EvalDataError
        In the ``generate`` style, before anything is generated: an item without a gold option or
        with an empty gold text (:func:`check_generation_items`).
    """
    cfg = prompt or PromptConfig()
    if not items:
        raise EvalError("no items to evaluate")
    if cfg.style == "generate":
        check_generation_items(items)
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise EvalError(f"chunk_size must be a positive int, got {chunk_size!r}")
    window = max_length or model_max_length(model, tokenizer)
    if cfg.style == "generate" and cfg.max_new_tokens >= window:
        raise EvalError(
            f"PromptConfig.max_new_tokens={cfg.max_new_tokens} leaves no room for the prompt in the "
            f"model's {window}-token window"
        )
    args = (template, cfg, fewshot_pool, batch_size, window)
    if distributed is not False and dist.is_distributed():
        return _evaluate_ranks(model, tokenizer, items, args, store, chunk_size, progress)
    done = {it.id: store.done(it) for it in items} if store is not None else {}
    todo = [it for it in items if not done.get(it.id)]
    new: dict[str, dict] = {}
    with tqdm(total=len(items), initial=len(items) - len(todo), desc="items", disable=not progress) as bar:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            recs = _score_chunk(model, tokenizer, chunk, *args)
            bad = [r["id"] for r in recs if not is_finite_record(r)]
            if store is not None:
                store.add([r for r in recs if is_finite_record(r)])
            if bad:
                raise _non_finite(bad)
            new.update({r["id"]: r for r in recs})
            bar.update(len(chunk))
    if store is not None:  # a run resumed from one over ranks: its records in item order
        store.order_as([it.id for it in items])
    records = [done.get(it.id) or new[it.id] for it in items]
    return records, len(todo)


def _evaluate_ranks(
    model, tokenizer, items: Sequence[Item], args: tuple, store: ResultStore | None, chunk_size: int, progress
) -> tuple[list[dict], int]:
    """:func:`evaluate` over the ranks of a running process group (see the module docstring).

    The items still to score are cut into the chunks one process scores, and the ranks count their
    tokens (:func:`prompt_tokens`, each rank a share, gathered) and deal them out by that count
    (:func:`labkit.distributed.deal_by_cost`, the same on every rank): in round ``k`` every rank
    scores one chunk of the ``k``-th ``world_size`` largest, so that the ranks of a round wait
    little for each other, the larger ones going to the ranks with fewer tokens so far. Rank 0
    saves its own records at once and the others' after the round's ``all_gather_object``; a
    barrier then keeps every rank from scoring on until they are on disk, so a rank killed later
    loses at most its current chunk. At the end rank 0 puts ``items.jsonl`` in item order, the
    order one process writes. A rank that fails sends its error instead of records, so that every
    rank stops after the round rather than wait.
    """
    r, ws = dist.rank(), dist.world_size()
    dist.check_world_size(len(items), "items")
    store = store if r == 0 else None
    known: dict[str, dict] = {}
    if r == 0 and store is not None:
        known = {it.id: rec for it in items if (rec := store.done(it)) is not None}
    done: dict[str, dict] = dist.broadcast_object(known)
    todo = [it for it in items if it.id not in done]
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]
    template, cfg, pool, _, window = args

    def chunk_tokens(c: int) -> int:
        return sum(
            prompt_tokens(
                chunks[c], tokenizer, template=template, prompt=cfg, fewshot_pool=pool, max_length=window
            )
        )

    # each rank counts a share of the chunks; all then deal out the same gathered counts
    costs = dist.map_over_ranks(chunk_tokens, range(len(chunks)), what="token counts")
    shares = dist.deal_by_cost(list(costs.values()), ws)
    mine = shares[r]
    new: dict[str, dict] = {}
    with tqdm(
        total=len(items), initial=len(done), desc=f"items ({ws} ranks)", disable=not progress or r != 0
    ) as bar:
        for rnd in range(max(map(len, shares))):
            payload: dict = {"records": [], "bad": [], "error": None}
            own_error = None
            if rnd < len(mine):
                try:
                    recs = _score_chunk(model, tokenizer, chunks[mine[rnd]], *args)
                except Exception as err:  # sent to every rank, so that none waits for this one
                    own_error = err
                    payload["error"] = f"{type(err).__name__}: {err}"
                else:
                    payload["records"] = [x for x in recs if is_finite_record(x)]
                    payload["bad"] = [x["id"] for x in recs if not is_finite_record(x)]
            if store is not None and payload["records"]:
                store.add(payload["records"])  # rank 0's chunk is on disk before it waits for the others
            gathered = dist.all_gather_object(payload)
            others = [x for k, p in enumerate(gathered) if k != r for x in p["records"]]
            if store is not None and others:
                store.add(others)
            dist.barrier()  # no rank scores on before this round's records are on disk
            for p in gathered:
                new.update({x["id"]: x for x in p["records"]})
            if own_error is not None:
                raise own_error
            failed = [(k, p["error"]) for k, p in enumerate(gathered) if p["error"]]
            if failed:
                k, msg = failed[0]
                raise EvalError(f"rank {k} failed while scoring its items ({msg}); the other ranks stopped")
            bad = [b for p in gathered for b in p["bad"]]
            if bad:
                raise _non_finite(bad)
            bar.update(sum(len(p["records"]) for p in gathered))
    if store is not None:
        store.order_as([it.id for it in items])
    records = [done.get(it.id) or new[it.id] for it in items]
    return records, len(todo)


def run_task(
    model,
    tokenizer,
    task: str,
    *,
    model_id: str,
    lang: str | None = None,
    prompt: PromptConfig | None = None,
    max_items: int | None = None,
    path: str | Path | None = None,
    fewshot_path: str | Path | None = None,
    use_datasets: bool = False,
    cache: bool | str | Path = True,
    batch_size: int | None = None,
    progress: bool = True,
    dtype: str | None = None,
    overrides: Mapping[str, object] | None = None,
    chunk_size: int = 32,
) -> TaskResult:
    """Load a registered task and evaluate it, resuming from (and writing to) the results cache.

    The registry decides the protocol (:func:`resolve_protocol`): shots, sampler, subject header,
    option shuffling, style and subset. ``prompt`` or ``overrides`` change it, and the run's metadata
    (``meta["overrides"]``, also in ``meta.json`` and the summary) records every field that differs.

    Parameters
    ----------
    model_id:
        Name of the model in the results folder's path and summary (e.g. ``"smollm2-135m"``). The
        cache key holds the weights' fingerprint (:func:`labkit.models.weights_fingerprint`) as well,
        so new weights under an old name or path never reuse old results.
    cache:
        ``True`` → ``$LABKIT_CACHE/evals``; a path → that root; ``False`` → nothing on disk. The run
        folder is locked while this runs: a concurrent run of the same key waits, then reuses.
    chunk_size:
        Items scored (and saved) per step; also the unit of work spread over ranks.

    Under ``torchrun`` (``WORLD_SIZE > 1``; the process group is started here if the caller has not,
    see :func:`labkit.distributed.init`) every rank calls this with the same arguments. The ranks
    first check that they agree on the configuration (model weights, task, prompt, items, results
    folder, chunk size) and that there are no more ranks than items, raising
    :class:`labkit.distributed.DistributedConfigError` before anything is written. Rank 0 holds the
    folder's lock and writes it; ``meta.json`` records ``"world_size"`` (1 in a single process).
    """
    from ..models import weights_fingerprint

    info = dist.init(str(next(model.parameters()).device))

    spec = get_task(task.split(":", 1)[0])
    cfg, subsets, deviations = resolve_protocol(task, prompt, overrides)
    t0 = time.perf_counter()
    items = load_task(
        task, path=path, lang=lang, max_items=max_items, use_datasets=use_datasets, subsets=subsets
    )
    pool = load_fewshot(task, path=fewshot_path, lang=lang, use_datasets=use_datasets) if cfg.shots else []
    check_shots(task, cfg, items, pool)
    if cfg.style == "generate":  # before anything is written
        check_generation_items(items)
    if cfg.shuffle_options:
        items = [shuffle_options(it, cfg.seed) for it in items]
    if dtype is None:
        dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    meta = dict(
        model_id=model_id,
        weights=weights_fingerprint(model),
        dtype=dtype,
        task=task,
        lang=lang,
        prompt=cfg.as_dict(),
        subsets=list(subsets) if subsets else None,
        max_items=max_items,
        source=str(path) if path else ("datasets" if use_datasets else "package"),
    )
    key = run_key(**meta)
    meta["overrides"] = deviations
    folder = None
    if cache is not False:
        root = None if cache is True else cache
        folder = results_dir(model_id, task, lang, key, root)
    ws = dist.world_size()
    if ws > 1:  # before anything is written: the same run everywhere, and enough items for every rank
        dist.check_same_config(
            dict(
                meta,
                items=dist.config_hash({"ids": [item_hash(it) for it in items]}),
                n_items=len(items),
                fewshot=[item_hash(it) for it in pool],
                folder=str(folder.resolve()) if folder is not None else None,
                chunk_size=chunk_size,
                batch_size=batch_size,
            ),
            what="evaluation",
        )
        dist.check_world_size(len(items), "items")
    meta["world_size"] = ws
    writer = folder is not None and info.rank == 0
    lock = ResultStore.locked(folder) if writer else contextlib.nullcontext()
    with lock:
        store = ResultStore(folder, meta) if writer else None
        if store is not None:
            _update_meta(store, meta)
        records, scored = evaluate(
            model,
            tokenizer,
            items,
            template=spec.template,
            prompt=cfg,
            fewshot_pool=pool,
            store=store,
            batch_size=batch_size,
            chunk_size=chunk_size,
            progress=progress and info.rank == 0,
        )
        summary = dict(
            task=task,
            lang=lang,
            model_id=model_id,
            prompt=cfg.as_dict(),
            subsets=meta["subsets"],
            overrides=deviations,
            **summarize(records),
        )
        if store is not None:
            store.write_summary(summary)
    return TaskResult(
        task, lang, model_id, cfg, records, summary, folder, scored, time.perf_counter() - t0, meta
    )


def _update_meta(store: ResultStore, meta: dict) -> None:
    """Rewrite ``meta.json`` (atomically) when this run's metadata differs, e.g. in ``world_size``."""
    text = json.dumps(meta, ensure_ascii=False, indent=1, default=str)
    try:
        same = store.meta_path.read_text(encoding="utf-8") == text
    except OSError:
        same = False
    if not same:
        atomic_write_text(store.meta_path, text)


def evaluate_generation(
    model,
    tokenizer,
    items: Sequence[Item],
    *,
    prompt: PromptConfig | None = None,
    fewshot_pool: Sequence[Item] = (),
    until: Sequence[str] = ("\n",),
    max_new_tokens: int = 16,
    num_samples: int = 1,
    temperature: float = 0.0,
    seed: int = 1234,
    store: ResultStore | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Generative scoring against ``item.answer``: exact match, prefix match (HCX) and maj@k.

    The prompt is the cloze context (question, then the answer cue); shots end with their gold
    ``answer``. With ``num_samples > 1`` (and ``temperature > 0``) ``maj@k`` votes over the samples and
    the first sample is the one scored by exact/prefix match. Returns ``(records, summary)``.
    """
    from .lm import generate_until
    from .scoring import exact_match, maj_at_k, prefix_match

    cfg = prompt or PromptConfig(style="cloze")
    if cfg.style != "cloze":
        raise EvalError("generative scoring uses the cloze prompt (PromptConfig(style='cloze'))")
    missing = [it.id for it in items if not it.answer]
    if missing:
        raise EvalError(f"items without a gold 'answer' cannot be scored generatively: {missing[:5]}")
    done = {it.id: store.done(it) for it in items} if store is not None else {}
    todo = [it for it in items if not done.get(it.id)]
    recs: dict[str, dict] = {}
    if todo:
        contexts = []
        for it in todo:
            shots = select_shots(it, [s for s in fewshot_pool if s.answer], cfg)
            parts = [
                f"{build_prompt(s, 'generic', cfg).context}{cfg.target_delimiter}{s.answer}" for s in shots
            ]
            contexts.append(cfg.fewshot_delimiter.join([*parts, build_prompt(it, "generic", cfg).context]))
        outs = generate_until(
            model,
            tokenizer,
            contexts,
            until=until,
            max_new_tokens=max_new_tokens,
            num_samples=num_samples,
            temperature=temperature,
            seed=seed,
            progress=progress,
        )
        new = []
        for it, ctx, samples in zip(todo, contexts, outs, strict=True):
            first = samples[0]
            rec = dict(
                id=it.id,
                item_hash=item_hash(it),
                lang=it.lang,
                category=it.category,
                cluster=it.cluster,
                pair_id=it.meta.get("pair_id"),
                context=ctx,
                samples=samples,
                answer=it.answer,
                correct={
                    "exact_match": exact_match(first, it.answer),
                    "prefix_match": prefix_match(first.strip(), it.answer),
                    f"maj@{num_samples}": maj_at_k(samples, it.answer),
                },
            )
            new.append(rec)
        if store is not None:
            store.add(new)
        recs = {r["id"]: r for r in new}
    records = [done.get(it.id) or recs[it.id] for it in items]
    clusters = [r.get("cluster") for r in records]
    summary = {"n": len(records), "metrics": {}}
    for m in records[0]["correct"]:
        x = [float(r["correct"][m]) for r in records]
        summary["metrics"][m] = dict(
            analytic=mean_se(x).as_dict(), clustered=clustered_se(x, clusters).as_dict()
        )
    return records, summary
