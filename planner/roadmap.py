"""`fleet roadmap`: a multi-year plan — what to buy, keep and retire each period — at the lowest net
present value (formulations/roadmap.py states the MILP).

A case becomes a roadmap with [[periods]]: each period scales every class's demand, has its own
site power, capex budget, electricity price and supply caps. Chips can be bought from their
catalog `available_year`; every chip (owned or bought) is retired at `economics.service_life_years`
of age; capex is charged as straight-line depreciation over `economics.amortization_years`,
discounted at `economics.discount_rate`; running cost (energy × PUE + facility share) is paid by
the chips in service. Retiring is for good: a chip taken out of service does not come back.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import pandas as pd

from .candidates import GridOptions, build_candidates
from .domain import Case, OwnedChips, Period
from .errors import CaseError, InfeasibleError, PlannerError, Problem, SolverError, TimeLimitError
from .problem import FleetProblem, build_problem
from .purchasable import can_buy
from .units import HOURS_PER_YEAR, KW_PER_MW, USD_PER_MUSD

NPV_REL_TOL = 1e-6
"""The NPV recomputed from the plan in user units must match the solver's objective this closely."""


@dataclass(frozen=True)
class Cohort:
    """Chips that enter and leave service together: an owned stock, or one period's purchase of a chip."""

    chip: str
    lot: int  # chips per lot: one whole system (rack, board; 1 for chips bought singly)
    periods: tuple[int, ...]  # periods it may serve (before its service life ends)
    bought_in: int | None = None  # purchase period; None = owned
    owned_lots: int = 0
    age_years: float = 0.0  # at the first period (owned stocks)
    price_musd: float = 0.0
    depreciation_weight: float = 0.0  # discounted years of depreciation inside the horizon / depreciation years
    supply: int | None = None  # chips the purchase period may buy of it


@dataclass(frozen=True)
class RoadmapProblem:
    """Sets and parameters of one roadmap MILP (no Pyomo here)."""

    case: Case
    periods: tuple[Period, ...]
    problems: tuple[FleetProblem, ...]  # one single-period problem per period (demand, power, prices)
    usable: tuple[frozenset[str], ...]  # chips some cohort can supply in each period
    cohorts: tuple[Cohort, ...]
    capex_musd: tuple[float | None, ...]
    hours_weight: tuple[float, ...]  # discounted hours of each period
    discount: tuple[float, ...]  # (1 + r)^−(year − first year), for the report
    idle_owned: dict[str, int] = field(default_factory=dict)  # owned chips no candidate unit can use


def discounted_years(a: float, b: float, rate: float) -> float:
    """∫_a^b (1 + rate)^−s ds: years from a to b (years after the first period), discounted continuously."""
    if b <= a:
        return 0.0
    if rate == 0:
        return b - a
    k = math.log1p(rate)
    return (math.exp(-k * a) - math.exp(-k * b)) / k


def period_case(case: Case, t: Period) -> Case:
    """The single-period case of period t: demand × growth, the period's power, price and no
    purchases rules (the roadmap model owns stock, capex and supply)."""
    classes = tuple(replace(tc, demand_tok_s=tc.demand_tok_s * t.growth(tc.parent or tc.name)) for tc in case.classes)
    econ = case.economics if t.electricity_usd_per_kwh is None else replace(
        case.economics, electricity_usd_per_kwh=t.electricity_usd_per_kwh)
    cons = replace(case.constraints, power_mw=t.power_mw or case.constraints.power_mw, capex_usd=None, supply={},
                   fixed_cost_usd={})
    return replace(case, classes=classes, economics=econ, constraints=cons,
                   fleet=replace(case.fleet, owned=(), buy=None), periods=(),
                   # which chips a period may buy is the roadmap's cohorts' rule (can_buy per period), not the plan year's
                   options={**case.options, "year": t.year, "allow_unavailable": True})


