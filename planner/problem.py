"""Everything the MILP sees, in model units: the candidate table, sets and parameters.

Model units keep coefficients in ~1e-3…1e4 (STYLE.md §6): throughput in k tokens/s, cost in
USD/hour (capex objective in M USD), power in kW. Converted here, once; results convert back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from .domain import Case
from .units import HOURS_PER_YEAR

Objective = Literal["tco", "capex", "power", "throughput"]
OBJECTIVES = ("tco", "capex", "power", "throughput")


@dataclass
class Problem:
    """Sets and parameters of one fleet MILP (no Pyomo here)."""

    case: Case
    units: pd.DataFrame  # the candidate table, one row per unit
    objective: str
    chips: list[str]  # chip types appearing in some unit
    classes: list[str]
    demand_ktok_s: dict[str, float]
    isl_per_osl: dict[str, float]
    unit_chips: dict[int, dict[str, int]]  # unit -> {chip: count}
    unit_stages: dict[int, list[tuple[str, str]]]  # unit -> [(stage, chip)]
    unit_tput_ktok_s: dict[int, float]
    unit_prefill_ktok_s: dict[int, float]
    unit_max: dict[int, int]  # derived upper bound on copies of each unit (the big-M)
    chip_hourly_usd: dict[str, float]
    chip_power_kw: dict[str, float]
    chip_price_usd: dict[str, float]
    system_size: dict[str, int]  # chips per whole system, for chips sold by system
    power_kw_budget: float | None
    capex_usd_budget: float | None
    supply: dict[str, int]
    max_types_per_stage: int | None
    fixed_cost_usd_per_hour: dict[str, float]
    pue: float
    by_class_kind: dict[tuple[str, str], list[int]] = field(default_factory=dict)
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

    @property
    def unit_ids(self) -> list[int]:
        return list(self.units.index)


def hourly_cost_usd(case: Case, chip_id: str) -> float:
    """Amortised capex + energy (× PUE) + facility share, per chip-hour."""
    e, c = case.economics, case.chips[chip_id]
    capex = c.price_usd / (e.amortization_years * HOURS_PER_YEAR)
    site_kw = c.power_kw * e.pue
    energy = site_kw * e.electricity_usd_per_kwh
    facility = site_kw / 1000 * e.facility_capex_usd_per_mw / (e.facility_amortization_years * HOURS_PER_YEAR)
    return capex + energy + facility


def build_problem(case: Case, units: pd.DataFrame, objective: str = "tco") -> Problem:
    """Candidate table + case → Problem, with every big-M derived from the data."""
    units = units.reset_index(drop=True)
    unit_chips, unit_stages, by_class_kind, serves = {}, {}, {}, {}
    has_serves = "serves" in units.columns
    for u, r in enumerate(units.itertuples(index=False)):
        if has_serves and isinstance(r.serves, tuple):
            serves[u] = {j: v / 1e3 for j, v in r.serves}
        else:
            by_class_kind.setdefault((r[0], r.kind), []).append(u)
        counts = {r.attn_chip: int(r.n_attn)}
        if r.ffn_chip != r.attn_chip:
            counts[r.ffn_chip] = counts.get(r.ffn_chip, 0) + int(r.n_ffn)
        draft = getattr(r, "draft_chip", "") or ""
        if draft:
            counts[draft] = counts.get(draft, 0) + int(r.n_draft)
        unit_chips[u] = counts
        if r.kind == "prefill":
            unit_stages[u] = [("prefill", r.attn_chip)]
        elif r.kind == "aggregated":
            unit_stages[u] = [(s, r.attn_chip) for s in ("prefill", "decode_attention", "decode_ffn")]
        else:
            unit_stages[u] = [("decode_attention", r.attn_chip), ("decode_ffn", r.ffn_chip)]
            if draft:
                unit_stages[u].append(("decode_draft", draft))
    chips = sorted({c for cc in unit_chips.values() for c in cc})
    cons = case.constraints
    demand = {tc.name: tc.demand_tok_s / 1e3 for tc in case.classes}
    tput = dict(enumerate(units["throughput_tok_s"].to_numpy(float) / 1e3))
    pre = dict(enumerate(units["prefill_tok_s"].to_numpy(float) / 1e3))
    ratio = {tc.name: tc.new_isl / tc.osl for tc in case.classes}  # prompt tokens prefill computes per output token

    power = {c: case.chips[c].power_kw for c in chips}
    price = {c: case.chips[c].price_usd for c in chips}
    budget_kw = cons.power_mw * 1000 if cons.power_mw else None

    def budget_bound(u: int) -> float:
        """Copies of unit u any budget allows (inf when no budget limits it)."""
        bounds = [math.inf]
        site_kw = sum(n * power[c] for c, n in unit_chips[u].items()) * case.economics.pue
        if budget_kw:
            bounds.append(budget_kw / site_kw)
        if cons.capex_usd:
            bounds.append(cons.capex_usd / sum(n * price[c] for c, n in unit_chips[u].items()))
        for c, n in unit_chips[u].items():
            if c in cons.supply:
                bounds.append(cons.supply[c] / n)
        return min(bounds)

    unit_max = {}
    for u, (j, kind) in enumerate(zip(units["class"], units["kind"])):
        if objective == "throughput":
            bound = budget_bound(u)
        elif u in serves:  # enough copies to serve all of every bucket it may serve
            need = sum(demand[b] * (ratio[b] if kind == "prefill" else 1.0) / v for b, v in serves[u].items())
            bound = min(budget_bound(u), math.ceil(need))
        elif kind == "prefill":
            # prefill serves at most the class's whole input demand
            bound = min(budget_bound(u), math.ceil(demand[j] * ratio[j] / pre[u]))
        else:
            bound = min(budget_bound(u), math.ceil(demand[j] / tput[u]))
        unit_max[u] = int(math.floor(bound)) if math.isfinite(bound) else -1
    return Problem(
        case=case, units=units, objective=objective, chips=chips, classes=[tc.name for tc in case.classes],
        demand_ktok_s=demand, isl_per_osl=ratio, unit_chips=unit_chips, unit_stages=unit_stages,
        unit_tput_ktok_s=tput, unit_prefill_ktok_s=pre, unit_max=unit_max,
        chip_hourly_usd={c: hourly_cost_usd(case, c) for c in chips}, chip_power_kw=power, chip_price_usd=price,
        system_size={c: case.chips[c].chips_per_system for c in chips if case.chips[c].sold_by_system},
        power_kw_budget=budget_kw, capex_usd_budget=cons.capex_usd,
        supply={c: v for c, v in cons.supply.items() if c in chips},
        max_types_per_stage=cons.max_chip_types_per_stage,
        fixed_cost_usd_per_hour={c: v / (case.economics.amortization_years * HOURS_PER_YEAR)
                                 for c, v in cons.fixed_cost_usd.items() if c in chips},
        pue=case.economics.pue, by_class_kind=by_class_kind, unit_serves=serves,
    )


__all__ = ["Problem", "build_problem", "hourly_cost_usd", "OBJECTIVES"]


SAFE_RANGE = 1e9
SAFE_BIGM = 1e7


def numerics_warnings(p: Problem) -> list[str]:
    """Warn when matrix coefficients span more than 1e9 or a big-M exceeds 1e7 (HiGHS tolerances
    are ~1e-6 relative; beyond these, 'optimal' can hide a wrong answer)."""
    coeffs = [v for v in p.unit_tput_ktok_s.values() if v > 0] + [v for v in p.unit_prefill_ktok_s.values() if v > 0]
    coeffs += [n for counts in p.unit_chips.values() for n in counts.values()]
    coeffs += [p.chip_power_kw[c] * p.pue for c in p.chips] + [p.chip_price_usd[c] / 1e6 for c in p.chips]
    coeffs += list(p.demand_ktok_s.values())
    out = []
    if coeffs and max(coeffs) / min(coeffs) > SAFE_RANGE:
        out.append(f"coefficients span {min(coeffs):.2g} … {max(coeffs):.2g} (ratio {max(coeffs) / min(coeffs):.1e} > "
                   f"{SAFE_RANGE:.0e}): results may be inexact; rescale demand or split the case")
    big = max((m for m in p.unit_max.values() if m >= 0), default=0)
    if big > SAFE_BIGM:
        out.append(f"a unit may be bought {big:,} times (big-M above {SAFE_BIGM:.0e}): demand is very large "
                   "relative to one unit; consider a coarser grid or larger units")
    return out
