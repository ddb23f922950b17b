"""`fleet explain`: why the plan is what it is, each answer from the solver, not a rule of thumb.

- every chip in the plan: the stages it runs per class, and its share of the chips and of the TCO;
- every constraint that binds (or whose LP shadow price is positive): what loosening it is worth, in
  words; the integer chip-types-per-stage limit has no shadow price, so one re-solve with one more
  type allowed says what it costs;
- every allowed chip not in the plan: what forcing it in costs (the cheapest plan that runs at least
  one unit on it: a Pyomo constraint Σ x[u] ≥ 1 over the units using it), which stage it would take,
  and the price at which it enters by itself (`studies.breakeven` bisection between 1 % of its price
  and its price) — or, when not even 1 % brings it in, what keeps it out.

What-ifs are compared with the cheapest plan on the what-if grid, so grid effects cancel.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from formulations.families import family_of

from .defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S
from .diff import Side, limits_plan, read_plan_dir, shadow_price, solved_side
from .domain import STAGES, Case
from .errors import InfeasibleError, PlannerError, Problem, TimeLimitError
from . import purchasable
from .problem import unit_parts
from .solve import SolveOptions

WHAT_IF = ("cheapest plan that runs at least one unit on the chip (so buys at least one chip of it, "
           "or one whole system when it is sold by the system)")
LOW_PRICE_FRACTION = 0.01  # the bisection's low end: 1 % of the chip's price
BREAKEVEN_STEPS = 8  # both ends + six halvings: the price to ~1.6 % of the catalog price
BREAKEVEN_REL_TOL = 0.05
EXPLAIN_KEYS = ("case", "source", "objective", "grid", "plan_grid", "what_if", "plan", "reference", "chips_in_plan",
                "binding_constraints", "speed_targets", "chips_not_in_plan", "notes", "timings_s")


@dataclass
class Context:
    """The plan being explained and what the what-ifs need to re-solve its case."""

    side: Side
    case: Case
    case_ref: str  # case path or name, for studies.breakeven
    sets: tuple[str, ...]
    catalogs: tuple[str, ...]
    plan_grid: str  # the grid the explained plan was solved on
    grid: str  # the what-if grid
    opts: SolveOptions
    inputs_changed: bool = False
    units: object = None  # candidate table on the what-if grid, built once
    reference: dict | None = None  # the cheapest plan on the what-if grid (see `reference`)
    notes: list[str] = field(default_factory=list)
    solves: int = 0
    deadline: float | None = None  # time.monotonic() when --time-limit runs out for the whole command


def remaining(ctx: Context) -> SolveOptions:
    """The solve options for the next re-solve: what is left of the command's time limit."""
    if ctx.deadline is None:
        return ctx.opts
    left = ctx.deadline - time.monotonic()
    if left <= 0.05:
        raise TimeLimitError(f"time limit of {ctx.opts.time_limit_s:g} s reached after {ctx.solves} solves", [Problem(
            "--time-limit", "the what-ifs left could not be solved in time", "raise --time-limit")])
    return replace(ctx.opts, time_limit_s=min(ctx.opts.time_limit_s, left))


# ------------------------------------------------------------------------------------ loading
def load_context(target: str | None, sets=(), catalogs=(), grid: str = "fine", time_limit_s: float = DEFAULT_TIME_LIMIT_S,
                 mip_gap: float | None = None) -> Context:
    """A case (planned here, on `grid`) or a plan directory (plan.json as written; run.json names its case)."""
    deadline = time.monotonic() + time_limit_s  # --time-limit bounds the whole explain, every re-solve included
    opts = SolveOptions(time_limit_s=time_limit_s, mip_gap=DEFAULT_MIP_GAP if mip_gap is None else mip_gap)
    if target and Path(target).is_dir():
        return replace(_dir_context(Path(target), sets, catalogs, grid, opts), deadline=deadline)
    if target and not Path(target).exists() and ("/" in target or target.startswith(".")) and \
            not target.endswith(".toml"):
        raise PlannerError(f"no plan directory or case at {target}", [Problem(
            target, "no such directory", "give a case (name or .toml path) or a directory written by "
            "`fleet plan --output DIR`")])
    from .candidates import GRIDS, build_candidates
    from .cases import load_case
    from .planning import plan_case

    case = load_case(target, sets, list(catalogs))
    units = build_candidates(case, GRIDS[grid])
    plan = plan_case(case, "tco", opts, GRIDS[grid], units=units)
    return Context(side=solved_side(plan, f"case {target or 'default'}"), case=case, case_ref=case.source,
                   sets=tuple(sets), catalogs=tuple(catalogs), plan_grid=grid, grid=grid, opts=opts, units=units,
                   solves=1, deadline=deadline)


