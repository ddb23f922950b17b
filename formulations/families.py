"""The constraint families a plan reports, each declared once: its Pyomo component (= the row names
in constraints.csv: `throughput[chat]`, `power`, `supply[rubin]`, `types_per_stage[prefill]`), the
unit of its dual, whether it is a budget or a target, its elastic slack (formulations/fleet.py's
`add_<family>(…, elastic=True)`) and how a used slack reads as a diagnosis.

Solve (slacks, shadow prices), results (constraints.csv), planning (infeasibility diagnosis),
explain, diff, the HTML report and the studies iterate FAMILIES or look a row up with `family_of`,
so adding a family is one entry here and one `add_<family>` in fleet.py. No Pyomo here: readers of
a plan directory import this without building a model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

from planner.errors import Problem as Diagnosis
from planner.units import KW_PER_MW, TOK_S_PER_KTOK_S, USD_PER_MUSD


@dataclass(frozen=True)
class Family:
    """One constraint family: where it lives in the model and how its slack and dual read."""

    name: str
    """The Pyomo component (indexed or not) and the prefix of its rows' names."""
    what: str
    """What one unit of relaxation is, in user units (the dual's unit, after the objective's)."""
    dual_scale: float = 1.0
    """Model units → user units of the dual (power: per kW in the model, per MW reported)."""
    has_dual: bool = True
    """False for integer limits: the LP with the stage choices fixed gives them no shadow price."""
    budget: bool = False
    """A budget (its LP marginal value is always reported; under the throughput objective it is
    tokens/s per unit); else a target, reported when binding."""
    slack: str | None = None
    """The elastic model's slack variable (model units), None when the family is never relaxed."""
    diagnose: Callable | None = None
    """(problem, index, slack in model units) → the diagnosis a used slack gives the user."""
    rhs: Callable | None = None
    """problem → the right-hand side in model units, the scale of 'binding' (default 1)."""
    slack_words: Callable | None = None
    """A budget's slack [model units] in user words ("1.2 MW", "3,000,000 USD", "40 chips")."""
    slack_unit: str = ""
    """The unit of the slack column of constraints.csv (the model's units)."""


def _demand_short(p, j: str, v: float) -> Diagnosis:
    short_tok_s, demand_tok_s = v * TOK_S_PER_KTOK_S, p.demand_ktok_s[j] * TOK_S_PER_KTOK_S
    return Diagnosis(f"classes.{j}.demand_tok_s", f"demand short by {short_tok_s:,.0f} tok/s "
                     f"({short_tok_s / demand_tok_s:.1%}) at the cheapest feasible fleet", "lower demand or raise budgets")


def _power_short(p, _idx, v_kw: float) -> Diagnosis:
    need_mw = (p.power_kw_budget + v_kw) / KW_PER_MW
    return Diagnosis("constraints.power_mw", f"power short by {mw_words(v_kw / KW_PER_MW)} at the cheapest feasible fleet",
                     f"raise power_mw to ≥ {math.ceil(need_mw * 1e4) / 1e4:,.4g}")


def _capex_short(p, _idx, v_musd: float) -> Diagnosis:
    return Diagnosis("constraints.capex_usd", f"capex short by {v_musd * USD_PER_MUSD:,.0f} USD",
                     f"raise capex_usd to ≥ {p.capex_usd_budget + v_musd * USD_PER_MUSD:,.0f}")


def _supply_short(p, c: str, v_chips: float) -> Diagnosis:
    chips = math.ceil(v_chips - 1e-6)
    return Diagnosis(f"constraints.supply.{c}", f"supply short by {chips:,} chips",
                     f"raise the cap to ≥ {p.supply[c] + chips:,}")


def mw_words(mw: float) -> str:
    """A power shortfall readable at any size: 2.37 MW, 4.1 kW."""
    return f"{mw:,.2f} MW" if mw >= 0.01 else f"{mw * 1000:,.3g} kW"


FAMILIES: tuple[Family, ...] = (
    Family("throughput", "per extra 1,000 output tok/s of demand", slack="short", diagnose=_demand_short,
           slack_unit="1,000 output tok/s"),
    Family("prefill", "per extra 1,000 input tok/s of prefill", slack_unit="1,000 input tok/s"),
    Family("power", "per extra MW", dual_scale=KW_PER_MW, budget=True, slack="over_power", diagnose=_power_short,
           rhs=lambda p: p.power_kw_budget, slack_words=lambda kw: f"{kw / KW_PER_MW:,.3g} MW", slack_unit="kW (site)"),
    Family("capex", "per extra M USD", budget=True, slack="over_capex", diagnose=_capex_short,
           rhs=lambda p: p.capex_musd_budget or 0.0, slack_words=lambda musd: f"{musd * USD_PER_MUSD:,.0f} USD",
           slack_unit="M USD"),
    Family("supply", "per extra chip", budget=True, slack="over_supply", diagnose=_supply_short,
           slack_words=lambda chips: f"{chips:,.0f} chips", slack_unit="chips"),
    Family("types_per_stage", "(integer limit: no shadow price)", has_dual=False, slack_unit="chip types"),
)
"""In report order: the slacks, duals and diagnoses come out in this order."""

BY_NAME = {f.name: f for f in FAMILIES}
BUDGETS = tuple(f.name for f in FAMILIES if f.budget)


def family_of(row: str) -> tuple[Family | None, str]:
    """A constraints row's name → (its family or None, its index: 'chat' of 'throughput[chat]', '' if none)."""
    name, _, rest = str(row).partition("[")
    return BY_NAME.get(name), rest[:-1] if rest.endswith("]") else rest


def is_budget(row: str) -> bool:
    fam, _ = family_of(row)
    return fam is not None and fam.budget


class Slack(NamedTuple):
    """An elastic slack's amount [model units] at the diagnosing optimum."""

    family: Family
    index: str
    amount: float

    def diagnosis(self, p) -> Diagnosis:
        return self.family.diagnose(p, self.index, self.amount)
