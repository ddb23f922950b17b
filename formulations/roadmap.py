"""The multi-period roadmap MILP: one fleet model per period, linked by the chips each period keeps.

Index sets
    T   periods t (planner/roadmap.py RoadmapProblem), each a block built by formulations/fleet.py
        (units x, chips in service n, systems, spares, hourly slices, power, stage assignment)
    G   cohorts g: an owned stock ([[fleet.owned]] entry) or the chips of type c bought in period τ;
        each has a chip c(g), the periods it may serve (before its service life ends) and a lot
        size (whole systems for chips sold by system, else 1 chip)
Variables
    k[g,t] ∈ ℤ≥0   lots of cohort g in service in period t; for a purchase cohort (c, τ), k[g,τ] is
                   what period τ buys
Rows
    n_{c,t} = Σ_{g: c(g)=c} lot_g · k[g,t]          chips in service are the kept cohorts
    k[g,t] ≤ k[g,t−1]                                 retiring is for good (no chip comes back)
    k[g,t₀] ≤ owned_g                                 the owned stock
    Σ_c price_c · lot · k[(c,t),t] ≤ capex_t          what a period spends on chips   [M USD]
    lot · k[(c,t),t] ≤ supply_{c,t}                   what a period may buy of chip c
Objective (net present value, M USD)
    Σ_t W_t · running_t(n_t)  +  Σ_{g bought} V_g · price_c · lot · k[g,τ_g]
    W_t = 8,760 · ∫_{period t} (1+r)^−s ds: discounted hours of period t (s in years from the first
    period; running_t in USD/h, so the sum is divided by 1e6); V_g = ∫ over the cohort's depreciation years inside the horizon of (1+r)^−s ds /
    depreciation years: straight-line depreciation, discounted. Book value left at the horizon's
    end is not charged (the chips still serve after it), so a purchase in the last period is not
    penalised for the years the plan does not see.
"""
from __future__ import annotations

import pyomo.environ as pyo

from . import fleet


def build_roadmap(r) -> pyo.ConcreteModel:
    """r: planner.roadmap.RoadmapProblem → the whole roadmap MILP."""
    m = pyo.ConcreteModel(name=f"roadmap[{r.case.name}]")
    m.T = pyo.Set(initialize=range(len(r.periods)), doc="periods")
    m.period = pyo.Block(m.T, doc="one fleet model per period")
    for t in m.T:
        add_period(m.period[t], r.problems[t], r.usable[t])
    add_cohorts(m, r)
    add_period_capex(m, r)
    add_period_supply(m, r)
    m.obj = pyo.Objective(expr=npv_musd(m, r), sense=pyo.minimize)
    return m


def add_period(b, p, usable: set[str]) -> None:
    """The single-period fleet rows (formulations/fleet.py) on block b, without what the roadmap owns:
    purchases, owned stock, capex, supply and the objective. Units on chips no cohort can supply in
    this period are ruled out."""
    fleet.add_variables(b, p)
    fleet.add_throughput(b, p)
    fleet.add_prefill(b, p)
    fleet.add_slices(b, p)
    fleet.add_sharing(b, p)
    fleet.add_chip_count(b, p)
    fleet.add_systems(b, p)
    fleet.add_spares(b, p)
    fleet.add_power(b, p)
    fleet.add_assignment(b, p)
    for u in p.unit_ids:
        if not set(p.unit_chips[u]) <= usable:
            b.x[u].fix(0)


def add_cohorts(m, r) -> None:
    """k[g,t] per cohort and period it may serve; chips in service = Σ kept lots; retiring is for good."""
    keys = [(g, t) for g, co in enumerate(r.cohorts) for t in co.periods]
    m.G = pyo.Set(initialize=range(len(r.cohorts)), doc="cohorts: owned stocks and purchases")
    m.GT = pyo.Set(initialize=keys, dimen=2, doc="(cohort, period it may serve)")

    def bounds(_, g, t):
        co = r.cohorts[g]
        return (0, co.owned_lots if co.bought_in is None else None)

    m.k = pyo.Var(m.GT, within=pyo.NonNegativeIntegers, bounds=bounds, doc="lots of cohort g in service in period t")
    m.retire_for_good = pyo.Constraint(
        [(g, t) for g, t in keys if t != r.cohorts[g].periods[0]],
        rule=lambda m, g, t: m.k[g, t] <= m.k[g, r.cohorts[g].periods[r.cohorts[g].periods.index(t) - 1]],
        doc="a retired chip does not come back")
    by_chip_t: dict[tuple[str, int], list[int]] = {}
    for g, t in keys:
        by_chip_t.setdefault((r.cohorts[g].chip, t), []).append(g)
    m.in_service = pyo.Constraint(
        [(c, t) for t in m.T for c in r.problems[t].chips],
        rule=lambda m, c, t: m.period[t].n[c] == sum(r.cohorts[g].lot * m.k[g, t] for g in by_chip_t.get((c, t), [])),
        doc="chips in service are the cohorts kept")


def bought_lots(m, r, t: int):
    """(cohort, lots bought in period t) for every purchase cohort of period t."""
    return [(g, m.k[g, t]) for g, co in enumerate(r.cohorts) if co.bought_in == t]


def add_period_capex(m, r) -> None:
    """Σ_c price_c · lot · k[(c,t),t] ≤ capex_t   [M USD] for periods with a capex budget."""
    T = [t for t in m.T if r.capex_musd[t] is not None and bought_lots(m, r, t)]
    m.period_capex = pyo.Constraint(T, rule=lambda m, t: sum(
        r.cohorts[g].price_musd * r.cohorts[g].lot * k for g, k in bought_lots(m, r, t)) <= r.capex_musd[t],
        doc="period capex budget")


def add_period_supply(m, r) -> None:
    """lot · k[(c,t),t] ≤ supply_{c,t}   [chips bought new in period t]."""
    rows = [(g, r.cohorts[g].bought_in) for g, co in enumerate(r.cohorts)
            if co.bought_in is not None and co.supply is not None]
    m.period_supply = pyo.Constraint(rows, rule=lambda m, g, t: r.cohorts[g].lot * m.k[g, t] <= r.cohorts[g].supply,
                                     doc="period supply cap")


def npv_musd(m, r):
    """Discounted running cost of every period + discounted straight-line depreciation of every purchase."""
    running = sum(r.hours_weight[t] * fleet.running_usd_per_hour(m.period[t], r.problems[t]) for t in m.T)
    capex = sum(co.depreciation_weight * co.price_musd * co.lot * m.k[g, co.bought_in]
                for g, co in enumerate(r.cohorts) if co.bought_in is not None)
    return running / 1e6 + capex
