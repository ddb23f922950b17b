"""The multi-period roadmap MILP: one fleet model per period, linked by the chips each period keeps.

Index sets
    T   periods t (planner/roadmap.py RoadmapProblem), each a block built by formulations/fleet.py
        (units x, chips in service n, systems, spares, hourly slices, power, stage assignment)
    B   purchases (c, τ): chip c bought in period τ (from its available_year); lot_c chips per lot
        (whole systems: racks, boards; 1 for chips bought one at a time)
Variables
    b[c,τ] ∈ ℤ≥0   lots of chip c bought in period τ
Rows (chips of one type are identical, so retiring the oldest first is optimal, and the stock needs
no per-cohort variables):
    n_{c,t} ≤ n_{c,t−1} + lot_c · b[c,t]    (n_{c,−1} = owned_c)   retiring is for good
    n_{c,t} ≤ A_{c,t}                         only chips younger than their service life serve:
              A_{c,t} = owned stocks still in life at t + Σ_{τ ≤ t, in life at t} lot_c · b[c,τ]
    Σ_c price_c · lot_c · b[c,t] ≤ capex_t    what a period spends on chips   [M USD]
    lot_c · b[c,t] ≤ supply_{c,t}             what a period may buy of chip c
Exactness: with oldest-first retirement the chips in service at t are the youngest n_{c,t} of those
alive; those still alive at t+1 are min(n_{c,t}, A^{≤t}_{c,t+1}), so n_{c,t+1} ≤ that + lot·b[c,t+1],
which is the two rows above (tested against a brute-force enumeration of per-cohort retirements).
Objective (net present value, M USD)
    Σ_t W_t · running_t(n_t) / 1e6  +  Σ_{(c,τ)} V_{c,τ} · price_c · lot_c · b[c,τ]
    W_t = 8,760 · ∫_{period t} (1+r)^−s ds: discounted hours of period t (s in years from the first
    period; running_t in USD/h); V_{c,τ} = ∫ over the purchase's depreciation years inside the
    horizon of (1+r)^−s ds / depreciation years: straight-line depreciation, discounted. Book value
    left at the horizon's end is not charged (the chips still serve after it), so a purchase in the
    last period is not penalised for the years the plan does not see.
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
    add_stock(m, r)
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
    fleet.add_packing(b, p)
    fleet.add_power(b, p)
    fleet.add_assignment(b, p)
    for u in p.unit_ids:
        if not set(p.unit_chips[u]) <= usable:
            b.x[u].fix(0)


def add_stock(m, r) -> None:
    """b[c,τ] per purchase; chips in service follow from the previous period's plus purchases, and
    from the chips still within their service life."""
    P = [(g, co.bought_in) for g, co in enumerate(r.cohorts) if co.bought_in is not None]
    m.P = pyo.Set(initialize=P, dimen=2, doc="(purchase cohort, its period)")
    m.b = pyo.Var(m.P, within=pyo.NonNegativeIntegers, doc="lots bought")
    buys: dict[tuple[str, int], list[int]] = {}
    for g, t in P:
        buys.setdefault((r.cohorts[g].chip, t), []).append(g)
    owned = [co for co in r.cohorts if co.bought_in is None]
    rows = [(c, t) for t in m.T for c in r.problems[t].chips]

    def bought(c, t):
        return sum(r.cohorts[g].lot * m.b[g, t] for g in buys.get((c, t), []))

    def carry(m, c, t):
        before = sum(co.owned_lots * co.lot for co in owned if co.chip == c) if t == 0 else m.period[t - 1].n[c]
        return m.period[t].n[c] <= before + bought(c, t)

    def in_life(m, c, t):
        alive = sum(co.owned_lots * co.lot for co in owned if co.chip == c and t in co.periods) + sum(
            r.cohorts[g].lot * m.b[g, tau] for g, tau in P if r.cohorts[g].chip == c and t in r.cohorts[g].periods)
        if isinstance(alive, (int, float)):  # nothing can serve: an upper bound, not a row
            m.period[t].n[c].setub(alive)
            return pyo.Constraint.Skip
        return m.period[t].n[c] <= alive

    m.carry = pyo.Constraint(rows, rule=carry, doc="chips in service: the previous period's plus purchases")
    m.in_life = pyo.Constraint(rows, rule=in_life, doc="only chips within their service life serve")


def bought_lots(m, r, t: int):
    """(cohort, lots bought in period t) for every purchase cohort of period t."""
    return [(g, m.b[g, t]) for g, co in enumerate(r.cohorts) if co.bought_in == t]


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
    m.period_supply = pyo.Constraint(rows, rule=lambda m, g, t: r.cohorts[g].lot * m.b[g, t] <= r.cohorts[g].supply,
                                     doc="period supply cap")


def npv_musd(m, r):
    """Discounted running cost of every period + discounted straight-line depreciation of every purchase."""
    running = sum(r.hours_weight[t] * fleet.running_usd_per_hour(m.period[t], r.problems[t]) for t in m.T)
    capex = sum(co.depreciation_weight * co.price_musd * co.lot * m.b[g, co.bought_in]
                for g, co in enumerate(r.cohorts) if co.bought_in is not None)
    return running / 1e6 + capex
