"""Chapters as integration tests: convert MyST chapters to notebooks and run them under nbval.

Chapters are MyST Markdown text notebooks (``book/**/*.md`` with a ``jupytext``/``kernelspec``
front matter). nbval only collects ``.ipynb`` files, so :func:`convert` writes notebooks to a
build folder (``build/nb/`` by default, never under ``book/``) and :func:`run` executes them with
``pytest --nbval-lax --nbval-current-env``: a cell that raises — in particular a hidden
``remove-cell`` assert cell — fails the test.

Command line::

    python -m labkit.booktest run [PATH ...] [--out DIR] [pytest options]   # default: book/
    python -m labkit.booktest list [PATH ...]
    python -m labkit.booktest cache-key        # the book cache's key (src/labkit, profile)
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .config import get_profile
from .paths import atomic_write_text

__all__ = ["cache_key", "convert", "discover", "is_chapter", "run"]

DEFAULT_OUT = Path("build") / "nb"
SANITIZE = """\
[dates]
regex: \\d{4}-\\d{2}-\\d{2}
replace: DATE
[times]
regex: \\d{2}:\\d{2}:\\d{2}(\\.\\d+)?
replace: TIME
[memory addresses]
regex: (<[a-zA-Z_][0-9a-zA-Z_.]* at )(0x[0-9a-fA-F]+)(>)
replace: \\1ADDRESS\\3
[figure size]
regex: (Figure size )\\d+x\\d+( with \\d+ Axes)
replace: \\1WxH\\2
[durations]
regex: \\d+(\\.\\d+)?\\s?(s|ms|min)\\b
replace: DURATION
[progress bars]
regex: \\d+it/s|\\d+\\.\\d+s/it
replace: RATE
"""


def is_chapter(path: Path) -> bool:
    """True for a MyST Markdown *notebook* (front matter with a ``kernelspec``), not a plain page."""
    if path.suffix != ".md" or not path.is_file():
        return False
    head = path.read_text(encoding="utf-8")[:2000]
    if not head.startswith("---"):
        return False
    front = head.split("---", 2)[1] if head.count("---") >= 2 else ""
    return "kernelspec:" in front


def discover(paths: Sequence[str | Path] = ("book",)) -> list[Path]:
    """All chapter notebooks under ``paths`` (files or folders), sorted."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"no such chapter or folder: {p}")
        candidates = [p] if p.is_file() else p.rglob("*.md")
        for c in candidates:
            if "_build" in c.parts or ".ipynb_checkpoints" in c.parts:
                continue
            if is_chapter(c):
                found.add(c)
            elif p.is_file():
                raise ValueError(f"{p} is not a MyST notebook (no jupytext/kernelspec front matter)")
    return sorted(found)


def _relative(path: Path, root: Path) -> Path:
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return Path(path.name)


def convert(chapters: Iterable[Path], out_dir: Path = DEFAULT_OUT, root: Path | None = None) -> list[Path]:
    """Convert MyST chapters to ``.ipynb`` files under ``out_dir`` (mirroring their paths).

    Returns the notebook paths. Outputs are empty (unexecuted), as jupytext writes them.
    """
    import jupytext

    root = Path.cwd() if root is None else root
    out: list[Path] = []
    for md in chapters:
        nb = jupytext.read(md, fmt="md:myst")
        target = out_dir / _relative(md, root).with_suffix(".ipynb")
        atomic_write_text(target, jupytext.writes(nb, fmt="ipynb"))
        out.append(target)
    return out


def run(
    paths: Sequence[str | Path] = ("book",),
    out_dir: Path = DEFAULT_OUT,
    pytest_args: Sequence[str] = (),
) -> int:
    """Convert chapters under ``paths`` and execute them with nbval; return pytest's exit code.

    A chapter whose cell raises (e.g. a failing hidden assert) makes the return code non-zero.
    """
    chapters = discover(paths)
    if not chapters:
        print(f"booktest: no chapters found under {list(map(str, paths))}", file=sys.stderr)
        return 5
    notebooks = convert(chapters, out_dir)
    sanitize = out_dir / "nbval_sanitize.cfg"
    atomic_write_text(sanitize, SANITIZE)
    profile = get_profile()
    print(f"booktest: {len(notebooks)} chapter(s), LABKIT_PROFILE={profile.name}", flush=True)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-sanitize-with={sanitize}",
        "-p",
        "no:cacheprovider",
        "--durations=0",
        "-o",
        "addopts=",
        "-o",
        "testpaths=",
        *pytest_args,
        *map(str, notebooks),
    ]
    t0 = time.perf_counter()
    code = subprocess.call(cmd)
    print(f"booktest: chapters took {time.perf_counter() - t0:.0f} s (exit {code})", flush=True)
    return code


def cache_key(root: Path | None = None) -> str:
    """Hash of everything that should invalidate executed chapters: labkit's source and data,
    ``pyproject.toml`` and the active profile (jupyter-cache alone only hashes code cells)."""
    root = Path(__file__).resolve().parents[2] if root is None else root
    h = hashlib.sha256()
    h.update(get_profile().name.encode())
    pkg = Path(__file__).resolve().parent
    for f in sorted(pkg.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(pkg)).encode())
            h.update(f.read_bytes())
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        h.update(pyproject.read_bytes())
    return h.hexdigest()[:16]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.booktest", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="convert chapters and run them under nbval")
    p_run.add_argument("paths", nargs="*", default=["book"])
    p_run.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p_list = sub.add_parser("list", help="list chapter notebooks")
    p_list.add_argument("paths", nargs="*", default=["book"])
    sub.add_parser("cache-key", help="print the book cache key")
    args, extra = parser.parse_known_args(argv)
    if args.cmd == "run":
        return run(args.paths, args.out, [a for a in extra if a != "--"])
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.cmd == "list":
        for c in discover(args.paths):
            print(c)
        return 0
    print(cache_key())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
