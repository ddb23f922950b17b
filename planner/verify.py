"""The independent re-check: every constraint family of an extracted plan, recomputed before it is reported.

HiGHS works to relative tolerances (~1e-6 to 1e-9); badly scaled inputs can make it drop rows and
call an empty fleet optimal; a tampered candidate table or a filter that drops a term gives a plan
that looks right. So the plan a user reads is re-checked here from its own tables (the frames
written as units.csv and chips.csv, read back by `read_tables`) and the case alone — never from
the MILP's parameters (problem.py) or the candidate generator — one function per family:
demand, speed, TTFT, prefill capacity, shared-unit time, KV per unit (planner/recheck.py recomputes
those from the performance model at each unit's printed deployment), power, capex, supply, fleet
(owned chips, whole systems), systems (packing), hourly slices and spares. A wrong answer becomes
an error, never a success.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import recheck
from .errors import Problem, SolverError
from .units import KW_PER_MW

REL_TOL = 1e-4  # looser than the solver's own tolerances: only a real violation trips it


@dataclass
class Tables:
    """What the re-check reads: a plan's written tables and totals, nothing of the MILP."""

    units: pd.DataFrame
    chips: pd.DataFrame
    shares: pd.DataFrame | None = None
    spares: pd.DataFrame | None = None
    slices: pd.DataFrame | None = None
    power_mw: float = 0.0
    capex_usd: float = 0.0
    share: float = 1.0  # served share of demand (the throughput objective's α; else 1)
    availability: float | None = None
    spare_fraction: float = 0.0


def tables_of(plan) -> Tables:
    pr = plan.problem
    return Tables(units=plan.units, chips=plan.chips, shares=plan.shares, spares=plan.spares, slices=plan.slices,
                  power_mw=plan.power_mw, capex_usd=plan.cost["capex_usd"],
                  share=plan.outcome.alpha if pr.objective == "throughput" else 1.0,
                  availability=pr.availability, spare_fraction=pr.spare_fraction)


def read_tables(out_dir: str | Path) -> Tables:
    """The tables of a plan directory written by `fleet plan --output` (units.csv, chips.csv, plan.json)."""
    d = Path(out_dir)
    plan = json.loads((d / "plan.json").read_text())
    units = pd.read_csv(d / "units.csv", keep_default_na=False, na_values=[""], dtype={"draft_chip": str})
    units["draft_chip"] = units["draft_chip"].fillna("").astype(str)
    frame = lambda key: pd.DataFrame(plan[key]) if plan.get(key) else None  # noqa: E731
    return Tables(units=units, chips=pd.read_csv(d / "chips.csv"), shares=frame("shares"), spares=frame("spares"),
                  slices=frame("slices"), power_mw=float(plan["power_mw"]), capex_usd=float(plan["cost"]["capex_usd"]),
                  share=float(plan["objective"]) if plan.get("objective_kind") == "throughput" else 1.0)


def violations(plan) -> list[Problem]:
    """Every constraint the plan breaks, in user units (empty when it keeps them all)."""
    return recheck_tables(plan.problem.case, tables_of(plan))


def recheck_tables(case, t: Tables) -> list[Problem]:
    """Every family's check on one plan's tables."""
    out: list[Problem] = []
    for family in FAMILIES.values():
        out += family(case, t)
    return out


def demand_violations(case, t: Tables) -> list[Problem]:
    """Σ output tok/s of the units serving each class ≥ its (peak) demand × the served share."""
    from .results import serving_units

    out = []
    for tc in case.classes:
        mine = serving_units(t.units, t.shares, tc.name)
        capacity = float(mine.loc[mine["kind"] != "prefill", "throughput_tok_s"].sum()) if len(mine) else 0.0
        need = t.share * tc.peak_demand_tok_s  # a daily profile buys for its peak hour
        if capacity < need * (1 - REL_TOL):
            out.append(Problem(f"classes.{tc.name}.demand_tok_s", f"the solver's plan serves {capacity:,.6g} of "
                               f"{need:,.6g} tok/s"))
    return out


