"""Uncertainty of one score and paired comparisons of two systems on the same items.

* :func:`se_comparison`: analytic vs Wilson vs bootstrap vs clustered uncertainty of one score;
* :func:`compare_models`: paired test of two systems on the same items (McNemar, paired bootstrap,
  permutation) plus power;
* :func:`paired_by_language`: two systems' runs of one task, language by language and pooled:
  accuracies, their difference with a paired-bootstrap interval, McNemar's exact test and the
  ratio of the accuracies with its interval (Part I's "keeps x % of the dense accuracy");
* :func:`comparison_systems`: which two systems the statistics chapter compares (Part I's converted
  MoE vs its dense parent when the chapter found and loaded Part I's cached conversion, else two
  prompting variants). This module never imports Part I.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..config import Profile
from .errors import EvalError
from .prompts import PromptConfig
from .runner import TaskResult
from .stats import (
    bootstrap,
    clustered_se,
    mcnemar,
    mde,
    mean_se,
    n_required,
    paired_bootstrap,
    paired_difference,
    paired_ratio_bootstrap,
    permutation_test,
    wilson_ci,
)

__all__ = [
    "ComparisonPlan",
    "PairedRow",
    "compare_models",
    "comparison_systems",
    "n_distinct_clusters",
    "paired_by_language",
    "se_comparison",
]


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


@dataclass(frozen=True)
class PairedRow:
    """System A against system B on the same items of one language (``lang="all"``: pooled).

    Attributes
    ----------
    lang:
        The language of the items, or ``"all"`` for the languages pooled.
    n, n_clusters:
        Items, and independent units (clusters: a passage, or a question and its translation).
    acc_a, acc_b:
        Accuracies (fractions).
    diff, diff_ci, p_bootstrap:
        ``acc_a − acc_b``, its paired percentile-bootstrap 95 % interval (whole clusters resampled;
        Koehn 2004) and the bootstrap's two-sided p-value.
    a_only, b_only, p_mcnemar:
        Items only A answers right, items only B answers right, and McNemar's exact two-sided
        p-value on these discordant items (each item counted as independent).
    ratio, ratio_ci:
        ``acc_a / acc_b`` (NaN when ``acc_b`` is 0) and its 95 % interval from the same resamples.
    """

    lang: str
    n: int
    n_clusters: int
    acc_a: float
    acc_b: float
    diff: float
    diff_ci: tuple[float, float]
    p_bootstrap: float
    a_only: int
    b_only: int
    p_mcnemar: float
    ratio: float
    ratio_ci: tuple[float, float]

    def as_dict(self) -> dict:
        return asdict(self)


def _paired_row(
    lang: str, ra: Sequence[dict], rb: Sequence[dict], metric: str, B: int, seed: int
) -> PairedRow:
    """One :class:`PairedRow` from two lists of records of the same items (matched by id)."""
    ia = {r["id"]: r for r in ra}
    ib = {r["id"]: r for r in rb}
    if len(ia) != len(ra) or len(ib) != len(rb):
        raise EvalError(f"{lang}: a run holds an item id twice")
    if set(ia) != set(ib):
        only_a, only_b = sorted(set(ia) - set(ib)), sorted(set(ib) - set(ia))
        raise EvalError(
            f"{lang}: the two runs hold different items ({len(only_a)} only in A, e.g. {only_a[:3]}; "
            f"{len(only_b)} only in B, e.g. {only_b[:3]}); a paired comparison needs the same items"
        )
    ids = list(ia)
    try:
        xa = np.array([float(ia[i]["correct"][metric]) for i in ids])
        xb = np.array([float(ib[i]["correct"][metric]) for i in ids])
    except KeyError:
        raise EvalError(f"{lang}: metric {metric!r} is not in both runs' records") from None
    clusters = [ia[i].get("cluster") for i in ids]
    pb = paired_bootstrap(xa, xb, B=B, seed=seed, clusters=clusters)
    ratio = paired_ratio_bootstrap(xa, xb, B=B, seed=seed, clusters=clusters)
    mc = mcnemar(xa.astype(bool), xb.astype(bool))
    return PairedRow(
        lang=lang,
        n=len(ids),
        n_clusters=n_distinct_clusters(clusters),
        acc_a=float(xa.mean()),
        acc_b=float(xb.mean()),
        diff=pb.diff,
        diff_ci=pb.ci,
        p_bootstrap=pb.p_value,
        a_only=mc["b"],
        b_only=mc["c"],
        p_mcnemar=mc["p_exact"],
        ratio=ratio.value,
        ratio_ci=ratio.ci,
    )


def paired_by_language(
    a: Mapping[str, TaskResult],
    b: Mapping[str, TaskResult],
    metric: str = "acc",
    *,
    B: int = 2000,
    seed: int = 0,
) -> list[PairedRow]:
    """Two systems' runs of one task (``{lang: TaskResult}``, e.g. from
    :func:`labkit.evals.runsets.task_runs`) compared on the same items, language by language.

    Returns one :class:`PairedRow` per language of ``a`` (in its order), then, when there are
    several, a row ``"all"`` with every language's items pooled: there a question and its
    translation share a cluster, so the bootstrap resamples them together. The last row is always
    the overall comparison. The ratio's interval comes from the same resamples as the difference's
    (same ``seed``). McNemar's exact test counts items as independent; with clustered items the
    bootstrap interval is the safer guide.

    Raises
    ------
    EvalError
        The two sides differ in languages or items, or ``metric`` is not in the records.
    """
    if not a:
        raise EvalError("paired_by_language needs at least one language")
    if list(a) != list(b):
        raise EvalError(f"the two systems ran different languages: {list(a)} and {list(b)}")
    rows = [_paired_row(lang, a[lang].records, b[lang].records, metric, B, seed) for lang in a]
    if len(rows) > 1:
        pooled_a = [r for lang in a for r in a[lang].records]
        pooled_b = [r for lang in b for r in b[lang].records]
        rows.append(_paired_row("all", pooled_a, pooled_b, metric, B, seed))
    return rows


def n_distinct_clusters(clusters: Sequence) -> int:
    """Number of distinct clusters (``None`` entries are singletons)."""
    return len({c if c is not None else f"__item{i}" for i, c in enumerate(clusters)})


@dataclass
class ComparisonPlan:
    """Two systems for the paired comparison, each a model, tokenizer, cache id and prompt config."""

    label_a: str
    label_b: str
    model_a: Any
    tok_a: Any
    model_b: Any
    tok_b: Any
    id_a: str
    id_b: str
    prompt_a: PromptConfig
    prompt_b: PromptConfig
    why: str


def comparison_systems(
    profile: Profile,
    model: Any,
    tokenizer: Any,
    base_prompt: PromptConfig,
    variant_prompt: PromptConfig,
    *,
    converted: tuple[Any, Any, Any, Any, str, str] | None = None,
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
