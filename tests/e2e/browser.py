"""Shared plumbing for the browser tests: Debian's chromium driven by Playwright (never a downloaded browser),
an app served by uvicorn on a free loopback port in a thread, and a watch on requests that leave the app.

Importing this module skips the importing test module when playwright or chromium is not installed.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

import uvicorn  # noqa: E402

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
PlaywrightTimeout = playwright_api.TimeoutError


@contextmanager
def serve(app, start_timeout_s: float = 30.0):
    """Run ``app`` with uvicorn on a free loopback port in a thread; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


#: The password the console tests give every user (tests/e2e/conftest.py).
CONSOLE_PASSWORD = "storm-night-2026"


@contextmanager
def running_service(db_url: str, password: str, page, clock=None, clock_note: str = "", **settings):
    """The real app on the maps' test territory (users made, each with ``password``), served on a loopback port;
    yields (base URL, role -> token, app). ``clock``: a replay's clock (``create_app(clock=..., clock_note=...)``);
    ``settings``: more :class:`api.settings.Settings` fields. Needs ``tests/maps`` and ``tests/api`` on
    ``sys.path``."""
    from maps_territory import territory
    from service_helpers import make_users, set_passwords

    from api.settings import Settings
    from api.web.app import create_app

    tokens = make_users(db_url)
    set_passwords(db_url, password)
    settings = Settings(**{"database_url": db_url, "replan_debounce_s": 3600.0, "replan_max_wait_s": 3600.0,
                           "replan_time_limit_s": 1.0, **settings})
    net = territory()
    net.road_edges = net.road_edges.iloc[:0]  # its roads are drawing-only (no road nodes): crews go straight
    app = create_app(settings, network=net, page=page, clock=clock, clock_note=clock_note)
    with serve(app) as base:
        yield base, tokens, app


@contextmanager
def launch_browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            yield b
        finally:
            b.close()


def watch(page, base):
    """Page errors and requests that leave the app (none are allowed: no CDN, no tiles)."""
    errors, foreign = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith((base, "data:")) else None)
    return errors, foreign


def wait_until(page, expression: str, timeout: float = 10_000) -> None:
    """``page.wait_for_function`` evaluates its predicate with eval inside the page, which the service's
    Content-Security-Policy forbids (as it should); poll from outside instead (devtools evaluation)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


class Relay:
    """A TCP relay in front of the service, for dropping a browser's connections as a failing network would:
    :meth:`down` cuts every open connection (the SSE stream too) and refuses new ones until :meth:`up` (or answers
    them with an HTTP error, as a proxy does for a missing backend). The service itself notices nothing but closed
    sockets. ``base`` is the URL the browser should use."""

    def __init__(self, target: str) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.is_up = True
        self.answer: int | None = None
        self.refused = 0  # connections refused (or answered) while down
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if not self.is_up:
                self.refused += 1
                if self.answer:
                    try:
                        client.recv(65536)
                        client.sendall(f"HTTP/1.1 {self.answer} Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n".encode())
                    except OSError:
                        pass
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._cut(src, dst)

    def _cut(self, *socks: socket.socket) -> None:
        for s in socks:
            with self._lock:
                self._open.discard(s)
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def down(self, answer: int | None = None) -> None:
        self.is_up, self.answer = False, answer
        with self._lock:
            socks = list(self._open)
        self._cut(*socks)

    def up(self) -> None:
        self.is_up = True

    def close(self) -> None:
        self.listener.close()
        self.down()
