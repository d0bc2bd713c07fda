"""benchmarks/gpu_check.py runs its stages at a tiny shape on CPU (the CUDA run is the same code)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_gpu_check_runs_every_stage(gpu_check, tmp_path, tmp_cache, capsys):
    out = tmp_path / "gc.json"
    res = gpu_check.main(["--tiny", "--tokens", "512", "--out", str(out)])
    assert json.loads(out.read_text())["shape"] == "tiny"
    stages = [
        "build",
        "capture",
        "moefy",
        "distill",
        "search",
        "front_eval",
        "throughput",
        "sync+determinism",
    ]
    assert list(res["stages"]) == stages
    assert all(st["seconds"] >= 0 for st in res["stages"].values())
    assert res["conversion"]["reduction"] >= 0.1 - 1e-9
    assert [(r["phase"], r["batch"]) for r in res["throughput"]] == [
        ("prefill", 1),
        ("prefill", 32),
        ("decode", 1),
        ("decode", 32),
    ]
    for row in res["throughput"]:
        # labkit's block and transformers' Mixtral block compute the same function (float32 here)
        assert row["rel_diff_vs_mixtral"] < 1e-5 and math.isfinite(row["efficiency"])
    assert res["checks"]["distill_bit_identical"]  # CPU: bit-identical reruns
    printed = capsys.readouterr().out
    assert "efficiency" in printed and "peak GPU MB" in printed
