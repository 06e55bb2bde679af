"""Storm dispatch benchmark: the OR-Tools plan vs the greedy baseline, same jobs, same crews; and scale timings.

    python bench/dispatch.py [--scenarios 20x100,50x500,100x1000] [--source generator|simulator]
                             [--time-limit S] [--seed N] [--synthetic] [--scale] [--json]

Territory: the bundled sample utility on real OpenStreetMap roads (``data.sample.sample_territory`` + road travel
times from ``gis.roads``); jobs sit at its transformers, fuses and feeder devices with their downstream customer
counts, crews start and end at its depots. ``--synthetic`` (or missing road data) uses a 30 km grid with
straight-line travel instead. Jobs and crews come from :mod:`dispatch.scenario` (seeded). With ``--source
simulator`` the jobs are instead the outage engine's open events 3 h into a storm from the outage simulator (each
scenario names crews x faults): what the service itself would plan, with its repair times, skills and priority
weights. The sample territory's 5,080 customers hold about 200 open events at most, so these storms stay small.

Figures per scenario: weighted customer-minutes (sum of weight x minutes to completion; weight = priority factor x
customers out, or the engine's priority weight with ``--source simulator``) for both plans and the reduction,
worst P1 (life-safety) arrival and how many P1 jobs the optimizer reaches later than greedy, dropped jobs,
driving, and solve time. ``bound`` is the largest reduction any plan could reach
(:func:`dispatch.bounds.lower_bound`: the largest of "each job served straight from the nearest crew's start", a
parallel-machine bound that counts queueing, and a time-indexed linear program over all crews and jobs at once);
it relaxes the hazard rule; ``P1 rule`` is the same bound for plans that start every P1 job no later than greedy
does (the goal's second condition): that work holds crews early. ``P1 free`` is the price of that rule: the
reduction the same search reaches with hazards weighted by their customers only and no P1 deadlines (and how many
P1 jobs it then reaches later than greedy); a diagnostic, not a plan to dispatch. ``--scale`` (100 crews x 1,000
jobs): time to the first feasible OR-Tools plan (1 s search), the plan at 5 and 25 s of search, and
re-optimization after one new job (warm start, 1 s search); times are wall clock including model building.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dispatch.bounds import lower_bound  # noqa: E402
from dispatch.greedy import solve_greedy  # noqa: E402
from dispatch.instance import compile_problem  # noqa: E402
from dispatch.model import Problem  # noqa: E402
from dispatch.plan import Plan  # noqa: E402
from dispatch.replan import add_job, commit_first_stops, replan  # noqa: E402
from dispatch.scenario import Sites, grid_sites, storm_crews, storm_jobs  # noqa: E402
from dispatch.solver import SolveOptions, solve  # noqa: E402
from dispatch.travel import StraightLine  # noqa: E402

NOW = datetime(2026, 7, 14, 6, 0, tzinfo=UTC)
GENERATED_SCENARIOS = "20x100,50x500,100x1000"  # crews x jobs
SIMULATED_SCENARIOS = "20x100,20x200,50x400"  # crews x faults (the sample territory holds about 200 open events)


class CachedTravel:
    """Wrap a travel source; remember the last matrix (greedy and OR-Tools ask for the same points)."""

    def __init__(self, source):
        self.source, self._key, self._value, self.seconds = source, None, None, 0.0

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        key = (np.asarray(src).tobytes(), np.asarray(dst).tobytes())
        if key != self._key:
            t0 = time.perf_counter()
            self._key, self._value = key, self.source(src, dst)
            self.seconds = time.perf_counter() - t0
        return self._value


def territory() -> tuple[Sites, list, object, str]:
    """Sites, depots and a travel source on the sample territory's roads."""
    from data.sample import sample_territory
    from gis.roads import road_graph
    from gis.topology import build

    net = sample_territory()
    topo = build(net)
    seg = net.segments.reset_index(drop=True)
    node_xy = {nid: (g.x, g.y) for nid, g in zip(net.nodes["node_id"], net.nodes.geometry, strict=True)}
    level_of = {"transformer": 0, "fuse": 1, "sectionalizer": 1, "recloser": 2, "breaker": 2}
    locs, customers, level = [], [], []
    for row in seg.itertuples():
        lvl = level_of.get(row.kind)
        if lvl is None:
            continue
        n = topo.downstream_customers(topo.seg(row.segment_id))
        if n <= 0:
            continue
        locs.append(node_xy[row.to_node] if lvl == 0 else node_xy[row.from_node])
        customers.append(n)
        level.append(lvl)
    depots = [(g.x, g.y) for g in net.depots.geometry]
    graph = road_graph(net)
    return (Sites(locs, np.array(customers), np.array(level)), depots,
            lambda s, d: graph.travel_time_matrix(s, d), f"sample territory '{net.name}' (OSM roads)")


