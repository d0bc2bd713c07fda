"""The ablation table's rows: cumulative settings, early checks, reuse of work, measurements."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from labkit.config import ConversionSizes, MoESizes, Profile
from labkit.moe import ablation, moe_blocks, pipeline
from labkit.moe.ablation import ROWS, AblationRow
from labkit.moe.errors import MoEError

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = Profile(
    name="tiny",
    description="test",
    moe=MoESizes(
        model="tiny-llama",
        num_experts=4,
        method="contiguous",
        train_tokens=1024,
        valid_tokens=256,
        seq_len=64,
        batch_tokens=128,
        heldout_tokens=256,
        eval_items=8,
        front_evals=2,
        ablation_train_tokens=256,
        ablation_valid_tokens=128,
    ),
)


def test_rows_are_cumulative_and_use_the_ablation_budget():
    rows = ablation.resolve("smoke")
    assert [r.name for r in rows] == [r.name for r in ROWS]
    # smoke's ablation budget, every row
    assert {(r.config.train_tokens, r.config.valid_tokens) for r in rows} == {(512, 256)}
    prune, kmeans, shared, fine, sens, alloc, s3 = rows
    assert prune.prune and not prune.stage3
    k = kmeans.config
    assert (k.method, k.num_experts, k.shared_fraction) == ("kmeans", 8, 0)
    assert not kmeans.config.sensitivity and kmeans.config.min_k_fraction == 0
    assert not kmeans.config.allocate_first
    assert shared.config == replace(kmeans.config, shared_fraction=0.25)
    assert fine.config == replace(shared.config, num_experts=48, method="activation")
    assert sens.config == replace(fine.config, sensitivity=True, min_k_fraction=1 / 6)
    assert alloc.config == replace(sens.config, allocate_first=True)
    assert s3.config == alloc.config and s3.stage3 and not alloc.stage3
    # the last conversion row is the book's recipe (smoke and cpu), at the ablation budget
    smoke = ablation.get_profile("smoke").moe
    recipe = {f: getattr(smoke, f) for f in ConversionSizes.__dataclass_fields__}
    assert s3.config == pipeline.ConversionConfig.from_profile(
        "smoke", **{**recipe, "train_tokens": 512, "valid_tokens": 256}
    )


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu-tiny"])
def test_every_cpu_profile_resolves_with_a_smaller_budget(name):
    profile = ablation.get_profile(name)
    rows = ablation.resolve(profile)
    assert {r.config.train_tokens for r in rows} == {profile.moe.ablation_train_tokens}
    assert profile.moe.ablation_train_tokens < profile.moe.train_tokens
    assert profile.moe.ablation_valid_tokens <= profile.moe.valid_tokens


def test_bad_settings_fail_before_anything_runs():
    small = replace(TINY, moe=replace(TINY.moe, ablation_train_tokens=32))
    with pytest.raises(MoEError, match="ablation_train_tokens=32 must be an integer ≥ seq_len=64"):
        ablation.resolve(small)
    with pytest.raises(MoEError, match="ablation_train_tokens=32"):
        ablation.run_ablation(small)  # checked before the dense model loads
    with pytest.raises(MoEError, match=r"\['num_expert'\] are not ConversionConfig fields"):
        ablation.resolve(TINY, [AblationRow("typo", {"num_expert": 4})])
    with pytest.raises(MoEError, match="shared_fraction=1.5"):
        ablation.resolve(TINY, [AblationRow("a"), AblationRow("b", {"shared_fraction": 1.5})])
    with pytest.raises(MoEError, match=r"overrides \['train_tokens'\], the ablation's budget"):
        ablation.resolve(TINY, [AblationRow("more data", {"train_tokens": 4096})])
    small = replace(TINY, moe=replace(TINY.moe, ablation_valid_tokens=10))
    with pytest.raises(MoEError, match="ablation_valid_tokens=10 must be"):
        ablation.resolve(small)
    with pytest.raises(MoEError, match="at least one row"):
        ablation.resolve(TINY, [])


def test_ablation_on_a_tiny_model(tmp_cache):
    rows = [
        AblationRow("prune", prune=True),
        AblationRow("4 experts", {"num_experts": 4}),
        AblationRow("+ sensitivity", {"sensitivity": True, "min_k_fraction": 0.25}),
        AblationRow("+ stage 3", stage3=True),
    ]
    resolved = ablation.resolve(TINY, rows)
    ref = ablation.reference(TINY)
    dense, results = ablation.run_ablation(TINY, rows, ref=ref)
    assert dense.ppl == ref.ppl and dense.reduction == 0
    assert [r.name for r in results] == [r.name for r in rows]
    for r in results:
        assert math.isclose(r.ppl_ratio, r.ppl / ref.ppl)
        assert 0 <= r.accuracy <= 1 and r.seconds > 0
        assert r.reduction >= TINY.moe.target_reduction - 0.05, r  # measured on test tokens
    prune, conv, sens, s3 = results
    assert not conv.reused_stage1 and sens.reused_stage1  # only stage 2 was rerun
    # the rerun stage 2 chooses what the full conversion of that config chooses, and its
    # choice is cached like a conversion (a second run reads it)
    _, _, report = pipeline.convert(resolved[2].config, progress=False)
    assert len(list((tmp_cache / "moe" / "ablation-stage2").glob("*.json"))) == 1
    previous = None
    for row in resolved[1:3]:
        again, previous = ablation.run_row(row, ref, previous=previous)
    assert again == sens  # the same policies, measurements and recorded seconds
    assert previous is not None and previous.config == resolved[2].config
    assert [b.policy.spec() for b in moe_blocks(previous.model)] == report["chosen_policy"]
    # stage 3 trains a copy: the row before it is unchanged, and the KL training moved the model
    assert s3.ppl != sens.ppl
