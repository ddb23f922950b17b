"""Studies: many plans at once — sweeps, Pareto frontiers, budget curves, break-even searches.

Every study is a list of *points*; a point is a set of overrides (`--set` paths, including catalog
figures `chips.ID.FIELD`) applied to one raw case. Points run in this process, in a local process
pool (`workers`), or on a Dask distributed cluster (`scheduler`); each finished point becomes one
tidy row. Rows are appended to the CSV as they finish (a killed run leaves a valid CSV; `resume`
skips the points already written, and only for the same study: see study_runner) and the file is
rewritten in point order at the end, so the same inputs give the same bytes whatever the worker count.
Bad study values and misspelt paths are refused before any point is solved.

Within a process, candidate tables are cached by what they depend on (classes, fleet, the chips'
and models' performance figures): points that only move prices, budgets or economics skip
candidate generation.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from formulations.families import is_budget

from .cases import apply_override, build_case, get_path, parse_value, read_case_raw
from .errors import CaseError, PlannerError, Problem, SolverError, did_you_mean
from .solve import DEFAULT_MIP_GAP
from .study_runner import (HASH_COLUMN, CsvAppender, Interrupted, OutputLock, StudyOutputError, _Signalled,
                           check_output, progress, read_resumable, run_chain_pool, run_pool, sigterm_raises, signal_number,
                           study_hash)

CHIP_GROUPS = {"hbm": ("gpu", "asic"), "prefill": ("prefill",), "sram": ("sram", "mram")}


# ----------------------------------------------------------------------------------------- points
@dataclass(frozen=True)
class Point:
    """One study point: its index, its overrides, and labels that go into its row."""

    index: int
    overrides: tuple[tuple[str, Any], ...]
    labels: tuple[tuple[str, Any], ...] = ()
    family: str | None = None

    @property
    def key(self) -> str:
        blob = json.dumps([self.overrides, self.labels, self.family], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class StudySpec:
    """Everything a worker needs to evaluate points: the raw case and how to solve it."""

    raw: dict
    label: str
    catalogs: tuple[str, ...] = ()
    objective: str = "tco"
    time_limit_s: float = 60.0
    mip_gap: float = DEFAULT_MIP_GAP
    families: dict[str, dict] = field(default_factory=dict)
    grid: str = "fine"
    warm_start: bool = False  # MIP start from the last point on the same table: ~1.8× faster sweeps,
    # but alternative optima (within the MIP gap) can then differ with the order points ran in


_CANDIDATES: dict[str, pd.DataFrame] = {}
_LAST: dict[str, Any] = {}  # candidate key → last outcome on that table (a MIP start for the next point)


def _candidate_key(case) -> str:
    chips = tuple(replace(c, price_usd=0.0, power_kw=0.0) for c in case.chips.values())
    return hashlib.sha256(repr((case.classes, case.fleet, chips, tuple(case.models.values()))).encode()).hexdigest()


def point_raw(spec: StudySpec, point: Point) -> dict:
    """The raw case of one point: the study's case with the point's family and overrides applied."""
    raw = copy.deepcopy(spec.raw)
    if point.family:
        apply_family(raw, spec.families[point.family])
    for path, value in point.overrides:
        apply_override(raw, path, value)
    return raw


def cached_candidates(case, grid: str, prune: bool = True) -> tuple[str, pd.DataFrame]:
    """(cache key, candidate table) of a case, built once per process per performance inputs: points
    that only move prices, budgets or economics reuse it; a speed chain reuses one unpruned table."""
    from .candidates import GRIDS, build_candidates

    key = _candidate_key(case) + grid + ("" if prune else ":unpruned")
    if key not in _CANDIDATES:
        if len(_CANDIDATES) > 16:
            _CANDIDATES.clear()
            _LAST.clear()
        _CANDIDATES[key] = build_candidates(case, replace(GRIDS[grid], prune=prune))
    return key, _CANDIDATES[key]


def evaluate(spec: StudySpec, point: Point) -> dict:
    """Plan one point; always returns a row (infeasible and invalid points say why)."""
    from .candidates import GRIDS
    from .planning import plan_case
    from .solve import SolveOptions

    t0 = time.perf_counter()
    row = point_row(point)
    try:
        case = build_case(point_raw(spec, point), spec.label, spec.catalogs)
        key, units = cached_candidates(case, spec.grid)
        p = plan_case(case, spec.objective, SolveOptions(time_limit_s=spec.time_limit_s, mip_gap=spec.mip_gap),
                      grid=GRIDS[spec.grid], units=units, warm=_LAST.get(key) if spec.warm_start else None)
        _LAST[key] = p.outcome
        row.update(plan_row(p))
    except PlannerError as exc:
        row.update(error_row(exc))
    row["wall_s"] = time.perf_counter() - t0
    return row


def point_row(point: Point) -> dict[str, Any]:
    """The identity columns every row of a point starts with."""
    row: dict[str, Any] = {"point": point.index, "point_key": point.key}
    if point.family:
        row["family"] = point.family
    row.update(dict(point.labels))
    return row


def error_row(exc: PlannerError) -> dict[str, Any]:
    """Status and reason of a point that has no plan (infeasible, a solver failure, bad input)."""
    return {"status": {1: "infeasible", 3: "solver_error"}.get(exc.exit_code, "invalid"),
            "message": "; ".join(str(p) for p in exc.problems) or str(exc)}


def plan_row(p) -> dict:
    """A plan flattened into one tidy row (units in the column names)."""
    chips_total = int(p.chips["chips"].sum()) if len(p.chips) else 0
    row = {"status": p.outcome.status, "objective": p.outcome.objective, "gap": p.outcome.gap,
           "capex_usd": p.cost["capex_usd"], "tco_usd_per_hour": p.cost["tco_usd_per_hour"],
           "usd_per_mtok": p.cost["usd_per_mtok"], "power_mw": p.power_mw, "throughput_tok_s": p.throughput_tok_s,
           "chips_total": chips_total,
           "tok_s_per_chip": p.throughput_tok_s / chips_total if chips_total else None,
           "tok_s_per_mw": p.throughput_tok_s / p.power_mw if p.power_mw else None,
           "achieved_speed_tok_s_user": float(p.classes["achieved_speed_tok_s_user"].min())
           if p.classes["achieved_speed_tok_s_user"].notna().any() else None}
    for r in p.chips.itertuples():
        row[f"chips.{r.chip}"] = int(r.chips)
    row["stages"] = ";".join(sorted({f"{r['class']}:{r.stage}={r.chip}" for _, r in p.stages.iterrows()}))
    binding = p.constraints[p.constraints["binding"]] if len(p.constraints) else p.constraints
    row["binding"] = ";".join(binding["name"]) if len(binding) else ""
    for r in p.constraints.itertuples():  # budgets always (their LP marginal value); targets when binding
        if (is_budget(r.name) or r.binding) and r.shadow_price is not None and not (
                isinstance(r.shadow_price, float) and math.isnan(r.shadow_price)):
            row[f"shadow.{r.name}"] = r.shadow_price
    return row


# -------------------------------------------------------------------------------------- families
def default_families(raw: dict, catalog) -> dict[str, dict]:
    """The fleet families the industry argues about, drawn from the case's own chip list."""
    chips = [catalog.resolve_chip(c) for c in raw.get("fleet", {}).get("chips", [])]
    cls = {c: catalog.chips[c].chip_class for c in chips}
    hbm = [c for c in chips if cls[c] in CHIP_GROUPS["hbm"]]
    pre = [c for c in chips if cls[c] in CHIP_GROUPS["prefill"]]
    sram = [c for c in chips if cls[c] in CHIP_GROUPS["sram"]]
    fams: dict[str, dict] = {}
    if hbm:
        fams["gpu-only"] = {"chips": hbm}
    if hbm and pre:
        fams["gpu+prefill"] = {"chips": hbm + pre, "stages": {"prefill": hbm + pre, "decode_attention": hbm,
                                                               "decode_ffn": hbm}}
    if hbm and sram:
        fams["gpu+sram-ffn"] = {"chips": hbm + sram, "stages": {"prefill": hbm, "decode_attention": hbm,
                                                                 "decode_ffn": hbm + sram}}
    if sram:
        fams["sram-only"] = {"chips": sram}
    fams["unrestricted"] = {"chips": chips}
    return fams