def synthetic() -> tuple[Sites, list, object, str]:
    sites = grid_sites(seed=1)
    lon = [p[0] for p in sites.locations]
    lat = [p[1] for p in sites.locations]
    mid = (float(np.mean(lon)), float(np.mean(lat)))
    depots = [(mid[0] - 0.08, mid[1]), (mid[0] + 0.08, mid[1] + 0.05)]
    return sites, depots, StraightLine(speed_kph=45, circuity=1.35), "synthetic 30 km grid (straight-line x 1.35)"


def generated_problem(crews_n: int, jobs_n: int, sites: Sites, depots, seed: int) -> Problem:
    """``jobs_n`` jobs from the seeded job generator and ``crews_n`` storm crews."""
    return Problem(storm_crews(depots, crews_n, NOW, seed=seed), storm_jobs(sites, jobs_n, NOW, seed=seed), NOW)


def simulated_problem(crews_n: int, faults: int, depots, seed: int, hours: float = 3.0) -> Problem:
    """The outage simulator's storm of ``faults`` faults on the sample territory (30% call-in, AMI), fed through
    the outage engine; ``hours`` after the storm began, its open events become jobs exactly as the service makes
    them (:func:`api.service.replan.event_job`: repair minutes by device kind, skills, the engine's priority weight)."""
    from api.service.replan import event_job
    from outage.simulate import STORM_START, StormConfig, generate_storm, run_storm, storm_engine

    directory, grid = _simulator_territory()
    storm = generate_storm(grid, StormConfig(faults=faults, call_rate=0.3, ami=True), seed)
    engine = storm_engine(grid, storm)
    run_storm(engine, storm)
    now = STORM_START + timedelta(hours=hours)
    crews = storm_crews(depots, crews_n, now, seed=seed)
    skills = set().union(*(c.skills for c in crews))
    jobs = []
    for ev in engine.events:
        if not ev.open:
            continue
        xy = directory.event_xy(ev.device_id, ev.sp_id)
        p = engine.priority(ev.event_id, now)
        job = event_job(SimpleNamespace(
            id=ev.event_id, lon=xy[0] if xy else None, lat=xy[1] if xy else None, device_kind=ev.device_kind,
            device_id=ev.device_id, sp_id=ev.sp_id, cause=ev.cause, hazards=ev.hazards, weight=p.weight,
            tier=p.tier, customers_out=ev.customers), skills)
        if isinstance(job, str):
            raise RuntimeError(f"event {ev.event_id} cannot be planned: {job}")
        jobs.append(job)
    return Problem(crews, jobs, now)


@functools.cache
def _simulator_territory():
    from api.service.territory import Directory
    from data.sample import sample_territory
    from outage.engine import OutageEngine
    from outage.simulate import STORM_START

    net = sample_territory()
    grid = OutageEngine.from_network(net, clock=lambda: STORM_START).grid
    return Directory.from_network(net, grid.topology), grid


def compare(problem: Problem, travel, time_limit: float, workers: int) -> dict:
    jobs = problem.jobs
    cached = CachedTravel(travel)
    t0 = time.perf_counter()
    greedy = solve_greedy(problem, cached)
    greedy_s = time.perf_counter() - t0
    opt = solve(problem, cached, SolveOptions(time_limit_s=time_limit, workers=workers))
    # What holding life-safety jobs to their greedy arrival costs: the same search with hazards weighted by their
    # customers only and no P1 deadlines (not a plan to use; the price of the rule in weighted customer-minutes).
    free = solve(problem, cached, SolveOptions(time_limit_s=time_limit, workers=workers,
                                               p1_no_later_than_greedy=False, hazard_factor=0.0))
    inst = compile_problem(problem, cached)
    held = {problem.job_index[j.id]: (greedy.assignments[j.id].start - problem.now).total_seconds()
            for j in jobs if j.priority == 1 and j.id in greedy.assignments}
    base = charged(greedy, problem)
    return {"crews": len(problem.crews), "jobs": len(jobs), "p1_jobs": sum(j.priority == 1 for j in jobs),
            "matrix_seconds": round(cached.seconds, 2),
            "greedy": _figures(greedy, greedy_s, problem), "ortools": _figures(opt, opt.solve_seconds, problem),
            "reduction_pct": _below(charged(opt, problem), base),
            "max_reduction_pct": _below(lower_bound(inst), base),
            "max_reduction_p1_rule_pct": _below(lower_bound(inst, must_start_by=held), base),
            "p1_later_than_greedy": _p1_later(problem, opt, greedy),
            "p1_free_reduction_pct": _below(charged(free, problem), base),
            "p1_free_p1_later_than_greedy": _p1_later(problem, free, greedy),
            "violations": opt.violations()[:3] + greedy.violations()[:3]}


