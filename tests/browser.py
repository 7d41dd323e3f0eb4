"""Headless Chromium driven over the DevTools protocol, for tests that render report.html.

`open_page` starts ``chromium --headless=new`` on a free local port, opens a URL, and yields
a `Page` that evaluates JavaScript, takes full-page screenshots and keeps what the page
reported: console calls, uncaught exceptions and browser log errors and warnings. Every wait
is bounded, and the browser's process group is always stopped.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

__all__ = ["BrowserError", "Page", "chromium_path", "open_page"]

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
_LOG_LEVELS = frozenset({"error", "warning"})


class BrowserError(Exception):
    """Chromium did not start, answer or load the page in time."""


def chromium_path() -> str | None:
    """The ``chromium`` executable on PATH, or None."""
    return shutil.which("chromium")


@dataclass
class Page:
    """One page of a headless Chromium, attached over a flat DevTools session."""

    _ws: websocket.WebSocket
    timeout: float
    problems: list[str] = field(default_factory=list)
    """Console calls, uncaught exceptions and log errors/warnings, in order, as text."""
    _session: str | None = None
    _events: list[dict[str, Any]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, browser: bool = False
    ) -> dict[str, Any]:
        """Send a command to the page (or to the browser) and return its result."""
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if self._session is not None and not browser:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline, f"waiting for the answer to {method}")
            if reply is not None and reply.get("id") == message_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result") or {}
                return result

    def attach(self) -> None:
        """Attach to the browser's first page and enable its Runtime, Log and Page events."""
        targets = self.send("Target.getTargets", browser=True)["targetInfos"]
        target = next((t["targetId"] for t in targets if t.get("type") == "page"), None)
        if target is None:
            raise BrowserError(f"could not find a page among the targets {targets!r}")
        attached = self.send(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, browser=True
        )
        self._session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")

    def navigate(self, url: str) -> None:
        """Open `url` and wait for its load event."""
        self._events.clear()
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"could not open {url!r}: {result['errorText']}")
        self.wait_for("Page.loadEventFired")

    def wait_for(self, method: str) -> dict[str, Any]:
        """Wait for the next event `method` of the page and return its params."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self._events:
                if event.get("method") == method:
                    self._events.remove(event)
                    params: dict[str, Any] = event.get("params") or {}
                    return params
            self._receive(deadline, f"waiting for {method}")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"]
            text = (detail.get("exception") or {}).get("description") or detail.get("text")
            raise BrowserError(f"could not evaluate {expression!r}: {text}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page, beyond the viewport."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        result = self.send(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        return base64.b64decode(result["data"])

    def _receive(self, deadline: float, doing: str) -> dict[str, Any] | None:
        """One message from the browser: events are recorded, answers returned."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"timed out after {self.timeout:g} s {doing}")
        self._ws.settimeout(remaining)
        try:
            message: dict[str, Any] = json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException as exc:
            raise BrowserError(f"timed out after {self.timeout:g} s {doing}") from exc
        if "method" not in message:
            return message
        method, params = message["method"], message.get("params") or {}
        if method == "Runtime.consoleAPICalled":
            args = " ".join(
                str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", [])
            )
            self.problems.append(f"console.{params.get('type')}: {args}")
        elif method == "Runtime.exceptionThrown":
            detail = params.get("exceptionDetails") or {}
            text = (detail.get("exception") or {}).get("description") or detail.get("text")
            self.problems.append(f"uncaught exception: {text}")
        elif method == "Log.entryAdded":
            entry = params.get("entry") or {}
            if entry.get("level") in _LOG_LEVELS:
                self.problems.append(
                    f"log {entry.get('level')} ({entry.get('source')}): {entry.get('text')}"
                    f" {entry.get('url', '')}".rstrip()
                )
        self._events.append(message)
        return None


def _devtools_url(process: subprocess.Popen[bytes], log: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:]
    raise BrowserError(
        f"chromium printed no DevTools address within {timeout:g} s"
        f" (exit code {process.returncode}); its stderr ends with: {tail}"
    )


def _stop(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop the browser and every process it started (renderers, GPU, crash handler)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    # Whatever is left of the group, the browser itself included if SIGTERM was not enough.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout)


@contextlib.contextmanager
def open_page(
    url: str, *, timeout: float = 30.0, width: int = 1280, height: int = 900
) -> Iterator[Page]:
    """A headless Chromium page with `url` loaded; the browser stops when the block exits."""
    executable = chromium_path()
    if executable is None:
        raise BrowserError("could not find 'chromium' on PATH; install it with 'make install'")
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as tmp:
        log = Path(tmp) / "stderr.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen(
                [
                    executable,
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--remote-debugging-address=127.0.0.1",
                    "--remote-debugging-port=0",
                    f"--user-data-dir={Path(tmp) / 'profile'}",
                    "--no-first-run",
                    "--disable-extensions",
                    f"--window-size={width},{height}",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                # Its own process group, so that stopping it stops its children too.
                start_new_session=True,
            )
        ws: websocket.WebSocket | None = None
        try:
            address = _devtools_url(process, log, timeout)
            if not address.startswith("ws://127.0.0.1:"):
                raise BrowserError(f"chromium listens on {address!r}, not on 127.0.0.1")
            # No Origin header: Chromium refuses websocket origins it was not told to allow.
            ws = websocket.create_connection(address, timeout=timeout, suppress_origin=True)
            page = Page(ws, timeout)
            page.attach()
            page.navigate(url)
            yield page
            with contextlib.suppress(BrowserError, websocket.WebSocketException, OSError):
                page.send("Browser.close", browser=True)
        finally:
            if ws is not None:
                ws.close()
            _stop(process, timeout)