def case_families(raw: dict, catalog) -> dict[str, dict]:
    """Families defined in the case ([families.NAME] chips/stages/modes), else the defaults."""
    fams = raw.get("families")
    if not fams:
        return default_families(raw, catalog)
    if not isinstance(fams, dict) or not all(isinstance(v, dict) and isinstance(v.get("chips"), list)
                                             for v in fams.values()):
        raise CaseError("families must be tables with a chips list",
                        [Problem("families", "expected [families.NAME] chips = [...]", "see cases/rubin-lpx.toml")])
    return fams


def apply_family(raw: dict, fam: dict) -> None:
    raw.setdefault("fleet", {})
    raw["fleet"]["chips"] = list(fam["chips"])
    raw["fleet"]["stages"] = {s: list(v) for s, v in fam.get("stages", {}).items()}
    if "modes" in fam:
        raw["fleet"]["modes"] = list(fam["modes"])
    supply = raw.get("constraints", {}).get("supply", {})
    for c in list(supply):
        if c not in fam["chips"]:
            supply.pop(c)


# -------------------------------------------------------------------------------------- values
RANGE = re.compile(r"^(-?[\d.eE+-]+):(-?[\d.eE+-]+):(\d+)$")
PCT = re.compile(r"^±\s*([\d.]+)%:(\d+)$")
MAX_VALUES = 100_000  # per axis: a typo like 1:2:1000000000 should not allocate a billion points
FORMS = "a list 1,2,3, a range start:stop:n, or ±30%:5"


