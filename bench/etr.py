"""ETR benchmark: simulated storms restored by crews (api.simulation.restoration), ETRs scored against the truth.

Territories: the sample utility, IEEE 123 and the EPRI test feeders (../shared/data/feeders). Storm sizes: a
thunderstorm (faults over 1.5 h, 3 crews), a day-long wind storm (faults over 8 h, 5 crews + 4 mutual-aid crews
after 8 h) and a 3-day major event (faults over 24 h, 6 crews + 10 after 12 h; kept small enough to run in
minutes). Per territory and size the model first learns from ``--history`` storms (other seeds: last season's
restorations), then ``--storms`` storms are scored while it keeps learning online.

Per stage (storm-wide, queued, assigned, on site), at the moment an event enters it: coverage of the 80% interval
(the model's estimate, and what was published after the no-churn rule), median and p90 absolute error of the
interval's middle (minutes), and the same for today's ETR (outage.etr.assigned_etr on every planned job, cause
unknown until the crew reports, outage.etr.update) where it had one. Per member: share with an ETR within 15
minutes of their first report. Per event: ranges published. On site, the median error of an oracle that knows the
simulator's true repair distribution but not the draw (the floor no estimate beats on average). The simulator issues
ETRs with the live service's own staging (outage.etr_issue, outage.etr_policy.Ledger): this scores the product.

    PYTHONPATH=. .venv/bin/python bench/etr.py [--quick] [--json] [--territories sample,ieee123,epri]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from api.simulation.restoration import STAGES, RestorationConfig, simulate_restoration  # noqa: E402
from outage.engine import OutageEngine  # noqa: E402
from outage.etr_model import EtrModel  # noqa: E402
from outage.simulate import STORM_START, StormConfig, generate_storm  # noqa: E402

FEEDERS = _HERE.parent / ".." / "shared" / "data" / "feeders"
EPRI = {"epri_ckt5": "Master_ckt5.dss", "epri_ckt7": "Master_ckt7.dss", "epri_k1": "Master_NoPV.dss",
        "epri_m1": "Master_NoPV.dss"}
#: size -> (faults per service point, min, max, fault window h, crews, aid crews, aid after h)
SIZES = {"thunderstorm": (1 / 300, 6, 15, 3, 3, 0, 0), "wind": (1 / 100, 15, 40, 16, 5, 4, 8),
         "major": (1 / 40, 30, 90, 48, 6, 10, 12)}


def territory(name: str):
    if name == "sample":
        from data.sample import sample_territory

        return sample_territory()
    if name == "ieee123":
        from data.ieee123 import ieee123_territory

        return ieee123_territory()
    from gis.opendss import read_opendss

    return read_opendss(FEEDERS / name / EPRI[name], anchor=(40, -80), scale=0.3048)


def run(net, size: str, storms: int, history: int, seed: int) -> dict:
    grid = OutageEngine.from_network(net, clock=lambda: STORM_START).grid
    rate, lo, hi, window_h, crews, aid, aid_h = SIZES[size]
    faults = int(min(hi, max(lo, round(len(grid.sp_ids) * rate))))
    scfg = StormConfig(faults=faults, duration=timedelta(hours=window_h))
    rcfg = RestorationConfig(crews=crews, aid_crews=aid, aid_after=timedelta(hours=aid_h))
    depots = None
    if len(net.depots):
        depots = [(float(g.x), float(g.y)) for g in net.depots.geometry]
    road = None
    if len(net.road_edges):
        from gis.roads import road_graph

        road = road_graph(net)
    model = EtrModel()
    for i in range(history):
        s = seed * 1000 + 500 + i
        simulate_restoration(grid, generate_storm(grid, scfg, s), rcfg, model, s, depots, road)
    results = []
    for i in range(storms):
        s = seed * 1000 + i
        results.append(simulate_restoration(grid, generate_storm(grid, scfg, s), rcfg, model, s, depots, road))
    return {"faults": faults, "crews": crews, "aid": aid, **score(results)}


def _stats(rows: list[tuple[bool, float]]) -> dict:
    if not rows:
        return {"n": 0, "coverage": None, "median_min": None, "p90_min": None}
    hit = np.array([r[0] for r in rows])
    err = np.array([r[1] for r in rows])
    return {"n": len(rows), "coverage": round(float(hit.mean()), 3), "median_min": round(float(np.median(err)), 1),
            "p90_min": round(float(np.percentile(err, 90)), 1)}


def _judge(etr, truth) -> tuple[bool, float]:
    return (etr.earliest <= truth <= etr.latest, abs((etr.middle - truth).total_seconds()) / 60.0)


_TRUE: dict[tuple[str, str], np.ndarray] = {}


def _oracle_error(ev, issue) -> float:
    """On site: the error of an oracle that knows the simulator's true repair distribution of this kind and cause
    (not the draw) and says its median given the time already spent: the error no estimate can beat on average."""
    from api.simulation.restoration import _draw_repair

    key = (ev.kind, ev.cause)
    if key not in _TRUE:
        rng = np.random.default_rng(0)
        _TRUE[key] = np.array([_draw_repair(rng, ev.kind, ev.cause) for _ in range(4000)])
    elapsed = (issue.time - ev.arrived).total_seconds() / 60.0
    d = _TRUE[key]
    d = d[d > elapsed] - elapsed
    truth = (ev.restored - issue.time).total_seconds() / 60.0
    return abs(float(np.median(d)) - truth) if len(d) else float("nan")


def score(results) -> dict:
    oracle: list[float] = []
    model: dict[str, list] = {s: [] for s in STAGES}
    published: dict[str, list] = {s: [] for s in STAGES}
    today: dict[str, list] = {s: [] for s in STAGES}
    today_first, model_first = [], []
    members = members_new = members_today = 0
    ranges, ranges_today, events = [], [], 0
    for r in results:
        for ev in r.events.values():
            events += 1
            truth = ev.restored
            for i in ev.issues:
                model[i.stage].append(_judge(i.proposed, truth))
                published[i.stage].append(_judge(i.published, truth))
                if i.today is not None:
                    today[i.stage].append(_judge(i.today, truth))
                if i.stage == "on_site":
                    oracle.append(_oracle_error(ev, i))
            ranges.append(len(ev.published))
            ranges_today.append(len(ev.today))
            if ev.today:  # the first ETR each system gave, at the moment today's first came
                t0, first = ev.today[0]
                today_first.append(_judge(first, truth))
                mine = [e for t, e in ev.published if t <= t0]
                model_first.append(_judge(mine[-1], truth))
        for k, t in r.first_report.items():
            key = _event_of(r, k, t)
            if key is None:  # called after their power was already back (a late call)
                continue
            ev = r.events[key]
            members += 1
            members_new += bool(ev.published) and ev.published[0][0] <= t + timedelta(minutes=15)
            members_today += bool(ev.today) and ev.today[0][0] <= t + timedelta(minutes=15)
    return {
        "events": events,
        "stages": {s: {"model": _stats(model[s]), "published": _stats(published[s]), "today": _stats(today[s])}
                   for s in STAGES},
        "first_today_etr": {"today": _stats(today_first), "model_at_same_time": _stats(model_first)},
        "oracle_on_site_median_min": round(float(np.nanmedian(oracle)), 1) if oracle else None,
        "members": members,
        "members_etr_15min": round(members_new / members, 3) if members else None,
        "members_etr_15min_today": round(members_today / members, 3) if members else None,
        "ranges_per_event": round(float(np.mean(ranges)), 2),
        "ranges_per_event_max": int(max(ranges)),
        "ranges_per_event_today": round(float(np.mean(ranges_today)), 2),
    }


def _event_of(r, k: int, t) -> str | None:
    """The event that holds member ``k`` at ``t``: the highest fault covering it that has started."""
    best = None
    for ev in r.events.values():
        active = ev.start <= t and (ev.restored is None or ev.restored > t) and k in set(ev.zone.tolist())
        if active and (best is None or len(ev.zone) > len(best.zone)):
            best = ev
    return None if best is None else best.key


BAND = (0.75, 0.85)  # the goal for the coverage of the 80% range, at every stage of every cell


def _in_band_chance(n: int, p: float = 0.8) -> float:
    """The chance that a calibrated model's coverage on ``n`` independent events lands in :data:`BAND`: with a
    cell's few dozen events, sampling alone puts many cells outside it."""
    from math import comb

    return sum(comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1) if BAND[0] <= k / n <= BAND[1])


