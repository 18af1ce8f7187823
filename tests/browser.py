"""A small headless-Chromium driver for tests: the DevTools protocol over --remote-debugging-pipe, stdlib only.

Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4; no port,
no websocket. Host resolution is disabled, so a page cannot reach the network even by mistake.

    with Chromium() as browser:
        page = browser.new_page(width=1200, height=800)
        page.goto(path.as_uri())
        assert page.evaluate("document.title") == "..."
        page.screenshot(tmp_path / "shot.png")
        assert not page.console_errors()
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-default-browser-check", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


class BrowserError(RuntimeError):
    """Chromium failed to start, died, timed out, or answered a command with an error."""


def find_chromium() -> str | None:
    """Path of a Chromium binary ($DREAMLAB_CHROMIUM, then chromium / chromium-browser on PATH), or None."""
    override = os.environ.get("DREAMLAB_CHROMIUM")
    if override:
        return shutil.which(override)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Chromium:
    """One headless Chromium process with a fresh profile; use as a context manager."""

    def __init__(self, binary: str | None = None, *, timeout: float = 15.0) -> None:
        found = binary or find_chromium()
        if not found:
            raise BrowserError("chromium not found")
        self.binary: str = found
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._profile: tempfile.TemporaryDirectory[str] | None = None
        self._next_id = 0
        self._buf = b""
        self._to_browser = self._from_browser = -1

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Launch Chromium and wait until it answers."""
        self._profile = tempfile.TemporaryDirectory(prefix="dreamlab-chromium-")
        profile = Path(self._profile.name)
        cmd_r, self._to_browser = os.pipe()  # Chromium reads commands on its fd 3 ...
        self._from_browser, reply_w = os.pipe()  # ... and writes replies on its fd 4
        # Copies above fd 10, so that moving them onto 3 and 4 in the child cannot clobber one another.
        hi_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        hi_w = fcntl.fcntl(reply_w, fcntl.F_DUPFD_CLOEXEC, 10)

        def child_fds() -> None:
            os.dup2(hi_r, 3)  # dup2 leaves 3 and 4 inheritable; everything else here is close-on-exec
            os.dup2(hi_w, 4)

        args = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile / 'profile'}",
                "--remote-debugging-pipe", "about:blank"]
        with open(profile / "chromium.log", "wb") as log:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          close_fds=False, preexec_fn=child_fds, start_new_session=True)
        for fd in (cmd_r, reply_w, hi_r, hi_w):
            os.close(fd)
        try:
            self.call("Browser.getVersion")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Ask Chromium to quit, kill its process group if it lingers, remove the profile."""
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(BrowserError, OSError):
                if proc.poll() is None:
                    self._send("Browser.close", {}, None)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: renderer and helper processes too
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_browser = self._from_browser = -1
        if self._profile is not None:
            self._profile.cleanup()
            self._profile = None

    def log_tail(self, n: int = 2000) -> str:
        """The end of Chromium's stderr, for error messages."""
        if self._profile is None:
            return ""
        with contextlib.suppress(OSError):
            return (Path(self._profile.name) / "chromium.log").read_text(errors="replace")[-n:]
        return ""

    # -- protocol ----------------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None, session: str | None) -> int:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        return self._next_id

    def _read(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None once `deadline` (time.monotonic) has passed."""
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited; its log ends with:\n{self.log_tail()}")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile go to `events`."""
        if self._proc is None:
            raise BrowserError("chromium is not running")
        msg_id = self._send(method, params, session)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read(deadline)
            if msg is None:
                raise BrowserError(f"{method}: no reply in {timeout or self.timeout:g} s")
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def pump(self, seconds: float) -> None:
        """Collect events for `seconds`."""
        deadline = time.monotonic() + seconds
        while (msg := self._read(deadline)) is not None:
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method: str, *, session: str | None = None, since: int = 0,
                   timeout: float | None = None) -> dict[str, Any]:
        """Params of the first `method` event at index >= `since` in `events` (of `session` if given)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = since
        while True:
            for ev in self.events[seen:]:
                if ev["method"] == method and (session is None or ev.get("sessionId") == session):
                    return ev.get("params", {})
            seen = len(self.events)
            msg = self._read(deadline)
            if msg is None:
                raise BrowserError(f"no {method} event in {timeout or self.timeout:g} s")
            if "method" in msg:
                self.events.append(msg)

    def new_page(self, *, width: int = 1280, height: int = 800) -> Page:
        """A new tab with a `width` x `height` CSS-pixel viewport; console, log and network recorded."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        page.call("Emulation.setScrollbarsHidden", {"hidden": True})  # full-page shots: no clipped strip
        return page


