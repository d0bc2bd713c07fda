"""``python -m labkit ...``: the ``labkit`` command line, e.g. under ``torchrun -m labkit eval run ...``."""

from labkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
