"""A speed study's points of one fleet family, solved as one chain.

The points differ only in the speed target of some classes, and a higher target only rules units
out (the feasible set shrinks as the target rises). So the chain builds the candidate table once,
at its lowest target and unpruned; keeps the union U of the pruned tables of every target; builds
the MILP over U once; and solves the targets from the highest down, each with the units below its
target bounded to 0 and the previous target's plan as the MIP start.

Exact: at target s the allowed units are prune(T_s), the very table a point planned alone would
solve, plus the previous plan's units: they met a higher target, so they lie in T_s and change
no optimum, and the previous plan becomes a feasible MIP start. (Allowing every unit of U that
meets s would be exact too, but those dominated extras make branch and bound several times slower.)
Only which of several equal-cost plans is reported can differ from planning each point alone.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Callable

import numpy as np

from .errors import PlannerError


FLOOR_TOK_S = 0.01  # the lowest speed target a case may give: a table built at it serves every target


def _unpruned_table(spec, raw: dict, paths: list[str]):
    """The family's unpruned candidate table with the varied speeds at the floor: built once per
    process (studies.cached_candidates) and shared by every chain of the family."""
    from .cases import apply_override, build_case
    from .studies import cached_candidates

    r = copy.deepcopy(raw)
    for path in paths:
        apply_override(r, path, FLOOR_TOK_S)
    return cached_candidates(build_case(r, spec.label, spec.catalogs), spec.grid, prune=False)[1]


def speed_of(point) -> float:
    return float(dict(point.labels)["speed_tok_s_user"])


def evaluate_chain(spec, points: list, emit: Callable[[dict], None]) -> int:
    """Evaluate every point of one family's chain, emitting each row as it finishes; returns the count."""
    from .candidates import GRIDS, prune
    from .cases import build_case
    from .planning import _diagnose_candidates, _remaining, check_objective, conclude
    from .problem import build_problem
    from .solve import FleetSolver, SolveOptions
    from .studies import apply_family, error_row, plan_row, point_raw, point_row

    order = sorted(points, key=speed_of, reverse=True)
    grid = GRIDS[spec.grid]
    t0 = time.perf_counter()
    try:
        raw = copy.deepcopy(spec.raw)
        if order[0].family:
            apply_family(raw, spec.families[order[0].family])
        paths = [path for path, _ in order[0].overrides]
        cases = {point.key: build_case(point_raw(spec, point), spec.label, spec.catalogs) for point in order}
        lowest = cases[order[-1].key]
        objective = check_objective(lowest, spec.objective)
        table = _unpruned_table(spec, raw, paths)
        targeted = {lowest.classes[int(p.split(".")[1])].name for p in paths}
        speed = table["speed_tok_s_user"].to_numpy(float)
        gated = table["class"].isin(targeted).to_numpy() & (table["kind"] != "prefill").to_numpy()

        def meets(s: float) -> np.ndarray:
            return ~gated | (speed >= s * (1 - 1e-12))

        kept = {p.key: set(prune(table[meets(speed_of(p))]).index) for p in order}
        union = sorted(set().union(*kept.values()))
        units = table.loc[union].reset_index(drop=True)
        at = {row: u for u, row in enumerate(union)}
        allowed_of = {key: sorted(at[row] for row in rows) for key, rows in kept.items()}
        problem = build_problem(lowest, units, objective)
        solver = FleetSolver(problem, SolveOptions(time_limit_s=spec.time_limit_s, mip_gap=spec.mip_gap))
    except PlannerError as exc:  # the family itself cannot be planned: every point says why
        for point in order:
            emit({**point_row(point), **error_row(exc), "wall_s": (time.perf_counter() - t0) / len(order)})
        return len(order)

    setup_s = time.perf_counter() - t0
    last: set[int] = set()  # units of the last plan: the MIP start when the next point allows them all
    for i, point in enumerate(order):
        t = time.perf_counter()
        row = point_row(point)
        try:
            case = cases[point.key]
            # the pruned table a point planned alone would solve, plus the last plan's units (they met a
            # higher target, so they meet this one): that plan is then a feasible MIP start
            allowed = sorted(set(allowed_of[point.key]) | last)
            posed = units.iloc[allowed]
            _diagnose_candidates(case, posed, grid)
            solver.allow(set(allowed))
            opts = SolveOptions(time_limit_s=spec.time_limit_s, mip_gap=spec.mip_gap)
            deadline = time.monotonic() + spec.time_limit_s
            outcome = solver.run(start_from_last=bool(last),
                                 time_limit_s=_remaining(opts, deadline, "solving").time_limit_s)
            elastic = None
            if outcome.status == "infeasible":
                elastic = build_problem(case, posed.reset_index(drop=True), objective)
            plan = conclude(replace(problem, case=case), outcome, opts, deadline, {}, elastic_problem=elastic)
            last = {u for u, v in outcome.x.items() if v > 0}
            row.update(plan_row(plan))
        except PlannerError as exc:
            row.update(error_row(exc))
        row["wall_s"] = time.perf_counter() - t + (setup_s if i == 0 else 0.0)
        emit(row)
    return len(order)
