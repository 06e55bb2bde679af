"""``oms storm``: replay a simulated storm (:mod:`outage.simulate`) against a running service, through its API.

Calls become ``POST /reports`` (by account when the simulated caller gave one, else by coordinates), last gasps
are batched into ``POST /ami``, breaker lockouts go to ``POST /scada``.

Two drivers: :func:`replay` sends against any running service on the wall clock (``speed`` times the storm's pace;
the service stamps what it receives with its own clock, as in a real storm). :class:`StormFeed` is stepped by the
demo on its storm clock (:mod:`api.simulation.clock`): it sends what is due up to a storm offset, in order, each
message at its own storm time, and lets the caller wait for the service between sends, so the engine sees the
same inputs at the same times in the same order at any speed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

AMI_BATCH = 500


def storm_messages(network, faults: int, call_rate: float, ami: bool, seed: int):
    """(offset seconds, kind, body) in arrival order for a simulated storm on ``network``."""
    from outage.engine import OutageEngine
    from outage.simulate import StormConfig, generate_storm

    grid = OutageEngine.from_network(network).grid
    storm = generate_storm(grid, StormConfig(faults=faults, call_rate=call_rate, ami=ami), seed)
    sps = network.service_points.set_index("sp_id")
    account = sps["account"].astype(str).to_dict()
    out = []
    t0 = min(m[0] for m in storm.messages()) if storm.messages() else datetime.now(UTC)
    for t, kind, msg in storm.messages():
        offset = (t - t0).total_seconds()
        if kind == 0:
            body = {"power": msg.power, "channel": msg.channel if msg.channel in ("web", "app", "ivr", "sms", "phone")
                    else "phone", "medical_equipment": msg.medical_equipment,
                    "hazards": [h for h, on in (("wires_down", msg.wires_down), ("fire_sparks", msg.fire_sparks),
                                                ("tree_on_line", msg.tree_on_line),
                                                ("visible_damage", msg.visible_damage)) if on]}
            if msg.neighbours_out is not None:
                body["neighbours_out"] = msg.neighbours_out
            if msg.sp_id and account.get(msg.sp_id):
                body["account"] = account[msg.sp_id]
            elif msg.lon is not None:
                body["lat"], body["lon"] = msg.lat, msg.lon
            else:
                continue
            out.append((offset, "report", body))
        elif kind == 1:
            out.append((offset, "ami", {"meter": msg.meter, "kind": msg.kind}))
        else:
            out.append((offset, "scada", {"device_id": msg.device_id, "kind": msg.kind}))
    return out, storm


class StormFeed:
    """The storm's messages, sent in order as the storm clock passes their offsets (see the module docstring)."""

    def __init__(self, messages: list, http: httpx.Client, clock) -> None:
        self.messages, self.http, self.clock = messages, http, clock
        self.next = 0
        self.counts = {"reports_sent": 0, "reports_accepted": 0, "ami_sent": 0, "ami_accepted": 0, "scada_sent": 0,
                       "rejected": 0, "errors": 0}

    @property
    def done(self) -> bool:
        return self.next >= len(self.messages)

    def runs_due(self, offset_s: float):
        """Send what is due by ``offset_s``, each message at its own storm time, yielding after each send so the
        caller can wait for the service before the clock moves on. The clock moves to a report's or a device
        operation's time before it is sent (the service stamps a report when it stores it), and to the last of a
        run of meter messages (one batch; each message carries its own time)."""
        while not self.done and self.messages[self.next][0] <= offset_s:
            kind = self.messages[self.next][1]
            run = [self.messages[self.next]]
            self.next += 1
            while (kind == "ami" and not self.done and self.messages[self.next][0] <= offset_s
                   and self.messages[self.next][1] == kind and len(run) < AMI_BATCH):
                run.append(self.messages[self.next])
                self.next += 1
            self.clock.advance_to(self.clock.at(run[-1][0]))
            self._send(kind, run)
            yield kind

    def _send(self, kind: str, run: list) -> None:
        if kind == "ami":
            self.counts["ami_sent"] += len(run)
            r = self._post("/ami", {"messages": [{**b, "at": self.clock.at(o).isoformat()} for o, _, b in run]})
            if r.status_code == 202:
                self.counts["ami_accepted"] += r.json()["accepted"]
            else:
                self.counts["rejected"] += len(run)
            return
        (_, _, body), = run
        if kind == "report":
            self.counts["reports_sent"] += 1
            r = self._post("/reports", body)
            self.counts["reports_accepted" if r.status_code == 202 else "rejected"] += 1
        else:
            self.counts["scada_sent"] += 1
            r = self._post("/scada", {**body, "at": self.clock().isoformat()})
            if r.status_code != 202:
                self.counts["rejected"] += 1

    def _post(self, path: str, body: dict) -> httpx.Response:
        for _ in range(20):  # a rate limit (wall clock) only delays a message: it never drops or reorders one
            r = self.http.post(path, json=body)
            if r.status_code != 429:
                return r
            time.sleep(float(r.headers.get("Retry-After", "1")))
        return r