def build_roadmap_problem(case: Case, units: pd.DataFrame) -> RoadmapProblem:
    """Case with [[periods]] + its candidate table → RoadmapProblem (cohorts, weights, budgets)."""
    if not case.periods:
        raise CaseError(f"{case.name}: no [[periods]]", [Problem(
            "periods", "a roadmap needs at least one [[periods]] table",
            "add [[periods]] year = 2027, demand_growth = 1.5 (one per year or phase), or use `fleet plan`")])
    periods, e = case.periods, case.economics
    y0 = periods[0].year
    horizon = periods[-1].year + periods[-1].years - y0
    rate, life, dep = e.discount_rate, e.service_life_years, e.amortization_years
    problems = tuple(build_problem(period_case(case, t), units, "tco") for t in periods)
    chips = problems[0].chips
    size = {c: case.chips[c].chips_per_system for c in chips}  # bought and retired in whole systems
    cohorts: list[Cohort] = []
    idle: dict[str, int] = {}
    for o in case.fleet.owned:
        if o.chip not in chips:
            idle[o.chip] = idle.get(o.chip, 0) + o.count
            continue
        alive = tuple(i for i, t in enumerate(periods) if o.age_years + (t.year - y0) < life)
        cohorts.append(Cohort(chip=o.chip, lot=size[o.chip], periods=alive, owned_lots=o.count // size[o.chip],
                              age_years=o.age_years))
    for c in chips:
        if not case.fleet.buyable(c):
            continue
        chip = case.chips[c]
        for i, t in enumerate(periods):
            if not can_buy(chip, t.year):
                continue
            a = t.year - y0
            supply = (t.supply if t.supply is not None else case.constraints.supply).get(c)
            cohorts.append(Cohort(
                chip=c, lot=size[c], periods=tuple(k for k in range(i, len(periods)) if periods[k].year - t.year < life),
                bought_in=i, price_musd=chip.price_usd / USD_PER_MUSD, supply=supply,
                depreciation_weight=discounted_years(a, min(a + dep, horizon), rate) / dep))
    usable = tuple(frozenset(co.chip for co in cohorts if i in co.periods) for i in range(len(periods)))
    return RoadmapProblem(
        case=case, periods=periods, problems=problems, usable=usable, cohorts=tuple(cohorts),
        capex_musd=tuple(None if t.capex_usd is None else t.capex_usd / USD_PER_MUSD for t in periods),
        hours_weight=tuple(HOURS_PER_YEAR * discounted_years(t.year - y0, t.year - y0 + t.years, rate) for t in periods),
        discount=tuple((1 + rate) ** -(t.year - y0) for t in periods), idle_owned=idle)


@dataclass
class Roadmap:
    """A solved roadmap: per period and chip what is bought, kept and retired, and what it costs."""

    problem: RoadmapProblem
    status: str
    npv_usd: float
    gap: float | None
    periods: pd.DataFrame  # one row per period
    chips: pd.DataFrame  # one row per period and chip type
    units: pd.DataFrame  # the units each period runs (period-tagged rows of the period plans)
    plans: list  # per period, its checked single-period Plan (planner/results.py)
    stats: dict
    timings_s: dict
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"status": self.status, "case": self.problem.case.name, "npv_usd": self.npv_usd, "gap": self.gap,
                "discount_rate": self.problem.case.economics.discount_rate,
                "service_life_years": self.problem.case.economics.service_life_years,
                "depreciation_years": self.problem.case.economics.amortization_years,
                "periods": self.periods.to_dict("records"), "chips": self.chips.to_dict("records"),
                "units": self.units.to_dict("records"), "milp": self.stats, "timings_s": self.timings_s,
                "warnings": self.warnings}