def _below(cost: float, greedy_cost: float) -> float:
    """Percent fewer weighted customer-minutes than greedy."""
    return 100.0 * (1 - cost / greedy_cost)


def charged(plan: Plan, problem: Problem) -> float:
    """Weighted customer-minutes with every dropped job charged as if done at the end of the longest shift
    (a lower bound on what leaving it costs), so plans that drop different jobs compare fairly."""
    horizon = max((c.shift_end - problem.now).total_seconds() / 60.0 for c in problem.crews)
    return plan.weighted_customer_minutes + plan.dropped_weight * horizon


def _figures(plan: Plan, seconds: float, problem: Problem) -> dict:
    return {"weighted_customer_minutes": round(plan.weighted_customer_minutes),
            "charged_wcm": round(charged(plan, problem)),
            "worst_p1_minutes": None if plan.worst_p1_minutes is None else round(plan.worst_p1_minutes, 1),
            "dropped": len(plan.dropped), "travel_minutes": round(plan.travel_minutes),
            "seconds": round(seconds, 2), "solver": plan.solver}


def _p1_later(problem: Problem, plan: Plan, baseline: Plan) -> int:
    late = 0
    for j in problem.jobs:
        if j.priority != 1 or j.id not in baseline.assignments:
            continue
        mine = plan.eta(j.id)
        if mine is None or mine > baseline.eta(j.id) + timedelta(seconds=1):
            late += 1
    return late


