"""The storm demo: the whole system running on the bundled sample territory, in accelerated time.

:func:`run_demo` starts the service (uvicorn in a thread, SQLite in the demo's folder), creates the demo's users and
crews, and then lets four actors work against it through its public interfaces, exactly as in a real storm:

* the **storm** (:func:`api.simulation.storm.replay`): simulated faults become phone/web reports, AMI last gasps and SCADA
  lockouts, sent at ``speed`` times the simulated pace;
* the service's own **live loop**: trouble-call analysis, events, debounced re-plans with OR-Tools, ETRs;
* the **notification worker** (:mod:`api.notify`) with the log channel: acknowledgments, proactive notices, ETR
  updates and restoration messages go to ``notifications.log``;
* the **crews** (:class:`CrewSimulator`): each crew follows its plan through the crew API — en route with position
  pings along the way, on site, restored with a cause.

Time: the service runs on the wall clock; the storm and the crews run ``speed`` times faster than simulated time
(a 40-minute drive takes 40 * 60 / speed seconds). The post-event summary therefore maps wall-clock times back to
simulated time, ``storm start + speed * (t - storm start)``, so its minutes are storm minutes. The ETRs the
service published are kept as the service stated them (issue time mapped, lead time unchanged), because the engine
computes them in simulated minutes (crew ETA + repair time).

Headless (``oms demo --headless``) runs until every event is closed (or ``time_cap_s``), then writes the map
snapshots and the summary and returns; interactive mode keeps serving until Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from api.store.models import ACTIVE_ASSIGNMENT

log = logging.getLogger("oms.demo")

#: Crew driving speed on the straight line between stops, km/h, and the detour factor of real roads.
DRIVE_KMH = 40.0
DETOUR = 1.3
#: Causes a crew may find when the engine had no clue; weighted like a wind storm's.
FOUND_CAUSES = (("tree", 5), ("storm", 3), ("equipment", 2), ("lightning", 1), ("vehicle", 1))
CREW_SKILLS = ["line", "tree", "service", "substation"]


@dataclass(frozen=True)
class DemoOptions:
    """What ``oms demo`` takes. ``port`` 0 picks a free port."""

    out: Path
    faults: int = 12
    call_rate: float = 0.3
    ami: bool = True
    speed: float = 120.0
    seed: int = 1
    crews: int = 6
    host: str = "127.0.0.1"
    port: int = 8000
    headless: bool = False
    #: Headless: give up waiting for the last restorations after this many wall-clock seconds of storm.
    time_cap_s: float = 600.0
    replan_time_limit_s: float = 1.0
    #: Share of members enrolled for proactive SMS notices.
    enroll_share: float = 0.25

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed}")
        if self.crews < 1:
            raise ValueError(f"crews must be >= 1, got {self.crews}")
        if self.faults < 1:
            raise ValueError(f"faults must be >= 1, got {self.faults}")
        if not 0 <= self.call_rate <= 1:
            raise ValueError(f"call_rate must be in [0, 1], got {self.call_rate}")


@dataclass(frozen=True)
class SimTime:
    """Wall clock -> simulated storm time: ``start + speed * (t - start)``."""

    start: datetime
    speed: float

    def __call__(self, t: datetime | None) -> datetime | None:
        if t is None:
            return None
        t = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        return self.start + (t - self.start) * self.speed


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lon, lat) points."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def drive_minutes(a: tuple[float, float], b: tuple[float, float]) -> float:
    return 2.0 + distance_km(a, b) * DETOUR / DRIVE_KMH * 60.0


# ================================================================================================ crews
@dataclass
class _CrewState:
    crew_id: str
    http: httpx.Client
    pos: tuple[float, float]
    phase: str = "idle"  # idle, travel, work
    assignment: int | None = None
    event_id: str | None = None
    cause: str = ""
    repair_minutes: float = 0.0
    origin: tuple[float, float] = (0.0, 0.0)
    target: tuple[float, float] = (0.0, 0.0)
    phase_start: float = 0.0
    phase_end: float = 0.0
    next_poll: float = 0.0
    next_ping: float = 0.0
    started_at: datetime | None = None


@dataclass
class CrewSimulator:
    """Moves every crew along its plan through the crew API (see the module docstring).

    One thread steps all crews every ``tick_s``: an idle crew asks for its assignments and takes the first in route
    order; a travelling crew pings its interpolated position every ``ping_s`` and reports on site on arrival; a
    working crew reports restored, with a cause, when the repair time is up. Drive and repair times are in simulated
    minutes (repair: the planner's own estimate for the device kind and cause, times a seeded factor 0.6-1.4),
    divided by ``speed`` for the wall clock. A 404/409 (the plan moved the job, or the event closed) sends the crew
    back to idle. ``crew_hours`` per event (simulated: from en route to restored) feed the summary."""

    url: str
    crew_tokens: dict[str, str]
    dispatcher_token: str
    start_positions: dict[str, tuple[float, float]]
    speed: float
    seed: int = 1
    tick_s: float = 0.2
    ping_s: float = 1.0
    #: Called with an event id after its restoration was accepted (the demo's meter head-end answers with
    #: power-restore messages from the meters that came back).
    on_restored: object = None
    crew_hours: dict[str, float] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dispatcher = httpx.Client(base_url=self.url, timeout=30,
                                        headers={"Authorization": f"Bearer {self.dispatcher_token}"})
        self.crews = {cid: _CrewState(cid, httpx.Client(base_url=self.url, timeout=30,
                                                        headers={"Authorization": f"Bearer {tok}"}),
                                      self.start_positions[cid]) for cid, tok in sorted(self.crew_tokens.items())}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oms-demo-crews", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for c in self.crews.values():
            c.http.close()
        self._dispatcher.close()

    def phases(self) -> Counter:
        return Counter(c.phase for c in self.crews.values())

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for crew in self.crews.values():
                try:
                    self.step(crew, now)
                except httpx.HTTPError as exc:  # the service is busy or stopping: try again next tick
                    self.errors += 1
                    log.warning("crew %s: %s", crew.crew_id, exc)
            self._stop.wait(self.tick_s)

    def _real_s(self, sim_minutes: float) -> float:
        return sim_minutes * 60.0 / self.speed

    def _sim_hours(self, start: datetime, end: datetime) -> float:
        return (end - start).total_seconds() * self.speed / 3600.0

    def _back_to_idle(self, crew: _CrewState, why: str) -> None:
        log.info("crew %s drops assignment %s: %s", crew.crew_id, crew.assignment, why)
        crew.phase, crew.assignment, crew.event_id = "idle", None, None

    def _status(self, crew: _CrewState, status: str, cause: str | None = None) -> bool:
        body = {"status": status} | ({"cause": cause} if cause else {})
        r = crew.http.post(f"/crew/assignments/{crew.assignment}/status", json=body)
        if r.status_code in (404, 409):
            self._back_to_idle(crew, r.json().get("error", {}).get("message", r.text))
            return False
        r.raise_for_status()
        return True

    def step(self, crew: _CrewState, now: float) -> None:
        if crew.phase == "idle":
            if now < crew.next_poll:
                return
            crew.next_poll = now + 0.5
            r = crew.http.get("/crew/assignments")
            r.raise_for_status()
            work = sorted((a for a in r.json() if a["status"] in ACTIVE_ASSIGNMENT),
                          key=lambda a: (a["sequence"], a["id"]))
            if not work:
                return
            a = work[0]
            ev = self._dispatcher.get(f"/events/{a['event_id']}")
            if ev.status_code != 200 or ev.json().get("lat") is None:
                return
            ev = ev.json()
            crew.assignment, crew.event_id = a["id"], a["event_id"]
            crew.target = (float(ev["lon"]), float(ev["lat"]))
            crew.cause = ev.get("cause") or self._found_cause(a["event_id"])
            crew.repair_minutes = self._repair_minutes(a["event_id"], ev.get("device_kind"), crew.cause)
            if a["status"] != "en_route" and not self._status(crew, "en_route"):
                return
            crew.started_at = datetime.now(UTC)
            crew.phase, crew.origin, crew.phase_start = "travel", crew.pos, now
            crew.phase_end = now + self._real_s(drive_minutes(crew.pos, crew.target))
            crew.next_ping = now
        if crew.phase == "travel":
            if now >= crew.next_ping or now >= crew.phase_end:
                share = min(1.0, (now - crew.phase_start) / max(crew.phase_end - crew.phase_start, 1e-9))
                crew.pos = (crew.origin[0] + share * (crew.target[0] - crew.origin[0]),
                            crew.origin[1] + share * (crew.target[1] - crew.origin[1]))
                crew.http.post("/crew/position", json={"lon": crew.pos[0], "lat": crew.pos[1]}).raise_for_status()
                crew.next_ping = now + self.ping_s
            if now >= crew.phase_end:
                if not self._status(crew, "on_site"):
                    return
                crew.phase, crew.phase_start = "work", now
                crew.phase_end = now + self._real_s(crew.repair_minutes)
        elif crew.phase == "work" and now >= crew.phase_end:
            eid = crew.event_id
            if self._status(crew, "restored", crew.cause):
                hours = self._sim_hours(crew.started_at, datetime.now(UTC))
                self.crew_hours[eid] = self.crew_hours.get(eid, 0.0) + hours
                self.restored.append(eid)
                if self.on_restored is not None:
                    self.on_restored(eid)
                crew.phase, crew.assignment, crew.event_id = "idle", None, None
                crew.next_poll = now

    def _rng(self, event_id: str) -> random.Random:
        return random.Random(f"{self.seed}:{event_id}")  # same event, same luck, whatever the thread timing

    def _found_cause(self, event_id: str) -> str:
        causes, weights = zip(*FOUND_CAUSES, strict=True)
        return self._rng(event_id).choices(causes, weights)[0]

    def _repair_minutes(self, event_id: str, device_kind: str | None, cause: str) -> float:
        from api.service.replan import service_minutes

        return service_minutes(device_kind, cause) * self._rng(event_id + ":repair").uniform(0.6, 1.4)


# ================================================================================================ the demo
class Demo:
    """One demo run: :meth:`setup`, :meth:`start`, then :meth:`wait_until_done` or :meth:`serve_forever`,
    :meth:`finish` (snapshots and summary) and :meth:`stop`."""

    def __init__(self, options: DemoOptions, network) -> None:
        self.o = options
        self.network = network
        self.out = Path(options.out)
        self.db_url = f"sqlite:///{(self.out / 'oms.db').resolve()}"
        self.tokens: dict[str, str] = {}
        self.crew_tokens: dict[str, str] = {}
        self.storm_result: dict | None = None
        self.storm_error: BaseException | None = None
        self.etrs: dict[str, list[tuple[datetime, datetime]]] = {}
        self._last_etr: dict[str, datetime] = {}
        self.customers: dict[str, int] = {}  # event -> most customers out seen (restoration sets it to 0)
        self.peak_customers_out = 0
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        """Fresh database in the demo folder, migrated; users, tokens and crews at the depots."""
        from api.store.db import Database
        from api.store.migrate import upgrade
        from api.store.models import Crew
        from api.web.auth import create_user

        self.out.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm"):  # the demo always starts from an empty database
            (self.out / f"oms.db{suffix}").unlink(missing_ok=True)
        upgrade(self.db_url)
        db = Database(self.db_url)
        depots = self._depots()
        try:
            with db.write() as session, session.begin():
                for role in ("dispatcher", "integration", "admin"):
                    _, self.tokens[role] = create_user(session, f"demo-{role}", role)
                for i in range(self.o.crews):
                    cid = f"crew-{i + 1}"
                    depot_id, (lon, lat) = depots[i % len(depots)]
                    session.add(Crew(id=cid, name=f"Crew {i + 1}", skills=list(CREW_SKILLS), depot_id=depot_id,
                                     status="available", lon=lon, lat=lat, position_at=datetime.now(UTC)))
                    session.flush()
                    _, self.crew_tokens[cid] = create_user(session, f"demo-{cid}", "crew", cid)
        finally:
            db.dispose()
        self.crew_start = {f"crew-{i + 1}": depots[i % len(depots)][1] for i in range(self.o.crews)}

    def _depots(self) -> list[tuple[str, tuple[float, float]]]:
        deps = self.network.depots
        if len(deps):
            return [(str(d), (float(g.x), float(g.y))) for d, g in zip(deps["depot_id"], deps.geometry, strict=True)]
        sps = self.network.service_points.geometry
        return [("centre", (float(sps.x.mean()), float(sps.y.mean())))]

    # -------------------------------------------------------------------------------------------- running
    def start(self) -> None:
        """The service, the notification worker and planner, the crews and the storm, each in its thread."""
        import uvicorn

        from api.maps import PageConfig
        from api.settings import Settings
        from api.web.app import create_app

        settings = Settings(database_url=self.db_url, replan_debounce_s=0.5, replan_max_wait_s=3.0,
                            replan_time_limit_s=self.o.replan_time_limit_s, rate_limit_per_minute=600.0,
                            rate_limit_burst=100)
        page = PageConfig(utility_name="Sample Electric Cooperative (demo)", public_interval_s=5.0,
                          dispatcher_interval_s=2.0)
        self.app = create_app(settings, network=self.network, page=page)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.o.host, self.o.port))
        except OSError as exc:
            raise RuntimeError(f"cannot listen on {self.o.host}:{self.o.port} ({exc.strerror}); "
                               "pass --port 0 for any free port") from None
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.o.host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    log_config=None))  # keep the demo's log files
        self._spawn("oms-demo-http", lambda: self.server.run(sockets=[sock]))
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline or not self._threads[-1].is_alive():
                raise RuntimeError("the service did not start; see demo.log")
            time.sleep(0.05)
        self.live = self.app.state.oms.live
        self.db = self.app.state.oms.db
        self._start_notifications()
        self._head_end = httpx.Client(base_url=self.url, timeout=60,
                                      headers={"Authorization": f"Bearer {self.tokens['integration']}"})
        self._enroll_contacts()
        self.crews = CrewSimulator(self.url, self.crew_tokens, self.tokens["dispatcher"], self.crew_start,
                                   self.o.speed, seed=self.o.seed, on_restored=self._meters_back)
        self.crews.start()
        self.started = datetime.now(UTC)
        self.sim = SimTime(self.started, self.o.speed)
        self._spawn("oms-demo-storm", self._storm)

    def _spawn(self, name: str, target) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _storm(self) -> None:
        from api.simulation.storm import replay

        try:
            self.storm_result = replay(self.network, url=self.url, token=self.tokens["integration"],
                                       faults=self.o.faults, call_rate=self.o.call_rate, ami=self.o.ami,
                                       speed=self.o.speed, concurrency=8, seed=self.o.seed)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            self.storm_error = exc
            log.exception("storm replay failed")

    def _start_notifications(self) -> None:
        from api.notify.channels import LogChannel
        from api.notify.config import NotifySettings
        from api.notify.planner import Planner
        from api.notify.worker import Worker

        ns = NotifySettings(utility_name="Sample Electric Cooperative", status_url=self.url + "/reports/{reference}")
        # no SMS gateway or mail relay in a demo: the log channel stands in for both (notifications.log)
        self.channels = {name: LogChannel(name=name, keep=0) for name in ("log", "sms", "email")}
        self.notify_worker = Worker(self.db, ns, self.channels, worker_id="demo", seed=self.o.seed)
        self.planner = Planner(self.db, ns, network=self.network, channels=set(self.channels))
        self._notify_stop = threading.Event()
        self._spawn("oms-demo-notify", lambda: self.notify_worker.run(self._notify_stop))
        self._spawn("oms-demo-planner", lambda: self.planner.run(self._notify_stop))

    def _meters_back(self, event_id: str) -> None:
        """The meter head-end: when a crew restores an event, the meters under it report power restored (without
        this, their unanswered last gasps would read as a fresh outage)."""
        from api.store.models import Event

        with self.db.read() as session:
            ev = session.get(Event, event_id)
        if ev is None:
            return
        rows = self.app.state.maps.provider._service_points(ev)
        sps = self.network.service_points.iloc[rows]
        now = datetime.now(UTC).isoformat()
        messages = [{"meter": str(m) if m and str(m) != "nan" else str(sp), "kind": "power_restore", "at": now}
                    for m, sp in zip(sps["meter"], sps["sp_id"], strict=True)]
        for i in range(0, len(messages), 5000):
            r = self._head_end.post("/ami", json={"messages": messages[i:i + 5000]})
            if r.status_code != 202:
                log.warning("power-restore messages for %s refused: %s", event_id, r.text[:300])

    def _enroll_contacts(self) -> None:
        """Enroll a seeded share of the members for proactive SMS notices, through the integration API (as a CIS
        export would): their outage, crew and restoration notices then appear in ``notifications.log``."""
        sps = self.network.service_points
        rng = random.Random(self.o.seed)
        rows = [{"sp_id": str(sp), "sms": str(phone), "prefer": "sms"}
                for sp, phone in zip(sps["sp_id"], sps["phone"], strict=True)
                if phone and str(phone) != "nan" and rng.random() < self.o.enroll_share]
        with httpx.Client(base_url=self.url, timeout=60,
                          headers={"Authorization": f"Bearer {self.tokens['integration']}"}) as http:
            for i in range(0, len(rows), 5000):
                http.post("/notify/contacts", json=rows[i:i + 5000]).raise_for_status()
        self.enrolled = len(rows)

    @property
    def storm_done(self) -> bool:
        return self.storm_result is not None or self.storm_error is not None

    def status(self) -> dict:
        """Counts for the one-line status (and the end condition), read from the database."""
        from api.store.models import CLOSED_STATES, Event, OutboxMessage, Report

        with self.db.read() as session:
            open_rows = session.execute(select(Event.id, Event.customers_out, Event.etr_latest).where(
                Event.state.not_in(CLOSED_STATES), Event.merged_into.is_(None))).all()
            restored = session.scalar(select(func.count()).where(Event.state == "restored")) or 0
            reports = session.scalar(select(func.count()).select_from(Report)) or 0
            unprocessed = session.scalar(select(func.count()).select_from(Report)
                                         .where(Report.processed_at.is_(None))) or 0
            acks = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.kind == "acknowledgment", OutboxMessage.status == "sent")) or 0
            pending = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status.in_(("pending", "claimed")),
                OutboxMessage.next_attempt_at <= datetime.now(UTC))) or 0  # due now; held ETR updates wait
            sent = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                OutboxMessage.status == "sent")) or 0
        now = datetime.now(UTC)
        for eid, customers, etr in open_rows:  # sample what a restored event no longer shows: customers, ETRs
            self.customers[eid] = max(self.customers.get(eid, 0), int(customers or 0))
            if etr is not None:
                etr = etr if etr.tzinfo else etr.replace(tzinfo=UTC)
                if self._last_etr.get(eid) != etr:
                    self._last_etr[eid] = etr
                    self.etrs.setdefault(eid, []).append((now, etr))
        out = sum(c or 0 for _, c, _ in open_rows)
        self.peak_customers_out = max(self.peak_customers_out, out)
        return {"open": len(open_rows), "customers_out": out, "restored": restored, "reports": reports,
                "unprocessed": unprocessed, "acks": acks, "outbox_pending": pending, "notices_sent": sent}

    def status_line(self, s: dict) -> str:
        elapsed = (datetime.now(UTC) - self.started).total_seconds()
        sim_min = elapsed * self.o.speed / 60.0
        phases = self.crews.phases()
        storm = "storm done" if self.storm_done else "storm on"
        return (f"[{elapsed:5.0f}s | storm time {int(sim_min // 60):d}:{int(sim_min % 60):02d}] {storm}  "
                f"reports {s['reports']} (acknowledged {s['acks']})  open events {s['open']}  "
                f"customers out {s['customers_out']:,}  restored {s['restored']}  crews: "
                f"{phases.get('travel', 0)} driving, {phases.get('work', 0)} on site, {phases.get('idle', 0)} idle")

    def wait_until_done(self, every_s: float = 10.0) -> bool:
        """Headless: until the storm is sent, every event is closed and every notice delivered (or the cap).
        Returns whether everything finished."""
        next_print = 0.0
        stable = 0
        while True:
            s = self.status()
            elapsed = (datetime.now(UTC) - self.started).total_seconds()
            done = (self.storm_done and s["open"] == 0 and s["unprocessed"] == 0 and s["outbox_pending"] == 0
                    and s["reports"] > 0)
            stable = stable + 1 if done else 0
            if time.monotonic() >= next_print:
                print(self.status_line(s), flush=True)
                next_print = time.monotonic() + every_s
            if stable >= 3:  # three quiet looks in a row: no straggling message or re-plan is on its way
                return True
            if elapsed > self.o.time_cap_s:
                print(f"time cap of {self.o.time_cap_s:.0f} s reached with {s['open']} events open", flush=True)
                return False
            time.sleep(0.5)

    def serve_forever(self) -> None:
        """Interactive: a live one-line status until Ctrl-C."""
        tty = sys.stdout.isatty()
        finished_said = False
        try:
            while True:
                s = self.status()
                line = self.status_line(s)
                if tty:
                    print("\r" + line[:200].ljust(200)[: max(20, shutil.get_terminal_size().columns - 1)],
                          end="", flush=True)
                else:
                    print(line, flush=True)
                if self.storm_done and s["open"] == 0 and not finished_said:
                    print("\nall events restored; still serving the maps and API (Ctrl-C to stop)", flush=True)
                    finished_said = True
                time.sleep(1.0 if tty else 10.0)
        except KeyboardInterrupt:
            print("\nstopping", flush=True)

    # -------------------------------------------------------------------------------------------- results
    def write_snapshots(self) -> dict:
        """Public + dispatcher maps (HTML, GeoJSON, ETag manifests) of the current state into ``out/maps``."""
        from api.maps import write_snapshot

        service = self.app.state.maps
        result = write_snapshot(self.out / "maps", service.data(), service.provider.state(),
                                page=service.page, include_dispatcher=True)
        size = sum(p.stat().st_size for p in (self.out / "maps").glob("*.*json")) + sum(
            p.stat().st_size for p in (self.out / "maps").glob("*.html"))
        return {"etag": result.etag, "files": len(result.files), "bytes": size}

    def summary(self, finished: bool, seconds: float) -> dict:
        """The post-event summary (HTML + CSV) and ``summary.json``; returns the JSON's content."""
        from api.store.models import Assignment, Event, OutboxMessage, Report
        from outage.summary import EventSummary, post_event_summary, write_csv, write_html

        sim = self.sim
        with self.db.read() as session:
            events = session.scalars(select(Event).where(Event.merged_into.is_(None),
                                                         Event.state != "cancelled")).all()
            first_report = dict(session.execute(select(Report.event_id, func.min(Report.received_at))
                                                .group_by(Report.event_id)).all())
            acks = session.execute(select(Report.received_at, OutboxMessage.sent_at, OutboxMessage.status).join(
                OutboxMessage, OutboxMessage.report_id == Report.id).where(
                OutboxMessage.kind == "acknowledgment")).all()
            reports = session.scalar(select(func.count()).select_from(Report)) or 0
            unlinked = session.scalar(select(func.count()).select_from(Report).where(Report.event_id.is_(None))) or 0
            by_kind = Counter(dict(session.execute(select(OutboxMessage.kind, func.count()).where(
                OutboxMessage.status == "sent").group_by(OutboxMessage.kind)).all()))
            statuses = Counter(dict(session.execute(select(OutboxMessage.status, func.count())
                                                    .group_by(OutboxMessage.status)).all()))
            cancelled = session.scalar(select(func.count()).select_from(Event).where(
                Event.state == "cancelled")) or 0
            merged = session.scalar(select(func.count()).select_from(Event).where(
                Event.merged_into.is_not(None))) or 0
            assignments = session.scalar(select(func.count()).select_from(Assignment).where(
                Assignment.status == "done")) or 0
        rows = []
        for ev in events:
            start = sim(ev.started_at)
            restored = sim(ev.restored_at)
            etrs = tuple((sim(issued), sim(issued) + (etr - issued)) for issued, etr in self.etrs.get(ev.id, ()))
            rows.append(EventSummary(event_id=ev.id, start=start, restored=max(restored, start) if restored else None,
                                     customers=max(self.customers.get(ev.id, 0), int(ev.customers_out or 0),
                                                   int((ev.evidence or {}).get("service_points_out") or 0)),
                                     tier=f"P{ev.tier}",
                                     event_class=ev.event_class or "", cause=ev.cause or "",
                                     first_report=sim(first_report.get(ev.id)), etrs=etrs,
                                     crew_hours=round(self.crews.crew_hours.get(ev.id, 0.0), 3)))
        end = sim(datetime.now(UTC))
        window_start = min([sim(self.started)] + [r.start for r in rows])
        s = post_event_summary(window_start, end + timedelta(seconds=1), rows,
                               acks=[(sim(r), sim(a) if a is not None else None) for r, a, _ in acks],
                               title="Storm demo: post-event summary (simulated time)", as_of=end)
        write_html(s, self.out / "summary.html")
        csv_files = write_csv(s, self.out)
        restored_rows = [r for r in rows if r.restored is not None]
        data = {
            "finished": finished, "seed": self.o.seed, "speed": self.o.speed, "faults": self.o.faults,
            "wall_seconds": round(seconds, 1),
            "time_note": "summary times are simulated: storm start + speed * (wall clock - storm start)",
            "storm": self.storm_result or {"error": repr(self.storm_error)},
            "reports": reports, "reports_without_event": unlinked,
            "acknowledgments": {"queued": len(acks), "sent": sum(1 for *_, st in acks if st == "sent"),
                                "not_sent": sum(1 for *_, st in acks if st != "sent")},
            "events": {"total": len(rows), "open": len(rows) - len(restored_rows),
                       "restored": len(restored_rows), "cancelled": cancelled, "merged": merged,
                       "by_class": dict(sorted(Counter(r.event_class for r in rows).items())),
                       "by_tier": dict(sorted(Counter(r.tier for r in rows).items())),
                       "by_cause": dict(sorted(Counter(r.cause or "(unknown)" for r in rows).items()))},
            "customers_restored": sum(r.customers for r in restored_rows),
            "peak_customers_out": self.peak_customers_out,
            "crew_hours": round(sum(self.crews.crew_hours.values()), 2),
            "crew_jobs_done": assignments,
            "contacts_enrolled": getattr(self, "enrolled", 0),
            "notifications_sent": dict(sorted(by_kind.items())),
            "outbox": dict(sorted(statuses.items())),
            "restoration": asdict(s.metrics),
            "etr_accuracy": s.etr,
            "files": {"summary_html": "summary.html", "csv": [p.name for p in csv_files], "maps": "maps/"},
        }
        (self.out / "summary.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        return data

    def stop(self) -> None:
        if hasattr(self, "crews"):
            self.crews.stop()
        if hasattr(self, "_notify_stop"):
            self._notify_stop.set()
        if hasattr(self, "server"):
            self.server.should_exit = True
        for t in self._threads:
            t.join(timeout=30)
        if hasattr(self, "notify_worker"):
            self.notify_worker.close()
        if hasattr(self, "_head_end"):
            self._head_end.close()


def configure_logging(out: Path) -> None:
    """Everything (service, engine, notifications on the log channel) to ``out/demo.log``; the console stays
    for the status line."""
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "demo.log", mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    notices = logging.FileHandler(out / "notifications.log", mode="w", encoding="utf-8")
    notices.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger("oms.notify").addHandler(notices)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_demo(options: DemoOptions, network) -> int:
    """The whole demo; returns the process exit code (0: done; 1: headless and not everything finished)."""
    configure_logging(Path(options.out))
    demo = Demo(options, network)
    t0 = time.monotonic()
    demo.setup()
    try:
        demo.start()
        print(f"\nOMS service on {demo.url}  (API docs: {demo.url}/docs)", flush=True)
        print(f"  public outage map : {demo.url}/maps/public", flush=True)
        print(f"  dispatcher map    : {demo.url}/maps/dispatcher?token={demo.tokens['dispatcher']}", flush=True)
        print(f"  dispatcher token  : {demo.tokens['dispatcher']}", flush=True)
        print(f"  notifications     : {Path(options.out) / 'notifications.log'} (log channel)", flush=True)
        print(f"storm: {options.faults} faults at {options.speed:g}x, {options.crews} crews, seed {options.seed}\n",
              flush=True)
        if options.headless:
            finished = demo.wait_until_done()
        else:
            demo.serve_forever()
            finished = True
        snap = demo.write_snapshots()
        data = demo.summary(finished, time.monotonic() - t0)
    finally:
        demo.stop()
    _print_summary(data, snap, Path(options.out))
    return 0 if finished or not options.headless else 1


def _print_summary(d: dict, snap: dict, out: Path) -> None:
    ev = d["events"]
    r = d.get("restoration") or {}
    print("\nstorm demo summary" + ("" if d["finished"] else " (NOT finished: time cap reached)"))
    print(f"  reports received        {d['reports']:>8}   acknowledged {d['acknowledgments']['sent']}")
    print(f"  events                  {ev['total']:>8}   by class {ev['by_class']}")
    print(f"  events restored         {ev['restored']:>8}   still open {ev['open']}")
    print(f"  customers restored      {d['customers_restored']:>8}   peak out {d['peak_customers_out']}")
    print(f"  crew-hours (simulated)  {d['crew_hours']:>8}   jobs done {d['crew_jobs_done']}")
    print(f"  notices sent            {sum(d['notifications_sent'].values()):>8}   {d['notifications_sent']}")
    if r:
        ttr = r.get("minutes_to_restore") or {}
        print("  minutes to restore      " + "   ".join(f"{k} {v:.0f}" for k, v in ttr.items() if v is not None))
    print(f"  map snapshot            {snap['bytes'] / 1e6:.2f} MB (HTML + GeoJSON) in {out / 'maps'}")
    print(f"  summary                 {out / 'summary.html'}, {out / 'summary.json'}")
    print(f"  wall time               {d['wall_seconds']} s")
