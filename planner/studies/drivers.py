"""The four studies, each a list of points handed to the runner: sweep (one or many --vary),
pareto (speed targets × fleet families), budget (max tokens/s per power or capex budget) and
breakeven (bisection until the plan changes in the named way)."""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import replace as dc_replace
from typing import Iterable

import pandas as pd

from ..cases import apply_override, build_case, read_case_raw
from ..errors import CaseError, Problem
from ..defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S, PARETO_OBJECTIVES
from .families import case_families
from .points import Point, StudySpec, evaluate
from .runner import run_points
from .until import parse_until
from .values import check_paths, parse_values, parse_vary, positive_numbers, spec_catalog


def load_spec(case: str | None, sets=(), catalogs=(), objective="tco", time_limit_s=DEFAULT_TIME_LIMIT_S, mip_gap=DEFAULT_MIP_GAP,
              grid: str = "fine", warm_start: bool = False) -> StudySpec:
    """Read the case once, apply --set, and validate it (so a bad case fails before any point runs)."""
    from ..cases import check_solve_args, parse_sets

    check_solve_args(time_limit_s, mip_gap, grid, objective=objective)
    raw, label = read_case_raw(case)
    for path, value in parse_sets(sets):
        apply_override(raw, path, value)
    build_case(raw, label, list(catalogs))
    return StudySpec(raw=raw, label=label, catalogs=tuple(catalogs), objective=objective,
                     time_limit_s=time_limit_s, mip_gap=mip_gap, grid=grid, warm_start=warm_start)


def sweep_points(varies: list[tuple[str, list]], mode: str = "grid") -> list[Point]:
    """One --vary: one point per value; several: full grid, or one-at-a-time (mode 'oat')."""
    points = []
    if mode == "oat" or len(varies) == 1:
        for path, values in varies:
            for v in values:
                points.append(Point(len(points), ((path, v),), ((path, v), ("varied", path))))
    else:
        for combo in itertools.product(*[[(p, v) for v in vals] for p, vals in varies]):
            points.append(Point(len(points), tuple(combo), tuple(combo)))
    return points


def sweep(case: str | None = None, vary: Iterable[str] = (), mode: str = "grid", sets=(), catalogs=(),
          objective: str = "tco", workers: int | None = 1, scheduler: str | None = None, output=None,
          resume: bool = False, quiet: bool = True, force: bool = False, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
          mip_gap: float = DEFAULT_MIP_GAP, grid: str = "fine", warm_start: bool = False,
          chains: bool = True) -> pd.DataFrame:
    """Sensitivity sweep: one row per point (varied values, status, cost, MW, chips, stages, duals).
    `chains`: points on one candidate table share one model, changed in place (planner/price_chain.py;
    exact, several times faster); False plans every point on its own."""
    spec = load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid, warm_start)
    varies = parse_vary(vary, spec)
    if not varies:
        raise CaseError("nothing to vary", [Problem("--vary", "missing", "give --vary PATH=VALUES")])
    check_paths(spec, varies)
    return run_points(spec, sweep_points(varies, mode), workers, scheduler, output, resume, quiet, force, "sweep",
                      chains="sweep" if chains else False)


def speed_paths(spec: StudySpec, class_name: str | None) -> list[str]:
    names = [c.get("name") for c in spec.raw.get("classes", [])]
    if class_name is None:
        return [f"classes.{i}.min_speed_tok_s_user" for i in range(len(names))]
    if class_name not in names:
        from ..errors import did_you_mean

        raise CaseError(f"no class '{class_name}'", [Problem("--class", f"unknown class '{class_name}'",
                        did_you_mean(class_name, names) or f"classes: {', '.join(map(str, names))}")])
    return [f"classes.{names.index(class_name)}.min_speed_tok_s_user"]


def pareto(case: str | None = None, speeds: str = "25:2000:40", families: Iterable[str] | None = None,
           class_name: str | None = None, sets=(), catalogs=(), workers: int | None = 1,
           scheduler: str | None = None, output=None, resume: bool = False, quiet: bool = True,
           force: bool = False, time_limit_s: float = DEFAULT_TIME_LIMIT_S, mip_gap: float = DEFAULT_MIP_GAP,
           grid: str = "fine", warm_start: bool = False, chains: bool = True, objective: str = "tco") -> pd.DataFrame:
    """Best plan (min `objective`: tco, power or capex) per fleet family and speed target: the
    TPS/MW-vs-TPS/user frontier (objective "power" maximises tokens/s per MW for the demand).
    `chains`: solve each family's speeds as one chain (planner/speed_chain.py; exact, and several
    times faster); False plans every point on its own."""
    if objective not in PARETO_OBJECTIVES:
        raise CaseError(f"unknown pareto objective '{objective}'", [Problem(
            "--objective", objective, "use tco, power or capex (the demand is fixed: throughput has nothing to maximise)")])
    spec = load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid, warm_start)
    spec.families = case_families(spec.raw, spec_catalog(spec))
    chosen = list(families) if families else list(spec.families)
    unknown = [f for f in chosen if f not in spec.families]
    if unknown:
        raise CaseError(f"unknown family {unknown[0]}", [Problem("--families", f"unknown '{unknown[0]}'",
                        f"families of this case: {', '.join(spec.families)}")])
    try:
        values = parse_values(str(speeds), geometric=True)
    except ValueError as exc:
        raise CaseError(f"--speeds: {exc}", [Problem("--speeds", str(exc),
                        "tok/s/user > 0 as start:stop:n (geometric) or a list, e.g. 25:2000:40 or 42,71,100")])
    values = positive_numbers(values, "--speeds", "25:2000:40 or 42,71,100")
    if not values:
        raise CaseError("--speeds: no values", [Problem("--speeds", repr(speeds), "e.g. 25:2000:40 or 42,71,100")])
    paths = speed_paths(spec, class_name)
    points = []
    for fam in chosen:
        for s in values:
            points.append(Point(len(points), tuple((p, float(s)) for p in paths),
                                (("speed_tok_s_user", float(s)),), fam))
    return run_points(spec, points, workers, scheduler, output, resume, quiet, force, "pareto", chains=chains)