def _dir_context(d: Path, sets, catalogs, grid: str, opts: SolveOptions) -> Context:
    """A plan directory: the plan from plan.json, the case from run.json (re-read, to re-solve what-ifs)."""
    from .cases import load_case

    if sets or catalogs:
        raise PlannerError("--set and --catalog need a case, not a plan directory", [Problem(
            "--set" if sets else "--catalog", f"{d} is a solved plan; its inputs are in its run.json",
            "give the case instead (name or .toml path), or drop the option")])
    side = read_plan_dir(d)
    run = side.run
    fix = f"rewrite the plan with `fleet plan CASE --output {d} --force`"
    if not isinstance(run, dict):
        raise PlannerError(f"{d} has no run.json", [Problem(str(d / "run.json"), "missing", fix)])
    for key, kind in (("case", str), ("sets", list), ("catalogs", list)):
        if not isinstance(run.get(key), kind):
            raise PlannerError(f"{d / 'run.json'} does not name the plan's inputs", [Problem(
                f"{d / 'run.json'}: {key}", "missing" if key not in run else f"not a {kind.__name__}", fix)])
    options = run.get("options") if isinstance(run.get("options"), dict) else {}
    if options.get("objective", "tco") != "tco":
        raise PlannerError("fleet explain explains TCO plans", [Problem(
            f"{d / 'run.json'}: options.objective", f"the plan was solved for '{options['objective']}'",
            f"explain the case itself (`fleet explain {run['case']}`), which plans for TCO")])
    try:
        case = load_case(run["case"], run["sets"], run["catalogs"])
    except PlannerError as exc:
        exc.problems.append(Problem(f"{d / 'run.json'}: case", f"names {run['case']}", fix))
        raise
    ctx = Context(side=side, case=case, case_ref=run["case"], sets=tuple(run["sets"]), catalogs=tuple(run["catalogs"]),
                  plan_grid=str(options.get("grid", "fine")), grid=grid, opts=opts)
    from .planning import inputs_sha256

    if run.get("inputs_sha256") and run["inputs_sha256"] != inputs_sha256(run["case"], run["sets"], run["catalogs"]):
        raise PlannerError(f"the inputs of {d} changed since it was written", [Problem(
            f"{d / 'run.json'}: inputs_sha256", "the case, an overlay or a trace it reads is not what the plan was made from: "
            "what-ifs on the new inputs would be compared with the old plan",
            f"re-plan: fleet plan {run['case']} --output {d} --force (or explain the case itself)")])
    return ctx


# ------------------------------------------------------------------------------------ solving
def candidates(ctx: Context):
    """The what-if grid's candidate table, built once per explain."""
    if ctx.units is None:
        from .candidates import GRIDS, build_candidates

        ctx.units = build_candidates(ctx.case, GRIDS[ctx.grid])
    return ctx.units


def solve_case(ctx: Context, case: Case):
    """The cheapest (TCO) plan of `case` on the what-if grid."""
    from .candidates import GRIDS
    from .planning import plan_case

    opts = remaining(ctx)
    ctx.solves += 1
    return plan_case(case, "tco", opts, GRIDS[ctx.grid], units=candidates(ctx))


