"""Study values and paths: '1,2,3' / 'start:stop:n' / '±30%:n' parsed, and every varied path
checked against the case, its catalog and the case schema before any point is solved."""
from __future__ import annotations

import copy
import math
import re
from typing import Any, Iterable

import numpy as np

from ..cases import apply_override, build_case, get_path, parse_value
from ..errors import CaseError, PlannerError, Problem
from .points import StudySpec


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
        from ..catalog import load_catalog

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
    from ..cases import case_catalog

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
    from ..cases import CLASS_FIELDS, CONSTRAINT_FIELDS, FLEET_FIELDS, TOP_KEYS, split_path
    from ..catalog import CHIP_FIELDS, ECONOMICS_FIELDS, MODEL_FIELDS

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
    from ..cases import resolve_path

    seen: dict[str, str] = {}
    for path, _ in out:  # classes.chat.isl and classes.0.isl are one field: two --vary of it would mislabel rows
        canon = resolve_path(spec.raw, path)
        if canon in seen:
            raise CaseError(f"--vary {path}: the same field as --vary {seen[canon]}", [Problem(
                f"--vary {path}", f"is {canon}, already varied as {seen[canon]}", "give each field one --vary")])
        seen[canon] = path
    return out
