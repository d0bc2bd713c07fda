"""Two systems on one task's items, language by language: task_runs, paired_by_language and the
ratio bootstrap (Part I scores its converted model next to its dense parent with them)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from scipy.stats import binomtest

from labkit.evals.comparison import paired_by_language
from labkit.evals.errors import EvalError, OfflineDatasetError
from labkit.evals.runner import TaskResult
from labkit.evals.runsets import task_runs
from labkit.evals.stats import _quantiles_with_inf, _resample_index, paired_bootstrap, paired_ratio_bootstrap
from labkit.evals.tasks import has_package_data
from labkit.models import tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def two_models():
    return tiny_llama("tiny-llama", seed=1), tiny_llama("tiny-llama", seed=2)


# --------------------------------------------------------------------------- ratio bootstrap
def test_ratio_bootstrap_draws_the_paired_bootstraps_resamples_and_matches_a_hand_loop():
    rng = np.random.default_rng(3)
    a = (rng.random(40) < 0.6).astype(float)
    b = (rng.random(40) < 0.5).astype(float)
    clusters = [i // 2 for i in range(40)]
    est = paired_ratio_bootstrap(a, b, B=300, seed=7, clusters=clusters)
    idx = list(_resample_index(np.random.default_rng(7), 40, np.asarray([str(c) for c in clusters]), 300))
    reps = np.array([a[i].mean() / b[i].mean() for i in idx])
    assert est.value == pytest.approx(a.mean() / b.mean())
    assert est.ci == pytest.approx(tuple(np.quantile(reps, [0.025, 0.975])))
    assert est.n == 40 and est.n_clusters == 20
    # the same resamples as the paired bootstrap of the difference
    diffs = np.array([a[i].mean() - b[i].mean() for i in idx])
    pb = paired_bootstrap(a, b, B=300, seed=7, clusters=clusters)
    assert pb.ci == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))


def test_ratio_is_nan_without_a_right_answer_in_b_and_infinite_resamples_reach_the_interval():
    a = np.array([1.0, 0, 0, 0])
    assert np.isnan(paired_ratio_bootstrap(a, np.zeros(4), B=50).value)
    b = np.array([0.0, 0, 0, 1])  # most resamples miss b's one right answer: a/0 = inf
    est = paired_ratio_bootstrap(a, b, B=200, seed=0)
    assert est.value == 1.0 and est.ci[1] == np.inf and np.isfinite(est.ci[0])
    with pytest.raises(EvalError, match="B=5"):
        paired_ratio_bootstrap(a, b, B=5)


def test_quantiles_with_inf_equal_numpys_on_finite_values():
    x = np.random.default_rng(0).normal(size=37)
    assert _quantiles_with_inf(x, (0.025, 0.5, 0.975)) == pytest.approx(np.quantile(x, [0.025, 0.5, 0.975]))
    assert _quantiles_with_inf(np.array([1.0, 2.0, np.inf]), (0.0, 0.5, 0.75)) == [1.0, 2.0, np.inf]


# --------------------------------------------------------------------------- task_runs
def test_task_languages_and_sources_come_from_the_registry(two_models, tmp_cache):
    assert has_package_data("koen_parallel") and not has_package_data("mmlu")
    assert not has_package_data("kmmlu:Accounting")
    (m, t), _ = two_models
    runs = task_runs(m, t, "koen_parallel", model_id="tiny-a", max_items=3)
    assert list(runs) == ["ko", "en"]
    pairs = {lang: {r["pair_id"] for r in res.records} for lang, res in runs.items()}
    assert pairs["en"] <= pairs["ko"] and len(pairs["ko"]) == 3  # the same questions in both languages
    assert all(res.folder is not None and res.folder.is_dir() for res in runs.values())
    with pytest.raises(EvalError, match="langs is empty"):
        task_runs(m, t, "koen_parallel", model_id="tiny-a", langs=())


def test_results_are_keyed_by_the_weights_not_the_name(two_models, tmp_cache):
    (m1, t1), (m2, t2) = two_models
    first = task_runs(m1, t1, "koen_parallel", model_id="same-name", langs=["en"], max_items=2)["en"]
    again = task_runs(m1, t1, "koen_parallel", model_id="same-name", langs=["en"], max_items=2)["en"]
    other = task_runs(m2, t2, "koen_parallel", model_id="same-name", langs=["en"], max_items=2)["en"]
    assert again.scored_now == 0 and again.folder == first.folder
    assert other.scored_now == len(other.records) > 0 and other.folder != first.folder


MMLU_TEST = [
    dict(question=f"Q{i}?", subject=s, choices=["w", "x", "y", "z"], answer=i % 4)
    for i, s in enumerate(["astronomy", "virology"] * 3)
]
MMLU_DEV = [
    dict(question=f"D{i}?", subject=s, choices=["a", "b", "c", "d"], answer=i % 4)
    for i, s in enumerate(["astronomy", "virology"] * 5)
]


def _fake_mmlu(monkeypatch, *, cached: bool) -> list[tuple]:
    """A stand-in ``datasets`` serving MMLU's test and dev splits in the hub's layout."""
    calls: list[tuple] = []
    config = types.SimpleNamespace(HF_HUB_OFFLINE=False, HF_DATASETS_OFFLINE=False)

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        if config.HF_HUB_OFFLINE and not cached:
            raise FileNotFoundError(f"Dataset {path} is not cached")
        return [dict(r) for r in (MMLU_TEST if split == "test" else MMLU_DEV)]

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    module.config = config  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


def test_mmlu_runs_through_datasets_with_five_same_subject_shots(two_models, tmp_cache, monkeypatch):
    calls = _fake_mmlu(monkeypatch, cached=True)
    (m, t), _ = two_models
    runs = task_runs(m, t, "mmlu", model_id="tiny-a")
    assert list(runs) == ["en"]
    assert ("cais/mmlu", "all", "test") in calls and ("cais/mmlu", "all", "dev") in calls
    res = runs["en"]
    assert len(res.records) == len(MMLU_TEST) and res.prompt.shots == 5
    header = "The following are multiple choice questions (with answers) about {}."
    for rec in res.records:
        assert rec["context"].startswith(header.format(rec["category"].replace("_", " ")))
        assert len(rec["shot_ids"]) == 5


def test_mmlu_offline_and_not_cached_is_a_typed_error(two_models, tmp_cache, monkeypatch):
    _fake_mmlu(monkeypatch, cached=False)
    (m, t), _ = two_models
    with pytest.raises(OfflineDatasetError, match="LABKIT_OFFLINE=0"):
        task_runs(m, t, "mmlu", model_id="tiny-a")


# --------------------------------------------------------------------------- paired_by_language
def test_paired_by_language_counts_tests_and_pools(two_models, tmp_cache):
    (m1, t1), (m2, t2) = two_models
    a = task_runs(m1, t1, "koen_parallel", model_id="tiny-a", max_items=12)
    b = task_runs(m2, t2, "koen_parallel", model_id="tiny-b", max_items=12)
    rows = paired_by_language(a, b, B=200, seed=0)
    assert [r.lang for r in rows] == ["ko", "en", "all"]
    assert rows[-1].n == rows[0].n + rows[1].n
    for row, runs in zip(rows, ([a["ko"]], [a["en"]], list(a.values())), strict=True):
        ids = [r["id"] for res in runs for r in res.records]
        by_b = {r["id"]: r for res in (b[x.lang] for x in runs) for r in res.records}
        by_a = {r["id"]: r for res in runs for r in res.records}
        xa = np.array([by_a[i]["correct"]["acc"] for i in ids], float)
        xb = np.array([by_b[i]["correct"]["acc"] for i in ids], float)
        assert row.acc_a == pytest.approx(xa.mean()) and row.acc_b == pytest.approx(xb.mean())
        assert row.a_only - row.b_only == xa.sum() - xb.sum()  # discordant items make the whole difference
        assert row.a_only + row.b_only == int((xa != xb).sum())
        m = row.a_only + row.b_only
        assert row.p_mcnemar == pytest.approx(binomtest(row.a_only, m).pvalue if m else 1.0)
        assert row.diff == pytest.approx(xa.mean() - xb.mean())
        if xb.mean() > 0:
            assert row.ratio == pytest.approx(xa.mean() / xb.mean())
    # a question and its translation share a cluster when pooled
    assert rows[-1].n_clusters < rows[-1].n


def test_paired_by_language_refuses_different_items_or_languages(two_models, tmp_cache):
    (m1, t1), (m2, t2) = two_models
    a = task_runs(m1, t1, "koen_parallel", model_id="tiny-a", max_items=3)
    b = task_runs(m2, t2, "koen_parallel", model_id="tiny-b", max_items=4)
    with pytest.raises(EvalError, match="different items"):
        paired_by_language(a, b, B=50)
    with pytest.raises(EvalError, match="different languages"):
        paired_by_language(a, {"ko": a["ko"]}, B=50)
    with pytest.raises(EvalError, match="metric 'nope'"):
        paired_by_language(a, a, "nope", B=50)
    res = a["ko"]
    twice = TaskResult(res.task, res.lang, res.model_id, res.prompt, res.records * 2, res.summary)
    with pytest.raises(EvalError, match="twice"):
        paired_by_language({"ko": twice}, {"ko": twice}, B=50)