def reference(ctx: Context) -> dict:
    """What the what-ifs are compared with: the explained plan itself when it was solved on the
    what-if grid from the same inputs, else the cheapest plan re-solved on that grid."""
    if ctx.plan_grid == ctx.grid and not ctx.inputs_changed:
        p = ctx.side.plan
        return {"grid": ctx.grid, "solved": False, "tco_usd_per_hour": p["cost"]["tco_usd_per_hour"],
                "usd_per_mtok": p["cost"]["usd_per_mtok"], "chips": {c: int(n) for c, n in p["chips"].items() if n}}
    plan = solve_case(ctx, ctx.case)
    ctx.notes.append(f"the plan was solved on the {ctx.plan_grid} grid; the what-ifs are compared with the cheapest "
                     f"plan on the {ctx.grid} grid ({plan.cost['tco_usd_per_hour']:,.0f} USD/hour), so grid effects cancel")
    return {"grid": ctx.grid, "solved": True, "tco_usd_per_hour": plan.cost["tco_usd_per_hour"],
            "usd_per_mtok": plan.cost["usd_per_mtok"], "chips": {r.chip: int(r.chips) for r in plan.chips.itertuples()}}


def force_in(ctx: Context, chip: str):
    """The cheapest plan that runs at least one unit on `chip` (None when no candidate unit uses it).
    Raises InfeasibleError when the budgets cannot take such a unit."""
    import pyomo.environ as pyo

    from . import verify
    from .problem import build_problem
    from .results import extract
    from .solve import solve

    problem = build_problem(ctx.case, candidates(ctx), "tco")
    uses = [u for u, counts in problem.unit_chips.items() if chip in counts]
    if not uses:
        return None

    def require(m):
        m.require_chip = pyo.Constraint(expr=sum(m.x[u] for u in uses) >= 1, doc=f"at least one unit on {chip}")

    opts = remaining(ctx)
    ctx.solves += 1
    outcome = solve(problem, opts, extra=require)
    if not outcome.x:
        raise InfeasibleError(f"no plan runs a unit on {chip}", [Problem(
            f"chips.{chip}", f"forcing a unit on {chip} breaks a budget or the chip-types-per-stage limit ({outcome.status})")])
    plan = extract(problem, outcome)
    verify.check(plan)
    return plan


def price_to_enter(ctx: Context, chip: str) -> dict:
    """studies.breakeven on the chip's price, from 1 % of it to all of it, until the chip is bought."""
    from . import studies

    price = ctx.case.chips[chip].price_usd
    r = studies.breakeven(ctx.case_ref, vary=f"chips.{chip}.price_usd={price * LOW_PRICE_FRACTION}:{price}",
                          until=f"chips.{chip} > 0", rel_tol=BREAKEVEN_REL_TOL, sets=ctx.sets, catalogs=ctx.catalogs,
                          objective="tco", max_steps=BREAKEVEN_STEPS, time_limit_s=remaining(ctx).time_limit_s,
                          mip_gap=ctx.opts.mip_gap, grid=ctx.grid, deadline=ctx.deadline)
    ctx.solves += r["steps"]
    return r


# ------------------------------------------------------------------------------------ chips in the plan
def chip_roles(plan: dict) -> dict[str, dict[str, dict]]:
    """chip → class → {"chips": n, "stages": [...]}: what each chip does, from the plan's units."""
    roles: dict[str, dict[str, dict]] = {}
    for u in plan.get("units", []):
        for chip, n, stages in unit_parts(u["kind"], u["attn_chip"], u["n_attn"], u["ffn_chip"], u["n_ffn"],
                                          u.get("draft_chip", ""), u.get("n_draft", 0)):
            r = roles.setdefault(chip, {}).setdefault(str(u["class"]), {"chips": 0, "stages": []})
            r["chips"] += n * int(u["copies"])
            r["stages"] = [s for s in STAGES if s in r["stages"] or s in stages]
    return roles


