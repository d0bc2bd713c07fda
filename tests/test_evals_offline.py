"""LABKIT_OFFLINE governs ``datasets``: offline by default, a typed error naming the dataset."""

from __future__ import annotations

import os
import sys
import types

import pytest

from labkit.evals.errors import EvalDataError, OfflineDatasetError
from labkit.evals.tasks import load_task

HF_VARS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def _fake_datasets(monkeypatch: pytest.MonkeyPatch, *, cached: bool) -> list[dict]:
    """Install a stand-in ``datasets`` module whose ``load_dataset`` records the offline state."""
    calls: list[dict] = []
    config = types.SimpleNamespace(HF_HUB_OFFLINE=False, HF_DATASETS_OFFLINE=False)
    hub = types.ModuleType("huggingface_hub.constants")
    hub.HF_HUB_OFFLINE = False  # type: ignore[attr-defined]

    def load_dataset(path: str, name: str | None = None, split: str | None = None) -> list[dict]:
        offline = config.HF_HUB_OFFLINE
        calls.append(
            dict(
                path=path,
                name=name,
                env={k: os.environ.get(k) for k in HF_VARS},
                datasets_offline=offline,
                hub_offline=hub.HF_HUB_OFFLINE,  # type: ignore[attr-defined]
            )
        )
        if offline and not cached:
            raise FileNotFoundError(f"Dataset {path} is not cached")
        return [dict(paragraph="p", question="q", label=1)]

    module = types.ModuleType("datasets")
    module.load_dataset = load_dataset  # type: ignore[attr-defined]
    module.config = config  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    monkeypatch.setitem(sys.modules, "huggingface_hub.constants", hub)
    for k in HF_VARS:
        monkeypatch.delenv(k, raising=False)
    return calls


@pytest.mark.parametrize("value", [None, "1"])
def test_datasets_load_offline_by_default_and_restore_the_state(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("LABKIT_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("LABKIT_OFFLINE", value)
    calls = _fake_datasets(monkeypatch, cached=True)
    try:
        load_task("kobest_boolq", use_datasets=True)
    except EvalDataError as err:  # the stand-in record need not convert; only the call matters
        assert not isinstance(err, OfflineDatasetError)
    (call,) = calls
    assert call["env"] == dict.fromkeys(HF_VARS, "1")
    assert call["datasets_offline"] is True and call["hub_offline"] is True
    assert all(k not in os.environ for k in HF_VARS)  # restored after the call
    assert sys.modules["datasets"].config.HF_HUB_OFFLINE is False


def test_a_dataset_not_cached_raises_a_typed_error_naming_it(monkeypatch):
    monkeypatch.delenv("LABKIT_OFFLINE", raising=False)
    _fake_datasets(monkeypatch, cached=False)
    with pytest.raises(OfflineDatasetError, match="LABKIT_OFFLINE=0") as info:
        load_task("kobest_boolq", use_datasets=True)
    assert "skt/kobest_v1 (boolq)" in str(info.value)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_labkit_offline_0_lets_datasets_use_the_network(monkeypatch):
    monkeypatch.setenv("LABKIT_OFFLINE", "0")
    calls = _fake_datasets(monkeypatch, cached=False)
    try:
        load_task("kobest_boolq", use_datasets=True)
    except EvalDataError as err:
        assert not isinstance(err, OfflineDatasetError)
    (call,) = calls
    assert call["env"] == dict.fromkeys(HF_VARS) and call["datasets_offline"] is False
