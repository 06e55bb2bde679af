"""Map snapshots in a big storm: how long regenerating them takes and how large they are.

Builds the bundled sample territory, puts ``--events`` (default 10,000) active outage events on it — every kind of
device from single services to feeder breakers, nested, with crews and routes — and times the snapshot publisher:
the first publish (pages, roads, network, assets and live GeoJSON) and a regeneration after a change (what runs
every N seconds during a storm). Goals: regeneration for 10,000 events under 2 s, and public HTML + GeoJSON under
5 MB; also the public GeoJSON gzip-compressed (as served), the offline basemap's size, and address search
latency (p50/p99) on the sample territory and on ``--search-customers`` (default 1,000,000) synthetic addresses
(goal p99 under 50 ms). ``--json`` prints one JSON object.

Map viewers (``--viewers``, default 1,000; 0 skips): the sample territory is written to a GeoPackage (with its
basemap) and served by a real ``oms serve`` process on loopback (SQLite; the per-address connection and rate caps
lifted, since every viewer here is 127.0.0.1). Viewers arrive over ``--viewer-ramp`` seconds; each loads the page,
the live GeoJSON, roads and basemap (gzip, keeping ETags), then revalidates the live GeoJSON ``--viewer-polls``
times every ``--viewer-interval`` seconds with If-None-Match, as the page's poller does (its real interval is 30 s).
Trouble reports are posted at the same paced rate without viewers and then during their polling. Raw asyncio
streams, not an HTTP client library, so the client is not what is measured; the server runs in a session of its
own, so that a busy machine's scheduler does not bill it for the client's CPU (see
:class:`api.simulation.loadgen.ServerProcess`). Bounded: ``4 + polls`` requests per
viewer, ``--reports`` per intake phase, ``--max-seconds`` in all. Goals: viewers' p99 under 200 ms, and intake p99
with viewers at most 1.5x (or +20 ms) of intake p99 without them.

    .venv/bin/python bench/maps.py [--events 10000] [--crews 60] [--json]
    .venv/bin/python bench/maps.py --only-viewers [--viewers 1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.maps import MapCrew, MapData, MapEvent, MapOptions, MapState, SnapshotPublisher  # noqa: E402
from api.maps.search import AddressIndex  # noqa: E402
from data.sample import sample_territory  # noqa: E402

TIER_OF_KIND = {"breaker": 3, "recloser": 3, "sectionalizer": 3, "fuse": 3, "switch": 3, "transformer": 4}
CAUSES = ("", "tree on line", "wind", "lightning", "equipment failure", "vehicle accident", "animal")
CREW_STATUS = ("", "", "assigned", "en route", "on site")


def storm(data: MapData, n_events: int, n_crews: int, seed: int, now: datetime) -> MapState:
    """``n_events`` events on randomly chosen devices (seeded); a device may carry nested events."""
    rng = np.random.default_rng(seed)
    topo = data.topology
    seg = data.network.segments.set_index("segment_id")
    devices = np.flatnonzero(topo.is_device & (topo.parent_seg[topo.seg_to] >= 0))
    kinds = [topo.kind(int(s)) for s in devices]
    weights = np.array([{"transformer": 30.0, "fuse": 5.0}.get(k, 1.0) for k in kinds])
    chosen = rng.choice(len(devices), size=n_events, p=weights / weights.sum())
    node_xy = np.c_[data.network.nodes.geometry.x.to_numpy(), data.network.nodes.geometry.y.to_numpy()]
    node_row = {n: i for i, n in enumerate(data.network.nodes["node_id"])}
    sp_cache: dict[int, np.ndarray] = {}
    events = []
    for i, c in enumerate(chosen.tolist()):
        s = int(devices[c])
        if s not in sp_cache:
            sp_cache[s] = topo.downstream_service_points(s)
        sps = sp_cache[s]
        device_id = str(topo.segment_ids[s])
        x, y = node_xy[node_row[seg.at[device_id, "to_node"]]]
        etr = now + timedelta(minutes=int(rng.integers(30, 600)))
        has_etr = rng.random() < 0.7
        customers = int(topo.sp_customers[sps].sum())
        events.append(
            MapEvent(
                event_id=f"EV-{i:05d}",
                device_id=device_id,
                lon=float(x),
                lat=float(y),
                tier=int(rng.choice([1, 2])) if rng.random() < 0.03 else TIER_OF_KIND[kinds[c]],
                event_class="single_customer" if len(sps) <= 1 else "feeder",
                customers_out=customers,
                sp_indices=sps,
                cause=CAUSES[int(rng.integers(len(CAUSES)))],
                crew_status=CREW_STATUS[int(rng.integers(len(CREW_STATUS)))],
                etr_low=etr if has_etr else None,
                etr_high=etr + timedelta(minutes=90) if has_etr else None,
                explanation=f"{int(rng.integers(1, 30))} calls below {kinds[c]} {device_id}",
                started=now - timedelta(minutes=int(rng.integers(5, 300))),
            )
        )
    crews = []
    for k in range(n_crews):
        stops = rng.choice(len(events), size=5, replace=False)
        route = tuple((events[j].lon, events[j].lat) for j in stops.tolist())
        crews.append(
            MapCrew(
                f"C-{k:03d}",
                f"Crew {k}",
                route[0][0],
                route[0][1],
                status="en route",
                route=route,
                job_ids=tuple(events[j].event_id for j in stops.tolist()),
            )
        )
    return MapState(events=tuple(events), crews=tuple(crews), updated_at=now, version=1)


def search_latency(index: AddressIndex, queries: list[str]) -> tuple[float, float]:
    """(p50, p99) milliseconds of ``index.search`` over ``queries``."""
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def big_search(n: int, seed: int) -> dict:
    """An index over ``n`` synthetic addresses (5,000 streets in 500 places) and typo'd queries against it."""
    rng = np.random.default_rng(seed)
    streets = [
        f"{a}{b}straße"
        for a in ("Linden", "Birken", "Eichen", "Kirch", "Schul", "Berg", "Bach", "Wald", "Garten", "Mühl")
        for b in ("", "weg", "gasse", "ring", "hof")
    ]
    st = rng.integers(0, len(streets), n)
    pl = rng.integers(0, 500, n)
    addresses = [
        f"{streets[s]} {k % 200 + 1}, 9{p:04d} Ort{p}" for k, (s, p) in enumerate(zip(st, pl, strict=True))
    ]
    t0 = time.perf_counter()
    index = AddressIndex(
        addresses, np.arange(n) % 5000, np.arange(5000) % 500, [f"Ort{i}" for i in range(500)]
    )
    build = time.perf_counter() - t0
    queries = [
        f"{streets[int(s)][:-2]}se {int(rng.integers(1, 300))} ort{int(p)}"  # typo + no postcode
        for s, p in zip(rng.integers(0, len(streets), 300), rng.integers(0, 500, 300), strict=True)
    ]
    p50, p99 = search_latency(index, queries)
    return {
        "search_big_customers": n,
        "search_big_streets": len(index),
        "search_big_build_s": round(build, 2),
        "search_big_p50_ms": round(p50, 2),
        "search_big_p99_ms": round(p99, 2),
        "goal_search_p99_under_50ms": p99 < 50,
    }


