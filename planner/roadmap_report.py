"""What `fleet roadmap` prints and writes: the per-year table, the chip moves, a chart, the files."""
from __future__ import annotations

import json
from pathlib import Path

from .reports import text_table, to_csv, to_json

ROADMAP_FILES = ("periods.csv", "chips.csv", "units.csv", "roadmap.json", "run.json", "roadmap.png")

PERIOD_HEADERS = {"year": "year", "demand_tok_s": "demand (tok/s)", "chips_in_service": "in service",
                  "chips_in_use": "in use", "chips_bought": "bought", "chips_retired": "retired", "power_mw": "MW",
                  "power_budget_mw": "MW budget", "capex_usd": "capex (USD)", "capex_budget_usd": "capex budget (USD)",
                  "cost_usd_per_year": "cost (USD/yr)", "usd_per_mtok": "USD/Mtok", "npv_usd": "NPV share (USD)"}
CHIP_HEADERS = {"year": "year", "chip": "chip", "bought": "bought", "in_service": "in service", "in_use": "in use",
                "retired": "retired", "retired_end_of_life": "of which end of life", "power_mw": "MW",
                "capex_usd": "capex (USD)"}


def _year(v: float) -> str:
    return f"{v:g}"


def stage_summary(plan) -> str:
    """'chat: prefill h100-sxm ×1,332; decode rubin ×360 + h100-sxm ×324' for one period's plan."""
    parts = []
    st = plan.stages
    for j, g in st.groupby("class", sort=False):
        pieces = []
        for stage, label in (("prefill", "prefill"), ("decode_attention", "decode"), ("decode_ffn", "FFN"),
                             ("decode_draft", "draft")):
            rows = g[g["stage"] == stage].groupby("chip", sort=False)["chips"].sum().sort_values(ascending=False)
            if stage == "decode_ffn":
                att = g[g["stage"] == "decode_attention"].groupby("chip", sort=False)["chips"].sum()
                if rows.sort_index().equals(att.sort_index()):
                    continue  # FFN beside attention on the same chips: said once, as decode
            if len(rows):
                pieces.append(f"{label} " + " + ".join(f"{c} ×{int(n):,}" for c, n in rows.items()))
        parts.append(f"{j}: " + "; ".join(pieces))
    return " | ".join(parts)


def roadmap_text(rm) -> str:
    case, e = rm.problem.case, rm.problem.case.economics
    per = rm.periods
    first, last = per["year"].iloc[0], per["year"].iloc[-1] + per["years"].iloc[-1]
    lines = [f"Roadmap for {case.name}: {len(per)} period(s), {_year(first)}–{_year(per['year'].iloc[-1])} "
             f"(the horizon ends {_year(last)}), "
             f"NPV {rm.npv_usd / 1e6:,.1f} M USD (discount {e.discount_rate:.1%}/yr, straight-line depreciation "
             f"{e.amortization_years:g} yr, service life {e.service_life_years:g} yr)", ""]
    rows = [{**r, "year": _year(r["year"])} for r in per.to_dict("records")]
    lines.append(text_table(rows, list(PERIOD_HEADERS), PERIOD_HEADERS))
    lines += ["", "What to buy, keep and retire (chips; whole systems for rack-scale chips)"]
    crow = [{**r, "year": _year(r["year"])} for r in rm.chips.to_dict("records")]
    lines.append(text_table(crow, list(CHIP_HEADERS), CHIP_HEADERS))
    lines += ["", "Which chip runs which stage (an aggregated unit's chips count under both prefill and decode)"]
    lines += [f"  {_year(p.year)}: {stage_summary(plan)}" for p, plan in zip(rm.problem.periods, rm.plans)]
    for w in rm.warnings:
        lines.append(f"warning: {w}")
    s, t = rm.stats, rm.timings_s
    gap = "-" if rm.gap is None else f"{rm.gap:.2e}"
    lines += ["", f"Solve: {s.get('solver', 'HiGHS')}, status {rm.status}, gap {gap}, solve {t.get('solve_s', 0):.2f} s, "
              f"build {t.get('build_s', 0):.2f} s, MILP {s['rows']:,} rows × {s['columns']:,} columns "
              f"({s['integers']:,} integer)"]
    return "\n".join(lines) + "\n"


