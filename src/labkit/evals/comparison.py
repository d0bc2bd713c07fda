"""Uncertainty of one score and paired comparisons of two systems on the same items.

* :func:`se_comparison`: analytic vs Wilson vs bootstrap vs clustered uncertainty of one score;
* :func:`compare_models`: paired test of two systems on the same items (McNemar, paired bootstrap,
  permutation) plus power;
* :func:`comparison_systems`: which two systems the statistics chapter compares (Part I's converted
  MoE vs its dense parent when the chapter found and loaded Part I's cached conversion, else two
  prompting variants). This module never imports Part I.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    permutation_test,
    wilson_ci,
)

__all__ = [
    "ComparisonPlan",
    "compare_models",
    "comparison_systems",
    "n_distinct_clusters",
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