def run(n_events: int, n_crews: int, seed: int, search_customers: int = 1_000_000) -> dict:
    t0 = time.perf_counter()
    network = sample_territory()
    t_territory = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = MapData(network, MapOptions())
    t_mapdata = time.perf_counter() - t0
    now = datetime(2024, 7, 1, 18, 0, tzinfo=UTC)
    state = storm(data, n_events, n_crews, seed, now)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        publisher = SnapshotPublisher(
            out, data, min_interval_s=30, include_dispatcher=True, clock=lambda: now
        )
        t0 = time.perf_counter()
        first = publisher.publish(state, force=True)
        t_first = time.perf_counter() - t0
        changed = replace(state, events=state.events[1:], updated_at=now + timedelta(seconds=30), version=2)
        t0 = time.perf_counter()
        again = publisher.publish(changed, force=True)
        t_regen = time.perf_counter() - t0
        assert first.status == again.status == "written"
        size = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
        assets = sum(p.stat().st_size for p in (out / "assets").rglob("*") if p.is_file())
    public = size["public.html"] + size["public.geojson"]
    dispatcher = size["dispatcher.html"] + size["dispatcher.geojson"] + size["network.geojson"]
    fc = data.public_collection(changed)
    public_body = json.dumps(fc, separators=(",", ":")).encode()
    t0 = time.perf_counter()
    public_gz = len(gzip.compress(public_body, 6))
    t_gzip = time.perf_counter() - t0
    basemap = data.basemap_body()
    sample_addresses = network.service_points["address"].sample(300, random_state=seed, replace=True).tolist()
    s50, s99 = search_latency(
        data.search_index(), [a.split(",")[0].lower().replace("ß", "ss") for a in sample_addresses]
    )
    return {
        "events": n_events,
        "crews": n_crews,
        "service_points": int(len(network.service_points)),
        "customers": int(network.service_points["customers"].sum()),
        "public_areas": int(data.partition.n_areas),
        "areas_with_outages": len(fc["features"]),
        "min_customers_per_area": int(data.partition.customers_served.min()),
        "customers_out": fc["summary"]["customers_out"],
        "territory_build_s": round(t_territory, 3),
        "map_layers_build_s": round(t_mapdata, 3),
        "first_publish_s": round(t_first, 3),
        "regenerate_s": round(t_regen, 3),
        "public_html_bytes": size["public.html"],
        "public_geojson_bytes": size["public.geojson"],
        "public_total_mb": round(public / 1e6, 3),
        "dispatcher_geojson_bytes": size["dispatcher.geojson"],
        "network_geojson_bytes": size["network.geojson"],
        "dispatcher_total_mb": round(dispatcher / 1e6, 3),
        "roads_geojson_mb": round(size["roads.geojson"] / 1e6, 3),
        "assets_mb": round(assets / 1e6, 3),
        "public_places": int(data.areas.places.n_areas),
        "public_geojson_gzip_bytes": public_gz,
        "public_gzip_s": round(t_gzip, 3),
        "basemap_bytes": len(basemap),
        "basemap_gzip_bytes": len(gzip.compress(basemap, 6)),
        "search_sample_p50_ms": round(s50, 2),
        "search_sample_p99_ms": round(s99, 2),
        "goal_regenerate_under_2s": t_regen < 2.0,
        "goal_public_under_5mb": public < 5e6,
        "goal_dispatcher_under_5mb": dispatcher < 5e6,
        **(big_search(search_customers, seed) if search_customers else {}),
    }


