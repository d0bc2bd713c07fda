import os

import pytest

from labkit import book, paths


def test_cache_dir_from_env(tmp_cache):
    assert paths.cache_dir() == tmp_cache and tmp_cache.is_dir()


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    paths.atomic_write_text(target, "one")
    paths.atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert os.listdir(target.parent) == ["f.txt"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    paths.atomic_write_text(target, "old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        paths.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_glue_records_values():
    assert book.glue("answer", 42) is None  # nothing echoed at the end of a cell
    assert book.GLUED["answer"] == 42
    with pytest.raises(ValueError):
        book.glue("", 1)


def test_show_profile(capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    assert book.show_profile().name == "smoke"
    assert "LABKIT_PROFILE=smoke" in capsys.readouterr().out
