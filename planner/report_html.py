"""`fleet report`: one self-contained HTML page for a plan directory or a study (no network needed).

Reads what `fleet plan --output DIR` writes (the CSVs, plan.json, run.json) or a study's CSV
(pareto.csv, budget.csv, a sweep CSV), and renders tables, charts (inline base64 PNG) and the
provenance. Every string from the data goes through html.escape: a case name or point id holding
markup is shown, never run.
"""
from __future__ import annotations

import base64
import json
import math
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from formulations.families import family_of

from .errors import PlannerError, Problem
from .problem import unit_parts

PLAN_FILES = ("plan.json", "chips.csv", "stages.csv", "units.csv", "classes.csv", "constraints.csv", "costs.csv")
STUDY_FILES = ("pareto.csv", "budget.csv")

HEADERS = {  # column → header with its unit
    "chip": "chip", "chips": "chips", "chips_in_use": "chips in use", "systems": "systems",
    "system_name": "system", "power_mw": "power (MW, site)", "capex_usd": "capex (USD)",
    "tco_usd_per_hour": "TCO (USD/hour)", "usd_per_mtok": "USD per M output tokens",
    "throughput_tok_s": "output tok/s", "prefill_tok_s": "prefill input tok/s", "speed_tok_s_user": "tok/s per user",
    "ttft_s": "TTFT (s)", "ttft_target_s": "TTFT target (s)", "demand_tok_s": "demand (output tok/s)",
    "served_tok_s": "served (output tok/s)", "capacity_tok_s": "capacity (output tok/s)",
    "min_speed_tok_s_user": "target (tok/s per user)", "achieved_speed_tok_s_user": "achieved (tok/s per user)",
    "n_attn": "attention chips", "n_ffn": "FFN chips", "n_draft": "draft chips", "attn_chip": "attention chip",
    "ffn_chip": "FFN chip", "draft_chip": "draft chip", "mtp_tokens": "MTP tokens", "attn_dp": "attention DP",
    "copies": "copies", "batch": "batch (sequences)", "shadow_price": "shadow price", "slack": "slack",
    "tok_s_per_chip": "output tok/s per chip", "tok_s_per_mw": "output tok/s per MW",
    "chips_total": "chips (total)", "constraints.power_mw": "power budget (MW)",
    "constraints.capex_usd": "capex budget (USD)", "gap": "MIP gap", "wall_s": "solve wall (s)",
    "speed_tok_s_user_target": "speed target (tok/s per user)",
}

CSS = """
:root{--fg:#1d2330;--mute:#5b6475;--line:#d9dee7;--band:#f5f7fa;--acc:#1f5fa8}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);
margin:0;background:#fff}
main{max-width:1120px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 4px} h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;
border-bottom:2px solid var(--line)} h3{font-size:16px;margin:20px 0 8px}
.sub{color:var(--mute);margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:150px;background:var(--band)}
.card .v{font-size:20px;font-weight:600}.card .k{color:var(--mute);font-size:12.5px}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13.5px;width:auto;max-width:100%}
.scroll{overflow-x:auto;max-width:100%}
th,td{border-bottom:1px solid var(--line);padding:5px 10px;vertical-align:top}
th{background:var(--band);text-align:left;font-weight:600;min-width:4.5em;line-height:1.25}
td{white-space:nowrap} td.w{white-space:normal;min-width:36em;font-size:12.5px}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.n{text-align:right}
tr:hover td{background:#fafbfd}
figure{margin:10px 0 22px} figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px}
figcaption{color:var(--mute);font-size:13px;margin-top:4px}
.warn{background:#fff6e5;border-left:4px solid #e0a100;padding:8px 12px;margin:8px 0;font-size:14px}
ul.words li{margin:4px 0} code{background:var(--band);padding:1px 4px;border-radius:3px;font-size:13px}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;font-size:14px}
dl.kv dt{color:var(--mute)} dl.kv dd{margin:0;word-break:break-all}
footer{color:var(--mute);font-size:12.5px;margin-top:40px}
"""


