"""labkit.evals.tasks/schema: loaders for the real field layouts, and clear errors on bad input."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from labkit.evals import EvalDataError, UnknownTaskError, load_fewshot, load_task
from labkit.evals.hcx import HCX_DESIGN, HCX_L_TABLE3, design_table, hcx_aggregate
from labkit.evals.tasks import TASKS, task_table

FIX = Path(__file__).parent / "fixtures" / "evals"

EXPECTED = {  # task: (n items, gold text of the first item)
    "kobest_boolq": (2, "예"),
    "kobest_copa": (2, "누군가 물을 쏟았다."),
    "kobest_wic": (2, "아니오"),
    "kobest_hellaswag": (1, "물이 곧 끓기 시작했다."),
    "kobest_sentineg": (2, "긍정"),
    "kmmlu": (2, "이성계"),
    "haerae": (2, "셈틀"),
    "click": (6, "어린이날"),
    "mmlu": (2, "2x"),
    "arc": (2, "light"),
    "hellaswag": (1, "spreads butter on one slice. Add ham."),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_public_layouts_load(name):
    items = load_task(name, path=FIX / f"{name}.jsonl")
    n, gold = EXPECTED[name]
    assert len(items) == n
    assert items[0].choices[items[0].label] == gold


def test_arc_numeric_labels_and_click_five_options():
    arc = load_task("arc", path=FIX / "arc.jsonl")
    assert arc[1].choices[arc[1].label] == "100 C"
    click = load_task("click", path=FIX / "click.jsonl")
    assert len(click[1].choices) == 5 and click[2].label == 4
    assert click[1].cluster == click[2].cluster is not None  # shared paragraph → one cluster
    assert click[0].cluster is None


def test_koen_parallel_languages_and_clusters():
    ko = load_task("koen_parallel", path=FIX / "koen_items.jsonl", lang="ko")
    en = load_task("koen_parallel", path=FIX / "koen_items.jsonl", lang="en")
    assert {i.lang for i in ko} == {"ko"} and {i.lang for i in en} == {"en"}
    assert len(ko) == len(en) + 1  # korean_culture has no English partner
    assert ko[0].cluster == en[0].cluster == "know-001"
    reading = [i for i in ko if i.category == "reading"]
    assert len({i.cluster for i in reading}) == 1  # same passage → same cluster
    shots = load_fewshot("koen_parallel", path=FIX / "koen_fewshot.jsonl", lang="en")
    assert len(shots) == 3
    two = load_task("koen_parallel", path=FIX / "koen_items.jsonl", max_items=2, lang="ko")
    assert [i.id for i in two] == ["know-001-ko", "arith-001-ko"]  # round-robin over categories
    five = load_task("koen_parallel", path=FIX / "koen_items.jsonl", max_items=5, lang="ko")
    assert len({i.category for i in five}) == 5


def _write(tmp_path, recs, name="x.jsonl"):
    p = tmp_path / name
    p.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in recs),
        encoding="utf-8",
    )
    return p


GOOD = dict(question="q?", answer=1, A="a", B="b", C="c", D="d")


@pytest.mark.parametrize(
    "recs, match",
    [
        ([GOOD, "{not json"], r"x\.jsonl:2: malformed JSON"),
        ([{k: v for k, v in GOOD.items() if k != "A"}], r"x\.jsonl:1: missing field\(s\) \['A'\]"),
        ([{**GOOD, "bogus": 1}], r"unexpected field\(s\) \['bogus'\]"),
        ([{**GOOD, "answer": 5}], r"'answer'=4 out of range|'answer'=5"),
        ([{**GOOD, "B": "  "}], r"choice 1 is empty"),
        ([{**GOOD, "id": "a"}, {**GOOD, "id": "a"}], r"duplicate id 'a'"),
        (["[1, 2]"], r"expected a JSON object"),
    ],
)
def test_bad_input_errors_name_file_line_field(tmp_path, recs, match):
    p = _write(tmp_path, recs)
    with pytest.raises(EvalDataError, match=match):
        load_task("kmmlu", path=p)


def test_bad_koen_label_and_category(tmp_path):
    base = json.loads((FIX / "koen_items.jsonl").read_text(encoding="utf-8").splitlines()[0])
    with pytest.raises(EvalDataError, match=r"x\.jsonl:1: field 'label'=7 out of range"):
        load_task("koen_parallel", path=_write(tmp_path, [{**base, "label": 7}]))
    with pytest.raises(EvalDataError, match="field 'category'='sports'"):
        load_task("koen_parallel", path=_write(tmp_path, [{**base, "category": "sports"}]))
    with pytest.raises(EvalDataError, match="list of 4"):
        load_task("koen_parallel", path=_write(tmp_path, [{**base, "choices": ["a", "b"]}]))
    with pytest.raises(EvalDataError, match="must be an int"):
        load_task("koen_parallel", path=_write(tmp_path, [{**base, "label": True}]))


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(UnknownTaskError, match="unknown task 'kmmmlu'"):
        load_task("kmmmlu", path=tmp_path / "x.jsonl")
    with pytest.raises(FileNotFoundError, match="no such JSONL"):
        load_task("kmmlu", path=tmp_path / "nope.jsonl")
    with pytest.raises(EvalDataError, match="pass path="):
        load_task("kmmlu")


def test_nfd_input_is_normalised_to_nfc(tmp_path):
    nfd = {k: unicodedata.normalize("NFD", v) if isinstance(v, str) else v for k, v in GOOD.items()}
    nfd["question"] = unicodedata.normalize("NFD", "조선을 건국한 인물은?")
    (item,) = load_task("kmmlu", path=_write(tmp_path, [nfd]))
    assert item.question == "조선을 건국한 인물은?"
    assert item.meta["nfc_changed"] is True
    (item2,) = load_task("kmmlu", path=FIX / "kmmlu.jsonl", max_items=1)
    assert item2.meta["nfc_changed"] is False


def test_labkit_jsonl_schema(tmp_path):
    p = _write(tmp_path, [dict(id="a", question="q", choices=["x", "y"], label=1, lang="ko", cluster="c1")])
    (item,) = load_task("labkit_jsonl", path=p)
    assert item.lang == "ko" and item.cluster == "c1"
    with pytest.raises(EvalDataError, match="'lang'='fr'"):
        load_task(
            "labkit_jsonl",
            path=_write(tmp_path, [dict(id="a", question="q", choices=["x", "y"], label=0, lang="fr")]),
        )


def test_registry_table_and_hcx_design():
    rows = task_table()
    assert {r["task"] for r in rows} >= {"kmmlu", "haerae", "click", "koen_parallel", "kobest_boolq"}
    assert TASKS["kmmlu"].shots == 5 and TASKS["haerae"].shots == 0 and TASKS["arc"].shots == 25
    table = design_table()
    assert len(table) == len(HCX_DESIGN)
    assert any(r["benchmark"] == "KoBigBench" and r["reproducible_here"].startswith("no") for r in table)
    assert next(r for r in table if r["benchmark"] == "KMMLU")["labkit_shots"] == 5


def test_hcx_aggregate_reproduces_table3_overall():
    cats = {k: v for k, v in HCX_L_TABLE3.items() if k != "Overall"}
    overall = sum(cats.values()) / len(cats)
    assert round(overall, 2) == HCX_L_TABLE3["Overall"]
    kor = hcx_aggregate({"KMMLU": 53.40, "HAE-RAE Bench": 84.14, "KoBigBench": 78.68})
    assert round(kor["categories"]["Kor."], 2) == 72.07
    harml = hcx_aggregate({"TruthfulQA": 69.52}, harml_toxicity=0.0317)
    assert round(harml["categories"]["Harml."], 2) == 67.32
    with pytest.raises(Exception, match="not HCX benchmarks"):
        hcx_aggregate({"GLUE": 1.0})


def test_datasets_path_with_stub(monkeypatch):
    import sys
    import types

    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return [dict(question="2+2?", answer=2, A="3", B="4", C="5", D="6", Category="Math", new_column="x")]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    (item,) = load_task("kmmlu:Math", use_datasets=True)
    assert item.choices[item.label] == "4"
    assert calls == [("HAERAE-HUB/KMMLU", "Math", "test")]
    shots = load_fewshot("kmmlu:Math", use_datasets=True)
    assert calls[-1] == ("HAERAE-HUB/KMMLU", "Math", "dev") and len(shots) == 1
    assert load_fewshot("haerae", use_datasets=True) == []  # no few-shot split


def test_gpu_profile_runs_every_kmmlu_subject_and_smoke_cpu_need_no_network():
    """The gpu profile's KMMLU is the whole benchmark (all 45 subjects, no item cap), so the group score
    compares like for like with full-KMMLU numbers; smoke and cpu run no public benchmark at all."""
    from labkit.config import GPU_KMMLU_SUBJECTS, get_profile
    from labkit.evals.tasks import GROUPS, KMMLU_SUBJECTS

    assert GPU_KMMLU_SUBJECTS == KMMLU_SUBJECTS
    gpu = get_profile("gpu").evals
    assert set(GROUPS["kmmlu"].members) <= set(gpu.public_tasks)
    assert set(GROUPS["haerae"].members) <= set(gpu.public_tasks)
    assert set(GROUPS["kobest"].members) <= set(gpu.public_tasks) and "click" in gpu.public_tasks
    assert gpu.public_max_items is None and gpu.use_datasets
    for t in gpu.public_tasks:  # every name resolves in the registry
        assert t.split(":", 1)[0] in TASKS
    for name in ("smoke", "cpu", "gpu-tiny"):
        ev = get_profile(name).evals
        assert ev.public_tasks == () and not ev.use_datasets
