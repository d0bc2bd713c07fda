"""Check the built book the way a reader sees it: headless Chromium, network off.

Run from the repository root (``make check-html`` does, after ``make book``)::

    .venv/bin/python tools/check_html.py _build/smoke/_build/html
    .venv/bin/python tools/check_html.py _build/smoke/_build/html --page book/moe/01_parameters.html

Every page (``*.html`` outside the ``_static``-like folders) is opened from disk in a fresh tab of a
headless Chromium whose network is switched off (DevTools ``Network.emulateNetworkConditions``, and
every host name resolves to nothing), so what renders is what an offline reader gets. After the page
has loaded and MathJax has typeset it, the script screenshots it (``<out>/<page>.png``: the whole page
at half scale, cut at 16,000 px; ``<page>.top.png``: the first screen at full scale) and fails the page on

- **images**: an ``<img>`` that did not load, or a local file (script, style sheet, font, image)
  the page asks for that is missing;
- **network**: a request to another host (the book must not need one);
- **tracebacks**: an error output or a ``Traceback (most recent call last)`` in a cell's output;
- **math**: a ``.math`` element MathJax did not typeset, a MathJax error node (``mjx-merror``) or a
  macro it did not know (typeset in red), or TeX left in the text (``\\(``, ``\\[``, ``$$``, or
  ``$...\\cmd...$``) outside code;
- **glue**: a ``{glue}`` role left as text, or a docutils ``problematic`` node;
- **overflow**: a code block (``pre``) with a line wider than its box, so the reader must scroll
  sideways (reported with the widest line's length and its start). The book's CSS
  (``book/_static/labkit.css``) wraps cell outputs at spaces, so there only a word wider than the box
  is left to scroll; code is never wrapped.

``--allow KIND`` reports a kind of finding without failing on it (CI allows none).

Chromium is Debian's ``chromium`` (``apt-get install chromium``; ``--chromium`` or ``$CHROMIUM``
names another binary). It is driven over the DevTools protocol with ``websocket-client`` (the book
extra). Exit status: 0 when every page passes, 1 when a page fails, 2 when the check could not run.
A JSON report is written to ``<out>/report.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KINDS = ("images", "files", "network", "tracebacks", "math", "glue", "overflow", "load", "check")
SKIP_DIRS = {"_static", "_sources", "_images", "_sphinx_design_static", "_panels_static", "_downloads"}
MAX_SHOT_PX = 16000

# Evaluated in the page after load: returns {kind: [details]} for everything it finds wrong.
PROBE_JS = (Path(__file__).with_name("check_html_probe.js")).read_text(encoding="utf-8")

WAIT_MATH_JS = r"""
(async () => {
  if (!document.querySelector('.math') && !window.MathJax) return 'no math';
  const t0 = Date.now();
  // MathJax's script is deferred: it has run by the load event, or it will not run (blocked, missing)
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) {
    if (Date.now() - t0 > Math.min(%d, 5000)) return 'MathJax never started (its script missing or blocked?)';
    await new Promise(r => setTimeout(r, 50));
  }
  await MathJax.startup.promise;
  return 'typeset';
})()
"""


class CheckError(RuntimeError):
    """The check could not run (no Chromium, no DevTools connection ...)."""


class DevTools:
    """A minimal synchronous DevTools-protocol client over one page's websocket."""

    def __init__(self, ws_url: str, timeout: float):
        import websocket  # websocket-client (book extra)

        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer in {timeout:.0f} s")
            self.ws.settimeout(left)
            try:
                msg = json.loads(self.ws.recv())
            except Exception as err:  # websocket timeout or closed
                raise TimeoutError(f"{method}: {type(err).__name__} {err}") from err
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CheckError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, name: str, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev["method"] == name:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except Exception:  # websocket timeout
                break
            if msg.get("method") == name:
                return msg
            if "method" in msg:
                self.events.append(msg)
        return None

    def close(self) -> None:
        self.ws.close()