def chips_in_plan(side: Side) -> list[dict]:
    """One line per bought chip: the stages it runs, its share of the chips and of the TCO."""
    plan = side.plan
    rows = [r for r in side.chips if int(r.get("chips", 0) or 0) > 0]
    total = sum(int(r["chips"]) for r in rows) or 1
    tco = plan["cost"].get("tco_usd_per_hour") or 0
    roles = chip_roles(plan)
    out = []
    for r in rows:
        c, n = r["chip"], int(r["chips"])
        share_tco = r.get("tco_usd_per_hour") / tco if isinstance(r.get("tco_usd_per_hour"), (int, float)) and tco else None
        by_class = roles.get(c, {})
        runs = "; ".join(f"{j} {'+'.join(v['stages'])} on {v['chips']:,}" for j, v in by_class.items())
        systems = f" ({int(r['systems'])} × {r['system_name']})" if r.get("systems") and r.get("system_name") else ""
        idle = n - int(r["chips_in_use"]) if isinstance(r.get("chips_in_use"), (int, float)) else 0
        text = (f"{c}: {n:,} chips{systems}, {n / total:.0%} of the chips"
                + (f", {share_tco:.0%} of the TCO" if share_tco is not None else "") + f" — runs {runs or '-'}"
                + (f"; {idle:,} bought only to complete whole systems" if idle > 0 else ""))
        out.append({"chip": c, "chips": n, "systems": int(r.get("systems", 0) or 0), "share_of_chips": n / total,
                    "share_of_tco": share_tco, "tco_usd_per_hour": r.get("tco_usd_per_hour"), "roles": by_class,
                    "text": text})
    return out


# ------------------------------------------------------------------------------------ constraints
def binding_constraints(ctx: Context) -> list[dict]:
    """Every constraint that binds, or limits the plan through a positive LP shadow price, in words."""
    rows = [r for r in ctx.side.plan["constraints"] if limits_plan(r)]
    types_rows = [r for r in rows if r["name"].startswith("types_per_stage")]
    types_saving = types_what_if(ctx) if types_rows else None
    return [{"name": r["name"], "binding": bool(r.get("binding")), "slack": r.get("slack"),
             "shadow_price": shadow_price(r), "lp_shadow_price": r.get("lp_shadow_price"), "unit": r.get("unit"),
             **({"what_if": types_saving} if r in types_rows else {}),
             "text": constraint_words(r, ctx.case, types_saving)} for r in rows]


def constraint_words(r: dict, case: Case, types_saving: dict | None = None) -> str:
    """One constraint's shadow price as a sentence (TCO objective: USD/hour)."""
    name, v = r["name"], shadow_price(r)
    if not r.get("binding") and r.get("lp_shadow_price") is not None:
        v = float(r["lp_shadow_price"])  # the plan leaves slack: the LP's price is what decides the fleet
    fam, inner = family_of(name)
    family = fam.name if fam else name.split("[")[0]
    cons = case.constraints
    if family == "types_per_stage":
        k = cons.max_chip_types_per_stage
        head = (f"{name} binds: {inner} already uses the {k} chip types constraints.max_chip_types_per_stage allows "
                "(an integer limit: no shadow price)")
        if not types_saving or types_saving.get("delta_tco_usd_per_hour") is None:
            return head + (f"; allowing {k + 1} makes the plan infeasible or was not solved"
                           if types_saving else "")
        d = -types_saving["delta_tco_usd_per_hour"]
        return head + (f"; allowing {k + 1} per stage would lower TCO by {d:,.0f} USD/hour (re-solved)" if d > 0.5
                       else f"; allowing {k + 1} per stage would not lower TCO (re-solved)")
    if v is None:
        return f"{name} binds (no shadow price: the LP with the stage choices fixed did not solve)"
    slack_note = ""
    if fam is not None and fam.budget and not r.get("binding"):
        used = fam.slack_words(r["slack"])
        slack_note = (f" (in the LP with its stage choices fixed; the whole-chip plan leaves {used} unused, so the "
                      "constraint itself has no shadow price)")
    if family == "power":
        return (f"constraints.power_mw ({cons.power_mw:,g} MW) binds: one more MW of site power would lower TCO by "
                f"{v:,.0f} USD/hour{slack_note}")
    if family == "capex":
        return (f"constraints.capex_usd ({cons.capex_usd:,.0f} USD) binds: one more million USD of capex would lower "
                f"TCO by {v:,.2f} USD/hour{slack_note}")
    if family == "supply":
        return (f"constraints.supply.{inner} ({cons.supply.get(inner, 0):,} chips) binds: one more {inner} would "
                f"lower TCO by {v:,.2f} USD/hour{slack_note}")
    if family == "throughput":
        return (f"classes.{inner}.demand_tok_s binds: 1,000 more output tok/s of {inner} would raise TCO by "
                f"{v:,.3g} USD/hour ({v / 3.6:,.3g} USD per million extra output tokens)")
    if family == "prefill":
        return (f"prefill for {inner} binds: 1,000 more input tok/s to prefill would raise TCO by {v:,.3g} USD/hour")
    return f"{name} binds: shadow price {v:,.4g} {r.get('unit', '')}".rstrip()