def solve_roadmap(r: RoadmapProblem, opts=None, user_limit_s: float | None = None) -> Roadmap:
    """Build and solve the roadmap MILP; infeasible targets are diagnosed period by period."""
    import pyomo.environ as pyo

    from formulations.roadmap import build_roadmap

    from .solve import STATUS, SolveOptions, _highs, _solver_name, _stats
    from .studies.runtime import raise_if_signalled

    opts = opts or SolveOptions()
    t0 = time.perf_counter()
    m = build_roadmap(r)
    build_s = time.perf_counter() - t0
    opt = _highs(opts)
    t1 = time.perf_counter()
    opt.set_instance(m)  # so update() below can hand HiGHS each change before its clock starts
    start = _relax_and_fix(m, opt, RELAX_AND_FIX_SHARE * opts.time_limit_s, pyo) if len(r.periods) > 1 else None
    opt.update()  # hand HiGHS the restored model now, so its clock gets what is really left
    opt.config.time_limit = max(opts.time_limit_s - (time.perf_counter() - t1), 0.1)
    opt.config.warmstart = start is not None
    res = opt.solve(m)
    raise_if_signalled()
    wall = time.perf_counter() - t1
    status = STATUS.get(res.termination_condition.name, "error")
    if status == "error":
        raise SolverError(f"HiGHS stopped: {res.termination_condition.name}", [])
    found = res.best_feasible_objective is not None and status in ("optimal", "time_limit")
    if not found:
        return None if status != "time_limit" else _no_plan_in_time(user_limit_s or opts.time_limit_s, wall)
    res.solution_loader.load_vars()
    bound = res.best_objective_bound
    objective = res.best_feasible_objective
    gap = abs(objective - bound) / max(abs(objective), 1e-9) if bound is not None and math.isfinite(bound) else None
    if status == "optimal" and gap is not None and gap > opts.mip_gap * 1.01:
        status = "feasible"
    stats = {**_stats(m), "solver": _solver_name()}
    timings = {"build_s": build_s, "solve_s": wall}
    if start is not None:
        timings["relax_and_fix_s"], stats["relax_and_fix_npv_usd"] = start[0], start[1] * USD_PER_MUSD
    out = _extract(r, m, pyo, status, objective * USD_PER_MUSD, gap, stats, timings)
    if status != "optimal":
        out.warnings.insert(0, f"not proven optimal: HiGHS stopped at the time limit with a gap of "
                            f"{gap:.1%} — raise --time-limit before acting on this roadmap" if gap is not None else
                            "not proven optimal: HiGHS stopped at the time limit — raise --time-limit")
    return out


RELAX_AND_FIX_SHARE = 0.5
"""At most this share of the time limit goes to the relax-and-fix start; the whole MIP gets the rest."""


def _relax_and_fix(m, opt, time_limit_s: float, pyo) -> tuple[float, float] | None:
    """A MIP start for the roadmap (relax-and-fix, as in multi-period lot sizing): period by period,
    the periods before are fixed at what their step chose, this period's counts are integer and the
    later periods' are relaxed. Each step is about as hard as one period alone; the whole MIP then
    starts from the result and proves it within the gap (the start never changes what is optimal).
    Measured on roadmap-100mw: 51 s → 11 s. Returns (seconds, NPV in M USD) or None when a step finds
    nothing (the MIP then runs from scratch)."""
    from .studies.runtime import raise_if_signalled

    t0 = time.perf_counter()
    groups = {t: [v for v in m.period[t].component_data_objects(pyo.Var) if v.is_integer() and not v.fixed]
              + [m.b[g, tt] for g, tt in m.P if tt == t] for t in m.T}
    domains = {id(v): v.domain for vs in groups.values() for v in vs}
    found = None
    try:
        for t in m.T:
            for tau, vs in groups.items():
                if tau >= t:
                    for v in vs:
                        v.domain = domains[id(v)] if tau == t else pyo.NonNegativeReals
            opt.update()  # Pyomo's model changes cost time HiGHS's clock does not see: count them here
            left = time_limit_s - (time.perf_counter() - t0)
            if left < 0.5:
                return None
            opt.config.time_limit = left / (len(groups) - t)  # share what is left between the steps to go
            res = opt.solve(m)
            raise_if_signalled()
            if res.best_feasible_objective is None:
                return None
            res.solution_loader.load_vars()
            for v in groups[t]:
                v.fix(round(v.value or 0))
            found = res.best_feasible_objective
    finally:
        for vs in groups.values():
            for v in vs:
                v.unfix()
                v.domain = domains[id(v)]
    return time.perf_counter() - t0, found


