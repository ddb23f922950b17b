"""Human summaries of cases: what `fleet validate` prints and what `fleet cases` lists."""
from __future__ import annotations

import tomllib

from .domain import Case
from .reports import text_table


def describe_case(case: Case) -> str:
    """The case as a reader wants it: question, fleet, limits and traffic classes."""
    lines = [f"case: {case.name}  ({case.source})"]
    if case.description:
        lines.append(first_sentence(case.description))
    lines.append(f"fleet chips: {', '.join(case.fleet.chips)}; modes: {', '.join(case.fleet.modes)}")
    for stage, chips in case.fleet.stages.items():
        lines.append(f"  {stage} only on: {', '.join(chips)}")
    c = case.constraints
    limits = [f"power ≤ {c.power_mw:g} MW" if c.power_mw else "",
              f"capex ≤ {c.capex_usd:,.0f} USD" if c.capex_usd else "",
              f"≤ {c.max_chip_types_per_stage} chip types per stage" if c.max_chip_types_per_stage else ""]
    limits += [f"{k} ≤ {v:,}" for k, v in c.supply.items()]
    lines.append("limits: " + ("; ".join(x for x in limits if x) or ("per period (below)" if case.periods else "none")))
    if case.fleet.owned:
        lines.append("owned: " + ", ".join(f"{o.count:,} {o.chip} ({o.age_years:g} yr old)" for o in case.fleet.owned))
    e = case.economics
    lines.append(f"economics: {e.electricity_usd_per_kwh} USD/kWh, PUE {e.pue}, chips amortised over "
                 f"{e.amortization_years:g} yr, facility {e.facility_capex_usd_per_mw:,.0f} USD/MW")
    rows = [{"class": t.name, "model": t.model, "precision": t.precision, "isl": t.isl, "osl": t.osl,
             "demand (tok/s)": t.demand_tok_s, "min speed (tok/s/user)": t.min_speed_tok_s_user,
             "TTFT (s)": t.ttft_s if t.ttft_required or t.ttft_s < 3600 else "- (beyond percentile)"}
            for t in case.classes]
    lines += ["", text_table(rows)]
    if case.periods:  # a roadmap: `fleet roadmap` plans these
        prow = [{"year": f"{t.year:g}", "years": t.years,
                 "demand growth": ", ".join(f"{k} ×{v:g}" if k != "*" else f"×{v:g}" for k, v in t.demand_growth.items()),
                 "power (MW)": t.power_mw or c.power_mw, "capex (USD)": t.capex_usd,
                 "electricity (USD/kWh)": t.electricity_usd_per_kwh or e.electricity_usd_per_kwh} for t in case.periods]
        lines += ["", f"periods (fleet roadmap; discount {e.discount_rate:.1%}/yr, service life {e.service_life_years:g} yr):",
                  text_table(prow)]
    return "\n".join(lines)


def first_sentence(text: str) -> str:
    """A description's question: its first sentence, even when the TOML wraps it over lines."""
    import re

    para = " ".join(text.strip().split("\n\n")[0].split())
    m = re.search(r"^(.+?[?.!])(\s|$)", para)
    return m.group(1) if m else para


def case_index() -> str:
    from .cases import shipped_cases

    rows = []
    for name, path in sorted(shipped_cases().items()):
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
            question = first_sentence(str(raw.get("description", "")))
        except (tomllib.TOMLDecodeError, OSError):
            question = "(unreadable)"
        rows.append({"case": name, "question": question})
    return text_table(rows, max_width=160)
