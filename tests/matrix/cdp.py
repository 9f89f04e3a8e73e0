"""A small Chrome DevTools protocol client over a headless Chromium, enough to open a page and judge it.

Chromium is started with ``--remote-debugging-port=0`` and says on stderr which port it took; the page target's
WebSocket (``websockets``' sync client) then carries the commands, and every event is kept for the test to read.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
_LISTENING = re.compile(r"DevTools listening on (ws://[^\s]+)")


def find_chromium() -> str | None:
    """The Chromium binary on PATH, if any."""
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


class Page:
    """One page target: send commands, wait for events, keep the console's errors."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30.0) -> dict[str, Any]:
        """Send a command; return its result (events that arrive meanwhile are kept)."""
        self._next += 1
        ident = self._next
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Wait for the event ``method`` (already seen or still to come)."""
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {method} event within {timeout} s")
            message = json.loads(self.ws.recv(timeout=remaining))
            self.events.append(message)
            if message.get("method") == method:
                return message

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page."""
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and error log entries seen so far."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                errors.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append("log: " + params["entry"].get("text", ""))
        return errors

    def requests(self) -> list[str]:
        """Every URL the page asked for."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]


@contextmanager
def headless_page(chromium: str, *, width: int = 1400, height: int = 1000) -> Iterator[Page]:
    """A headless Chromium with one blank page, its console, log and network events enabled."""
    # Chromium's helpers may still be writing the profile for a moment after the browser is killed.
    with tempfile.TemporaryDirectory(prefix="nestq-chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"},
            start_new_session=True,  # its own group: the renderer and helper processes end with the browser
        )
        try:
            assert proc.stderr is not None
            seen: list[str] = []
            deadline = time.monotonic() + 60
            browser_ws = None
            while time.monotonic() < deadline:
                line = proc.stderr.readline()  # blocks until Chromium says something, or exits (EOF)
                if not line:
                    break
                seen.append(line)
                found = _LISTENING.search(line)
                if found:
                    browser_ws = found.group(1)
                    break
            if browser_ws is None:
                raise RuntimeError("Chromium did not report its DevTools endpoint:\n" + "".join(seen[-20:]))
            port = browser_ws.split(":")[2].split("/")[0]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.load(answer)
            page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t.get("type") == "page")
            with connect(page_ws, max_size=None, open_timeout=10) as ws:
                page = Page(ws)
                for domain in ("Page", "Runtime", "Log", "Network"):
                    page.send(f"{domain}.enable")
                yield page
        finally:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
