"""Complementary slackness of the prices a plan prints: a constraint with slack has no shadow price,
and a nonzero price has no slack — in the plan's own table (shadow_price against the plan's slack)
and in the LP the prices come from (lp_shadow_price against lp_slack). Checked after every plan; a
violation is a warning in every output, never a silent figure."""
from __future__ import annotations

import math

import pandas as pd

PRICE_TOL = 1e-7  # prices below this (user units) are solver round-off
SLACK_REL_TOL = 1e-6  # slack below this share of the constraint's scale is none


def _number(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def violations(constraints: pd.DataFrame, scale: dict[str, float] | None = None) -> list[str]:
    """Rows that break complementary slackness, as sentences (empty when every price is true).
    `scale`: each row's right-hand side (what a slack is measured against); default 1."""
    out = []
    for r in constraints.to_dict("records"):
        tol = SLACK_REL_TOL * max(1.0, abs((scale or {}).get(r["name"], 1.0)))
        for price_col, slack_col, where in (("shadow_price", "slack", "the plan"), ("lp_shadow_price", "lp_slack", "the LP")):
            price, slack = _number(r.get(price_col)), _number(r.get(slack_col))
            if price is not None and slack is not None and abs(price) > PRICE_TOL and slack > tol:
                out.append(f"{r['name']}: {where} leaves {slack:,.6g} {r.get('slack_unit') or ''} of slack yet prices it at "
                           f"{price:,.6g} {r.get('unit') or ''} (complementary slackness broken: treat the price as unreliable)")
    return out
