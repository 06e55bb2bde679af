"""Map snapshots in a big storm: how long regenerating them takes and how large they are.

Builds the bundled sample territory, puts ``--events`` (default 10,000) active outage events on it — every kind of
device from single services to feeder breakers, nested, with crews and routes — and times the snapshot publisher:
the first publish (pages, roads, network, assets and live GeoJSON) and a regeneration after a change (what runs
every N seconds during a storm). Goals: regeneration for 10,000 events under 2 s, and public HTML + GeoJSON under
5 MB; also the public GeoJSON gzip-compressed (as served), the offline basemap's size, and address search
latency (p50/p99) on the sample territory and on ``--search-customers`` (default 1,000,000) synthetic addresses
(goal p99 under 50 ms). ``--json`` prints one JSON object.

    .venv/bin/python bench/maps.py [--events 10000] [--crews 60] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
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
        events.append(MapEvent(
            event_id=f"EV-{i:05d}", device_id=device_id, lon=float(x), lat=float(y),
            tier=int(rng.choice([1, 2])) if rng.random() < 0.03 else TIER_OF_KIND[kinds[c]],
            event_class="single_customer" if len(sps) <= 1 else "feeder", customers_out=customers,
            sp_indices=sps, cause=CAUSES[int(rng.integers(len(CAUSES)))],
            crew_status=CREW_STATUS[int(rng.integers(len(CREW_STATUS)))],
            etr_low=etr if has_etr else None, etr_high=etr + timedelta(minutes=90) if has_etr else None,
            explanation=f"{int(rng.integers(1, 30))} calls below {kinds[c]} {device_id}",
            started=now - timedelta(minutes=int(rng.integers(5, 300))),
        ))
    crews = []
    for k in range(n_crews):
        stops = rng.choice(len(events), size=5, replace=False)
        route = tuple((events[j].lon, events[j].lat) for j in stops.tolist())
        crews.append(MapCrew(f"C-{k:03d}", f"Crew {k}", route[0][0], route[0][1], status="en route", route=route,
                             job_ids=tuple(events[j].event_id for j in stops.tolist())))
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
    streets = [f"{a}{b}straße" for a in ("Linden", "Birken", "Eichen", "Kirch", "Schul", "Berg", "Bach", "Wald",
                                         "Garten", "Mühl") for b in ("", "weg", "gasse", "ring", "hof")]
    st = rng.integers(0, len(streets), n)
    pl = rng.integers(0, 500, n)
    addresses = [f"{streets[s]} {k % 200 + 1}, 9{p:04d} Ort{p}" for k, (s, p) in enumerate(zip(st, pl, strict=True))]
    t0 = time.perf_counter()
    index = AddressIndex(addresses, np.arange(n) % 5000, np.arange(5000) % 500, [f"Ort{i}" for i in range(500)])
    build = time.perf_counter() - t0
    queries = [f"{streets[int(s)][:-2]}se {int(rng.integers(1, 300))} ort{int(p)}"  # typo + no postcode
               for s, p in zip(rng.integers(0, len(streets), 300), rng.integers(0, 500, 300), strict=True)]
    p50, p99 = search_latency(index, queries)
    return {"search_big_customers": n, "search_big_streets": len(index), "search_big_build_s": round(build, 2),
            "search_big_p50_ms": round(p50, 2), "search_big_p99_ms": round(p99, 2),
            "goal_search_p99_under_50ms": p99 < 50}


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
        publisher = SnapshotPublisher(out, data, min_interval_s=30, include_dispatcher=True, clock=lambda: now)
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
    s50, s99 = search_latency(data.search_index(), [a.split(",")[0].lower().replace("ß", "ss") for a in sample_addresses])
    return {
        "events": n_events, "crews": n_crews,
        "service_points": int(len(network.service_points)), "customers": int(network.service_points["customers"].sum()),
        "public_areas": int(data.partition.n_areas), "areas_with_outages": len(fc["features"]),
        "min_customers_per_area": int(data.partition.customers_served.min()),
        "customers_out": fc["summary"]["customers_out"],
        "territory_build_s": round(t_territory, 3), "map_layers_build_s": round(t_mapdata, 3),
        "first_publish_s": round(t_first, 3), "regenerate_s": round(t_regen, 3),
        "public_html_bytes": size["public.html"], "public_geojson_bytes": size["public.geojson"],
        "public_total_mb": round(public / 1e6, 3),
        "dispatcher_geojson_bytes": size["dispatcher.geojson"], "network_geojson_bytes": size["network.geojson"],
        "dispatcher_total_mb": round(dispatcher / 1e6, 3),
        "roads_geojson_mb": round(size["roads.geojson"] / 1e6, 3), "assets_mb": round(assets / 1e6, 3),
        "public_places": int(data.areas.places.n_areas),
        "public_geojson_gzip_bytes": public_gz, "public_gzip_s": round(t_gzip, 3),
        "basemap_bytes": len(basemap), "basemap_gzip_bytes": len(gzip.compress(basemap, 6)),
        "search_sample_p50_ms": round(s50, 2), "search_sample_p99_ms": round(s99, 2),
        "goal_regenerate_under_2s": t_regen < 2.0, "goal_public_under_5mb": public < 5e6,
        "goal_dispatcher_under_5mb": dispatcher < 5e6,
        **(big_search(search_customers, seed) if search_customers else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--crews", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--search-customers", type=int, default=1_000_000,
                        help="synthetic addresses for the search benchmark (0: skip)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = run(args.events, args.crews, args.seed, args.search_customers)
    if args.json:
        print(json.dumps(result))
        return
    width = max(len(k) for k in result)
    print(f"map snapshots: {args.events:,} active events on the sample territory")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