def types_what_if(ctx: Context) -> dict:
    """Re-solve with one more chip type per stage: what the integer limit costs."""
    k = ctx.case.constraints.max_chip_types_per_stage
    looser = replace(ctx.case, constraints=replace(ctx.case.constraints, max_chip_types_per_stage=k + 1))
    ref = ctx.reference
    try:
        plan = solve_case(ctx, looser)
    except TimeLimitError:
        ctx.notes.append("the chip-types-per-stage what-if was not solved: --time-limit ran out")
        return {"max_chip_types_per_stage": k + 1, "tco_usd_per_hour": None, "delta_tco_usd_per_hour": None,
                "status": "time_limit"}
    except InfeasibleError:
        return {"max_chip_types_per_stage": k + 1, "tco_usd_per_hour": None, "delta_tco_usd_per_hour": None}
    tco = plan.cost["tco_usd_per_hour"]
    return {"max_chip_types_per_stage": k + 1, "tco_usd_per_hour": tco,
            "delta_tco_usd_per_hour": tco - ref["tco_usd_per_hour"],
            "chips": {r.chip: int(r.chips) for r in plan.chips.itertuples()}}


def speed_targets(plan: dict) -> list[dict]:
    """Per class: the slowest unit against the speed target (a filter on the candidates, not an LP row)."""
    out = []
    for c in plan.get("classes", []):
        target, got = c.get("min_speed_tok_s_user"), c.get("achieved_speed_tok_s_user")
        if not target or got is None:
            continue
        head = got / target - 1
        out.append({"class": c["name"], "min_speed_tok_s_user": target, "achieved_speed_tok_s_user": got,
                    "headroom": head,
                    "text": f"classes.{c['name']}.min_speed_tok_s_user: the slowest unit serving {c['name']} runs at "
                            f"{got:,.0f} tok/s/user against the {target:,.0f} target ({head:.1%} headroom); the target "
                            "decides which units qualify, so it has no shadow price"})
    return out


# ------------------------------------------------------------------------------------ chips not in the plan
def chips_not_in_plan(ctx: Context) -> list[dict]:
    """Every allowed chip the plan does not buy, with what forcing it in costs and the price that brings it in."""
    bought = {c for c, n in ctx.side.plan["chips"].items() if n}
    return [absent_chip(ctx, c) for c in ctx.case.fleet.chips if c not in bought]


