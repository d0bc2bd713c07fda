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


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu-tiny", "gpu"])
def test_show_profile_lines_fit_the_page(capsys, monkeypatch, name):
    monkeypatch.setenv("LABKIT_PROFILE", name)
    book.show_profile()
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= book.LINE_WIDTH
    assert " ".join(out.split()) == " ".join(book.get_profile().summary().split())  # nothing lost


def test_glue_many():
    assert book.glue_many({"a b": 1}, c=2, d=3.5) is None
    assert (book.GLUED["a b"], book.GLUED["c"], book.GLUED["d"]) == (1, 2, 3.5)
    with pytest.raises(ValueError, match="both"):
        book.glue_many({"c": 1}, c=2)
    with pytest.raises(ValueError):
        book.glue_many({"": 1})


def test_atomic_file_replaces_whole_or_not_at_all(tmp_path):
    from labkit.storage import StorageError, atomic_file

    target = tmp_path / "sub" / "out.bin"
    with atomic_file(target, ".bin") as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".bin") and tmp != target
        tmp.write_bytes(b"new")  # any writer (safetensors, a compiler) writes the path
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"new"  # untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]  # no temporary left
    with pytest.raises(StorageError, match="cannot write"), atomic_file(target):
        pass  # the block wrote nothing: an error naming the target, not a silent empty file
    assert paths.atomic_write_text(target, "text") == target and target.read_text() == "text"
