"""Check an extracted plan against the case's constraints before it is reported.

HiGHS works to relative tolerances (~1e-6 to 1e-9); badly scaled inputs can make it drop rows and
call an empty fleet optimal. The plan a user reads is recomputed from the chosen units in user
units and checked here, so a wrong answer becomes an error, never a success.
"""
from __future__ import annotations

from .errors import Problem, SolverError

REL_TOL = 1e-4  # looser than the solver's own tolerances: only a real violation trips it


def violations(plan) -> list[Problem]:
    """Every constraint the plan breaks, in user units (empty when it keeps them all)."""
    case, o = plan.problem.case, plan.outcome
    out: list[Problem] = []
    share = o.alpha if plan.problem.objective == "throughput" else 1.0
    units = plan.units
    from .results import serving_units

    for tc in case.classes:
        mine = serving_units(units, plan.shares, tc.name)
        serving = mine[mine["kind"] != "prefill"]
        capacity = float(serving["throughput_tok_s"].sum())
        need = share * tc.peak_demand_tok_s  # a daily profile buys for its peak hour
        if capacity < need * (1 - REL_TOL):
            out.append(Problem(f"classes.{tc.name}.demand_tok_s", f"the solver's plan serves {capacity:,.6g} of "
                               f"{need:,.6g} tok/s"))
        # speed and TTFT of the class's own units; a unit shared between length buckets met each
        # bucket's targets when it was generated (its row shows the slowest bucket's speed)
        mine = mine[mine["class"] == tc.name]
        serving = mine[mine["kind"] != "prefill"]
        slow = serving[serving["speed_tok_s_user"] < tc.min_speed_tok_s_user * (1 - REL_TOL)]
        if len(slow):
            out.append(Problem(f"classes.{tc.name}.min_speed_tok_s_user", f"a unit runs at "
                               f"{float(slow['speed_tok_s_user'].min()):,.4g} tok/s/user"))
        firsts = mine[mine["kind"] != "decode"]
        if len(firsts) and float(firsts["ttft_s"].max()) > tc.ttft_s * (1 + REL_TOL):
            out.append(Problem(f"classes.{tc.name}.ttft_s", f"a unit's TTFT is {float(firsts['ttft_s'].max()):.4g} s"))
    cons = case.constraints
    if cons.power_mw and plan.power_mw > cons.power_mw * (1 + REL_TOL):
        out.append(Problem("constraints.power_mw", f"the plan draws {plan.power_mw:,.6g} MW"))
    if cons.capex_usd and plan.cost["capex_usd"] > cons.capex_usd * (1 + REL_TOL):
        out.append(Problem("constraints.capex_usd", f"the plan costs {plan.cost['capex_usd']:,.0f} USD"))
    service = dict(zip(plan.chips["chip"], plan.chips["chips"]))
    new = dict(zip(plan.chips["chip"], plan.chips["bought"]))
    in_use = dict(zip(plan.chips["chip"], plan.chips["chips_in_use"]))
    for chip, cap in cons.supply.items():
        if new.get(chip, 0) > cap:
            out.append(Problem(f"constraints.supply.{chip}", f"the plan buys {new[chip]:,}"))
    for chip, n in in_use.items():
        if n > service.get(chip, 0):
            out.append(Problem(f"chips.{chip}", f"the units use {n:,} chips but only {service.get(chip, 0):,} are in service"))
    for r in plan.chips.itertuples():
        owned = case.fleet.owned_count(r.chip)
        if r.owned_kept > owned or r.owned_kept + r.owned_retired != owned or r.bought + r.owned_kept != r.chips:
            out.append(Problem(f"fleet.owned.{r.chip}", f"{r.owned_kept:,} kept + {r.owned_retired:,} retired of "
                               f"{owned:,} owned, {r.bought:,} bought, {r.chips:,} in service do not add up"))
        if r.bought > 0 and not case.fleet.buyable(r.chip):
            out.append(Problem(f"fleet.chips.{r.chip}", f"the plan buys {r.bought:,} new but the chip is only owned"))
        size = case.chips[r.chip].chips_per_system
        if size > 1 and (r.bought % size or r.owned_kept % size):
            out.append(Problem(f"chips.{r.chip}", f"{r.bought:,} bought / {r.owned_kept:,} kept are not whole systems of {size}"))
    out += packing_violations(case, plan.units, plan.chips, plan.spares)
    if plan.slices is not None:
        for r in plan.slices.itertuples():
            if r.running_capacity_tok_s < r.demand_tok_s * (1 - REL_TOL):
                out.append(Problem(f"classes.{r._2}.demand_profile.{r.hour}", f"the units running serve "
                                   f"{r.running_capacity_tok_s:,.6g} of {r.demand_tok_s:,.6g} tok/s"))
    if plan.spares is not None:
        pr = plan.problem
        for r in plan.spares.itertuples():
            if pr.availability is not None and r.p_covered < pr.availability * (1 - 1e-9):
                out.append(Problem("constraints.availability", f"group {r.group}: {r.working} working + {r.spares} "
                                   f"spare cover the load with probability {r.p_covered:.6f}"))
            if r.spares < pr.spare_fraction * r.working - 1e-9:
                out.append(Problem("constraints.spare_fraction", f"group {r.group}: {r.spares} spares for {r.working}"))
    return out


def packing_violations(case, units, chips, spares=None) -> list[Problem]:
    """Every chip's groups fit the systems bought: read from the units and chips tables alone (each
    copy and spare copy of a unit places each of its groups; a group wider than a system takes whole
    ones), placed by first-fit-decreasing, which is exact for the power-of-two sizes candidates use
    and an upper bound otherwise — so a failure there is only reported when even the chips count
    (Σ chips ≤ systems × size, wide groups whole) cannot hold them."""
    from . import packing

    out = []
    spare_systems = {}
    if spares is not None and len(spares):
        for r in spares.itertuples():
            if r.domain == "system":
                spare_systems[str(r.group).split(" ")[0]] = int(r.spares)
    groups = packing.group_rows(units)
    for r in chips.itertuples():
        size = case.chips[r.chip].chips_per_system
        mine = {}
        for c, _, g, k in groups:
            if c == r.chip:
                mine[g] = mine.get(g, 0) + k
        if size <= 1 or not mine:
            continue
        have = int(r.chips) // size - spare_systems.get(r.chip, 0)
        need = packing.systems_needed(mine, size)
        if need <= have:
            continue
        chain = packing.chain_levels([g for g in mine if g <= size], size) is not None
        wide = sum(packing.dedicated_systems(g, size) * k for g, k in mine.items() if g > size)
        chips_needed = sum(g * k for g, k in mine.items() if g <= size)
        if chain or wide + chips_needed / size > have:
            out.append(Problem(f"chips.{r.chip}", f"its units' groups ({', '.join(f'{k} × {g}' for g, k in sorted(mine.items()))}"
                               f" chips) need {need:,} systems of {size}; the plan has {have:,} working"))
    return out


def check(plan) -> None:
    """Raise SolverError when the solver's answer breaks a constraint it was given."""
    broken = violations(plan)
    if broken:
        raise SolverError(f"the solver reported '{plan.outcome.status}' but its plan breaks {len(broken)} constraint(s) "
                          "(numerical trouble: inputs too large or too small for the solver's tolerances)",
                          [Problem(p.where, p.what, "check this figure's units; rescale demand or budgets") for p in broken])