def replay(territory, *, url: str, token: str, faults: int = 20, call_rate: float = 0.3, ami: bool = False,
           speed: float = 60.0, concurrency: int = 16, seed: int = 1) -> dict:
    """Send the storm; ``territory`` is a GeoPackage path or an already loaded :class:`gis.network.Network`."""
    from gis.io import read_territory

    network = read_territory(territory) if isinstance(territory, (str, bytes)) or hasattr(territory, "__fspath__") \
        else territory
    messages, storm = storm_messages(network, faults, call_rate, ami, seed)
    headers = {"Authorization": f"Bearer {token}"}
    counts = {"reports_sent": 0, "reports_accepted": 0, "ami_sent": 0, "ami_accepted": 0, "scada_sent": 0,
              "rejected": 0, "errors": 0}
    lock = threading.Lock()

    def tally(key: str, n: int = 1) -> None:
        with lock:
            counts[key] += n

    started = time.monotonic()
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http, ThreadPoolExecutor(concurrency) as pool:

        def post(path: str, body: dict) -> httpx.Response | None:
            for _ in range(5):
                try:
                    r = http.post(path, json=body)
                except httpx.HTTPError:
                    tally("errors")
                    return None
                if r.status_code != 429:
                    return r
                time.sleep(float(r.headers.get("Retry-After", "1")))
            return r

        def send_report(body):
            r = post("/reports", body)
            if r is not None and r.status_code == 202:
                tally("reports_accepted")
            elif r is not None:
                tally("rejected")

        def send_ami(batch):
            now = datetime.now(UTC).isoformat()
            r = post("/ami", {"messages": [{**m, "at": now} for m in batch]})
            if r is not None and r.status_code == 202:
                tally("ami_accepted", r.json()["accepted"])

        pending_ami: list[dict] = []
        futures = []
        for offset, kind, body in messages:
            wait = offset / speed - (time.monotonic() - started)
            if wait > 0:
                if pending_ami:
                    futures.append(pool.submit(send_ami, pending_ami))
                    pending_ami = []
                time.sleep(wait)
            if kind == "report":
                counts["reports_sent"] += 1
                futures.append(pool.submit(send_report, body))
            elif kind == "ami":
                counts["ami_sent"] += 1
                pending_ami.append(body)
                if len(pending_ami) >= AMI_BATCH:
                    futures.append(pool.submit(send_ami, pending_ami))
                    pending_ami = []
            else:
                counts["scada_sent"] += 1
                futures.append(pool.submit(post, "/scada", {**body, "at": datetime.now(UTC).isoformat()}))
        if pending_ami:
            futures.append(pool.submit(send_ami, pending_ami))
        for f in futures:
            f.result()
    seconds = time.monotonic() - started
    return {"faults": len(storm.faults), **counts, "seconds": round(seconds, 1),
            "reports_per_s": round(counts["reports_sent"] / seconds, 1) if seconds else 0.0}
