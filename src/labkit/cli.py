"""The ``labkit`` command line: ``labkit <group> ...``.

Each group lives in its subpackage as ``labkit.<group>.cli.register(subparsers)``; groups whose
modules are missing are simply not offered.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from . import __version__
from .config import get_profile

__all__ = ["main"]

GROUPS = ("moe", "evals", "flagella")


def _profile(args: argparse.Namespace) -> int:
    print(get_profile().summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available group registered."""
    parser = argparse.ArgumentParser(prog="labkit", description="labkit: the textbook's library")
    parser.add_argument("--version", action="version", version=f"labkit {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND")
    p = sub.add_parser("profile", help="show the active LABKIT_PROFILE")
    p.set_defaults(func=_profile)
    for group in GROUPS:
        try:
            mod = importlib.import_module(f"labkit.{group}.cli")
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("labkit."):
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``labkit`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError) as err:  # OSError: I/O errors name the file (labkit.storage)
        where = _rank_label()
        if where and getattr(err, "all_ranks", False) and where != " (rank 0)":
            return 1  # every rank found it together: rank 0 says it once (labkit.distributed)
        print(f"labkit: error{where}: {err}", file=sys.stderr)
        return 1


def _rank_label() -> str:
    """``" (rank N)"`` under torchrun with several processes, else ``""`` (read from the environment:
    the process group may already be closed)."""
    ws, rank = os.environ.get("WORLD_SIZE", "1"), os.environ.get("RANK", "0")
    return f" (rank {rank})" if ws.isdigit() and int(ws) > 1 else ""


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
