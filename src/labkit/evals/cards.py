"""HCX-style results cards: category means, Overall, n and CIs; task groups; model-card comparison.

* :func:`category_scores` / :func:`results_card`: per-category and per-benchmark scores, the
  unweighted Overall, each with n, clusters and a cluster-robust interval;
* :func:`write_card` / :func:`card_folder`: the card as JSON and CSV, and where it goes;
* :func:`group_score`: a task group's score with its stated aggregation;
* :func:`public_comparison`: our score per benchmark family beside a model card's, with why the two
  are not like for like.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..paths import atomic_write_text, cache_dir
from .errors import EvalError
from .runner import TaskResult
from .stats import Estimate, clustered_se, combine_means
from .tasks import GROUPS, get_group

__all__ = [
    "CARD_FAMILIES",
    "CARD_PROTOCOL",
    "card_folder",
    "category_scores",
    "group_score",
    "public_comparison",
    "results_card",
    "write_card",
]


def category_scores(res: TaskResult, metric: str = "acc") -> dict[str, Estimate]:
    """Per-category estimate (CR1 clustered SE, so passages and translations are not over-counted)."""
    cats: dict[str, list[int]] = {}
    for i, r in enumerate(res.records):
        cats.setdefault(r.get("category") or "all", []).append(i)
    x = res.correct(metric)
    cl = res.clusters()
    return {c: clustered_se(x[idx], [cl[i] for i in idx]) for c, idx in sorted(cats.items())}


def _cells(res: TaskResult, metric: str, weight: float) -> list[tuple[np.ndarray, list, float]]:
    cats: dict[str, list[int]] = {}
    for i, r in enumerate(res.records):
        cats.setdefault(r.get("category") or "all", []).append(i)
    x = res.correct(metric)
    cl = res.clusters()
    return [(x[idx], [cl[i] for i in idx], weight / len(cats)) for _, idx in sorted(cats.items())]


def results_card(
    results: Mapping[str, TaskResult], metric: str = "acc", *, model_id: str, extra: Mapping | None = None
) -> dict:
    """HCX-style card: per-benchmark category scores, category means, Overall (unweighted), n and CIs.

    ``results`` maps a benchmark label (e.g. ``"koen-ko"``) to its result; each result's items'
    ``category`` values become that benchmark's sub-scores, and the benchmark score is the unweighted
    mean of its categories (HCX averages benchmarks, never pools items). Benchmark and Overall SEs are
    cluster-robust over the items of all benchmarks together (:func:`~labkit.evals.stats.combine_means`),
    so a Korean item and its English twin (one cluster) count once and their covariance enters
    Overall's SE. Each row gives ``n`` (items) and ``clusters`` (independent units) and the shots used.
    """
    rows = []
    all_cells = []

    def row(bench: str, cat: str, e: Estimate, shots: int | str) -> dict[str, Any]:
        # accuracies live in [0, 1]: clip the interval there
        lo, hi = max(0.0, e.ci[0]), min(1.0, e.ci[1])
        return dict(
            benchmark=bench,
            category=cat,
            score=e.value,
            se=e.se,
            ci_lo=lo,
            ci_hi=hi,
            n=e.n,
            clusters=e.n_clusters,
            shots=shots,
        )

    for bench, res in results.items():
        cats = category_scores(res, metric)
        rows += [row(bench, c, e, res.prompt.shots) for c, e in cats.items()]
        cells = _cells(res, metric, 1.0)
        rows.append(row(bench, "(mean of categories)", combine_means(cells), res.prompt.shots))
        all_cells += [(x, c, a / len(results)) for x, c, a in cells]
    overall = combine_means(all_cells)
    shots = sorted({res.prompt.shots for res in results.values()})
    rows.append(row("Overall", "(mean of benchmarks)", overall, "/".join(map(str, shots))))
    return dict(model=model_id, metric=metric, rows=rows, overall=overall.as_dict(), **(extra or {}))


def write_card(card: Mapping, folder: str | Path, stem: str = "results_card") -> tuple[Path, Path]:
    """Write ``card`` as ``<stem>.json`` and its rows as ``<stem>.csv`` (both atomically)."""
    folder = Path(folder)
    jpath = atomic_write_text(
        folder / f"{stem}.json", json.dumps(card, ensure_ascii=False, indent=1, default=str)
    )
    buf = io.StringIO()
    rows = card["rows"]
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    cpath = atomic_write_text(folder / f"{stem}.csv", buf.getvalue())
    return jpath, cpath


def card_folder() -> Path:
    """Where the results card goes: ``$LABKIT_RESULTS_DIR``, else ``_build/results`` next to the book's
    ``_config.yml`` (searched upwards from the working directory), else ``$LABKIT_CACHE/evals/cards``."""

    env = os.environ.get("LABKIT_RESULTS_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_config.yml").is_file() and (d / "_toc.yml").is_file():
            return d / "_build" / "results"
    return cache_dir() / "evals" / "cards"


def group_score(results: Mapping[str, TaskResult], group: str, metric: str = "acc") -> dict:
    """A task group's score from its members' results, with the group's stated aggregation.

    ``micro`` weighs every item equally (lm-eval's ``weight_by_size: true``), ``macro`` every member
    task. The SE is cluster-robust over all member items (:func:`~labkit.evals.stats.combine_means`).
    Members without a result are listed in ``missing`` (the score then covers only those run).

    Raises
    ------
    UnknownGroupError
        ``group`` is not a known group.
    EvalError
        No member of the group has a result.
    """

    g = get_group(group)
    have = [m for m in g.members if m in results]
    if not have:
        raise EvalError(f"group {group!r}: none of its {len(g.members)} members has a result")
    sizes = {m: len(results[m].records) for m in have}
    total = sum(sizes.values())
    cells = []
    for m in have:
        res = results[m]
        a = sizes[m] / total if g.aggregation == "micro" else 1 / len(have)
        cells.append((res.correct(metric), res.clusters(), a))
    est = combine_means(cells)
    return dict(
        group=group,
        aggregation=g.aggregation,
        reference=g.reference,
        estimate=est,
        members_run=have,
        missing=[m for m in g.members if m not in results],
        sizes=sizes,
    )


#: How the HyperCLOVAX-SEED model cards say their numbers were obtained (harness and prompts unstated).
CARD_PROTOCOL = dict(shots=5, metric="acc", items="full benchmark", harness="not stated")

#: Which group (or single task) stands for each card column.
CARD_FAMILIES = {"kmmlu": "kmmlu", "haerae": "haerae", "kobest": "kobest", "click": "click"}


def public_comparison(
    results: Mapping[str, TaskResult],
    published: Mapping[str, float] | None,
    card: Mapping[str, object] = CARD_PROTOCOL,
) -> list[dict]:
    """Our score per benchmark family beside a model card's, saying per row why it is not like for like.

    Families are task groups (:data:`labkit.evals.tasks.GROUPS`, micro-averaged as lm-eval's) or a
    single task (``click``). ``why_not`` lists every known difference from the card's protocol
    (``card``): shots, members not run (e.g. 3 of KMMLU's 45 subjects), item caps, subsets, and the
    card's unstated harness. ``like_for_like`` is true only when that list is empty.
    """

    rows = []
    for fam, key in CARD_FAMILIES.items():
        if key in GROUPS:
            members = [t for t in results if t in GROUPS[key].members or t == key]
            if not members:
                continue
            if key in results:
                gs = None
                est = results[key].estimate("acc", clustered=True)
                used = [key]
            else:
                gs = group_score(results, key)
                est, used = gs["estimate"], gs["members_run"]
        elif key in results:
            gs, est, used = None, results[key].estimate("acc", clustered=True), [key]
        else:
            continue
        why = []
        shots = sorted({results[t].prompt.shots for t in used})
        if shots != [card["shots"]]:
            why.append(f"shots {'/'.join(map(str, shots))} here vs {card['shots']} on the card")
        if gs is not None and gs["missing"]:
            why.append(f"{len(used)} of {len(GROUPS[key].members)} members run")
        capped = [
            t
            for t in used
            if results[t].meta.get("max_items") is not None
            and len(results[t].records) >= int(results[t].meta["max_items"])
        ]
        if capped:
            why.append(
                f"capped at {results[capped[0]].meta['max_items']} items per task ({len(capped)} task(s))"
            )
        subs = {tuple(results[t].meta.get("subsets") or ()) for t in used} - {()}
        if subs:
            why.append(f"subset {', '.join(next(iter(subs)))} (the card's subset is not stated)")
        if card.get("harness") == "not stated":
            why.append("the card does not state its harness or prompts")
        rows.append(
            dict(
                benchmark=fam,
                ours=est.value,
                se=est.se,
                n=est.n,
                aggregation=gs["aggregation"] if gs else "single task",
                shots="/".join(map(str, shots)),
                published=(published or {}).get(fam),
                like_for_like=not why,
                why_not="; ".join(why),
            )
        )
    return rows