def parse_values(text: str, base: Any = None, geometric: bool = False) -> list:
    """'0.05,0.08' | 'start:stop:n' (linear, or geometric) | '±30%:n' around `base`.

    Raises ValueError for a malformed range and for non-finite numbers (nan, inf): a point
    that can only be invalid is refused before anything is solved."""
    text = text.strip()
    m = RANGE.match(text)
    m_pct = PCT.match(text.replace("+-", "±"))
    if m:
        try:
            a, b = float(m.group(1)), float(m.group(2))
        except ValueError:
            raise ValueError(f"'{text}': start and stop must be numbers") from None
        values = _range_values(a, b, int(m.group(3)), geometric)
    elif m_pct:
        if not isinstance(base, (int, float)) or isinstance(base, bool):
            raise ValueError("±% needs a numeric case value to vary around")
        pct, n = float(m_pct.group(1)) / 100, int(m_pct.group(2))
        values = _range_values(base * (1 - pct), base * (1 + pct), n, False)
    else:
        values = []
        for item in (v.strip() for v in text.split(",")):
            if not item:
                continue
            if ":" in item or item.startswith(("±", "+-")):
                raise ValueError(f"'{item}' is not a range: use start:stop:n (n a whole number ≥ 1) or ±PCT%:n")
            values.append(parse_value(item))
    bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ValueError(f"{bad[0]} is not a finite number")
    return values


def _range_values(a: float, b: float, n: int, geometric: bool) -> list[float]:
    if not 1 <= n <= MAX_VALUES:
        raise ValueError(f"n must be from 1 to {MAX_VALUES:,}, got {n}")
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{a if not math.isfinite(a) else b} is not a finite number")
    if geometric and a > 0 and b > 0:
        return [float(v) for v in np.geomspace(a, b, n)]
    return [float(v) for v in np.linspace(a, b, n)]


def positive_numbers(values: list, option: str, example: str) -> list[float]:
    """Speeds and budgets: every value a finite number > 0, else one error naming the option."""
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise CaseError(f"{option}: '{v}' is not a number > 0", [Problem(
                option, f"'{v}' is not a finite number > 0", f"give numbers > 0: {example}")])
    return list(values)


def base_value(spec: StudySpec, path: str):
    """The case (or catalog) value a ±% range varies around."""
    try:
        return get_path(spec.raw, path)
    except (KeyError, IndexError, TypeError, PlannerError):
        pass
    parts = path.split(".")
    if parts[0] in ("chips", "models") and len(parts) >= 3:
        from .catalog import load_catalog

        cat = load_catalog(list(spec.catalogs))
        table = cat.chips if parts[0] == "chips" else cat.models
        key = ".".join(parts[1:-1])
        try:
            entry = table.get(key) or (cat.chip(key) if parts[0] == "chips" else cat.model(key))
        except PlannerError:  # an unknown id: check_paths names it with a did-you-mean
            return None
        if hasattr(entry, parts[-1]):
            return getattr(entry, parts[-1])
    return None


def spec_catalog(spec: StudySpec):
    """The catalog the case sees: shipped + --catalog overlays + the case's inline tables."""
    from .cases import case_catalog

    return case_catalog(spec.raw, spec.label, spec.catalogs)


def check_paths(spec: StudySpec, varies: list[tuple[str, list]], option: str = "--vary") -> None:
    """Every varied path names a case field or catalog figure — checked by building the case with
    the first value once, so a typo fails now, not as N invalid points. A known path whose first
    value is out of range is left to its point (other values may be fine)."""
    for path, values in varies:
        raw = copy.deepcopy(spec.raw)
        try:
            apply_override(raw, path, values[0])
            build_case(raw, spec.label, spec.catalogs)
        except PlannerError as exc:
            if _known_path(spec, path):
                continue
            what = exc.problems[0].what if exc.problems else str(exc)
            fix = path_hint(spec, path) or (exc.problems[0].fix if exc.problems else "") or \
                "a case field (classes.0.isl, economics.pue, constraints.power_mw …) or a catalog figure chips.ID.FIELD"
            raise CaseError(f"{option} {path}: no such case field or catalog figure", [Problem(
                f"{option} {path}", what, fix)]) from None


def _known_path(spec: StudySpec, path: str) -> bool:
    """The path exists in the case, the catalog, or the case schema (a field left at its default)."""
    try:
        get_path(spec.raw, path)
        return True
    except (KeyError, IndexError, TypeError, PlannerError):
        pass
    return base_value(spec, path) is not None or _first_unknown(spec, path) == ()


def _first_unknown(spec: StudySpec, path: str) -> tuple | None:
    """(keys, position, known names there) of the first key the schema does not know; () when the
    schema knows them all; None for paths the schema here does not describe."""
    from .cases import CLASS_FIELDS, CONSTRAINT_FIELDS, FLEET_FIELDS, TOP_KEYS, split_path
    from .catalog import CHIP_FIELDS, ECONOMICS_FIELDS, MODEL_FIELDS

    keys = [str(k) for k in split_path(path)]
    tables = {"economics": ECONOMICS_FIELDS, "constraints": CONSTRAINT_FIELDS, "fleet": FLEET_FIELDS}
    if keys[0] not in TOP_KEYS:
        return keys, 0, list(TOP_KEYS)
    if keys[0] in ("chips", "models") and len(keys) == 3:
        cat = spec_catalog(spec)
        try:
            (cat.resolve_chip if keys[0] == "chips" else cat.resolve_model)(keys[1])
        except PlannerError:
            return keys, 1, list(cat.chips if keys[0] == "chips" else cat.models)
        fields = CHIP_FIELDS if keys[0] == "chips" else MODEL_FIELDS
        return () if keys[2] in fields else (keys, 2, list(fields))
    if keys[0] == "classes" and len(keys) == 3:
        classes = spec.raw.get("classes") or []
        items = [str(i) for i in range(len(classes))] + [str(c.get("name")) for c in classes if isinstance(c, dict)]
        if keys[1] not in items:  # a class by index, or by name where the case loader allows it
            return keys, 1, items
        return () if keys[2] in CLASS_FIELDS else (keys, 2, list(CLASS_FIELDS))
    if keys[0] in tables and len(keys) == 2:
        return () if keys[1] in tables[keys[0]] else (keys, 1, list(tables[keys[0]]))
    return None