def _no_plan_in_time(limit_s: float, wall: float):
    raise TimeLimitError(f"time limit of {limit_s:g} s reached before any roadmap was found", [
        Problem("--time-limit", f"HiGHS found no feasible roadmap in {wall:.1f} s", "raise --time-limit or use --grid coarse")])


def _block_outcome(b):
    """One period's block values as a single-period Outcome, so results.extract and verify.check
    read and check it like any plan."""
    from .solve import Outcome, plan_values

    return Outcome(status="optimal", objective=None, bound=None, gap=None, wall_s=0.0, build_s=0.0, solver="",
                   **plan_values(b))


def _extract(r: RoadmapProblem, m, pyo, status, npv_usd, gap, stats, timings) -> Roadmap:
    from . import verify
    from .results import extract

    case, periods = r.case, r.periods
    plans = []
    for t, p in enumerate(r.problems):
        plan = extract(p, _block_outcome(m.period[t]))
        verify.check(plan)
        plans.append(plan)
    buys = {g: int(round(m.b[g, t].value or 0)) * r.cohorts[g].lot for g, t in m.P}
    n = {(c, t): int(round(m.period[t].n[c].value or 0)) for t in m.T for c in r.problems[t].chips}
    kept = oldest_first(r, n, buys)
    chip_rows, period_rows = [], []
    for t, (per, p, plan) in enumerate(zip(periods, r.problems, plans)):
        plan_chips = plan.chips.set_index("chip")  # chips and chips_in_use of this period's plan, by type
        totals = {"bought": 0, "retired": 0, "in_service": 0, "in_use": 0, "capex_usd": 0.0, "depreciation_usd_per_year": 0.0,
                   "npv_depreciation_usd": 0.0}
        for c in sorted({co.chip for co in r.cohorts} | set(r.idle_owned)):
            row = _chip_row(r, t, c, kept, buys, int(plan_chips["chips_in_use"].get(c, 0)))
            chips_in_plan = int(plan_chips["chips"].get(c, 0))
            if chips_in_plan != row["in_service"]:
                raise SolverError(f"roadmap bookkeeping: period {per.year:g} has {chips_in_plan} {c} in its plan "
                                  f"but {row['in_service']} in its cohorts", [])
            if any(row[x] for x in ("bought", "in_service", "retired", "depreciation_usd_per_year")):
                chip_rows.append(row)
                for key in totals:
                    totals[key] += row[key]
        running_usd_per_hour = _running_usd_per_hour(plan, p)
        demand = sum(tc.peak_demand_tok_s for tc in p.case.classes)
        served_mtok_year = float(plan.classes["served_tok_s"].sum()) * 3600 * HOURS_PER_YEAR / 1e6  # delivered (day's mean)
        cost_year = running_usd_per_hour * HOURS_PER_YEAR + totals["depreciation_usd_per_year"]
        period_rows.append({
            "year": per.year, "years": per.years, "demand_tok_s": demand, "capacity_tok_s": float(plan.classes["capacity_tok_s"].sum()),
            "chips_in_service": totals["in_service"], "chips_in_use": totals["in_use"], "chips_bought": totals["bought"], "chips_retired": totals["retired"],
            "power_mw": plan.power_mw, "power_budget_mw": p.power_kw_budget / KW_PER_MW if p.power_kw_budget else None,
            "capex_usd": totals["capex_usd"], "capex_budget_usd": per.capex_usd,
            "running_usd_per_year": running_usd_per_hour * HOURS_PER_YEAR,
            "depreciation_usd_per_year": totals["depreciation_usd_per_year"], "cost_usd_per_year": cost_year,
            "usd_per_mtok": cost_year / served_mtok_year if served_mtok_year else None,
            "discount_factor": r.discount[t],
            "npv_usd": running_usd_per_hour * r.hours_weight[t] + totals["npv_depreciation_usd"]})
    check = _npv_of(r, period_rows, buys)
    shares = sum(row["npv_usd"] for row in period_rows)
    if abs(shares - npv_usd) > NPV_REL_TOL * max(abs(npv_usd), 1.0) + 1.0:
        raise SolverError(f"roadmap NPV re-check: the periods' shares sum to {shares:,.2f} USD, HiGHS says {npv_usd:,.2f}", [])
    if abs(check - npv_usd) > NPV_REL_TOL * max(abs(npv_usd), 1.0) + 1.0:
        raise SolverError(f"roadmap NPV re-check: {check:,.2f} USD recomputed vs {npv_usd:,.2f} USD from HiGHS", [])
    units = pd.concat([plan.units.assign(year=per.year) for per, plan in zip(periods, plans)], ignore_index=True)
    units = units[["year"] + [c for c in units.columns if c != "year"]]
    warnings = sorted({w for plan in plans for w in plan.warnings})
    life = case.economics.service_life_years
    for t, per in enumerate(periods):  # service life is checked at each period's start
        old = [co for g, co in enumerate(r.cohorts) if kept.get((g, t), 0) and cohort_age(r, g, t) + per.years > life + 1]
        if old:
            warnings.append(f"period {per.year:g} lasts {per.years:g} years: {', '.join(sorted({co.chip for co in old}))} "
                            f"chips in service pass their {life:g}-year service life during it (it is checked at a "
                            "period's start); split the period into years")
    return Roadmap(problem=r, status=status, npv_usd=npv_usd, gap=gap, periods=pd.DataFrame(period_rows),
                   chips=pd.DataFrame(chip_rows), units=units, plans=plans, stats=stats, timings_s=timings,
                   warnings=warnings)


