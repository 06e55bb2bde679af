"""Real local providers for tests, the benchmark and the demo: an SMTP server (aiosmtpd) and an HTTP SMS gateway.

Both listen on 127.0.0.1, record what they accepted by idempotency key, and can misbehave on demand so the
delivery path is tested against the failures providers really have:

- ``fail``: refuse (SMTP ``451`` / HTTP ``503``) — a transient error;
- ``reject``: refuse for good (SMTP ``550`` / HTTP ``400``);
- ``timeout``: hold the request longer than the client waits;
- ``slow``: answer after ``delay`` seconds.

The SMS gateway honours the ``Idempotency-Key`` header like a provider that supports it: a repeated key returns the
first message's id and is counted in ``resubmitted``, not delivered again. ``deliveries`` counts every accepted
message per key, so ``duplicates`` is what a handset would really have received twice.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd cannot take port 0: its readiness check connects to the port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Faults:
    """What a receiver does with the next requests; change ``mode`` at any time."""

    mode: str = "ok"  # ok, fail, reject, timeout, slow
    delay: float = 0.0
    hold: float = 30.0  # how long a "timeout" request is held

    def apply(self) -> str:
        """Sleep as the mode says; return the mode that decides the answer."""
        mode = self.mode
        if mode == "slow":
            time.sleep(self.delay)
        elif mode == "timeout":
            time.sleep(self.hold)
        return mode


@dataclass
class Received:
    """What a receiver accepted: per idempotency key, how many times, and the last body."""

    deliveries: Counter = field(default_factory=Counter)
    bodies: dict[str, dict] = field(default_factory=dict)
    refused: int = 0
    resubmitted: int = 0
    first_at: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, key: str, body: dict) -> int:
        with self.lock:
            self.deliveries[key] += 1
            self.bodies[key] = body
            self.first_at.setdefault(key, time.time())
            return self.deliveries[key]

    @property
    def total(self) -> int:
        return sum(self.deliveries.values())

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.deliveries.values() if n > 1)


class SmtpReceiver:
    """An aiosmtpd server in a thread; messages are keyed by ``X-OMS-Idempotency-Key`` (else ``Message-ID``)."""

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.port = port or free_port()
        self.faults = Faults()
        self.received = Received()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, ready_timeout=5.0)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        import asyncio

        mode = self.faults.mode
        if mode == "slow":
            await asyncio.sleep(self.faults.delay)
        elif mode == "timeout":
            await asyncio.sleep(self.faults.hold)
        if mode == "fail":
            self.received.refused += 1
            return "451 4.3.0 try again later"
        if mode == "reject":
            self.received.refused += 1
            return "550 5.1.1 mailbox unavailable"
        msg = message_from_bytes(envelope.content)
        key = msg.get("X-OMS-Idempotency-Key") or msg.get("Message-ID") or ""
        n = self.received.accept(key, {"to": envelope.rcpt_tos, "subject": msg.get("Subject"),
                                       "body": msg.get_payload(decode=True).decode(errors="replace"),
                                       "language": msg.get("Content-Language")})
        return f"250 2.0.0 OK queued as Q{abs(hash(key)) % 10**10}-{n}"

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


class SmsGateway:
    """A Twilio-shaped SMS API on localhost: ``POST /messages`` (form or JSON) answers ``201 {"sid": ...}``.

    ``inbound`` (optional) is where the gateway would post replies; :meth:`reply` builds such a form."""

    def __init__(self, port: int = 0) -> None:
        self.faults = Faults()
        self.received = Received()
        self._ids: dict[str, str] = {}
        self._seq = 0
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                mode = gateway.faults.apply()
                if mode == "timeout":
                    return  # the client has given up; answer nothing
                if mode in ("fail", "reject"):
                    gateway.received.refused += 1
                    status = 503 if mode == "fail" else 400
                    self._answer(status, {"code": 30001 if mode == "fail" else 21211,
                                          "message": "try later" if mode == "fail" else "invalid number"})
                    return
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    body = json.loads(raw or b"{}")
                else:
                    body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                key = self.headers.get("Idempotency-Key") or f"nokey-{time.time_ns()}"
                with gateway.received.lock:
                    sid = gateway._ids.get(key)
                    if sid is None:
                        gateway._seq += 1
                        sid = gateway._ids[key] = f"SM{gateway._seq:012d}"
                        fresh = True
                    else:
                        gateway.received.resubmitted += 1
                        fresh = False
                if fresh:
                    gateway.received.accept(key, body)
                self._answer(201 if fresh else 200, {"sid": sid, "status": "queued"})

            def _answer(self, status: int, data: dict) -> None:
                out = json.dumps(data).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/messages"
        self._thread: threading.Thread | None = None

    def start(self) -> SmsGateway:
        self._thread = threading.Thread(target=self.server.serve_forever, name="sms-gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
