"""The storm demo: the whole system running on the bundled sample territory, on a storm clock.

:func:`run_demo` starts the service (uvicorn in a thread, SQLite in the demo's folder), creates the demo's users and
crews, and then lets four actors work against it through its public interfaces, exactly as in a real storm:

* the **storm** (:class:`api.simulation.storm.StormFeed`): simulated faults become phone/web reports, AMI last gasps
  and SCADA lockouts;
* the service's own **live engine**: trouble-call analysis, events, re-plans with OR-Tools, ETRs;
* the **notification planner and worker** (:mod:`api.notify`): acknowledgments, proactive notices, ETR updates and
  restoration messages, whole, in ``notifications.log``;
* the **crews** (:class:`api.simulation.crews.CrewSimulator`): en route with position pings, on site, restored.

Time: everything runs on one :class:`api.simulation.clock.StormClock`, injected into the service
(``create_app(clock=...)``). The driver (:meth:`Demo.step`) sends what the storm has due in the next ``STEP_S`` of
storm time, each input at its own time (the clock moves to it first) and waits until the engine has consumed it
(``LiveEngine.settle``); then it moves the clock to the end of the step, runs the engine's timers
(``LiveEngine.tick``), re-plans if anything changed (``LiveEngine.replan_if_dirty``, solving by solution count;
every ``REPLAN_EVERY_S`` of storm time),
steps the crews, plans and delivers notices, and samples the figures (:mod:`outage.figures`). Nothing waits on the wall clock, so one seed gives one storm, to the event, at any speed;
the speed only sets how long a step lasts in real time (at least ``STEP_S / speed`` seconds).

Headless (``oms demo --headless``) runs until every event is restored, writes the map snapshots and the summary and
returns; interactive mode writes them at the same moment and keeps serving the maps until Ctrl-C.
"""

from __future__ import annotations

import logging
import random
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

from api.simulation.clock import StormClock, storm_start
from outage.figures import FigureLog, Figures

log = logging.getLogger("oms.demo")

CREW_SKILLS = ["line", "tree", "service", "substation"]
#: Storm seconds per step: every change (a report, a crew arriving, a re-plan) happens on a step.
STEP_S = 60.0
#: Storm seconds between re-plans. The live service gathers changes for up to ``replan_max_wait_s`` (10 s of wall
#: time: 20 storm minutes at the demo's 120x) before it plans; five storm minutes keeps crews as busy, and keeps the
#: deterministic solves of a 100-fault storm (2-4 s each) from setting the pace of the whole replay.
REPLAN_EVERY_S = 300.0
#: A storm still not over after this long is a stuck storm (a crew that never comes), whatever the speed.
MAX_STORM_HOURS = 72.0


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
    #: Headless: give up waiting for the last restorations after this many wall-clock seconds.
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


class PortBusy(RuntimeError):
    pass