def absent_chip(ctx: Context, chip: str) -> dict:
    """One chip the plan leaves out: forced-in cost, the stage it takes, its break-even price or what keeps it out."""
    t0 = time.perf_counter()
    ref, price = ctx.reference, ctx.case.chips[chip].price_usd
    entry = {"chip": chip, "price_usd": price, "forced": None, "breakeven": None, "keeps_out": []}
    held = purchasable.held_back(ctx.case).get(chip)
    if held:  # the plan year cannot buy it: nothing to force or price
        entry["forced"] = {"status": "not_buyable"}
        entry["keeps_out"] = [f"it {held} (plan year {purchasable.year_text(purchasable.plan_year(ctx.case))})"]
        entry["text"] = (f"{chip}: not bought — it {held}; [options] allow_unavailable = true (or a later "
                         "[options] year) plans it as a what-if")
    elif ref["chips"].get(chip):
        entry["forced"] = {"status": "in_reference", "chips": ref["chips"][chip]}
        entry["breakeven"] = {"status": "already_in"}
        entry["text"] = (f"{chip}: not in this plan, but the cheapest plan on the {ctx.grid} grid buys "
                         f"{ref['chips'][chip]:,} — the grids disagree; rerun with --grid {ctx.plan_grid}")
    else:
        try:
            plan = force_in(ctx, chip)
        except TimeLimitError:
            plan, entry["forced"], entry["keeps_out"] = None, {"status": "time_limit"}, []
        except InfeasibleError as exc:
            plan, entry["forced"] = None, {"status": "infeasible"}
            entry["keeps_out"] = [p.what for p in exc.problems]
        if entry["forced"] == {"status": "time_limit"}:
            entry["text"] = f"{chip}: not explained — --time-limit ran out before its what-if was solved (raise it)"
            entry["wall_s"] = time.perf_counter() - t0
            return entry
        if plan is None and entry["forced"] is None:
            entry["forced"] = {"status": "no_unit"}
            entry["keeps_out"] = no_unit_reasons(ctx, chip)
        if plan is not None:
            entry["forced"] = forced_summary(plan, chip, ref)
            try:
                entry["breakeven"] = breakeven_summary(price_to_enter(ctx, chip), price)
            except TimeLimitError:
                entry["breakeven"] = {"status": "time_limit"}
            if entry["breakeven"]["status"] == "not_even_at_low":
                entry["keeps_out"] = low_price_reasons(ctx, chip, entry["forced"])
        entry["text"] = absent_text(ctx, entry)
    entry["wall_s"] = time.perf_counter() - t0
    return entry


def forced_summary(plan, chip: str, ref: dict) -> dict:
    """The forced-in plan against the reference: cost delta, the stages the chip takes, what it displaces."""
    tco, mtok = plan.cost["tco_usd_per_hour"], plan.cost["usd_per_mtok"]
    chips = {r.chip: int(r.chips) for r in plan.chips.itertuples()}
    st = plan.stages[plan.stages["chip"] == chip]
    stages = sorted({f"{r['class']}:{r['stage']}" for _, r in st.iterrows()})
    return {"status": "solved", "tco_usd_per_hour": tco, "usd_per_mtok": mtok,
            "delta_tco_usd_per_hour": tco - ref["tco_usd_per_hour"],
            "delta_usd_per_mtok": None if mtok is None or ref["usd_per_mtok"] is None else mtok - ref["usd_per_mtok"],
            "delta_pct": (tco - ref["tco_usd_per_hour"]) / ref["tco_usd_per_hour"] if ref["tco_usd_per_hour"] else None,
            "chips": chips.get(chip, 0), "stages": stages,
            "displaces": {c: chips.get(c, 0) - ref["chips"].get(c, 0) for c in sorted(set(chips) | set(ref["chips"]))
                          if c != chip and chips.get(c, 0) != ref["chips"].get(c, 0)}}


def breakeven_summary(r: dict, price: float) -> dict:
    """studies.breakeven's answer, named for a price search."""
    if r.get("found"):
        return {"status": "found", "price_usd": r["value"], "low_usd": r["low"], "high_usd": r["high"],
                "fraction_of_price": r["value"] / price, "steps": r["steps"],
                **({"stopped": r["stopped"]} if r.get("stopped") else {})}
    if r.get("holds_at_high"):
        return {"status": "already_in", "steps": r["steps"]}
    return {"status": "not_even_at_low", "low_usd": r["low"], "fraction_of_price": LOW_PRICE_FRACTION,
            "steps": r["steps"], "plan_at_low": r.get("plan_low", {}).get("status")}