# -- many map viewers against a real server ------------------------------------------------------------------------

VIEWER_PATHS = ("/maps/public", "/maps/public.geojson", "/maps/roads.geojson", "/maps/basemap.geojson")


async def _exchange(reader, writer, request: bytes) -> tuple[int, dict[str, str], bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return status, headers, body


def _get(path: str, etag: str | None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept-Encoding: gzip, deflate, br"]
    if etag:
        lines.append(f"If-None-Match: {etag}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _viewer(
    port: int,
    start_s: float,
    polls: int,
    interval_s: float,
    deadline: float,
    rng,
    out: list,
    connects: list | None = None,
) -> None:
    """One browser: after ``start_s``, loads the page and its data (gzip, keeping ETags), then revalidates the
    live GeoJSON ``polls`` times every ``interval_s`` (jittered) with If-None-Match, as the page's poller does.
    A request's time includes opening its connection when it needs one (as a browser's does); ``connects`` gets
    the connection set-up times alone."""
    await asyncio.sleep(start_s)
    etags: dict[str, str] = {}
    plan = list(VIEWER_PATHS) + ["/maps/public.geojson"] * polls
    reader = writer = None
    for k, path in enumerate(plan):
        if k >= len(VIEWER_PATHS):
            await asyncio.sleep(interval_s * (0.75 + 0.5 * rng.random()))
        if time.monotonic() > deadline:
            break
        for attempt in (0, 1):  # the server closes idle keep-alive connections: a browser then reconnects
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    if connects is not None:
                        connects.append(time.perf_counter() - t0)
                status, headers, _ = await _exchange(reader, writer, _get(path, etags.get(path)))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                if writer is not None:
                    writer.close()
                reader = writer = None
                if attempt:
                    out.append(("lost", 0, time.perf_counter() - t0))
                continue
            out.append((path if k < len(VIEWER_PATHS) else "poll", status, time.perf_counter() - t0))
            if "etag" in headers:
                etags[path] = headers["etag"]
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
            break
    if writer is not None:
        writer.close()


async def _intake(
    port: int,
    token: str,
    accounts: list[str],
    reports: int,
    connections: int,
    tag: str,
    out: list,
    rate: float,
) -> None:
    """``reports`` trouble reports at ``rate`` per second over ``connections`` keep-alive connections, as a
    gateway sends them (paced, so both phases post the same load however fast the server answers)."""
    from api.simulation.loadgen import http_request

    counter = iter(range(reports))
    auth = {"Authorization": f"Bearer {token}"}
    start = time.monotonic()

    async def one() -> None:
        reader = writer = None
        for i in counter:
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            request = http_request(
                "POST",
                "/reports",
                {"account": accounts[i % len(accounts)], "channel": "ivr"},
                {**auth, "Idempotency-Key": f"{tag}-{i}"},
            )
            for attempt in (0, 1):  # an idle keep-alive connection may have been closed by the server
                t0 = time.perf_counter()
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    status, _, _ = await _exchange(reader, writer, request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    if attempt:
                        out.append((0, time.perf_counter() - t0))
                    continue
                out.append((status, time.perf_counter() - t0))
                break
        if writer is not None:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))


def _p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else float("nan")


def viewer_load(
    viewers: int = 1000,
    polls: int = 3,
    interval_s: float = 10.0,
    ramp_s: float = 10.0,
    reports: int = 300,
    report_connections: int = 8,
    max_s: float = 120.0,
    seed: int = 7,
    own_session: bool = True,
) -> dict:
    """``viewers`` map viewers and a report stream against ``oms serve`` on loopback (see the module docstring).

    Bounded: each viewer sends ``4 + polls`` requests, the intake phases ``reports`` each, and nothing runs past
    ``max_s`` seconds. Goals: viewers' p99 under 200 ms; intake p99 with viewers at most 1.5x (or +20 ms) of
    intake p99 without them."""
    from api.simulation.loadgen import ServerProcess, fresh_database
    from api.store.db import Database
    from api.store.migrate import upgrade
    from api.web.auth import create_user
    from gis.io import write_territory

    network = sample_territory()
    accounts = [a for a in network.service_points["account"].astype(str) if a]
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="oms-maps-bench-") as tmp_name:
        tmp = Path(tmp_name)
        territory = write_territory(network, tmp / "territory.gpkg")
        with fresh_database(None, tmp) as url:
            upgrade(url)
            db = Database(url)
            with db.write() as s, s.begin():
                _, token = create_user(s, "bench-gateway", "integration")
            db.dispose()
            # every viewer here comes from 127.0.0.1: lift the per-address caps members' browsers never share
            env = {
                "OMS_MAX_CONNECTIONS_PER_CLIENT": str(4 * viewers),
                "OMS_MAX_REQUESTS_PER_CLIENT": str(4 * viewers),
                "OMS_PUBLIC_RATE_LIMIT_PER_MINUTE": "1e9",
                "OMS_PUBLIC_RATE_LIMIT_BURST": "1000000000",
            }
            # its own session: the scheduler must not charge the server for the load generator's CPU
            server = ServerProcess(
                url, str(territory), env=env, log_path=tmp / "server.log", own_session=own_session
            ).start()
            try:
                return {
                    **_drive(
                        server,
                        token,
                        accounts,
                        viewers,
                        polls,
                        interval_s,
                        ramp_s,
                        reports,
                        report_connections,
                        max_s,
                        rng,
                    ),
                    "server_own_session": own_session,
                }
            except Exception:
                sys.stderr.write((tmp / "server.log").read_text()[-3000:])
                raise
            finally:
                server.stop()


