"""Elastic fleet model for infeasibility diagnosis: the same MILP with each relaxable family's hard
row swapped for a penalised slack (formulations/fleet.py `relax_<family>`, the families declared in
formulations/families.py), so the solver says which targets cannot be met and by how much.

    a_j + d_j + short_j ≥ demand_j;  PUE·Σ power·n − over_power ≤ budget;
    Σ price·n − over_capex ≤ budget;  n_c − over_supply_c ≤ cap_c
    min  W·(1000·Σ_j short_j/demand_j + over_power/budget + over_capex/budget + Σ_c over_supply_c/cap_c) + cost
Slacks are scaled by their right-hand sides so a 10 % shortfall weighs the same everywhere;
W dwarfs any fleet cost, so a slack is used only when no fleet can do without it.
"""
from __future__ import annotations

import pyomo.environ as pyo

from planner.problem import FleetProblem

from .families import FAMILIES, Slack
from .fleet import RELAX, build_model, relax_unit_bounds, tco_usd_per_hour

PENALTY = 1e7
"""W: a whole budget's worth of overrun costs more than any fleet's USD/hour."""


def build_elastic(p: FleetProblem) -> pyo.ConcreteModel:
    m = build_model(p)
    m.alpha.fix(1.0)
    m.obj.deactivate()
    penalties = [RELAX[f.name](m, p) for f in FAMILIES if f.slack and m.component(f.name) is not None]
    relax_unit_bounds(m, p)
    m.obj_elastic = pyo.Objective(expr=PENALTY * sum(penalties[1:], penalties[0]) + tco_usd_per_hour(m, p),
                                  sense=pyo.minimize)
    return m


def slack_amounts(m) -> list[Slack]:
    """The solved elastic model's slacks, family by family in report order [model units]."""
    out = []
    for fam in FAMILIES:
        var = m.component(fam.slack) if fam.slack else None
        if var is None:
            continue
        if var.is_indexed():
            out += [Slack(fam, str(i), pyo.value(v)) for i, v in var.items()]
        else:
            out.append(Slack(fam, "", pyo.value(var)))
    return out
