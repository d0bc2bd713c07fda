"""Analyses the Part II chapters run on finished :class:`~labkit.evals.runner.TaskResult` objects.

* :func:`scoring_table`: the same items under every scoring rule, per language;
* :func:`crosslingual`: agreement between a model's Korean and English answers to the same item, and
  the paired language gap with a CI;
* :func:`se_comparison`: analytic vs Wilson vs bootstrap vs clustered uncertainty of one score;
* :func:`compare_models`: paired test of two systems on the same items (McNemar, paired bootstrap,
  permutation) plus power;
* :func:`category_scores` / :func:`results_card`: HCX-style category means, Overall, n and CIs, written
  as JSON and CSV;
* :func:`comparison_systems`: which two systems the statistics chapter compares (Part I's converted
  MoE vs its dense parent when the chapter found Part I's cached conversion, else two prompting
  variants).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import atomic_write_text
from .errors import EvalError
from .runner import TaskResult
from .stats import (
    Estimate,
    bootstrap,
    clustered_se,
    combine_means,
    mcnemar,
    mde,
    mean_se,
    n_required,
    paired_bootstrap,
    paired_difference,
    permutation_test,
    wilson_ci,
)

__all__ = [
    "ComparisonPlan",
    "category_scores",
    "compare_models",
    "group_score",
    "letter_histogram",
    "paired_runs",
    "rule_disagreement",
    "card_folder",
    "comparison_systems",
    "pool",
    "public_comparison",
    "public_runs",
    "crosslingual",
    "results_card",
    "scoring_table",
    "se_comparison",
    "write_card",
]


def scoring_table(results: Mapping[tuple[str, str], TaskResult]) -> list[dict]:
    """Rows ``(lang, rule, accuracy, se, n)`` for results keyed by ``(style, lang)``.

    Cloze results contribute ``acc``, ``acc_norm``, ``acc_bytes`` and ``acc_token``; letter results
    contribute ``letters`` (HCX-style).
    """
    rows = []
    for (style, lang), res in results.items():
        metrics = ["acc"] if style == "letters" else ["acc", "acc_norm", "acc_bytes", "acc_token"]
        for m in metrics:
            est = res.estimate(m)
            rule = "letters (HCX)" if style == "letters" else f"cloze {m}"
            rows.append(dict(lang=lang, rule=rule, acc=est.value, se=est.se, n=est.n))
    return rows


def rule_disagreement(res: TaskResult, a: str, b: str) -> float:
    """Fraction of items on which scoring rules ``a`` and ``b`` pick different options."""
    return float(np.mean([r["preds"][a] != r["preds"][b] for r in res.records]))


def letter_histogram(res: TaskResult) -> dict[str, int]:
    """How often each option position was predicted (position bias), and the gold positions."""
    labels = "ABCDEFGHIJ"
    pred = {labels[i]: 0 for i in range(len(res.records[0]["lls"]))}
    gold = dict(pred)
    for r in res.records:
        pred[labels[r["preds"]["acc"]]] += 1
        gold[labels[r["label"]]] += 1
    return {"pred": pred, "gold": gold}


def _pair_id(r: dict) -> str:
    return r.get("pair_id") or r["id"].rsplit("-", 1)[0]


def _by_pair(res: TaskResult, metric: str) -> dict[str, tuple[int, bool, str]]:
    out = {}
    for r in res.records:
        pid = _pair_id(r)
        out[pid] = (int(r["preds"][metric]), bool(r["correct"][metric]), r.get("cluster") or pid)
    return out


def _subset(res: TaskResult, keep: set[str], name: str) -> TaskResult:
    from .runner import summarize

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


def crosslingual(res_ko: TaskResult, res_en: TaskResult, metric: str = "acc") -> dict:
    """Consistency of one model's answers to the Korean and English versions of the same items.

    Items are matched by pair id (the item id without its ``-ko``/``-en`` suffix); Korean-only items
    are left out. Returns the number of pairs, the answer agreement rate (same option chosen), the
    both-correct rate, the accuracies on the matched pairs, and the paired language gap
    ``acc_en − acc_ko`` with a CR1 SE clustered by passage (pairs on one reading passage are one
    cluster; t interval on G − 1 d.o.f.), plus McNemar's exact test (which treats pairs as independent).
    """
    ko, en = _by_pair(res_ko, metric), _by_pair(res_en, metric)
    pairs = sorted(set(ko) & set(en))
    if not pairs:
        raise EvalError("no item is present in both languages")
    same = np.array([ko[p][0] == en[p][0] for p in pairs], float)
    pk = np.bincount([ko[p][0] for p in pairs], minlength=10) / len(pairs)
    pe_ = np.bincount([en[p][0] for p in pairs], minlength=10) / len(pairs)
    expected = float((pk * pe_).sum())  # agreement expected from the two answer distributions alone
    kappa = (float(same.mean()) - expected) / (1 - expected) if expected < 1 else float("nan")
    ck = np.array([ko[p][1] for p in pairs], float)
    ce = np.array([en[p][1] for p in pairs], float)
    clusters = [en[p][2] for p in pairs]  # the passage for reading pairs, else the pair itself
    gap = paired_difference(ce, ck, clusters)
    mc = mcnemar(ce.astype(bool), ck.astype(bool))
    return dict(
        pairs=len(pairs),
        agreement=mean_se(same),
        expected_agreement=expected,
        kappa=kappa,
        both_correct=float((ck * ce).mean()),
        acc_ko=mean_se(ck),
        acc_en=mean_se(ce),
        gap_en_minus_ko=gap,
        mcnemar=mc,
        pair_ids=pairs,
    )


def se_comparison(res: TaskResult, metric: str = "acc", *, B: int = 2000, seed: int = 0) -> list[dict]:
    """The same score with analytic, Wilson, item-bootstrap, clustered (Miller eq. 4 and CR1) and
    cluster-bootstrap intervals."""
    x = res.correct(metric)
    clusters = res.clusters()
    n, k = x.size, int(x.sum())
    an = mean_se(x)
    wl = wilson_ci(k, n)
    bs = bootstrap(x, B=B, seed=seed)
    cl = clustered_se(x, clusters, correction="miller")
    cr = clustered_se(x, clusters)
    cb = bootstrap(x, B=B, seed=seed, clusters=clusters)
    return [
        dict(method="analytic (CLT)", value=an.value, se=an.se, lo=an.ci[0], hi=an.ci[1], n=n, clusters=None),
        dict(method="Wilson", value=an.value, se=None, lo=wl[0], hi=wl[1], n=n, clusters=None),
        dict(
            method=f"bootstrap (B={B})",
            value=bs.value,
            se=bs.se,
            lo=bs.ci[0],
            hi=bs.ci[1],
            n=n,
            clusters=None,
        ),
        dict(
            method="clustered (Miller eq. 4)",
            value=cl.value,
            se=cl.se,
            lo=cl.ci[0],
            hi=cl.ci[1],
            n=n,
            clusters=cl.n_clusters,
        ),
        dict(
            method="clustered CR1 (small-G, t)",
            value=cr.value,
            se=cr.se,
            lo=cr.ci[0],
            hi=cr.ci[1],
            n=n,
            clusters=cr.n_clusters,
        ),
        dict(
            method=f"cluster bootstrap (B={B})",
            value=cb.value,
            se=cb.se,
            lo=cb.ci[0],
            hi=cb.ci[1],
            n=n,
            clusters=cb.n_clusters,
        ),
    ]


def compare_models(
    a: TaskResult, b: TaskResult, metric: str = "acc", *, B: int = 2000, seed: int = 0, alpha: float = 0.05
) -> dict:
    """Paired comparison of two systems on the same items (matched by id).

    Returns the accuracies, the paired difference with a cluster-robust (CR1) SE, t interval and
    p-value on ``G − 1`` d.o.f. (items of one cluster — a passage, or a question and its translation —
    are not independent), McNemar's exact test (unclustered, for reference), the cluster-bootstrap
    and permutation p-values, the discordance rate, the minimum detectable difference at this n
    (80 % power) and the items needed to detect the observed difference. ``significant`` is the
    clustered test's verdict.
    """
    ia = {r["id"]: r for r in a.records}
    ib = {r["id"]: r for r in b.records}
    ids = [i for i in ia if i in ib]
    if not ids:
        raise EvalError("the two results share no item ids")
    xa = np.array([float(ia[i]["correct"][metric]) for i in ids])
    xb = np.array([float(ib[i]["correct"][metric]) for i in ids])
    clusters = [ia[i].get("cluster") for i in ids]
    pd = paired_difference(xa, xb, clusters)
    mc = mcnemar(xa.astype(bool), xb.astype(bool))
    pb = paired_bootstrap(xa, xb, B=B, seed=seed, clusters=clusters)
    perm = permutation_test(xa, xb, B=B, seed=seed)
    disc = (mc["b"] + mc["c"]) / len(ids)
    omega2 = float(np.var(xa - xb, ddof=1)) if len(ids) > 1 else disc
    diff = abs(pd.diff)
    return dict(
        n=len(ids),
        acc_a=mean_se(xa),
        acc_b=mean_se(xb),
        paired=pd,
        mcnemar=mc,
        paired_bootstrap=pb,
        permutation_p=perm,
        discordance=disc,
        omega2=omega2,
        mde_80=mde(len(ids), max(omega2, 1e-12)),
        n_needed=n_required(diff, omega2) if diff > 0 and omega2 > 0 else None,
        n_clusters=n_distinct_clusters(clusters),
        significant=bool(pd.p_value < alpha),
        alpha=alpha,
    )


def n_distinct_clusters(clusters: Sequence) -> int:
    """Number of distinct clusters (``None`` entries are singletons)."""
    return len({c if c is not None else f"__item{i}" for i, c in enumerate(clusters)})


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

    def row(bench: str, cat: str, e: Estimate, shots) -> dict:
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


@dataclass
class ComparisonPlan:
    """Two systems for the paired comparison, each a model, tokenizer, cache id and prompt config."""

    label_a: str
    label_b: str
    model_a: object
    tok_a: object
    model_b: object
    tok_b: object
    id_a: str
    id_b: str
    prompt_a: object
    prompt_b: object
    why: str


def comparison_systems(
    profile,
    model,
    tokenizer,
    base_prompt,
    variant_prompt,
    *,
    converted: tuple | None = None,
    why: str = "",
) -> ComparisonPlan:
    """The two systems the statistics chapter compares.

    ``converted`` is ``(moe, moe_tokenizer, dense, dense_tokenizer, moe_id, dense_id)`` — Part I's
    converted MoE and its dense parent, which the chapter loads itself when Part I's cached conversion
    exists (labkit.evals does not import Part I). They are then compared under ``base_prompt``.
    Without it, two prompting variants of ``model`` are compared (A = ``variant_prompt``,
    B = ``base_prompt``). ``why`` says why this pair was chosen and ends up in
    :attr:`ComparisonPlan.why`.
    """
    if converted is not None:
        moe, moe_tok, dense, dense_tok, moe_id, dense_id = converted
        return ComparisonPlan(
            "LaDiMo MoE (Part I)",
            f"dense parent ({dense_id})",
            moe,
            moe_tok,
            dense,
            dense_tok,
            moe_id,
            dense_id,
            base_prompt,
            base_prompt,
            why or "Part I's cached conversion was found",
        )
    return ComparisonPlan(
        "letters, chat template",
        "letters, plain prompt",
        model,
        tokenizer,
        model,
        tokenizer,
        profile.evals.model,
        profile.evals.model,
        variant_prompt,
        base_prompt,
        (why or "no Part I conversion was given") + ", so two prompting variants are compared",
    )


def koen_runs(
    model,
    tokenizer,
    profile,
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
    from .prompts import PromptConfig
    from .runner import run_task

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


def md_table(
    rows: Sequence[Mapping], columns: Sequence[str] | None = None, formats: Mapping[str, str] | None = None
) -> str:
    """Rows of dicts as a Markdown table (``formats`` maps a column to a format spec like ``".3f"``)."""
    if not rows:
        raise EvalError("md_table needs at least one row")
    cols = list(columns or rows[0])
    formats = formats or {}

    def cell(r, c):
        v = r.get(c, "")
        if v is None:
            return "—"
        if c in formats and isinstance(v, (int, float)):
            return format(v, formats[c])
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(cell(r, c) for c in cols) + " |\n" for r in rows)


def pool(results: Sequence[TaskResult], name: str = "pooled") -> TaskResult:
    """One result holding the records of several (e.g. the Korean and English runs of one system)."""
    from .runner import summarize

    if not results:
        raise EvalError("pool needs at least one result")
    recs = [r for res in results for r in res.records]
    ids = [r["id"] for r in recs]
    if len(set(ids)) != len(ids):
        raise EvalError("pooled results share item ids")
    first = results[0]
    return TaskResult(name, None, first.model_id, first.prompt, recs, dict(summarize(recs)))


def card_folder() -> Path:
    """Where the results card goes: ``$LABKIT_RESULTS_DIR``, else ``_build/results`` next to the book's
    ``_config.yml`` (searched upwards from the working directory), else ``$LABKIT_CACHE/evals/cards``."""
    import os

    from ..paths import cache_dir

    env = os.environ.get("LABKIT_RESULTS_DIR")
    if env:
        return Path(env)
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "_config.yml").is_file() and (d / "_toc.yml").is_file():
            return d / "_build" / "results"
    return cache_dir() / "evals" / "cards"


def public_runs(
    model,
    tokenizer,
    profile,
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
    from .runner import run_task

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
    from .tasks import get_group

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
    from .tasks import GROUPS

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
