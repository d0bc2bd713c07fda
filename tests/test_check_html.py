"""tools/check_html.py in headless Chromium on two tiny pages: the overflow check must still catch a
code line wider than its box (input or output), and pass lines that fit or that an output wraps.

Skipped where Chromium or websocket-client is missing (CI installs both before check-html)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("websocket")
if not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")):
    pytest.skip("no Chromium on PATH", allow_module_level=True)

TOOL = Path(__file__).resolve().parents[1] / "tools" / "check_html.py"
CSS = Path(__file__).resolve().parents[1] / "book" / "_static" / "labkit.css"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>
pre {{ width: 400px; font-family: monospace; overflow: auto; }}</style>{css}</head><body><main>
<article class="bd-article"><h2>Code</h2>
<div class="cell_input"><pre>{code}</pre></div>
<div class="cell_output"><div class="output stream highlight-myst-ansi"><pre>{out}</pre></div></div>
</article></main></body></html>"""


@pytest.fixture(scope="module")
def check_html():
    spec = importlib.util.spec_from_file_location("check_html", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run(check_html, tmp_path: Path, code: str, out: str, with_css: bool = True) -> dict:
    html = tmp_path / "html"
    html.mkdir()
    css = f"<style>{CSS.read_text(encoding='utf-8')}</style>" if with_css else ""
    (html / "index.html").write_text(PAGE.format(css=css, code=code, out=out), encoding="utf-8")
    rc = check_html.main([str(html), "--out", str(tmp_path / "shots"), "--timeout", "60"])
    report = json.loads((tmp_path / "shots" / "report.json").read_text())
    return {"rc": rc, "problems": report["pages"][0]["problems"]}


def test_wide_code_line_fails(check_html, tmp_path):
    res = _run(check_html, tmp_path, code="x = 1  # " + "a" * 120, out="short")
    assert res["rc"] == 1
    assert len(res["problems"]["overflow"]) == 1
    assert res["problems"]["overflow"][0].startswith("code cell: ")


def test_short_lines_pass_and_wide_output_wraps(check_html, tmp_path):
    res = _run(check_html, tmp_path, code="x = 1", out="word " * 40)
    assert res["rc"] == 0, res["problems"]


def test_wide_output_without_the_book_css_fails(check_html, tmp_path):
    res = _run(check_html, tmp_path, code="x = 1", out="word " * 40, with_css=False)
    assert res["rc"] == 1
    assert res["problems"]["overflow"][0].startswith("output: ")


def test_unbreakable_output_line_fails(check_html, tmp_path):
    # pre-wrap breaks at spaces only: a single token wider than the box still overflows
    res = _run(check_html, tmp_path, code="x = 1", out="9" * 120)
    assert res["rc"] == 1
    assert res["problems"]["overflow"][0].startswith("output: ")