def no_unit_reasons(ctx: Context, chip: str) -> list[str]:
    """Why no candidate unit uses the chip: precision, stage restrictions, or the speed it cannot reach."""
    from .candidates import GRIDS
    from .planning import _fastest

    c, out = ctx.case.chips[chip], []
    barred = [s for s in STAGES if chip not in ctx.case.fleet.allowed(s)]
    if barred:
        out.append(f"fleet.stages bars it from {', '.join(barred)}")
    alone = replace(ctx.case, fleet=replace(ctx.case.fleet, chips=(chip,)))
    for tc in ctx.case.classes:
        if not c.supports(tc.precision):
            out.append(f"{tc.name}: it does not run {tc.precision}")
            continue
        best, where = _fastest(alone, tc, GRIDS[ctx.grid])
        if best < tc.min_speed_tok_s_user:
            out.append(f"{tc.name}: at most {best:,.0f} tok/s/user ({where}) against the "
                       f"{tc.min_speed_tok_s_user:,.0f} target")
        else:
            out.append(f"{tc.name}: it reaches {best:,.0f} tok/s/user at batch 1, but no unit on it meets the "
                       f"target with its KV cache and TTFT ({tc.ttft_s:g} s)")
    return out


def low_price_reasons(ctx: Context, chip: str, forced: dict) -> list[str]:
    """What keeps a chip out even at 1 % of its price: its running cost, and the classes it cannot serve."""
    from .problem import hourly_cost_usd
    from .units import HOURS_PER_YEAR

    e, c = ctx.case.economics, ctx.case.chips[chip]
    capex_h = c.price_usd / (e.amortization_years * HOURS_PER_YEAR)
    running_h = hourly_cost_usd(ctx.case, chip) - capex_h
    n = forced["chips"]
    bound = forced["delta_tco_usd_per_hour"] - (1 - LOW_PRICE_FRACTION) * capex_h * n
    out = [f"its running cost (energy and site power: {running_h:,.3g} USD/hour per chip, {_usd(running_h * n)} USD/hour "
           f"for the {n:,} a forced unit needs) outweighs what it saves: at 1 % of its price the forced plan would "
           f"still cost up to {_usd(bound, '+')} USD/hour"]
    units = candidates(ctx)
    mine = units[(units["attn_chip"] == chip) | (units["ffn_chip"] == chip) | (units["draft_chip"] == chip)]
    for tc in ctx.case.classes:
        if not (mine["class"] == tc.name).any():
            out.append(f"no unit on it serves {tc.name} (speed {tc.min_speed_tok_s_user:,.0f} tok/s/user, "
                       f"TTFT {tc.ttft_s:g} s, memory)")
    return out


def absent_text(ctx: Context, e: dict) -> str:
    """One absent chip in a sentence or two."""
    chip, f, b = e["chip"], e["forced"], e["breakeven"]
    if f["status"] == "no_unit":
        return f"{chip}: cannot be forced in — no unit on it meets the targets ({'; '.join(e['keeps_out'])})"
    if f["status"] == "infeasible":
        return f"{chip}: cannot be forced in — {'; '.join(e['keeps_out'])}"
    gap = ctx.opts.mip_gap * ctx.reference["tco_usd_per_hour"]
    cost = (f"forcing it in costs {_usd(f['delta_tco_usd_per_hour'], '+')} USD/hour ({f['delta_pct']:+.1%}"
            + (f", {f['delta_usd_per_mtok']:+.4f} USD/Mtok" if f["delta_usd_per_mtok"] is not None else "") + ")"
            + (" — within the MIP gap: about as cheap" if abs(f["delta_tco_usd_per_hour"]) <= gap else ""))
    takes = f"it would take {', '.join(f['stages'])} on {f['chips']:,} chip{'s' if f['chips'] != 1 else ''}"
    shifts = ", ".join(f"{c} {d:+,}" for c, d in f["displaces"].items())
    text = f"{chip}: {cost}; {takes}" + (f" ({shifts})" if shifts else "")
    if b["status"] == "found":
        text += (f"; it enters by itself at about {_usd(b['price_usd'])} USD per chip "
                 f"({b['fraction_of_price']:.0%} of its {_usd(e['price_usd'])} USD: bought at {_usd(b['low_usd'])}, "
                 f"not at {_usd(b['high_usd'])}" + ("; search cut short by --time-limit" if b.get("stopped") else "") + ")")
    elif b["status"] == "already_in":
        text += f"; on the {ctx.grid} grid it enters at its catalog price already"
    elif b["status"] == "time_limit":
        text += "; its break-even price was not searched: --time-limit ran out"
    else:
        text += (f"; not even at 1 % of its price ({_usd(b['low_usd'])} USD): " + "; ".join(e["keeps_out"]))
    return text


