"""Case loading: TOML file (or shipped case name) + `--set` overrides → validated Case.

A case may also carry inline [chips.ID] / [models.ID] / [arch.ID] / [fabric.ID] / [software.ID]
tables; they act as a catalog overlay, so `--set chips.groq3-lpu.price_usd=5000` or
`--set software.rocm.maturity=0.8` (every chip on that stack) works like any other override.  Validation reports every
problem at once (file, field path, what is wrong, how to fix it).
"""
from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from .catalog import ECONOMICS_FIELDS, PHYSICAL_RANGES, Catalog, check_fields, check_range, check_value, load_catalog
from .domain import STAGES, Case, Constraints, Economics, Fleet, OwnedChips, Period, TrafficClass
from .errors import CaseError, CatalogError, Problem, did_you_mean
from .units import PRECISION_ALIASES, PRECISIONS, canonical_precision

TOP_KEYS = ("name", "description", "options", "economics", "constraints", "fleet", "classes", "chips", "models", "arch",
            "fabric", "software", "families", "periods")
OPTION_FIELDS = {"objective": ("tco", "capex", "power", "throughput"), "year": "a decimal year, e.g. 2027.5 (H2-2027)",
                 "allow_unavailable": "true or false"}
"""[options]: how the case's question is answered by default (a command-line flag still wins).
A tuple lists the allowed values; a string describes a typed value (checked in _check_options)."""
CLASS_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "name": ("str", True, None, "a class name"),
    "model": ("str", True, None, "a model id (see `fleet catalog list models`)"),
    "precision": ("str", True, None, "bf16, fp8 or fp4 (aliases: fp16, bfloat16, float8, nvfp4, mxfp4 …)"),
    "isl": ("int", False, ">0", "input (prompt) length in tokens (or give lengths or trace)"),
    "osl": ("int", False, ">0", "output length in tokens (or give lengths or trace)"),
    "demand_tok_s": ("float", True, ">0", "demanded output tokens/s"),
    "min_speed_tok_s_user": ("float", True, ">0", "minimum decode speed per user (tokens/s)"),
    "ttft_s": ("float", True, ">0", "time-to-first-token target (s)"),
    "kv_headroom": ("float", False, ">=0", "spare KV memory fraction, e.g. 0.1"),
    "max_utilization": ("float", False, ">0", "prefill utilisation cap in (0, 1)"),
    "cached_isl": ("int", False, ">=0", "prompt tokens served from a prefix cache (< isl)"),
    "draft_model": ("str", False, None, "a small model id for speculative decoding"),
    "draft_tokens": ("int", False, ">0", "tokens the draft proposes per round"),
    "accepted_tokens_per_step": ("float", False, ">0", "tokens emitted per verify round (1 … draft_tokens+1, or mtp_tokens+1)"),
    "mtp_tokens": ("int", False, ">=0", "tokens the model's own MTP head drafts per step (DeepSeek-style multi-token prediction; 0 = off)"),
    # workload shape (planner/workload.py): a length distribution instead of one isl/osl pair
    "lengths": ("tables", False, None, "[[classes.lengths]] entries isl, osl, share (share of requests; shares sum to 1)"),
    "trace": ("str", False, None, "a CSV (or Parquet) trace, path relative to the case file, columns isl, osl[, arrival_s][, cached_isl]"),
    "max_buckets": ("int", False, ">0", "the most length buckets to plan (default 8)"),
    "bucket_tolerance": ("float", False, ">=0", "bucketing error allowed before merging stops (default 0.05)"),
    "merge_buckets": ("bool", False, None, "true (default) lets one unit serve a contiguous range of buckets"),
    "merge_span": ("int", False, ">0", "the most buckets one shared unit may serve (default MERGE_SPAN)"),
    "ttft_percentile": ("float", False, ">0", "percent of requests the TTFT target holds for: 50, 90, 99 … (default 100)"),
    "speed_percentile": ("float", False, ">0", "percent of requests the speed target holds for (default 100)"),
    "tail_ttft_s": ("float", False, ">0", "TTFT bound beyond ttft_percentile (default: none; prefill at max_utilization)"),
    "tail_min_speed_tok_s_user": ("float", False, ">0", "speed floor beyond speed_percentile (default 1 tok/s/user)"),
}
SHAPE_FIELDS = ("lengths", "trace", "max_buckets", "bucket_tolerance", "merge_buckets", "merge_span", "ttft_percentile",
                "speed_percentile", "tail_ttft_s", "tail_min_speed_tok_s_user")
