"""Tidy results from a solved model, in user units: chips, stages, units, classes, costs, constraints."""
from __future__ import annotations

import math

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from formulations.families import family_of

from . import packing
from .class_costs import class_cost_frame
from .purchasable import year_text
from .problem import FleetProblem, unit_parts
from .solve import Outcome, gap_exceeded
from .units import KW_PER_MW, TOK_S_PER_KTOK_S

TOL = 1e-6
PRICE_TOL = 1e-9  # a shadow price below this is zero (solver round-off)

METRIC_DEFINITIONS = {
    "served_tok_s": "output tokens/s the plan is built to deliver: each class's demand (under the throughput "
                    "objective, the common served share of it; with a daily profile, the day's mean demand); spare "
                    "capacity is not counted",
    "capacity_tok_s": "output tokens/s the bought units can produce at the speed target (≥ served)",
    "tco_usd_per_hour": "chip capex amortised over economics.amortization_years + energy at the site (× PUE) + "
                        "facility capex per MW amortised over economics.facility_amortization_years + fixed platform costs",
    "usd_per_mtok": "tco_usd_per_hour / (served_tok_s × 3600 / 1e6): USD per million output tokens delivered",
    "usd_per_mtok_capacity": "tco_usd_per_hour / (capacity_tok_s × 3600 / 1e6): USD per million tokens if every unit ran full",
    "power_mw": "chips' all-in power × PUE: the site's draw at full load",
}


@dataclass
class Plan:
    """A solved (or diagnosed) plan; `to_dict()` is the JSON other tools read."""

    problem: FleetProblem
    outcome: Outcome
    chips: pd.DataFrame
    stages: pd.DataFrame
    units: pd.DataFrame
    classes: pd.DataFrame
    constraints: pd.DataFrame
    cost: dict
    power_mw: float
    throughput_tok_s: float
    timings_s: dict
    warnings: list[str] = field(default_factory=list)
    spares: pd.DataFrame | None = None  # spare groups (only when spares are asked for)
    slices: pd.DataFrame | None = None  # hourly slices (only with a demand profile or time-of-use prices)
    sized_at_average: dict | None = None  # what a fleet sized for the mean demand would have bought

    def profile_summary(self) -> dict | None:
        """Peak vs average utilisation of the bought fleet per class."""
        if self.slices is None:
            return None
        out = {}
        for j, d in self.slices.groupby("class"):
            out[j] = {"peak_utilization": float(d["utilization"].max()), "average_utilization": float(d["utilization"].mean()),
                      "peak_demand_tok_s": float(d["demand_tok_s"].max()), "average_demand_tok_s": float(d["demand_tok_s"].mean())}
        return out
    shares: pd.DataFrame | None = None  # shared units: row of `units`, bucket, tok/s served (see add_sharing)
    systems: pd.DataFrame | None = None  # how the units' groups sit in the systems bought (system_frame)
    purchase: dict | None = None  # plan year and chips it cannot buy (planner/purchasable.py summary)
    class_costs: pd.DataFrame | None = None  # cost per class (planner/class_costs.py)
    requested_mip_gap: float | None = None  # the gap the solve was asked for (a wider one is warned about)

    def to_dict(self) -> dict:
        o = self.outcome
        return {
            "case": self.problem.case.name, "status": o.status, "objective_kind": self.problem.objective,
            "objective": o.objective, "cost": self.cost, "power_mw": self.power_mw,
            "throughput_tok_s": self.throughput_tok_s,
            "chips": {r.chip: int(r.chips) for r in self.chips.itertuples()},
            "systems": {r.chip: int(r.systems) for r in self.chips.itertuples() if r.systems},
            "bought": {r.chip: int(r.bought) for r in self.chips.itertuples()},
            "owned": {r.chip: {"kept": int(r.owned_kept), "retired": int(r.owned_retired)}
                      for r in self.chips.itertuples() if r.owned_kept or r.owned_retired},
            "classes": self.classes.to_dict("records"), "stages": self.stages.to_dict("records"),
            "units": self.units.to_dict("records"), "constraints": self.constraints.to_dict("records"),
            **({"class_costs": self.class_costs.to_dict("records")} if self.class_costs is not None else {}),
            **({"shares": self.shares.to_dict("records")} if self.shares is not None and len(self.shares) else {}),
            "solve": {"solver": o.solver, "status": o.status, "wall_s": o.wall_s, "build_s": o.build_s,
                      "gap": o.gap, "bound": o.bound, "requested_mip_gap": self.requested_mip_gap,
                      "proven_optimal": o.status == "optimal" and not gap_exceeded(o, self.requested_mip_gap),
                      **{f"milp_{k}": v for k, v in o.stats.items()},
                      "candidates": int(len(self.problem.units))},
            **({"spares": self.spares.to_dict("records")} if self.spares is not None else {}),
            **({"packing": self.systems.to_dict("records")} if self.systems is not None else {}),
            **({"slices": self.slices.to_dict("records"), "profile": self.profile_summary(),
                "sized_at_average": self.sized_at_average} if self.slices is not None else {}),
            **({"purchase": self.purchase} if self.purchase is not None else {}),
            "warnings": list(self.warnings or []),
            "definitions": METRIC_DEFINITIONS,
            "timings_s": self.timings_s,
        }


