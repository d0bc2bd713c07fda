"""Install torch into the running Python for ``make install``; say which wheel index was used.

PyPI's Linux wheel of ``torch`` is the CUDA build (it pulls the CUDA runtime and cuDNN, gigabytes).
The book runs on a CPU, so by default the CPU build is installed from PyTorch's CPU wheel index:

1. ``TORCH_SPEC`` set (e.g. ``TORCH_SPEC="torch==2.13.0"`` for PyPI's CUDA build on Linux, or any
   pip arguments): ``pip install $TORCH_SPEC``, nothing else.
2. torch ``TORCH_VERSION`` already installed: kept (say ``TORCH_SPEC=...`` to replace it).
3. The CPU index (``TORCH_INDEX``) answers within 5 s: ``pip install --index-url TORCH_INDEX
   torch==TORCH_VERSION``.
4. Otherwise (no route to it, as on machines whose pip uses a local mirror):
   ``pip install torch==TORCH_VERSION`` from pip's own configuration, which on plain PyPI is the
   CUDA build on Linux; the script says so.

The reachability probe comes first because pip treats an index it cannot reach as a warning and
goes on with the other sources in its configuration, so pip's exit status alone cannot tell which
index a wheel came from. Environment: ``TORCH_SPEC``, ``TORCH_VERSION`` (default 2.13.0),
``TORCH_INDEX`` (default https://download.pytorch.org/whl/cpu; empty skips the probe),
``TORCH_PROBE_TIMEOUT`` (seconds, default 5).
"""

from __future__ import annotations

import os
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import metadata

DEFAULT_VERSION = "2.13.0"
DEFAULT_INDEX = "https://download.pytorch.org/whl/cpu"


def installed_torch() -> str | None:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


def reachable(index: str, timeout: float) -> tuple[bool, str]:
    """Whether ``index``/torch/ answers HTTP 200 within ``timeout`` s (name lookup included)."""
    answer: list[tuple[bool, str]] = []
    probe = threading.Thread(target=lambda: answer.append(_get(index, timeout)), daemon=True)
    t0 = time.monotonic()
    probe.start()
    probe.join(timeout + 0.5)  # a name lookup is not bound by the socket timeout
    if not answer:
        return False, f"no answer in {time.monotonic() - t0:.1f} s"
    return answer[0]


def _get(index: str, timeout: float) -> tuple[bool, str]:
    url = index.rstrip("/") + "/torch/"
    t0 = time.monotonic()
    cafile = os.environ.get("PIP_CERT") or None  # the CA bundle pip is told to use, if any
    try:
        context = ssl.create_default_context(cafile=cafile)
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            ok = resp.status == 200
            why = f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError, ValueError) as err:
        ok, why = False, str(getattr(err, "reason", err))
    return ok, f"{why}, {time.monotonic() - t0:.1f} s"


def pip(*args: str) -> int:
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", *args]
    print("  $", shlex.join(cmd[2:]), flush=True)
    return subprocess.call(cmd)


def main() -> int:
    spec = os.environ.get("TORCH_SPEC", "").strip()
    version = os.environ.get("TORCH_VERSION", "").strip() or DEFAULT_VERSION
    index = os.environ.get("TORCH_INDEX", DEFAULT_INDEX).strip()
    timeout = float(os.environ.get("TORCH_PROBE_TIMEOUT", "5"))

    if spec:
        print(f"torch: TORCH_SPEC given, installing it as is: {spec}")
        return pip(*shlex.split(spec))

    have = installed_torch()
    if have and have.split("+")[0] == version:
        print(f"torch: {have} already installed, kept (TORCH_SPEC=... replaces it)")
        return 0

    if index:
        ok, why = reachable(index, timeout)
        if ok:
            print(f"torch: CPU wheel index {index} reachable ({why}): installing torch=={version} from it")
            rc = pip("--index-url", index, f"torch=={version}")
            if rc == 0:
                return 0
            print(f"torch: install from {index} failed (exit {rc}); falling back to pip's own index")
        else:
            print(f"torch: CPU wheel index {index} not reachable ({why}); using pip's own index")
    rc = pip(f"torch=={version}")
    if rc == 0:
        print(
            f"torch: installed torch=={version} from pip's configured index; on plain PyPI that is the CUDA "
            "build on Linux (set TORCH_INDEX or TORCH_SPEC to choose)"
        )
    return rc


if __name__ == "__main__":
    sys.exit(main())
