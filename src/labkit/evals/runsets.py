"""Sets of runs the Part II chapters analyse: run them, pool them, restrict them to shared pairs.

* :func:`koen_runs`: the book's parallel set for each ``(style, lang)`` (run, or read from the cache);
* :func:`public_runs`: the profile's public benchmarks, each with its registry protocol;
* :func:`task_runs`: one registered task with its registry protocol, once per language (e.g. two
  models compared on the same items);
* :func:`pool`: one result holding the records of several (the Korean and English runs of a system);
* :func:`paired_runs`: runs restricted to the pairs present in both languages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import Profile
from .errors import EvalError
from .prompts import PromptConfig
from .runner import TaskResult, run_task, summarize
from .tasks import get_task, has_package_data

__all__ = ["koen_runs", "paired_runs", "pool", "public_runs", "task_runs"]


def _pair_id(r: Mapping[str, Any]) -> str:
    """An item's pair id: its ``pair_id`` field, else its id without the ``-ko``/``-en`` suffix."""
    return r.get("pair_id") or r["id"].rsplit("-", 1)[0]


def _subset(res: TaskResult, keep: set[str], name: str) -> TaskResult:
    """``res`` restricted to the pairs in ``keep``, re-summarised, under the task name ``name``."""

    recs = [r for r in res.records if _pair_id(r) in keep]
    if not recs:
        raise EvalError(f"{res.task} ({res.lang}): no record left in the paired subset")
    return TaskResult(name, res.lang, res.model_id, res.prompt, recs, dict(summarize(recs)), meta=res.meta)


def paired_runs(runs: Mapping[tuple[str, str], TaskResult]) -> dict[tuple[str, str], TaskResult]:
    """The ``(style, lang)`` runs restricted to the pairs present in *both* languages of each style.

    A Korean run includes the Korean-only culture items; comparing its accuracy with the English
    run's would compare different questions. The returned results hold the same pairs in ``ko`` and
    ``en`` (re-summarised), so any difference is a difference between languages on one item set.
    """
    out = {}
    for style in {st for st, _ in runs}:
        if (style, "ko") not in runs or (style, "en") not in runs:
            raise EvalError(f"paired_runs needs both languages of style {style!r}")
        ko, en = runs[(style, "ko")], runs[(style, "en")]
        keep = {_pair_id(r) for r in ko.records} & {_pair_id(r) for r in en.records}
        if not keep:
            raise EvalError(f"style {style!r}: no item is present in both languages")
        for lang, res in (("ko", ko), ("en", en)):
            out[(style, lang)] = _subset(res, keep, f"{res.task} (paired)")
    return out


def koen_runs(
    model: Any,
    tokenizer: Any,
    profile: Profile,
    *,
    model_id: str | None = None,
    styles: Sequence[str] = ("cloze", "letters"),
    langs: Sequence[str] = ("ko", "en"),
    chat: bool = False,
    progress: bool = False,
) -> dict[tuple[str, str], TaskResult]:
    """Run (or read from the cache) the book's parallel set for each ``(style, lang)``.

    Sizes come from ``profile.evals`` (``max_items`` per language, ``shots``, ``batch_size``).
    """
    out = {}
    for style in styles:
        for lang in langs:
            cfg = PromptConfig(style=style, shots=profile.evals.shots, chat=chat)
            out[(style, lang)] = run_task(
                model,
                tokenizer,
                "koen_parallel",
                model_id=model_id or profile.evals.model,
                lang=lang,
                prompt=cfg,
                max_items=profile.evals.max_items,
                batch_size=profile.evals.batch_size,
                progress=progress,
            )
    return out


def pool(results: Sequence[TaskResult], name: str = "pooled") -> TaskResult:
    """One result holding the records of several (e.g. the Korean and English runs of one system)."""
    if not results:
        raise EvalError("pool needs at least one result")
    recs = [r for res in results for r in res.records]
    ids = [r["id"] for r in recs]
    if len(set(ids)) != len(ids):
        raise EvalError("pooled results share item ids")
    first = results[0]
    return TaskResult(name, None, first.model_id, first.prompt, recs, dict(summarize(recs)))


def public_runs(
    model: Any,
    tokenizer: Any,
    profile: Profile,
    *,
    paths: Mapping[str, str | Path] | None = None,
    fewshot_paths: Mapping[str, str | Path] | None = None,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
    progress: bool = False,
) -> dict[str, TaskResult]:
    """Run ``profile.evals.public_tasks``, each with its registry protocol (style, shots, sampler,
    subject header, shuffling, subset), unless ``overrides[task]`` changes it (recorded in the run).

    Data come from ``datasets`` when ``profile.evals.use_datasets`` (workstation), or from local JSONL
    files in ``paths`` (task → file) and ``fewshot_paths``; tasks with neither are skipped. Empty in
    the smoke/cpu profiles.
    """
    out = {}
    for task in profile.evals.public_tasks:
        path = (paths or {}).get(task)
        if path is None and not profile.evals.use_datasets:
            continue
        out[task] = run_task(
            model,
            tokenizer,
            task,
            model_id=profile.evals.model,
            overrides=(overrides or {}).get(task),
            max_items=profile.evals.public_max_items,
            path=path,
            fewshot_path=(fewshot_paths or {}).get(task),
            use_datasets=path is None,
            batch_size=profile.evals.batch_size,
            progress=progress,
        )
    return out


def task_runs(
    model: Any,
    tokenizer: Any,
    task: str,
    *,
    model_id: str,
    langs: Sequence[str] | None = None,
    max_items: int | None = None,
    use_datasets: bool | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> dict[str, TaskResult]:
    """Run (or read from the cache) ``task`` with its registry protocol, once per language.

    Parameters
    ----------
    model, tokenizer, model_id:
        Any causal LM in memory (a converted model too) and the name its results are filed under;
        the cache key also holds the weights' fingerprint (:func:`~labkit.evals.runner.run_task`).
    task:
        Registry name, ``task`` or ``task:config`` (e.g. ``"koen_parallel"``, ``"mmlu"``).
    langs:
        Languages to run; default the task's own (``ko`` and ``en`` for the book's parallel set,
        ``en`` for MMLU).
    max_items:
        Items per language (``None`` = all). For the parallel set these are pairs: both languages
        hold the same questions.
    use_datasets:
        Load through ``datasets``; default: when the task has no copy in the package (public
        benchmarks), read from the local ``datasets`` cache unless ``LABKIT_OFFLINE=0``, else
        :class:`~labkit.evals.errors.OfflineDatasetError`.

    Returns ``{lang: TaskResult}`` in the order of ``langs``.
    """
    name = task.split(":", 1)[0]
    spec = get_task(name)
    langs = tuple(langs) if langs is not None else tuple(spec.lang.split("+"))
    if not langs:
        raise EvalError(f"task_runs({task!r}): langs is empty")
    if use_datasets is None:
        use_datasets = not has_package_data(name)
    return {
        lang: run_task(
            model,
            tokenizer,
            task,
            model_id=model_id,
            lang=lang,
            max_items=max_items,
            use_datasets=use_datasets,
            batch_size=batch_size,
            progress=progress,
        )
        for lang in langs
    }