def extract(p: FleetProblem, o: Outcome, timings: dict | None = None) -> Plan:
    case = p.case
    used = [u for u, v in o.x.items() if v > 0 or o.spares.get(u, 0) > 0]
    U = p.units

    chips_rows = []
    for c in p.chips:
        n = o.n.get(c, 0)
        owned = p.owned.get(c, 0)
        if n <= 0 and owned <= 0:
            continue
        kept = o.kept.get(c, 0)
        new = n - kept
        need = sum(p.unit_chips[u].get(c, 0) * o.x[u] for u in used)
        chip = case.chips[c]
        chips_rows.append({"chip": c, "chips": n, "chips_in_use": need,
                           "systems": n // p.system_size[c] if c in p.system_size else 0,
                           "system_name": chip.system_name, "power_mw": n * chip.power_kw * p.pue / KW_PER_MW,
                           "capex_usd": new * chip.price_usd,
                           "tco_usd_per_hour": new * p.chip_capex_usd_per_hour[c] + (
                               n * p.chip_running_usd_per_hour[c] if not p.slices else
                               n * p.chip_facility_usd_per_hour[c] + chip_energy_usd_per_hour(p, o, c, n)),
                           "bought": new, "owned_kept": kept, "owned_retired": owned - kept,
                           "spare_chips": sum(p.unit_spare_chips.get(u, {}).get(c, 0) * o.spares.get(u, 0) for u in o.spares)
                           + o.spare_systems.get(c, 0) * p.system_size.get(c, 0)})
    for c, owned in sorted(p.owned_idle.items()):  # owned chips no candidate unit can use: all retired
        chips_rows.append({"chip": c, "chips": 0, "chips_in_use": 0, "systems": 0,
                           "system_name": case.chips[c].system_name, "power_mw": 0.0, "capex_usd": 0.0,
                           "tco_usd_per_hour": 0.0, "bought": 0, "owned_kept": 0, "owned_retired": owned, "spare_chips": 0})
    chips = pd.DataFrame(chips_rows, columns=["chip", "chips", "chips_in_use", "systems", "system_name", "power_mw",
                                              "capex_usd", "tco_usd_per_hour", "bought", "owned_kept", "owned_retired",
                                              "spare_chips"])

    unit_rows, share_rows = [], []
    for u in used:
        r = U.loc[u]
        tput, pre, serves = r.throughput_tok_s * o.x[u], r.prefill_tok_s * o.x[u], ""
        if u in p.unit_serves:  # a shared unit: what it serves of each bucket, and its capacity at that mix
            mine = {j: o.shares.get((u, j), 0.0) for j in p.unit_serves[u]}
            used_time = sum(v / (p.unit_serves[u][j] * TOK_S_PER_KTOK_S) for j, v in mine.items())
            cap = sum(mine.values()) / used_time * o.x[u] if used_time > 0 else (r.throughput_tok_s or r.prefill_tok_s) * o.x[u]
            tput, pre = (0.0, cap) if r.kind == "prefill" else (cap, 0.0)
            serves = "; ".join(f"{j} {v:,.0f}" for j, v in mine.items() if v > TOL)
            share_rows += [{"unit": len(unit_rows), "class": j, "kind": r.kind, "tok_s": v} for j, v in mine.items() if v > TOL]
        unit_rows.append({"class": r["class"], "kind": r.kind, "attn_chip": r.attn_chip, "n_attn": int(r.n_attn),
                          "ffn_chip": r.ffn_chip, "n_ffn": int(r.n_ffn), "draft_chip": r.get("draft_chip", "") or "",
                          "n_draft": int(r.get("n_draft", 0) or 0), "batch": int(r.batch),
                          "tp": int(r.get("tp", r.n_attn) or 1), "pp": int(r.get("pp", 1) or 1),
                          "ep": int(r.get("ep", 1) or 1), "attn_dp": bool(r.get("attn_dp", False)),
                          "mtp_tokens": int(r.get("mtp_tokens", 0) or 0), "copies": o.x[u], "spares": o.spares.get(u, 0),
                          "speed_tok_s_user": r.speed_tok_s_user, "throughput_tok_s": tput,
                          "prefill_tok_s": pre, "ttft_s": r.ttft_s, "serves": serves})
    unit_cols = ["class", "kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "draft_chip", "n_draft", "batch", "tp",
                 "pp", "ep", "attn_dp", "mtp_tokens", "copies", "spares", "speed_tok_s_user", "throughput_tok_s",
                 "prefill_tok_s", "ttft_s"] + (["serves"] if p.unit_serves else [])
    units = pd.DataFrame(unit_rows, columns=unit_cols)
    shares = pd.DataFrame(share_rows, columns=["unit", "class", "kind", "tok_s"])

    stage_rows: dict[tuple, int] = {}
    for row in unit_rows:
        for c, n, run in unit_parts(row["kind"], row["attn_chip"], row["n_attn"], row["ffn_chip"], row["n_ffn"],
                                    row["draft_chip"], row["n_draft"]):
            for s in run:  # chips running several stages are listed under each, marked shared
                key = (row["class"], s, c, len(run) > 1)
                stage_rows[key] = stage_rows.get(key, 0) + n * row["copies"]
    stages = pd.DataFrame([{"class": j, "stage": s, "chip": c, "chips": n, "shared": shared}
                           for (j, s, c, shared), n in stage_rows.items()],
                          columns=["class", "stage", "chip", "chips", "shared"])

    class_rows = []
    for tc in case.classes:
        mine = serving_units(units, shares, tc.name)
        serving = mine[mine["kind"] != "prefill"] if len(mine) else mine
        capacity = float(serving["throughput_tok_s"].sum()) if len(serving) else 0.0
        # served = the demand the plan is built to deliver (all of it; α of it under the throughput
        # objective), never spare capacity: the one definition every cost per token uses
        share = o.alpha if p.objective == "throughput" else 1.0
        mean = tc.demand_tok_s * (sum(tc.demand_profile) / len(tc.demand_profile) if tc.demand_profile else 1.0)
        served = min(capacity, share * mean)  # with a daily profile: the day's mean, what is delivered
        ttfts = mine[mine["kind"] != "decode"]["ttft_s"] if len(mine) else []
        class_rows.append({"name": tc.name, "model": tc.model, "demand_tok_s": tc.demand_tok_s, "served_tok_s": served,
                           "capacity_tok_s": capacity,
                           "min_speed_tok_s_user": tc.min_speed_tok_s_user,
                           "achieved_speed_tok_s_user": float(serving["speed_tok_s_user"].min()) if len(serving) else None,
                           "ttft_s": float(max(ttfts)) if len(ttfts) else None, "ttft_target_s": tc.ttft_s})
        if case.shapes:
            class_rows[-1].update({"level": "bucket" if tc.parent else "class", "parent": tc.parent,
                                   "request_share": tc.request_share, "token_share": tc.token_share})
            if not tc.ttft_required:
                class_rows[-1]["ttft_target_s"] = None if tc.ttft_s >= 3600 else tc.ttft_s
    class_rows = with_class_totals(case, class_rows)
    classes = pd.DataFrame(class_rows)

    tco = float(chips["tco_usd_per_hour"].sum()) + sum(
        p.fixed_cost_usd_per_hour.get(c, 0) for c in chips["chip"])
    leaves = classes[classes["level"] != "total"] if "level" in classes else classes  # totals repeat their buckets
    served = float(leaves["served_tok_s"].sum())
    capacity = float(leaves["capacity_tok_s"].sum())
    cost = {"capex_usd": float(chips["capex_usd"].sum()), "tco_usd_per_hour": tco,
            "usd_per_mtok": tco / (served * 3600 / 1e6) if served > 0 else None,
            "usd_per_mtok_capacity": tco / (capacity * 3600 / 1e6) if capacity > 0 else None}
    power_mw = float(chips["power_mw"].sum())
    from .problem import numerics_warnings

    spares = spare_groups(p, o) if (p.spare_fraction > 0 or p.availability is not None) else None
    systems = system_frame(p, units, chips)
    per_class = class_cost_frame(units, shares, chips, p.fixed_cost_usd_per_hour,
                                 {r["name"]: float(r["served_tok_s"]) for r in leaves.to_dict("records")})
    return Plan(problem=p, outcome=o, chips=chips, stages=stages, units=units, classes=classes, class_costs=per_class,
                constraints=constraint_frame(p, o), cost=cost, power_mw=power_mw, throughput_tok_s=served,
                timings_s=timings or {}, warnings=numerics_warnings(p) + p.packing_notes + unmeasured_warnings(case, chips),
                spares=spares,
                slices=slice_frame(p, o) if p.slices else None, shares=shares, systems=systems)


