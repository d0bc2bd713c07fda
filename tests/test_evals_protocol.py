"""The registry drives every run (library and CLI); overrides are recorded; bad protocols are typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.cli import main as cli_main
from labkit.evals import EvalDataError, EvalError, PromptConfig, build_prompt, load_task, run_task
from labkit.evals.errors import UnknownGroupError
from labkit.evals.prompts import select_shots, shuffle_options, subject_particle
from labkit.evals.runner import resolve_protocol
from labkit.evals.tasks import GROUPS, KMMLU_SUBJECTS, TASKS, get_group, load_fewshot, protocol
from labkit.models import tiny_llama

FIX = Path(__file__).parent / "fixtures" / "evals"


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama("tiny-llama", seed=1)


def test_registry_protocols_follow_the_references():
    assert protocol("kmmlu")["shots"] == 5 and protocol("kmmlu")["same_subject"]
    assert protocol("mmlu") | {} == protocol("mmlu:all")
    mm = protocol("mmlu")
    assert mm["sampler"] == "first_n" and mm["same_subject"] and mm["subject_header"]
    assert protocol("arc")["shuffle_options"] and protocol("arc")["shots"] == 25
    assert protocol("click")["subsets"] == ("popular", "politics", "tradition")
    assert protocol("kobest_boolq")["style"] == "cloze" and protocol("haerae")["shots"] == 0
    assert len(KMMLU_SUBJECTS) == 45 == len(set(KMMLU_SUBJECTS))
    assert {"Korean-History", "Aviation-Engineering-and-Maintenance", "Math"} <= set(KMMLU_SUBJECTS)


def test_resolve_protocol_records_overrides():
    cfg, subsets, dev = resolve_protocol("kmmlu")
    assert cfg.shots == 5 and cfg.style == "letters" and dev == {} and subsets is None
    cfg, subsets, dev = resolve_protocol("kmmlu", overrides={"shots": 0})
    assert cfg.shots == 0 and dev == {"shots": {"registry": 5, "used": 0}}
    cfg, subsets, dev = resolve_protocol("click", overrides={"subsets": None})
    assert subsets is None and dev["subsets"] == {
        "registry": ["popular", "politics", "tradition"],
        "used": None,
    }
    _, _, dev = resolve_protocol("koen_parallel", PromptConfig(style="cloze"))
    assert dev == {"style": {"registry": "letters", "used": "cloze"}}
    with pytest.raises(EvalError, match=r"unknown override\(s\) \['shotz'\]"):
        resolve_protocol("kmmlu", overrides={"shotz": 3})


def test_run_task_uses_the_registry_and_records_it(tiny, tmp_path):
    m, t = tiny
    res = run_task(
        m,
        t,
        "kmmlu",
        model_id="tiny",
        path=FIX / "kmmlu.jsonl",
        fewshot_path=FIX / "kmmlu_dev.jsonl",
        cache=tmp_path,
        progress=False,
    )
    assert res.prompt.shots == 5 and res.meta["overrides"] == {}
    for rec in res.records:  # same-subject dev shots, all five of them
        dev = {it.id: it for it in load_task("kmmlu", path=FIX / "kmmlu_dev.jsonl")}
        cats = {dev[s].category for s in rec["shot_ids"]}
        assert len(rec["shot_ids"]) == 5 and cats == {rec["category"]}
    summary = json.loads((res.folder / "summary.json").read_text())
    assert summary["prompt"]["shots"] == 5 and summary["overrides"] == {}
    zero = run_task(
        m,
        t,
        "kmmlu",
        model_id="tiny",
        path=FIX / "kmmlu.jsonl",
        overrides={"shots": 0},
        cache=tmp_path,
        progress=False,
    )
    assert zero.meta["overrides"] == {"shots": {"registry": 5, "used": 0}}
    assert json.loads((zero.folder / "meta.json").read_text())["overrides"]["shots"]["used"] == 0


def test_bad_protocols_are_typed_errors(tiny, tmp_path):
    m, t = tiny
    kw = dict(model_id="tiny", cache=tmp_path, progress=False)
    with pytest.raises(EvalDataError, match="shots=5 but no few-shot split"):
        run_task(m, t, "kmmlu", path=FIX / "kmmlu.jsonl", **kw)
    with pytest.raises(
        EvalDataError, match=r"shots=6 is larger than the few-shot split of subject 'Korean-History' \(5"
    ):
        run_task(
            m,
            t,
            "kmmlu",
            path=FIX / "kmmlu.jsonl",
            fewshot_path=FIX / "kmmlu_dev.jsonl",
            overrides={"shots": 6},
            **kw,
        )
    with pytest.raises(EvalDataError, match=r"shots=9 is larger than the few-shot split \(6 items\)"):
        run_task(
            m,
            t,
            "koen_parallel",
            path=FIX / "koen_items.jsonl",
            fewshot_path=FIX / "koen_fewshot.jsonl",
            overrides={"shots": 9},
            **kw,
        )
    with pytest.raises(EvalDataError, match=r"subset\(s\) \['sports'\] not in the data"):
        run_task(m, t, "click", path=FIX / "click.jsonl", overrides={"subsets": ["sports"]}, **kw)
    with pytest.raises(UnknownGroupError, match="unknown group 'kobestt'"):
        get_group("kobestt")


def test_click_subset_applied_by_default(tiny, tmp_path):
    m, t = tiny
    res = run_task(m, t, "click", model_id="tiny", path=FIX / "click.jsonl", cache=tmp_path, progress=False)
    assert sorted(r["category"] for r in res.records) == ["politics", "popular", "tradition"]
    assert len(load_task("click", path=FIX / "click.jsonl")) == 6


def test_option_shuffle_keeps_the_gold_text():
    it = load_task("arc", path=FIX / "arc.jsonl")[0]
    sh = shuffle_options(it, 1234)
    assert sorted(sh.choices) == sorted(it.choices) and sh.choices[sh.label] == it.choices[it.label]
    assert sh == shuffle_options(it, 1234)  # deterministic
    orders = {tuple(shuffle_options(it, s).meta["option_order"]) for s in range(20)}
    assert len(orders) > 1  # the seed matters


def test_mmlu_subject_header_and_first_n_same_subject():
    items = load_task("mmlu", path=FIX / "mmlu.jsonl")
    cfg = PromptConfig(**{k: v for k, v in protocol("mmlu").items() if k != "subsets"})
    p = build_prompt(items[0], "mmlu", cfg)
    assert p.context.startswith(
        "The following are multiple choice questions (with answers) about high school mathematics.\n\n"
    )
    pool = items + [items[1]]
    shots = select_shots(items[0], pool, PromptConfig(shots=2, sampler="first_n", same_subject=True))
    assert shots == []  # no other item of the same subject


def test_wic_particle_follows_the_final_consonant():
    assert subject_particle("눈") == "눈이" and subject_particle("사과") == "사과가"
    assert subject_particle("배") == "배가" and subject_particle("말") == "말이"
    assert subject_particle("TV") == "TV이(가)"
    it = load_task("kobest_wic", path=FIX / "kobest_wic.jsonl")[0]
    fixed = build_prompt(it, "kobest_wic", PromptConfig(style="cloze")).context
    compat = build_prompt(it, "kobest_wic", PromptConfig(style="cloze", compat=True)).context
    assert f"두 문장에서 {subject_particle(it.question)} 같은 뜻으로" in fixed
    assert f"두 문장에서 {it.question}가 같은 뜻으로" in compat


def test_groups_are_explicit():
    assert GROUPS["kobest"].aggregation == "micro" and len(GROUPS["kobest"].members) == 5
    assert len(GROUPS["kmmlu"].members) == 45 and GROUPS["kmmlu_macro"].aggregation == "macro"
    assert all(m.split(":", 1)[0] in TASKS for g in GROUPS.values() for m in g.members)


def test_parallel_max_items_picks_the_same_pairs_in_both_languages():
    ko = load_task("koen_parallel", lang="ko", max_items=30)
    en = load_task("koen_parallel", lang="en", max_items=30)
    pk, pe = {it.meta["pair_id"] for it in ko}, {it.meta["pair_id"] for it in en}
    assert len(ko) == 30 and pe <= pk and len(pe) == len(en)
    assert pk - pe == {it.meta["pair_id"] for it in ko if it.category == "korean_culture"}
    assert load_fewshot("koen_parallel", lang="en")


def test_cli_follows_the_registry_and_records_overrides(tmp_path, capsys):
    base = [
        "eval",
        "run",
        "--task",
        "kmmlu",
        "--model",
        "tiny-llama",
        "--path",
        str(FIX / "kmmlu.jsonl"),
        "--cache",
        str(tmp_path / "c"),
        "--quiet",
    ]
    assert cli_main(base) == 1
    assert "shots=5 but no few-shot split" in capsys.readouterr().err
    assert cli_main([*base, "--fewshot-path", str(FIX / "kmmlu_dev.jsonl")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overrides"] == {}
    meta = json.loads((Path(out["folder"]) / "meta.json").read_text())
    assert meta["prompt"]["shots"] == 5 and meta["prompt"]["same_subject"]
    assert cli_main([*base, "--shots", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["overrides"] == {"shots": {"registry": 5, "used": 0}}
    assert (
        cli_main(
            [
                *base,
                "--shots",
                "0",
                "--task",
                "click",
                "--path",
                str(FIX / "click.jsonl"),
                "--subsets",
                "nope",
            ]
        )
        == 1
    )
    assert "subset(s) ['nope'] not in the data" in capsys.readouterr().err


def test_a_subject_config_names_the_subject_of_test_and_dev_items():
    test = load_task("kmmlu:Accounting", path=FIX / "kmmlu.jsonl")
    dev = load_fewshot("kmmlu:Accounting", path=FIX / "kmmlu_dev.jsonl")
    assert {it.category for it in test} == {it.category for it in dev} == {"Accounting"}
    assert {it.category for it in load_task("kmmlu", path=FIX / "kmmlu.jsonl")} == {"Korean-History", "Math"}