def path_hint(spec: StudySpec, path: str) -> str:
    """'did you mean …?' for the first unknown key of a path, spelled as the whole path."""
    import difflib

    found = _first_unknown(spec, path)
    if not found:
        return ""
    keys, at, options = found
    close = difflib.get_close_matches(keys[at], options, n=1, cutoff=0.6)
    return f"did you mean '{'.'.join(keys[:at] + [close[0]] + keys[at + 1:])}'?" if close else ""


def beside(output: str | Path, suffix: str) -> Path:
    """A file beside the sweep CSV: out/t.csv → out/t{suffix}, run.v1/results → run.v1/results{suffix}
    (only a .csv suffix is dropped; dots in directories and names stay)."""
    out = Path(output)
    stem = out.stem if out.suffix.lower() == ".csv" else out.name
    return out.with_name(f"{stem}{suffix}")


def tornado_path(output: str | Path) -> Path:
    """The tornado PNG beside the sweep CSV."""
    return beside(output, "_tornado.png")


def parse_vary(items: Iterable[str], spec: StudySpec) -> list[tuple[str, list]]:
    out = []
    for item in items:
        if "=" not in item:
            raise CaseError(f"--vary '{item}' has no '='", [Problem(f"--vary {item}", "expected PATH=VALUES",
                            "e.g. --vary chips.groq3-lpu.price_usd=5000:20000:4")])
        path, text = item.split("=", 1)
        try:
            values = parse_values(text, base_value(spec, path.strip()))
        except ValueError as exc:
            raise CaseError(f"--vary {item}: {exc}", [Problem(f"--vary {item}", str(exc), f"use {FORMS}")])
        if not values:
            raise CaseError(f"--vary {item}: no values", [Problem(f"--vary {item}", "no values", f"use {FORMS}")])
        out.append((path.strip(), values))
    from .cases import resolve_path

    seen: dict[str, str] = {}
    for path, _ in out:  # classes.chat.isl and classes.0.isl are one field: two --vary of it would mislabel rows
        canon = resolve_path(spec.raw, path)
        if canon in seen:
            raise CaseError(f"--vary {path}: the same field as --vary {seen[canon]}", [Problem(
                f"--vary {path}", f"is {canon}, already varied as {seen[canon]}", "give each field one --vary")])
        seen[canon] = path
    return out


# -------------------------------------------------------------------------------------- running
def run_points(spec: StudySpec, points: list[Point], workers: int | None = None, scheduler: str | None = None,
               output: str | Path | None = None, resume: bool = False, quiet: bool = True,
               force: bool = False, kind: str = "study", chains: bool = False) -> pd.DataFrame:
    """Evaluate points (locally, in a pool, or on Dask), appending rows to `output` as they finish.

    The output is checked and locked before any point runs; a resume continues only a file of this
    very study (same `study_sha256`)."""
    points = unique_points(points)
    from .cases import referenced_files

    sha = study_hash(kind, spec.raw, spec.catalogs, spec.objective, spec.time_limit_s, spec.mip_gap, spec.grid,
                     spec.families, [p.key for p in points], referenced_files(spec.raw, spec.label))
    out = Path(output) if output else None
    if out is None:
        return _finish(_run(spec, points, workers, scheduler, None, sha, quiet, kind, chains), None)
    check_output(out)
    with OutputLock(out):
        done_rows: list[dict] = []
        done: list[Point] = []  # speed13: points already written, which a sweep chain replays
        if out.exists() and not (resume or force):
            raise PlannerError(f"{out} exists", [Problem(str(out), "output exists",
                               "pass --resume to continue it, --force to overwrite, or another --output")])
        if out.exists() and resume:
            done_rows = resume_rows(out, sha)
            have = {r["point_key"] for r in done_rows}
            done = [p for p in points if p.key in have]
            points = [p for p in points if p.key not in have]
        elif out.exists():
            out.unlink()
        rows = done_rows + _run(spec, points, workers, scheduler, out, sha, quiet, kind, chains, done)
        return _finish(rows, out)


def unique_points(points: list[Point]) -> list[Point]:
    """One point per key (a value listed twice is one plan, and one row), renumbered in order."""
    seen: set[str] = set()
    out = []
    for p in points:
        if p.key not in seen:
            seen.add(p.key)
            out.append(replace(p, index=len(out)))
    return out


