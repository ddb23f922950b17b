"""Cost per class: what each traffic class's share of the fleet costs (TCO, capex, MW, chips, USD/Mtok).

A blended USD per million tokens hides that a cheap class subsidises a dear one. Each class is
charged for the chips its units run on (copies and spare copies); a unit shared between length
buckets is split by the tokens it serves each. Chips a class's units do not occupy themselves —
system leftovers, spare systems, owned chips kept — and a chip type's fixed cost are charged
to the classes in proportion to their chips of that type. The classes' TCO adds up to the plan's.
"""
from __future__ import annotations

import pandas as pd

from .problem import unit_parts

COLUMNS = ["class", "chips", "tco_usd_per_hour", "tco_share", "capex_usd", "power_mw", "served_tok_s", "usd_per_mtok"]


def class_chips(units: pd.DataFrame, shares: pd.DataFrame | None) -> dict[str, dict[str, float]]:
    """class → chip → chips its units occupy (copies + spare copies; shared units split by tok/s served)."""
    split: dict[int, dict[str, float]] = {}
    if shares is not None and len(shares):
        for u, d in shares.groupby("unit"):
            total = float(d["tok_s"].sum())
            if total > 0:
                split[int(u)] = {str(j): float(v) / total for j, v in zip(d["class"], d["tok_s"])}
    out: dict[str, dict[str, float]] = {}
    for i, r in enumerate(units.to_dict("records")):
        copies = float(r["copies"]) + float(r.get("spares", 0) or 0)
        for chip, n, _ in unit_parts(r["kind"], r["attn_chip"], r["n_attn"], r["ffn_chip"], r["n_ffn"],
                                     r.get("draft_chip", "") or "", r.get("n_draft", 0) or 0):
            for j, w in split.get(i, {str(r["class"]): 1.0}).items():
                mine = out.setdefault(j, {})
                mine[chip] = mine.get(chip, 0.0) + w * float(n) * copies
    return out


def class_cost_frame(units: pd.DataFrame, shares: pd.DataFrame | None, chips: pd.DataFrame,
                     fixed_usd_per_hour: dict[str, float], served_tok_s: dict[str, float]) -> pd.DataFrame:
    """One row per class (in served_tok_s's order): its share of every chip type's cost."""
    occupied = class_chips(units, shares)
    by_chip = {r["chip"]: r for r in chips.to_dict("records")}
    type_total = {c: sum(m.get(c, 0.0) for m in occupied.values()) for c in by_chip}
    total_tco = float(chips["tco_usd_per_hour"].sum()) + sum(fixed_usd_per_hour.get(c, 0.0) for c in by_chip)
    rows = []
    for j, served in served_tok_s.items():
        row = {"class": j, "chips": 0.0, "tco_usd_per_hour": 0.0, "capex_usd": 0.0, "power_mw": 0.0}
        for c, r in by_chip.items():
            if type_total[c] <= 0:
                continue
            w = occupied.get(j, {}).get(c, 0.0) / type_total[c]
            row["chips"] += w * float(r["chips"])
            row["tco_usd_per_hour"] += w * (float(r["tco_usd_per_hour"]) + fixed_usd_per_hour.get(c, 0.0))
            row["capex_usd"] += w * float(r["capex_usd"])
            row["power_mw"] += w * float(r["power_mw"])
        row["tco_share"] = row["tco_usd_per_hour"] / total_tco if total_tco > 0 else None
        row["served_tok_s"] = served
        row["usd_per_mtok"] = row["tco_usd_per_hour"] / (served * 3600 / 1e6) if served > 0 else None
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)
