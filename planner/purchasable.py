"""Chips a plan can buy: on sale at all (`sold`) and shipping in volume by the plan's year.

A plan is bought in one year ([options] year; default the case's first period, else the chip
catalog's date). A chip the vendor does not sell, or that ships only later, is not bought: the plan
says so, one line per chip. Owned chips of that type still serve. `[options] allow_unavailable =
true` keeps such chips buyable for a what-if, and the plan then warns in every output (text, JSON,
run.json, the report). Roadmaps apply the same rule per period (`can_buy`).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from .domain import Case, Chip
from .errors import CaseError, Problem


def can_buy(chip: Chip, year: float) -> bool:
    """On sale, and shipping in volume by `year` (decimal: 2026.5 = H2-2026)."""
    return chip.sold and chip.available_year <= year


def why_not(chip: Chip, year: float) -> str | None:
    """Why `chip` cannot be bought in `year`, or None when it can."""
    if not chip.sold:
        note = chip.provenance.get("sold")
        return "is not sold" + (f": {note.note}" if note and note.note else "")
    if chip.available_year > year:
        return f"ships in volume only from {year_text(chip.available_year)}"
    return None


def catalog_year(case: Case) -> float | None:
    """The chip catalog's date as a decimal year (None when the catalog carries no date)."""
    for label, version in case.catalog_versions.items():
        if label.endswith("chips.toml"):
            try:
                d = dt.date.fromisoformat(version)
            except ValueError:
                return None
            days = (dt.date(d.year + 1, 1, 1) - dt.date(d.year, 1, 1)).days
            return d.year + (d.timetuple().tm_yday - 1) / days
    return None


def plan_year(case: Case) -> float | None:
    """[options] year, else the case's first period, else the chip catalog's date."""
    if "year" in case.options:
        return float(case.options["year"])
    if case.periods:
        return case.periods[0].year
    return catalog_year(case)


def year_text(year: float) -> str:
    return f"{year:.0f}" if float(year).is_integer() else f"{year:.2f}".rstrip("0")


def held_back(case: Case) -> dict[str, str]:
    """Chips the case would buy that its plan year cannot: chip → why."""
    year = plan_year(case)
    if year is None:
        return {}
    whys = {c: why_not(case.chips[c], year) for c in case.fleet.chips if case.fleet.buyable(c)}
    return {c: why for c, why in whys.items() if why}


def summary(case: Case) -> dict:
    """The JSON record of the purchase year: what outputs print beside the plan."""
    return {"plan_year": plan_year(case), "allow_unavailable": bool(case.options.get("allow_unavailable", False)),
            "not_buyable": held_back(case)}


def for_plan_year(case: Case) -> tuple[Case, list[str]]:
    """The case with only the chips its year can buy left buyable, and one line per chip held back
    (or, under allow_unavailable, one warning per chip bought regardless)."""
    year = plan_year(case)
    fleet = case.fleet
    held = held_back(case)
    if not held:
        return case, []
    at = year_text(year)
    if case.options.get("allow_unavailable"):
        return case, [f"WHAT-IF ([options] allow_unavailable): {case.chips[c].name} may be bought although it {why}; "
                      f"this plan cannot be ordered in {at}" for c, why in held.items()]
    lines = [f"{case.chips[c].name} is not bought: it {why} (plan year {at}"
             + (f"; the {fleet.owned_count(c):,} owned still serve" if fleet.owned_count(c) else "")
             + "); [options] allow_unavailable = true plans it as a what-if" for c, why in held.items()]
    keep = tuple(c for c in fleet.chips if c not in held or fleet.owned_count(c))
    buy = tuple(c for c in fleet.chips if fleet.buyable(c) and c not in held)
    stages = {s: tuple(c for c in cs if c in keep) for s, cs in fleet.stages.items()}
    emptied = [s for s, cs in stages.items() if fleet.stages[s] and not cs]
    if not keep or emptied:
        where = "fleet.chips" if not keep else f"fleet.stages.{emptied[0]}"
        raise CaseError(f"no chip {where} allows can be bought in {at}", [Problem(
            where, "; ".join(f"{c} {why}" for c, why in held.items()),
            f"allow a chip on sale in {at}, set [options] year to a later year, or [options] allow_unavailable = true "
            "for a what-if")])
    return replace(case, fleet=replace(fleet, chips=keep, buy=buy, stages=stages)), lines