def resume_rows(out: Path, sha: str) -> list[dict]:
    """The rows a previous run of this study finished; the file is rewritten without torn rows."""
    import io

    from .reports import write_atomic

    text, dropped = read_resumable(out, sha)
    try:
        prev = pd.read_csv(io.StringIO(text), dtype={"point_key": str, HASH_COLUMN: str})
    except (pd.errors.ParserError, ValueError) as exc:
        raise PlannerError(f"--resume: cannot continue {out}", [Problem(f"--resume {out}", f"unreadable rows ({exc})",
                           "use --force (without --resume) to start over, or another --output")]) from None
    rows = [r for r in (_unpack(r) for r in prev.to_dict("records")) if r is not None]
    if len(rows) < len(prev):  # a row whose overflow JSON is cut: recompute it
        dropped += len(prev) - len(rows)
        text = _only_points(text, {r["point_key"] for r in rows})
    if dropped:
        sys.stderr.write(f"--resume: dropped {dropped} torn or repeated row(s) from {out}\n")
    if text != out.read_text(encoding="utf-8", errors="replace"):
        try:
            write_atomic(out, text)
        except OSError as exc:
            raise StudyOutputError(f"cannot rewrite {out}", [Problem(str(out), exc.strerror or str(exc),
                                   "free space and rerun with --resume")]) from None
    return rows


def _only_points(text: str, keys: set[str]) -> str:
    """The CSV text with only the rows of these point keys."""
    import csv
    import io

    records = list(csv.reader(io.StringIO(text)))
    ki = records[0].index("point_key")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([records[0]] + [r for r in records[1:] if r[ki] in keys])
    return buf.getvalue()


CHAIN_POINTS = 10
"""Speeds per chain: long enough to reuse one model across points, short enough that a 2-core pool
stays busy (one family's chain of 40 took as long as the other four together). Fixed, not derived
from the worker count, so the same inputs give the same rows with any number of workers."""


def _chains(points: list[Point]) -> list[list[Point]]:
    """A speed study's points grouped by family and cut into runs of adjacent speeds, each one chain
    (planner/speed_chain.py)."""
    from .speed_chain import speed_of

    groups: dict[str | None, list[Point]] = {}
    for p in points:
        groups.setdefault(p.family, []).append(p)
    chains = []
    for group in groups.values():
        group = sorted(group, key=speed_of)
        chains += [group[i:i + CHAIN_POINTS] for i in range(0, len(group), CHAIN_POINTS)]
    return chains


def _run(spec: StudySpec, points: list[Point], workers, scheduler, out: Path | None, sha: str, quiet: bool,
         kind: str, chains: bool | str = False, done: list[Point] = ()) -> list[dict]:
    """Evaluate the points; Ctrl-C or SIGTERM stops promptly with the finished rows on disk.
    `chains`: the points are speed targets, solved per family as a chain (one model, re-solved)."""
    new_rows: list[dict] = []
    appender = CsvAppender(out) if out is not None else None
    bar = progress(len(points), quiet, kind)

    def finished(row):
        row[HASH_COLUMN] = sha
        if appender:
            appender.add(row)
        new_rows.append(row)
        bar.update(1)

    try:
        with sigterm_raises():
            shaped = any(isinstance(c, dict) and ("lengths" in c or "trace" in c) for c in spec.raw.get("classes", []))
            if chains and not scheduler and (chains == "sweep" or not shaped):  # length buckets: per-bucket speeds
                from .price_chain import chains_of, evaluate_price_chain  # speed13: chains="sweep", price chains
                from .speed_chain import evaluate_chain

                evaluate_chain, groups = (evaluate_price_chain, chains_of(points, done)) if chains == "sweep" else (
                    evaluate_chain, _chains(points))
                if (workers or 1) > 1 and len(groups) > 1:
                    run_chain_pool(evaluate_chain, spec, groups, workers, finished)
                else:
                    for group in groups:
                        evaluate_chain(spec, group, finished)
            elif scheduler:
                _run_dask(spec, points, scheduler, finished)
            elif (workers or 1) > 1 and len(points) > 1:
                run_pool(evaluate, spec, points, workers, finished)
            else:
                for p in points:
                    finished(evaluate(spec, p))
    except (KeyboardInterrupt, _Signalled) as exc:
        signum = signal_number(exc)
        name = signal.Signals(signum).name
        where = f"{len(new_rows)} of {len(points)} points finished" + (f" and kept in {out}" if out else "")
        raise Interrupted(signum, f"interrupted by {name}: {where}", [Problem(
            "--resume", "the study stopped before its last point",
            "rerun the same command with --resume to continue" if out else "rerun it")]) from None
    finally:
        bar.close()
        if appender:
            appender.close()
    return new_rows


def _finish(rows: list[dict], out: Path | None) -> pd.DataFrame:
    """Tidy the rows, say how many points failed (invalid, solver error), and rewrite the output
    in point order. A study none of whose points has an answer is an error, not a CSV of reasons."""
    df = tidy(pd.DataFrame(rows))
    failed = df[df["status"].isin(("invalid", "solver_error"))] if "status" in df else df.iloc[0:0]
    if len(df) and len(failed) == len(df):
        if out is not None:
            out.unlink(missing_ok=True)  # only failed rows: nothing worth resuming
        first = failed.iloc[0]
        invalid = first["status"] == "invalid"
        raise (CaseError if invalid else SolverError)(
            f"{'every point of the study is invalid' if invalid else 'no point of the study was solved'} "
            f"({len(df)} point(s))", [Problem(f"point {first['point']}", str(first.get("message", "")),
                                              "fix the case or the varied values; `fleet validate CASE --set "
                                              "PATH=VALUE` checks one" if invalid else "")])
    if len(failed):
        first = failed.iloc[0]
        counts = [f"{n} of {len(df)} points {what}" for n, what in (
            ((failed["status"] == "invalid").sum(), "are invalid"),
            ((failed["status"] == "solver_error").sum(), "failed to solve")) if n]
        sys.stderr.write(f"warning: {'; '.join(counts)} (first, point {first['point']}: "
                         f"{first.get('message', '')})\n")
    if out is not None:
        from .reports import write_atomic

        try:
            write_atomic(out, df.to_csv(index=False, lineterminator="\n", float_format="%.10g"))
        except OSError as exc:
            raise StudyOutputError(f"cannot rewrite {out}", [Problem(str(out), exc.strerror or str(exc),
                                   "free space and rerun with --resume: the rows appended so far are kept")]) from None
    return df


