"""`fleet plan`: case → candidates → MILP → HiGHS → Plan, with infeasibility answered, not crashed."""
from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

from . import performance as pf
from .candidates import GridOptions, build_candidates
from .cases import load_case
from .domain import Case
from .errors import InfeasibleError, PlannerError, Problem
from .problem import OBJECTIVES, build_problem
from .results import Plan, extract
from .solve import DEFAULT_MIP_GAP, SolveOptions, solve, solve_elastic


def plan_case(case: Case, objective: str = "tco", solve_opts: SolveOptions | None = None,
              grid: GridOptions | None = None, units=None, warm=None) -> Plan:
    """Plan a loaded case; raises InfeasibleError with a diagnosis when targets cannot be met.
    `units` is a candidate table already built for this case (studies reuse them across points)."""
    if objective not in OBJECTIVES:
        raise PlannerError(f"unknown objective '{objective}'", [Problem("--objective", objective,
                           f"use one of {', '.join(OBJECTIVES)}")])
    if objective == "throughput" and not (case.constraints.power_mw or case.constraints.capex_usd
                                          or case.constraints.supply):
        raise PlannerError("the throughput objective needs a budget", [Problem(
            "constraints", "no power_mw, capex_usd or supply cap", "set e.g. --set constraints.power_mw=100")])
    timings = {}
    t = time.perf_counter()
    units = build_candidates(case, grid) if units is None else units
    timings["candidates_s"] = time.perf_counter() - t
    _diagnose_candidates(case, units, grid or GridOptions())
    t = time.perf_counter()
    problem = build_problem(case, units, objective)
    timings["problem_s"] = time.perf_counter() - t
    outcome = solve(problem, solve_opts, warm)
    timings["build_s"], timings["solve_s"] = outcome.build_s, outcome.wall_s
    if outcome.status == "infeasible":
        slacks = solve_elastic(problem, solve_opts)
        raise InfeasibleError("the targets cannot all be met", _elastic_problems(case, problem, slacks))
    t = time.perf_counter()
    plan = extract(problem, outcome, timings)
    timings["extract_s"] = time.perf_counter() - t
    return plan


def plan(case: str | None = None, sets=(), catalogs=(), objective: str = "tco", time_limit_s: float = 60.0,
         mip_gap: float = DEFAULT_MIP_GAP, write_model: str | None = None, grid: GridOptions | str | None = None) -> Plan:
    """The Python API behind `fleet plan` (case = path or shipped name; None = default)."""
    t = time.perf_counter()
    c = load_case(case, sets, list(catalogs))
    load_s = time.perf_counter() - t
    if isinstance(grid, str):
        from .candidates import GRIDS

        grid = GRIDS[grid]
    p = plan_case(c, objective, SolveOptions(time_limit_s=time_limit_s, mip_gap=mip_gap, write_model=write_model), grid)
    p.timings_s = {"load_s": load_s, **p.timings_s}
    return p


def _diagnose_candidates(case: Case, units, grid: GridOptions) -> None:
    """Before the MILP: a class with no unit that can serve it gets a precise answer."""
    problems = []
    for tc in case.classes:
        mine = units[units["class"] == tc.name]
        serving = mine[mine["kind"] != "prefill"]
        if serving.empty:
            best, where = _fastest(case, tc, grid)
            problems.append(Problem(f"classes.{tc.name}.min_speed_tok_s_user",
                                    f"no allowed chip reaches {tc.min_speed_tok_s_user:,.0f} tok/s/user for {tc.model} "
                                    f"at ISL {tc.isl:,} / OSL {tc.osl:,} ({tc.precision}); best is {best:,.0f} on {where}",
                                    "lower the target, shorten the context, or allow faster chips"))
        elif not (mine["kind"] == "aggregated").any() and not (mine["kind"] == "prefill").any():
            problems.append(Problem(f"classes.{tc.name}.ttft_s", f"no prefill unit meets TTFT {tc.ttft_s} s "
                                    f"for ISL {tc.isl:,}", "raise ttft_s or allow faster prefill chips"))
    if problems:
        raise InfeasibleError("the targets cannot all be met", problems)


