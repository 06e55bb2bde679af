"""The greedy baseline, and bad input giving clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from dispatch_cases import NOW, at, crew, job, point, travel_for

from dispatch.greedy import solve_greedy
from dispatch.model import Crew, DispatchInputError, Job, Problem
from dispatch.solver import SolveOptions, solve
from dispatch.travel import MatrixTravel, StraightLine


def test_greedy_takes_heaviest_first_to_the_nearest_free_crew():
    crews = [crew("west", 0), crew("east", 20)]
    jobs = [job("light", 1, weight=1), job("heavy", 2, weight=10), job("far", 19, weight=5)]
    plan = solve_greedy(Problem(crews, jobs, NOW), travel_for(crews, jobs))
    assert plan.solver == "greedy" and not plan.violations()
    # t=0: heavy -> west (2 min away), far -> east (1 min); light waits for the first crew to come free:
    # east at 31 min (the rule does not look ahead to west, free at 32 and 1 min away).
    assert plan.routes["west"].job_ids == ["heavy"]
    assert plan.routes["east"].job_ids == ["far", "light"]
    assert plan.assignments["heavy"].eta == at(2)  # 2 km at 1 min/km
    assert plan.assignments["light"].eta == at(1 + 30 + 18)


def test_greedy_respects_skills_shifts_and_windows():
    crews = [crew("L", 0, hours=2), crew("T", 0, skills=("tree",), hours=8)]
    jobs = [job("tree", 5, skills=("tree",), weight=3), job("l1", 1, minutes=50, weight=2),
            job("l2", 2, minutes=50, weight=1.5), job("l3", 3, minutes=50, weight=1),
            job("window", 4, weight=9, earliest=at(30), latest=at(40))]
    plan = solve_greedy(Problem(crews, jobs, NOW), travel_for(crews, jobs))
    assert not plan.violations()
    assert plan.assignments["tree"].crew_id == "T"
    assert plan.assignments["window"].start >= at(30)
    assert {d.job_id for d in plan.dropped} == {"l2", "l3"}
    assert plan.routes["L"].end_arrival <= at(120)


def test_greedy_handles_precedence():
    crews = [crew("A", 0, skills=("assess", "line"))]
    jobs = [job("repair", 3, weight=100, after=("assess",)), job("assess", 3, skills=("assess",), weight=1)]
    plan = solve_greedy(Problem(crews, jobs, NOW), travel_for(crews, jobs))
    assert plan.routes["A"].job_ids == ["assess", "repair"]


def test_empty_crew_list_is_an_error():
    with pytest.raises(DispatchInputError, match="crew list is empty"):
        Problem([], [job("j", 1)], NOW)


def test_unknown_skill_names_the_job_and_skill():
    with pytest.raises(DispatchInputError, match=r"job 'j7': unknown skill 'teleport'"):
        Problem([crew("A", 0)], [job("j7", 1, skills=("teleport",))], NOW)


def test_unreachable_job_names_the_job():
    crews = [crew("A", 0)]
    jobs = [job("island", 5), job("ok", 1)]
    pts = [crews[0].start, jobs[0].location, jobs[1].location]
    seconds = np.array([[0, np.inf, 60], [np.inf, 0, np.inf], [60, np.inf, 0]])
    travel = MatrixTravel(pts, seconds)
    with pytest.raises(DispatchInputError, match=r"job 'island': unreachable"):
        solve(Problem(crews, jobs, NOW), travel, SolveOptions(time_limit_s=1))
    with pytest.raises(DispatchInputError, match=r"job 'island': unreachable"):
        solve_greedy(Problem(crews, jobs, NOW), travel)


@pytest.mark.parametrize("make, message", [
    (lambda: Job("j", (200.0, 50.0), 10), "not a WGS84"),
    (lambda: Job("j", point(1), -5), "service_minutes"),
    (lambda: Job("j", point(1), 5, weight=0), "weight must be > 0"),
    (lambda: Job("j", point(1), 5, priority=7), "priority"),
    (lambda: Job("j", point(1), 5, earliest=at(10), latest=at(5)), "before earliest"),
    (lambda: Job("j", point(1), 5, earliest=at(10).replace(tzinfo=None)), "timezone-aware"),
    (lambda: Crew("c", {"line"}, point(0), at(60), at(0)), "not after shift_start"),
    (lambda: Crew("c", {"line"}, point(0), NOW, at(60), status="on_site"), "needs current_job"),
    (lambda: Crew("c", {"line"}, point(0), NOW, at(60), kind="wizard"), "kind"),
])
def test_bad_fields_are_named(make, message):
    with pytest.raises(DispatchInputError, match=message):
        make()


def test_problem_level_checks():
    with pytest.raises(DispatchInputError, match="duplicate job id 'j'"):
        Problem([crew("A")], [job("j", 1), job("j", 2)], NOW)
    with pytest.raises(DispatchInputError, match="unknown job 'ghost'"):
        Problem([crew("A")], [job("j", 1, after=("ghost",))], NOW)
    with pytest.raises(DispatchInputError, match="cycle"):
        Problem([crew("A")], [job("a", 1, after=("b",)), job("b", 2, after=("a",))], NOW)
    with pytest.raises(DispatchInputError, match="current_job 'nope'"):
        Problem([crew("A", status="en_route", current_job="nope")], [job("j", 1)], NOW)


def test_straight_line_travel_is_plausible():
    t = StraightLine(speed_kph=60, circuity=1.0)(np.array([[11.0, 50.0]]), np.array([[11.0, 50.1]]))
    assert t[0, 0] == pytest.approx(11.12 * 60, rel=0.01)  # 0.1 deg latitude = 11.1 km at 60 km/h


def test_no_jobs_gives_an_empty_plan():
    plan = solve(Problem([crew("A")], [], NOW), travel_for([crew("A")], []))
    assert plan.assignments == {} and plan.weighted_customer_minutes == 0


def test_iterated_local_search_is_refused_for_crew_dispatch():
    # it does not stop at the time limit on this model (see SolveOptions); a clear error beats a hung re-plan
    with pytest.raises(ValueError, match="iterated local search"):
        SolveOptions(metaheuristic="ITERATED_LOCAL_SEARCH")