def find_chromium(explicit: str | None) -> str:
    for cand in [explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]:
        if cand and (path := shutil.which(cand)):
            return path
    raise CheckError(
        "no Chromium found: install Debian's package (apt-get update && apt-get install -y chromium) "
        "or pass --chromium PATH"
    )


def start_browser(binary: str, profile: Path, width: int, height: int) -> tuple[subprocess.Popen, int]:
    args = [
        binary,
        "--headless",
        "--no-sandbox",  # CI and these machines run as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--allow-file-access-from-files",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # network off: no host name resolves
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
        "--remote-debugging-port=0",
        "about:blank",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CheckError(f"chromium exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        if port_file.is_file() and (text := port_file.read_text().split()):
            return proc, int(text[0])
        time.sleep(0.1)
    proc.kill()
    raise CheckError("chromium did not open its DevTools port within 60 s")


def new_tab(port: int) -> tuple[str, str]:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        info = json.load(resp)
    return info["id"], info["webSocketDebuggerUrl"]


def close_tab(port: int, tab_id: str) -> None:
    import urllib.request

    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/json/close/{tab_id}", timeout=10).read()
    except Exception:
        pass


def check_page(port: int, page: Path, root: Path, shots: Path, args: argparse.Namespace) -> dict[str, Any]:
    rel = page.relative_to(root).as_posix()
    problems: dict[str, list[str]] = {}
    tab_id, ws_url = new_tab(port)
    dt = DevTools(ws_url, timeout=args.timeout)
    t0 = time.monotonic()
    try:
        dt.call("Page.enable")
        dt.call("Network.enable")
        dt.call(
            "Network.emulateNetworkConditions",
            offline=True,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )
        dt.call(
            "Emulation.setDeviceMetricsOverride",
            width=args.width,
            height=args.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        dt.call("Page.navigate", url=page.resolve().as_uri())
        if dt.wait_event("Page.loadEventFired", args.timeout) is None:
            problems.setdefault("load", []).append(f"page did not finish loading in {args.timeout:.0f} s")
        math_state = dt.call(
            "Runtime.evaluate",
            timeout=args.timeout + 5,
            expression=WAIT_MATH_JS % int(args.timeout * 1000),
            awaitPromise=True,
            returnByValue=True,
        )["result"].get("value")
        if math_state and math_state not in ("no math", "typeset"):
            problems.setdefault("math", []).append(math_state)
        dt.wait_event("__settle__", 0.3)  # let late image loads and layout finish
        found = dt.call("Runtime.evaluate", expression=PROBE_JS, returnByValue=True)["result"]["value"]
        for kind, items in found.items():
            if items:
                problems.setdefault(kind, []).extend(items)
        # requests: to another host (the network is off), or a local file that is missing
        failed = {
            ev["params"]["requestId"]: ev["params"]
            for ev in dt.events
            if ev["method"] == "Network.loadingFailed"
        }
        for ev in dt.events:
            if ev["method"] != "Network.requestWillBeSent":
                continue
            url = ev["params"]["request"]["url"]
            rtype = ev["params"].get("type", "")
            if url.startswith(("http://", "https://", "ws://", "wss://")):
                problems.setdefault("network", []).append(f"{rtype or 'request'} to {url[:150]}")
            elif url.startswith("file:") and ev["params"]["requestId"] in failed and rtype != "Image":
                # (an image that did not load is reported by the page probe, with where it is)
                err = failed[ev["params"]["requestId"]].get("errorText", "")
                path = url.split("#")[0]
                local = path[len(root.resolve().as_uri()) + 1 :] or path
                problems.setdefault("files", []).append(f"missing local {rtype or 'file'}: {local} ({err})")
        # screenshots: the first screen, and the whole page at half scale
        shot = shots / rel
        shot.parent.mkdir(parents=True, exist_ok=True)
        top = dt.call("Page.captureScreenshot", format="png")
        shot.with_suffix(".top.png").write_bytes(base64.b64decode(top["data"]))
        metrics = dt.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        full_h = max(args.height, min(int(size["height"]), MAX_SHOT_PX))
        # a window as tall as the page (captureBeyondViewport re-lays this theme out sideways)
        dt.call(
            "Emulation.setDeviceMetricsOverride",
            width=args.width,
            height=full_h,
            deviceScaleFactor=0.5,
            mobile=False,
        )
        dt.wait_event("__settle__", 0.3)
        full = dt.call("Page.captureScreenshot", format="png")
        shot.with_suffix(".png").write_bytes(base64.b64decode(full["data"]))
    finally:
        dt.close()
        close_tab(port, tab_id)
    return {"page": rel, "seconds": round(time.monotonic() - t0, 2), "problems": problems}


def pages_under(root: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob("*.html")):
        parts = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.startswith("_") for p in parts[:-1]):
            continue
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", type=Path, help="the built HTML folder (_build/<profile>/_build/html)")
    ap.add_argument("--out", type=Path, help="screenshots and report.json (default: <html>/../check-html)")
    ap.add_argument(
        "--page", action="append", default=[], help="check only this page (relative path; repeatable)"
    )
    ap.add_argument("--chromium", help="the Chromium binary (default: $CHROMIUM, else chromium on PATH)")
    ap.add_argument("--width", type=int, default=1280, help="viewport width in CSS px (default 1280)")
    ap.add_argument("--height", type=int, default=900, help="viewport height in CSS px (default 900)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to load and typeset one page")
    ap.add_argument(
        "--allow",
        action="append",
        default=[],
        choices=KINDS,
        help="report this kind of finding but do not fail on it (repeatable), e.g. --allow overflow",
    )
    args = ap.parse_args(argv)

    root = args.html
    if not (root / "index.html").is_file():
        print(f"check-html: no built book at {root} (run `make book` first)", file=sys.stderr)
        return 2
    pages = [root / p for p in args.page] if args.page else pages_under(root)
    missing = [p for p in pages if not p.is_file()]
    if missing:
        print(f"check-html: no such page: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    shots = args.out or root.parent / "check-html"
    shots.mkdir(parents=True, exist_ok=True)
    try:
        binary = find_chromium(args.chromium)
    except CheckError as err:
        print(f"check-html: {err}", file=sys.stderr)
        return 2

    results = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="labkit-chromium-") as profile:
        try:
            proc, port = start_browser(binary, Path(profile), args.width, args.height)
        except CheckError as err:
            print(f"check-html: {err}", file=sys.stderr)
            return 2
        try:
            for page in pages:
                try:
                    res = check_page(port, page, root, shots, args)
                except (CheckError, TimeoutError, OSError) as err:
                    res = {
                        "page": page.relative_to(root).as_posix(),
                        "seconds": None,
                        "problems": {"check": [f"could not check: {err}"]},
                    }
                results.append(res)
                n = sum(len(v) for k, v in res["problems"].items() if k not in args.allow)
                allowed = sum(len(v) for k, v in res["problems"].items() if k in args.allow)
                status = f"FAIL ({n})" if n else (f"ok ({allowed} allowed)" if allowed else "ok")
                print(f"{status:>15}  {res['page']}  [{res['seconds']} s]", flush=True)
                for kind, items in res["problems"].items():
                    for item in items:
                        print(f"            {kind}{' (allowed)' if kind in args.allow else ''}: {item}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    failed = [r for r in results if any(k not in args.allow for k in r["problems"])]
    report = {
        "html": str(root),
        "viewport": [args.width, args.height],
        "allowed": args.allow,
        "chromium": binary,
        "seconds": round(time.monotonic() - t0, 1),
        "pages": results,
    }
    (shots / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    allowed = sum(len(v) for r in results for k, v in r["problems"].items() if k in args.allow)
    print(
        f"check-html: {len(results) - len(failed)} passed, {len(failed)} failed "
        f"({len(results)} pages, {report['seconds']} s"
        + (
            f"; {allowed} findings of kinds {', '.join(args.allow)} reported, not failed"
            if args.allow
            else ""
        )
        + f"); screenshots and report.json in {shots}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