SYSTEM_COLUMNS = ["chip", "systems", "holds", "chips_used_per_system", "chips_idle_per_system"]


def system_frame(p: FleetProblem, units: pd.DataFrame, chips: pd.DataFrame) -> pd.DataFrame:
    """One row per kind of system a chip's units fill (planner/packing.py layout): how many systems
    alike, which groups each holds ('2 × unit 1 chat aggregated'), chips used and idle per system; a
    group wider than one system is one row of whole systems. Systems bought beyond the layout (spare
    systems, or bought only to complete a purchase) are a row of their own."""
    rows = []
    groups = packing.group_rows(units)
    for c in sorted(p.system_size):
        size, mine = p.system_size[c], [(label, g, k) for cc, label, g, k in groups if cc == c]
        laid = 0
        for n, holds, used in packing.layout(mine, size):
            wide = used > size
            text = " + ".join(f"{k} × {label}" for label, k in holds)
            rows.append({"chip": c, "systems": n, "holds": text + (f" ({used} chips each, on whole systems)" if wide else ""),
                         "chips_used_per_system": size if wide else used,
                         "chips_idle_per_system": (n * size - used * holds[0][1]) / n if wide and n else size - used})
            laid += n
        bought = int(chips.loc[chips["chip"] == c, "systems"].sum()) if len(chips) else 0
        if bought > laid:
            rows.append({"chip": c, "systems": bought - laid, "holds": "spare or idle (no unit's group)",
                         "chips_used_per_system": 0, "chips_idle_per_system": size})
    return pd.DataFrame(rows, columns=SYSTEM_COLUMNS)


