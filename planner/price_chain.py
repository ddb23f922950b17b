"""A sweep's points solved as chains: one MILP per candidate table, changed in place between points.

Points that move only prices, power figures, economics, budgets or supply caps share a candidate
table (studies.cached_candidates is keyed by everything else), and their MILPs differ only in the
objective's coefficients, the budgets' rows and the units' bounds. A chain builds the model and
hands it to HiGHS once, then for each next point builds that point's FleetProblem (cheap), and
FleetSolver.retarget rebuilds just those rows from it; the previous point's plan is the MIP start
(still feasible when only prices moved; HiGHS drops a start a tighter budget made infeasible).

Exact: every point solves the MILP build_model would give for it alone, to the same MIP gap, and
is concluded (extracted, checked, an infeasible one diagnosed) from its own problem. A point whose
problem differs in anything else (a new candidate table, other sets, demand, spares), or that the
chain cannot re-solve (the throughput objective's two solves, a demand profile's second plan at
the average), is planned as before: on a new model, or by studies.evaluate. Only which of several
plans equal within the gap is reported can differ from planning each point alone (the start and
the model's history steer HiGHS's search), as for the speed chains (planner/speed_chain.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from .errors import PlannerError, SolverError

CHAIN_POINTS = 20
"""Points per chain: long enough that the model's build and first hand-over to HiGHS (~0.1 s on
the default case) are paid once per many points, short enough that a 200-point sweep gives a
2-core pool ten chains. Fixed, not derived from the worker count: the same inputs give the same
rows with any number of workers."""


@dataclass(frozen=True)
class Replay:
    """A point a resumed sweep already wrote: its chain solves it again (its plan is the next
    point's start and its solve the model's history) but emits no row."""

    point: Any


def chains_of(points: list, done: list = ()) -> list[list]:
    """The sweep's points in order, cut into runs of CHAIN_POINTS (neighbouring values: each plan
    is a good start for the next). Cut over every point of the study, `done` ones included, so a
    resumed sweep solves each remaining point after the very points the uninterrupted run solved
    before it (as Replay items; a chain whose points are all done is dropped) and writes the same rows."""
    finished = {p.key for p in done}
    ordered = sorted([*points, *done], key=lambda p: p.index)
    chains = []
    for i in range(0, len(ordered), CHAIN_POINTS):
        block = ordered[i:i + CHAIN_POINTS]
        todo = [j for j, p in enumerate(block) if p.key not in finished]
        if todo:
            chains.append([Replay(p) if p.key in finished else p for p in block[:todo[-1] + 1]])
    return chains


def evaluate_price_chain(spec, points: list, emit: Callable[[dict], None]) -> int:
    """Evaluate one chain's points in order, emitting each row (but a Replay's) as it finishes;
    returns the count of rows emitted."""
    from .candidates import GRIDS
    from .cases import build_case
    from .planning import _diagnose_candidates, _remaining, check_objective, conclude
    from .problem import build_problem
    from .solve import FleetSolver, SolveOptions
    from .studies import cached_candidates, error_row, evaluate, plan_row, point_raw, point_row

    grid = GRIDS[spec.grid]
    solver, solver_key, start = None, None, False
    for item in points:
        point, out = (item.point, lambda _: None) if isinstance(item, Replay) else (item, emit)
        t = time.perf_counter()
        row = point_row(point)
        try:
            case = build_case(point_raw(spec, point), spec.label, spec.catalogs)
            objective = check_objective(case, spec.objective)
            if objective == "throughput" or any(tc.demand_profile for tc in case.classes):
                solver = None
                out(evaluate(spec, point))
                continue
            opts = SolveOptions(time_limit_s=spec.time_limit_s, mip_gap=spec.mip_gap)
            deadline = time.monotonic() + spec.time_limit_s
            key, units = cached_candidates(case, spec.grid)
            _diagnose_candidates(case, units, grid)
            problem = build_problem(case, units, objective)
            if not (solver is not None and solver_key == key and solver.retarget(problem)):
                solver, solver_key, start = None, key, False
                solver = FleetSolver(problem, _remaining(opts, deadline, "building the MILP"))
            outcome = solver.run(start_from_last=start, time_limit_s=_remaining(opts, deadline, "solving").time_limit_s)
            start = bool(outcome.x)
            if out is emit:  # a replay needs only the solve: its row is written already
                row.update(plan_row(conclude(problem, outcome, opts, deadline, {})))
        except PlannerError as exc:
            if isinstance(exc, SolverError):  # the model may be left half-changed: the next point builds anew
                solver = None
            row.update(error_row(exc))
        row["wall_s"] = time.perf_counter() - t
        out(row)
    return sum(not isinstance(item, Replay) for item in points)
