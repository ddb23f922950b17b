"""Physical invariants the performance model must keep across the whole catalog (DESIGN.md §3).

A chip whose spec dominates another's (memory, bandwidth, FLOPs, scale-up and scale-out fabric)
and that shares or succeeds its architecture group is never predicted slower per chip at any speed
target; per-chip throughput never rises as the speed target rises. `fleet calibrate` refuses a fit
that breaks one, and the test suite checks the shipped catalogs.
"""
from __future__ import annotations

from dataclasses import dataclass

from .catalog import Catalog
from .domain import Chip

SUCCESSION = (("gb300", "gb200"), ("b300", "b200"), ("h200-sxm", "h100-sxm"), ("rubin", "gb300"),
              ("mi355x", "mi300x"), ("mi455x", "mi355x"))
"""(newer, older) pairs the invariant is asserted for; each must dominate in spec."""
SPEEDS = (20.0, 50.0, 100.0, 200.0, 400.0)
TOLERANCE = 5e-3
"""Relative shortfall below which two predictions count as equal (the batch grid is discrete)."""
LENGTHS = ((1000, 1000), (8000, 1000))


@dataclass(frozen=True)
class Violation:
    newer: str
    older: str
    model: str
    precision: str
    isl: int
    osl: int
    speed: float
    newer_tok_s_chip: float
    older_tok_s_chip: float

    def __str__(self) -> str:
        return (f"{self.newer} predicted below {self.older} for {self.model} {self.precision} "
                f"{self.isl}/{self.osl} at {self.speed:g} tok/s/user: {self.newer_tok_s_chip:,.0f} vs "
                f"{self.older_tok_s_chip:,.0f} tok/s/chip")


SPEC_FIELDS = ("mem_gb", "mem_bw_tbs", "scaleup_domain_chips", "scaleup_bw_gbs", "scaleout_bw_gbs")


def dominates(a: Chip, b: Chip, precision: str) -> bool:
    """a's spec is at least b's in every figure that sets speed, at `precision`."""
    return all(getattr(a, f) >= getattr(b, f) for f in SPEC_FIELDS) and a.tflops(precision) >= b.tflops(precision) > 0


def related(a: Chip, b: Chip, catalog: Catalog) -> bool:
    """a shares b's architecture group or inherits from it."""
    g, seen = a.arch, set()
    while g and g not in seen:
        if g == b.arch:
            return True
        seen.add(g)
        g = catalog.groups.get("arch", {}).get(g, {}).get("inherits")
    return False


def best_tok_s_per_chip(catalog: Catalog, chip: Chip, model: str, precision: str, isl: int, osl: int,
                        speed: float) -> float:
    """Best predicted output tok/s per chip at ≥ `speed` tok/s/user (any runnable layout, ≤ one NVL72)."""
    from .calibrate import CalPoint, predict

    p = CalPoint("invariant", "frontier", model, chip.id, precision, isl, osl, None, speed, 1.0)
    value = predict(p, chip, catalog)
    return value if value >= 1.0 or value == 0 else 0.0  # below 1: the speed is out of reach


def violations(catalog: Catalog, pairs=SUCCESSION, models=None, speeds=SPEEDS, lengths=LENGTHS) -> list[Violation]:
    """Every (pair, model, precision, lengths, speed) where the newer chip is predicted lower."""
    out = []
    for newer_id, older_id in pairs:
        if newer_id not in catalog.chips or older_id not in catalog.chips:
            continue
        newer, older = catalog.chips[newer_id], catalog.chips[older_id]
        if not related(newer, older, catalog):
            continue
        for precision in ("bf16", "fp8", "fp4"):
            if not dominates(newer, older, precision):
                continue
            for model in models or catalog.models:
                for isl, osl in lengths:
                    for v in speeds:
                        a = best_tok_s_per_chip(catalog, newer, model, precision, isl, osl, v)
                        b = best_tok_s_per_chip(catalog, older, model, precision, isl, osl, v)
                        if a < b * (1 - TOLERANCE):
                            out.append(Violation(newer_id, older_id, model, precision, isl, osl, v, a, b))
    return out


__all__ = ["SUCCESSION", "Violation", "dominates", "related", "violations", "best_tok_s_per_chip"]
