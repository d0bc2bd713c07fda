"""Shared pytest fixtures. Every test runs with its own empty labkit cache unless it asks for the
real model (marked ``slow``), which uses the session's ``LABKIT_CACHE`` if set."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty, private ``LABKIT_CACHE``."""
    path = tmp_path / "labkit-cache"
    monkeypatch.setenv("LABKIT_CACHE", str(path))
    return path


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Tests never download: force transformers and labkit offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    if "LABKIT_PROFILE" in os.environ:
        monkeypatch.delenv("LABKIT_PROFILE")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny ops are dominated by OpenMP synchronisation on a busy 2-core machine: use one thread.

    Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