def _chip_row(r: RoadmapProblem, t: int, c: str, kept: dict, buys: dict, in_use: int) -> dict:
    """Chip type c in period t: bought, in service (owned and in use), retired (at end of life or
    before), capex paid and the depreciation of its purchases falling in the period (per year and
    discounted). kept: cohort chips in service per period (oldest_first); buys: chips bought per cohort."""
    case, periods = r.case, r.periods
    per, y0, dep_years = periods[t], periods[0].year, case.economics.amortization_years
    row = {"year": per.year, "chip": c, "bought": 0, "owned_in_service": 0, "in_service": 0, "in_use": in_use,
           "retired": r.idle_owned.get(c, 0) if t == 0 else 0, "retired_end_of_life": 0, "capex_usd": 0.0,
           "depreciation_usd_per_year": 0.0, "npv_depreciation_usd": 0.0}
    for g, co in enumerate(r.cohorts):
        if co.chip != c:
            continue
        now = kept.get((g, t), 0)
        if co.bought_in == t:
            bought = buys.get(g, 0)
            row["bought"] += bought
            row["capex_usd"] += bought * co.price_musd * USD_PER_MUSD
            row["retired"] += bought - now  # bought and not put into service (never optimal; shown if it happens)
        elif co.bought_in is None or co.bought_in < t:
            prev = co.owned_lots * co.lot if (t == 0 and co.bought_in is None) else kept.get((g, t - 1), 0)
            row["retired"] += prev - now
            if t not in co.periods:
                row["retired_end_of_life"] += prev - now
        row["in_service"] += now
        if co.bought_in is None:
            row["owned_in_service"] += now
        else:  # straight-line depreciation of purchases on the books in this period (sunk once bought)
            value_per_year = buys.get(g, 0) * co.price_musd * USD_PER_MUSD / dep_years
            start = periods[co.bought_in].year
            a, b = max(per.year, start), min(per.year + per.years, start + dep_years)
            row["depreciation_usd_per_year"] += value_per_year * max(0.0, b - a) / per.years
            row["npv_depreciation_usd"] += value_per_year * discounted_years(a - y0, b - y0, case.economics.discount_rate)
    row["power_mw"] = row["in_service"] * case.chips[c].power_kw * case.economics.pue / KW_PER_MW
    return row


def cohort_age(r: RoadmapProblem, g: int, t: int) -> float:
    """Age in years of cohort g's chips at the start of period t (owned: their age_years at the first period)."""
    co, year = r.cohorts[g], r.periods[t].year
    return co.age_years + year - r.periods[0].year if co.bought_in is None else year - r.periods[co.bought_in].year


