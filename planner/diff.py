"""`fleet diff A B`: two plans side by side — chips, stages per class, cost, MW, throughput, binding
constraints — and what changed. A side is a plan directory (`fleet plan --output DIR`) or a case
(name or path, solved here); `fleet diff CASE --set-a … --set-b …` compares one case under two sets
of overrides.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from formulations.families import is_budget

from .defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S
from .errors import PlannerError, Problem

PLAN_KEYS = ("cost", "power_mw", "throughput_tok_s", "chips", "stages", "constraints")
METRICS = ("capex_usd", "tco_usd_per_hour", "usd_per_mtok", "power_mw", "throughput_tok_s")
REL_TOL = 1e-9  # two plans whose figures agree this closely are the same plan (rounding in JSON, not a change)


@dataclass
class Side:
    """One plan to compare or explain, in its JSON form (`Plan.to_dict()` / plan.json)."""

    label: str  # how the user named it
    plan: dict
    chips: list[dict]  # the chips table (chips.csv / Plan.chips): chip, chips, systems, system_name, tco …
    run: dict | None = None  # run.json, when read from a plan directory


# ------------------------------------------------------------------------------------ reading sides
def read_plan_dir(path: str | Path) -> Side:
    """A directory written by `fleet plan --output`: plan.json (required), chips.csv and run.json."""
    d = Path(path)
    fix = "give a directory written by `fleet plan --output DIR`, or a case name or .toml path"
    if not (d / "plan.json").is_file():
        raise PlannerError(f"{d} holds no plan", [Problem(str(d / "plan.json"), "no such file", fix)])
    plan = _read_json(d / "plan.json", fix)
    missing = [k for k in PLAN_KEYS if k not in plan] if isinstance(plan, dict) else list(PLAN_KEYS)
    if missing:
        raise PlannerError(f"{d / 'plan.json'} is not a plan", [Problem(f"{d / 'plan.json'}: {missing[0]}",
                           "missing" if isinstance(plan, dict) else "not a JSON object",
                           f"rewrite it with `fleet plan --output {d} --force`")])
    check_plan_shape(plan, d / "plan.json")
    run = _read_json(d / "run.json", fix) if (d / "run.json").is_file() else None
    chips = _read_chips_csv(d / "chips.csv") if (d / "chips.csv").is_file() else _chips_from_plan(plan)
    return Side(label=f"plan dir {d}", plan=plan, chips=chips, run=run)


UNIT_KEYS = ("class", "kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "copies")


def check_plan_shape(plan, path: Path) -> None:
    """A plan.json edited by hand (or by another tool) is refused by name before anything reads it:
    counts must be whole numbers, tables lists of rows, the cost a table of numbers."""
    fix = "rewrite it with `fleet plan CASE --output DIR --force`"

    def bad(where: str, what: str):
        raise PlannerError(f"{path} is not a plan fleet-planner wrote", [Problem(f"{path}: {where}", what, fix)])

    if not isinstance(plan, dict):
        bad("(top level)", "not a JSON object")
    for key in ("chips", "systems"):
        table = plan.get(key, {})
        if not isinstance(table, dict):
            bad(key, "must be a table of chip = count")
        for chip, n in table.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                bad(f"{key}.{chip}", f"must be a whole number of chips ≥ 0, got {n!r}"[:120])
    for key in ("units", "classes", "stages", "constraints"):
        rows = plan.get(key, [])
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            bad(key, "must be a list of rows")
    for i, u in enumerate(plan.get("units", [])):
        missing = [k for k in UNIT_KEYS if k not in u]
        if missing:
            bad(f"units.{i}.{missing[0]}", "missing")
    cost = plan.get("cost", {})
    if not isinstance(cost, dict) or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                             for v in cost.values()):
        bad("cost", "must be a table of numbers")


def _read_json(path: Path, fix: str):
    from .inputs import read_text

    try:
        return json.loads(read_text(path, "a plan file", PlannerError))
    except json.JSONDecodeError as exc:
        raise PlannerError(f"{path} is not valid JSON", [Problem(str(path), str(exc), fix)]) from None


def _read_chips_csv(path: Path) -> list[dict]:
    """chips.csv rows with numbers as numbers (the columns `write_outputs` writes)."""
    from .inputs import read_text

    rows = []
    for r in csv.DictReader(io.StringIO(read_text(path, "a plan's chips.csv", PlannerError))):
        rows.append({k: _number(v) if k != "chip" and k != "system_name" else v for k, v in r.items()})
    return rows


def _number(text: str):
    try:
        v = float(text)
    except (TypeError, ValueError):
        return text
    return int(v) if v.is_integer() and "." not in str(text) else v


def _chips_from_plan(plan: dict) -> list[dict]:
    """The chips table's counts when only plan.json is at hand (no per-chip cost)."""
    return [{"chip": c, "chips": int(n), "systems": int(plan.get("systems", {}).get(c, 0))}
            for c, n in plan["chips"].items()]


