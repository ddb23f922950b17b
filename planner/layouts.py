"""Parallel layouts a group of chips can run a model with (DESIGN.md §3): tp × pp, optionally with
attention data-parallel for MoE models.

Only widths real deployments can run: tensor-parallel width tp is a power of two that divides the
query heads, divides or is a multiple of the KV heads, and divides the routed experts (expert
parallel runs over the same tp chips); pipeline depth pp is at most the layer count. HBM chips
pipeline in powers of two and only across full scale-up domains (how serving stacks split layers
across nodes); on-chip-memory chips
(SRAM/MRAM) spread a model over hundreds of chips, so any depth up to the layer count is tried.
A layout wider than one scale-up domain pays the scale-out fabric (see performance.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .domain import Model

MAX_TP = 256


@dataclass(frozen=True)
class Layouts:
    """Parallel arrays, one entry per layout: chips n = tp·pp, and whether attention is data-parallel."""

    n: np.ndarray
    tp: np.ndarray
    pp: np.ndarray
    attn_dp: np.ndarray

    def __len__(self) -> int:
        return len(self.n)

    def select(self, mask) -> "Layouts":
        return Layouts(self.n[mask], self.tp[mask], self.pp[mask], self.attn_dp[mask])


def tp_widths(m: Model, max_tp: int = MAX_TP, on_chip: bool = False) -> list[int]:
    """Tensor/expert-parallel widths that divide the model's heads and experts. On-chip-memory
    chips split each layer's matrices at any power-of-two granularity (their compilers place
    weight tiles, not heads), so for them only the experts must divide."""
    out = []
    t = 1
    while t <= max_tp:
        heads_ok = on_chip or (m.q_heads % t == 0 and (m.kv_heads % t == 0 or t % m.kv_heads == 0))
        experts_ok = m.experts == 0 or m.experts % t == 0
        if heads_ok and experts_ok:
            out.append(t)
        t *= 2
    return out


def layouts(m: Model, n_min: int, domain: int, on_chip: bool, n_factors=(1, 1.5, 2, 3, 4, 6, 8, 12, 16),
            max_chips: int = 20000, n_max: int | None = None) -> Layouts:
    """Every runnable (n, tp, pp, attn_dp) whose chips hold the weights (n ≥ n_min) and that is not
    wider than needed: n ≤ n_min × the largest factor, or 64 chips whatever the memory (so a chip
    with more memory never gets fewer layouts to choose from than one with less)."""
    top = min(max(n_min * max(n_factors), 64) if n_max is None else n_max, max_chips)
    rows = set()
    widths = tp_widths(m, on_chip=on_chip)
    for tp in widths:
        if tp > max(domain, 1) * 8:  # wider than 8 domains: collectives would cross the scale-out fabric 8×
            continue
        if on_chip:
            pps = {math.ceil(n_min * f / tp) for f in n_factors} | {2 ** k for k in range(0, 8)}
        elif tp >= min(domain, widths[-1]):  # HBM: pipeline across domains only once one is full
            pps = {2 ** k for k in range(0, 6)}
        else:
            pps = {1}
        for pp in pps:
            n = tp * pp
            if 1 <= pp <= m.layers and n_min <= n <= top:
                rows.add((n, tp, pp, False))
                if m.experts and tp > 1:
                    rows.add((n, tp, pp, True))
    if not rows:  # the model needs more chips than any layout here spans: widest runnable one
        tp = widths[-1]
        pp = min(m.layers, math.ceil(n_min / tp))
        if tp * pp >= n_min:
            rows.add((tp * pp, tp, pp, False))
    rows = sorted(rows)
    arr = np.array(rows, dtype=float).reshape(-1, 4)
    return Layouts(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3].astype(bool))


def exact_layouts(m: Model, chips: int, domain: int, on_chip: bool) -> Layouts:
    """Every runnable layout of exactly `chips` chips. SRAM chips pipeline at any depth, so every
    tp × pp = chips with pp ≤ layers runs; HBM chips follow the rules of `layouts`."""
    if on_chip:
        rows = [(chips, t, chips // t, dp) for t in tp_widths(m, on_chip=True)
                if chips % t == 0 and chips // t <= m.layers
                for dp in ((False, True) if m.experts and t > 1 else (False,))]
        arr = np.array(rows, dtype=float).reshape(-1, 4)
        return Layouts(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3].astype(bool))
    lay = layouts(m, 1, domain, on_chip, n_max=max(chips, 1))
    return lay.select(lay.n == chips)


def runnable_counts(m: Model, domain: int, on_chip: bool, max_chips: int = 20000) -> list[int]:
    """Every chip count some runnable layout uses."""
    if on_chip:
        return sorted({t * p for t in tp_widths(m, on_chip=True) for p in range(1, m.layers + 1) if t * p <= max_chips})
    return sorted({int(n) for n in layouts(m, 1, domain, on_chip, n_max=max_chips).n})


__all__ = ["Layouts", "exact_layouts", "layouts", "runnable_counts", "tp_widths"]