def scale(sites: Sites, depots, travel, seed: int, workers: int) -> dict:
    """100 crews x 1,000 jobs: first feasible plan, plan quality over time, re-plan after one new job."""
    jobs = storm_jobs(sites, 1001, NOW, seed=seed)
    new_job, jobs = jobs[-1], jobs[:-1]
    crews = storm_crews(depots, 100, NOW, seed=seed)
    problem = Problem(crews, jobs, NOW)
    # Precompute the travel matrix for every point (as the service does from its cache).
    pts = [j.location for j in jobs + [new_job]] + [c.start for c in crews] + [c.end for c in crews if c.end]
    pts = list(dict.fromkeys(pts))
    t0 = time.perf_counter()
    full = travel(np.array(pts), np.array(pts))
    matrix_s = time.perf_counter() - t0
    index = {p: i for i, p in enumerate(pts)}

    def lookup(src, dst):
        rs = [index[(float(a), float(b))] for a, b in src]
        cs = [index[(float(a), float(b))] for a, b in dst]
        return full[np.ix_(rs, cs)]

    greedy = solve_greedy(problem, lookup)
    out = {"crews": 100, "jobs": 1000, "matrix_seconds": round(matrix_s, 2),
           "greedy": _figures(greedy, greedy.solve_seconds, problem)}
    for limit in (1.0, 5.0, 25.0):  # wall time = limit + model building (about 2 s at this size)
        plan = solve(problem, lookup, SolveOptions(time_limit_s=limit, workers=workers))
        out[f"ortools_{limit:g}s"] = _figures(plan, plan.solve_seconds, problem)
        out[f"ortools_{limit:g}s"]["reduction_pct"] = round(_below(charged(plan, problem),
                                                                   charged(greedy, problem)), 1)
    # Re-plan: crews have been released toward their first stops; one new job arrives.
    released = commit_first_stops(problem, plan)
    t0 = time.perf_counter()
    again = replan(add_job(released, new_job), lookup, plan, SolveOptions(time_limit_s=1.0))
    out["replan_seconds"] = round(time.perf_counter() - t0, 2)
    out["replan"] = _figures(again, again.solve_seconds, problem)
    out["replan_new_job_assigned"] = new_job.id in again.assignments
    moved = sum(1 for c in released.crews if c.current_job and again.routes[c.id].stops
                and again.routes[c.id].stops[0].job_id != c.current_job)
    out["replan_en_route_crews_redirected"] = moved
    out["replan_violations"] = again.violations()[:3]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", help="CREWSxJOBS (with --source simulator: CREWSxFAULTS), comma-separated "
                    f"(default {GENERATED_SCENARIOS}, or {SIMULATED_SCENARIOS} for the simulator)")
    ap.add_argument("--source", choices=("generator", "simulator"), default="generator",
                    help="jobs from the seeded job generator (dispatch.scenario), or the outage engine's open events "
                         "3 h into a simulated storm on the sample territory (outage.simulate)")
    ap.add_argument("--time-limit", type=float, default=30.0, help="OR-Tools seconds per scenario")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="OR-Tools processes")
    ap.add_argument("--synthetic", action="store_true", help="synthetic grid instead of the sample territory")
    ap.add_argument("--scale", action="store_true", help="also run the 100 x 1,000 scale timings")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    if args.synthetic and args.source == "simulator":
        ap.error("--source simulator storms happen on the sample territory; drop --synthetic")

    say = (lambda *a: None) if args.json else print
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink) if args.json else contextlib.nullcontext():
        t0 = time.perf_counter()
        if args.synthetic:
            sites, depots, travel, where = synthetic()
        else:
            try:
                sites, depots, travel, where = territory()
            except (ImportError, FileNotFoundError, AttributeError) as exc:
                sites, depots, travel, where = synthetic()
                where += f" (sample territory unavailable: {exc})"
        say(f"territory: {where}; {len(sites.locations)} sites, {len(depots)} depots "
            f"({time.perf_counter() - t0:.1f} s to load)")
        say(f"OR-Tools time limit {args.time_limit:g} s, seed {args.seed}")
        simulated = args.source == "simulator"
        weights = ("the engine's priority weight, as the service plans" if simulated
                   else "priority factor x customers out")
        say(f"jobs: {'open events 3 h into simulated storms (faults per scenario)' if simulated else 'job generator'}")
        say(f"wcm = weighted customer-minutes (weight = {weights}), dropped jobs charged at shift end; "
            "P1 worst = latest life-safety arrival (min)")
        say(f"{'crews x jobs':>13} {'P1':>4} | {'greedy wcm':>12} {'P1 worst':>8} {'drop':>4} | "
            f"{'or-tools wcm':>12} {'P1 worst':>8} {'drop':>4} {'time':>6} | {'reduction':>9} {'bound':>6} {'P1 rule':>7} {'P1 later':>8} | "
            f"{'P1 free':>7} {'P1 later':>8}")
        rows = []
        for spec in (args.scenarios or (SIMULATED_SCENARIOS if simulated else GENERATED_SCENARIOS)).split(","):
            c, n = (int(x) for x in spec.lower().split("x"))
            problem = (simulated_problem(c, n, depots, args.seed) if simulated
                       else generated_problem(c, n, sites, depots, args.seed))
            r = compare(problem, travel, args.time_limit, args.workers)
            if simulated:
                r["faults"] = n
            rows.append(r)
            g, o = r["greedy"], r["ortools"]
            say(f"{c:>5} x {r['jobs']:<5} {r['p1_jobs']:>4} | {g['charged_wcm']:>12,} "
                f"{g['worst_p1_minutes']!s:>8} {g['dropped']:>4} | {o['charged_wcm']:>12,} "
                f"{o['worst_p1_minutes']!s:>8} {o['dropped']:>4} {o['seconds']:>5.1f}s | "
                f"{r['reduction_pct']:>8.1f}% {r['max_reduction_pct']:>5.1f}% {r['max_reduction_p1_rule_pct']:>6.1f}% "
                f"{r['p1_later_than_greedy']:>8} | "
                f"{r['p1_free_reduction_pct']:>6.1f}% {r['p1_free_p1_later_than_greedy']:>8}"
                + (f"  VIOLATIONS {r['violations']}" if r["violations"] else ""))
        result = {"territory": where, "source": args.source, "time_limit_s": args.time_limit, "seed": args.seed,
                  "scenarios": rows}
        if args.scale:
            s = scale(sites, depots, travel, args.seed, args.workers)
            result["scale"] = s
            say(f"\nscale 100 crews x 1,000 jobs (travel matrix {s['matrix_seconds']} s, precomputed):")
            say(f"  greedy: {s['greedy']['seconds']} s, wcm {s['greedy']['charged_wcm']:,}, "
                f"dropped {s['greedy']['dropped']}")
            for key in ("ortools_1s", "ortools_5s", "ortools_25s"):
                f = s[key]
                say(f"  {key}: {f['seconds']} s wall, wcm {f['charged_wcm']:,} "
                    f"({f['reduction_pct']}% below greedy), dropped {f['dropped']}")
            say(f"  re-plan after one new job (warm start, 1 s search budget): {s['replan_seconds']} s, new job assigned: "
                f"{s['replan_new_job_assigned']}, en-route crews redirected: "
                f"{s['replan_en_route_crews_redirected']}, violations: {len(s['replan_violations'])}")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
