"""Everything the MILP sees, in model units: the candidate table, sets and parameters.

Model units keep coefficients in ~1e-3…1e4 (STYLE.md §6): throughput in k tokens/s, cost in
USD/hour (capex objective in M USD), power in kW. Converted here, once; results convert back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from .purchasable import for_plan_year
from .defaults import OBJECTIVES
from . import packing
from .domain import Case, Objective, Stage
from .errors import CaseError, Problem
from .units import HOURS_PER_YEAR, KW_PER_MW, TOK_S_PER_KTOK_S, USD_PER_MUSD



@dataclass(frozen=True)
class FleetProblem:
    """Sets and parameters of one fleet MILP (no Pyomo here). Frozen: a variant (another case on the
    same units, as the speed chains pose) is `dataclasses.replace(problem, ...)`."""

    case: Case
    units: pd.DataFrame  # the candidate table, one row per unit
    objective: Objective
    chips: list[str]  # chip types appearing in some unit
    classes: list[str]
    demand_ktok_s: dict[str, float]
    isl_per_osl: dict[str, float]
    unit_chips: dict[int, dict[str, int]]  # unit -> {chip: count}
    unit_stages: dict[int, list[tuple[str, str]]]  # unit -> [(stage, chip)]
    unit_tput_ktok_s: dict[int, float]
    unit_prefill_ktok_s: dict[int, float]
    unit_max: dict[int, int | None]  # derived upper bound on copies of each unit (the big-M); None: unbounded
    chip_hourly_usd: dict[str, float]
    chip_power_kw: dict[str, float]
    chip_price_usd: dict[str, float]
    chip_price_musd: dict[str, float]  # the capex objective's and budget's unit
    system_size: dict[str, int]  # chips per whole system (rack, board, UltraServer), for chips bought S > 1 at a time
    power_kw_budget: float | None
    capex_usd_budget: float | None
    capex_musd_budget: float | None
    supply: dict[str, int]
    max_types_per_stage: int | None
    fixed_cost_usd_per_hour: dict[str, float]
    fixed_cost_bigm: dict[str, int]  # M_c of the fixed-cost switch: the supply cap, or Σ_u chips_{u,c}·unit_max_u
    pue: float
    chip_capex_usd_per_hour: dict[str, float] = field(default_factory=dict)  # amortised price (bought chips only)
    chip_running_usd_per_hour: dict[str, float] = field(default_factory=dict)  # energy × PUE + facility share
    owned: dict[str, int] = field(default_factory=dict)  # chips already owned, per type in C
    owned_idle: dict[str, int] = field(default_factory=dict)  # owned chips no candidate unit can use (retired)
    no_buy: set[str] = field(default_factory=set)  # chips used only from the owned stock
    spare_fraction: float = 0.0
    availability: float | None = None
    unit_spare_chips: dict[int, dict[str, int]] = field(default_factory=dict)  # unit → its chips not sold by system
    unit_down: dict[int, float] = field(default_factory=dict)  # P(a copy of u is down), over those chips
    unit_spare_steps: dict[int, list[int]] = field(default_factory=dict)  # thresholds N_t of k_u(N) (planner/spares.py)
    rack_down: dict[str, float] = field(default_factory=dict)  # P(a whole system of c is down)
    rack_max: dict[str, int] = field(default_factory=dict)  # bound on working systems of c
    slices: list[int] = field(default_factory=list)  # hours 0-23 when a profile or time-of-use price is given
    slice_demand_ktok_s: dict[tuple[str, int], float] = field(default_factory=dict)
    slice_price_usd_per_kwh: dict[int, float] = field(default_factory=dict)
    chip_idle_kw: dict[str, float] = field(default_factory=dict)
    chip_facility_usd_per_hour: dict[str, float] = field(default_factory=dict)
    spare_max: dict[int, int | None] = field(default_factory=dict)  # bound on working copies the spares step is written to
    rack_spare_steps: dict[str, list[int]] = field(default_factory=dict)
    by_class_kind: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    unit_groups: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    """unit → its groups (chip, chips the group packs as): one per part of its make-up (unit_parts)."""
    pack_levels: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    """chip → chain levels (s_i, slot chips per system) when its shared group sizes form a divisible chain."""
    pack_patterns: dict[str, list[dict[int, int]]] = field(default_factory=dict)
    """chip → maximal packing patterns of one system ({group chips: groups}), for other sizes."""
    packing_notes: list[str] = field(default_factory=list)
    """Where packing is conservative (sizes rounded up to a chain): said in the plan's warnings."""
    unit_serves: dict[int, dict[str, float]] = field(default_factory=dict)
    """Shared units (serving several length buckets): per copy, k tokens/s it serves of each bucket
    when it serves only that one (output tokens; input tokens for prefill units)."""

    def units_of(self, j: str, kind: str) -> list[int]:
        """Units of class j and kind (aggregated | decode | prefill); shared units are not among them."""
        return self.by_class_kind.get((j, kind), [])

    def shared_of(self, j: str, kind: str) -> list[int]:
        """Shared units of `kind` that may serve class (bucket) j."""
        return [u for u, sv in self.unit_serves.items() if j in sv and self.units.at[u, "kind"] == kind]

    def unit_demand_ktok_s(self, u: int) -> float:
        """The demand unit u could serve at most (its class's, or the sum over the buckets it shares)."""
        if u in self.unit_serves:
            return sum(self.demand_ktok_s[j] for j in self.unit_serves[u])
        return self.demand_ktok_s[self.units.at[u, "class"]]

    def elastic_unit_max(self, u: int) -> int:
        """The elastic model's big-M on copies of u: twice its demand (input tokens for prefill, at the
        largest ISL/OSL) over one copy's throughput — from demand alone, as budgets may be exceeded."""
        return int(2 * self.unit_demand_ktok_s(u) * max(self.isl_per_osl.values(), default=1)
                   / max(self.unit_tput_ktok_s[u] or self.unit_prefill_ktok_s[u], 1e-9)) + 1

    @property
    def unit_ids(self) -> list[int]:
        return list(self.units.index)


