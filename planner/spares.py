"""Spares from failure figures: how many extra units (or racks) a group needs so that its working
capacity covers its load with a given probability.

The model (stated once, used by problem.py, the MILP, verify.py and the tests):
  - a chip is down a fraction q_c = MTTR / (MTBF + MTTR) of the time, MTBF = 8760 h / annual failure rate;
    failures are independent;
  - a group is one candidate unit type on chips not sold by system: a copy is down when any of its chips
    is (a tensor/expert-parallel group stalls without one member), q_u = 1 − Π_c (1 − q_c)^{chips_{u,c}};
  - a group is the racks of a chip sold by system (NVL72, LPX): a rack is the failure domain and loses
    all its capacity while any of its S chips is down, q_rack = 1 − (1 − q_c)^S (conservative: real racks
    are serviced per tray, but the capacity of a rack-scale model shard goes with the rack);
  - N working + k spare items meet the load with probability P(Binomial(N + k, q) ≤ k); the spares a
    group needs are the least k with that probability ≥ A (binomial over failure domains, N+k);
  - each group is sized to A on its own; a class served by G groups is covered with probability ≥ A^G.
"""
from __future__ import annotations

import math

from .domain import Case
from .units import HOURS_PER_YEAR


def chip_unavailability(case: Case, chip_id: str) -> float:
    """Long-run fraction of time one chip is down: MTTR / (MTBF + MTTR)."""
    chip, e = case.chips[chip_id], case.economics
    afr = chip.annual_failure_rate or e.annual_failure_rate
    mttr = chip.mttr_hours or e.mttr_hours
    mtbf = HOURS_PER_YEAR / afr
    return mttr / (mtbf + mttr)


def down_probability(q_chip: float, chips: int) -> float:
    """A domain of `chips` chips is down when any of them is."""
    return 1.0 - (1.0 - q_chip) ** chips


def covered(n_working: int, spares: int, q: float) -> float:
    """P(at most `spares` of n_working + spares independent items are down), each down with prob q."""
    total = n_working + spares
    if q <= 0:
        return 1.0
    if q >= 1:
        return 0.0 if n_working > 0 else 1.0
    lq, lp = math.log(q), math.log1p(-q)
    terms = [math.lgamma(total + 1) - math.lgamma(i + 1) - math.lgamma(total - i + 1) + i * lq + (total - i) * lp
             for i in range(min(spares, total) + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def spares_needed(n_working: int, q: float, availability: float) -> int:
    """The least k with P(Binomial(N + k, q) ≤ k) ≥ A; 0 for N = 0."""
    if n_working <= 0:
        return 0
    k = 0
    while covered(n_working, k, q) < availability:
        k += 1
        if k > 10 * n_working + 100:  # q near 1: no finite spare count reaches A
            raise ValueError(f"no spare count reaches availability {availability} at down probability {q:.3g}")
    return k


def thresholds(q: float, availability: float, n_max: int) -> list[int]:
    """N_t = least N with spares_needed(N) ≥ t, t = 1 … spares_needed(n_max): spares_needed(N) counts
    the thresholds ≤ N, which is how the MILP writes the step function (one binary per threshold)."""
    out, k_prev = [], 0
    n = 1
    k_max = spares_needed(n_max, q, availability)
    while len(out) < k_max and n <= n_max:
        k = spares_needed(n, q, availability)
        out += [n] * (k - k_prev)
        k_prev = k
        if k >= k_max:
            break
        # k(N) grows slowly: step N geometrically, then back off to the first N where k rises
        lo, hi = n, n + 1
        while hi <= n_max and spares_needed(hi, q, availability) == k:
            lo, hi = hi, min(n_max + 1, hi + max(1, hi - n))
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if spares_needed(mid, q, availability) > k:
                hi = mid
            else:
                lo = mid
        n = hi
    return out[:k_max]


def unreachable(case: Case) -> list:
    """Before any candidate is built: chips (or, sold by the system, whole systems) down half the
    time or more, for which no number of spares reaches constraints.availability (the same rule
    the MILP's spare steps apply per group, so `fleet validate` and `fleet plan` refuse alike)."""
    from .errors import Problem

    A = case.constraints.availability
    if A is None:
        return []
    out = []
    for c in case.fleet.chips:
        chip = case.chips[c]
        q = chip_unavailability(case, c)
        what, down = (f"{c} system", down_probability(q, chip.chips_per_system)) if chip.sold_by_system else (c, q)
        if down >= 0.5:
            out.append(Problem("constraints.availability", f"a {what} is down {down:.1%} of the time (failure rate × economics.mttr_hours)",
                               "lower constraints.availability, shorten economics.mttr_hours, or leave that chip out of "
                               "fleet.chips"))
    return out