def open_socket(host: str, port: int) -> socket.socket:
    """The listening socket, taken before anything slow happens, so a busy port is said at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror}. Pick another port: "
                       f"make demo PORT={port + 1}, or oms demo --port 0 for any free port") from None
    return sock


class Demo:
    """One demo run: :meth:`setup`, :meth:`start`, :meth:`run_storm` (steps until done), results
    (:mod:`api.simulation.results`), :meth:`stop`."""

    def __init__(self, options: DemoOptions, network, start: datetime | None = None) -> None:
        from api.simulation.notices import local_zone_name

        self.o = options
        self.network = network
        self.out = Path(options.out)
        self.db_url = f"sqlite:///{(self.out / 'oms.db').resolve()}"
        self.tokens: dict[str, str] = {}
        self.crew_tokens: dict[str, str] = {}
        #: The console's sign-in for ``demo-dispatcher``: fresh each run, printed with the URLs.
        self.console_password = secrets.token_urlsafe(12)
        self.clock = StormClock(start or storm_start(), options.speed)
        self.zone = local_zone_name()
        self.tz = ZoneInfo(self.zone)
        self.figures = FigureLog()
        self._planned_at_s = -REPLAN_EVERY_S
        self.etrs: dict[str, list[tuple[datetime, datetime]]] = {}  # event -> (issued, ETR) as published
        self.customers: dict[str, int] = {}  # event -> most customers out seen (restoration sets it to 0)
        self.reports_seen: dict[str, int] = {}
        self.open_sps: dict = {}  # open event -> its service points' rows, for the meters when it is restored
        self._threads: list[threading.Thread] = []
        self._closers: list = []

    # -------------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        """Fresh database in the demo folder, migrated; users, tokens and crews at the depots."""
        from api.store.db import Database
        from api.store.migrate import upgrade
        from api.store.models import Crew
        from api.web.auth import create_user, set_password

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
                session.flush()
                set_password(session, "demo-dispatcher", self.console_password)
                for i in range(self.o.crews):
                    cid = f"crew-{i + 1}"
                    depot_id, (lon, lat) = depots[i % len(depots)]
                    session.add(Crew(id=cid, name=f"Crew {i + 1}", skills=list(CREW_SKILLS), depot_id=depot_id,
                                     status="available", lon=lon, lat=lat, position_at=self.clock()))
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
    def start(self, sock: socket.socket | None = None) -> None:
        """The service on the storm clock (uvicorn in a thread), notifications, crews and the storm feed."""
        import uvicorn

        from api.maps import PageConfig
        from api.settings import Settings
        from api.simulation.crews import CrewSimulator, past_season
        from api.simulation.storm import StormFeed, storm_messages
        from api.web.app import create_app

        # timers, re-plans and the stream's figures are the driver's (each step), never the live loop's wall-clock
        # timer and debounce; plans stop by solution count, so they do not depend on how busy the machine is
        settings = Settings(database_url=self.db_url, engine_tick_s=0.0, replan_debounce_s=1e9,
                            replan_max_wait_s=1e9, replan_time_limit_s=self.o.replan_time_limit_s,
                            replan_deterministic=True, replan_solution_limit=200, rate_limit_per_minute=60_000.0,
                            rate_limit_burst=10_000, figures_interval_s=0.0,  # the figures: sampled each step
                            etr_history=past_season(self.out / "etr-history.csv", self.o.seed))  # last season
        page = PageConfig(utility_name="Sample Electric Cooperative (demo)", public_interval_s=5.0,
                          dispatcher_interval_s=2.0)
        # the maps rebuild on every read: the driver samples once per step; the browsers poll every few seconds
        self.app = create_app(settings, network=self.network, page=page, clock=self.clock,
                              clock_note=self.clock.note(), map_refresh_s=0.0)
        self.live = self.app.state.oms.live
        maps = self.app.state.maps
        self.provider = maps.provider
        sock = sock or open_socket(self.o.host, self.o.port)
        self.port = sock.getsockname()[1]
        self.url = f"http://{self.o.host}:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False,
                                                    log_config=None))  # keep the demo's log files
        self.server.install_signal_handlers = lambda: None  # Ctrl-C is the main thread's (one line, quick stop)
        self._spawn("oms-demo-http", lambda: self.server.run(sockets=[sock]))
        deadline = time.monotonic() + 120
        while not self.server.started:
            if time.monotonic() > deadline or not self._threads[-1].is_alive():
                raise RuntimeError("the service did not start; see demo.log")
            time.sleep(0.05)
        self.db = self.app.state.oms.db
        self._start_notifications()
        self._head_end = self._client(self.tokens["integration"], timeout=60)
        self._enroll_contacts()
        self.crews = CrewSimulator(self.url, self.crew_tokens, self.tokens["dispatcher"], self.crew_start,
                                   seed=self.o.seed, on_restored=self._meters_back)
        self._closers.append(self.crews.close)
        messages, _ = storm_messages(self.network, self.o.faults, self.o.call_rate, self.o.ami, self.o.seed)
        self.feed = StormFeed(messages, self._head_end, self.clock)
        self.sp_customers = maps.data().sp_customers
        self.started = self.clock()
        self.sample()

    def _client(self, token: str, timeout: float = 30) -> httpx.Client:
        c = httpx.Client(base_url=self.url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})
        self._closers.append(c.close)
        return c

    def _spawn(self, name: str, target) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _start_notifications(self) -> None:
        from api.notify.config import NotifySettings
        from api.notify.planner import Planner
        from api.notify.worker import Worker
        from api.simulation.notices import StormLogChannel

        ns = NotifySettings(utility_name="Sample Electric Cooperative", timezone=self.zone, rate_sms=1e6,
                            rate_email=1e6, status_url=self.url + "/reports/{reference}")
        # no SMS gateway or mail relay in a demo: the log channel stands in for both (notifications.log)
        channels = {name: StormLogChannel(name, self.clock, self.tz) for name in ("log", "sms", "email")}
        self.notify_worker = Worker(self.db, ns, channels, worker_id="demo", seed=self.o.seed, clock=self.clock)
        self.planner = Planner(self.db, ns, network=self.network, channels=set(channels), clock=self.clock)
        self._closers.append(self.notify_worker.close)

    def _meters_back(self, event_id: str) -> None:
        """The meter head-end: when a crew restores an event, the meters under it report power restored (without
        this, their unanswered last gasps would read as a fresh outage)."""
        rows = self.open_sps.get(event_id)
        if rows is None:
            log.warning("restored event %s was not on the map before the crews moved; no meter messages", event_id)
            return
        sps = self.network.service_points.iloc[rows]
        now = self.clock().isoformat()
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
        for i in range(0, len(rows), 5000):
            self._head_end.post("/notify/contacts", json=rows[i:i + 5000]).raise_for_status()
        self.enrolled = len(rows)

    # -------------------------------------------------------------------------------------------- one step
    def step(self) -> Figures:
        """One step of storm time (see the module docstring); returns the figures after it."""
        live = self.live
        end = self.clock.at(self.clock.elapsed_s + STEP_S)
        for _ in self.feed.runs_due((end - self.clock.start).total_seconds()):
            live.settle()  # consumed at its own time, before the clock moves on
        now = self.clock.advance_to(end)
        live.tick()
        if self.clock.elapsed_s - self._planned_at_s >= REPLAN_EVERY_S and live.replan_if_dirty() is not None:
            self._planned_at_s = self.clock.elapsed_s  # a change after a quiet spell is planned at once
        self.open_sps = {e.event_id: e.sp_indices for e in self.provider.state().events}
        self.crews.step(now)
        live.settle()  # what the crews did is planned at the next step's re-plan, before any crew moves again
        self.planner.scan(now)
        while self.notify_worker.run_once():
            pass
        return self.sample()

    def sample(self) -> Figures:
        """The figures now, as the service counts them for the stream (:class:`api.web.figures.LiveFigures`: from the
        maps' own state, so console, maps, stream and summary count alike; published on the stream when they
        changed), and what a closed event no longer shows (its customers, its ETRs)."""
        state = self.provider.state()
        now = self.clock()
        for e in state.events:
            self.customers[e.event_id] = max(self.customers.get(e.event_id, 0), e.customers_out)
            etr = e.etr_high or e.etr_low
            if etr is not None and (not self.etrs.get(e.event_id) or self.etrs[e.event_id][-1][1] != etr):
                self.etrs.setdefault(e.event_id, []).append((now, etr))
        return self.figures.record(self.app.state.figures.publish())

    @property
    def done(self) -> bool:
        f = self.figures.last
        return self.feed.done and f is not None and f.open == 0 and self.feed.counts["reports_sent"] > 0

    def status_line(self) -> str:
        f = self.figures.last
        phases = self.crews.phases()
        storm = "storm over" if self.feed.done else "storm on"
        return (f"[{self.clock.label(self.tz)}] {storm}  events {f.events} (open {f.open}, restored {f.restored})  "
                f"customers out {f.customers_out:,}  reports {self.feed.counts['reports_sent']}  crews: "
                f"{phases.get('travel', 0)} driving, {phases.get('work', 0)} on site, {phases.get('idle', 0)} idle")

    def run_storm(self, every_s: float = 10.0) -> bool:
        """Step until every event is restored; ``False`` at the time cap (headless) or a stuck storm."""
        tty = sys.stdout.isatty() and not self.o.headless
        wall0 = next_print = time.monotonic()
        while not self.done:
            t0 = time.monotonic()
            self.step()
            if tty:
                print("\r" + self.status_line()[:160].ljust(160)[:_columns() - 1], end="", flush=True)
            elif time.monotonic() >= next_print:
                print(self.status_line(), flush=True)
                next_print = time.monotonic() + every_s
            if self.o.headless and time.monotonic() - wall0 > self.o.time_cap_s:
                print(f"time cap of {self.o.time_cap_s:.0f} s reached with {self.figures.last.open} events open",
                      flush=True)
                return False
            if self.clock.elapsed_s > MAX_STORM_HOURS * 3600:
                print(f"storm not over after {MAX_STORM_HOURS:.0f} storm hours; stopping", flush=True)
                return False
            time.sleep(max(0.0, STEP_S / self.o.speed - (time.monotonic() - t0)))
        print(("\n" if tty else "") + self.status_line(), flush=True)
        return True

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop the server and close the clients; waits at most ``wait_s`` for the server's shutdown."""
        if hasattr(self, "server"):
            self.server.should_exit = True
        for t in self._threads:
            t.join(timeout=wait_s)
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # noqa: BLE001 - stopping: a close that fails must not hide the others
                log.exception("closing failed")