def roadmap_figure(rm):
    """Two panels over the years: chips in service by type (stacked), and site MW against its budget
    with the yearly cost."""
    import numpy as np
    from matplotlib.figure import Figure

    from .plots import COLORS, human

    per, chips = rm.periods, rm.chips
    years = [_year(y) for y in per["year"]]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    if len(chips):
        pivot = chips.pivot_table(index="year", columns="chip", values="in_service", aggfunc="sum", fill_value=0, sort=False)
        pivot = pivot.reindex(per["year"], fill_value=0)
    else:  # nothing in service in any period (no demand, nothing owned)
        import pandas as pd

        pivot = pd.DataFrame(index=per["year"])
    bottom = np.zeros(len(pivot))
    for i, c in enumerate(pivot.columns):
        vals = pivot[c].to_numpy(float)
        ax1.bar(np.arange(len(years)), vals, bottom=bottom, color=COLORS[i % len(COLORS)], label=c,
                hatch=["", "//", "..", "xx", "\\\\"][i % 5], edgecolor="white")
        bottom += vals
    for x, total in enumerate(bottom):
        ax1.annotate(human(total), (x, total), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    ax1.set_xticks(np.arange(len(years)), years)
    ax1.set_ylabel("chips in service")
    ax1.set_xlabel("period (year)")
    ax1.set_title("Fleet by year")
    if len(pivot.columns):
        ax1.legend(fontsize=8, frameon=False, ncols=3, loc="upper left")
    ax1.grid(True, axis="y", alpha=0.3)
    ax1.set_ylim(0, max(bottom.max() if len(bottom) else 0, 1) * 1.3)  # room for the legend above the bars
    x = np.arange(len(years))
    ax2.bar(x, per["power_mw"], color=COLORS[0], label="site power (MW)", width=0.6)
    budget = per["power_budget_mw"].astype(float)
    if budget.notna().any():  # each period's own budget, a step per bar
        ax2.hlines(budget, x - 0.4, x + 0.4, colors="k", linestyles="--", label="power budget (MW)")
    ax2.set_xticks(x, years)
    ax2.set_ylabel("MW at the site")
    ax2.set_xlabel("period (year)")
    ax2.set_title("Power and yearly cost")
    ax2.grid(True, axis="y", alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(x, per["cost_usd_per_year"] / 1e6, color=COLORS[1], marker="o", label="cost (M USD/yr)")
    ax3.set_ylabel("cost (M USD per year)")
    ax3.set_ylim(0, max(float(per["cost_usd_per_year"].max()) / 1e6, 1e-6) * 1.2)
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, frameon=False, loc="upper left")
    fig.suptitle(f"{rm.problem.case.name}: NPV {rm.npv_usd / 1e6:,.0f} M USD")
    return fig


def write_roadmap(rm, out_dir: str | Path, run: dict, force: bool = False) -> list[Path]:
    """periods.csv, chips.csv, units.csv, roadmap.json, run.json and roadmap.png, swapped in as one
    directory (planning.write_dir)."""
    from .planning import write_dir
    from .plots import png_bytes

    contents = {"periods.csv": to_csv(rm.periods.to_dict("records"), list(rm.periods.columns)),
                "chips.csv": to_csv(rm.chips.to_dict("records"), list(rm.chips.columns)),
                "units.csv": to_csv(rm.units.to_dict("records"), list(rm.units.columns)),
                "roadmap.json": to_json(rm.to_dict()),
                "run.json": json.dumps(run, indent=2, sort_keys=True) + "\n",
                "roadmap.png": png_bytes(roadmap_figure(rm))}
    return write_dir(out_dir, contents, ROADMAP_FILES, force, what="a roadmap")