def power_violations(case, t: Tables) -> list[Problem]:
    """Each chip's site power (chips × all-in kW × PUE) as printed, and the total inside the budget."""
    out, total = [], 0.0
    for r in t.chips.itertuples():
        mw = int(r.chips) * case.chips[r.chip].power_kw * case.economics.pue / KW_PER_MW
        total += mw
        if abs(float(r.power_mw) - mw) > REL_TOL * max(mw, 1e-9):
            out.append(Problem(f"chips.{r.chip}.power_mw", f"printed {float(r.power_mw):,.6g} MW; "
                               f"{int(r.chips):,} chips draw {mw:,.6g} MW"))
    if abs(t.power_mw - total) > REL_TOL * max(total, 1e-9):
        out.append(Problem("power_mw", f"printed {t.power_mw:,.6g} MW; the chips draw {total:,.6g} MW"))
    cap = case.constraints.power_mw
    if cap and total > cap * (1 + REL_TOL):
        out.append(Problem("constraints.power_mw", f"the plan draws {total:,.6g} MW"))
    return out


def capex_violations(case, t: Tables) -> list[Problem]:
    """Each chip's capex (chips bought new × price) as printed, and the total inside the budget."""
    out, total = [], 0.0
    for r in t.chips.itertuples():
        usd = int(r.bought) * case.chips[r.chip].price_usd
        total += usd
        if abs(float(r.capex_usd) - usd) > REL_TOL * max(usd, 1.0):
            out.append(Problem(f"chips.{r.chip}.capex_usd", f"printed {float(r.capex_usd):,.0f} USD; "
                               f"{int(r.bought):,} bought cost {usd:,.0f} USD"))
    if abs(t.capex_usd - total) > REL_TOL * max(total, 1.0):
        out.append(Problem("capex_usd", f"printed {t.capex_usd:,.0f} USD; the chips bought cost {total:,.0f} USD"))
    cap = case.constraints.capex_usd
    if cap and total > cap * (1 + REL_TOL):
        out.append(Problem("constraints.capex_usd", f"the plan costs {total:,.0f} USD"))
    return out


def unit_chip_counts(units: pd.DataFrame, with_spares: bool = True) -> dict[str, int]:
    """Chips each type the units hold (copies, and spare copies when asked): attention or only group,
    FFN group of an attention–FFN split, draft group."""
    need: dict[str, int] = {}
    for r in units.itertuples(index=False):
        k = int(r.copies) + (int(r.spares) if with_spares else 0)
        parts = [(r.attn_chip, int(r.n_attn))]
        if r.ffn_chip != r.attn_chip and int(r.n_ffn):
            parts.append((r.ffn_chip, int(r.n_ffn)))
        if r.draft_chip and int(r.n_draft):
            parts.append((r.draft_chip, int(r.n_draft)))
        for c, n in parts:
            need[c] = need.get(c, 0) + n * k
    return need


def supply_violations(case, t: Tables) -> list[Problem]:
    """Chips bought ≤ supply cap; the units' chips (recomputed from the units) ≤ chips in service."""
    out = []
    new = dict(zip(t.chips["chip"], t.chips["bought"]))
    service = dict(zip(t.chips["chip"], t.chips["chips"]))
    for chip, cap in case.constraints.supply.items():
        if new.get(chip, 0) > cap:
            out.append(Problem(f"constraints.supply.{chip}", f"the plan buys {new[chip]:,}"))
    in_use = unit_chip_counts(t.units, with_spares=False) if len(t.units) else {}
    printed = dict(zip(t.chips["chip"], t.chips["chips_in_use"]))
    for chip, n in (unit_chip_counts(t.units) if len(t.units) else {}).items():
        if n > service.get(chip, 0):
            out.append(Problem(f"chips.{chip}", f"the units use {n:,} chips but only {service.get(chip, 0):,} are in service"))
    for chip, n in in_use.items():
        if int(printed.get(chip, 0)) != n:
            out.append(Problem(f"chips.{chip}.chips_in_use", f"printed {int(printed.get(chip, 0)):,}; the units hold {n:,}"))
    return out