def oldest_first(r: RoadmapProblem, n: dict, buys: dict) -> dict[tuple[int, int], int]:
    """Chips of each cohort in service per period, when the chips in service n[c,t] are the youngest
    of those alive (the oldest retire first: chips of one type are identical, so this is optimal and
    is what formulations/roadmap.py's stock rows assume). buys: cohort → chips bought."""
    kept: dict[tuple[int, int], int] = {}
    for c in sorted({co.chip for co in r.cohorts}):
        mine = [g for g, co in enumerate(r.cohorts) if co.chip == c]
        prev = {g: r.cohorts[g].owned_lots * r.cohorts[g].lot for g in mine if r.cohorts[g].bought_in is None}
        for t, per in enumerate(r.periods):
            avail = {g: prev.get(g, 0) for g in mine if t in r.cohorts[g].periods and r.cohorts[g].bought_in != t}
            avail.update({g: buys.get(g, 0) for g in mine if r.cohorts[g].bought_in == t})

            need = n.get((c, t), 0)
            for g in sorted(avail, key=lambda g: cohort_age(r, g, t)):
                kept[g, t] = min(avail[g], need)
                need -= kept[g, t]
            if need:
                raise SolverError(f"roadmap bookkeeping: period {per.year:g} serves {n[c, t]} {c} but only "
                                  f"{n[c, t] - need} are owned or bought and within their service life", [])
            prev = {g: kept.get((g, t), 0) for g in mine}
    return kept


def _running_usd_per_hour(plan, p: FleetProblem) -> float:
    """What a period's chips in service cost per hour beyond their price: the plan's TCO less its
    amortised capex (a period plan treats every chip as bought: the roadmap prices purchases itself)."""
    capex = sum(p.chip_capex_usd_per_hour[c] * n for c, n in plan.outcome.n.items())
    return float(plan.chips["tco_usd_per_hour"].sum()) - capex


def _npv_of(r: RoadmapProblem, period_rows: list[dict], buys: dict) -> float:
    """The NPV recomputed from the extracted plan: each period's running cost on its discounted hours,
    each purchase's price on its discounted depreciation years."""
    running = sum(w * row["running_usd_per_year"] / HOURS_PER_YEAR for w, row in zip(r.hours_weight, period_rows))
    capex = sum(co.depreciation_weight * co.price_musd * USD_PER_MUSD * buys.get(g, 0)
                for g, co in enumerate(r.cohorts) if co.bought_in is not None)
    return running + capex


def diagnose(r: RoadmapProblem, units, opts, grid) -> list[Problem]:
    """Why no roadmap exists: each period planned alone, with the owned stock still in service then
    and what it may buy (chips available by its year, its capex budget and supply caps). A period
    infeasible alone is named with its own diagnosis."""
    from .planning import plan_case

    case, periods = r.case, r.periods
    out: list[Problem] = []
    y0 = periods[0].year
    for i, t in enumerate(periods):
        pc = period_case(case, t)
        keep = [tc for tc in pc.classes if tc.demand_tok_s > 0]
        owned = tuple(OwnedChips(o.chip, o.count, o.age_years + t.year - y0) for o in case.fleet.owned
                      if o.age_years + t.year - y0 < case.economics.service_life_years)
        buy = tuple(c for c in case.fleet.chips if case.fleet.buyable(c) and can_buy(case.chips[c], t.year))
        supply = t.supply if t.supply is not None else case.constraints.supply
        alone = replace(pc, classes=tuple(keep), constraints=replace(pc.constraints, capex_usd=t.capex_usd, supply=dict(supply)),
                        fleet=replace(case.fleet, owned=owned, buy=buy))
        names = {tc.name for tc in keep}
        if not buy and not owned and keep:
            out.append(Problem(f"periods.{i}.year", f"no chip can be bought by {t.year:g} and no owned chip is in "
                               "service then (each chip's catalog available_year: `fleet catalog show ID`)",
                               "start the period later, allow chips available by then, or --set chips.ID.available_year=…"))
            continue
        try:
            plan_case(alone, "tco", opts, grid, units=units[units["class"].isin(names)].reset_index(drop=True))
        except InfeasibleError as exc:
            out += [Problem(f"periods.{i} ({t.year:g}): {_period_field(p.where, i)}", p.what, p.fix) for p in exc.problems]
    if not out:
        out.append(Problem("periods", "each period can be served on its own, but not in sequence: a chip retired "
                           "does not come back and owned chips age out at economics.service_life_years",
                           "raise an earlier period's capex_usd or power_mw, or a later period's"))
    return out


