"""Chaos: a report storm against real ``oms serve`` processes while their database or process is broken.

    python bench/chaos.py [--database-url POSTGRES_URL] [--lock-seconds 60] [--seconds 12] [--only NAME] [--json]

Scenarios (each on a fresh database, each with a storm of gateway reports that retry, with the same
Idempotency-Key, whatever was not answered 202):

- ``kill9``: kill -9 the server mid-storm, restart it (PostgreSQL, or SQLite without a URL).
- ``terminate``: ``pg_terminate_backend`` every connection of the server, three times (PostgreSQL).
- ``sqlite_lock``: another connection holds ``BEGIN EXCLUSIVE`` on the SQLite file for ``--lock-seconds``.
- ``leader_kill``: two processes in hot standby; kill -9 the leader (PostgreSQL).
- ``notify_kill``: reports with an SMS number or e-mail address; kill -9 the notification worker (``oms notify
  worker``, default settings but a 3 s lease) three times mid-storm, restarting it at once, against local providers
  (an SMTP server, and an SMS gateway that honours ``Idempotency-Key``); then the outbox drains.

Each reports: acknowledged (answered 202), lost (acknowledged but not stored), duplicated (a key answered with two
references, or stored twice), unlinked (stored but not in an event after the engine caught up), refused (503s and
lost connections, all retried), the longest intake stall (longest gap between two 202s), recovery (from the end of
the fault to the next 202) and, for the standby, takeover (kill to the standby leading).
``notify_kill`` adds: notifications sent and lost (a contact's acknowledgment never delivered), received twice (at
the providers, what a person would get twice), re-sent but folded by the gateway's key, and the longest gap between
two deliveries (the worker's restart and lease).
Goals: 0 lost; intake back within 5 s of the database; takeover within 15 s; notifications received twice at most
one per worker kill.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gis"))

import httpx  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from api.simulation.loadgen import ServerProcess, fresh_database  # noqa: E402
from api.store.db import Database, normalize_url  # noqa: E402
from api.store.migrate import upgrade  # noqa: E402
from api.store.models import OutboxMessage, Report  # noqa: E402
from api.web.auth import create_user  # noqa: E402
from bench._server import WorkerProcess, drain_outbox, provider_env  # noqa: E402

ACCOUNTS = [f"A-sp{i}" for i in range(1, 6)]


class Storm:
    """``concurrency`` gateways, each sending reports with fresh keys and retrying a refused one (same key)
    after ``Retry-After``, against whichever of ``servers`` answers."""

    def __init__(self, servers: list[ServerProcess], token: str, concurrency: int = 8, contacts: bool = False) -> None:
        self.servers, self.token, self.concurrency, self.contacts = servers, token, concurrency, contacts
        self.acks: list[tuple[float, str, str]] = []  # (time, key, reference)
        self.refused = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> Storm:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _main(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(90.0, connect=2.0)) as client:
            await asyncio.gather(*(self._gateway(client, g) for g in range(self.concurrency)))

    async def _gateway(self, client: httpx.AsyncClient, g: int) -> None:
        n = 0
        while not self._stop.is_set():
            key, n = f"g{g}-{n}", n + 1
            attempt = 0
            while not self._stop.is_set():  # until this report is acknowledged; a retry tries the next server
                server = self.servers[(g + n + attempt) % len(self.servers)]
                attempt += 1
                try:
                    body = {"account": ACCOUNTS[n % 5]}
                    if self.contacts:  # half by SMS, half by e-mail; one person per report
                        body["contact"] = ({"sms": f"+1555{g:02d}{n:05d}", "prefer": "sms"} if n % 2 else
                                           {"email": f"g{g}n{n}@example.org", "prefer": "email"})
                    r = await client.post(server.url + "/reports", json=body,
                                          headers={"Authorization": f"Bearer {self.token}", "Idempotency-Key": key})
                except httpx.HTTPError:
                    self.refused += 1
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code == 202:
                    self.acks.append((time.monotonic(), key, r.json()["reference"]))
                    break
                self.refused += 1
                await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 2.0))
            await asyncio.sleep(0.02)

    def longest_stall(self) -> float:
        times = [self.started] + sorted(t for t, _, _ in self.acks)
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)

    def first_ack_after(self, t: float) -> float | None:
        later = [a for a, _, _ in self.acks if a >= t]
        return min(later) - t if later else None


def _setup(url: str, tmp: Path) -> tuple[str, str]:
    from small import small_feeder

    from gis.io import write_territory

    territory = tmp / f"small-{secrets.token_hex(2)}.gpkg"
    write_territory(small_feeder(), territory)
    upgrade(url)
    db = Database(url)
    with db.write() as s, s.begin():
        _, token = create_user(s, "gateway", "integration")
    db.dispose()
    return str(territory), token


def _outcome(url: str, storm: Storm, server: ServerProcess, fault_end: float | None) -> dict:
    try:
        server.wait_processed(timeout=120)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal: the figures below still say what is stored
        print(f"  engine did not catch up: {exc}", file=sys.stderr)
    db = Database(url)
    with db.read() as s:
        stored = {}
        for key, ref, eid in s.execute(select(Report.idempotency_key, Report.reference, Report.event_id)):
            stored.setdefault(key, []).append((ref, eid))
        rows = s.scalar(select(func.count()).select_from(Report))
    db.dispose()
    answered: dict[str, set[str]] = {}
    for _, key, ref in storm.acks:
        answered.setdefault(key, set()).add(ref)
    lost = sum(1 for key, refs in answered.items() if not refs <= {r for r, _ in stored.get(key, [])})
    duplicated = sum(1 for refs in answered.values() if len(refs) > 1) + sum(len(v) - 1 for v in stored.values())
    unlinked = sum(1 for key in answered for _, eid in stored.get(key, []) if eid is None)
    recovery = storm.first_ack_after(fault_end) if fault_end is not None else None
    return {"acknowledged": len(storm.acks), "stored_rows": rows, "lost": lost, "duplicated": duplicated,
            "unlinked": unlinked, "refused_and_retried": storm.refused,
            "longest_stall_s": round(storm.longest_stall(), 2),
            "recovery_s": round(recovery, 2) if recovery is not None else None}


def kill9(url: str, tmp: Path, seconds: float) -> dict:
    territory, token = _setup(url, tmp)
    server = ServerProcess(url, territory, log_path=tmp / "kill9.log").start()
    storm = Storm([server], token).start()
    time.sleep(seconds / 3)
    server.kill()
    killed = time.monotonic()
    server.start()  # same port: the gateways reconnect
    back = time.monotonic()
    time.sleep(seconds / 3)
    storm.stop()
    try:
        return {**_outcome(url, storm, server, back), "restart_s": round(back - killed, 2)}
    finally:
        server.stop()


def terminate(url: str, tmp: Path, seconds: float) -> dict:
    name = f"oms-chaos-{secrets.token_hex(4)}"
    app_url = f"{url}{'&' if '?' in url else '?'}application_name={name}"
    territory, token = _setup(app_url, tmp)
    server = ServerProcess(app_url, territory, log_path=tmp / "terminate.log").start()
    admin = create_engine(normalize_url(url).split("?")[0], isolation_level="AUTOCOMMIT")
    storm = Storm([server], token).start()
    killed = 0
    for _ in range(3):
        time.sleep(seconds / 4)
        with admin.connect() as conn:  # only this run's connections: other tests share the server
            killed += len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND application_name = :n"), {"n": name}).all())
        last = time.monotonic()
    time.sleep(seconds / 4)
    storm.stop()
    admin.dispose()
    try:
        return {**_outcome(app_url, storm, server, last), "connections_terminated": killed,
                "health_after": server.health()["status"]}
    finally:
        server.stop()


def sqlite_lock(tmp: Path, seconds: float, lock_seconds: float) -> dict:
    url = f"sqlite:///{tmp / 'lock.db'}"
    territory, token = _setup(url, tmp)
    server = ServerProcess(url, territory, log_path=tmp / "lock.log").start()
    storm = Storm([server], token).start()
    time.sleep(seconds / 3)
    holder = sqlite3.connect(str(tmp / "lock.db"), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    time.sleep(lock_seconds / 2)
    health_during = httpx.get(server.url + "/health", timeout=10).json()
    time.sleep(lock_seconds / 2)
    holder.rollback()
    holder.close()
    released = time.monotonic()
    time.sleep(seconds / 3)
    storm.stop()
    try:
        return {**_outcome(url, storm, server, released), "lock_s": lock_seconds,
                "health_during": {k: health_during[k] for k in ("status", "writer")}}
    finally:
        server.stop()


def leader_kill(url: str, tmp: Path, seconds: float) -> dict:
    territory, token = _setup(url, tmp)
    env = {"OMS_STANDBY": "1", "OMS_LEADER_POLL_S": "0.5", "OMS_LEADER_LOCK_KEY": str(secrets.randbelow(2**40))}
    a = ServerProcess(url, territory, env=env, log_path=tmp / "leader-a.log").start()
    b = ServerProcess(url, territory, env=env, log_path=tmp / "leader-b.log").start()
    storm = Storm([a, b], token).start()
    try:
        time.sleep(seconds / 2)
        a.kill()
        killed = time.monotonic()
        takeover = None
        while time.monotonic() - killed < 60:
            h = b.health()
            if h["role"] == "leader" and h["engine"] == "running":
                takeover = time.monotonic() - killed
                break
            time.sleep(0.1)
        time.sleep(seconds / 2)
        storm.stop()
        return {**_outcome(url, storm, b, killed), "takeover_s": round(takeover, 2) if takeover else None}
    finally:
        a.kill()
        b.stop()


def notify_kill(url: str, tmp: Path, seconds: float, kills: int = 3) -> dict:
    from api.notify.receivers import SmsGateway, SmtpReceiver

    territory, token = _setup(url, tmp)
    smtp, gateway = SmtpReceiver().start(), SmsGateway().start()
    for provider in (smtp, gateway):  # 5 ms to accept each message: a kill can land while one is in flight
        provider.faults.mode, provider.faults.delay = "slow", 0.005
    worker = WorkerProcess(url, provider_env(smtp, gateway, LEASE_S="3"), tmp / "notify-worker.log")
    server = ServerProcess(url, territory, log_path=tmp / "notify-kill.log").start()
    worker.start()
    storm = Storm([server], token, contacts=True).start()
    db = Database(url)
    try:
        for _ in range(kills):
            time.sleep(seconds / (kills + 1))
            base, deadline = _delivered(smtp, gateway), time.monotonic() + 60
            while _delivered(smtp, gateway) < base + 20 and time.monotonic() < deadline:
                time.sleep(0.005)  # the (restarted) worker is delivering
            worker.kill()  # mid-send: the rest of its claim stays 'claimed' until the lease
            worker.start()  # as a supervisor would
        time.sleep(seconds / (kills + 1))
        storm.stop()
        outcome = _outcome(url, storm, server, None)
        drain = drain_outbox(db, 180)
        with db.read() as s:
            keys = [k for k, contact in s.execute(
                select(OutboxMessage.idempotency_key, Report.contact).join(Report, OutboxMessage.report_id == Report.id)
                .where(OutboxMessage.kind == "acknowledgment")) if contact]
    finally:
        WorkerProcess.stop_all([worker], timeout=30)
        server.stop()
        db.dispose()
        smtp.stop()
        gateway.stop()
    delivered = set(gateway.received.deliveries) | set(smtp.received.deliveries)
    times = sorted([*gateway.received.first_at.values(), *smtp.received.first_at.values()])
    return {**outcome, "worker_kills": kills, "notifications_sent": len(delivered & set(keys)),
            "notifications_lost": sum(1 for k in keys if k not in delivered),
            "received_twice": gateway.received.duplicates + smtp.received.duplicates,
            "resent_folded_by_key": gateway.received.resubmitted,
            "longest_delivery_stall_s": round(max((b - a for a, b in zip(times, times[1:], strict=False)),
                                                  default=0.0), 2),
            "outbox_drain_s": round(drain, 1)}


def _delivered(*providers) -> int:
    return sum(p.received.total for p in providers)


def run(url: str | None, *, seconds: float = 12.0, lock_seconds: float = 60.0, only: str | None = None) -> dict:
    """All scenarios that the backend allows; ``url`` None: SQLite only (kill9, sqlite_lock)."""
    out = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        pg = url is not None and not normalize_url(url).startswith("sqlite")
        plan = [("kill9", lambda: _fresh(url, tmp, kill9, seconds)),
                ("terminate", (lambda: _fresh(url, tmp, terminate, seconds)) if pg else None),
                ("sqlite_lock", lambda: sqlite_lock(tmp, seconds, lock_seconds)),
                ("leader_kill", (lambda: _fresh(url, tmp, leader_kill, seconds)) if pg else None),
                ("notify_kill", lambda: _fresh(url, tmp, notify_kill, seconds))]
        for name, fn in plan:
            if fn is None or (only and name != only):
                continue
            print(f"chaos: {name} ...", file=sys.stderr, flush=True)
            out[name] = fn()
    return out


def _fresh(url: str | None, tmp: Path, scenario, seconds: float) -> dict:
    with fresh_database(url, tmp) as fresh:
        return scenario(fresh, tmp, seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help="PostgreSQL (adds terminate and leader_kill); default: SQLite only")
    p.add_argument("--seconds", type=float, default=12.0, help="storm length around each fault")
    p.add_argument("--lock-seconds", type=float, default=60.0)
    p.add_argument("--only", choices=["kill9", "terminate", "sqlite_lock", "leader_kill", "notify_kill"])
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = run(args.database_url, seconds=args.seconds, lock_seconds=args.lock_seconds, only=args.only)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, figures in result.items():
            print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    lost = sum(f["lost"] + f.get("notifications_lost", 0) for f in result.values())
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