def _usd(v: float, sign: str = "") -> str:
    """Money for a sentence: whole USD from 100 up, three significant figures below."""
    return f"{v:{sign},.0f}" if abs(v) >= 100 else f"{v:{sign}.3g}"


# ------------------------------------------------------------------------------------ the whole answer
def explain(target: str | None = None, sets=(), catalogs=(), grid: str = "fine", time_limit_s: float = DEFAULT_TIME_LIMIT_S,
            mip_gap: float | None = None) -> dict:
    """The Python API behind `fleet explain` (target = case name/path or a plan directory)."""
    t0 = time.perf_counter()
    ctx = load_context(target, sets, catalogs, grid, time_limit_s, mip_gap)
    ctx.reference = reference(ctx)
    p = ctx.side.plan
    out = {"case": p.get("case"), "source": ctx.side.label, "objective": "tco", "grid": ctx.grid,
           "plan_grid": ctx.plan_grid, "what_if": WHAT_IF,
           "plan": {"capex_usd": p["cost"]["capex_usd"], "tco_usd_per_hour": p["cost"]["tco_usd_per_hour"],
                    "usd_per_mtok": p["cost"]["usd_per_mtok"], "power_mw": p["power_mw"],
                    "throughput_tok_s": p["throughput_tok_s"], "chips": {c: int(n) for c, n in p["chips"].items() if n}},
           "reference": ctx.reference,
           "chips_in_plan": chips_in_plan(ctx.side),
           "binding_constraints": binding_constraints(ctx),
           "speed_targets": speed_targets(p),
           "chips_not_in_plan": chips_not_in_plan(ctx)}
    out["notes"] = ctx.notes
    out["timings_s"] = {"total_s": time.perf_counter() - t0, "solves": ctx.solves,
                        "per_chip_s": {e["chip"]: e["wall_s"] for e in out["chips_not_in_plan"]}}
    return out


def explain_text(r: dict) -> str:
    """The readable explanation."""
    p = r["plan"]
    mtok = f"{p['usd_per_mtok']:.4f}" if p["usd_per_mtok"] is not None else "-"
    lines = [f"fleet explain: case '{r['case']}' ({r['source']}), objective tco, what-ifs on the {r['grid']} grid",
             f"Plan: {p['tco_usd_per_hour']:,.0f} USD/hour TCO, {mtok} USD/Mtok, {p['capex_usd']:,.0f} USD capex, "
             f"{p['power_mw']:,.2f} MW, {p['throughput_tok_s']:,.0f} output tok/s", ""]
    lines += ["Why each chip is in the plan"] + [f"  {c['text']}" for c in r["chips_in_plan"]] + [""]
    lines += ["Binding constraints (shadow prices: the LP with the plan's stage choices fixed)"]
    lines += [f"  {c['text']}" for c in r["binding_constraints"]] or ["  (none)"]
    lines += [""] + ["Speed targets"] + [f"  {s['text']}" for s in r["speed_targets"]] + [""]
    lines += [f"Chips allowed but not in the plan (what-if: {r['what_if']})"]
    lines += [f"  {c['text']}" for c in r["chips_not_in_plan"]] or ["  (none: the plan buys every allowed chip)"]
    lines += [""] + [f"Note: {n}" for n in r["notes"]]
    t = r["timings_s"]
    lines.append(f"Took {t['total_s']:.1f} s ({t['solves']} solves on the {r['grid']} grid)")
    return "\n".join(lines)