def budget(case: str | None = None, power_mw: str | None = None, capex_usd: str | None = None, sets=(),
           catalogs=(), workers: int | None = 1, scheduler: str | None = None, output=None, resume=False,
           quiet=True, force=False, time_limit_s: float = DEFAULT_TIME_LIMIT_S, mip_gap: float = DEFAULT_MIP_GAP,
           grid: str = "fine", warm_start: bool = False) -> pd.DataFrame:
    """Maximum served tokens/s inside each budget point, with the marginal value of each budget."""
    spec = load_spec(case, sets, catalogs, "throughput", time_limit_s, mip_gap, grid, warm_start)
    axes = []
    for path, option, text in (("constraints.power_mw", "--power-mw", power_mw),
                               ("constraints.capex_usd", "--capex-usd", capex_usd)):
        if text is not None:
            form = "a number > 0, a list 50,100 or start:stop:n, e.g. 20:100:5"
            try:
                values = parse_values(str(text))
            except ValueError as exc:
                raise CaseError(f"{option}: {exc}", [Problem(option, str(exc), form)])
            if not values:
                raise CaseError(f"{option}: no values", [Problem(option, "no values", form)])
            axes.append((path, positive_numbers(values, option, form)))
    if not axes and not (spec.raw.get("constraints", {}).get("power_mw") or spec.raw.get("constraints", {}).get("capex_usd")):
        raise CaseError("a budget study needs a budget", [Problem("--power-mw", "missing",
                        "give --power-mw and/or --capex-usd")])
    points = sweep_points(axes, "grid") if axes else [Point(0, ())]
    return run_points(spec, points, workers, scheduler, output, resume, quiet, force, "budget")


def breakeven(case: str | None = None, vary: str = "", until: str = "", rel_tol: float = 0.01, sets=(),
              catalogs=(), objective="tco", max_steps: int = 30, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
              mip_gap: float = DEFAULT_MIP_GAP, grid: str = "fine", deadline: float | None = None) -> dict:
    """Bisection over one parameter until the plan changes in the named way. `deadline`
    (time.monotonic): no step starts after it, and none outlasts it (the interval found so far is
    returned, with stopped = "time_limit")."""
    spec = load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid)
    path, _, text = (vary or "").partition("=")
    path = path.strip()
    try:
        lo, hi = (float(v) for v in text.split(":"))
        if not (path and math.isfinite(lo) and math.isfinite(hi) and lo != hi):
            raise ValueError
    except ValueError:
        raise CaseError("--vary needs PATH=LO:HI", [Problem("--vary", vary, "two different finite numbers, e.g. "
                        "chips.groq3-lpu.price_usd=1000:40000")]) from None
    pred = parse_until(until, build_case(spec.raw, spec.label, spec.catalogs), spec_catalog(spec))
    check_paths(spec, [(path, [lo])])
    def at(v, i):
        left = math.inf if deadline is None else deadline - time.monotonic()
        step = spec if left >= spec.time_limit_s else dc_replace(spec, time_limit_s=max(left, 0.01))
        return evaluate(step, Point(i, ((path, v),), ((path, v),)))

    r_lo, r_hi = at(lo, 0), at(hi, 1)
    p_lo, p_hi = pred(r_lo), pred(r_hi)
    steps = 2
    if p_lo == p_hi:
        return {"path": path, "until": until, "found": False, "low": lo, "high": hi, "holds_at_low": p_lo,
                "holds_at_high": p_hi, "steps": steps, "plan_low": r_lo, "plan_high": r_hi,
                "message": f"'{until}' is {'true' if p_lo else 'false'} at both ends of [{lo:g}, {hi:g}]"}
    stopped = None
    while steps < max_steps and abs(hi - lo) > rel_tol * max(abs(lo), abs(hi), 1e-12):
        if deadline is not None and time.monotonic() >= deadline:
            stopped = "time_limit"
            break
        mid = (lo + hi) / 2
        r_mid = at(mid, steps)
        steps += 1
        if pred(r_mid) == p_lo:
            lo, r_lo = mid, r_mid
        else:
            hi, r_hi = mid, r_mid
    return {"path": path, "until": until, "found": True, "value": (lo + hi) / 2, "low": lo, "high": hi,
            "tolerance": rel_tol, "holds_at_low": p_lo, "holds_at_high": p_hi, "steps": steps,
            "plan_low": r_lo, "plan_high": r_hi, **({"stopped": stopped} if stopped else {})}