class Page:
    """One tab, driven through a flattened DevTools session."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """A DevTools command in this tab's session."""
        return self.browser.call(method, params, session=self.session, **kw)

    def events(self, method: str | None = None) -> list[dict[str, Any]]:
        """Params of this tab's recorded events (all, or those named `method`)."""
        return [ev.get("params", {}) for ev in self.browser.events
                if ev.get("sessionId") == self.session and (method is None or ev["method"] == method)]

    def goto(self, url: str, *, timeout: float | None = None) -> None:
        """Navigate and wait for the load event."""
        since = len(self.browser.events)
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", session=self.session, since=since, timeout=timeout)

    def evaluate(self, expression: str, *, timeout: float | None = None) -> Any:
        """The value of a JS expression (promises awaited), as JSON; a JS exception raises BrowserError."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True, "userGesture": True}, timeout=timeout)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JS error in {expression[:80]!r}: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, *, timeout: float = 5.0, interval: float = 0.05) -> Any:
        """Poll a JS expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression!r}")
            self.browser.pump(interval)

    def type_text(self, text: str) -> None:
        """Type into the focused element, as an IME commit would."""
        self.call("Input.insertText", {"text": text})

    def press(self, key: str) -> None:
        """Press and release a named key: Enter, Escape, ArrowLeft, ArrowRight, Tab."""
        codes = {"Enter": 13, "Escape": 27, "ArrowLeft": 37, "ArrowRight": 39, "Tab": 9}
        down: dict[str, Any] = {"type": "keyDown", "key": key, "code": key,
                                "windowsVirtualKeyCode": codes[key], "nativeVirtualKeyCode": codes[key]}
        if key == "Enter":
            down["text"] = "\r"  # the char event is what submits a form
        self.call("Input.dispatchKeyEvent", down)
        self.call("Input.dispatchKeyEvent", {**down, "type": "keyUp", "text": ""})

    def click(self, x: float, y: float) -> None:
        """A left click at viewport coordinates (CSS pixels)."""
        self.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent",
                      {"type": kind, "x": x, "y": y, "button": "left", "buttons": 1, "clickCount": 1})

    def screenshot(self, path: Path | str, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or of the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error/assert calls and error log entries (failed loads) so far."""
        errors = []
        for ev in self.browser.events:
            if ev.get("sessionId") != self.session:
                continue
            p = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                errors.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                errors.append(f"console.{p['type']}: {args}")
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                entry = p["entry"]
                errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        return errors

    def requested_urls(self) -> list[str]:
        """URLs of every network request the tab made."""
        return [p["request"]["url"] for p in self.events("Network.requestWillBeSent")]


def load_all_thumbnails(page: "Page") -> list[list[Any]]:
    """Scroll each lazy thumbnail (`.unit img`) into view and wait for it to load or fail; return
    [loading, src, naturalWidth] per thumbnail, in page order."""
    return page.evaluate("""(async () => {
        const imgs = Array.from(document.querySelectorAll('.unit img'));
        const done = (img) => new Promise((resolve) => {
            if (img.complete) return resolve();
            img.addEventListener('load', resolve, {once: true});
            img.addEventListener('error', resolve, {once: true});
            setTimeout(resolve, 3000);
        });
        for (const img of imgs) { img.scrollIntoView({block: 'center'}); await done(img); }
        window.scrollTo(0, 0);
        return imgs.map((img) => [img.loading, img.getAttribute('src'), img.naturalWidth]);
    })()""", timeout=30)
