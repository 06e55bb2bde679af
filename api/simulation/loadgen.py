"""Driving a real service process: start/kill ``oms serve`` and send it load over loopback.

Used by ``bench/intake.py`` (throughput and latency) and the crash test (kill -9 mid-storm). The load generator
speaks HTTP/1.1 keep-alive over raw asyncio streams: a Python HTTP client library would be the bottleneck long
before the service is, and then the figures would measure the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from api.store.db import Database, normalize_url

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def fresh_database(url: str | None, tmp: Path):
    """A new empty database: a SQLite file in ``tmp``, or a new schema on the PostgreSQL server at ``url``."""
    if url is None or normalize_url(url).startswith("sqlite"):
        yield url or f"sqlite:///{tmp / f'oms-{secrets.token_hex(3)}.db'}"
        return
    schema = f"oms_tmp_{secrets.token_hex(4)}"
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in url else "?"
    try:
        yield f"{normalize_url(url)}{sep}options=-csearch_path%3D{schema}"
    finally:
        _drop_schema(admin, schema)
        admin.dispose()


def _drop_schema(admin, schema: str, attempts: int = 3) -> None:
    """Drop a test schema. A session of the test's service can outlive it by a moment, still reading a table when
    the DROP comes: PostgreSQL then breaks the lock cycle by failing one side (deadlock detected). End the sessions
    that hold locks in the schema first, and try again if one still slips in."""
    holders = text(
        "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND l.pid <> pg_backend_pid()"
    )
    with admin.connect() as conn:
        for attempt in range(attempts):
            conn.execute(holders, {"schema": schema})
            try:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
                return
            except OperationalError:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2)


def count_rows(url: str, model, *where) -> int:
    db = Database(url)
    try:
        with db.read() as s:
            return s.scalar(select(func.count()).select_from(model).where(*where))
    finally:
        db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    """``oms serve`` in a child process (its own interpreter: the load generator must not share its core).

    ``own_session``: start it in a session of its own (``setsid``). Linux's scheduler (with autogroups, the
    default on desktops and on this project's shared machine) divides a busy CPU between sessions first: in the
    load generator's session, the server is charged for every request the generator makes and waits while the
    generator's burst is paid back (the main thread of ``oms serve`` was seen runnable but not running for 0.5 s
    while 1,000 map viewers polled). A deployed server shares no session with its clients either."""

    database_url: str
    territory: str | None = None
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None
    own_session: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> ServerProcess:
        cmd = [
            sys.executable,
            "-m",
            "api.commands",
            "serve",
            "--port",
            str(self.port),
            "--database-url",
            self.database_url,
            "--log-level",
            "warning",
        ]
        if self.territory:
            cmd += ["--territory", self.territory]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=self.own_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"oms serve exited with status {self.proc.returncode}"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"oms serve did not answer on {self.url} within {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — what a crash looks like."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used (Linux ``/proc``): separates the service's own cost
        per request from how much of a shared machine it happened to get."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_seconds(self) -> float:
        """Seconds the server's threads have spent runnable but waiting for a CPU (Linux ``schedstat``): how much
        a shared machine's scheduler held it back, whatever it was doing."""
        total = 0
        for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):  # a thread that just ended
                continue
        return total / 1e9

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def wait_processed(self, timeout: float = 300.0) -> float:
        """Seconds until the live engine has analysed every stored report."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.health()["pending_reports"] == 0:
                return time.monotonic() - started
            time.sleep(0.1)
        raise TimeoutError(f"reports still pending after {timeout:.0f} s")


def http_request(
    method: str, path: str, body: dict | list | None, headers: dict[str, str] | None = None
) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(payload)}"]
    if body is not None:
        lines.append("Content-Type: application/json")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class Result:
    status: int
    seconds: float
    body: bytes
    index: int


async def _one_connection(
    host: str,
    port: int,
    next_request: Callable[[], tuple[int, bytes] | None],
    results: list[Result],
    deadline: float,
) -> None:
    reader = writer = None
    while time.monotonic() < deadline:
        item = next_request()
        if item is None:
            break
        index, request = item
        if writer is None:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                results.append(Result(0, 0.0, b"connect failed", index))
                await asyncio.sleep(0.05)
                continue
        t0 = time.perf_counter()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length) if length else b""
        except (OSError, asyncio.IncompleteReadError, ValueError):
            results.append(Result(0, time.perf_counter() - t0, b"connection lost", index))
            writer = reader = None
            continue
        results.append(Result(status, time.perf_counter() - t0, body, index))
        if b"connection: close" in head.lower():
            writer.close()
            writer = reader = None
    if writer is not None:
        writer.close()


def hammer(
    port: int,
    make: Callable[[int], bytes],
    *,
    concurrency: int,
    total: int | None = None,
    seconds: float | None = None,
    host: str = "127.0.0.1",
) -> tuple[list[Result], float]:
    """Send requests ``make(i)`` on ``concurrency`` keep-alive connections until ``total`` are sent or ``seconds``
    pass. Returns the results (status 0 = connection failure) and the elapsed time."""
    counter = iter(range(total if total is not None else 1 << 62))

    def next_request():
        i = next(counter, None)
        return None if i is None else (i, make(i))

    async def main():
        results: list[Result] = []
        deadline = time.monotonic() + (seconds if seconds is not None else 1e9)
        t0 = time.perf_counter()
        await asyncio.gather(
            *(_one_connection(host, port, next_request, results, deadline) for _ in range(concurrency))
        )
        return results, time.perf_counter() - t0

    return asyncio.run(main())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100.0 * (len(ordered) - 1))))]
