"""ARC as HyperCLOVA X scored it: shuffled options, a generated answer, prefix match against the options.

The protocol runs end to end on ARC-shaped fixture items (written for this project; no network) with
the tiny random model, whose generations are replaced by scripted replies where the test needs to
know what the model "said"; one test lets the tiny model generate for real.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import labkit.evals.runner as runner
from labkit.cli import main as cli_main
from labkit.evals import EvalDataError, EvalError, Item, PromptConfig, evaluate, load_task, run_task
from labkit.evals.lmeval import to_lm_eval_results
from labkit.evals.prompts import shuffle_options
from labkit.evals.results import ResultStore, run_key
from labkit.evals.runner import resolve_protocol
from labkit.evals.scoring import match_option
from labkit.evals.tasks import protocol
from labkit.models import tiny_llama

pytestmark = pytest.mark.usefixtures("one_thread")

FIX = Path(__file__).parent / "fixtures" / "evals"
ARC = FIX / "arc_generate.jsonl"
ARC_TRAIN = FIX / "arc_generate_train.jsonl"

#: What the scripted "model" answers to each question (text after the stop string was cut).
REPLIES = {
    "Which gas do plants take in to make food?": "Carbon dioxide, from the air.",  # right, runs on
    "What is the main source of energy for the water cycle?": "  THE   SUN!",  # right: case, space, !
    "What is the boiling point of water at sea level?": "100 °C at sea level",  # right
    "Which tool measures mass?": "a ruler",  # names another option
    "Which is a renewable resource?": "The answer is solar energy",  # names none
    "Which metal is the main part of steel?": "Iron oxide.",  # gold 'iron': names 'iron oxide'
    "What do iron objects form when they rust?": "iron",  # gold 'iron oxide': names 'iron'
}
EXPECT_ACC = [True, True, True, False, False, False, False]
EXPECT_EXACT = [False, True, False, False, False, False, False]


@pytest.fixture(scope="module")
def tiny():
    return tiny_llama("tiny-llama", seed=1)


def _question(prompt: str) -> str:
    return prompt.rsplit("Question: ", 1)[1].split("\n", 1)[0]


class Scripted:
    """Stands in for :func:`labkit.evals.lm.generate_until`: answers from :data:`REPLIES`, counts the
    prompts it answered, and raises ``KeyboardInterrupt`` on call number ``fail_on`` (a killed run)."""

    def __init__(self, fail_on: int | None = None):
        self.calls: list[dict] = []
        self.fail_on = fail_on

    def __call__(self, model, tokenizer, prompts, **kw):
        self.calls.append(dict(kw, prompts=list(prompts)))
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            raise KeyboardInterrupt
        return [[REPLIES[_question(p)]] for p in prompts]

    @property
    def n_prompts(self) -> int:
        return sum(len(c["prompts"]) for c in self.calls)


def _run(tiny, root, **kw):
    m, t = tiny
    kw.setdefault("overrides", {"shots": 2})
    return run_task(
        m, t, "arc", model_id="tiny", path=ARC, fewshot_path=ARC_TRAIN, cache=root, progress=False, **kw
    )


# --------------------------------------------------------------------------- the matching rule
@pytest.mark.parametrize(
    "reply,options,named",
    [
        ("light", ["light", "sound"], 0),
        ("  LIGHT ", ["light", "sound"], 0),  # case and surrounding whitespace
        ("Light, because plants need it.", ["light", "sound"], 0),  # runs on past the answer
        ("light.", ["Light!", "sound"], 0),  # ASCII punctuation on either side
        ("carbon   dioxide", ["carbon dioxide", "carbon"], 0),  # inner whitespace collapsed
        ("carbon dioxide", ["carbon", "carbon dioxide"], 1),  # longest matching option wins
        ("carbon", ["carbon", "carbon dioxide"], 0),  # a shorter option is not the longer one
        ("lighter", ["light", "sound"], None),  # the match must end at a word boundary
        ("100 °Cm", ["100 °C", "50 °C"], None),
        ("The answer is light", ["light", "sound"], None),  # a prefix, not a substring
        ("", ["light", "sound"], None),
        ("light", ["light", "Light.", "sound"], None),  # the same text twice: cannot tell them apart
        ("anything", ["?", "sound"], None),  # an option empty after normalisation is never named
        ("서울입니다", ["서울", "부산"], None),  # Hangul letters continue the word
        ("서울, 한국의 수도", ["서울", "부산"], 0),
    ],
)
def test_match_option_rule(reply, options, named):
    assert match_option(reply, options) == named


def test_match_option_switches():
    assert match_option("LIGHT", ["light", "sound"], ignore_case=False) is None
    assert match_option("light.", ["light!", "sound"], ignore_punctuation=False) is None


# --------------------------------------------------------------------------- registry and overrides
def test_registry_selects_generation_for_arc_and_letters_stays_an_override():
    cfg, _, dev = resolve_protocol("arc")
    assert cfg.style == "generate" and cfg.shuffle_options and cfg.shots == 25 and dev == {}
    assert cfg.max_new_tokens == protocol("arc")["max_new_tokens"] == 64 and cfg.until == ("\n",)
    letters, _, dev = resolve_protocol("arc", overrides={"style": "letters"})
    assert letters.shuffle_options and dev == {"style": {"registry": "generate", "used": "letters"}}
    _, _, dev = resolve_protocol("arc", overrides={"max_new_tokens": 16, "until": ["\n", "."]})
    assert dev == {
        "max_new_tokens": {"registry": 64, "used": 16},
        "until": {"registry": ("\n",), "used": ("\n", ".")},
    }
    # generation settings mean nothing to other styles: never an override there, never in their keys
    _, _, dev = resolve_protocol("kmmlu", overrides={"max_new_tokens": 16})
    assert dev == {}
    assert "max_new_tokens" not in PromptConfig().as_dict() and "until" not in PromptConfig().as_dict()
    assert {"max_new_tokens", "until"} <= set(PromptConfig(style="generate").as_dict())
    assert run_key(prompt=PromptConfig(max_new_tokens=8).as_dict()) == run_key(
        prompt=PromptConfig().as_dict()
    )


def test_gpu_profile_runs_arc_by_generation_and_smoke_cpu_run_no_public_benchmark():
    from labkit.config import get_profile

    gpu = get_profile("gpu").evals
    arc = [t for t in gpu.public_tasks if t.startswith("arc")]
    assert arc == ["arc:ARC-Easy", "arc:ARC-Challenge"]
    assert all(resolve_protocol(t)[0].style == "generate" for t in arc)  # no override: the registry's
    for name in ("smoke", "cpu", "gpu-tiny"):
        assert get_profile(name).evals.public_tasks == ()


# --------------------------------------------------------------------------- end to end
def test_protocol_end_to_end(tiny, tmp_path, monkeypatch):
    gen = Scripted()
    monkeypatch.setattr(runner, "generate_until", gen)
    res = _run(tiny, tmp_path)
    assert [r["correct"]["acc"] for r in res.records] == EXPECT_ACC
    assert [r["correct"]["exact_match"] for r in res.records] == EXPECT_EXACT
    # greedy, the registry's budget and stop string, every item once
    assert gen.n_prompts == 7 and all(c["max_new_tokens"] == 64 and c["until"] == ("\n",) for c in gen.calls)
    by_id = {r["id"]: r for r in res.records}
    steel = by_id["Mercury_G06"]
    assert steel["options"][steel["matched"]] == steel["matched_text"] == "iron oxide"
    assert steel["options"][steel["label"]] == "iron" and steel["preds"]["acc"] == steel["matched"]
    none = by_id["Mercury_G05"]
    assert none["matched"] is None and none["matched_text"] is None and none["preds"]["acc"] == -1
    for rec in res.records:
        # options as shown = the original options in the recorded (seeded) order; the gold follows
        orig = next(it for it in load_task("arc", path=ARC) if it.id == rec["id"])
        assert rec["options"] == [orig.choices[i] for i in rec["option_order"]]
        assert rec["options"][rec["label"]] == orig.choices[orig.label]
        assert rec["generation"] == REPLIES[_question(rec["context"])]
        # the prompt lists the options, without letters, then two shots that end in their gold text
        blocks = rec["context"].split("\n\n")
        assert len(blocks) == 3 == len(rec["shot_ids"]) + 1
        assert blocks[-1].endswith("\nAnswer:") and "\n".join(f"- {o}" for o in rec["options"]) in blocks[-1]
        for block, sid in zip(blocks[:-1], rec["shot_ids"], strict=True):
            shot = shuffle_options(next(s for s in load_task("arc", path=ARC_TRAIN) if s.id == sid), 1234)
            assert block.endswith(f"\nAnswer: {shot.choices[shot.label]}")
            assert "\n".join(f"- {o}" for o in shot.choices) in block
    # summary with CI, as for every task; the folder holds the usual files
    acc = res.estimate("acc")
    assert acc.value == pytest.approx(3 / 7) and acc.n == 7 and acc.ci[0] < acc.value < acc.ci[1]
    assert set(res.summary["metrics"]) == {"acc", "exact_match"}
    assert {p.name for p in res.folder.iterdir()} >= {"items.jsonl", "summary.json", "meta.json"}
    saved = [json.loads(x) for x in (res.folder / "items.jsonl").read_text("utf-8").splitlines()]
    assert saved == res.records
    meta = json.loads((res.folder / "meta.json").read_text("utf-8"))
    assert meta["prompt"]["style"] == "generate" and meta["prompt"]["max_new_tokens"] == 64
    assert meta["prompt"]["until"] == ["\n"] and meta["overrides"] == {"shots": {"registry": 25, "used": 2}}
    # a second run reads the cache: nothing generated
    again = _run(tiny, tmp_path)
    assert again.scored_now == 0 and again.records == res.records and gen.n_prompts == 7


def test_letters_override_is_recorded_and_cached_apart(tiny, tmp_path):
    gen_run = _run(tiny, tmp_path, overrides={"shots": 0, "max_new_tokens": 2})
    letters = _run(tiny, tmp_path, overrides={"shots": 0, "style": "letters"})
    assert letters.folder != gen_run.folder
    assert letters.meta["overrides"]["style"] == {"registry": "generate", "used": "letters"}
    assert "max_new_tokens" not in letters.meta["prompt"] and "p_gold" in letters.records[0]
    # both shuffle with the same seed: the letters prompt shows the same options in the same order
    for lr, gr in zip(letters.records, gen_run.records, strict=True):
        assert "\n".join(f"{a}. {o}" for a, o in zip("ABCD", gr["options"], strict=False)) in lr["context"]
        assert lr["label"] == gr["label"]


def test_shuffle_is_seeded_and_recorded(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "generate_until", Scripted())
    a = _run(tiny, tmp_path / "a")
    b = _run(tiny, tmp_path / "b")
    assert [r["option_order"] for r in a.records] == [r["option_order"] for r in b.records]
    assert [r["context"] for r in a.records] == [r["context"] for r in b.records]
    assert any(r["option_order"] != [0, 1, 2, 3] for r in a.records)  # shuffled, not left in place
    other = _run(tiny, tmp_path / "c", overrides={"shots": 2, "seed": 7})
    assert [r["option_order"] for r in other.records] != [r["option_order"] for r in a.records]
    # the gold option is found wherever the shuffle puts it: the same replies, the same verdicts
    assert [r["correct"]["acc"] for r in other.records] == EXPECT_ACC
    unshuffled = _run(tiny, tmp_path / "d", overrides={"shots": 2, "shuffle_options": False})
    assert all(r["option_order"] is None for r in unshuffled.records)
    assert [r["correct"]["acc"] for r in unshuffled.records] == EXPECT_ACC


def test_killed_run_resumes_without_regenerating(tiny, tmp_path, monkeypatch):
    m, t = tiny
    items = [shuffle_options(it, 1234) for it in load_task("arc", path=ARC)]
    cfg = PromptConfig(style="generate", shuffle_options=True)
    killed = Scripted(fail_on=2)
    monkeypatch.setattr(runner, "generate_until", killed)
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            m, t, items, template="arc", prompt=cfg, store=ResultStore(tmp_path), chunk_size=3, progress=False
        )
    assert len(ResultStore(tmp_path)) == 3  # the first chunk is on disk
    resumed = Scripted()
    monkeypatch.setattr(runner, "generate_until", resumed)
    records, scored = evaluate(
        m, t, items, template="arc", prompt=cfg, store=ResultStore(tmp_path), chunk_size=3, progress=False
    )
    assert scored == 4 and resumed.n_prompts == 4  # only the items without a record
    assert {_question(p) for c in resumed.calls for p in c["prompts"]} == {it.question for it in items[3:]}
    assert [r["correct"]["acc"] for r in records] == EXPECT_ACC
    # an edited item is generated afresh, the others are not
    edited = [
        dataclasses.replace(items[0], question=items[0].question.replace("gas", "gas, in air,")),
        *items[1:],
    ]
    REPLIES[edited[0].question] = "oxygen"
    try:
        records, scored = evaluate(
            m, t, edited, template="arc", prompt=cfg, store=ResultStore(tmp_path), progress=False
        )
    finally:
        del REPLIES[edited[0].question]
    assert scored == 1 and records[0]["generation"] == "oxygen" and not records[0]["correct"]["acc"]


def test_real_tiny_model_generates(tiny, tmp_path):
    res = _run(tiny, tmp_path, overrides={"shots": 1, "max_new_tokens": 3})
    assert res.scored_now == 7 and all(isinstance(r["generation"], str) for r in res.records)
    for r in res.records:  # whatever the random model wrote, the verdict follows the rule
        named = match_option(r["generation"], r["options"])
        assert r["matched"] == named and r["correct"]["acc"] == (named == r["label"])
        assert "\n" not in r["generation"]  # cut at the stop string
    assert 0 <= res.estimate("acc").value <= 1


def test_lm_eval_export_of_a_generation_task(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "generate_until", Scripted())
    easy = _run(tiny, tmp_path)
    challenge = dataclasses.replace(easy, task="arc:ARC-Challenge", records=easy.records[:4])
    out = to_lm_eval_results({"arc:ARC-Easy": easy, "arc:ARC-Challenge": challenge}, groups=["arc_all"])
    conf = out["configs"]["arc:ARC-Easy"]
    assert conf["output_type"] == "generate_until"
    assert conf["generation_kwargs"] == {"until": ["\n"], "do_sample": False, "max_gen_toks": 64}
    assert [m["metric"] for m in conf["metric_list"]] == ["acc", "exact_match"]
    r = out["results"]["arc:ARC-Easy"]
    assert r["acc,none"] == pytest.approx(3 / 7) and r["exact_match,none"] == pytest.approx(1 / 7)
    assert out["groups"]["arc_all"]["acc,none"] == pytest.approx((3 + 3) / (7 + 4))  # micro
    json.dumps(out)
    try:
        from lm_eval.utils import make_table
    except ImportError:
        return
    assert "arc:ARC-Easy" in make_table(out)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("budget", [0, -3, True, 2.5])
def test_generation_budget_must_be_positive(budget):
    with pytest.raises(EvalError, match=rf"PromptConfig.max_new_tokens={budget!r} must be an int >= 1"):
        PromptConfig(style="generate", max_new_tokens=budget)
    with pytest.raises(EvalError, match="max_new_tokens"):
        resolve_protocol("arc", overrides={"max_new_tokens": budget})


def test_stop_strings_must_be_strings():
    with pytest.raises(EvalError, match=r"PromptConfig.until='\\n' must be a sequence"):
        PromptConfig(style="generate", until="\n")


def test_empty_gold_text_and_missing_gold_are_typed_errors(tiny, tmp_path, monkeypatch):
    m, t = tiny
    gen = Scripted()
    monkeypatch.setattr(runner, "generate_until", gen)
    cfg = PromptConfig(style="generate")
    good = load_task("arc", path=ARC)[0]
    empty = Item("q-empty", "Which?", ("...", "light"), 0)  # '...' is nothing once punctuation goes
    with pytest.raises(EvalDataError, match=r"item 'q-empty': gold option choices\[0\]='\.\.\.' is empty"):
        evaluate(m, t, [good, empty], template="arc", prompt=cfg, store=ResultStore(tmp_path), progress=False)
    open_ended = Item("q-open", "Say hi", (), -1, answer="hi")
    with pytest.raises(EvalDataError, match=r"item 'q-open': field 'label'=-1 names no option"):
        evaluate(m, t, [open_ended], template="arc", prompt=cfg, progress=False)
    assert gen.calls == [] and not (tmp_path / "items.jsonl").exists()  # nothing generated or written
    with pytest.raises(EvalError, match="max_new_tokens=64 leaves no room"):
        evaluate(m, t, [good], template="arc", prompt=cfg, progress=False, max_length=64)


def test_cli_generation_run_and_overrides(tmp_path, capsys):
    base = ["eval", "run", "--task", "arc", "--model", "tiny-llama", "--path", str(ARC)]
    base += ["--fewshot-path", str(ARC_TRAIN), "--cache", str(tmp_path / "c"), "--quiet"]
    assert cli_main([*base, "--shots", "1", "--max-new-tokens", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 7 and set(printed["metrics"]) == {"acc", "exact_match"}
    assert printed["overrides"]["max_new_tokens"] == {"registry": 64, "used": 2}
    assert cli_main([*base, "--shots", "1", "--style", "letters"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["overrides"]["style"] == {"registry": "generate", "used": "letters"}
    assert cli_main([*base, "--max-new-tokens", "0"]) == 1
    assert "PromptConfig.max_new_tokens=0 must be an int >= 1" in capsys.readouterr().err
