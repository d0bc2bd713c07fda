"""labkit.evals.study: the analyses behind the Part II chapters, on a tiny model and fixtures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from labkit.config import get_profile
from labkit.evals import EvalError, PromptConfig, run_task
from labkit.evals.errors import UnknownGroupError
from labkit.evals.study import (
    compare_models,
    comparison_systems,
    crosslingual,
    group_score,
    letter_histogram,
    md_table,
    paired_runs,
    pool,
    public_comparison,
    public_runs,
    results_card,
    rule_disagreement,
    scoring_table,
    se_comparison,
    write_card,
)
from labkit.models import tiny_llama

FIX = Path(__file__).parent / "fixtures" / "evals"
KOEN = FIX / "koen_items.jsonl"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    m, t = tiny_llama("tiny-llama", seed=2)
    root = tmp_path_factory.mktemp("evals")
    out = {}
    for style in ("cloze", "letters"):
        for lang in ("ko", "en"):
            out[(style, lang)] = run_task(
                m,
                t,
                "koen_parallel",
                model_id="tiny",
                lang=lang,
                path=KOEN,
                prompt=PromptConfig(style=style),
                cache=root,
                progress=False,
            )
    return out


def test_scoring_table_and_disagreement(runs):
    rows = scoring_table(runs)
    assert len(rows) == 2 * 4 + 2 * 1
    assert {r["rule"] for r in rows} >= {"cloze acc_norm", "letters (HCX)"}
    d = rule_disagreement(runs[("cloze", "ko")], "acc", "acc")
    assert d == 0.0
    h = letter_histogram(runs[("letters", "ko")])
    assert sum(h["pred"].values()) == 7 and h["gold"]["B"] == 3


def test_crosslingual_pairs_and_mcnemar(runs):
    x = crosslingual(runs[("cloze", "ko")], runs[("cloze", "en")], "acc")
    assert x["pairs"] == 6  # the Korean-only culture item is left out
    ko = {r["pair_id"]: r for r in runs[("cloze", "ko")].records}
    en = {r["pair_id"]: r for r in runs[("cloze", "en")].records}
    agree = np.mean([ko[p]["preds"]["acc"] == en[p]["preds"]["acc"] for p in x["pair_ids"]])
    assert x["agreement"].value == pytest.approx(agree)
    b, c = x["mcnemar"]["b"], x["mcnemar"]["c"]
    assert x["mcnemar"]["p_exact"] == pytest.approx(binomtest(b, b + c).pvalue if b + c else 1.0)
    assert -1 <= x["kappa"] <= 1 or np.isnan(x["kappa"])
    # the gap is clustered by passage: reading pairs on one passage form one cluster
    assert x["gap_en_minus_ko"].method == "paired-clustered-CR1"


def test_paired_runs_hold_the_same_pairs(runs):
    pr = paired_runs(runs)
    for style in ("cloze", "letters"):
        ko, en = pr[(style, "ko")], pr[(style, "en")]
        assert sorted(r["pair_id"] for r in ko.records) == sorted(r["pair_id"] for r in en.records)
        assert ko.summary["n"] == en.summary["n"] == 6 < runs[(style, "ko")].summary["n"]
    with pytest.raises(EvalError, match="needs both languages"):
        paired_runs({("cloze", "ko"): runs[("cloze", "ko")]})


def test_pool_se_comparison_and_compare(runs):
    pooled = pool([runs[("cloze", "ko")], runs[("cloze", "en")]])
    assert pooled.summary["n"] == 13
    rows = se_comparison(pooled, "acc", B=200)
    assert [r["method"].split(" (")[0] for r in rows] == [
        "analytic",
        "Wilson",
        "bootstrap",
        "clustered",
        "clustered CR1",
        "cluster bootstrap",
    ]
    assert rows[3]["clusters"] == rows[4]["clusters"] < 13  # translations and passages share clusters
    with pytest.raises(EvalError, match="share item ids"):
        pool([runs[("cloze", "ko")], runs[("cloze", "ko")]])
    cmp = compare_models(runs[("cloze", "ko")], runs[("letters", "ko")], B=200)
    assert cmp["n"] == 7
    assert cmp["paired"].diff == pytest.approx(cmp["acc_a"].value - cmp["acc_b"].value)
    # the verdict is the clustered paired t-test's (G - 1 d.o.f.), not the unclustered McNemar's
    assert cmp["significant"] == (cmp["paired"].p_value < 0.05)
    assert cmp["paired"].method == "paired-clustered-CR1" and cmp["n_clusters"] < cmp["n"]


def test_results_card_roundtrip(runs, tmp_path):
    card = results_card(
        {"koen-ko": runs[("letters", "ko")], "koen-en": runs[("letters", "en")]}, "acc", model_id="tiny"
    )
    bench = [r for r in card["rows"] if r["category"] == "(mean of categories)"]
    assert card["overall"]["value"] == pytest.approx(np.mean([r["score"] for r in bench]))
    ko_cats = [r for r in card["rows"] if r["benchmark"] == "koen-ko" and not r["category"].startswith("(")]
    assert bench[0]["score"] == pytest.approx(np.mean([r["score"] for r in ko_cats]))  # macro over categories
    o = card["overall"]
    assert o["n"] == 13 and o["n_clusters"] < 13  # the twins of a pair are one unit, not two
    j, c = write_card(card, tmp_path)
    assert json.loads(j.read_text())["overall"]["value"] == card["overall"]["value"]
    assert c.read_text().splitlines()[0].startswith("benchmark,category,score")


def test_public_runs_from_local_files_and_comparison(tmp_path):
    m, t = tiny_llama("tiny-llama", seed=2)
    prof = get_profile("smoke")
    prof = dataclasses.replace(
        prof,
        evals=dataclasses.replace(prof.evals, model="tiny", public_tasks=("kmmlu", "kobest_boolq", "click")),
    )
    assert public_runs(m, t, prof) == {}  # no datasets, no files: nothing runs
    import os

    os.environ["LABKIT_CACHE"] = str(tmp_path)
    try:
        res = public_runs(
            m,
            t,
            prof,
            paths={k: FIX / f"{k}.jsonl" for k in ("kmmlu", "kobest_boolq", "click")},
            fewshot_paths={"kmmlu": FIX / "kmmlu_dev.jsonl"},
        )
    finally:
        del os.environ["LABKIT_CACHE"]
    assert set(res) == {"kmmlu", "kobest_boolq", "click"}
    assert res["kmmlu"].prompt.style == "letters" and res["kobest_boolq"].prompt.style == "cloze"
    assert res["kmmlu"].prompt.shots == 5 and res["click"].meta["subsets"] == [
        "popular",
        "politics",
        "tradition",
    ]
    rows = {r["benchmark"]: r for r in public_comparison(res, {"kmmlu": 0.38})}
    assert set(rows) == {"kmmlu", "kobest", "click"}
    km = rows["kmmlu"]
    assert km["published"] == 0.38 and km["aggregation"] == "single task" and not km["like_for_like"]
    assert "the card does not state its harness" in km["why_not"] and "shots" not in km["why_not"]
    assert rows["kobest"]["why_not"].startswith("shots 0 here vs 5 on the card; 1 of 5 members run")
    assert "subset popular, politics, tradition" in rows["click"]["why_not"]
    g = group_score(res, "kobest")
    assert g["aggregation"] == "micro" and g["members_run"] == ["kobest_boolq"] and len(g["missing"]) == 4
    with pytest.raises(UnknownGroupError):
        group_score(res, "nope")


def test_comparison_systems_fallback_and_converted_pair(tmp_path, monkeypatch):
    m, t = tiny_llama("tiny-llama", seed=2)
    prof = get_profile("smoke")
    base, var = PromptConfig(style="letters"), PromptConfig(style="letters", chat=True)
    plan = comparison_systems(prof, m, t, base, var, why="no cached Part I conversion at /x")
    assert plan.prompt_a == var and plan.prompt_b == base and plan.model_a is plan.model_b
    assert plan.why == "no cached Part I conversion at /x, so two prompting variants are compared"
    other, _ = tiny_llama("tiny-llama", seed=3)
    plan = comparison_systems(
        prof, m, t, base, var, converted=(other, t, m, t, "moe-k", "dense"), why="found"
    )
    assert plan.model_a is other and plan.model_b is m and plan.prompt_a == plan.prompt_b == base
    assert (plan.id_a, plan.id_b, plan.why, plan.label_b) == (
        "moe-k",
        "dense",
        "found",
        "dense parent (dense)",
    )


def test_evals_does_not_import_part_one():
    import ast

    for path in (Path(__file__).parents[1] / "src" / "labkit" / "evals").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith(("moe", "labkit.moe")), path.name
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("labkit.moe") for a in node.names), path.name


def test_md_table():
    s = md_table([dict(a=1.23456, b=None, c="x|y")], formats={"a": ".2f"})
    assert s.splitlines()[2] == "| 1.23 | — | x\\|y |"
    with pytest.raises(EvalError):
        md_table([])


STUDY_NAMES = {
    "tables": ["md_table"],
    "runsets": ["koen_runs", "paired_runs", "pool", "public_runs", "task_runs"],
    "rule_analysis": ["letter_histogram", "rule_disagreement", "scoring_table"],
    "consistency": ["crosslingual"],
    "comparison": [
        "ComparisonPlan",
        "PairedRow",
        "compare_models",
        "comparison_systems",
        "n_distinct_clusters",
        "paired_by_language",
        "se_comparison",
    ],
    "cards": [
        "CARD_FAMILIES",
        "CARD_PROTOCOL",
        "card_folder",
        "category_scores",
        "group_score",
        "public_comparison",
        "results_card",
        "write_card",
    ],
}


@pytest.mark.parametrize("module", sorted(STUDY_NAMES))
def test_study_split_modules_export_everything_and_study_reexports_them(module):
    import importlib
    import inspect

    import labkit.evals.study as study

    mod = importlib.import_module(f"labkit.evals.{module}")
    assert sorted(mod.__all__) == sorted(STUDY_NAMES[module])
    defined = {
        n
        for n, obj in vars(mod).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == mod.__name__
    }
    assert defined <= set(mod.__all__), f"public but not in __all__: {defined - set(mod.__all__)}"
    for name in mod.__all__:
        assert getattr(study, name) is getattr(mod, name)
