"""Importing labkit.flagella must not pull in torch (a numpy/scipy-only part of the book)."""

import subprocess
import sys


def test_import_does_not_load_torch():
    code = (
        "import sys, labkit.flagella as f; f.swim(f.ecoli());"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