def _drive(
    server, token, accounts, viewers, polls, interval_s, ramp_s, reports, report_connections, max_s, rng
) -> dict:
    import httpx

    base = server.url
    t0 = time.monotonic()
    basemap = httpx.get(base + "/maps/basemap.geojson", timeout=120).json()  # builds the map layers
    kinds = Counter(f["properties"]["k"] for f in basemap["features"])
    while httpx.get(base + "/maps/search", params={"q": "xx"}, timeout=30).status_code == 503:
        time.sleep(0.5)
    warm_s = time.monotonic() - t0

    rate = max(reports, 1) / max(polls * interval_s, 1.0)  # the reports span the viewers' polling
    asyncio.run(_intake(server.port, token, accounts, 20, 2, "warm", [], rate))
    alone: list = []
    server_cpu0, wait0, t = server.cpu_seconds(), server.wait_seconds(), time.perf_counter()
    asyncio.run(_intake(server.port, token, accounts, reports, report_connections, "alone", alone, rate))
    server_cpu_alone, alone_s = server.cpu_seconds() - server_cpu0, time.perf_counter() - t
    wait_alone = server.wait_seconds() - wait0

    seen: list = []
    together: list = []
    connects: list = []
    ramp_cpu: dict[str, float] = {}

    async def both() -> float:
        deadline = time.monotonic() + max_s
        starts = np.sort(rng.uniform(0, ramp_s, viewers))
        tasks = [
            asyncio.create_task(
                _viewer(
                    server.port,
                    float(s),
                    polls,
                    interval_s,
                    deadline,
                    random.Random(int(rng.integers(1 << 30))),
                    seen,
                    connects,
                )
            )
            for s in starts
        ]
        await asyncio.sleep(ramp_s)  # every viewer has arrived: post reports while they poll
        ramp_cpu.update(generator=time.process_time() - gen_cpu0, server=server.cpu_seconds() - server_cpu0)
        t = time.perf_counter()
        await _intake(server.port, token, accounts, reports, report_connections, "viewers", together, rate)
        intake_s = time.perf_counter() - t
        await asyncio.gather(*tasks)
        return intake_s

    # What each side burnt: the load generator (this process) must not be what is measured, and on a shared
    # machine the server's CPU seconds per request say what the service costs whatever share of a core it got.
    load_before = os.getloadavg()[0]
    gen_cpu0, server_cpu0, t = time.process_time(), server.cpu_seconds(), time.perf_counter()
    wait0 = server.wait_seconds()
    intake_s = asyncio.run(both())
    elapsed = time.perf_counter() - t
    wait_viewers = server.wait_seconds() - wait0
    gen_cpu, server_cpu = time.process_time() - gen_cpu0, server.cpu_seconds() - server_cpu0
    # the viewers' share of the server's CPU: all of it less what the same reports cost without viewers
    viewer_cpu = max(server_cpu - server_cpu_alone * intake_s / max(alone_s, 1e-9), 0.0)
    ok = [s for _, status, s in seen if status in (200, 304)]
    polls_done = [(status, s) for path, status, s in seen if path == "poll"]
    i_alone = [s for status, s in alone if status == 202]
    i_with = [s for status, s in together if status == 202]
    p99 = _p(ok, 99)
    a99, w99 = _p(i_alone, 99), _p(i_with, 99)
    return {
        "viewers": viewers,
        "viewer_requests": len(seen),
        "viewer_errors": len(seen) - len(ok),
        "viewer_seconds": round(elapsed, 1),
        "viewer_rps": round(len(seen) / elapsed, 1),
        "viewer_polls_304_share": round(sum(st == 304 for st, _ in polls_done) / max(len(polls_done), 1), 2),
        "viewer_p50_ms": _p(ok, 50),
        "viewer_p99_ms": p99,
        "viewer_max_ms": _p(ok, 100),
        "viewer_first_load_p99_ms": _p([s for p, st, s in seen if p in VIEWER_PATHS and st == 200], 99),
        "viewer_poll_p99_ms": _p([s for st, s in polls_done if st in (200, 304)], 99),
        "viewer_p99_ms_by_request": {
            path.rsplit("/", 1)[-1]: _p([s for p, st, s in seen if p == path and st in (200, 304)], 99)
            for path in (*VIEWER_PATHS, "poll")
        },
        "served_basemap_buildings": kinds.get("b", 0),
        "served_basemap_places": kinds.get("p", 0),
        "served_basemap_streets": kinds.get("s", 0),
        "server_warm_s": round(warm_s, 1),
        "intake_reports": reports,
        "intake_alone_p50_ms": _p(i_alone, 50),
        "intake_alone_p99_ms": a99,
        "intake_with_viewers_p50_ms": _p(i_with, 50),
        "intake_with_viewers_p99_ms": w99,
        "intake_with_viewers_s": round(intake_s, 1),
        "intake_rate_per_s": round(rate, 1),
        "intake_errors": (reports - len(i_alone)) + (reports - len(i_with)),
        "viewer_connect_p99_ms": _p(connects, 99),
        "generator_cpu_s": round(gen_cpu, 1),
        "generator_cpu_share_of_a_core": round(gen_cpu / elapsed, 2),
        "generator_cpu_share_during_ramp": round(ramp_cpu["generator"] / ramp_s, 2),
        "server_cpu_s": round(server_cpu, 1),
        "server_cpu_share_during_ramp": round(ramp_cpu["server"] / ramp_s, 2),
        "server_cpu_ms_per_viewer_request": round(1000 * viewer_cpu / max(len(seen), 1), 2),
        "server_cpu_ms_per_report_alone": round(1000 * server_cpu_alone / max(len(alone), 1), 2),
        # how long the server's threads waited for a CPU, per second of each phase (the shared machine, not us)
        "server_cpu_wait_ms_per_s_alone": round(1000 * wait_alone / max(alone_s, 1e-9), 1),
        "server_cpu_wait_ms_per_s_with_viewers": round(1000 * wait_viewers / max(elapsed, 1e-9), 1),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "goal_viewers_p99_under_200ms": p99 < 200 and len(ok) == len(seen),
        "goal_intake_p99_unaffected": w99 <= max(1.5 * a99, a99 + 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--crews", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--search-customers",
        type=int,
        default=1_000_000,
        help="synthetic addresses for the search benchmark (0: skip)",
    )
    parser.add_argument(
        "--viewers", type=int, default=1000, help="concurrent map viewers against oms serve (0: skip)"
    )
    parser.add_argument("--viewer-polls", type=int, default=3, help="live GeoJSON revalidations per viewer")
    parser.add_argument(
        "--viewer-interval", type=float, default=10.0, help="seconds between a viewer's polls"
    )
    parser.add_argument("--viewer-ramp", type=float, default=10.0, help="seconds over which viewers arrive")
    parser.add_argument("--reports", type=int, default=300, help="reports per intake phase")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="hard bound of the viewer phase")
    parser.add_argument("--only-viewers", action="store_true", help="skip the snapshot and search benchmarks")
    parser.add_argument(
        "--same-session",
        action="store_true",
        help="run the server in this process's session, as before (to compare)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = {} if args.only_viewers else run(args.events, args.crews, args.seed, args.search_customers)
    if args.viewers:
        result.update(
            viewer_load(
                args.viewers,
                args.viewer_polls,
                args.viewer_interval,
                args.viewer_ramp,
                args.reports,
                max_s=args.max_seconds,
                seed=args.seed,
                own_session=not args.same_session,
            )
        )
    if args.json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    print(f"map snapshots: {args.events:,} active events on the sample territory")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