def hourly_cost_usd(case: Case, chip_id: str) -> float:
    """Amortised capex + energy (× PUE) + facility share, per chip-hour."""
    return capex_cost_usd(case, chip_id) + running_cost_usd(case, chip_id)


def capex_cost_usd(case: Case, chip_id: str) -> float:
    """The chip's price amortised per hour: what a bought chip pays and an owned one does not (sunk)."""
    return case.chips[chip_id].price_usd / (case.economics.amortization_years * HOURS_PER_YEAR)


def running_cost_usd(case: Case, chip_id: str) -> float:
    """Energy at full power (× PUE) + the facility's capex per MW, per chip-hour: what every chip in
    service pays, bought or owned. A retired chip pays neither."""
    e, c = case.economics, case.chips[chip_id]
    site_kw = c.power_kw * e.pue
    energy = site_kw * e.electricity_usd_per_kwh
    facility = site_kw / KW_PER_MW * e.facility_capex_usd_per_mw / (e.facility_amortization_years * HOURS_PER_YEAR)
    return energy + facility


def unit_parts(kind: str, attn_chip: str, n_attn: int, ffn_chip: str, n_ffn: int, draft_chip: str = "",
               n_draft: int = 0) -> list[tuple[str, int, tuple[Stage, ...]]]:
    """One copy of a unit as its groups of chips: (chip, chips, the stages that group runs), attention
    group first. The one definition of a unit's make-up: the MILP's chips and stage pairs, the plan's
    stages table, explain's chip roles and the report's chips per class all read it.

    A prefill unit is one group running prefill; an aggregated unit one group running every stage;
    a decode unit one group running attention and FFN, or (attention–FFN disaggregation) two. A
    speculative draft model's chips are one more group, running decode_draft (candidates give drafts
    to decode units only). A draft_chip that is not a non-empty string (NaN from a CSV) is no draft."""
    if kind == "prefill":
        parts = [(attn_chip, n_attn, ("prefill",))]
    elif kind == "aggregated":
        parts = [(attn_chip, n_attn, ("prefill", "decode_attention", "decode_ffn"))]
    elif ffn_chip == attn_chip or not n_ffn:
        parts = [(attn_chip, n_attn, ("decode_attention", "decode_ffn"))]
    else:
        parts = [(attn_chip, n_attn, ("decode_attention",)), (ffn_chip, n_ffn, ("decode_ffn",))]
    if isinstance(draft_chip, str) and draft_chip:
        parts.append((draft_chip, n_draft, ("decode_draft",)))
    return [(c, int(n), stages) for c, n, stages in parts]