def solved_side(plan, label: str) -> Side:
    """A Plan solved in this process, as a Side."""
    return Side(label=label, plan=plan.to_dict(), chips=plan.chips.to_dict("records"))


def load_case_with(target: str, sets, catalogs, option: str = "--set"):
    """Like `cases.load_case`, but a bad override is blamed on `option` (--set-a / --set-b)."""
    from .cases import apply_override, blame_sets, build_case, parse_sets, read_case_raw

    raw, label = read_case_raw(target)
    try:
        overrides = parse_sets(sets)
        for path, value in overrides:
            apply_override(raw, path, value)
        with blame_sets(raw, [p for p, _ in overrides], option):
            return build_case(raw, label, list(catalogs))
    except PlannerError as exc:
        if option != "--set":
            exc.problems = [Problem(option + p.where[5:] if p.where.startswith("--set ") else p.where, p.what, p.fix)
                            for p in exc.problems]
            exc.args = (str(exc.args[0]).replace("--set ", option + " ", 1),)
        raise


def load_side(target: str, sets=(), catalogs=(), option: str = "--set", grid: str = "fine",
              time_limit_s: float = DEFAULT_TIME_LIMIT_S, mip_gap: float | None = None) -> Side:
    """A plan directory as written, or a case (name or path) planned here with its overrides."""
    from .candidates import GRIDS
    from .planning import plan_case
    from .solve import SolveOptions

    p = Path(target)
    if p.is_dir():
        if sets:
            raise PlannerError(f"{option} needs a case, not a plan directory", [Problem(
                option, f"{target} is a solved plan; its inputs cannot be overridden",
                "give the case instead (name or .toml path), or drop the override")])
        return read_plan_dir(p)
    if not p.exists() and ("/" in target or target.startswith(".")) and p.suffix != ".toml":
        raise PlannerError(f"no plan directory or case at {target}", [Problem(
            target, "no such directory", "give a directory written by `fleet plan --output DIR`, or a case")])
    case = load_case_with(target, sets, catalogs, option)
    opts = SolveOptions(time_limit_s=time_limit_s, mip_gap=DEFAULT_MIP_GAP if mip_gap is None else mip_gap)
    plan = plan_case(case, solve_opts=opts, grid=GRIDS[grid])
    label = f"case {target}" + "".join(f" {option} {s}" for s in sets)
    return solved_side(plan, label)


# ------------------------------------------------------------------------------------ comparing
def summary(side: Side) -> dict:
    """What a reader compares: chips, stages per class, cost, MW, throughput, binding constraints."""
    p = side.plan
    stages: dict[str, dict[str, dict[str, int]]] = {}
    for r in p["stages"]:
        per = stages.setdefault(str(r["class"]), {}).setdefault(str(r["stage"]), {})
        per[str(r["chip"])] = per.get(str(r["chip"]), 0) + int(r["chips"])
    return {"source": side.label, "case": p.get("case"), "status": p.get("status"),
            "chips": {c: int(n) for c, n in sorted(p["chips"].items()) if int(n)},
            "systems": {c: int(n) for c, n in sorted(p.get("systems", {}).items()) if int(n)},
            "stages": {j: dict(sorted(s.items())) for j, s in sorted(stages.items())},
            **{m: _metric(p, m) for m in METRICS},
            "binding": sorted(str(r["name"]) for r in p["constraints"] if limits_plan(r))}


def shadow_price(r: dict) -> float | None:
    """A constraints row's shadow price (None when the LP gave none)."""
    v = r.get("shadow_price")
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def limits_plan(r: dict) -> bool:
    """The plan's own column (results.constraint_frame: binding, or a budget the LP sits on with a
    positive price); plans written before that column existed: binding, or a priced budget."""
    if "limits_plan" in r:
        return bool(r["limits_plan"])
    return bool(r.get("binding")) or ((shadow_price(r) or 0) > 1e-9 and is_budget(r["name"]))


