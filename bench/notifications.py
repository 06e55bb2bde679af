"""Notification storm replay: reports through the running service (uvicorn) and its notification workers to real
local providers (an aiosmtpd SMTP server and an HTTP SMS gateway), with provider faults on the way.

What it does:
1. migrates a fresh database (a SQLite file, or with ``--database-url`` a new PostgreSQL schema dropped afterwards),
   adds an integration user, starts ``oms serve`` and ``--workers`` processes of ``oms notify worker`` pointed at the
   local providers, and waits until every worker is delivering;
2. posts ``--reports`` trouble reports over ``--concurrency`` keep-alive connections as fast as the service answers
   (a storm burst; the raw loader of :mod:`api.simulation.loadgen`, since an HTTP client library costs more CPU per request
   than the service does): 50% give an SMS number, 40% an email address, 10% no contact; a quarter in Spanish;
3. unless ``--no-faults``: the SMS gateway refuses (503) for 5 s, then the SMTP server times out for 5 s, then both
   answer slowly (50 ms) for 5 s — during the replay;
4. waits for the outbox to drain and measures from the database and the providers' own records.

Figures: intake rate, CPU per report (server) and per message (workers), acknowledgment latency (report stored ->
provider accepted) p50/p99/max, acknowledgments over the 15-minute SLA (goal 0), notifications sent per second,
duplicates at the providers (goal 0), lost (goal 0), dead letters. Everything — service, workers, providers and the
load generator — shares one machine, so on 2 cores the rates are bounded by the CPU figures.

Delivery: the SMS gateway honours ``Idempotency-Key`` (a repeated key gets the first message's id), so by default
the workers are told so (``--keyed sms``) and send SMS on their threads; e-mail (SMTP has no keys) goes one
message at a time per worker process, which bounds what a killed worker can make a person receive twice to one
message. ``--keyed ""`` puts SMS on the one-at-a-time lane too. E-mail throughput therefore grows with worker
processes, not threads: the default of 4 is what a storm of 50,000 reports needs for an acknowledgment p99 under
30 s (goal) with 20,000 e-mails; 2 processes gave 31 s on an idle 2-core machine (stop 26).

    .venv/bin/python bench/notifications.py [--reports 50000] [--workers 4] [--threads 16] [--keyed sms] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from api.notify.receivers import SmsGateway, SmtpReceiver  # noqa: E402
from api.simulation.loadgen import ServerProcess, fresh_database, hammer, http_request  # noqa: E402
from api.store.db import Database  # noqa: E402
from api.store.migrate import upgrade  # noqa: E402
from api.store.models import OutboxMessage, Report  # noqa: E402
from api.web.auth import create_user  # noqa: E402
from bench._server import WorkerProcess, drain_outbox, provider_env  # noqa: E402


def _storm(port: int, token: str, n: int, concurrency: int, seed: int) -> tuple[int, int, float]:
    """Post ``n`` reports over ``concurrency`` keep-alive connections (the raw loader of :mod:`api.simulation.loadgen`: an
    HTTP client library costs more CPU per request than the service and would make the figure the client's);
    requests cut or refused are resent with the same idempotency key, up to four more rounds."""
    rng = np.random.default_rng(seed)
    kinds = rng.choice(3, size=n, p=[0.5, 0.4, 0.1])
    spanish = rng.random(n) < 0.25
    auth = {"Authorization": f"Bearer {token}"}

    def request(i: int) -> bytes:
        contact = ({"sms": f"+1555{i:07d}", "prefer": "sms"} if kinds[i] == 0 else
                   {"email": f"member{i}@example.org", "prefer": "email"} if kinds[i] == 1 else None)
        body = {"power": "out", "channel": "web", "lat": 50.0 + (i % 100) * 1e-4, "lon": 11.5,
                "language": "es" if spanish[i] else "en", "contact": contact}
        return http_request("POST", "/reports", body, {**auth, "Idempotency-Key": f"storm-{seed}-{i}"})

    t = time.perf_counter()
    todo, accepted = list(range(n)), 0
    for _round in range(5):
        results, _ = hammer(port, lambda j, todo=todo: request(todo[j]), concurrency=concurrency, total=len(todo))
        ok = {r.index for r in results if r.status == 202}
        accepted += len(ok)
        todo = [todo[j] for j in range(len(todo)) if j not in ok]
        if not todo:
            break
        time.sleep(0.2)
    return accepted, len(todo), time.perf_counter() - t


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live child process has used (Linux ``/proc``, as :mod:`api.simulation.loadgen` does)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 120.0) -> None:
    """Wait until every worker has said it is delivering: the storm measures delivery, not interpreter start-up."""
    deadline = time.monotonic() + timeout
    waiting = dict(zip(logs, procs, strict=True))
    while waiting:
        for path, proc in list(waiting.items()):
            if proc.poll() is not None:
                raise RuntimeError(f"notification worker exited with status {proc.returncode}: "
                                   f"{path.read_text()[-2000:]}")
            if "notification worker" in path.read_text(errors="replace"):
                del waiting[path]
        if time.monotonic() > deadline:
            raise RuntimeError(f"notification workers not ready after {timeout:.0f} s")
        time.sleep(0.1)


def _faults(smtp: SmtpReceiver, gateway: SmsGateway, log: list[str], start_after: float = 2.0) -> None:
    """Provider trouble during the replay (once the workers are delivering): SMS refuses, then SMTP times out,
    then both are slow."""
    while gateway.received.total + smtp.received.total == 0:
        time.sleep(0.1)
    time.sleep(start_after)
    gateway.faults.mode = "fail"
    log.append(f"{time.strftime('%X')} SMS gateway refusing (503) for 5 s")
    time.sleep(5)
    gateway.faults.mode = "ok"
    smtp.faults.hold, smtp.faults.mode = 15.0, "timeout"
    log.append(f"{time.strftime('%X')} SMTP server timing out for 5 s")
    time.sleep(5)
    smtp.faults.mode = "ok"
    smtp.faults.delay = gateway.faults.delay = 0.05
    smtp.faults.mode = gateway.faults.mode = "slow"
    log.append(f"{time.strftime('%X')} both providers slow (50 ms) for 5 s")
    time.sleep(5)
    smtp.faults.mode = gateway.faults.mode = "ok"
    log.append(f"{time.strftime('%X')} providers recovered")


def run(reports: int, workers: int, concurrency: int, faults: bool, database_url: str | None, territory: str | None,
        seed: int, drain_timeout: float, keyed: str = "sms", threads: int = 16) -> dict:
    with tempfile.TemporaryDirectory(prefix="oms-notify-bench-") as tmp, fresh_database(database_url, Path(tmp)) as url:
        return _run(Path(tmp), url, reports, workers, concurrency, faults, territory, seed, drain_timeout, keyed,
                    threads)


def _run(tmp: Path, url: str, reports: int, workers: int, concurrency: int, faults: bool, territory: str | None,
         seed: int, drain_timeout: float, keyed: str, threads: int) -> dict:
    upgrade(url)
    db = Database(url)
    with db.write() as s, s.begin():
        _, token = create_user(s, f"bench-gateway-{seed}", "integration")
    smtp, gateway = SmtpReceiver().start(), SmsGateway().start()
    env = {**provider_env(smtp, gateway, SMTP_TIMEOUT_S="2", SMS_TIMEOUT_S="2", BACKOFF_BASE_S="0.5",
                          BACKOFF_MAX_S="5", RATE_SMS="5000", RATE_EMAIL="5000", BATCH_SIZE="200",
                          THREADS=str(threads), IDEMPOTENT_CHANNELS=json.dumps([c for c in keyed.split(",") if c])),
           "OMS_RATE_LIMIT_PER_MINUTE": "100000000", "OMS_TRUSTED_RATE_LIMIT_PER_MINUTE": "100000000",
           "OMS_TRUSTED_RATE_LIMIT_BURST": "1000000"}
    server = ServerProcess(url, territory, env=env, log_path=tmp / "server.log")
    workers_: list[WorkerProcess] = []
    fault_log: list[str] = []
    try:
        server.start()
        logs = [tmp / f"worker-{i}.log" for i in range(workers)]
        workers_ = [WorkerProcess(url, env, path, worker_id=f"bench-w{i}", log_level="info").start()
                    for i, path in enumerate(logs)]
        procs = [w.proc for w in workers_]
        _wait_ready(procs, logs)
        if faults:
            threading.Thread(target=_faults, args=(smtp, gateway, fault_log), daemon=True).start()
        cpu0 = server.cpu_seconds(), sum(_cpu_seconds(p.pid) for p in procs)
        sent, failed, storm_s = _storm(server.port, token, reports, concurrency, seed)
        server_cpu = server.cpu_seconds() - cpu0[0]
        drain_s = drain_outbox(db, drain_timeout)
        worker_cpu = sum(_cpu_seconds(p.pid) for p in procs) - cpu0[1]
    finally:
        WorkerProcess.stop_all(workers_)
        server.stop()
    with db.read() as s:
        rows = s.execute(select(Report.reference, Report.received_at, Report.contact, OutboxMessage.status,
                                OutboxMessage.sent_at, OutboxMessage.channel, OutboxMessage.idempotency_key)
                         .join(OutboxMessage, OutboxMessage.report_id == Report.id)
                         .where(OutboxMessage.kind == "acknowledgment")).all()
        statuses = dict(s.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all())
    smtp.stop()
    gateway.stop()
    db.dispose()
    lat = np.array([(r.sent_at - r.received_at).total_seconds() for r in rows if r.status == "sent"])
    sent_times = np.array([r.sent_at.timestamp() for r in rows if r.status == "sent"])
    with_contact = [r for r in rows if r.contact]
    received = set(gateway.received.deliveries) | set(smtp.received.deliveries)
    lost = sum(1 for r in with_contact if r.idempotency_key not in received)
    span = float(sent_times.max() - sent_times.min()) if sent_times.size > 1 else float("nan")
    return {
        "reports": reports, "keyed_channels": keyed, "accepted": sent, "intake_failed": failed, "storm_s": round(storm_s, 1),
        "intake_per_s": round(sent / storm_s, 1), "workers": workers, "threads": threads, "faults": fault_log,
        "server_cpu_ms_per_report": round(server_cpu * 1000 / max(sent, 1), 3),
        "server_cpu_share": round(server_cpu / storm_s, 2),
        "worker_cpu_ms_per_message": round(worker_cpu * 1000 / max(len(rows), 1), 3),
        "acks": len(rows), "acks_with_contact": len(with_contact),
        "ack_latency_p50_s": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
        "ack_latency_p99_s": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
        "ack_latency_max_s": round(float(lat.max()), 3) if lat.size else None,
        "acks_over_15_min": int((lat > 900).sum()) + sum(1 for r in rows if r.status != "sent"),
        "goal_ack_p99_under_30s": bool(lat.size) and float(np.percentile(lat, 99)) < 30.0,
        "sent_per_s": round(sent_times.size / span, 1) if span == span and span > 0 else None,
        "drain_after_storm_s": round(drain_s, 1),
        "sms_delivered": gateway.received.total, "email_delivered": smtp.received.total,
        "provider_refusals": gateway.received.refused + smtp.received.refused,
        "resubmissions_absorbed_by_key": gateway.received.resubmitted,
        "duplicates": gateway.received.duplicates + smtp.received.duplicates,
        "lost": lost, "dead_letters": statuses.get("dead", 0), "outbox": statuses,
        "database": "sqlite" if url.startswith("sqlite") else "postgresql", "territory": territory or "(none)",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reports", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=4, help="notification worker processes (e-mail goes one at a "
                                                           "time per process)")
    p.add_argument("--threads", type=int, default=16, help="sending threads per worker (keyed channels)")
    p.add_argument("--keyed", default="sms", help="channels the workers are told honour Idempotency-Key (comma "
                                                   "separated; the bench's SMS gateway does; \"\": none)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--no-faults", action="store_true")
    p.add_argument("--database-url")
    p.add_argument("--territory", help="a territory GeoPackage for the service (default: none, intake only)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--drain-timeout", type=float, default=900.0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    out = run(args.reports, args.workers, args.concurrency, not args.no_faults, args.database_url, args.territory,
              args.seed, args.drain_timeout, args.keyed, args.threads)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"notification storm: {out['reports']:,} reports, {out['workers']} workers x {out['threads']} threads, "
          f"{out['database']}, "
          f"keyed channels: {out['keyed_channels'] or 'none'}")
    for line in out["faults"]:
        print(f"  fault: {line}")
    rows = [("reports accepted (202)", f"{out['accepted']:,} in {out['storm_s']} s ({out['intake_per_s']}/s)"),
            ("server CPU per report", f"{out['server_cpu_ms_per_report']} ms (it got "
                                      f"{out['server_cpu_share']:.0%} of a core during the storm)"),
            ("worker CPU per message", f"{out['worker_cpu_ms_per_message']} ms (all workers together)"),
            ("acknowledgments", f"{out['acks']:,} ({out['acks_with_contact']:,} with contact)"),
            ("ack latency p50 / p99 / max", f"{out['ack_latency_p50_s']} / {out['ack_latency_p99_s']} / "
                                            f"{out['ack_latency_max_s']} s (goal p99 < 30 s)"),
            ("acks over 15 min (goal 0)", out["acks_over_15_min"]),
            ("notifications sent per second", out["sent_per_s"]),
            ("SMS / email delivered", f"{out['sms_delivered']:,} / {out['email_delivered']:,}"),
            ("provider refusals (retried)", out["provider_refusals"]),
            ("duplicates (goal 0)", out["duplicates"]), ("lost (goal 0)", out["lost"]),
            ("dead letters", out["dead_letters"]), ("drain after storm", f"{out['drain_after_storm_s']} s")]
    for k, v in rows:
        print(f"  {k:<32} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