MERGE_SPAN = 2
"""Default: a shared unit serves two adjacent buckets. Measured on cases/trace-chat-agent.toml: any range
(up to all 8) finds the same TCO but does not prove it inside 60 s; adjacent pairs prove it in ~6 s."""
TAIL_TTFT_S = 3_600.0
"""TTFT 'target' of buckets beyond ttft_percentile when no tail_ttft_s is given: no target, so their
prefill runs at the class's max_utilization (M/D/1 wait ≤ ρ/(2(1−ρ)) service times)."""
TAIL_MIN_SPEED = 1.0
"""Speed floor of buckets beyond speed_percentile when no tail_min_speed_tok_s_user is given."""
CONSTRAINT_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "power_mw": ("float", False, ">0", "site power budget (MW, facility side incl. PUE)"),
    "capex_usd": ("float", False, ">0", "chip capex budget (USD)"),
    "max_chip_types_per_stage": ("int", False, ">0", "max distinct chip types per stage"),
    "supply": ("table", False, None, "per-chip caps, e.g. {rubin = 20000}"),
    "fixed_cost_usd": ("table", False, None, "per-chip-type fixed platform cost (USD)"),
    "spare_fraction": ("float", False, ">=0", "spare units per group as a fraction of the working ones, e.g. 0.05"),
    "availability": ("float", False, ">0", "probability that each group's working capacity covers its load, e.g. 0.999"),
}
CASE_RANGES: dict[str, tuple[float, float, str]] = {
    # A case figure outside these is a typo or a units slip, not a scenario (see catalog.PHYSICAL_RANGES).
    "isl": (1, 10_000_000, "tokens"),
    "osl": (1, 10_000_000, "tokens"),
    "cached_isl": (0, 10_000_000, "tokens"),
    # below 1 tok/s is a units slip, and under ~0.05 tok/s HiGHS's tolerances lose the demand row (exit 3)
    "demand_tok_s": (1, 1e10, "tok/s (1e10 is ~10× what a 1 GW site serves)"),
    "min_speed_tok_s_user": (0.01, 100_000, "tok/s/user"),
    "ttft_s": (0.001, 3_600, "s"),
    "kv_headroom": (0, 10, "(fraction of the KV cache kept spare)"),
    "draft_tokens": (1, 64, "tokens"),
    "mtp_tokens": (0, 16, "tokens"),
    "accepted_tokens_per_step": (1, 65, "tokens"),
    "max_buckets": (1, 64, "buckets"),
    "merge_span": (2, 64, "buckets"),
    "bucket_tolerance": (0, 10, "(relative error)"),
    "ttft_percentile": (1, 100, "%"),
    "speed_percentile": (1, 100, "%"),
    "tail_ttft_s": (0.001, 3_600, "s"),
    "tail_min_speed_tok_s_user": (0.01, 100_000, "tok/s/user"),
    "power_mw": (0.001, 100_000, "MW"),
    "capex_usd": (1, 1e13, "USD"),
    "max_chip_types_per_stage": (1, 1_000, "types"),
    "supply": (0, 1e8, "chips"),
    "fixed_cost_usd": (0, 1e12, "USD"),
    "spare_fraction": (0, 1, "(spare units per working unit)"),
    "availability": (0.5, 0.999999, "(probability; 0.999999 = six nines)"),
    "demand_profile": (0, 100, "× demand_tok_s"),
    "electricity_usd_per_kwh_by_hour": (0, 10, "USD/kWh"),
    "count": (0, 1e8, "chips"),
    "age_years": (0, 30, "years"),
    "year": (1990, 2100, "(calendar year)"),
    "years": (0.01, 100, "years"),
    **PHYSICAL_RANGES,
}
FLEET_FIELDS = ("chips", "stages", "modes", "owned")
OWNED_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "chip": ("str", True, None, "a chip id (see `fleet catalog list chips`)"),
    "count": ("int", True, ">=0", "chips owned (whole systems for chips sold by system)"),
    "age_years": ("float", False, ">=0", "years since the chips went into service"),
}
PERIOD_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "year": ("float", True, ">0", "the year the period starts, e.g. 2027 (periods in increasing order)"),
    "years": ("float", False, ">0", "how long the period lasts (default: until the next period; the last lasts 1 year)"),
    "demand_growth": ("number or table", False, None, "× each class's demand_tok_s in this period: 1.5, or {chat = 1.5, agent = 3}"),
    "power_mw": ("float", False, ">0", "site power budget in this period (MW; default constraints.power_mw)"),
    "capex_usd": ("float", False, ">0", "what chips bought in this period may cost (USD; default: no limit)"),
    "electricity_usd_per_kwh": ("float", False, ">=0", "electricity price in this period (default economics)"),
    "supply": ("table", False, None, "chips that may be bought new in this period, e.g. {rubin = 20000} (default constraints.supply)"),
}
"""[[periods]]: a multi-year roadmap (`fleet roadmap`, planner/roadmap.py)."""
HOURS = 24
"""A daily profile has one slice per hour."""
CLASS_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrafficClass) if f.default is not dataclasses.MISSING}
"""A class's optional fields default to TrafficClass's own defaults (written once, in planner/domain.py)."""
MODES = ("aggregated", "disaggregated")


def shipped_cases() -> dict[str, Path]:
    """Shipped case name → path (package data, so `fleet plan NAME` works when installed)."""
    root = resources.files("cases")
    return {Path(str(p)).stem: Path(str(p)) for p in root.iterdir() if str(p).endswith(".toml")}


def case_path(name_or_path: str | None) -> Path:
    """A path as given, or the shipped case of that name; no argument = 'default'."""
    name_or_path = name_or_path or "default"
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.is_file():
        if not p.exists() and not p.is_symlink():
            raise CaseError(f"case file not found: {p}", [Problem(str(p), "no such file",
                            "give a path to a .toml case or a shipped case name (see `fleet cases`)")])
        return p
    cases = shipped_cases()
    if name_or_path in cases:
        return cases[name_or_path]
    hint = did_you_mean(name_or_path, cases)
    raise CaseError(f"unknown case '{name_or_path}'", [Problem("CASE", f"no file and no shipped case "
                    f"named '{name_or_path}'", hint or f"shipped cases: {', '.join(sorted(cases))}")])


MAX_SET_PATH_PARTS = 8
"""The deepest case field is 4 levels (constraints.supply.CHIP, models.ID.FIELD); 8 leaves room."""
MAX_SET_CHARS = 100_000


def parse_value(text: str) -> Any:
    """A --set value parsed as TOML (numbers, strings, lists, tables); bare words stay strings."""
    from .inputs import MAX_NESTING, nesting_depth

    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return text
    except ValueError as exc:  # an integer longer than Python converts (4,300 digits)
        raise CaseError("--set value holds a number too long to read", [Problem(
            "--set", f"{str(exc).split(';')[0]}", "give the figure in a few digits, e.g. 1e30")])
    if nesting_depth(value) > MAX_NESTING:
        raise CaseError("--set value is nested too deeply", [Problem(
            "--set", f"lists or tables nested more than {MAX_NESTING} levels", "give a flat value")])
    return value


def split_path(path: str) -> list[str | int]:
    """'classes.0.isl' → ['classes', 0, 'isl']; 'models.llama-3.1-8b.layers' keeps the dotted id."""
    parts = path.split(".")
    if parts[0] in ("chips", "models") and len(parts) >= 3:
        return [parts[0], ".".join(parts[1:-1]), parts[-1]]
    if parts[0] == "constraints" and len(parts) >= 4 and parts[1] in ("supply", "fixed_cost_usd"):
        return [parts[0], parts[1], ".".join(parts[2:])]
    return [int(p) if p.isascii() and p.isdigit() else p for p in parts]


def _list_item(items: list, key: str | int, path: str, done: str) -> int:
    """The index of `key` in a list of tables: an index, or an item's `name` (classes.chat.isl)."""
    if isinstance(key, int) and 0 <= key < len(items):
        return key
    names = [it.get("name") for it in items if isinstance(it, dict)]
    if isinstance(key, str) and key in names:
        return names.index(key)
    hint = did_you_mean(key, [n for n in names if isinstance(n, str)]) if isinstance(key, str) else ""
    raise CaseError(f"--set {path}: no item {key}", [Problem(f"--set {path}",
                    f"'{done}' has {len(items)} item(s)" + (f" named {', '.join(map(str, names))}" if names else ""),
                    hint or (f"use an index from 0 to {len(items) - 1} or an item's name" if items else "add the item first"))])


def get_path(raw: dict, path: str) -> Any:
    node: Any = raw
    keys = split_path(path)
    for i, key in enumerate(keys):
        node = node[_list_item(node, key, path, ".".join(map(str, keys[:i])))] if isinstance(node, list) else node[key]
    return node


