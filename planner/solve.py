"""Build, solve with HiGHS (through Pyomo's appsi interface), and return one honest outcome record.

The only importer of `formulations`. Shadow prices come from the LP with the binary stage/type
decisions fixed at the optimum and the counts relaxed (DESIGN.md §4): the marginal value of a
budget for the fleet shape the MILP chose.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Literal

import pyomo.environ as pyo
from pyomo.contrib.appsi.solvers import Highs

from formulations.elastic import build_elastic, slack_amounts
from formulations.families import FAMILIES, Slack
from formulations.fleet import (add_assignment, add_capex, add_power, add_supply, build_model, set_objective,
                                 tco_usd_per_hour)

from .defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S
from .errors import SolverError
from .problem import FleetProblem
from .signals import raise_if_signalled
from .units import TOK_S_PER_KTOK_S

STATUS = {"optimal": "optimal", "maxTimeLimit": "time_limit", "infeasible": "infeasible",
          "infeasibleOrUnbounded": "infeasible", "unbounded": "unbounded"}


@dataclass
class SolveOptions:
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    mip_gap: float = DEFAULT_MIP_GAP
    threads: int = 1
    write_model: str | None = None


Status = Literal["optimal", "feasible", "time_limit", "infeasible"]
"""How a solve ended (an unbounded model or a solver error raises SolverError instead)."""


@dataclass(frozen=True)
class Outcome:
    """Why the solver stopped and what it found (values are None when nothing was found)."""

    status: Status
    objective: float | None
    bound: float | None
    gap: float | None
    wall_s: float
    build_s: float
    solver: str
    x: dict[int, int] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)
    y: dict[tuple[str, str], int] = field(default_factory=dict)
    alpha: float = 1.0
    duals: dict[str, float] = field(default_factory=dict)
    slacks: dict[str, float] = field(default_factory=dict)
    lp_slacks: dict[str, float] = field(default_factory=dict)  # the slacks of the LP the duals come from
    stats: dict[str, int] = field(default_factory=dict)
    served: dict[str, tuple[float, float]] = field(default_factory=dict)  # class → (aggregated, disaggregated) tok/s
    kept: dict[str, int] = field(default_factory=dict)  # owned chips kept in service, per chip type
    spares: dict[int, int] = field(default_factory=dict)  # spare copies per unit (chips not sold by system)
    spare_systems: dict[str, int] = field(default_factory=dict)  # spare whole systems per chip sold by system
    running: dict[tuple[int, int], float] = field(default_factory=dict)  # (unit, hour) → copies running (hour-average)
    shares: dict[tuple[int, str], float] = field(default_factory=dict)  # (shared unit, bucket) → tok/s it serves
    slice_shares: dict[tuple[int, str, int], float] = field(default_factory=dict)  # (shared unit, bucket, hour) → tok/s


def gap_exceeded(outcome: Outcome, mip_gap: float | None) -> bool:
    """The solver stopped (time limit) with a gap wider than the one asked for (1 % grace for HiGHS's own rounding)."""
    return outcome.gap is not None and mip_gap is not None and outcome.gap > mip_gap * 1.01


def _highs(opts: SolveOptions) -> Highs:
    opt = Highs()
    if not opt.available():
        raise SolverError("HiGHS is not available", [])
    opt.config.time_limit = opts.time_limit_s
    opt.config.mip_gap = opts.mip_gap
    opt.config.load_solution = False
    opt.config.stream_solver = False
    # The root reduced-cost heuristic spent ~55 % of the default case's solve in sub-MIPs without
    # improving the incumbent (measured: 2.9 s → 1.3 s, same optimum, 3 nodes); exactness is unaffected.
    opt.highs_options = {"threads": opts.threads, "random_seed": 0, "mip_rel_gap": opts.mip_gap,
                         "mip_heuristic_run_root_reduced_cost": False}
    return opt


def _stats(m) -> dict[str, int]:
    vars_ = list(m.component_data_objects(pyo.Var, active=True))
    return {"rows": sum(1 for _ in m.component_data_objects(pyo.Constraint, active=True)),
            "columns": len(vars_), "integers": sum(1 for v in vars_ if v.is_integer() or v.is_binary())}


def solve(p: FleetProblem, opts: SolveOptions | None = None, warm: Outcome | None = None, extra=None) -> Outcome:
    """Solve the fleet MILP; for the throughput objective, a second solve finds the cheapest fleet
    that reaches the best served share (lexicographic: throughput first, then TCO).

    `warm` is a previous outcome on the same candidate table (a neighbouring sweep point): its unit
    counts are handed to HiGHS as a MIP start, so the search begins from a good incumbent.
    `extra(m)` adds a caller's constraints to the built model (explain's "force this chip in")."""
    return FleetSolver(p, opts, extra).run(warm)


class FleetSolver:
    """One built MILP, solved once — or again and again with a different set of allowed units.

    A speed study's points differ only in which units meet the speed target: the model is built
    and handed to HiGHS once, each point sets the upper bound of the units it rules out to 0, and
    the previous point's plan is the MIP start when it is still feasible (studies run speeds from
    the highest down, so it always is)."""

    def __init__(self, p: FleetProblem, opts: SolveOptions | None = None, extra=None):
        self.p, self.opts = p, opts or SolveOptions()
        t0 = time.perf_counter()
        self.m = build_model(p)
        if extra is not None:
            extra(self.m)
        self.build_s = time.perf_counter() - t0
        if self.opts.write_model:
            self.m.write(self.opts.write_model, io_options={"symbolic_solver_labels": True})
        self.opt = _highs(self.opts)
        self._ub = {u: self.m.x[u].ub for u in self.m.U}
        self._runs = 0

    def allow(self, units: set[int] | None) -> None:
        """Only `units` may be bought (the others get upper bound 0); None = every unit."""
        for u in self.m.U:
            ub = self._ub[u] if units is None or u in units else 0
            if self.m.x[u].ub != ub:
                self.m.x[u].setub(ub)

    def retarget(self, p: FleetProblem) -> bool:
        """Pose `p` — another study point on the same candidate table — on the built model, when it
        differs from the model's problem only in what is changed here in place: the objective's
        coefficients (prices, power, economics), the power and capex budgets (right-hand sides and
        coefficients), supply caps and the units' bounds (with the assignment big-Ms derived from
        them). The rows are rebuilt by formulations/fleet.py's own functions from `p`, so the model is
        the one build_model(p) gives, up to row order. False, with nothing changed, when anything
        else differs (sets, demand, spares, fixed-cost switches, the throughput objective's two
        solves): the caller builds a new solver."""
        if p.objective == "throughput" or _shape(p) != _shape(self.p):
            return False
        m = self.m
        m.del_component(m.obj)
        set_objective(m, p)
        for name, add in (("power", add_power), ("capex", add_capex), ("supply", add_supply)):
            if m.component(name) is not None:
                m.del_component(name)
            add(m, p)
        if p.unit_max != self.p.unit_max:
            for u in m.U:
                m.x[u].setub(p.unit_max[u])
            self._ub = {u: p.unit_max[u] for u in m.U}
            if m.component("assign") is not None:
                m.del_component("assign")
                m.del_component("types_per_stage")
                add_assignment(m, p)
        self.p = p
        return True

    def run(self, warm: Outcome | None = None, start_from_last: bool = False,
            time_limit_s: float | None = None) -> Outcome:
        """Solve with the current allowed units. `start_from_last`: the last run's plan (still in the
        model's variables) is the MIP start — the caller guarantees it is still feasible."""
        p, m, opt, opts = self.p, self.m, self.opt, self.opts
        if self._runs and p.objective == "throughput":
            raise SolverError("a throughput model is solved once (its second, cost solve changes it)", [])
        self._runs += 1
        opt.config.time_limit = time_limit_s or opts.time_limit_s
        opt.config.warmstart = False
        if warm is not None and warm.x and set(warm.x) == set(p.unit_ids):
            _load_start(m, p, warm)
            opt.config.warmstart = True
        elif start_from_last and self._runs > 1:
            opt.config.warmstart = True
        t1 = time.perf_counter()
        res = opt.solve(m)
        raise_if_signalled()  # a Ctrl-C/SIGTERM HiGHS swallowed stops here, not as a false "error" or "infeasible"
        status = STATUS.get(res.termination_condition.name, "error")
        if status == "unbounded":
            raise SolverError("the model is unbounded: the throughput objective needs a power, capex or supply limit", [])
        if status == "error":
            raise SolverError(f"HiGHS stopped: {res.termination_condition.name}", [])
        found = res.best_feasible_objective is not None and status in ("optimal", "time_limit")
        if found:
            res.solution_loader.load_vars()
        if found and p.objective == "throughput":
            best_alpha = pyo.value(m.alpha)
            m.alpha.setlb(best_alpha * (1 - 1e-6))
            m.obj.deactivate()
            m.obj_cost = pyo.Objective(expr=tco_usd_per_hour(m, p))
            opt.config.time_limit = max(0.1, opt.config.time_limit - (time.perf_counter() - t1))  # one limit for both
            res2 = opt.solve(m)
            if res2.best_feasible_objective is not None:
                res2.solution_loader.load_vars()
        wall = time.perf_counter() - t1
        build_s = self.build_s if self._runs == 1 else 0.0
        if not found:
            best = res.best_objective_bound
            return Outcome(status="infeasible" if status != "time_limit" else "time_limit", objective=None,
                           bound=best if best is not None and math.isfinite(best) else None, gap=None, wall_s=wall,
                           build_s=build_s, solver=_solver_name(), stats=_stats(m))
        objective = res.best_feasible_objective
        bound = res.best_objective_bound
        gap = abs(objective - bound) / max(abs(objective), 1e-9) if bound is not None and math.isfinite(bound) else None
        if status == "optimal" and gap is not None and gap > opts.mip_gap * 1.01:
            status = "feasible"
        return Outcome(status=status, objective=objective, bound=bound, gap=gap, wall_s=wall, build_s=build_s,
                       solver=_solver_name(), stats=_stats(m), **plan_values(m), slacks=_slacks(m),
                       **dict(zip(("duals", "lp_slacks"), _shadow_prices(m, p, opt))))


def plan_values(m) -> dict:
    """The plan in a solved fleet model (or a roadmap's period block, which has the same components),
    as Outcome fields: counts rounded to whole copies, chips and systems; tok/s in user units."""
    x = {u: int(round(m.x[u].value or 0)) for u in m.U}
    out = {"x": x, "n": {c: int(round(m.n[c].value or 0)) for c in m.C},
           "y": {k: int(round(m.y[k].value or 0)) for k in m.SC}, "alpha": pyo.value(m.alpha),
           "served": {j: (pyo.value(m.served_agg[j]) * TOK_S_PER_KTOK_S, pyo.value(m.served_dis[j]) * TOK_S_PER_KTOK_S)
                      for j in m.J},
           "shares": {k: (m.share[k].value or 0.0) * TOK_S_PER_KTOK_S for k in m.S if x.get(k[0], 0) > 0}}
    if m.component("xr") is not None:  # hourly slices: copies running (hour-average), what shared units serve
        out["running"] = {(u, h): float(m.xr[u, h].value) for u in m.U for h in m.H if (m.xr[u, h].value or 0) > 1e-9}
        out["slice_shares"] = {(u, j, h): (m.shs[u, j, h].value or 0.0) * TOK_S_PER_KTOK_S for (u, j) in m.S
                               for h in m.H if x.get(u, 0) > 0}
    if m.component("s") is not None:
        out["spares"] = {u: int(round(m.s[u].value or 0)) for u in m.US}
    if m.component("sr") is not None:
        out["spare_systems"] = {c: int(round(m.sr[c].value or 0)) for c in m.RS}
    if m.component("k") is not None:
        out["kept"] = {c: int(round(m.k[c].value or 0)) for c in m.O}
    return out


IN_PLACE = frozenset({"case", "units", "chip_hourly_usd", "chip_capex_usd_per_hour", "chip_running_usd_per_hour",
                      "chip_price_usd", "chip_price_musd", "chip_power_kw", "chip_idle_kw", "chip_facility_usd_per_hour",
                      "pue", "power_kw_budget", "capex_usd_budget", "capex_musd_budget", "supply", "unit_max",
                      "fixed_cost_usd_per_hour"})
"""FleetProblem fields FleetSolver.retarget changes in place: objective coefficients (hourly costs, prices,
power, PUE), the budgets, supply caps and unit bounds. `case` and `units` only name what the other
fields hold (the model reads the unit table through unit_chips, unit_stages, throughputs)."""


def _shape(p: FleetProblem) -> tuple:
    """Everything of `p` the model is built from except what retarget changes in place — and of
    that, what decides which rows and columns exist (which budgets are set, which chips have a
    supply cap or a fixed cost, which units are bounded)."""
    return (tuple(getattr(p, f.name) for f in fields(p) if f.name not in IN_PLACE),
            p.power_kw_budget is None, p.capex_usd_budget is None, tuple(sorted(p.supply)),
            tuple(p.unit_max[u] is None for u in p.unit_ids),
            tuple(sorted(c for c, v in p.fixed_cost_usd_per_hour.items() if v)))


def _load_start(m, p: FleetProblem, warm: Outcome) -> None:
    """Previous counts as starting values, chip counts and systems made consistent with them."""
    for u, v in warm.x.items():
        ub = m.x[u].ub
        m.x[u].set_value(min(v, ub) if ub is not None else v, skip_validation=True)
    needs = {c: 0 for c in m.C}
    for u, counts in p.unit_chips.items():
        for c, cnt in counts.items():
            needs[c] += cnt * (m.x[u].value or 0)
    for c, need in needs.items():
        if c in p.system_size:
            systems = -(-int(need) // p.system_size[c])
            m.r[c].set_value(systems, skip_validation=True)
            need = systems * p.system_size[c]
        m.n[c].set_value(int(need), skip_validation=True)
        if hasattr(m, "b"):
            keep = min(p.owned.get(c, 0), int(need))
            if c in p.system_size and c in p.owned:
                keep = keep // p.system_size[c] * p.system_size[c]
                m.rk[c].set_value(keep // p.system_size[c], skip_validation=True)
            if c in p.owned:
                m.k[c].set_value(keep, skip_validation=True)
            if not m.b[c].fixed:
                m.b[c].set_value(int(need) - keep, skip_validation=True)
    for k in m.SC:
        if not m.y[k].fixed:
            m.y[k].set_value(warm.y.get(k, 1), skip_validation=True)


def _reported(m):
    """(family, name, constraint data) of the reported families' rows (formulations/families.py),
    named as Pyomo names them — found through their components, not by walking (and naming) every
    row of the model."""
    for family in FAMILIES:
        comp = m.component(family.name)
        if comp is None or not comp.active:
            continue
        if not comp.is_indexed():
            yield family, family.name, comp
            continue
        for idx, con in comp.items():
            if con.active:
                yield family, con.name, con


def _slacks(m) -> dict[str, float]:
    out = {}
    for _, name, con in _reported(m):
        body = pyo.value(con.body)
        slack = min((pyo.value(con.upper) - body) if con.has_ub() else math.inf,
                    (body - pyo.value(con.lower)) if con.has_lb() else math.inf)
        out[name] = slack
    return out


BUDGET_DERIVED_BOUNDS = ("x", "w")
"""Integer columns whose upper bound is only what the budgets allow (problem.unit_max, rack_max): in
the LP behind the shadow prices they are unbounded, so the budget rows they follow from take the dual."""


def _shadow_prices(m, p: FleetProblem, opt: Highs) -> tuple[dict[str, float], dict[str, float]]:
    """Duals and slacks of the LP with binaries fixed and counts relaxed ({}, {} when it does not
    solve). Budget-derived bounds are lifted there — the columns' (x ≤ unit_max) and the big-M rows'
    whose binary is 1 (x ≤ M·y) — so a budget that decides the fleet carries its own price.

    Done on the HiGHS model appsi already holds (relax integrality, fix binary columns, re-run):
    changing Pyomo domains instead makes appsi rebuild every column (measured 1.1 s of the default
    case's 2.2 s solve)."""
    import highspy

    # appsi offers no public handle on its HiGHS model (Pyomo 6.x): these two attributes are the only
    # private ones this package reads, here alone; a Pyomo without them gives no shadow prices, not a crash
    h = getattr(opt, "_solver_model", None)
    var_col = getattr(opt, "_pyomo_var_to_solver_var_map", None)
    if h is None or var_col is None or not hasattr(opt, "_pyomo_con_to_solver_con_map"):
        return {}, {}
    rows = opt._pyomo_con_to_solver_con_map
    inf = highspy.kHighsInf
    cols, lower, upper = [], [], []
    for v in m.component_data_objects(pyo.Var, active=True):
        if id(v) not in var_col or not (v.is_binary() or v.is_integer()) or v.fixed:
            continue
        cols.append(var_col[id(v)])
        if v.is_binary():
            val = float(round(v.value or 0))
            lower.append(val)
            upper.append(val)
        else:
            lower.append(0.0 if v.lb is None else float(v.lb))
            derived = v.parent_component().local_name in BUDGET_DERIVED_BOUNDS and (v.ub or 0) > 0
            upper.append(inf if v.ub is None or derived else float(v.ub))
    if not cols:
        return {}, {}
    links = [rows[con] for comp, binary in getattr(m, "_big_m_links", ()) if comp.active
             for idx, con in comp.items() if con in rows and round(binary(idx).value or 0) == 1]
    n = len(cols)
    lp = h.getLp()  # what appsi holds, restored below so the model can be solved again
    integrality, col_lower, col_upper = lp.integrality_, lp.col_lower_, lp.col_upper_  # each access copies
    row_lower, row_upper = lp.row_lower_, lp.row_upper_
    kept_integrality = [integrality[c] for c in cols]
    kept_lower, kept_upper = [col_lower[c] for c in cols], [col_upper[c] for c in cols]
    h.changeColsIntegrality(n, cols, [highspy.HighsVarType.kContinuous] * n)
    h.changeColsBounds(n, cols, lower, upper)
    if links:
        h.changeRowsBounds(len(links), links, [row_lower[r] for r in links], [inf] * len(links))
    if p.objective == "throughput":  # marginal value in the first objective: served share of demand
        alpha = var_col[id(m.alpha)]
        h.changeColBounds(alpha, 0.0, inf)
        ncol = h.getNumCol()
        h.changeColsCost(ncol, list(range(ncol)), [0.0] * ncol)
        h.changeColCost(alpha, 1.0)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.setOptionValue("output_flag", False)
    h.run()
    duals, slacks = {}, {}
    if h.getModelStatus() == highspy.HighsModelStatus.kOptimal:
        sol = h.getSolution()
        for family, name, con in _reported(m):
            if family.has_dual and con in rows:
                r = rows[con]
                duals[name] = float(sol.row_dual[r])
                slacks[name] = min(row_upper[r] - sol.row_value[r], sol.row_value[r] - row_lower[r])
    h.changeColsIntegrality(n, cols, kept_integrality)
    h.changeColsBounds(n, cols, kept_lower, kept_upper)
    if links:
        h.changeRowsBounds(len(links), links, [row_lower[r] for r in links], [row_upper[r] for r in links])
    return duals, slacks


def solve_elastic(p: FleetProblem, opts: SolveOptions | None = None) -> list[Slack]:
    """Slack amounts of the elastic model, per relaxable family: which targets cannot be met and by
    how much ([] when even the elastic model finds no fleet)."""
    opts = opts or SolveOptions()
    m = build_elastic(p)
    opt = _highs(opts)
    res = opt.solve(m)
    raise_if_signalled()
    if res.best_feasible_objective is None:
        return []
    res.solution_loader.load_vars()
    return slack_amounts(m)


def _solver_name() -> str:
    try:
        import highspy

        h = highspy.Highs()
        return f"HiGHS {h.versionMajor()}.{h.versionMinor()}.{h.versionPatch()}"
    except Exception:  # version is informational only
        return "HiGHS"
