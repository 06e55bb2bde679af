"""Who goes where, when: crews, jobs, the OR-Tools model, plans with ETAs, a greedy baseline, re-planning.

    from dispatch import Crew, Job, Problem, SolveOptions, solve, solve_greedy, StraightLine

    problem = Problem(crews, jobs, now)               # checks itself; DispatchInputError names the culprit
    plan = solve(problem, travel, SolveOptions(time_limit_s=10))
    plan.assignments["J17"].eta, plan.dropped, plan.explain()

``travel`` is any ``(src_points, dst_points) -> seconds`` callable (e.g. ``gis.roads.RoadGraph.travel_time_matrix``),
so the model never depends on roads. Pure domain code (numpy, OR-Tools); never imports ``outage``.
"""

from dispatch.greedy import solve_greedy
from dispatch.model import CREW_KINDS, CREW_STATUSES, Crew, DispatchInputError, Job, Location, Problem
from dispatch.plan import Assignment, Dropped, Plan, Route, Stop
from dispatch.replan import add_job, advance, commit_first_stops, complete_job, replan, update_crew
from dispatch.solver import SolveOptions, solve
from dispatch.travel import MatrixTravel, StraightLine, TravelTime

__all__ = [
    "CREW_KINDS", "CREW_STATUSES", "Assignment", "Crew", "DispatchInputError", "Dropped", "Job", "Location",
    "MatrixTravel", "Plan", "Problem", "Route", "SolveOptions", "Stop", "StraightLine", "TravelTime", "add_job",
    "advance", "commit_first_stops", "complete_job", "replan", "solve", "solve_greedy", "update_crew",
]