def build_problem(case: Case, units: pd.DataFrame, objective: Objective = "tco") -> FleetProblem:
    """Candidate table + case → FleetProblem, with every big-M derived from the data. Chips the
    case's year cannot buy are bought nowhere (planner/purchasable.py), whoever calls."""
    case = for_plan_year(case)[0]
    units = units.reset_index(drop=True)
    unit_chips, unit_stages, by_class_kind, serves, unit_groups = {}, {}, {}, {}, {}
    has_serves, has_draft = "serves" in units.columns, "draft_chip" in units.columns
    for u, r in enumerate(units.itertuples(index=False)):
        if has_serves and isinstance(r.serves, tuple):
            serves[u] = {j: v / TOK_S_PER_KTOK_S for j, v in r.serves}
        else:
            by_class_kind.setdefault((r[0], r.kind), []).append(u)
        parts = unit_parts(r.kind, r.attn_chip, r.n_attn, r.ffn_chip, r.n_ffn,
                           r.draft_chip if has_draft else "", r.n_draft if has_draft else 0)
        counts: dict[str, int] = {}
        for c, n, _ in parts:
            counts[c] = counts.get(c, 0) + n
        unit_chips[u] = counts
        unit_stages[u] = [(s, c) for c, _, stages in parts for s in stages]
        unit_groups[u] = [(c, n) for c, n, _ in parts if n > 0]
    chips = sorted({c for cc in unit_chips.values() for c in cc})
    sizes = {c: case.chips[c].chips_per_system for c in chips
             if case.chips[c].chips_per_system > 1 or case.chips[c].sold_by_system}
    cons = case.constraints
    demand = {tc.name: tc.peak_demand_tok_s / TOK_S_PER_KTOK_S for tc in case.classes}  # the peak slice when a profile is given
    tput = dict(enumerate(units["throughput_tok_s"].to_numpy(float) / TOK_S_PER_KTOK_S))
    pre = dict(enumerate(units["prefill_tok_s"].to_numpy(float) / TOK_S_PER_KTOK_S))
    ratio = {tc.name: tc.new_isl / tc.osl for tc in case.classes}  # prompt tokens prefill computes per output token

    power = {c: case.chips[c].power_kw for c in chips}
    price = {c: case.chips[c].price_usd for c in chips}
    budget_kw = cons.power_mw * KW_PER_MW if cons.power_mw else None

    def budget_bound(u: int) -> float:
        """Copies of unit u any budget allows (inf when no budget limits it)."""
        bounds = [math.inf]
        site_kw = sum(n * power[c] for c, n in unit_chips[u].items()) * case.economics.pue
        if budget_kw:
            bounds.append(budget_kw / site_kw)
        if cons.capex_usd and not any(case.fleet.owned_count(c) for c in unit_chips[u]):
            bounds.append(cons.capex_usd / sum(n * price[c] for c, n in unit_chips[u].items()))
        for c, n in unit_chips[u].items():
            if c in cons.supply or not case.fleet.buyable(c):
                bounds.append((cons.supply.get(c, 0 if not case.fleet.buyable(c) else math.inf)
                               + case.fleet.owned_count(c)) / n)
        return min(bounds)

    unit_max, need_max = {}, {}
    for u, (j, kind) in enumerate(zip(units["class"], units["kind"])):
        if objective == "throughput":
            need = math.inf
        elif u in serves:  # enough copies to serve all of every bucket it may serve
            need = math.ceil(sum(demand[b] * (ratio[b] if kind == "prefill" else 1.0) / v for b, v in serves[u].items()))
        elif kind == "prefill":
            # prefill serves at most the class's whole input demand
            need = math.ceil(demand[j] * ratio[j] / pre[u])
        else:
            need = math.ceil(demand[j] / tput[u])
        bound = min(budget_bound(u), need)
        unit_max[u] = int(math.floor(bound)) if math.isfinite(bound) else None
        # the spares' step functions are written up to what demand needs, not what budgets allow, so the
        # elastic model (budgets relaxed) keeps them valid
        need_max[u] = int(need) if math.isfinite(need) else unit_max[u]
    spare = _spare_params(case, unit_chips, need_max, cons.spare_fraction > 0 or cons.availability is not None)
    fixed = {c: v / (case.economics.amortization_years * HOURS_PER_YEAR) for c, v in cons.fixed_cost_usd.items() if c in chips}
    return FleetProblem(
        **spare, spare_fraction=cons.spare_fraction, availability=cons.availability,
        case=case, units=units, objective=objective, chips=chips, classes=[tc.name for tc in case.classes],
        demand_ktok_s=demand, isl_per_osl=ratio, unit_chips=unit_chips, unit_stages=unit_stages,
        unit_tput_ktok_s=tput, unit_prefill_ktok_s=pre, unit_max=unit_max,
        chip_hourly_usd={c: hourly_cost_usd(case, c) for c in chips}, chip_power_kw=power, chip_price_usd=price,
        chip_price_musd={c: v / USD_PER_MUSD for c, v in price.items()},
        system_size=sizes,
        **_pack_params(unit_groups, sizes),
        power_kw_budget=budget_kw, capex_usd_budget=cons.capex_usd,
        capex_musd_budget=cons.capex_usd / USD_PER_MUSD if cons.capex_usd is not None else None,
        supply={c: v for c, v in cons.supply.items() if c in chips},
        max_types_per_stage=cons.max_chip_types_per_stage,
        fixed_cost_usd_per_hour=fixed, fixed_cost_bigm=_fixed_cost_bigm(fixed, cons.supply, unit_chips, unit_max),
        pue=case.economics.pue, by_class_kind=by_class_kind, unit_serves=serves,
        chip_capex_usd_per_hour={c: capex_cost_usd(case, c) for c in chips},
        chip_running_usd_per_hour={c: running_cost_usd(case, c) for c in chips},
        owned={c: case.fleet.owned_count(c) for c in chips if case.fleet.owned_count(c) > 0},
        owned_idle={o.chip: case.fleet.owned_count(o.chip) for o in case.fleet.owned if o.chip not in chips},
        no_buy={c for c in chips if not case.fleet.buyable(c)},
        **_slice_params(case, chips),
    )