def _unpack(row: dict) -> dict | None:
    """A row read back from a partial CSV: NaN → missing, the 'extra' JSON back into columns
    (None when that JSON is not a whole object)."""
    out = {k: v for k, v in row.items() if k != "extra" and not (isinstance(v, float) and math.isnan(v))}
    extra = row.get("extra")
    if isinstance(extra, str) and extra:
        try:
            extra = json.loads(extra)
        except ValueError:
            return None
        if not isinstance(extra, dict):
            return None
        out.update(extra)
    return out


def is_count_column(name: str) -> bool:
    """`chips.<id>` (one dot) is a plan's chip count; `chips.<id>.<field>` is a varied catalog figure."""
    return name.startswith("chips.") and name.count(".") == 1


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Point order; identity and status columns first, chips/shadow columns sorted, timing and hash last."""
    if df.empty:
        return df
    df = df.drop(columns=[c for c in ("extra",) if c in df]).sort_values("point", kind="stable").reset_index(drop=True)
    first = [c for c in ("point", "point_key", "family") if c in df]
    last = [c for c in ("wall_s", HASH_COLUMN) if c in df]
    lead = [c for c in df.columns if c not in first and c not in last and not c.startswith(("chips.", "shadow."))]
    tail = sorted(c for c in df.columns if c.startswith("chips.")) + sorted(
        c for c in df.columns if c.startswith("shadow."))
    counts = [c for c in df.columns if is_count_column(c)]
    df[counts] = df[counts].fillna(0).astype(int)
    return df[first + lead + tail + last]


def _run_dask(spec, points, address, finished):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise PlannerError("--scheduler needs dask.distributed", [Problem(
            "--scheduler", "dask.distributed is not installed", "pip install 'fleet-planner[dask]'")])
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise PlannerError(f"cannot reach the Dask scheduler at {address}", [Problem(
            "--scheduler", str(exc), "check the address (tcp://host:8786) and that the scheduler runs")])
    with client:
        futures = client.map(evaluate, [spec] * len(points), points, pure=False)
        try:
            for f in as_completed(futures):
                finished(f.result())
        except BaseException:
            client.cancel(futures)
            raise


# -------------------------------------------------------------------------------------- studies
def load_spec(case: str | None, sets=(), catalogs=(), objective="tco", time_limit_s=60.0, mip_gap=DEFAULT_MIP_GAP,
              grid: str = "fine", warm_start: bool = False) -> StudySpec:
    """Read the case once, apply --set, and validate it (so a bad case fails before any point runs)."""
    from .cases import parse_sets

    raw, label = read_case_raw(case)
    for path, value in parse_sets(sets):
        apply_override(raw, path, value)
    build_case(raw, label, list(catalogs))
    return StudySpec(raw=raw, label=label, catalogs=tuple(catalogs), objective=objective,
                     time_limit_s=time_limit_s, mip_gap=mip_gap, grid=grid, warm_start=warm_start)


def sweep_points(varies: list[tuple[str, list]], mode: str = "grid") -> list[Point]:
    """One --vary: one point per value; several: full grid, or one-at-a-time (mode 'oat')."""
    points = []
    if mode == "oat" or len(varies) == 1:
        for path, values in varies:
            for v in values:
                points.append(Point(len(points), ((path, v),), ((path, v), ("varied", path))))
    else:
        for combo in itertools.product(*[[(p, v) for v in vals] for p, vals in varies]):
            points.append(Point(len(points), tuple(combo), tuple(combo)))
    return points


def sweep(case: str | None = None, vary: Iterable[str] = (), mode: str = "grid", sets=(), catalogs=(),
          objective: str = "tco", workers: int | None = 1, scheduler: str | None = None, output=None,
          resume: bool = False, quiet: bool = True, force: bool = False, time_limit_s: float = 60.0,
          mip_gap: float = DEFAULT_MIP_GAP, grid: str = "fine", warm_start: bool = False,
          chains: bool = True) -> pd.DataFrame:
    """Sensitivity sweep: one row per point (varied values, status, cost, MW, chips, stages, duals).
    `chains`: points on one candidate table share one model, changed in place (planner/price_chain.py;
    exact, several times faster); False plans every point on its own."""
    spec = load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid, warm_start)
    varies = parse_vary(vary, spec)
    if not varies:
        raise CaseError("nothing to vary", [Problem("--vary", "missing", "give --vary PATH=VALUES")])
    check_paths(spec, varies)
    return run_points(spec, sweep_points(varies, mode), workers, scheduler, output, resume, quiet, force, "sweep",
                      chains="sweep" if chains else False)  # speed13: price chains


def speed_paths(spec: StudySpec, class_name: str | None) -> list[str]:
    names = [c.get("name") for c in spec.raw.get("classes", [])]
    if class_name is None:
        return [f"classes.{i}.min_speed_tok_s_user" for i in range(len(names))]
    if class_name not in names:
        from .errors import did_you_mean

        raise CaseError(f"no class '{class_name}'", [Problem("--class", f"unknown class '{class_name}'",
                        did_you_mean(class_name, names) or f"classes: {', '.join(map(str, names))}")])
    return [f"classes.{names.index(class_name)}.min_speed_tok_s_user"]


def pareto(case: str | None = None, speeds: str = "25:2000:40", families: Iterable[str] | None = None,
           class_name: str | None = None, sets=(), catalogs=(), workers: int | None = 1,
           scheduler: str | None = None, output=None, resume: bool = False, quiet: bool = True,
           force: bool = False, time_limit_s: float = 60.0, mip_gap: float = DEFAULT_MIP_GAP,
           grid: str = "fine", warm_start: bool = False, chains: bool = True, objective: str = "tco") -> pd.DataFrame:
    """Best plan (min `objective`: tco, power or capex) per fleet family and speed target: the
    TPS/MW-vs-TPS/user frontier (objective "power" maximises tokens/s per MW for the demand).
    `chains`: solve each family's speeds as one chain (planner/speed_chain.py; exact, and several
    times faster); False plans every point on its own."""
    if objective not in ("tco", "power", "capex"):
        raise CaseError(f"unknown pareto objective '{objective}'", [Problem(
            "--objective", objective, "use tco, power or capex (the demand is fixed: throughput has nothing to maximise)")])
    spec = load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid, warm_start)
    spec.families = case_families(spec.raw, spec_catalog(spec))
    chosen = list(families) if families else list(spec.families)
    unknown = [f for f in chosen if f not in spec.families]
    if unknown:
        raise CaseError(f"unknown family {unknown[0]}", [Problem("--families", f"unknown '{unknown[0]}'",
                        f"families of this case: {', '.join(spec.families)}")])
    try:
        values = parse_values(str(speeds), geometric=True)
    except ValueError as exc:
        raise CaseError(f"--speeds: {exc}", [Problem("--speeds", str(exc),
                        "tok/s/user > 0 as start:stop:n (geometric) or a list, e.g. 25:2000:40 or 42,71,100")])
    values = positive_numbers(values, "--speeds", "25:2000:40 or 42,71,100")
    if not values:
        raise CaseError("--speeds: no values", [Problem("--speeds", repr(speeds), "e.g. 25:2000:40 or 42,71,100")])
    paths = speed_paths(spec, class_name)
    points = []
    for fam in chosen:
        for s in values:
            points.append(Point(len(points), tuple((p, float(s)) for p in paths),
                                (("speed_tok_s_user", float(s)),), fam))
    return run_points(spec, points, workers, scheduler, output, resume, quiet, force, "pareto", chains=chains)


def budget(case: str | None = None, power_mw: str | None = None, capex_usd: str | None = None, sets=(),
           catalogs=(), workers: int | None = 1, scheduler: str | None = None, output=None, resume=False,
           quiet=True, force=False, time_limit_s: float = 60.0, mip_gap: float = DEFAULT_MIP_GAP,
           grid: str = "fine", warm_start: bool = False) -> pd.DataFrame:
    """Maximum served tokens/s inside each budget point, with the marginal value of each budget."""
    spec = load_spec(case, sets, catalogs, "throughput", time_limit_s, mip_gap, grid, warm_start)
    axes = []
    for path, option, text in (("constraints.power_mw", "--power-mw", power_mw),
                               ("constraints.capex_usd", "--capex-usd", capex_usd)):
        if text is not None:
            form = "a number > 0, a list 50,100 or start:stop:n, e.g. 20:100:5"
            try:
                values = parse_values(str(text))
            except ValueError as exc:
                raise CaseError(f"{option}: {exc}", [Problem(option, str(exc), form)])
            if not values:
                raise CaseError(f"{option}: no values", [Problem(option, "no values", form)])
            axes.append((path, positive_numbers(values, option, form)))
    if not axes and not (spec.raw.get("constraints", {}).get("power_mw") or spec.raw.get("constraints", {}).get("capex_usd")):
        raise CaseError("a budget study needs a budget", [Problem("--power-mw", "missing",
                        "give --power-mw and/or --capex-usd")])
    points = sweep_points(axes, "grid") if axes else [Point(0, ())]
    return run_points(spec, points, workers, scheduler, output, resume, quiet, force, "budget")


# -------------------------------------------------------------------------------------- break-even
UNTIL = re.compile(r"^\s*(chips\.([\w.\-]+)|stage\.(?:([\w\-]+)\.)?([\w\-]+))\s*"
                   r"(==|!=|>=|<=|>|<)\s*([\w.\-]+)\s*$")
UNTIL_FORMS = "use 'chips.ID > 0', 'chips.ID == 0' or 'stage.decode_ffn == CHIP' (optionally stage.CLASS.STAGE)"


def parse_until(expr: str, case=None, catalog=None) -> Callable[[dict], bool]:
    """A predicate over a plan row: 'chips.ID OP NUMBER' or 'stage[.CLASS].STAGE ==|!= CHIP'.
    Parsed by a small grammar — never evaluated as code. With the case (and its catalog), chip
    ids (or aliases), classes and stages must be the case's, so a typo fails before any solve."""
    from .domain import STAGES

    m = UNTIL.match(expr or "")
    if not m:
        raise CaseError(f"cannot read --until '{expr}'", [Problem("--until", f"'{expr}'", UNTIL_FORMS)])
    chip_id, cls, stage, op, rhs = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6)
    ops = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    if chip_id:
        try:
            number = float(rhs)
        except ValueError:
            raise CaseError(f"--until: '{rhs}' is not a number", [Problem("--until", rhs, "compare chip counts to a number")])
        if not math.isfinite(number):
            raise CaseError(f"--until: '{rhs}' is not a finite number", [Problem("--until", rhs, "compare chip counts to a number")])
        chip_id = _case_chip(chip_id, case, catalog)
        return lambda row: row.get("status") in ("optimal", "feasible", "time_limit") and ops[op](
            float(row.get(f"chips.{chip_id}", 0) or 0), number)
    if op not in ("==", "!="):
        raise CaseError("--until: stages compare with == or !=", [Problem("--until", op, "use == or !=")])
    if stage not in STAGES:
        raise CaseError(f"--until: no stage '{stage}'", [Problem("--until", f"unknown stage '{stage}'",
                        did_you_mean(stage, STAGES) or f"stages: {', '.join(STAGES)}")])
    if case is not None and cls is not None:
        names = [c.name for c in case.classes]
        if cls not in names:
            raise CaseError(f"--until: no class '{cls}'", [Problem("--until", f"unknown class '{cls}'",
                            did_you_mean(cls, names) or f"classes of this case: {', '.join(names)}")])
    rhs = _case_chip(rhs, case, catalog)

    def stage_pred(row):
        if row.get("status") not in ("optimal", "feasible", "time_limit"):
            return False
        chips = {s.split("=")[1] for s in str(row.get("stages", "")).split(";") if "=" in s
                 and s.split("=")[0].split(":")[1] == stage and (cls is None or s.split(":")[0] == cls)}
        return (rhs in chips) if op == "==" else (rhs not in chips)

    return stage_pred