# ----------------------------------------------------------------------------------- detection
def detect(path: str | Path) -> tuple[str, Path]:
    """('plan', dir) | ('pareto' | 'budget' | 'sweep', csv file); PlannerError when it is neither."""
    p = Path(path)
    if p.is_file() and p.suffix == ".csv":
        return _study_kind(p), p
    if p.is_dir():
        if (p / "plan.json").is_file():
            return "plan", p
        for name in STUDY_FILES:
            if (p / name).is_file():
                return name[:-4], p / name
        sweeps = sorted(f for f in p.glob("*.csv") if _study_kind(f, strict=False) == "sweep")
        if len(sweeps) == 1:
            return "sweep", sweeps[0]
        what = (f"{len(sweeps)} sweep CSVs ({', '.join(f.name for f in sweeps[:4])}): name one"
                if sweeps else "no plan.json, pareto.csv, budget.csv or sweep CSV in it")
        raise PlannerError(f"{p} is neither a plan nor a study directory", [Problem(
            str(p), what, "pass a directory written by `fleet plan --output DIR` (plan.json + CSVs), "
                          "by `fleet pareto`/`fleet budget --output DIR`, or a `fleet sweep` CSV")])
    raise PlannerError(f"{p} not found", [Problem(str(p), "no such directory or CSV file",
                                                   "pass a plan/study directory, a sweep CSV or a case name")])


def _study_kind(csv: Path, strict: bool = True) -> str:
    try:
        cols = set(pd.read_csv(csv, nrows=0).columns)
    except Exception:  # noqa: BLE001 — an unreadable CSV is simply not a study
        cols = set()
    if {"family", "speed_tok_s_user", "status"} <= cols:
        return "pareto"
    if {"point", "status"} <= cols and ({"constraints.power_mw", "constraints.capex_usd"} & cols) and \
            "objective" in cols and csv.name.startswith("budget"):
        return "budget"
    if {"point", "status", "objective"} <= cols:
        return "sweep"
    if strict:
        raise PlannerError(f"{csv} is not a study CSV", [Problem(str(csv), "no point/status/objective columns",
                           "pass a CSV written by `fleet sweep`, `fleet pareto` or `fleet budget`")])
    return ""