def _pack_params(unit_groups: dict[int, list[tuple[str, int]]], sizes: dict[str, int]) -> dict:
    """Per chip bought in systems: how its shared groups (≤ one system) pack (planner/packing.py) —
    chain levels, else maximal patterns, else sizes rounded up to powers of two (conservative, noted)."""
    shared: dict[str, set[int]] = {}
    for groups in unit_groups.values():
        for c, g in groups:
            if c in sizes and g <= sizes[c]:
                shared.setdefault(c, set()).add(g)
    levels, pats, notes = {}, {}, []
    rounded: dict[str, bool] = {}
    for c, gs in sorted(shared.items()):
        chain = packing.chain_levels(sorted(gs), sizes[c])
        if chain is not None:
            levels[c] = chain
            continue
        found = packing.patterns(sorted(gs), sizes[c])
        if found is not None:
            pats[c] = found
            continue
        rounded[c] = True
        levels[c] = packing.chain_levels(sorted({packing.round_to_chain(g) for g in gs}), sizes[c])
        notes.append(f"{c}: group sizes {sorted(gs)} have more than {packing.PATTERN_LIMIT} packing patterns per "
                     f"system of {sizes[c]}; packed as the next power of two (buildable, may buy a system more)")
    groups = {u: [(c, packing.round_to_chain(g) if rounded.get(c) and g <= sizes[c] else g) for c, g in gs]
              for u, gs in unit_groups.items()}
    return {"unit_groups": groups, "pack_levels": levels, "pack_patterns": pats, "packing_notes": notes}


def _fixed_cost_bigm(fixed: dict, supply: dict, unit_chips: dict, unit_max: dict) -> dict[str, int]:
    """M_c for b_c ≤ M_c·z_c: the supply cap, else the chips the bounded units could need at most.
    Unbounded (the throughput objective with no budget reaching the chip) is the user's to fix."""
    out = {}
    for c, usd in fixed.items():
        if not usd:
            continue
        terms = [cnt * unit_max[u] if unit_max[u] is not None else None
                 for u, counts in unit_chips.items() for cc, cnt in counts.items() if cc == c]
        out[c] = supply.get(c) or (sum(terms) if None not in terms else None)
        if out[c] is None:
            raise CaseError("a fixed cost under the throughput objective needs a bound on that chip", [Problem(
                f"constraints.fixed_cost_usd.{c}", "nothing limits how many of this chip the plan may buy",
                f"set constraints.power_mw or constraints.supply.{c}")])
    return out


def _slice_params(case: Case, chips: list[str]) -> dict:
    """Hourly slices, when any class has a demand profile or the economics a time-of-use price."""
    e = case.economics
    if not (e.electricity_usd_per_kwh_by_hour or any(tc.demand_profile for tc in case.classes)):
        return {}
    hours = list(range(24))
    return {"slices": hours,
            "slice_demand_ktok_s": {(tc.name, h): tc.demand_at(h) / TOK_S_PER_KTOK_S for tc in case.classes for h in hours},
            "slice_price_usd_per_kwh": {h: e.price_at(h) for h in hours},
            "chip_idle_kw": {c: case.chips[c].power_kw * e.idle_power_fraction for c in chips},
            "chip_facility_usd_per_hour": {c: running_cost_usd(case, c) - case.chips[c].power_kw * e.pue
                                           * e.electricity_usd_per_kwh for c in chips}}