def running_chips(p: FleetProblem, o: Outcome, c: str, h: int) -> int:
    return sum(p.unit_chips[u].get(c, 0) * k for (u, hh), k in o.running.items() if hh == h)


def chip_energy_usd_per_hour(p: FleetProblem, o: Outcome, c: str, n: int) -> float:
    """The day's mean energy bill of chip type c: running chips at power_kw, the rest of n idle."""
    return sum(p.slice_price_usd_per_kwh[h] * p.pue * (p.chip_idle_kw[c] * n + (p.chip_power_kw[c] - p.chip_idle_kw[c])
                                                       * running_chips(p, o, c, h)) for h in p.slices) / len(p.slices)


def slice_frame(p: FleetProblem, o: Outcome) -> pd.DataFrame:
    """One row per (hour, class): demand, capacity of the running units, of the bought fleet, utilisation."""
    rows = []
    for h in p.slices:
        for j in p.classes:
            serving = [u for u in p.units_of(j, "aggregated") + p.units_of(j, "decode")]
            running = sum(p.unit_tput_ktok_s[u] * o.running.get((u, h), 0) for u in serving) * TOK_S_PER_KTOK_S
            bought = sum(p.unit_tput_ktok_s[u] * o.x.get(u, 0) for u in serving) * TOK_S_PER_KTOK_S
            if p.unit_serves:  # shared units: what they serve of this bucket (running: in this hour; bought: at the peak)
                on_shared = [u for u in p.shared_of(j, "aggregated") + p.shared_of(j, "decode")]
                running += sum(o.slice_shares.get((u, j, h), 0.0) for u in on_shared)
                bought += sum(o.shares.get((u, j), 0.0) for u in on_shared)
            demand = p.slice_demand_ktok_s[j, h] * TOK_S_PER_KTOK_S * (o.alpha if p.objective == "throughput" else 1.0)
            rows.append({"hour": h, "class": j, "demand_tok_s": demand, "running_capacity_tok_s": running,
                         "fleet_capacity_tok_s": bought, "utilization": demand / bought if bought else 0.0,
                         "running_chips": sum(running_chips(p, o, c, h) for c in p.chips),
                         "price_usd_per_kwh": p.slice_price_usd_per_kwh[h]})
    return pd.DataFrame(rows, columns=["hour", "class", "demand_tok_s", "running_capacity_tok_s", "fleet_capacity_tok_s",
                                       "utilization", "running_chips", "price_usd_per_kwh"])