# ---------------------------------------------------------------------------------- formatting
def fmt(v: Any, column: str = "") -> str:
    """A cell: thousands separators, sensible precision, '-' for missing; always escaped."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int,)) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15 and
                                 not column.endswith(("_s", "usd_per_mtok", "gap", "shadow_price"))):
        return f"{int(v):,}"
    if isinstance(v, float):
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 10:
            return f"{v:,.1f}"
        if a >= 0.01:
            return f"{v:.3g}"
        return f"{v:.2e}"
    return escape(str(v))


STAGE_SHORT = {"prefill": "prefill", "decode_attention": "attn", "decode_ffn": "ffn", "decode_draft": "draft"}


def compact_stages(text: str) -> str:
    """'chat:decode_attention=rubin;chat:prefill=cpx;…' → 'chat: attn=rubin, prefill=cpx · …'."""
    by: dict[str, dict[str, list[str]]] = {}
    for part in filter(None, text.split(";")):
        cls, _, rest = part.partition(":")
        stage, _, chip = rest.partition("=")
        by.setdefault(cls, {}).setdefault(STAGE_SHORT.get(stage, stage), []).append(chip)
    return " · ".join(f"{c}: " + ", ".join(f"{s}={'+'.join(ch)}" for s, ch in st.items()) for c, st in by.items())


def _numeric(series: pd.Series) -> bool:
    s = series.dropna()
    return len(s) > 0 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in s)


def table(df: pd.DataFrame, columns: Sequence[str] | None = None, headers: dict | None = None,
          max_rows: int = 400) -> str:
    if df is None or not len(df):
        return "<p class='sub'>(none)</p>"
    cols = [c for c in (columns or df.columns) if c in df.columns]
    heads = {**HEADERS, **{c: f"{c[6:]} (chips)" for c in cols if c.startswith("chips.") and c.count(".") == 1},
             **(headers or {})}
    num = {c: _numeric(df[c]) for c in cols}
    out = ["<div class='scroll'><table><thead><tr>"]
    out += [f"<th class='{'n' if num[c] else ''}'>{escape(str(heads.get(c, c)))}</th>" for c in cols]
    out.append("</tr></thead><tbody>")
    for rec in df[cols].head(max_rows).to_dict("records"):
        cells = []
        for c in cols:
            v = rec[c]
            text = fmt(v, c)
            if c == "stages" and isinstance(v, str):
                text = escape(compact_stages(v))
            cls = "n" if num[c] else ("w" if c in ("stages", "message", "binding") and not num[c] else "")
            cells.append(f"<td class='{cls}'>{text}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if len(df) > max_rows:
        out.append(f"<p class='sub'>first {max_rows:,} of {len(df):,} rows</p>")
    return "".join(out)


def figure_html(fig, caption: str) -> str:
    from .plots import png_bytes

    data = base64.b64encode(png_bytes(fig, dpi=100)).decode("ascii")
    return (f"<figure><img alt='{escape(caption, quote=True)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _card(value: str, key: str) -> str:
    return f"<div class='card'><div class='v'>{escape(value)}</div><div class='k'>{escape(key)}</div></div>"


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = []
    for k, v in pairs:
        if v is None or v == "" or v == [] or v == {}:
            continue
        if isinstance(v, (list, tuple)):
            v = ", ".join(map(str, v))
        elif isinstance(v, dict):
            v = "; ".join(f"{a} {b}" for a, b in v.items())
        rows.append(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>")
    return "<dl class='kv'>" + "".join(rows) + "</dl>"


def page(title: str, body: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body><main>{body}"
            f"<footer>written by fleet report, {escape(stamp)}; self-contained (no network needed)</footer>"
            "</main></body></html>\n")


# ---------------------------------------------------------------------------------------- plans
OBJ_NAMES = {"tco": "TCO", "capex": "capex", "power": "site power", "throughput": "served throughput"}


def constraint_words(row: dict, objective: str, limits: dict | None = None) -> str:
    """A binding constraint and its shadow price as a sentence (escaped)."""
    name, unit, price = str(row.get("name", "")), str(row.get("unit") or ""), row.get("shadow_price")
    fam, target = family_of(name)
    family = fam.name if fam else name.split("[")[0]
    obj = OBJ_NAMES.get(objective, objective)
    if price is None or (isinstance(price, float) and math.isnan(price)):
        what = {"types_per_stage": f"the limit on chip types for the {target or 'a'} stage is reached"}.get(
            family, "it binds")
        return escape(f"{name}: {what} (an integer limit: no shadow price).")
    obj_unit, _, per = unit.partition(" per ")
    per = ("per " + per) if per else ""
    if family in ("throughput", "prefill"):
        subject = {"throughput": f"the {target} class's output-token demand",
                   "prefill": f"the {target} class's prefill (input tokens)"}[family]
        verb = "raises" if objective != "throughput" else "changes"
        text = f"{name}: {subject} is met exactly; each extra 1,000 tok/s of it {verb} the {obj} by " \
               f"{fmt(float(price))} {obj_unit}."
    elif fam is not None and fam.budget:
        what = {"power": "the site power budget", "capex": "the capex budget",
                "supply": f"the supply cap on {target}"}[family]
        lp = row.get("lp_shadow_price")
        if str(row.get("binding")).lower() not in ("true", "1") and lp is not None and not (isinstance(lp, float) and math.isnan(lp)):
            head, price = f"{what} decides the fleet through whole-chip rounding (the plan leaves " \
                          f"{fmt(float(row.get('slack') or 0))} {row.get('slack_unit') or ''} unused, so the constraint " \
                          "itself has no shadow price); in the LP with the stage choices fixed", float(lp)
        else:
            head = f"{what} is used up"
        if objective == "throughput":
            text = f"{name}: {head}; {per} it would serve {fmt(float(price))} more output tok/s."
        else:
            text = f"{name}: {head}; {per} it would lower the {obj} by {fmt(float(price))} {obj_unit}."
    else:
        text = f"{name}: binds; shadow price {fmt(float(price))} {unit}."
    return escape(text)


def _chips_by_class(units: pd.DataFrame, chips: pd.DataFrame) -> pd.DataFrame:
    """Chips, MW and capex per class and chip, from the units (chips bought beyond use: 'spare')."""
    rows = []
    for u in units.to_dict("records"):
        for chip, n, _ in unit_parts(u["kind"], u["attn_chip"], u["n_attn"], u["ffn_chip"], u["n_ffn"],
                                     u.get("draft_chip", ""), u.get("n_draft", 0)):
            rows.append({"class": u["class"], "chip": chip, "chips": float(n) * float(u["copies"])})
    df = pd.DataFrame(rows, columns=["class", "chip", "chips"]).groupby(["class", "chip"], as_index=False,
                                                                        sort=False).sum()
    per = chips.set_index("chip")
    spare = []
    for c in per.index:
        extra = float(per.loc[c, "chips"]) - float(df.loc[df["chip"] == c, "chips"].sum())
        if extra > 1e-9:
            spare.append({"class": "(spare: system rounding)", "chip": c, "chips": extra})
    df = pd.concat([df, pd.DataFrame(spare, columns=df.columns)], ignore_index=True) if spare else df
    n = df["chip"].map(per["chips"]).astype(float)
    if not {"power_mw", "capex_usd", "tco_usd_per_hour"} <= set(per.columns):  # plan.json alone: chips only
        return df
    df["power_mw"] = df["chips"] * df["chip"].map(per["power_mw"]).astype(float) / n
    df["capex_usd"] = df["chips"] * df["chip"].map(per["capex_usd"]).astype(float) / n
    df["tco_usd_per_hour"] = df["chips"] * df["chip"].map(per["tco_usd_per_hour"]).astype(float) / n
    return df


def plan_charts(d: dict, case: str) -> str:
    from .plots import stacked_figure, stacked_panels

    units, chips, stages = d["units"], d["chips"], d["stages"]
    out = []
    if len(units) and len(chips):
        by_class = _chips_by_class(units, chips)
        panels = [(v, label, unit) for v, label, unit in (
            ("chips", "chips", ""), ("power_mw", "power at the site (MW)", "MW"), ("capex_usd", "capex (USD)", ""),
            ("tco_usd_per_hour", "TCO (USD/hour)", "")) if v in by_class]
        fig = stacked_panels(by_class, "class", "chip", panels, f"{case} — chips, MW and cost by class")
        out.append(figure_html(fig, "per class, stacked by chip (spare = chips bought to fill whole systems but "
                                    "not used by any unit)"))
    if len(stages):
        st = stages.assign(**{"class · stage": stages["class"].astype(str) + " · " + stages["stage"].astype(str)})
        fig = stacked_figure(st, "class · stage", "chip", "chips", "chips",
                             f"{case} — chips by class and stage")
        out.append(figure_html(fig, "chips per class and stage, stacked by chip; chips marked shared in the stage "
                                    "table run several stages and are counted in each"))
    return "".join(out)


def read_plan(dirpath: Path) -> dict:
    def csv(name):
        f = dirpath / name
        return pd.read_csv(f, keep_default_na=True) if f.is_file() else pd.DataFrame()

    try:
        plan = json.loads((dirpath / "plan.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PlannerError(f"{dirpath}/plan.json is unreadable", [Problem(str(dirpath / "plan.json"), str(exc),
                           "rewrite the plan with `fleet plan --output DIR --force`")])
    from .diff import check_plan_shape

    check_plan_shape(plan, dirpath / "plan.json")
    run = {}
    if (dirpath / "run.json").is_file():
        try:
            run = json.loads((dirpath / "run.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            run = {}
    explain = plan.get("explain")
    if explain is None and (dirpath / "explain.json").is_file():
        try:
            explain = json.loads((dirpath / "explain.json").read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            explain = None
    d = {"plan": plan, "run": run, "explain": explain}
    for name in ("chips", "stages", "units", "classes", "class_costs", "constraints", "costs"):
        df = csv(f"{name}.csv")
        if df.empty and isinstance(plan.get(name), list):
            df = pd.DataFrame(plan[name])
        d[name] = df
    if d["chips"].empty and isinstance(plan.get("chips"), dict):
        d["chips"] = pd.DataFrame([{"chip": k, "chips": v} for k, v in plan["chips"].items()])
    return d


def explain_html(explain: Any) -> str:
    """Whatever `fleet explain` stored: a string, a list of sentences, or a mapping (rendered as such)."""
    if explain is None:
        return ""
    if isinstance(explain, str):
        body = "".join(f"<p>{escape(p)}</p>" for p in explain.split("\n\n") if p.strip())
    elif isinstance(explain, list):
        if explain and all(isinstance(x, dict) for x in explain):
            body = table(pd.DataFrame(explain))
        else:
            body = "<ul class='words'>" + "".join(f"<li>{escape(str(x))}</li>" for x in explain) + "</ul>"
    elif isinstance(explain, dict):
        parts = []
        for k, v in explain.items():
            parts.append(f"<h3>{escape(str(k))}</h3>" + (explain_html(v).split("</h2>", 1)[-1]
                                                          if not isinstance(v, (int, float)) else escape(str(v))))
        body = "".join(parts)
    else:
        body = f"<p>{escape(str(explain))}</p>"
    return "<h2>Why this plan</h2>" + body


def plan_report(dirpath: Path) -> str:
    d = read_plan(dirpath)
    plan, run = d["plan"], d["run"]
    case = str(plan.get("case") or dirpath.name)
    objective = str(plan.get("objective_kind") or run.get("options", {}).get("objective") or "tco")
    cost = plan.get("cost") or {}
    b = [f"<h1>Fleet plan — {escape(case)}</h1>",
         f"<p class='sub'>status <b>{escape(str(plan.get('status', '?')))}</b>; objective: "
         f"{escape(OBJ_NAMES.get(objective, objective))} ({escape(objective)}); from <code>{escape(str(dirpath))}</code></p>"]
    b.append("<div class='cards'>" + "".join([
        _card(f"{cost.get('capex_usd', float('nan')):,.0f} USD", "capex"),
        _card(f"{cost.get('tco_usd_per_hour', float('nan')):,.0f} USD/hour", "TCO (amortised capex + energy + facility)"),
        _card("-" if cost.get("usd_per_mtok") is None else f"{cost['usd_per_mtok']:.4f} USD", "per million output tokens"),
        _card(f"{plan.get('power_mw', float('nan')):,.2f} MW", "power at the site"),
        _card(f"{plan.get('throughput_tok_s', float('nan')):,.0f} tok/s", "output tokens served"),
    ]) + "</div>")
    for w in plan.get("warnings") or []:
        b.append(f"<div class='warn'>{escape(str(w))}</div>")
    b.append("<h2>Chips to buy</h2>" + table(d["chips"]))
    charts = plan_charts(d, case)
    if charts:
        b.append("<h2>Where the chips, megawatts and money go</h2>" + charts)
    b.append("<h2>Classes: demand, speed and TTFT</h2>" + table(d["classes"], headers={"name": "class"}))
    if not d["class_costs"].empty:  # plans written before it have none
        b.append("<h2>Cost per class</h2><p class='sub'>each class's chips; shared units split by tokens served, idle "
                 "and spare chips by each class's share of their type</p>" + table(d["class_costs"]))
    b.append("<h2>Stages</h2><p class='sub'>chips per class and stage; shared = the same chips run several "
             "stages</p>" + table(d["stages"]))
    b.append("<h2>Units</h2><p class='sub'>each deployment the plan runs, its copies and what they deliver</p>"
             + table(d["units"]))
    cons = d["constraints"]
    b.append("<h2>Constraints and shadow prices</h2>")
    if len(cons):
        column = "limits_plan" if "limits_plan" in cons.columns else "binding"  # plans written before it: binding
        binding = cons[cons[column].astype(str).str.lower().isin(["true", "1"])]
        if len(binding):
            b.append("<p>Constraints that limit the plan (shadow prices from the LP with the stage choices fixed):</p>"
                     "<ul class='words'>" + "".join(f"<li>{constraint_words(r, objective)}</li>"
                                                    for r in binding.to_dict("records")) + "</ul>")
        else:
            b.append("<p>No constraint binds.</p>")
    b.append(table(cons))
    b.append(explain_html(d["explain"]))
    solve = plan.get("solve") or {}
    b.append("<h2>Provenance</h2>")
    b.append(_kv([("case file", run.get("case")), ("--set", run.get("sets")), ("catalog overlays", run.get("catalogs")),
                  ("catalog versions", run.get("catalog_versions")), ("inputs SHA-256", run.get("inputs_sha256")),
                  ("options", run.get("options")), ("versions", run.get("versions")),
                  ("solver", run.get("solver") or solve.get("solver")),
                  ("solve", f"status {solve.get('status', '?')}, gap {fmt(solve.get('gap'), 'gap')}, "
                            f"{fmt(solve.get('wall_s'), 'wall_s')} s, {fmt(solve.get('candidates'))} candidate units, "
                            f"MILP {fmt(solve.get('milp_rows'))} rows × {fmt(solve.get('milp_columns'))} columns"
                   if solve else None)]))
    if not run:
        b.append("<p class='sub'>(no run.json in the directory: provenance unknown)</p>")
    return page(f"Fleet plan — {case}", "".join(b))


# -------------------------------------------------------------------------------------- studies
def _study_record(csv: Path, kind: str) -> dict:
    """The study's run record if the CLI wrote one next to the CSV (NAME.study.json, or study.json
    of the same kind of study)."""
    from .studies import beside

    for f in (beside(csv, ".study.json"), csv.parent / "study.json"):
        if f.is_file():
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("study") == kind:
                return rec
    return {}


def study_report(kind: str, csv: Path) -> str:
    from . import plots

    df = pd.read_csv(csv)
    rec = _study_record(csv, kind)
    case = str(rec.get("case_name") or csv.parent.name or "study")
    n_ok = int(df["status"].isin(plots.FEASIBLE).sum()) if "status" in df else len(df)
    b = [f"<h1>{escape(kind.capitalize())} study — {escape(case)}</h1>",
         f"<p class='sub'>{len(df):,} points, {n_ok:,} with a feasible plan; from <code>{escape(str(csv))}</code></p>"]
    chip_cols = [c for c in df.columns if c.startswith("chips.") and c.count(".") == 1]
    if kind == "pareto":
        b.append("<h2>Charts</h2>")
        b.append(figure_html(plots.pareto_figure(df, "tok_s_per_mw", "output tokens/s per MW (site)",
                                                 "throughput per MW vs speed target", case),
                             "throughput per MW of each family's min-TCO plan, per speed target"))
        b.append(figure_html(plots.pareto_figure(df, "usd_per_mtok", "USD per million output tokens",
                                                 "cost per token vs speed target", case),
                             "cost per million output tokens of each family's min-TCO plan"))
        cols = ["family", "speed_tok_s_user", "status", "tok_s_per_chip", "tok_s_per_mw", "usd_per_mtok",
                "power_mw", "chips_total", *chip_cols, "stages", "message"]
        heads = {"speed_tok_s_user": "speed target (tok/s per user)"}
    elif kind == "budget":
        b.append("<h2>Charts</h2>")
        for col, label, words in (("constraints.power_mw", "site power budget (MW)", "power"),
                                  ("constraints.capex_usd", "capex budget (USD)", "capex")):
            if col in df and df[col].nunique() > 1:
                b.append(figure_html(plots.line_figure(df, col, "throughput_tok_s", label,
                                                       "served output tokens/s\n(max-throughput plan)",
                                                       f"max-throughput plan per {words} budget", case),
                                     f"maximum served output tokens/s per {words} budget"))
        shadow = [c for c in df.columns if c.startswith(("shadow.power", "shadow.capex", "lp_shadow.power", "lp_shadow.capex"))]
        cols = ["constraints.power_mw", "constraints.capex_usd", "status", "throughput_tok_s", "power_mw",
                "capex_usd", "usd_per_mtok", *shadow, *chip_cols, "stages", "message"]
        heads = {"shadow.power": "shadow price (tok/s per extra MW; 0 with slack)",
                 "shadow.capex": "shadow price (tok/s per extra M USD; 0 with slack)",
                 "lp_shadow.power": "LP marginal value (tok/s per extra MW)",
                 "lp_shadow.capex": "LP marginal value (tok/s per extra M USD)"}
    else:
        objective = str(rec.get("objective") or "tco")
        if "varied" in df and df["varied"].notna().any():  # one at a time: the varied path and its value
            df = df.assign(value=[r.get(str(p)) if isinstance(p, str) else None
                                  for p, r in zip(df["varied"], df.to_dict("records"))])
            varied = ["value"]
        else:
            varied = [c for c in df.columns if "." in c and not c.startswith(("shadow.", "chips."))]
        if "varied" in df and df["varied"].notna().any():
            b.append("<h2>Tornado</h2>")
            b.append(figure_html(plots.tornado_figure(df, objective, rec.get("baseline"), case),
                                 "swing of the objective per parameter, one parameter at a time"))
        metric = plots.OBJECTIVE_METRIC.get(objective, ("objective",))[0]  # the objective in user units
        cols = ["point", "varied", *varied, "status", metric, "tco_usd_per_hour", "usd_per_mtok", "power_mw",
                "capex_usd", "throughput_tok_s", *chip_cols, "stages", "message"]
        heads = {"varied": "varied parameter", "value": "its value"}
    b.append("<h2>Points</h2>" + table(df, [c for c in dict.fromkeys(cols) if c in df], heads))
    if rec:
        b.append("<h2>Provenance</h2>" + _kv([(k, v) for k, v in rec.items() if k != "baseline"]))
    return page(f"{kind} study — {case}", "".join(b))


# ----------------------------------------------------------------------------------------- entry
def build_report(target: str | Path) -> str:
    kind, path = detect(target)
    return plan_report(path) if kind == "plan" else study_report(kind, path)