def cells(runs: list[dict]) -> dict:
    """Stage-by-cell coverages of the model's 80% range: how many lie in :data:`BAND`, and how many would for a
    model calibrated exactly (events taken as independent, so an upper bound for storms' correlated events)."""
    rows = [r["stages"][s]["model"] for r in runs for s in STAGES if r["stages"][s]["model"]["n"]]
    inside = sum(BAND[0] <= m["coverage"] <= BAND[1] for m in rows)
    expected = sum(_in_band_chance(m["n"]) for m in rows)
    return {"in_band": inside, "of": len(rows), "expected_if_calibrated": round(expected, 1)}


def _line(name: str, size: str, res: dict, log) -> None:
    log(f"{name:<10} {size:<12} faults {res['faults']:>3} x {res.get('storms', '')} storms, events {res['events']}, "
        f"members {res['members']}: ETR within 15 min {res['members_etr_15min']:.0%} "
        f"(today {res['members_etr_15min_today']:.0%}); ranges/event {res['ranges_per_event']:.2f} "
        f"(max {res['ranges_per_event_max']}, today {res['ranges_per_event_today']:.2f})")
    log(f"{'':12}on site, an oracle knowing the true repair distribution (not the draw): err med "
        f"{res['oracle_on_site_median_min']} min")
    for s in STAGES:
        st = res["stages"][s]
        m, p, t = st["model"], st["published"], st["today"]

        def f(x, key, fmt):
            return "-" if x[key] is None else format(x[key], fmt)
        log(f"{'':12}{s:<9} n {m['n']:>4}  cov {f(m, 'coverage', '.2f')} (published {f(p, 'coverage', '.2f')})"
            f"  err med {f(m, 'median_min', '6.0f')} p90 {f(m, 'p90_min', '6.0f')} min   |  today n {t['n']:>4}"
            f" cov {f(t, 'coverage', '.2f')} err med {f(t, 'median_min', '6.0f')} p90 {f(t, 'p90_min', '6.0f')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--territories", default="sample,ieee123,epri")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--storms", type=int, default=3)
    ap.add_argument("--history", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="1 storm and 2 of history each")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.storms, a.history = 1, 2
    names = []
    for n in a.territories.split(","):
        names += list(EPRI) if n == "epri" else [n]
    log = (lambda s: print(s, file=sys.stderr)) if a.json else print
    out = {"storms": a.storms, "history": a.history, "runs": []}
    for name in names:
        net = territory(name)
        for size in a.sizes.split(","):
            t = time.perf_counter()
            res = run(net, size, a.storms, a.history, a.seed)
            res.update(territory=name, size=size, storms=a.storms, seconds=round(time.perf_counter() - t, 1))
            out["runs"].append(res)
            _line(name, size, res, log)
    out["cells"] = cells(out["runs"])
    c = out["cells"]
    log(f"stage cells with coverage in {BAND[0]:.2f}-{BAND[1]:.2f}: {c['in_band']} of {c['of']} (a model calibrated "
        f"exactly: {c['expected_if_calibrated']} expected, from the cells' sizes alone)")
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