def _fastest(case: Case, tc, grid: GridOptions) -> tuple[float, str]:
    """Fastest per-user decode any allowed chip reaches for the class: batch 1, every runnable layout
    the candidate generator would try."""
    from .layouts import layouts

    w = pf.Workload(case.models[tc.model], tc.precision, tc.isl, tc.osl, tc.cached_isl)
    best, where = 0.0, "no chip (the model fits nowhere)"
    for cid in case.fleet.chips:
        chip = case.chips[cid]
        if not chip.supports(tc.precision):
            continue
        c = pf.ChipSI.of(chip, tc.precision)
        n_min = max(1, math.ceil(w.weight_bytes() / (c.mem_bytes * pf.USABLE_MEM_FRAC)))
        lay = layouts(w.model, n_min, c.domain, c.on_chip, grid.n_factors, grid.max_chips_per_unit)
        for dp in (False, True):
            sel = lay.select(lay.attn_dp == dp)
            if not len(sel):
                continue
            d = pf.decode(w, c, sel.n, None, None, 1, pp=sel.pp, attn_dp=dp)
            speed = np.where(d["fits"], d["speed_tok_s_user"], 0)
            if speed.max() > best:
                i = int(speed.argmax())
                best = float(speed.max())
                where = f"{int(sel.n[i])} × {cid} (tp {int(sel.tp[i])} × pp {int(sel.pp[i])})"
    return best, where


def _elastic_problems(case: Case, problem, slacks: dict[str, float]) -> list[Problem]:
    out = []
    for key, v in slacks.items():
        if v <= 1e-6:
            continue
        if key.startswith("short["):
            j = key[6:-1]
            demand = problem.demand_ktok_s[j] * 1e3
            out.append(Problem(f"classes.{j}.demand_tok_s", f"demand short by {v * 1e3:,.0f} tok/s "
                               f"({v * 1e3 / demand:.1%}) at the cheapest feasible fleet", "lower demand or raise budgets"))
        elif key == "over_power":
            out.append(Problem("constraints.power_mw", f"power short by {v / 1000:,.2f} MW at the cheapest feasible fleet",
                               f"raise power_mw to ≥ {(problem.power_kw_budget + v) / 1000:,.2f}"))
        elif key == "over_capex":
            out.append(Problem("constraints.capex_usd", f"capex short by {v * 1e6:,.0f} USD",
                               f"raise capex_usd to ≥ {problem.capex_usd_budget + v * 1e6:,.0f}"))
        elif key.startswith("over_supply["):
            c = key[12:-1]
            out.append(Problem(f"constraints.supply.{c}", f"supply short by {math.ceil(v - 1e-6):,} chips",
                               f"raise the cap to ≥ {problem.supply[c] + math.ceil(v - 1e-6):,}"))
    if not out:
        out.append(Problem("constraints", "no fleet meets every constraint (stage-type limits or whole-system rounding)",
                           "relax max_chip_types_per_stage or allow more chips"))
    return out


def run_record(plan_: Plan, case_source: str, sets, catalogs, options: dict) -> dict:
    """What is needed to reproduce a plan: inputs hash, catalog versions, package versions, options."""
    import highspy
    import pandas
    import pyomo

    h = hashlib.sha256()
    for part in [Path(case_source).read_bytes() if Path(case_source).exists() else b"", *[s.encode() for s in sets],
                 *[Path(c).read_bytes() for c in catalogs]]:
        h.update(part)
    from importlib.metadata import version

    return {"inputs_sha256": h.hexdigest(), "case": case_source, "sets": list(sets), "catalogs": list(catalogs),
            "catalog_versions": dict(plan_.problem.case.catalog_versions), "options": options,
            "versions": {"fleet-planner": version("fleet-planner"), "python": platform.python_version(),
                         "pyomo": pyomo.__version__, "highspy": getattr(highspy, "__version__", "?"),
                         "numpy": np.__version__, "pandas": pandas.__version__},
            "solver": plan_.outcome.solver}


def write_outputs(plan_: Plan, out_dir: str | Path, run: dict, force: bool = False) -> list[Path]:
    """One tidy CSV per concept + plan.json + run.json, each written atomically."""
    from .reports import to_csv, to_json, write_atomic

    out = Path(out_dir)
    targets = {"chips.csv": plan_.chips, "stages.csv": plan_.stages, "units.csv": plan_.units,
               "classes.csv": plan_.classes, "constraints.csv": plan_.constraints}
    if out.exists() and not force:
        clash = [n for n in [*targets, "plan.json", "run.json"] if (out / n).exists()]
        if clash:
            raise PlannerError(f"{out} already holds a plan", [Problem(str(out), f"would overwrite {', '.join(clash)}",
                                                                       "pass --force or choose another --output")])
    written = [write_atomic(out / name, to_csv(df.to_dict("records"), list(df.columns))) for name, df in targets.items()]
    costs = [{"capex_usd": plan_.cost["capex_usd"], "tco_usd_per_hour": plan_.cost["tco_usd_per_hour"],
              "usd_per_mtok": plan_.cost["usd_per_mtok"], "power_mw": plan_.power_mw,
              "throughput_tok_s": plan_.throughput_tok_s}]
    written.append(write_atomic(out / "costs.csv", to_csv(costs)))
    written.append(write_atomic(out / "plan.json", to_json(plan_.to_dict())))
    written.append(write_atomic(out / "run.json", json.dumps(run, indent=2, sort_keys=True) + "\n"))
    return written
