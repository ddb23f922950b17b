"""`fleet plan`: case → candidates → MILP → HiGHS → Plan, with infeasibility answered, not crashed."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import performance as pf
from .candidates import GridOptions, build_candidates
from .cases import check_solve_args, load_case
from .spares import unreachable
from .domain import Case
from . import slackness, verify
from .errors import CaseError, InfeasibleError, PlannerError, Problem, TimeLimitError
from . import purchasable
from .problem import OBJECTIVES, Objective, build_problem
from .results import OBJECTIVE_UNITS, Plan, constraint_scales, extract
from .defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S
from .solve import SolveOptions, gap_exceeded, solve, solve_elastic


def check_objective(case: Case, objective: str | None) -> Objective:
    """The objective to solve (None = the case's own), refused when the case cannot bound it."""
    objective = objective or case.objective
    if objective not in OBJECTIVES:
        raise PlannerError(f"unknown objective '{objective}'", [Problem("--objective", objective,
                           f"use one of {', '.join(OBJECTIVES)}")])
    if objective == "throughput" and not (case.constraints.power_mw or case.constraints.capex_usd
                                          or case.constraints.supply):
        raise PlannerError("the throughput objective needs a budget", [Problem(
            "constraints", "no power_mw, capex_usd or supply cap", "set e.g. --set constraints.power_mw=100")])
    cons = case.constraints
    unbounded = [c for c in cons.fixed_cost_usd if c not in cons.supply]
    if objective == "throughput" and unbounded and not (cons.power_mw or cons.capex_usd):
        raise PlannerError("a fixed cost under the throughput objective needs a bound on that chip", [Problem(
            f"constraints.fixed_cost_usd.{unbounded[0]}", "nothing limits how many of this chip the plan may buy",
            f"set constraints.power_mw, constraints.capex_usd or constraints.supply.{unbounded[0]}")])
    return objective


def pre_solve_checks(case: Case, objective: str | None = None) -> tuple[Case, list[str], Objective]:
    """Every check `fleet plan` makes before building a candidate (`fleet validate` runs these same
    ones): chips the plan year can buy, an objective the case can bound, spares that can reach the
    availability. Returns the case restricted to the year, its held-back lines and the objective."""
    case, held_back = purchasable.for_plan_year(case)
    objective = check_objective(case, objective)
    problems = unreachable(case)
    if problems:
        raise CaseError(f"no number of spares reaches availability {case.constraints.availability}", problems)
    return case, held_back, objective


def plan_case(case: Case, objective: str | None = None, solve_opts: SolveOptions | None = None,
              grid: GridOptions | None = None, units=None, warm=None) -> Plan:
    """Plan a loaded case; raises InfeasibleError with a diagnosis when targets cannot be met.
    `units` is a candidate table already built for this case (studies reuse them across points);
    objective None = the case's own ([options] objective, else tco)."""
    purchase = purchasable.summary(case)
    case, held_back, objective = pre_solve_checks(case, objective)
    solve_opts = solve_opts or SolveOptions()
    deadline = time.monotonic() + solve_opts.time_limit_s  # the limit bounds the whole plan, not only HiGHS
    timings = {}
    t = time.perf_counter()
    units = build_candidates(case, grid, deadline=deadline) if units is None else units
    timings["candidates_s"] = time.perf_counter() - t
    _diagnose_candidates(case, units, grid or GridOptions())
    t = time.perf_counter()
    problem = build_problem(case, units, objective)
    timings["problem_s"] = time.perf_counter() - t
    outcome = solve(problem, _remaining(solve_opts, deadline, "building the MILP"), warm)
    plan = conclude(problem, outcome, solve_opts, deadline, timings)
    plan.warnings[:0] = held_back
    plan.purchase = purchase
    if case.periods:
        plan.warnings.append("this case has [[periods]]: `fleet plan` plans its own demand and constraints only, "
                             "bought in the first period's year (service life and the periods' budgets are "
                             "ignored); `fleet roadmap` plans the periods")
    if any(tc.demand_profile for tc in case.classes) and objective != "throughput":
        plan.sized_at_average = _sized_at_average(case, objective, solve_opts, deadline, units)
    return plan


def conclude(problem, outcome, solve_opts: SolveOptions, deadline: float, timings: dict,
             elastic_problem=None) -> Plan:
    """A solver outcome → a checked Plan: infeasible targets diagnosed (on `elastic_problem`, the
    problem as the user posed it, when the solved one carries units the point rules out), no plan
    in time an error, and the plan re-checked against its constraints."""
    timings["build_s"], timings["solve_s"] = outcome.build_s, outcome.wall_s
    if outcome.status == "infeasible":
        posed = elastic_problem or problem
        slacks = solve_elastic(posed, _remaining(solve_opts, deadline, "diagnosing the infeasible targets"))
        raise InfeasibleError("the targets cannot all be met", _elastic_problems(posed, slacks))
    stopped = outcome.status == "time_limit"
    if not outcome.x or (stopped and problem.objective == "throughput" and outcome.alpha <= 1e-9):
        # stopped by the time limit before HiGHS found any fleet (or, maximising throughput, any serving one)
        bound = "" if outcome.bound is None else f"; best bound {outcome.bound:,.6g} {OBJECTIVE_UNITS[problem.objective]}"
        raise TimeLimitError(f"time limit of {solve_opts.time_limit_s:g} s reached before any plan was found", [
            Problem("--time-limit", f"HiGHS found no feasible fleet in {outcome.wall_s:.1f} s "
                    f"({len(problem.units):,} candidate units){bound}", "raise --time-limit, use --grid coarse, or split the case")])
    if problem.objective == "throughput" and outcome.alpha <= 1e-9:
        raise InfeasibleError("the budgets buy nothing that serves", _nothing_served(problem))
    t = time.perf_counter()
    plan = extract(problem, outcome, timings)
    verify.check(plan)
    plan.warnings += slackness.violations(plan.constraints, constraint_scales(problem, plan.constraints))
    plan.warnings += gap_warnings(problem, outcome, solve_opts.mip_gap)
    plan.requested_mip_gap = solve_opts.mip_gap
    timings["extract_s"] = time.perf_counter() - t
    return plan


def gap_warnings(problem, outcome, mip_gap: float) -> list[str]:
    """A plan short of the requested gap says so: its gap, the bound, and what the optimum could be at best."""
    if not gap_exceeded(outcome, mip_gap):
        return []
    unit = OBJECTIVE_UNITS[problem.objective]
    best = "at most" if problem.objective == "throughput" else "at best"
    return [f"NOT PROVEN OPTIMAL: the solver stopped at a {outcome.gap:.2%} gap (asked for {mip_gap:.2%}); this plan's "
            f"objective is {outcome.objective:,.6g} {unit}, the optimum is {best} {outcome.bound:,.6g} {unit} — raise "
            "--time-limit, or pass --require-optimal to make this an error (exit 3)"]


def _sized_at_average(case: Case, objective: str, solve_opts: SolveOptions, deadline: float, units) -> dict | None:
    """What a fleet bought for each class's mean demand (flat) would have been, and how much of the peak
    it serves: the purchase a planner working from averages would have made."""
    flat = replace(case, classes=tuple(replace(tc, demand_tok_s=tc.demand_tok_s * (sum(tc.demand_profile) / 24
                                                                                    if tc.demand_profile else 1.0),
                                               demand_profile=()) for tc in case.classes))
    problem = build_problem(flat, units, objective)
    try:
        o = solve(problem, _remaining(solve_opts, deadline, "sizing at the average demand"))
    except TimeLimitError:
        return None
    if o.status not in ("optimal", "feasible", "time_limit") or not o.x:
        return None
    avg = extract(problem, o)
    share = {}
    for tc in case.classes:
        cap = float(avg.classes.set_index("name").loc[tc.name, "capacity_tok_s"])
        share[tc.name] = cap / tc.peak_demand_tok_s
    return {"chips": {r.chip: int(r.chips) for r in avg.chips.itertuples() if r.chips},
            "tco_usd_per_hour": avg.cost["tco_usd_per_hour"], "capex_usd": avg.cost["capex_usd"],
            "peak_share_served": share}


def _nothing_served(p) -> list[Problem]:
    """Under the throughput objective, budgets too small for a single serving unit: an empty fleet
    is not an answer. Names each budget with what the smallest unit needs."""
    serving = [u for u in p.unit_ids if p.units.at[u, "kind"] != "prefill"]
    site_kw = min((p.pue * sum(n * p.chip_power_kw[c] for c, n in p.unit_chips[u].items()) for u in serving), default=0)
    price = min((sum(n * p.chip_price_usd[c] for c, n in p.unit_chips[u].items()) for u in serving), default=0)
    out = []
    if p.power_kw_budget is not None:
        out.append(Problem("constraints.power_mw", f"{p.power_kw_budget / 1000:,.4g} MW buys no serving unit",
                           f"the smallest needs {site_kw / 1000:,.4g} MW at the site (with prefill, more)"))
    if p.capex_usd_budget is not None:
        out.append(Problem("constraints.capex_usd", f"{p.capex_usd_budget:,.0f} USD buys no serving unit",
                           f"the cheapest costs {price:,.0f} USD (with prefill, more)"))
    return out or [Problem("constraints.supply", "the supply caps leave no serving unit", "raise the caps")]


def _remaining(opts: SolveOptions, deadline: float, doing: str) -> SolveOptions:
    """The solve options with the time left before the deadline (an error when none is left)."""
    left = deadline - time.monotonic()
    if left <= 0.05:
        raise TimeLimitError(f"time limit of {opts.time_limit_s:g} s reached while {doing}", [
            Problem("--time-limit", f"{opts.time_limit_s:g} s is used up before HiGHS could run",
                    "raise --time-limit, use --grid coarse, or split the case")])
    return replace(opts, time_limit_s=left)


def plan(case: str | None = None, sets=(), catalogs=(), objective: str | None = None, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
         mip_gap: float = DEFAULT_MIP_GAP, write_model: str | None = None, grid: GridOptions | str | None = None,
         cache: bool = True, require_optimal: bool = False) -> Plan:
    """The Python API behind `fleet plan` (case = path or shipped name; None = default; objective
    None = the case's own). `cache`: the candidate table from the on-disk cache when it holds this
    very table (planner/candidate_cache.py), else generated and stored. `require_optimal`: a plan
    not proven within `mip_gap` is a TimeLimitError (exit 3), not a warned plan."""
    check_solve_args(time_limit_s, mip_gap, grid, write_model, objective)
    t = time.perf_counter()
    c = load_case(case, sets, list(catalogs))
    load_s = time.perf_counter() - t
    if isinstance(grid, str):
        from .candidates import GRIDS

        grid = GRIDS[grid]
    if load_s >= time_limit_s:
        raise TimeLimitError(f"time limit of {time_limit_s:g} s reached while loading the case", [Problem(
            "--time-limit", f"loading and validating took {load_s:.1f} s", "raise --time-limit or split the case")])
    opts = SolveOptions(time_limit_s=time_limit_s - load_s, mip_gap=mip_gap, write_model=write_model)
    from . import candidate_cache

    t = time.perf_counter()
    units = candidate_cache.build(c, grid, deadline=time.monotonic() + opts.time_limit_s, use_cache=cache)
    candidates_s = time.perf_counter() - t
    if opts.time_limit_s - candidates_s <= 0.05:  # the message names the user's limit, not what is left of it
        raise TimeLimitError(f"time limit of {time_limit_s:g} s reached while generating candidates", [Problem(
            "--time-limit", f"loading took {load_s:.2f} s and the candidate units {candidates_s:.2f} s",
            "raise --time-limit or use --grid coarse")])
    p = plan_case(c, objective, replace(opts, time_limit_s=opts.time_limit_s - candidates_s), grid, units=units)
    p.timings_s = {"load_s": load_s, **p.timings_s, "candidates_s": candidates_s}
    if require_optimal and gap_exceeded(p.outcome, mip_gap):
        o = p.outcome
        raise TimeLimitError(f"time limit of {time_limit_s:g} s reached at a {o.gap:.2%} gap (asked for {mip_gap:.2%})", [
            Problem("--require-optimal", f"the best plan found has objective {o.objective:,.6g} "
                    f"{OBJECTIVE_UNITS[p.problem.objective]}; the optimum is at best {o.bound:,.6g}",
                    "raise --time-limit, loosen --mip-gap, or drop --require-optimal to take the plan with its warning")])
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
        n_min = pf.chips_to_hold(w.weight_bytes(), c)
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


def _elastic_problems(problem, slacks) -> list[Problem]:
    """Each used elastic slack as the field to change and by how much (formulations/families.py words it)."""
    out = [s.diagnosis(problem) for s in slacks if s.amount > 1e-6]
    if not out:
        out.append(Problem("constraints", "no fleet meets every constraint (stage-type limits or whole-system rounding)",
                           "relax max_chip_types_per_stage or allow more chips"))
    return out


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def inputs_sha256(case_source: str, sets, catalogs) -> str:
    """SHA-256 of what a plan was made from: the case file, the --set texts, the overlay files and
    the traces the case reads. run.json stores it; explain refuses a plan whose inputs changed."""
    from .cases import read_case_raw, referenced_files

    traces = []
    if Path(case_source).is_file():
        raw, label = read_case_raw(case_source)
        traces = [f for f in referenced_files(raw, label) if f.is_file()]
    h = hashlib.sha256()
    for part in [Path(case_source).read_bytes() if Path(case_source).is_file() else b"", *[s.encode() for s in sets],
                 *[Path(c).read_bytes() for c in catalogs], *[f.read_bytes() for f in traces]]:
        h.update(part)
    return h.hexdigest()


def run_record(plan_: Plan, case_source: str, sets, catalogs, options: dict) -> dict:
    """What is needed to reproduce a plan: inputs hash, catalog versions, package versions, options."""
    rec = case_run_record(plan_.problem.case, plan_.outcome.solver, case_source, sets, catalogs, options)
    return {**rec, "purchase": plan_.purchase} if plan_.purchase is not None else rec


def case_run_record(case: Case, solver: str, case_source: str, sets, catalogs, options: dict) -> dict:
    """run_record for any result made from `case` (plans, roadmaps)."""
    import pandas
    import pyomo

    if Path(case_source).is_file():
        case_source = str(Path(case_source).resolve())  # explain and report find it from any directory
    digest = inputs_sha256(case_source, sets, catalogs)
    from importlib.metadata import version

    return {"inputs_sha256": digest, "case": case_source, "sets": list(sets), "catalogs": list(catalogs),
            "catalog_versions": dict(case.catalog_versions), "options": options,
            "versions": {"fleet-planner": version("fleet-planner"), "python": platform.python_version(),
                         "pyomo": pyomo.__version__, "highspy": _version("highspy"),
                         "numpy": np.__version__, "pandas": pandas.__version__},
            "solver": solver}


PLAN_FILES = ("chips.csv", "stages.csv", "units.csv", "classes.csv", "class_costs.csv", "constraints.csv", "systems.csv", "costs.csv", "plan.xlsx",
              "plan.json", "run.json")


def check_output_dir(out_dir: str | Path, force: bool = False, files: tuple[str, ...] = PLAN_FILES,
                     what: str = "a plan") -> Path:
    """Refuse an unusable --output before any solving: a file, a plan without --force, no write access."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise PlannerError(f"{out} is not a directory", [Problem("--output", f"{out} is a file",
                                                                 f"give a directory path for {what}'s files")])
    if out.is_dir():
        clash = [n for n in files if (out / n).exists()]
        if clash and not force:
            raise PlannerError(f"{out} already holds {what}", [Problem(str(out), f"would overwrite {', '.join(clash)}",
                                                                       "pass --force or choose another --output")])
        nested = [p.name for p in out.iterdir() if p.is_dir()]
        if nested:
            raise PlannerError(f"{out} holds directories", [Problem(str(out), f"contains {', '.join(nested[:3])}",
                               f"write {what} into its own directory (it is replaced as a whole)")])
    parent = out.parent if out.parent.exists() else next((p for p in out.parents if p.exists()), Path("."))
    from .reports import check_writable

    check_writable(parent, out, "--output", "choose a directory you can write to")
    return out


def write_outputs(plan_: Plan, out_dir: str | Path, run: dict, force: bool = False) -> list[Path]:
    """One tidy CSV per concept + plan.json + run.json (see write_dir)."""
    from .reports import to_csv, to_json
    from .spreadsheet import workbook_bytes

    contents = {name: to_csv(df.to_dict("records"), list(df.columns)) for name, df in (
        ("chips.csv", plan_.chips), ("stages.csv", plan_.stages), ("units.csv", plan_.units),
        ("classes.csv", plan_.classes), ("class_costs.csv", plan_.class_costs), ("constraints.csv", plan_.constraints),
        ("systems.csv", plan_.systems if plan_.systems is not None else pd.DataFrame()))}
    costs = [{"capex_usd": plan_.cost["capex_usd"], "tco_usd_per_hour": plan_.cost["tco_usd_per_hour"],
              "usd_per_mtok": plan_.cost["usd_per_mtok"], "power_mw": plan_.power_mw,
              "throughput_tok_s": plan_.throughput_tok_s}]
    contents["costs.csv"] = to_csv(costs)
    contents["plan.xlsx"] = workbook_bytes({"chips": plan_.chips, "stages": plan_.stages, "units": plan_.units,
                                            "classes": plan_.classes, "class_costs": plan_.class_costs,
                                            "constraints": plan_.constraints,
                                            "systems": plan_.systems if plan_.systems is not None else pd.DataFrame(),
                                            "costs": pd.DataFrame(costs)})
    contents["plan.json"] = to_json(plan_.to_dict())
    contents["run.json"] = json.dumps(run, indent=2, sort_keys=True) + "\n"
    return write_dir(out_dir, contents, PLAN_FILES, force)


def write_dir(out_dir: str | Path, contents: dict[str, str | bytes], files: tuple[str, ...], force: bool = False,
              what: str = "a plan") -> list[Path]:
    """`contents` (file name → text or bytes) written into a fresh directory that then replaces
    `out_dir` in one rename: a killed run leaves the old output or the new one, never a mix. Files of
    the user's in an existing `out_dir` (not among `files`) are carried over."""
    import shutil
    import tempfile

    from .reports import _umask, write_atomic

    out = check_output_dir(out_dir, force, files, what)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        raise PlannerError(f"cannot write {out}", [Problem(str(out), exc.strerror or str(exc),
                           "choose a directory you can write to")]) from None
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        if out.is_dir():
            for f in out.iterdir():
                if f.name not in files:
                    shutil.copy2(f, tmp / f.name)
        for name, data in contents.items():
            write_atomic(tmp / name, data)
        _swap_in(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise PlannerError(f"cannot write {out}", [Problem(str(out), exc.strerror or str(exc),
                           f"free space or choose another --output; the previous {what.split()[-1]} there is unchanged")]) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out / n for n in contents]


def _swap_in(new: Path, out: Path) -> None:
    """Make `new` be `out`: one atomic exchange where Linux offers it (renameat2), else two renames."""
    import shutil

    if not out.exists():
        os.rename(new, out)
        return
    if _exchange(new, out):
        shutil.rmtree(new)  # now holds the old plan
        return
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out, old)
    os.rename(new, out)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    return fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0
