"""Rows of dicts as Markdown tables, for the chapters' ``Markdown(...)`` cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import EvalError

__all__ = ["md_table"]


def md_table(
    rows: Sequence[Mapping], columns: Sequence[str] | None = None, formats: Mapping[str, str] | None = None
) -> str:
    """Rows of dicts as a Markdown table (``formats`` maps a column to a format spec like ``".3f"``)."""
    if not rows:
        raise EvalError("md_table needs at least one row")
    cols = list(columns or rows[0])
    formats = formats or {}

    def cell(r: Mapping, c: str) -> str:
        v = r.get(c, "")
        if v is None:
            return "—"
        if c in formats and isinstance(v, (int, float)):
            return format(v, formats[c])
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join("| " + " | ".join(cell(r, c) for c in cols) + " |\n" for r in rows)