def _case_chip(key: str, case, catalog) -> str:
    """A chip id or alias of the case's fleet, as its catalog id (rows name chips by id)."""
    if case is None:
        return key
    allowed = list(case.fleet.chips)
    try:
        chip_id = catalog.resolve_chip(key) if catalog is not None else key
    except PlannerError:
        chip_id = None
    if chip_id not in allowed:
        raise CaseError(f"--until: '{key}' is not a chip of this case", [Problem(
            "--until", f"'{key}' is not in the case's fleet",
            did_you_mean(key, allowed) or f"chips of this case: {', '.join(allowed)}")])
    return chip_id


def breakeven(case: str | None = None, vary: str = "", until: str = "", rel_tol: float = 0.01, sets=(),
              catalogs=(), objective="tco", max_steps: int = 30, time_limit_s: float = 60.0,
              mip_gap: float = DEFAULT_MIP_GAP, grid: str = "fine") -> dict:
    """Bisection over one parameter until the plan changes in the named way."""
    spec = load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid)
    path, _, text = (vary or "").partition("=")
    path = path.strip()
    try:
        lo, hi = (float(v) for v in text.split(":"))
        if not (path and math.isfinite(lo) and math.isfinite(hi) and lo != hi):
            raise ValueError
    except ValueError:
        raise CaseError("--vary needs PATH=LO:HI", [Problem("--vary", vary, "two different finite numbers, e.g. "
                        "chips.groq3-lpu.price_usd=1000:40000")]) from None
    pred = parse_until(until, build_case(spec.raw, spec.label, spec.catalogs), spec_catalog(spec))
    check_paths(spec, [(path, [lo])])
    at = lambda v, i: evaluate(spec, Point(i, ((path, v),), ((path, v),)))  # noqa: E731
    r_lo, r_hi = at(lo, 0), at(hi, 1)
    p_lo, p_hi = pred(r_lo), pred(r_hi)
    steps = 2
    if p_lo == p_hi:
        return {"path": path, "until": until, "found": False, "low": lo, "high": hi, "holds_at_low": p_lo,
                "holds_at_high": p_hi, "steps": steps, "plan_low": r_lo, "plan_high": r_hi,
                "message": f"'{until}' is {'true' if p_lo else 'false'} at both ends of [{lo:g}, {hi:g}]"}
    while steps < max_steps and abs(hi - lo) > rel_tol * max(abs(lo), abs(hi), 1e-12):
        mid = (lo + hi) / 2
        r_mid = at(mid, steps)
        steps += 1
        if pred(r_mid) == p_lo:
            lo, r_lo = mid, r_mid
        else:
            hi, r_hi = mid, r_mid
    return {"path": path, "until": until, "found": True, "value": (lo + hi) / 2, "low": lo, "high": hi,
            "tolerance": rel_tol, "holds_at_low": p_lo, "holds_at_high": p_hi, "steps": steps,
            "plan_low": r_lo, "plan_high": r_hi}