def _metric(plan: dict, name: str):
    v = plan[name] if name in ("power_mw", "throughput_tok_s") else plan["cost"].get(name)
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def compare(a: dict, b: dict) -> dict:
    """{"identical", "a", "b", "delta"}: delta = B − A, holding only what changed."""
    chips = {c: b["chips"].get(c, 0) - a["chips"].get(c, 0) for c in sorted(set(a["chips"]) | set(b["chips"]))}
    stages = {}
    for j in sorted(set(a["stages"]) | set(b["stages"])):
        sa, sb = a["stages"].get(j, {}), b["stages"].get(j, {})
        changed = {s: {"a": sa.get(s, {}), "b": sb.get(s, {})} for s in sorted(set(sa) | set(sb))
                   if sa.get(s, {}) != sb.get(s, {})}
        if changed:
            stages[j] = changed
    metrics = {m: _delta(a[m], b[m]) for m in METRICS}
    binding = {"only_a": sorted(set(a["binding"]) - set(b["binding"])),
               "only_b": sorted(set(b["binding"]) - set(a["binding"]))}
    delta = {"chips": {c: d for c, d in chips.items() if d}, "stages": stages, **metrics, "binding": binding}
    same_numbers = all(_same(a[m], b[m]) for m in METRICS)
    identical = same_numbers and not delta["chips"] and not stages and not binding["only_a"] and not binding["only_b"] \
        and a["systems"] == b["systems"]
    return {"identical": identical, "a": a, "b": b, "delta": delta}


def _delta(a, b):
    return None if a is None or b is None else b - a


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=REL_TOL)


def diff(a: str, b: str | None = None, set_a=(), set_b=(), catalogs=(), grid: str = "fine",
         time_limit_s: float = DEFAULT_TIME_LIMIT_S, mip_gap: float | None = None) -> dict:
    """The Python API behind `fleet diff`: B defaults to A when only overrides differ."""
    if b is None:
        if not (set_a or set_b):
            raise PlannerError("fleet diff needs two plans", [Problem(
                "B", "missing", "give B (a plan directory or a case), or --set-a/--set-b to compare one case "
                "under two sets of overrides")])
        b = a
    kw = {"catalogs": catalogs, "grid": grid, "time_limit_s": time_limit_s, "mip_gap": mip_gap}
    side_a = load_side(a, set_a, option="--set-a", **kw)
    side_b = load_side(b, set_b, option="--set-b", **kw)
    return compare(summary(side_a), summary(side_b))


# ------------------------------------------------------------------------------------ text
def diff_text(r: dict) -> str:
    """The readable comparison; 'identical' first when nothing changed."""
    from .reports import text_table

    a, b, d = r["a"], r["b"], r["delta"]
    lines = [f"{k}: {s['source']}" + (f" (case '{s['case']}')" if s["source"].startswith("plan dir") else "")
             for k, s in (("A", a), ("B", b))] + [""]
    if r["identical"]:
        lines.append(f"identical: the same chips, stages, cost, power and binding constraints "
                     f"({_fmt_money(a['tco_usd_per_hour'])} USD/hour, {a['power_mw']:,.2f} MW)")
        return "\n".join(lines)
    chips = [{"chip": c, "A": a["chips"].get(c, 0), "B": b["chips"].get(c, 0),
              "delta": b["chips"].get(c, 0) - a["chips"].get(c, 0)}
             for c in sorted(set(a["chips"]) | set(b["chips"]))]
    lines += ["Chips in service (bought new + owned kept)", text_table(chips), ""]
    stage_rows = []
    for j in sorted(set(a["stages"]) | set(b["stages"])):
        sa, sb = a["stages"].get(j, {}), b["stages"].get(j, {})
        for s in sorted(set(sa) | set(sb)):
            stage_rows.append({"class": j, "stage": s, "A": _chips_text(sa.get(s, {})), "B": _chips_text(sb.get(s, {})),
                               "changed": "*" if sa.get(s, {}) != sb.get(s, {}) else ""})
    lines += ["Stages (chips running each stage, per class; * = changed)", text_table(stage_rows, max_width=50), ""]
    metric_rows = [{"metric": m, "A": a[m], "B": b[m], "delta (B − A)": d[m],
                    "delta %": None if d[m] is None or not a[m] else f"{d[m] / a[m]:+.1%}"} for m in METRICS]
    lines += ["Cost, power, throughput", text_table(metric_rows), ""]
    lines.append("Binding constraints (and budgets with a positive shadow price)")
    lines.append(f"  both:      {', '.join(sorted(set(a['binding']) & set(b['binding']))) or '-'}")
    lines.append(f"  only in A: {', '.join(d['binding']['only_a']) or '-'}")
    lines.append(f"  only in B: {', '.join(d['binding']['only_b']) or '-'}")
    return "\n".join(lines)


def _chips_text(per: dict[str, int]) -> str:
    return ", ".join(f"{c} ({n:,})" for c, n in per.items()) or "-"


def _fmt_money(v) -> str:
    return "-" if v is None else f"{v:,.0f}"