def spare_groups(p: FleetProblem, o: Outcome) -> pd.DataFrame:
    """One row per spare group in use (planner/spares.py): working and spare items, the down probability
    of one item and the probability that the group's working capacity is there."""
    from .spares import covered

    rows = []
    for u, s_u in sorted(o.spares.items()):
        if o.x.get(u, 0) or s_u:
            r = p.units.loc[u]
            label = f"{r['class']} {r.kind} {'+'.join(f'{n}×{c}' for c, n in p.unit_spare_chips[u].items())}"
            rows.append({"group": label, "domain": "unit", "working": o.x[u], "spares": s_u,
                         "down_probability": p.unit_down[u], "p_covered": covered(o.x[u], s_u, p.unit_down[u])})
    for c, sr in sorted(o.spare_systems.items()):
        w = o.n.get(c, 0) // p.system_size[c] - sr
        if w or sr:
            rows.append({"group": f"{c} systems ({p.system_size[c]} chips)", "domain": "system", "working": w,
                         "spares": sr, "down_probability": p.rack_down[c], "p_covered": covered(w, sr, p.rack_down[c])})
    return pd.DataFrame(rows, columns=["group", "domain", "working", "spares", "down_probability", "p_covered"])


def serving_units(units: pd.DataFrame, shares: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """The units that serve class (or bucket) `name`: its own, and shared units with the tokens/s they
    serve of it (throughput_tok_s / prefill_tok_s replaced by that bucket's part)."""
    own = units[units["class"] == name] if len(units) else units
    if shares is None or not len(shares):
        return own
    mine = shares[shares["class"] == name]
    if not len(mine):
        return own
    part = units.iloc[mine["unit"].to_numpy()].copy()
    tok = mine["tok_s"].to_numpy()
    part["throughput_tok_s"] = np.where(part["kind"] == "prefill", 0.0, tok)
    part["prefill_tok_s"] = np.where(part["kind"] == "prefill", tok, 0.0)
    return pd.concat([own, part], ignore_index=True)


def with_class_totals(case, rows: list[dict]) -> list[dict]:
    """After each class given as a length distribution, a 'total' row: its buckets summed, its own
    targets, the worst speed among the buckets that must meet it and the worst TTFT likewise."""
    if not case.shapes:
        return rows
    out = []
    by_name = {tc.name: tc for tc in case.classes}
    for r in rows:
        out.append(r)
        tc = by_name[r["name"]]
        sh = case.shapes.get(tc.parent)
        if sh is None or tc.name != sh.buckets[-1]:
            continue
        mine = [x for x in rows if x["name"] in sh.buckets]
        speeds = [x["achieved_speed_tok_s_user"] for x in mine
                  if by_name[x["name"]].speed_required and x["achieved_speed_tok_s_user"] is not None]
        ttfts = [x["ttft_s"] for x in mine if by_name[x["name"]].ttft_required and x["ttft_s"] is not None]
        out.append({"name": sh.name, "model": tc.model, "demand_tok_s": sum(x["demand_tok_s"] for x in mine),
                    "served_tok_s": sum(x["served_tok_s"] for x in mine),
                    "capacity_tok_s": sum(x["capacity_tok_s"] for x in mine),
                    "min_speed_tok_s_user": sh.min_speed_tok_s_user,
                    "achieved_speed_tok_s_user": min(speeds) if speeds else None,
                    "ttft_s": max(ttfts) if ttfts else None, "ttft_target_s": sh.ttft_s, "level": "total", "parent": "",
                    "request_share": 1.0, "token_share": 1.0})
    return out


def shape_lines(case) -> list[str]:
    """How each class given as a length distribution was bucketed, and how well."""
    out = []
    for sh in case.shapes.values():
        pct = [f"TTFT p{sh.ttft_percentile:g}" if sh.ttft_percentile < 100 else "",
               f"speed p{sh.speed_percentile:g}" if sh.speed_percentile < 100 else ""]
        out.append(f"{sh.name}: {sh.rows:,} {'requests' if sh.source != 'lengths' else 'histogram entries'} in "
                   f"{len(sh.buckets)} length buckets, error ≤ {sh.max_error:.0%} (one mean pair: {sh.mean_pair_error:.0%})"
                   + ("; units may serve a contiguous range of buckets" if sh.merge_buckets else "")
                   + ("; targets: " + ", ".join(x for x in pct if x) if any(pct) else ""))
    return out


def unmeasured_warnings(case, chips: pd.DataFrame) -> list[str]:
    """Chips in the plan whose performance terms no measurement of their own architecture supports."""
    out = []
    for cid in chips.loc[chips["chips"] > 0, "chip"] if len(chips) else []:
        chip = case.chips[cid]
        terms = [chip.provenance[t] for t in MEASURED_BY if t in chip.provenance]
        if terms and not any(p.conf in ("calibrated", "reported") for p in terms):
            out.append(f"{cid}: no published measurement of its architecture ({chip.arch}); its efficiency terms are "
                       f"{terms[0].note or terms[0].conf} — treat its figures as an estimate")
    return out


MEASURED_BY = ("bw_eff", "flop_eff", "t_layer_us")
"""An architecture is measured when one of these terms comes from its own points (fitted) or its own
operator tables (reported: NVIDIA's bw_eff from aiconfigurator); inherited terms are estimates."""


OBJECTIVE_UNITS = {"tco": "USD/hour", "capex": "M USD", "power": "kW", "throughput": "share of demand"}


CONSTRAINT_COLUMNS = ["name", "binding", "slack", "shadow_price", "lp_shadow_price", "lp_slack", "limits_plan",
                      "unit", "slack_unit"]


def constraint_scale(p: FleetProblem, name: str) -> float:
    """A reported constraint's right-hand side: the scale its slack is judged against (1 when none)."""
    family, _ = family_of(name)
    return (family.rhs(p) if family is not None and family.rhs else 1.0) or 1.0


def constraint_scales(p: FleetProblem, constraints: pd.DataFrame) -> dict[str, float]:
    return {name: constraint_scale(p, name) for name in (constraints["name"] if len(constraints) else ())}


def constraint_frame(p: FleetProblem, o: Outcome) -> pd.DataFrame:
    """Each budget/target constraint, in user units (the family's, formulations/families.py):

    - slack, binding: what the whole-chip plan leaves unused, and whether that is nothing;
    - lp_shadow_price, lp_slack: the dual and slack of the LP behind the prices (stage choices fixed,
      counts relaxed, budget-derived bounds lifted), complementary by construction;
    - shadow_price: the price of the plan's own constraint — the LP's where the plan has no slack, 0
      where it has (a figure with slack has no shadow price); None for integer limits;
    - limits_plan: binding, or a budget the LP sits on with a positive price (whole-chip rounding
      leaves a sliver unused while the budget still decides the fleet). `fleet plan`, `fleet diff`,
      `fleet explain` and the report all list what limits the plan by this one column."""
    obj_unit = OBJECTIVE_UNITS[p.objective]
    total_demand = sum(p.demand_ktok_s.values()) * TOK_S_PER_KTOK_S
    rows = []
    for name, slack in sorted(o.slacks.items()):
        family, _ = family_of(name)
        unit = f"{obj_unit} {family.what}".strip()
        lp_price = None
        if family.has_dual and name in o.duals:
            lp_price = abs(o.duals[name]) * family.dual_scale
            if p.objective == "throughput" and family.budget:
                lp_price *= total_demand
        if p.objective == "throughput" and family.budget:
            unit = f"tok/s {family.what}"
        ref = constraint_scale(p, name)
        binding = bool(slack <= TOL * max(1.0, abs(ref)))
        price = None if lp_price is None else (lp_price if binding else 0.0)
        rows.append({"name": name, "binding": binding, "slack": slack, "shadow_price": price,
                     "lp_shadow_price": lp_price, "lp_slack": o.lp_slacks.get(name),
                     "limits_plan": binding or bool(family.budget and (lp_price or 0) > PRICE_TOL),
                     "unit": unit, "slack_unit": family.slack_unit})
    return pd.DataFrame(rows, columns=CONSTRAINT_COLUMNS)


def _price_text(v) -> str:
    """A shadow price to 3 significant figures ('-' for none: an integer limit or an LP that did not solve)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "0" if abs(v) <= PRICE_TOL else f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def plan_text(plan: Plan) -> str:
    """The readable plan."""
    from .reports import text_table

    o, case = plan.outcome, plan.problem.case
    year = (plan.purchase or {}).get("plan_year")
    bought = f", bought in {year_text(year)}" if year else ""
    lines = [f"fleet plan for case '{case.name}' — status: {o.status} (objective: {plan.problem.objective}{bought})", ""]
    chips = plan.chips.assign(**{"systems": [f"{s} × {n}" if s else "-" for s, n in
                                             zip(plan.chips["systems"], plan.chips["system_name"])]})
    cols = ["chip", "chips", "chips_in_use", "systems", "power_mw", "capex_usd", "tco_usd_per_hour"]
    if plan.problem.spare_fraction > 0 or plan.problem.availability is not None:
        cols[3:3] = ["spare_chips"]
    owned = bool(plan.problem.owned or plan.problem.owned_idle)
    if owned:
        cols[2:2] = ["bought", "owned_kept", "owned_retired"]
    lines += ["Chips in service (bought new + owned kept; retired owned chips draw no power)" if owned else "Chips to buy",
              text_table(chips[cols].to_dict("records"),
                         headers={"power_mw": "MW (site)", "capex_usd": "capex (USD)", "chips": "in service" if owned
                                  else "chips", "owned_kept": "owned kept", "owned_retired": "owned retired",
                                  "tco_usd_per_hour": "TCO (USD/h)", "chips_in_use": "in use", "spare_chips": "spares"}), ""]
    lines += ["Stages (chips per class and stage; 'shared' = the same chips run several stages)",
              text_table(plan.stages.to_dict("records")), ""]
    lines += ["Units", text_table(plan.units.to_dict("records"),
                                  headers={"speed_tok_s_user": "tok/s/user", "throughput_tok_s": "out tok/s",
                                           "prefill_tok_s": "prefill tok/s", "ttft_s": "TTFT (s)"}), ""]
    if plan.systems is not None and len(plan.systems):
        lines += ["Systems (how the units' groups sit in the racks and boards bought; 'unit N' is row N of Units, from 0)",
                  text_table(plan.systems.to_dict("records"), max_width=90,
                             headers={"chips_used_per_system": "chips used", "chips_idle_per_system": "idle"}), ""]
    if case.shapes:
        lines += ["Workload shape (a bucket's demand is its share of the class's output tokens)",
                  *shape_lines(case), ""]
    cls = plan.classes.to_dict("records")
    lines += ["Classes", text_table(cls, headers={"demand_tok_s": "demand (tok/s)", "served_tok_s": "served (tok/s)",
                                                  "min_speed_tok_s_user": "target (tok/s/user)",
                                                  "achieved_speed_tok_s_user": "achieved (tok/s/user)",
                                                  "ttft_s": "TTFT ≤ (s)", "ttft_target_s": "TTFT target (s)"}), ""]
    if plan.class_costs is not None and len(plan.class_costs) > 1:
        rows = [{"class": r["class"], "chips": f"{r['chips']:,.0f}", "TCO (USD/h)": f"{r['tco_usd_per_hour']:,.0f}",
                 "TCO share": f"{r['tco_share']:.1%}" if r["tco_share"] is not None else "-",
                 "MW (site)": f"{r['power_mw']:,.2f}", "capex (USD)": f"{r['capex_usd']:,.0f}",
                 "USD/Mtok": f"{r['usd_per_mtok']:.4f}" if r["usd_per_mtok"] is not None else "-"}
                for r in plan.class_costs.to_dict("records")]
        lines += ["Cost per class (each class's chips; shared units split by tokens served, idle and spare chips "
                  "by each class's share of their type)", text_table(rows), ""]
    if plan.spares is not None and len(plan.spares):
        pr = plan.problem
        ask = " and ".join(x for x in (f"availability {pr.availability}" if pr.availability is not None else "",
                                       f"spare_fraction {pr.spare_fraction}" if pr.spare_fraction else "") if x)
        lines += [f"Spares ({ask}; N working + k spare per group, binomial over failure domains; a system sold whole "
                  "is down while any of its chips is)",
                  text_table(plan.spares.assign(down_probability=plan.spares["down_probability"].map(lambda v: f"{v:.2e}"),
                                                p_covered=plan.spares["p_covered"].map(lambda v: f"{v:.6f}"))
                             .to_dict("records"), headers={"down_probability": "P(item down)",
                                                            "p_covered": "P(working ≥ load)"}), ""]
    if plan.slices is not None:
        lines += ["Daily profile (24 hourly slices; chips bought once for the peak; a bought chip that runs no unit "
                  f"draws {plan.problem.case.economics.idle_power_fraction:.0%} of its power)"]
        for j, v in (plan.profile_summary() or {}).items():
            lines.append(f"  {j}: demand peak {v['peak_demand_tok_s']:,.0f} / average {v['average_demand_tok_s']:,.0f} tok/s; "
                         f"utilisation of the fleet peak {v['peak_utilization']:.0%}, average {v['average_utilization']:.0%}")
        wrong = plan.sized_at_average
        if wrong:
            lines.append(f"  sized at the average demand instead: {', '.join(f'{n:,} {c}' for c, n in wrong['chips'].items())} "
                         f"({wrong['tco_usd_per_hour']:,.0f} USD/hour), serving only "
                         + "; ".join(f"{j} {v:.0%} of its peak" for j, v in wrong["peak_share_served"].items()))
        hourly = plan.slices.groupby("hour").agg(demand_tok_s=("demand_tok_s", "sum"),
                                                 running_capacity_tok_s=("running_capacity_tok_s", "sum"),
                                                 running_chips=("running_chips", "first"),
                                                 price_usd_per_kwh=("price_usd_per_kwh", "first")).reset_index()
        lines += [text_table(hourly.to_dict("records"), headers={"demand_tok_s": "demand (tok/s)",
                  "running_capacity_tok_s": "running capacity (tok/s)", "running_chips": "chips running",
                  "price_usd_per_kwh": "USD/kWh"}), ""]
    c = plan.cost
    lines += [f"Cost: capex {c['capex_usd']:,.0f} USD; TCO {c['tco_usd_per_hour']:,.0f} USD/hour; "
              f"{c['usd_per_mtok']:.4f} USD per million output tokens" if c["usd_per_mtok"] else "Cost: -",
              f"Power: {plan.power_mw:,.2f} MW at the site (PUE {plan.problem.pue}); "
              f"throughput {plan.throughput_tok_s:,.0f} output tok/s", ""]
    limits = plan.constraints[plan.constraints["limits_plan"].astype(bool)] if len(plan.constraints) else plan.constraints
    if len(limits):
        lines += ["Constraints that limit the plan (shadow price: the LP with stage choices fixed and counts relaxed;"
                  " none where the plan leaves slack)",
                  text_table([{"name": r["name"], "shadow_price": _price_text(r["shadow_price"]),
                               "unit": r["unit"], "unused by the plan": "-" if r["binding"] else
                               f"{r['slack']:,.4g} {r['slack_unit']} (LP price {_price_text(r['lp_shadow_price'])})"}
                              for r in limits.to_dict("records")], max_width=70), ""]
    for w in plan.warnings or []:
        lines.append(f"WARNING: {w}")
    gap = "-" if o.gap is None else f"{o.gap:.2e}"
    lines.append(f"Solve: {o.solver}, status {o.status}, gap {gap}, solve {o.wall_s:.2f} s, build {o.build_s:.2f} s, "
                 f"{len(plan.problem.units):,} candidate units, MILP {o.stats.get('rows', 0):,} rows × "
                 f"{o.stats.get('columns', 0):,} columns ({o.stats.get('integers', 0):,} integer)")
    return "\n".join(lines)
