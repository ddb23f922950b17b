"""A study's points and what one point becomes: its raw case, its candidate table, its plan, and
the one tidy row the plan is flattened into.

Candidate tables are cached (CandidateCache) by what they depend on (classes, fleet, the chips'
and models' performance figures): points that only move prices, budgets or economics skip
candidate generation.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from formulations.families import is_budget

from ..cases import apply_override, build_case
from ..errors import PlannerError
from ..defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S
from .families import apply_family


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
    time_limit_s: float = DEFAULT_TIME_LIMIT_S
    mip_gap: float = DEFAULT_MIP_GAP
    families: dict[str, dict] = field(default_factory=dict)
    grid: str = "fine"
    warm_start: bool = False  # MIP start from the last point on the same table: ~1.8× faster sweeps,
    # but alternative optima (within the MIP gap) can then differ with the order points ran in


@dataclass
class CandidateCache:
    """Candidate tables keyed by what they depend on (classes, fleet, the chips' and models'
    performance figures, grid, pruning), and the last outcome solved on each table (a MIP start for
    the next point on it). Emptied whole past `limit` tables, so a long study does not hoard memory."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    last: dict[str, Any] = field(default_factory=dict)
    limit: int = 16

    def candidates(self, case, grid: str, prune: bool = True) -> tuple[str, pd.DataFrame]:
        """(key, candidate table) of a case, built on first use."""
        from ..candidates import GRIDS, build_candidates

        key = _candidate_key(case) + grid + ("" if prune else ":unpruned")
        if key not in self.tables:
            if len(self.tables) > self.limit:
                self.clear()
            self.tables[key] = build_candidates(case, replace(GRIDS[grid], prune=prune))
        return key, self.tables[key]

    def clear(self) -> None:
        self.tables.clear()
        self.last.clear()


CACHE = CandidateCache()
"""This process's cache: what a study uses unless it is handed one. Pool and Dask workers are other
processes, each with its own."""


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


def cached_candidates(case, grid: str, prune: bool = True, cache: CandidateCache | None = None
                      ) -> tuple[str, pd.DataFrame]:
    """(cache key, candidate table) of a case, built once per cache (this process's by default) per
    performance inputs: points that only move prices, budgets or economics reuse it; a speed chain
    reuses one unpruned table."""
    return (CACHE if cache is None else cache).candidates(case, grid, prune)


def evaluate(spec: StudySpec, point: Point, cache: CandidateCache | None = None) -> dict:
    """Plan one point; always returns a row (infeasible and invalid points say why). `cache`: the
    candidate tables and MIP starts to reuse, this process's by default."""
    from ..candidates import GRIDS
    from ..planning import plan_case
    from ..solve import SolveOptions

    t0 = time.perf_counter()
    row = point_row(point)
    try:
        case = build_case(point_raw(spec, point), spec.label, spec.catalogs)
        cache = CACHE if cache is None else cache
        key, units = cache.candidates(case, spec.grid)
        p = plan_case(case, spec.objective, SolveOptions(time_limit_s=spec.time_limit_s, mip_gap=spec.mip_gap),
                      grid=GRIDS[spec.grid], units=units, warm=cache.last.get(key) if spec.warm_start else None)
        cache.last[key] = p.outcome
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
    limits = p.constraints[p.constraints["limits_plan"].astype(bool)] if len(p.constraints) else p.constraints
    row["binding"] = ";".join(limits["name"]) if len(limits) else ""  # what limits the plan (results.constraint_frame)
    for r in p.constraints.itertuples():  # budgets always; targets when binding
        if (is_budget(r.name) or r.binding) and r.shadow_price is not None and not (
                isinstance(r.shadow_price, float) and math.isnan(r.shadow_price)):
            row[f"shadow.{r.name}"] = r.shadow_price  # 0 where the plan leaves slack
            if is_budget(r.name) and r.lp_shadow_price is not None:
                row[f"lp_shadow.{r.name}"] = r.lp_shadow_price  # the LP's marginal value, slack or not
    return row