def _columns() -> int:
    import shutil

    return shutil.get_terminal_size().columns


def run_demo(options: DemoOptions, network, sock: socket.socket | None = None,
             start: datetime | None = None) -> int:
    """The whole demo; returns the exit code (0: done; 1: headless and not finished; 130: Ctrl-C)."""
    import signal

    from api.simulation.notices import configure_logging
    from api.simulation.results import print_summary, write_results

    configure_logging(Path(options.out))
    demo = Demo(options, network, start=start)
    wall0 = time.monotonic()
    code = 0
    try:
        demo.setup()
        demo.start(sock)
        print(f"\nOMS service on {demo.url}  (start page: {demo.url}/ ; API docs: {demo.url}/docs)", flush=True)
        print(f"  public outage map : {demo.url}/maps/public", flush=True)
        print(f"  dispatch console  : {demo.url}/console  (sign in as demo-dispatcher, password "
              f"{demo.console_password})", flush=True)
        print(f"  dispatcher map    : {demo.url}/maps/dispatcher?token={demo.tokens['dispatcher']}", flush=True)
        print(f"  dispatcher token  : {demo.tokens['dispatcher']}", flush=True)
        print(f"  notifications     : {Path(options.out) / 'notifications.log'} (log channel)", flush=True)
        print(f"storm: {options.faults} faults, {options.crews} crews, seed {options.seed}; storm time starts "
              f"{demo.clock().astimezone(demo.tz):%H:%M} and runs {options.speed:g}x\n", flush=True)
        finished = demo.run_storm()
        data, snap = write_results(demo, finished, time.monotonic() - wall0)
        print_summary(data, snap, Path(options.out))
        code = 0 if finished else 1
        if not options.headless:
            print(f"\nall events restored at {demo.clock.label(demo.tz)}; still serving the maps and API "
                  "(Ctrl-C to stop)", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while stopping changes nothing
        kept = (Path(options.out) / "summary.html").is_file()
        print(f"\nstopped at {demo.clock.label(demo.tz)}" + (f"; the summary in {options.out} is kept" if kept
                                                            else "; no summary (the storm was not over)"),
              flush=True)
        code = 130
    finally:
        demo.stop(wait_s=0.5 if code == 130 else 10.0)
    return code