def _period_field(where: str, i: int) -> str:
    """A single-period diagnosis names constraints.*; in a roadmap the period's own field is the one to change."""
    for field_, own in (("constraints.power_mw", "power_mw"), ("constraints.capex_usd", "capex_usd"),
                        ("constraints.supply.", "supply.")):
        if field_ in where:
            return where.replace(field_, f"periods.{i}.{own}")
    return where


def roadmap_case(case: Case, opts=None, grid: GridOptions | None = None, units=None) -> Roadmap:
    """Plan a loaded case with [[periods]]; raises InfeasibleError with a per-period diagnosis."""
    from .solve import SolveOptions

    from .studies.runtime import sigterm_raises

    opts = opts or SolveOptions()
    deadline = time.monotonic() + opts.time_limit_s
    with sigterm_raises():  # a signal HiGHS swallows is still honoured (raise_if_signalled after each solve)
        return _roadmap_case(case, opts, grid, units, deadline)


def _roadmap_case(case: Case, opts, grid, units, deadline: float) -> Roadmap:
    t = time.perf_counter()
    units = build_candidates(case, grid, deadline=deadline) if units is None else units
    cand_s = time.perf_counter() - t
    r = build_roadmap_problem(case, units)
    left = deadline - time.monotonic()
    if left <= 0.05:
        raise TimeLimitError(f"time limit of {opts.time_limit_s:g} s reached while building candidates", [
            Problem("--time-limit", f"{opts.time_limit_s:g} s is used up before HiGHS could run", "raise --time-limit")])
    result = solve_roadmap(r, replace(opts, time_limit_s=left), user_limit_s=opts.time_limit_s)
    if result is None:
        left = max(deadline - time.monotonic(), 1.0)
        raise InfeasibleError("no roadmap meets every period's targets", diagnose(r, units, replace(opts, time_limit_s=left), grid))
    result.timings_s = {"candidates_s": cand_s, **result.timings_s}
    return result


def roadmap(case: str | None = None, sets=(), catalogs=(), time_limit_s: float = 60.0, mip_gap: float | None = None,
            grid: GridOptions | str | None = None) -> Roadmap:
    """The Python API behind `fleet roadmap` (case = path or shipped name)."""
    from .cases import check_solve_args, load_case
    from .solve import DEFAULT_MIP_GAP, SolveOptions

    check_solve_args(time_limit_s, mip_gap, grid)
    t = time.perf_counter()
    c = load_case(case, sets, list(catalogs))
    if isinstance(grid, str):
        from .candidates import GRIDS

        grid = GRIDS[grid]
    load_s = time.perf_counter() - t
    opts = SolveOptions(time_limit_s=max(time_limit_s - load_s, 0.1), mip_gap=DEFAULT_MIP_GAP if mip_gap is None else mip_gap)
    from . import candidate_cache

    t = time.perf_counter()
    units = candidate_cache.build(c, grid, deadline=time.monotonic() + opts.time_limit_s)  # as `fleet plan` reads them
    cand_s = time.perf_counter() - t
    out = roadmap_case(c, replace(opts, time_limit_s=max(opts.time_limit_s - cand_s, 0.1)), grid, units)
    out.timings_s = {"load_s": load_s, **out.timings_s, "candidates_s": cand_s}
    return out


__all__ = ["Roadmap", "RoadmapProblem", "Cohort", "build_roadmap_problem", "solve_roadmap", "roadmap_case", "roadmap",
           "period_case", "discounted_years", "PlannerError"]
