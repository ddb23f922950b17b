"""Elastic fleet model for infeasibility diagnosis: the same MILP with penalised slacks on demand,
power, capex and supply, so the solver says which targets cannot be met and by how much.

    a_j + d_j + short_j ≥ demand_j;  PUE·Σ power·n − over_power ≤ budget;
    Σ price·n − over_capex ≤ budget;  n_c − over_supply_c ≤ cap_c
    min  W·(1000·Σ_j short_j/demand_j + over_power/budget + over_capex/budget + Σ_c over_supply_c/cap_c) + cost
Slacks are scaled by their right-hand sides so a 10 % shortfall weighs the same everywhere;
W dwarfs any fleet cost, so a slack is used only when no fleet can do without it.
"""
from __future__ import annotations

import pyomo.environ as pyo

from planner.problem import Problem

from .fleet import bought, build_model, capex_musd, site_power_kw, tco_usd_per_hour

PENALTY = 1e7
DEMAND_WEIGHT = 1e3
"""Demand is the target; budgets are what the answer should stretch first ("power short by 3.2 MW")."""


def build_elastic(p: Problem) -> pyo.ConcreteModel:
    m = build_model(p)
    m.alpha.fix(1.0)
    m.obj.deactivate()
    m.short = pyo.Var(m.J, within=pyo.NonNegativeReals, doc="unmet demand [k tok/s]")
    m.throughput.deactivate()
    m.throughput_elastic = pyo.Constraint(m.J, rule=lambda m, j: m.served_agg[j] + m.served_dis[j] + m.short[j]
                                          >= p.demand_ktok_s[j])
    penalty = DEMAND_WEIGHT * sum(m.short[j] / p.demand_ktok_s[j] for j in m.J)
    if hasattr(m, "slice_throughput"):  # the same shortfall, scaled to each slice's share of the peak
        m.slice_throughput.deactivate()
        m.slice_throughput_elastic = pyo.Constraint(m.J, m.H, rule=lambda m, j, h: m.sh_agg[j, h] + m.sh_dis[j, h]
                                                    + m.short[j] * p.slice_demand_ktok_s[j, h] / p.demand_ktok_s[j]
                                                    >= p.slice_demand_ktok_s[j, h])
    if hasattr(m, "power"):
        m.power.deactivate()
        m.over_power = pyo.Var(within=pyo.NonNegativeReals, doc="power over budget [kW]")
        m.power_elastic = pyo.Constraint(expr=site_power_kw(m, p) - m.over_power <= p.power_kw_budget)
        penalty += m.over_power / p.power_kw_budget
    if hasattr(m, "capex"):
        m.capex.deactivate()
        m.over_capex = pyo.Var(within=pyo.NonNegativeReals, doc="capex over budget [M USD]")
        m.capex_elastic = pyo.Constraint(expr=capex_musd(m, p) - m.over_capex <= p.capex_usd_budget / 1e6)
        penalty += m.over_capex / (p.capex_usd_budget / 1e6)
    if hasattr(m, "supply"):
        m.supply.deactivate()
        S = sorted(p.supply)
        m.over_supply = pyo.Var(S, within=pyo.NonNegativeReals, doc="chips over supply cap")
        m.supply_elastic = pyo.Constraint(S, rule=lambda m, c: bought(m, c) - m.over_supply[c] <= p.supply[c])
        penalty += sum(m.over_supply[c] / max(p.supply[c], 1) for c in S)
    for u in p.unit_ids:  # the unit bounds came from the budgets; an elastic model may exceed them
        m.x[u].setub(None)
    if hasattr(m, "assign"):
        m.assign.deactivate()
        pairs = [(u, s, c) for u in p.unit_ids for (s, c) in p.unit_stages[u]]
        bigm = {u: int(2 * p.unit_demand_ktok_s(u) * max(p.isl_per_osl.values(), default=1)
                       / max(p.unit_tput_ktok_s[u] or p.unit_prefill_ktok_s[u], 1e-9)) + 1 for u in p.unit_ids}
        m.assign_elastic = pyo.Constraint(range(len(pairs)), rule=lambda m, i: m.x[pairs[i][0]]
                                          <= bigm[pairs[i][0]] * m.y[pairs[i][1], pairs[i][2]])
    cost = tco_usd_per_hour(m, p)
    m.obj_elastic = pyo.Objective(expr=PENALTY * penalty + cost, sense=pyo.minimize)
    return m
