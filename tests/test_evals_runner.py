"""labkit.evals.runner/results/cli: per-item records, atomic resumable cache, summary, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import labkit.evals.runner as runner
from labkit.cli import main as cli_main
from labkit.evals import PromptConfig, UnknownMetricError, evaluate, load_task, run_task
from labkit.evals.results import ResultStore
from labkit.models import tiny_llama

FIX = Path(__file__).parent / "fixtures" / "evals"
KOEN = FIX / "koen_items.jsonl"


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama("tiny-llama", seed=1)


def _run(tiny, tmp_path, **kw):
    m, t = tiny
    return run_task(
        m, t, "koen_parallel", model_id="tiny-llama", path=KOEN, cache=tmp_path, progress=False, **kw
    )


def test_records_and_summary(tiny, tmp_path):
    res = _run(tiny, tmp_path, lang="ko", prompt=PromptConfig(style="cloze"))
    assert len(res.records) == 7 and res.scored_now == 7
    rec = res.records[0]
    assert set(rec) >= {"id", "context", "continuations", "lls", "preds", "correct", "p_gold", "n_tokens"}
    assert set(rec["correct"]) == {"acc", "acc_norm", "acc_bytes", "acc_token"}
    assert rec["correct"]["acc"] == (int(np.argmax(rec["lls"])) == rec["label"])
    acc = res.estimate("acc")
    assert acc.value == pytest.approx(res.correct("acc").mean()) and acc.n == 7
    with pytest.raises(UnknownMetricError, match="'accuracy' is not in this run"):
        res.estimate("accuracy")
    with pytest.raises(UnknownMetricError):
        res.correct("acc_letters")
    summary = json.loads((res.folder / "summary.json").read_text())
    assert summary["metrics"]["acc"]["analytic"]["value"] == acc.value
    lines = (res.folder / "items.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["id"] for x in lines] == res.ids()


def test_second_run_reuses_cache(tiny, tmp_path):
    first = _run(tiny, tmp_path, lang="en")
    again = _run(tiny, tmp_path, lang="en")
    assert again.scored_now == 0 and again.records == first.records
    other = _run(tiny, tmp_path, lang="en", prompt=PromptConfig(style="cloze"))
    assert other.scored_now == 6 and other.folder != first.folder  # prompt config is in the key


def test_interrupted_run_resumes_without_rescoring(tiny, tmp_path, monkeypatch):
    m, t = tiny
    items = load_task("koen_parallel", path=KOEN)
    reference, _ = evaluate(m, t, items, progress=False)
    calls = {"n": 0}
    real = runner.loglikelihood

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    store = ResultStore(tmp_path / "run")
    monkeypatch.setattr(runner, "loglikelihood", flaky)
    with pytest.raises(KeyboardInterrupt):
        evaluate(m, t, items, store=store, chunk_size=4, progress=False)
    assert len(ResultStore(tmp_path / "run")) == 4  # first chunk on disk, file valid
    monkeypatch.setattr(runner, "loglikelihood", real)
    records, scored = evaluate(m, t, items, store=ResultStore(tmp_path / "run"), chunk_size=4, progress=False)
    assert scored == len(items) - 4
    for a, b in zip(records, reference, strict=True):
        assert a["id"] == b["id"] and np.allclose(a["lls"], b["lls"], atol=1e-5)


def test_edited_item_is_rescored(tiny, tmp_path):
    m, t = tiny
    items = load_task("koen_parallel", path=KOEN, lang="en")
    store = ResultStore(tmp_path / "r")
    evaluate(m, t, items, store=store, progress=False)
    import dataclasses

    edited = [dataclasses.replace(items[0], question=items[0].question + " (edited)"), *items[1:]]
    _, scored = evaluate(m, t, edited, store=ResultStore(tmp_path / "r"), progress=False)
    assert scored == 1


def test_fewshot_dropped_to_fit_window(tiny):
    m, t = tiny
    items = load_task("koen_parallel", path=KOEN, lang="ko", max_items=1)
    pool = load_task("koen_parallel", path=FIX / "koen_fewshot.jsonl", lang="ko")
    cfg = PromptConfig(shots=3, sampler="first_n")
    full, _ = evaluate(m, t, items, prompt=cfg, fewshot_pool=pool, progress=False)
    short, _ = evaluate(m, t, items, prompt=cfg, fewshot_pool=pool, progress=False, max_length=200)
    assert len(full[0]["shot_ids"]) == 3 and len(short[0]["shot_ids"]) < 3


def test_cli_list_and_run(tmp_path, capsys):
    assert cli_main(["eval", "list"]) == 0
    assert "koen_parallel" in capsys.readouterr().out
    out = tmp_path / "out"
    rc = cli_main(
        [
            "eval",
            "run",
            "--task",
            "koen_parallel",
            "--lang",
            "en",
            "--model",
            "tiny-llama",
            "--path",
            str(KOEN),
            "--cache",
            str(tmp_path / "c"),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 6 and (out / "items.jsonl").is_file() and (out / "summary.json").is_file()
    assert cli_main(["eval", "run", "--task", "nope", "--model", "tiny-llama"]) == 1
    assert "unknown task 'nope'" in capsys.readouterr().err


def test_generation_scoring_on_arithmetic(tiny, tmp_path, monkeypatch):
    m, t = tiny
    items = [it for it in load_task("koen_parallel", path=KOEN) if it.answer]
    assert items and all(it.category == "arithmetic" for it in items)
    import labkit.evals.lm as lm

    monkeypatch.setattr(lm, "generate_until", lambda *a, **k: [["5 apples"], ["five"]][: len(a[2])])
    recs, summary = runner.evaluate_generation(m, t, items, progress=False, store=ResultStore(tmp_path / "g"))
    assert recs[0]["correct"] == {"exact_match": False, "prefix_match": True, "maj@1": False}
    assert summary["metrics"]["prefix_match"]["analytic"]["n"] == len(items)
    monkeypatch.undo()
    again, _ = runner.evaluate_generation(m, t, items, progress=False, store=ResultStore(tmp_path / "g"))
    assert again == recs  # resumed from the store, nothing regenerated
    with pytest.raises(Exception, match="without a gold 'answer'"):
        runner.evaluate_generation(m, t, load_task("koen_parallel", path=KOEN)[:1], progress=False)


def test_generation_real_tiny_model(tiny):
    m, t = tiny
    items = [it for it in load_task("koen_parallel", path=KOEN) if it.answer]
    recs, summary = runner.evaluate_generation(m, t, items, max_new_tokens=4, progress=False)
    assert len(recs[0]["samples"]) == 1 and set(summary["metrics"]) == {
        "exact_match",
        "prefix_match",
        "maj@1",
    }