def resolve_path(raw: dict, path: str) -> str:
    """`path` with list items addressed by index ('classes.chat.isl' → 'classes.0.isl'), or as given."""
    keys, node, out = split_path(path), raw, []
    for i, key in enumerate(keys):
        if isinstance(node, list):
            try:
                key = _list_item(node, key, path, ".".join(map(str, out)))
            except CaseError:
                return path
        out.append(key)
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            out += keys[i + 1:]
            break
    return ".".join(map(str, out))


def apply_override(raw: dict, path: str, value: Any) -> None:
    """Set `path` in the raw case dict; creates tables on the way, never list items."""
    keys = split_path(path)
    node: Any = raw
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        if isinstance(node, list):
            node = node[_list_item(node, key, path, ".".join(map(str, keys[:i])))]
            continue
        if not isinstance(node, dict):
            raise CaseError(f"--set {path}: cannot descend into a value", [Problem(f"--set {path}",
                            f"'{'.'.join(map(str, keys[:i]))}' is a value, not a table")])
        if key not in node:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[_list_item(node, last, path, ".".join(map(str, keys[:-1])))] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise CaseError(f"--set {path}: cannot set inside a value", [Problem(f"--set {path}", "parent is a value")])


def parse_sets(sets: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    out = []
    for item in sets or ():
        if "=" not in item:
            raise CaseError(f"--set '{item}' has no '='", [Problem(f"--set {item}", "expected PATH=VALUE",
                            "e.g. --set classes.0.min_speed_tok_s_user=400")])
        if len(item) > MAX_SET_CHARS:
            raise CaseError("--set is too long", [Problem(f"--set {item[:40]}…", f"{len(item):,} characters",
                                                          f"keep PATH=VALUE under {MAX_SET_CHARS:,} characters")])
        path, text = item.split("=", 1)
        path = path.strip()
        if len(split_path(path)) > MAX_SET_PATH_PARTS or len(path) > 1_000:
            raise CaseError("--set path is too deep", [Problem(f"--set {path[:40]}{'…' if len(path) > 40 else ''}",
                            f"{path.count('.') + 1:,} levels; no case field is deeper than 4",
                            "e.g. --set classes.chat.isl=4000 or --set constraints.supply.b200=100")])
        out.append((path, parse_value(text.strip())))
    return out


def read_case_raw(name_or_path: str | None) -> tuple[dict, str]:
    from .inputs import loads_toml, read_text

    path = case_path(name_or_path)
    return loads_toml(read_text(path, "a case file", CaseError), str(path), CaseError), str(path)


def load_case(name_or_path: str | None = None, sets=(), catalogs=()) -> Case:
    """Read, override, validate; raises CaseError/CatalogError listing every problem."""
    raw, label = read_case_raw(name_or_path)
    overrides = parse_sets(sets)
    unusable: list[Problem] = []  # --set paths that lead nowhere: reported with the case's own problems
    first: CaseError | None = None
    applied = []
    for path, value in overrides:
        try:
            apply_override(raw, path, value)
            applied.append(path)
        except CaseError as exc:
            unusable += exc.problems
            first = first or exc
    try:
        with blame_sets(raw, applied):
            case = build_case(raw, label, catalogs)
    except CaseError as exc:
        if not unusable:
            raise
        raise CaseError(f"{len(unusable) + len(exc.problems)} problem(s)", unusable + exc.problems) from None
    if unusable:
        raise first if len(unusable) == len(first.problems) else CaseError(f"--set: {len(unusable)} problem(s)", unusable)
    return case


@contextlib.contextmanager
def blame_sets(raw: dict, set_paths: list[str], option: str = "--set"):
    """A problem in a field that a --set wrote names the --set, not the case or catalog file it
    would otherwise be reported against (the file is fine; the override is not)."""
    try:
        yield
    except (CaseError, CatalogError) as exc:
        resolved = [(p, resolve_path(raw, p)) for p in set_paths]
        for i, prob in enumerate(exc.problems):
            field_path = prob.where.rsplit(": ", 1)[-1]
            for given, canon in resolved:
                if field_path in (canon, given) or field_path.startswith(canon + ".") or canon.startswith(field_path + "."):
                    detail = "" if field_path in (given, canon) else f" ({field_path})"
                    exc.problems[i] = Problem(f"{option} {given}{detail}", prob.what, prob.fix)
                    break
        if exc.problems and all(p.where.startswith(option + " ") for p in exc.problems):
            exc.args = (f"{option}: {len(exc.problems)} problem(s)",)
        raise


INLINE_TABLES = ("chips", "models", "arch", "fabric", "software")
"""Catalog tables a case may carry inline; they overlay the catalog for that case."""


def case_catalog(raw: dict, label: str, catalogs=()) -> Catalog:
    """The catalog a case sees: shipped + --catalog overlays + the case's inline tables."""
    inline = {k: raw[k] for k in INLINE_TABLES if isinstance(raw.get(k), dict)}
    return load_catalog(list(catalogs) + ([(label, inline)] if inline else []))


def build_case(raw: dict, label: str, catalogs=()) -> Case:
    """Validate a raw case dict (already overridden) against the catalog into a Case."""
    raw = copy.deepcopy(raw)
    catalog = case_catalog(raw, label, catalogs)
    problems = validate_raw(raw, label, catalog)
    if problems:
        raise CaseError(f"{label}: {len(problems)} problem(s)", problems)
    return _to_case(raw, label, catalog)


def validate_raw(raw: dict, label: str, catalog: Catalog) -> list[Problem]:
    """Every problem in a raw case, at once: the top level here, each section in its own check."""
    P = lambda where, what, fix="": Problem(f"{label}: {where}", what, fix)  # noqa: E731
    problems: list[Problem] = []
    for key in raw:
        if key not in TOP_KEYS:
            problems.append(P(key, "unknown top-level key", did_you_mean(key, TOP_KEYS)
                              or f"known keys: {', '.join(TOP_KEYS)}"))
    if not isinstance(raw.get("name", ""), str):
        problems.append(P("name", "must be a string"))
    for key in INLINE_TABLES:
        if key in raw and not isinstance(raw[key], dict):
            problems.append(P(key, f"must be a table of [{key}.ID] entries, got {type(raw[key]).__name__}",
                              f"e.g. --set {key}.ID.FIELD=VALUE"))

    problems += _check_options(raw, P)
    problems += _check_economics(raw, label, P)
    fleet_problems, fleet_chips = _check_fleet(raw, catalog, P)
    problems += fleet_problems
    problems += _check_families(raw, catalog, P)
    problems += _check_constraints(raw, label, catalog, P)
    class_problems, names = _check_classes(raw, label, catalog, fleet_chips, P)
    problems += class_problems
    if "periods" in raw:
        problems += _check_periods(raw["periods"], names, catalog, raw, P)
    return problems


def _check_options(raw: dict, P) -> list[Problem]:
    """[options]: known keys and values."""
    problems: list[Problem] = []
    opts = raw.get("options", {})
    if not isinstance(opts, dict):
        problems.append(P("options", "must be a table", 'e.g. [options] objective = "throughput"'))
    else:
        for key, value in opts.items():
            if key not in OPTION_FIELDS:
                problems.append(P(f"options.{key}", "unknown option", did_you_mean(key, OPTION_FIELDS)
                                  or f"known options: {', '.join(OPTION_FIELDS)}"))
            elif key == "year":
                if not _number(value) or not 1990 <= value <= 2100:
                    problems.append(P("options.year", f"{value!r} is not a year between 1990 and 2100",
                                      "give the year the fleet is bought, e.g. year = 2027.5 (H2-2027)"))
            elif key == "allow_unavailable":
                if not isinstance(value, bool):
                    problems.append(P("options.allow_unavailable", f"{value!r} is not true or false",
                                      "allow_unavailable = true plans with chips not on sale that year (a what-if)"))
            elif value not in OPTION_FIELDS[key]:
                problems.append(P(f"options.{key}", f"unknown value {value!r}", f"use one of {', '.join(OPTION_FIELDS[key])}"))
    return problems


def _check_economics(raw: dict, label: str, P) -> list[Problem]:
    """[economics]: the catalog's fields, in range; 24 hourly prices."""
    problems: list[Problem] = []
    econ = raw.get("economics", {})
    if not isinstance(econ, dict):
        problems.append(P("economics", "must be a table"))
    else:
        problems += [Problem(f"{label}: {p.where}", p.what, p.fix)
                     for p in check_fields({k: v for k, v in econ.items() if k != "electricity_usd_per_kwh_by_hour"},
                                           ECONOMICS_FIELDS, "economics", partial=True, ranges=CASE_RANGES)]
        if "electricity_usd_per_kwh_by_hour" in econ:
            problems += _check_hourly(econ["electricity_usd_per_kwh_by_hour"], "economics.electricity_usd_per_kwh_by_hour",
                                      P, "24 prices in USD/kWh, hour 0 first", allow_all_zero=True)
    return problems


def _check_fleet(raw: dict, catalog: Catalog, P) -> tuple[list[Problem], list[str]]:
    """[fleet]: chips (known, once each), owned stock, modes and per-stage chips; also the chips it resolves."""
    problems: list[Problem] = []
    fleet = raw.get("fleet")
    fleet_chips: list[str] = []
    if not isinstance(fleet, dict):
        problems.append(P("fleet", "missing [fleet] table", 'add [fleet] chips = ["b200", ...]'))
    else:
        for key in fleet:
            if key not in FLEET_FIELDS:
                problems.append(P(f"fleet.{key}", "unknown key", did_you_mean(key, FLEET_FIELDS)
                                  or f"known keys: {', '.join(FLEET_FIELDS)}"))
        chips = fleet.get("chips")
        if not isinstance(chips, list) or not chips or not all(isinstance(c, str) for c in chips):
            problems.append(P("fleet.chips", "must be a non-empty list of chip ids",
                              'e.g. chips = ["rubin", "groq3-lpu"]; see `fleet catalog list chips`'))
        else:
            for i, c in enumerate(chips):
                try:
                    fleet_chips.append(catalog.resolve_chip(c))
                except CatalogError as exc:
                    problems += [P(f"fleet.chips.{i}", p.what, p.fix) for p in exc.problems]
            dupes = sorted(c for c, k in collections.Counter(fleet_chips).items() if k > 1)
            if dupes:
                problems.append(P("fleet.chips", f"listed twice: {', '.join(dupes)}", "list each chip once"))
        problems += _check_owned(fleet.get("owned", []), catalog, P)
        modes = fleet.get("modes", list(MODES))
        if not isinstance(modes, list) or not modes or any(m not in MODES for m in modes):
            problems.append(P("fleet.modes", f"must be a non-empty list drawn from {', '.join(MODES)}"))
        stages = fleet.get("stages", {})
        if not isinstance(stages, dict):
            problems.append(P("fleet.stages", "must be a table of stage = [chips]"))
        else:
            for stage, lst in stages.items():
                if stage not in STAGES:
                    problems.append(P(f"fleet.stages.{stage}", "unknown stage",
                                      did_you_mean(stage, STAGES) or f"stages: {', '.join(STAGES)}"))
                    continue
                if not isinstance(lst, list) or not all(isinstance(c, str) for c in lst):
                    problems.append(P(f"fleet.stages.{stage}", "must be a list of chip ids"))
                    continue
                for c in lst:
                    try:
                        cid = catalog.resolve_chip(c)
                    except CatalogError as exc:
                        problems += [P(f"fleet.stages.{stage}", p.what, p.fix) for p in exc.problems]
                        continue
                    if fleet_chips and cid not in fleet_chips and cid not in _owned_ids(fleet, catalog):
                        problems.append(P(f"fleet.stages.{stage}", f"'{c}' is not in fleet.chips",
                                          "add it to fleet.chips or remove it here"))
    return problems, fleet_chips


def _check_families(raw: dict, catalog: Catalog, P) -> list[Problem]:
    """[families.NAME]: each a fleet family of known chips and stages."""
    problems: list[Problem] = []
    fams = raw.get("families", {})
    if not isinstance(fams, dict):
        problems.append(P("families", "must be tables [families.NAME] with chips = [...]"))
    else:
        for fname, fam in fams.items():
            if not isinstance(fam, dict) or not isinstance(fam.get("chips"), list):
                problems.append(P(f"families.{fname}", "needs chips = [...]", "list the family's chip ids"))
                continue
            for key in fam:
                if key not in FLEET_FIELDS:
                    problems.append(P(f"families.{fname}.{key}", "unknown key", did_you_mean(key, FLEET_FIELDS)
                                      or f"known keys: {', '.join(FLEET_FIELDS)}"))
            stage_lists = fam.get("stages", {})
            if not isinstance(stage_lists, dict):
                problems.append(P(f"families.{fname}.stages", "must be a table of stage = [chips]",
                                  'e.g. stages = { decode_ffn = ["groq3-lpu"] }'))
                stage_lists = {}
            for stage, lst in stage_lists.items():
                if not isinstance(lst, list) or not all(isinstance(c, str) for c in lst):
                    problems.append(P(f"families.{fname}.stages.{stage}", "must be a list of chip ids"))
            if "modes" in fam and (not isinstance(fam["modes"], list) or any(m not in MODES for m in fam["modes"])):
                problems.append(P(f"families.{fname}.modes", f"must be a list drawn from {', '.join(MODES)}"))
            for c in fam["chips"] + [c for lst in stage_lists.values() if isinstance(lst, list) for c in lst]:
                try:
                    catalog.resolve_chip(str(c))
                except CatalogError as exc:
                    problems += [P(f"families.{fname}", p.what, p.fix) for p in exc.problems]
            for stage in stage_lists:
                if stage not in STAGES:
                    problems.append(P(f"families.{fname}.stages.{stage}", "unknown stage",
                                      did_you_mean(stage, STAGES) or f"stages: {', '.join(STAGES)}"))
    return problems


def _check_constraints(raw: dict, label: str, catalog: Catalog, P) -> list[Problem]:
    """[constraints]: budgets in range; supply and fixed costs per known chip."""
    problems: list[Problem] = []
    cons = raw.get("constraints", {})
    if not isinstance(cons, dict):
        problems.append(P("constraints", "must be a table"))
    else:
        for p in check_fields({k: v for k, v in cons.items() if k not in ("supply", "fixed_cost_usd")},
                              CONSTRAINT_FIELDS, "constraints", partial=True, ranges=CASE_RANGES):
            problems.append(Problem(f"{label}: {p.where}", p.what, p.fix))
        for table, minimum in (("supply", ">=0"), ("fixed_cost_usd", ">=0")):
            entries = cons.get(table, {})
            if not isinstance(entries, dict):
                problems.append(P(f"constraints.{table}", "must be a table of chip = number"))
                continue
            for chip, value in entries.items():
                try:
                    catalog.resolve_chip(chip)
                except CatalogError as exc:
                    problems += [P(f"constraints.{table}.{chip}", p.what, p.fix) for p in exc.problems]
                why = check_value(value, "int" if table == "supply" else "float", minimum) or check_range(
                    table, value, CASE_RANGES)
                if why:
                    problems.append(P(f"constraints.{table}.{chip}", why))
    return problems


def _check_classes(raw: dict, label: str, catalog: Catalog, fleet_chips: list[str], P) -> tuple[list[Problem], list[str]]:
    """[[classes]]: each field, model, precision, draft and length shape; distinct names (also returned)."""
    problems: list[Problem] = []
    classes = raw.get("classes")
    if not isinstance(classes, list) or not classes:
        problems.append(P("classes", "needs at least one [[classes]] entry",
                          "add [[classes]] with name, model, precision, isl, osl, demand_tok_s, "
                          "min_speed_tok_s_user, ttft_s"))
        classes = []
    names = []
    for i, cls in enumerate(classes):
        where = f"classes.{i}"
        if not isinstance(cls, dict):
            problems.append(P(where, "must be a table"))
            continue
        problems += [Problem(f"{label}: {p.where}", p.what, p.fix)
                     for p in check_fields({k: v for k, v in cls.items() if k not in ("demand_profile", "lengths")},
                                           CLASS_FIELDS, where, partial=False, ranges=CASE_RANGES)]
        if isinstance(cls.get("demand_profile"), str):  # a trace's arrivals → 24 hourly factors (planner/workload.py)
            try:
                _trace_profile(cls, label, f"{where}.demand_profile")
            except CaseError as exc:
                problems += [P(pr.where, pr.what, pr.fix) for pr in exc.problems]
        elif "demand_profile" in cls:
            problems += _check_hourly(cls["demand_profile"], f"{where}.demand_profile", P,
                                      "24 hourly factors on demand_tok_s, hour 0 first, e.g. [0.4, 0.35, …, 1.0, …], "
                                      "or a trace file with arrival_s")
        problems += _shape_problems(cls, where, label, P)
        names.append(cls.get("name"))
        if isinstance(cls.get("model"), str):
            try:
                catalog.resolve_model(cls["model"])
            except CatalogError as exc:
                problems += [P(f"{where}.model", p.what, p.fix) for p in exc.problems]
        prec = cls.get("precision")
        if isinstance(prec, str):
            if canonical_precision(prec) is None:
                problems.append(P(f"{where}.precision", f"unknown precision '{prec}'",
                                  did_you_mean(prec, PRECISION_ALIASES)
                                  or f"use one of {', '.join(PRECISIONS)} (or an alias: {', '.join(PRECISION_ALIASES)})"))
            elif fleet_chips and not any(catalog.chips[c].supports(canonical_precision(prec)) for c in fleet_chips):
                problems.append(P(f"{where}.precision", f"no chip in fleet.chips runs {prec}",
                                  "pick a precision the fleet supports or add a chip that runs it"))
        if isinstance(cls.get("draft_model"), str):
            try:
                catalog.resolve_model(cls["draft_model"])
            except CatalogError as exc:
                problems += [P(f"{where}.draft_model", p.what, p.fix) for p in exc.problems]
            acc, k = cls.get("accepted_tokens_per_step", CLASS_DEFAULTS["accepted_tokens_per_step"]), cls.get(
                "draft_tokens", CLASS_DEFAULTS["draft_tokens"])
            if isinstance(acc, (int, float)) and isinstance(k, int) and not 1 <= acc <= k + 1:
                problems.append(P(f"{where}.accepted_tokens_per_step", f"must be between 1 and draft_tokens + 1 "
                                  f"({k + 1}), got {acc}", "it counts the tokens one verify round emits"))
        k_mtp = cls.get("mtp_tokens", 0)
        if isinstance(k_mtp, int) and not isinstance(k_mtp, bool) and k_mtp > 0:
            acc = cls.get("accepted_tokens_per_step", CLASS_DEFAULTS["accepted_tokens_per_step"])
            if cls.get("draft_model"):
                problems.append(P(f"{where}.mtp_tokens", "set together with draft_model",
                                  "use either the model's own MTP head (mtp_tokens) or a draft model, not both"))
            elif isinstance(acc, (int, float)) and not isinstance(acc, bool) and not 1 <= acc <= k_mtp + 1:
                problems.append(P(f"{where}.accepted_tokens_per_step", f"must be between 1 and mtp_tokens + 1 "
                                  f"({k_mtp + 1}), got {acc}", "e.g. 1.8 for one MTP token accepted 80 % of the time"))
        ci, isl = cls.get("cached_isl", 0), cls.get("isl")
        if _number(ci) and _number(isl) and ci >= isl > 0:
            problems.append(P(f"{where}.cached_isl", f"must be below isl ({isl}), got {ci}",
                              "cached_isl counts the prompt tokens already cached"))
        mu = cls.get("max_utilization")
        if isinstance(mu, (int, float)) and not isinstance(mu, bool) and math.isfinite(mu) and not 0 < mu < 1:
            problems.append(P(f"{where}.max_utilization", f"must be in (0, 1), got {mu}"))
    seen = collections.Counter(n for n in names if isinstance(n, str))
    dupes = sorted(n for n, k in seen.items() if k > 1)
    if dupes:
        problems.append(P("classes", f"class names repeat: {', '.join(dupes)}", "give each class a distinct name"))
    return problems, [n for n in names if isinstance(n, str)]


def _check_hourly(values, where: str, P, fix: str, allow_all_zero: bool = False) -> list[Problem]:
    """A list of 24 finite numbers ≥ 0 within range (a demand profile also needs one above 0)."""
    if not isinstance(values, list) or len(values) != HOURS or not all(_number(v) for v in values):
        got = f"{len(values)} item(s)" if isinstance(values, list) else type(values).__name__
        return [P(where, f"must be a list of {HOURS} numbers, got {got}", fix)]
    out = []
    for h, v in enumerate(values):
        why = ("must be ≥ 0, got " + repr(v)) if v < 0 else check_range(where.rsplit(".", 1)[-1], v, CASE_RANGES)
        if why:
            out.append(P(f"{where}.{h}", why, fix))
    if not out and not allow_all_zero and max(values) <= 0:
        out.append(P(where, "every hour is 0", "give at least one hour a factor above 0"))
    return out


def _check_periods(periods, class_names: list[str], catalog: Catalog, raw: dict, P) -> list[Problem]:
    """[[periods]] year, years, demand_growth, power_mw, capex_usd, electricity_usd_per_kwh, supply:
    years increasing, growth per known class, and the parts of a case a roadmap does not model yet."""
    if not isinstance(periods, list) or not periods or not all(isinstance(t, dict) for t in periods):
        return [P("periods", "must be a non-empty list of [[periods]] tables", "e.g. [[periods]] year = 2027, demand_growth = 1.5")]
    out, years = [], []
    hourly = isinstance(raw.get("economics"), dict) and "electricity_usd_per_kwh_by_hour" in raw["economics"]
    for i, t in enumerate(periods):
        where = f"periods.{i}"
        errs = check_fields({k: v for k, v in t.items() if k not in ("demand_growth", "supply")}, PERIOD_FIELDS, where,
                            partial=False, ranges=CASE_RANGES)
        if hourly and "electricity_usd_per_kwh" in t:
            out.append(P(f"{where}.electricity_usd_per_kwh", "a period's flat price cannot replace "
                         "economics.electricity_usd_per_kwh_by_hour (the hourly prices would win)",
                         "drop one of them: per-period hourly prices are not supported yet"))
        out += [P(e.where, e.what, e.fix) for e in errs]
        if _number(t.get("year")):
            years.append((i, t["year"]))
        growth = t.get("demand_growth", 1.0)
        entries = growth if isinstance(growth, dict) else {"*": growth}
        if not isinstance(growth, dict) and not _number(growth):
            out.append(P(f"{where}.demand_growth", f"must be a number or a table of class = number, got {growth!r}",
                         "e.g. demand_growth = 1.5 or demand_growth = {chat = 1.5}"))
            entries = {}
        for name, v in entries.items():
            key = f"{where}.demand_growth" + ("" if name == "*" else f".{name}")
            if name != "*" and name not in class_names:
                out.append(P(key, f"no class named {name!r}", did_you_mean(name, class_names)
                             or f"classes: {', '.join(class_names)}"))
            elif not _number(v) or v < 0:
                out.append(P(key, f"must be a number ≥ 0, got {v!r}", "a factor on the class's demand_tok_s"))
            elif v > 1_000:
                out.append(P(key, f"{v:,g} is outside the physical range [0, 1,000] × demand_tok_s", "a factor, not a rate"))
        supply = t.get("supply", {})
        if not isinstance(supply, dict):
            out.append(P(f"{where}.supply", "must be a table of chip = number", "e.g. supply = {rubin = 20000}"))
            supply = {}
        for chip, v in supply.items():
            try:
                catalog.resolve_chip(chip)
            except CatalogError as exc:
                out += [P(f"{where}.supply.{chip}", p.what, p.fix) for p in exc.problems]
            why = check_value(v, "int", ">=0") or check_range("supply", v, CASE_RANGES)
            if why:
                out.append(P(f"{where}.supply.{chip}", why, "a whole number of chips ≥ 0 this period may buy"))
    for (i, a), (j, b) in zip(years, years[1:]):
        if b <= a:
            out.append(P(f"periods.{j}.year", f"{b:g} does not follow period {i}'s {a:g}", "list periods in increasing year"))
        elif j == i + 1 and _number(periods[i].get("years")) and abs(periods[i]["years"] - (b - a)) > 1e-9:
            out.append(P(f"periods.{i}.years", f"{periods[i]['years']:g} {'overlaps' if periods[i]['years'] > b - a else 'leaves a gap before'} "
                         f"period {j} ({b:g})", "a period lasts until the next one starts: give `years` to the last period only"))
    cons = raw.get("constraints", {}) if isinstance(raw.get("constraints"), dict) else {}
    if cons.get("fixed_cost_usd"):
        out.append(P("constraints.fixed_cost_usd", "fixed platform costs are not modelled in a roadmap yet",
                     "remove fixed_cost_usd, or plan one year with `fleet plan`"))
    if "capex_usd" in cons:
        out.append(P("constraints.capex_usd", "a roadmap budgets capex per period", "give each [[periods]] its capex_usd"))
    return out


def _owned_ids(fleet: dict, catalog: Catalog) -> set[str]:
    out = set()
    for o in fleet.get("owned", []) if isinstance(fleet.get("owned", []), list) else []:
        with contextlib.suppress(CatalogError, TypeError, AttributeError):
            out.add(catalog.resolve_chip(o["chip"]))
    return out


def _check_owned(owned, catalog: Catalog, P) -> list[Problem]:
    """[[fleet.owned]] chip, count, age_years: known chips, whole systems where sold by system."""
    if not isinstance(owned, list) or not all(isinstance(o, dict) for o in owned):
        return [P("fleet.owned", "must be a list of [[fleet.owned]] tables", 'e.g. [[fleet.owned]] chip = "h100", count = 1024')]
    out = []
    for i, o in enumerate(owned):
        where = f"fleet.owned.{i}"
        errs = check_fields(o, OWNED_FIELDS, where, partial=False, ranges=CASE_RANGES)
        out += [P(e.where, e.what, e.fix) for e in errs]
        if not isinstance(o.get("chip"), str):
            continue
        try:
            cid = catalog.resolve_chip(o["chip"])
        except CatalogError as exc:
            out += [P(f"{where}.chip", p.what, p.fix) for p in exc.problems]
            continue
        chip, count = catalog.chips[cid], o.get("count")
        if chip.chips_per_system > 1 and _number(count) and count % chip.chips_per_system:  # bought in whole systems
            k = chip.chips_per_system
            out.append(P(f"{where}.count", f"{cid} is sold as whole {chip.system_name} systems of {k} chips; "
                         f"{count:g} is not a multiple of {k}",
                         f"use {int(count // k) * k} or {int(count // k + 1) * k} ({int(count // k)} or {int(count // k) + 1} systems)"))
    return out


def referenced_files(raw: dict, label: str) -> list[Path]:
    """Files a case reads besides itself (its classes' traces): their contents decide the plan too,
    so input hashes (run.json, a study's resume check) include them."""
    out = []
    for c in raw.get("classes", []):
        if isinstance(c, dict):
            out += [_trace_path({"trace": c[k]}, label) for k in ("trace", "demand_profile") if isinstance(c.get(k), str)]
    return out


def _trace_profile(cls: dict, label: str, where: str) -> tuple[float, ...]:
    """`demand_profile = "arrivals.csv"`: the hourly factors of a trace's arrivals (mean 1)."""
    from . import workload

    return workload.hourly_profile(workload.load_trace(_trace_path({"trace": cls["demand_profile"]}, label), where), where)


def _trace_path(cls: dict, label: str) -> Path:
    """A class's trace, relative to the case file (absolute paths as given)."""
    p = Path(str(cls["trace"]))
    return p if p.is_absolute() else Path(label).parent / p


def _shape_problems(cls: dict, where: str, label: str, P) -> list[Problem]:
    """One pair or one distribution; a histogram's shares; a trace's columns and values."""
    from . import workload

    out = []
    shaped = [k for k in ("lengths", "trace") if k in cls]
    if len(shaped) == 2:
        return [P(f"{where}.trace", "given together with lengths", "give either a histogram (lengths) or a trace")]
    if not shaped:
        out += [P(f"{where}.{k}", "missing required field", f"add {CLASS_FIELDS[k][3]}")
                for k in ("isl", "osl") if k not in cls]
        out += [P(f"{where}.{k}", "needs a length distribution", "add lengths or trace, or remove this field")
                for k in SHAPE_FIELDS if k in cls]
        return out
    out += [P(f"{where}.{k}", f"given together with {shaped[0]}", f"the {shaped[0]} gives the lengths: remove {k}")
            for k in ("isl", "osl", "cached_isl") if k in cls]
    if "lengths" in cls:
        out += [Problem(f"{label}: {p.where}", p.what, p.fix) for p in workload.check_lengths(cls["lengths"], f"{where}.lengths")]
    elif isinstance(cls.get("trace"), str) and cls["trace"].strip():
        try:
            workload.load_trace(_trace_path(cls, label), f"{where}.trace")
        except CaseError as exc:
            out += [Problem(f"{label}: {p.where}", p.what, p.fix) for p in exc.problems]
    return out


def _expand(c: dict, label: str, make) -> tuple[list[TrafficClass], "Shape | None"]:
    """A raw class → itself, or its length buckets (sub-classes sharing its demand by output tokens)."""
    from . import workload
    from .domain import Shape

    if "lengths" not in c and "trace" not in c:
        return [make(c, c["name"], int(c["isl"]), int(c["osl"]), int(c.get("cached_isl", 0)), float(c["demand_tok_s"]),
                     {})], None
    points = workload.lengths_frame(c["lengths"]) if "lengths" in c else workload.load_trace(
        _trace_path(c, label), "trace")
    b = workload.bucketize(points, int(c.get("max_buckets", workload.DEFAULT_MAX_BUCKETS)),
                           float(c.get("bucket_tolerance", workload.DEFAULT_TOLERANCE)))
    names = b.labels(c["name"])
    ttft_p, speed_p = float(c.get("ttft_percentile", 100)), float(c.get("speed_percentile", 100))
    shares = [k.request_share for k in b.buckets]
    need_ttft = workload.required_buckets([k.isl for k in b.buckets], shares, ttft_p)
    need_speed = workload.required_buckets([k.isl + k.osl / 2 for k in b.buckets], shares, speed_p)
    out = []
    for name, k, t_ok, s_ok in zip(names, b.buckets, need_ttft, need_speed):
        isl = max(1, round(k.isl))
        extra = {"parent": c["name"], "request_share": k.request_share, "token_share": k.token_share,
                 "ttft_required": t_ok, "speed_required": s_ok}
        if not t_ok:
            extra["ttft_s"] = float(c.get("tail_ttft_s", TAIL_TTFT_S))
        if not s_ok:
            extra["min_speed_tok_s_user"] = float(c.get("tail_min_speed_tok_s_user", TAIL_MIN_SPEED))
        out.append(make(c, name, isl, max(1, round(k.osl)), min(round(k.cached_isl), isl - 1),
                        float(c["demand_tok_s"]) * k.token_share, extra))
    shape = Shape(name=c["name"], buckets=tuple(names), demand_tok_s=float(c["demand_tok_s"]),
                  min_speed_tok_s_user=float(c["min_speed_tok_s_user"]), ttft_s=float(c["ttft_s"]),
                  ttft_percentile=ttft_p, speed_percentile=speed_p, max_error=b.max_error,
                  mean_pair_error=b.mean_pair.error, merge_buckets=bool(c.get("merge_buckets", True)),
                  merge_span=int(c.get("merge_span", MERGE_SPAN)),
                  source=str(c.get("trace", "lengths")), rows=b.rows)
    return out, shape


def _to_case(raw: dict, label: str, catalog: Catalog) -> Case:
    raw_econ = raw.get("economics", {})
    econ = {**catalog.economics.__dict__,
            **{k: float(v) for k, v in raw_econ.items() if k != "electricity_usd_per_kwh_by_hour"}}
    if "electricity_usd_per_kwh_by_hour" in raw_econ:
        econ["electricity_usd_per_kwh_by_hour"] = tuple(float(v) for v in raw_econ["electricity_usd_per_kwh_by_hour"])
    cons = raw.get("constraints", {})
    fleet = raw["fleet"]
    chips = tuple(catalog.resolve_chip(c) for c in fleet["chips"])
    owned = tuple(OwnedChips(chip=catalog.resolve_chip(o["chip"]), count=int(o["count"]),
                             age_years=float(o.get("age_years", 0.0))) for o in fleet.get("owned", []))
    extra = tuple(dict.fromkeys(o.chip for o in owned if o.chip not in chips))  # owned, used, not bought new
    buy = chips if extra else None
    chips = chips + extra
    stages = {s: tuple(catalog.resolve_chip(c) for c in lst) for s, lst in fleet.get("stages", {}).items()}

    def make(c, name, isl, osl, cached, demand, extra):
        fields = dict(
            name=name, model=catalog.resolve_model(c["model"]), precision=canonical_precision(c["precision"]),
            isl=isl, osl=osl, demand_tok_s=demand,
            min_speed_tok_s_user=float(c["min_speed_tok_s_user"]), ttft_s=float(c["ttft_s"]),
            kv_headroom=float(c.get("kv_headroom", CLASS_DEFAULTS["kv_headroom"])),
            max_utilization=float(c.get("max_utilization", CLASS_DEFAULTS["max_utilization"])),
            cached_isl=cached,
            draft_model=catalog.resolve_model(c["draft_model"]) if c.get("draft_model") else None,
            draft_tokens=int(c.get("draft_tokens", CLASS_DEFAULTS["draft_tokens"])),
            accepted_tokens_per_step=float(c.get("accepted_tokens_per_step", CLASS_DEFAULTS["accepted_tokens_per_step"])),
            mtp_tokens=int(c.get("mtp_tokens", CLASS_DEFAULTS["mtp_tokens"])),
            demand_profile=tuple(float(v) for v in c.get("demand_profile", ())))
        return TrafficClass(**{**fields, **extra})

    expanded, shapes = [], {}
    for c in raw["classes"]:
        if isinstance(c.get("demand_profile"), str):
            c = {**c, "demand_profile": list(_trace_profile(c, label, "demand_profile"))}
        tcs, shape = _expand(c, label, make)
        expanded += tcs
        if shape is not None:
            shapes[shape.name] = shape
    names = collections.Counter(tc.name for tc in expanded)
    clash = sorted(n for n, k in names.items() if k > 1)
    if clash:  # a plain class named like a generated length bucket
        raise CaseError(f"{label}: class name {clash[0]!r} is also a length bucket's", [Problem(
            f"{label}: classes", f"{clash[0]!r} names a class and a bucket of a class given as lengths or a trace",
            "rename the class (bucket names are PARENT[isl≤…,osl≤…])")])
    classes = tuple(expanded)
    periods = _periods(raw.get("periods", []), catalog)
    used_models = {c.model for c in classes} | {c.draft_model for c in classes if c.draft_model}
    return Case(
        name=str(raw.get("name", Path(label).stem)),
        description=str(raw.get("description", "")).strip(),
        economics=Economics(**econ),
        constraints=Constraints(
            power_mw=_opt(cons.get("power_mw")), capex_usd=_opt(cons.get("capex_usd")),
            max_chip_types_per_stage=None if cons.get("max_chip_types_per_stage") is None
            else int(cons["max_chip_types_per_stage"]),
            supply={catalog.resolve_chip(k): int(v) for k, v in cons.get("supply", {}).items()},
            fixed_cost_usd={catalog.resolve_chip(k): float(v) for k, v in cons.get("fixed_cost_usd", {}).items()},
            spare_fraction=float(cons.get("spare_fraction", 0.0)), availability=_opt(cons.get("availability"))),
        fleet=Fleet(chips=chips, stages=stages, modes=tuple(fleet.get("modes", MODES)), owned=owned, buy=buy),
        classes=classes,
        chips={c: catalog.chips[c] for c in chips},
        models={m: catalog.models[m] for m in used_models},
        source=label,
        catalog_versions=dict(catalog.versions),
        options=dict(raw.get("options", {})),
        shapes=shapes,
        periods=periods,
    )


def _periods(raw_periods: list, catalog: Catalog) -> tuple[Period, ...]:
    """[[periods]] → Periods; a period lasts until the next one (the last: `years`, default 1)."""
    out = []
    for i, t in enumerate(raw_periods):
        nxt = raw_periods[i + 1]["year"] if i + 1 < len(raw_periods) else None
        growth = t.get("demand_growth", 1.0)
        out.append(Period(
            year=float(t["year"]), years=float(t.get("years", (nxt - t["year"]) if nxt is not None else 1.0)),
            demand_growth={k: float(v) for k, v in growth.items()} if isinstance(growth, dict) else {"*": float(growth)},
            power_mw=_opt(t.get("power_mw")), capex_usd=_opt(t.get("capex_usd")),
            electricity_usd_per_kwh=_opt(t.get("electricity_usd_per_kwh")),
            supply={catalog.resolve_chip(k): int(v) for k, v in t["supply"].items()} if "supply" in t else None))
    return tuple(out)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _opt(value) -> float | None:
    return None if value is None else float(value)


def check_solve_args(time_limit_s: Any, mip_gap: Any, grid: Any = None, write_model: Any = None,
                     objective: Any = None) -> None:
    """The Python API's solver arguments, refused as the CLI refuses them (FiniteFloatRange, Choice):
    a nan gap or time limit reaches HiGHS as 'no limit', a gap of 5 accepts any plan."""
    from .candidates import GRIDS, GridOptions
    from .defaults import OBJECTIVES

    problems = []
    for name, value, lo, hi in (("time_limit_s", time_limit_s, 0.1, 1e6), ("mip_gap", mip_gap, 0.0, 1.0)):
        if value is None and name == "mip_gap":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not lo <= value <= hi:
            problems.append(Problem(name, f"must be a finite number in [{lo:g}, {hi:g}], got {value!r:.40}",
                                    "e.g. time_limit_s=60, mip_gap=0.001"))
    if grid is not None and not isinstance(grid, GridOptions) and grid not in GRIDS:
        problems.append(Problem("grid", f"unknown grid {grid!r:.40}", f"use one of {', '.join(GRIDS)} or a GridOptions"))
    if objective is not None and objective not in OBJECTIVES:
        problems.append(Problem("objective", f"unknown objective {objective!r:.40}", f"use one of {', '.join(OBJECTIVES)}"))
    if write_model is not None:
        if not isinstance(write_model, str) or not write_model.endswith((".lp", ".mps")):
            problems.append(Problem("write_model", f"must be a path ending in .lp or .mps, got {write_model!r:.60}",
                                    "e.g. write_model='out/model.lp'"))
        elif not Path(write_model).resolve().parent.is_dir():
            problems.append(Problem("write_model", f"{Path(write_model).parent} is not a directory",
                                    "give a path in an existing, writable directory"))
    if problems:
        raise CaseError(f"{len(problems)} bad solver argument(s)", problems)