def fleet_violations(case, t: Tables) -> list[Problem]:
    """Owned chips kept + retired = owned; bought + kept = in service; only buyable chips bought;
    chips sold by the system bought and kept in whole systems."""
    out = []
    for r in t.chips.itertuples():
        owned = case.fleet.owned_count(r.chip)
        if r.owned_kept > owned or r.owned_kept + r.owned_retired != owned or r.bought + r.owned_kept != r.chips:
            out.append(Problem(f"fleet.owned.{r.chip}", f"{r.owned_kept:,} kept + {r.owned_retired:,} retired of "
                               f"{owned:,} owned, {r.bought:,} bought, {r.chips:,} in service do not add up"))
        if r.bought > 0 and not case.fleet.buyable(r.chip):
            out.append(Problem(f"fleet.chips.{r.chip}", f"the plan buys {r.bought:,} new but the chip is only owned"))
        size = case.chips[r.chip].chips_per_system
        if size > 1 and (r.bought % size or r.owned_kept % size):
            out.append(Problem(f"chips.{r.chip}", f"{r.bought:,} bought / {r.owned_kept:,} kept are not whole systems of {size}"))
    return out


def systems_violations(case, t: Tables) -> list[Problem]:
    return packing_violations(case, t.units, t.chips, t.spares)


def slices_violations(case, t: Tables) -> list[Problem]:
    """With a daily profile: each hour's running units serve that hour's demand."""
    out = []
    for r in (t.slices.itertuples(index=False) if t.slices is not None else []):
        if r.running_capacity_tok_s < r.demand_tok_s * (1 - REL_TOL):
            out.append(Problem(f"classes.{r[1]}.demand_profile.{r.hour}", f"the units running serve "
                               f"{r.running_capacity_tok_s:,.6g} of {r.demand_tok_s:,.6g} tok/s"))
    return out


def spares_violations(case, t: Tables) -> list[Problem]:
    """Each spare group covers its load with the availability asked, and holds the spare fraction."""
    out = []
    for r in (t.spares.itertuples() if t.spares is not None else []):
        if t.availability is not None and r.p_covered < t.availability * (1 - 1e-9):
            out.append(Problem("constraints.availability", f"group {r.group}: {r.working} working + {r.spares} "
                               f"spare cover the load with probability {r.p_covered:.6f}"))
        if r.spares < t.spare_fraction * r.working - 1e-9:
            out.append(Problem("constraints.spare_fraction", f"group {r.group}: {r.spares} spares for {r.working}"))
    return out


def _modelled(case) -> bool:
    """The performance model can re-derive the units: every class's model is in the case (hand-made
    test problems give units figures directly, with no model to recompute them from)."""
    return all(tc.model in case.models for tc in case.classes)


FAMILIES = {
    "demand": demand_violations,
    "speed": lambda case, t: recheck.speed_violations(case, t.units) if _modelled(case) else [],
    "ttft": lambda case, t: recheck.ttft_violations(case, t.units) if _modelled(case) else [],
    "prefill": lambda case, t: recheck.prefill_violations(case, t.units, t.shares, t.share) if _modelled(case) else [],
    "shared": lambda case, t: recheck.shared_time_violations(case, t.units, t.shares) if _modelled(case) else [],
    "kv": lambda case, t: recheck.kv_violations(case, t.units) if _modelled(case) else [],
    "power": power_violations,
    "capex": capex_violations,
    "supply": supply_violations,
    "fleet": fleet_violations,
    "systems": systems_violations,
    "slices": slices_violations,
    "spares": spares_violations,
}
"""One function per constraint family; `recheck_tables` runs them all."""


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
