"""The chapter harness must fail when a chapter's hidden assert fails."""

import json
import textwrap

from labkit import booktest

HEADER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3 (ipykernel)
  language: python
  name: python3
---

# Planted chapter
"""


def _chapter(path, claim: str):
    path.write_text(
        HEADER
        + textwrap.dedent(f"""
        ```{{code-cell}} ipython3
        x = 2 + 2
        ```

        ```{{code-cell}} ipython3
        :tags: [remove-cell]
        assert {claim}
        ```
        """),
        encoding="utf-8",
    )
    return path


def test_discover_skips_plain_pages(tmp_path):
    (tmp_path / "index.md").write_text("# A part page\n")
    ch = _chapter(tmp_path / "01_x.md", "x == 4")
    assert booktest.discover([tmp_path]) == [ch]


def test_conversion_keeps_the_remove_cell_tag(tmp_path):
    ch = _chapter(tmp_path / "01_x.md", "x == 4")
    (nb,) = booktest.convert([ch], tmp_path / "out", root=tmp_path)
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code[1]["metadata"]["tags"] == ["remove-cell"]
    assert not (tmp_path / "01_x.ipynb").exists()  # never next to the source


def test_passing_chapter_passes(tmp_path):
    ch = _chapter(tmp_path / "01_ok.md", "x == 4")
    assert booktest.run([ch], tmp_path / "out") == 0


def test_planted_failing_assert_fails_the_harness(tmp_path):
    ch = _chapter(tmp_path / "01_bad.md", "x == 5, 'planted failure'")
    assert booktest.run([ch], tmp_path / "out") != 0


def test_cache_key_depends_on_profile(monkeypatch):
    monkeypatch.setenv("LABKIT_PROFILE", "smoke")
    a = booktest.cache_key()
    monkeypatch.setenv("LABKIT_PROFILE", "cpu")
    assert booktest.cache_key() != a


def test_command_line_passes_out_and_pytest_options(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(booktest, "run", lambda paths, out, extra: seen.update(p=paths, o=out, e=extra) or 0)
    assert booktest.main(["run", "book/x.md", "--out", str(tmp_path), "-x", "-k", "Cell"]) == 0
    assert seen == {"p": ["book/x.md"], "o": tmp_path, "e": ["-x", "-k", "Cell"]}
