"""Intake throughput and latency of the running service, and the crash test.

    python bench/intake.py [--database-url URL] [--customers N] [--seconds S] [--concurrency C] [--crash] [--json]

Starts ``oms serve`` (uvicorn, one process) on a synthetic territory and drives it over loopback from this process
with keep-alive connections: single ``POST /reports`` (each with its own idempotency key, as a gateway sends them)
and ``POST /ami`` batches. Prints reports/s and p50/p99 latency, AMI messages/s and p50/p99 per batch, how long the
live engine took to analyse the backlog, and checks that every 202 is a row in the database.

``--crash`` then runs the crash test: a report storm, ``kill -9`` of the server in the middle of it, a restart, and
the check that every report answered 202 is in the database and in an event, and that nothing is duplicated.

Without ``--database-url`` a SQLite file in a temporary folder is used; a PostgreSQL URL gets a fresh schema that
is dropped afterwards. Goals (issue 5): >= 1,000 reports/s with p99 < 100 ms, AMI >= 5,000 messages/s, on
PostgreSQL on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from api.simulation.loadgen import ServerProcess, count_rows, fresh_database, hammer, http_request, percentile  # noqa: E402
from api.store.db import Database  # noqa: E402
from api.store.migrate import upgrade  # noqa: E402
from api.store.models import MeterMessage, Report  # noqa: E402
from api.web.auth import create_user  # noqa: E402


def prepare(url: str) -> str:
    """Migrate from empty and add an integration user; returns its token."""
    upgrade(url)
    db = Database(url)
    with db.write() as s, s.begin():
        _, token = create_user(s, "bench-gateway", "integration")
    db.dispose()
    return token


def report_maker(accounts: list[str], token: str, run: str):
    rng = random.Random(7)
    auth = {"Authorization": f"Bearer {token}"}

    def make(i: int) -> bytes:
        return http_request("POST", "/reports", {"account": rng.choice(accounts), "channel": "ivr"},
                            {**auth, "Idempotency-Key": f"{run}-{i}"})
    return make


def ami_maker(meters: list[str], token: str, batch: int):
    rng = random.Random(11)
    auth = {"Authorization": f"Bearer {token}"}

    def make(_i: int) -> bytes:
        now = datetime.now(UTC).isoformat()
        msgs = [{"meter": rng.choice(meters), "kind": rng.choice(("last_gasp", "power_restore")), "at": now}
                for _ in range(batch)]
        return http_request("POST", "/ami", {"messages": msgs}, auth)
    return make


def latency_ms(results, status=202) -> dict:
    ok = [r.seconds * 1000 for r in results if r.status == status]
    return {"p50_ms": round(percentile(ok, 50), 1), "p99_ms": round(percentile(ok, 99), 1),
            "max_ms": round(max(ok), 1) if ok else None}


def throughput(url: str, territory: str, accounts, meters, args, log: Path) -> dict:
    token = prepare(url)
    server = ServerProcess(url, territory, log_path=log,
                           env={"OMS_REPLAN_DEBOUNCE_S": "2", "OMS_REPLAN_TIME_LIMIT_S": "2"}).start()
    try:
        warm, _ = hammer(server.port, report_maker(accounts, token, "warm"), concurrency=8, total=200)
        cpu0 = server.cpu_seconds()
        results, elapsed = hammer(server.port, report_maker(accounts, token, "run"),
                                  concurrency=args.concurrency, seconds=args.seconds)
        cpu_reports = server.cpu_seconds() - cpu0
        accepted = sum(r.status == 202 for r in results)
        statuses = sorted({r.status for r in results})
        catch_up = server.wait_processed()
        cpu0 = server.cpu_seconds()
        ami_results, ami_elapsed = hammer(server.port, ami_maker(meters, token, args.ami_batch),
                                          concurrency=max(2, args.concurrency // 8), seconds=args.seconds)
        cpu_ami = server.cpu_seconds() - cpu0
        batches = [r for r in ami_results if r.status == 202]
        ami_msgs = sum(json.loads(r.body)["accepted"] for r in batches)
        stored = count_rows(url, Report)
        stored_ami = count_rows(url, MeterMessage)
        health = server.health()
    finally:
        server.stop()
    warm_ok = sum(r.status == 202 for r in warm)
    return {
        "database": url.split(":", 1)[0].split("+")[0],
        "reports": {"sent": len(results), "accepted": accepted, "statuses": statuses, "seconds": round(elapsed, 2),
                    "per_s": round(accepted / elapsed, 1), **latency_ms(results),
                    "concurrency": args.concurrency, "stored_equals_accepted": stored == accepted + warm_ok,
                    "engine_catch_up_s": round(catch_up, 2),
                    "server_cpu_ms_per_report": round(cpu_reports * 1000 / max(accepted, 1), 3),
                    "server_cpu_share": round(cpu_reports / elapsed, 2)},
        "ami": {"batches": len(batches), "batch_size": args.ami_batch, "messages": ami_msgs,
                "seconds": round(ami_elapsed, 2), "messages_per_s": round(ami_msgs / ami_elapsed, 1),
                **latency_ms(ami_results), "stored_equals_accepted": stored_ami == ami_msgs,
                "server_cpu_us_per_message": round(cpu_ami * 1e6 / max(ami_msgs, 1), 1),
                "server_cpu_share": round(cpu_ami / ami_elapsed, 2)},
        "engine": health["engine"],
    }


def crash(url: str, territory: str, accounts, args, log: Path) -> dict:
    """Kill -9 the server mid-storm; after a restart every 202 must be stored, analysed, in an event, once."""
    token = prepare(url)
    server = ServerProcess(url, territory, log_path=log).start()
    box = {}

    def storm():
        box["results"], box["elapsed"] = hammer(server.port, report_maker(accounts, token, "crash"),
                                                concurrency=args.concurrency, seconds=args.crash_after + 1)

    thread = threading.Thread(target=storm)
    thread.start()
    time.sleep(args.crash_after)
    server.kill()
    thread.join()
    answered = [json.loads(r.body)["reference"] for r in box["results"] if r.status == 202]
    lost_connections = sum(r.status == 0 for r in box["results"])  # cut mid-request, or refused after the kill
    restarted = ServerProcess(url, territory, log_path=log).start()
    try:
        catch_up = restarted.wait_processed()
    finally:
        restarted.stop()
    db = Database(url)
    with db.read() as s:
        refs = dict(s.execute(select(Report.reference, Report.event_id)).all())
        rows = s.scalar(select(func.count()).select_from(Report))
        keys = s.scalar(select(func.count(func.distinct(Report.idempotency_key))))
    db.dispose()
    missing = [r for r in answered if r not in refs]
    without_event = [r for r in answered if r in refs and refs[r] is None]
    return {"answered_202": len(answered), "connections_cut": lost_connections, "rows": rows,
            "missing": len(missing), "without_event": len(without_event), "duplicates": rows - keys,
            "rebuild_catch_up_s": round(catch_up, 2),
            "ok": not missing and not without_event and rows == keys and len(answered) > 0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    p.add_argument("--customers", type=int, default=20_000, help="synthetic territory size")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each load phase")
    p.add_argument("--concurrency", type=int, default=32, help="client connections")
    p.add_argument("--ami-batch", type=int, default=500)
    p.add_argument("--crash", action="store_true", help="also run the kill -9 crash test")
    p.add_argument("--crash-after", type=float, default=4.0, help="seconds into the storm to kill the server")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)

    from data.synthetic import generate_territory
    from gis.io import write_territory

    with tempfile.TemporaryDirectory(prefix="oms-bench-") as tmp_name:
        tmp = Path(tmp_name)
        net = generate_territory(customers=args.customers, seed=3)
        territory = str(tmp / "territory.gpkg")
        write_territory(net, territory)
        sps = net.service_points
        accounts = [a for a in sps["account"].astype(str) if a]
        meters = [m or s for m, s in zip(sps["meter"].astype(str), sps["sp_id"].astype(str), strict=True)]
        out = {"customers": int(sps["customers"].sum()), "service_points": len(sps)}
        log = tmp / "server.log"
        try:
            with fresh_database(args.database_url, tmp) as url:
                out["throughput"] = throughput(url, territory, accounts, meters, args, log)
            if args.crash:
                with fresh_database(args.database_url, tmp) as url:
                    out["crash"] = crash(url, territory, accounts, args, log)
        except Exception:
            if log.exists():
                sys.stderr.write(log.read_text()[-4000:])
            raise
    if args.json:
        print(json.dumps(out))
    else:
        print_table(out)
    return 0


def print_table(out: dict) -> None:
    t = out["throughput"]
    r, a = t["reports"], t["ami"]
    print(f"intake benchmark on {t['database']}: {out['service_points']:,} service points, "
          f"{r['concurrency']} connections")
    print(f"{'':24}{'rate':>14}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}  notes")
    print(f"{'single reports':24}{r['per_s']:>10,.0f} /s {r['p50_ms']:>9}{r['p99_ms']:>9}{r['max_ms']:>9}  "
          f"{r['accepted']:,} accepted, statuses {r['statuses']}, stored = accepted: {r['stored_equals_accepted']}")
    print(f"{'AMI batches of ' + str(a['batch_size']):24}{a['messages_per_s']:>10,.0f} /s {a['p50_ms']:>9}"
          f"{a['p99_ms']:>9}{a['max_ms']:>9}  {a['messages']:,} messages in {a['batches']} batches "
          f"(msgs/s), stored = accepted: {a['stored_equals_accepted']}")
    print(f"server CPU: {r['server_cpu_ms_per_report']} ms per report (it got {r['server_cpu_share']:.0%} of a "
          f"core; a whole core = {1000 / max(r['server_cpu_ms_per_report'], 1e-9):,.0f} reports/s), "
          f"{a['server_cpu_us_per_message']} us per AMI message (got {a['server_cpu_share']:.0%} of a core)")
    print(f"live engine analysed the report backlog {r['engine_catch_up_s']} s after the load stopped "
          f"(engine: {t['engine']})")
    if "crash" in out:
        c = out["crash"]
        print(f"crash test (kill -9 mid-storm): {c['answered_202']:,} answered 202, {c['connections_cut']} "
              f"requests cut or refused, {c['rows']:,} rows; missing {c['missing']}, not in an event {c['without_event']}, "
              f"duplicated {c['duplicates']}; after restart analysed in {c['rebuild_catch_up_s']} s -> "
              f"{'OK' if c['ok'] else 'FAILED'}")


if __name__ == "__main__":
    sys.exit(main())