def _spare_params(case: Case, unit_chips: dict, unit_max: dict, wanted: bool) -> dict:
    """Spare groups (planner/spares.py): per unit its chips not sold by system, per rack chip its systems;
    down probabilities and the thresholds of the spares step function up to each group's bound."""
    if not wanted:
        return {}
    from .spares import chip_unavailability, down_probability, thresholds

    racks = {c for counts in unit_chips.values() for c in counts if case.chips[c].sold_by_system}
    A = case.constraints.availability
    q = {c: chip_unavailability(case, c) for counts in unit_chips.values() for c in counts}
    out = {"unit_spare_chips": {}, "unit_down": {}, "unit_spare_steps": {}, "rack_down": {}, "rack_max": {},
           "rack_spare_steps": {}, "spare_max": dict(unit_max)}
    unbounded = [u for u in unit_chips if unit_max[u] is None]
    if unbounded:
        raise CaseError("spares under the throughput objective need a bound on every unit's copies", [Problem(
            "constraints", "no power_mw, capex_usd or supply cap limits how many units of "
            f"{', '.join(sorted({c for u in unbounded for c in unit_chips[u]}))} the plan may buy",
            "set constraints.power_mw (it bounds every chip), or a supply cap on each chip")])
    for u, counts in unit_chips.items():
        mine = {c: n for c, n in counts.items() if c not in racks}
        if not mine:
            continue
        out["unit_spare_chips"][u] = mine
        down = 1.0 - math.prod((1.0 - q[c]) ** n for c, n in mine.items())
        out["unit_down"][u] = down
        out["unit_spare_steps"][u] = _steps(down, A, unit_max[u], "+".join(mine), thresholds) if A is not None else []
    for c in sorted(racks):
        size = case.chips[c].chips_per_system
        bound = math.ceil(sum(counts.get(c, 0) * unit_max[u] for u, counts in unit_chips.items()) / size)
        out["rack_down"][c] = down_probability(q[c], size)
        out["rack_max"][c] = bound
        out["rack_spare_steps"][c] = _steps(out["rack_down"][c], A, bound, f"{c} system", thresholds) if A is not None else []
    return out


def _steps(q: float, availability: float, bound: int, what: str, thresholds) -> list[int]:
    """The spares step function, or a CaseError when no spare count can reach the availability (an
    item down most of the time: the search for a spare count would not end)."""
    try:
        if q >= 0.5:
            raise ValueError
        return thresholds(q, availability, bound)
    except ValueError:
        raise CaseError(f"no number of spares reaches availability {availability}", [Problem(
            "constraints.availability", f"a {what} is down {q:.1%} of the time (failure rate × economics.mttr_hours)",
            "lower constraints.availability, shorten economics.mttr_hours, or leave that chip out of fleet.chips")]) from None


__all__ = ["FleetProblem", "build_problem", "hourly_cost_usd", "unit_parts", "OBJECTIVES"]


SAFE_RANGE = 1e9
SAFE_BIGM = 1e7


def numerics_warnings(p: FleetProblem) -> list[str]:
    """Warn when matrix coefficients span more than 1e9 or a big-M exceeds 1e7 (HiGHS tolerances
    are ~1e-6 relative; beyond these, 'optimal' can hide a wrong answer)."""
    coeffs = [v for v in p.unit_tput_ktok_s.values() if v > 0] + [v for v in p.unit_prefill_ktok_s.values() if v > 0]
    coeffs += [n for counts in p.unit_chips.values() for n in counts.values()]
    coeffs += [p.chip_power_kw[c] * p.pue for c in p.chips] + list(p.chip_price_musd.values())
    coeffs += [v for v in p.demand_ktok_s.values() if v > 0]  # a class with no demand (a roadmap period) has no row to scale
    out = []
    if coeffs and max(coeffs) / min(coeffs) > SAFE_RANGE:
        out.append(f"coefficients span {min(coeffs):.2g} … {max(coeffs):.2g} (ratio {max(coeffs) / min(coeffs):.1e} > "
                   f"{SAFE_RANGE:.0e}): results may be inexact; rescale demand or split the case")
    big = max((m for m in p.unit_max.values() if m is not None), default=0)
    if big > SAFE_BIGM:
        out.append(f"a unit may be bought {big:,} times (big-M above {SAFE_BIGM:.0e}): demand is very large "
                   "relative to one unit; consider a coarser grid or larger units")
    return out
