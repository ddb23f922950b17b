"""The per-unit families of the independent re-check (planner/verify.py): speed, TTFT, prefill
capacity and KV per unit, recomputed from a plan's units table (units.csv) and the case alone.

Nothing here reads the MILP's parameters (problem.py) or the candidate generator: each unit's
figures are re-derived from its printed deployment (chips, counts, layout, batch) by calling the
performance model directly, and the KV limit is worked out here from the model's shape, so a unit
table that was corrupted (a tampered cache, a wrong column) or a filter that dropped a term (KV
headroom lost after replication) is caught before the plan is reported.
"""
from __future__ import annotations

import re

import numpy as np

from . import modelspec as ms
from . import performance as pf
from .errors import Problem
from .units import BYTES_PER_PARAM, GB, KV_BYTES_PER_ELEM

REL_TOL = 1e-4
_SHARED = re.compile(r"^(?P<name>.+)\[buckets (?P<s>\d+)-(?P<e>\d+)\]$")


def unit_classes(case, name: str) -> list:
    """The traffic classes a unit row serves: its own, or a shared unit's range of buckets."""
    by_name = {tc.name: tc for tc in case.classes}
    if name in by_name:
        return [by_name[name]]
    hit = _SHARED.match(str(name))
    if hit and hit["name"] in case.shapes:
        buckets = case.shapes[hit["name"]].buckets[int(hit["s"]) - 1:int(hit["e"])]
        return [by_name[b] for b in buckets if b in by_name]
    return []


def _workload(case, tc) -> pf.Workload:
    return pf.Workload(case.models[tc.model], tc.precision, tc.isl, tc.osl, tc.cached_isl)


def _chip(case, cid: str, tc) -> pf.ChipSI:
    return pf.ChipSI.of(case.chips[cid], tc.precision)


def decode_figures(case, tc, r) -> tuple[float, float, float]:
    """(speed tok/s/user, output tok/s per copy, TTFT s or nan) of a serving unit at class tc's
    lengths, from the performance model at the unit's printed deployment."""
    w, c = _workload(case, tc), _chip(case, r.attn_chip, tc)
    n, b, pp, dp, k = float(r.n_attn), float(r.batch), float(r.pp), bool(r.attn_dp), int(r.mtp_tokens)
    acc = tc.accepted_tokens_per_step if k else 1.0
    if r.kind == "aggregated":
        d = pf.aggregated(w, c, n, b, pp=pp, attn_dp=dp, mtp_tokens=k, accepted_tokens=acc)
    elif r.draft_chip:
        dw = pf.Workload(case.models[tc.draft_model], tc.precision, tc.isl, tc.osl)
        d = pf.speculative(w, c, n, dw, _chip(case, r.draft_chip, tc), float(r.n_draft), b, tc.draft_tokens,
                           tc.accepted_tokens_per_step, pp=pp)
    elif r.ffn_chip != r.attn_chip and int(r.n_ffn):
        d = pf.decode(w, c, n, _chip(case, r.ffn_chip, tc), float(r.n_ffn), b)
    elif k:
        d = pf.mtp(w, c, n, b, k, acc, pp=pp, attn_dp=dp)
    else:
        d = pf.decode(w, c, n, None, None, b, pp=pp, attn_dp=dp)
    ttft = float(d["ttft_s"]) if "ttft_s" in d else float("nan")
    return float(d["speed_tok_s_user"]), float(d["throughput_tok_s"]), ttft


def prefill_figures(case, tc, r) -> tuple[float, float, float]:
    """(one prompt's prefill time s, new prompt tokens/s at full load, KV transfer s) of a prefill unit."""
    w, c = _workload(case, tc), _chip(case, r.attn_chip, tc)
    p = pf.prefill(w, c, float(r.n_attn))
    return float(p["prefill_s"]), float(p["tokens_per_s"]), float(pf.kv_transfer_s(w, c, float(r.n_attn)))


def md1_ttft_s(prefill_s: float, rho: float, transfer_s: float) -> float:
    """M/D/1 time to first token at utilisation rho: wait ρ/(2(1−ρ)) services, then service and transfer."""
    return float("inf") if rho >= 1 else prefill_s * (1 + rho / (2 * (1 - rho))) + transfer_s


def max_rho(prefill_s: float, ttft_s: float, transfer_s: float, cap: float) -> float:
    """Largest utilisation whose M/D/1 TTFT meets the target (solved here from md1_ttft_s)."""
    s = (ttft_s - transfer_s) / prefill_s - 1.0
    return min(2 * s / (1 + 2 * s), cap) if s > 0 else 0.0


def kv_reserved_bytes(case, tc, r) -> tuple[float, float]:
    """(bytes the unit's sequences reserve: batch × KV per sequence × copies held × (1 + headroom),
    memory left for them after the weights) on the chips holding the KV (attention side)."""
    m = case.models[tc.model]
    kv_seq = float(ms.kv_bytes_per_seq(m, float(tc.isl + tc.osl), KV_BYTES_PER_ELEM[tc.precision]))
    tp = float(r.n_attn) / max(float(r.pp), 1.0)
    dp = bool(r.attn_dp) and m.experts > 0
    copies = 1.0 if dp else (max(tp, 1.0) if m.attention == "mla" else max(tp / m.kv_heads, 1.0))
    bpp = BYTES_PER_PARAM[tc.precision]
    attn_w = (ms.attention_params(m) + ms.embedding_params(m)) * bpp * (tp if dp else 1.0)
    afd = r.ffn_chip != r.attn_chip and int(r.n_ffn) > 0
    weights = attn_w + (0.0 if afd else ms.ffn_total_params(m) * bpp)
    usable = float(r.n_attn) * case.chips[r.attn_chip].mem_gb * GB * pf.USABLE_MEM_FRAC
    return float(r.batch) * kv_seq * copies * (1 + tc.kv_headroom), usable - weights


def _rows(units):
    return [] if units is None or not len(units) else list(units.itertuples(index=False))


def _off(got: float, want: float) -> bool:
    return not np.isfinite(got) or abs(got - want) > REL_TOL * max(abs(want), 1e-12)


def speed_violations(case, units) -> list[Problem]:
    """Every serving unit meets each served class's speed target, and its printed speed and output
    tok/s per copy are what the performance model gives its deployment (a shared unit's capacity
    lies between its buckets' rates)."""
    out = []
    for i, r in enumerate(_rows(units)):
        if r.kind == "prefill":
            continue
        figs = [(tc, *decode_figures(case, tc, r)) for tc in unit_classes(case, r[0])]
        if not figs:
            out.append(Problem(f"units.{i}.class", f"'{r[0]}' is no class of the case"))
            continue
        for tc, speed, _, _ in figs:
            if speed < tc.min_speed_tok_s_user * (1 - REL_TOL):
                out.append(Problem(f"classes.{tc.name}.min_speed_tok_s_user",
                                   f"unit {i} runs at {speed:,.4g} tok/s/user (recomputed)"))
        speed = min(f[1] for f in figs)
        if _off(float(r.speed_tok_s_user), speed):
            out.append(Problem(f"units.{i}.speed_tok_s_user", f"printed {float(r.speed_tok_s_user):,.6g}, the model "
                               f"gives {speed:,.6g} tok/s/user"))
        if float(r.copies) > 0:
            per_copy = float(r.throughput_tok_s) / float(r.copies)
            lo, hi = min(f[2] for f in figs), max(f[2] for f in figs)
            if per_copy > hi * (1 + REL_TOL) or (len(figs) == 1 and _off(per_copy, hi)) or per_copy < lo * (1 - REL_TOL):
                out.append(Problem(f"units.{i}.throughput_tok_s", f"{per_copy:,.6g} tok/s per copy printed; the model "
                                   f"gives {lo:,.6g}" + (f" … {hi:,.6g}" if hi != lo else "")))
    return out


def ttft_violations(case, units) -> list[Problem]:
    """Aggregated units: recomputed TTFT ≤ target. Prefill units: the TTFT at the utilisation their
    printed capacity implies (capacity per copy / full-load token rate, M/D/1) ≤ target."""
    out = []
    for i, r in enumerate(_rows(units)):
        for tc in unit_classes(case, r[0]):
            if r.kind == "aggregated":
                ttft = decode_figures(case, tc, r)[2]
            elif r.kind == "prefill":
                p_s, rate, tr = prefill_figures(case, tc, r)
                if len(unit_classes(case, r[0])) > 1:  # shared: each bucket's figure at its own cap
                    rho = max_rho(p_s, tc.ttft_s, tr, tc.max_utilization)
                else:
                    rho = float(r.prefill_tok_s) / max(float(r.copies), 1e-12) / rate if float(r.copies) else 0.0
                ttft = md1_ttft_s(p_s, rho, tr)
                if rho > tc.max_utilization * (1 + REL_TOL):
                    out.append(Problem(f"classes.{tc.name}.max_utilization", f"unit {i} runs its prefill at "
                                       f"{rho:.4g} utilisation"))
            else:
                continue
            if ttft > tc.ttft_s * (1 + REL_TOL):
                out.append(Problem(f"classes.{tc.name}.ttft_s", f"unit {i}'s TTFT is {ttft:.4g} s (recomputed)"))
    return out


def shared_time_violations(case, units, shares) -> list[Problem]:
    """A shared unit's copies have the time for what it serves of each bucket: Σ_b tok/s_b / rate_b
    ≤ copies, with each rate recomputed (output tok/s, or prefill tok/s at the TTFT's utilisation)."""
    out = []
    if shares is None or not len(shares):
        return out
    rows = _rows(units)
    for u, mine in shares.groupby("unit"):
        r = rows[int(u)]
        by = {tc.name: tc for tc in unit_classes(case, r[0])}
        used = 0.0
        for s in mine.itertuples(index=False):
            tc = by.get(s[1])
            if tc is None:
                out.append(Problem(f"units.{int(u)}.serves", f"serves '{s[1]}', a bucket outside its range"))
                continue
            if r.kind == "prefill":
                p_s, rate, tr = prefill_figures(case, tc, r)
                rate *= max_rho(p_s, tc.ttft_s, tr, tc.max_utilization)
            else:
                rate = decode_figures(case, tc, r)[1]
            used += float(s.tok_s) / rate if rate > 0 else float("inf")
        if used > float(r.copies) * (1 + REL_TOL) + 1e-9:
            out.append(Problem(f"units.{int(u)}.copies", f"what it serves takes {used:,.4g} copies' time; it has "
                               f"{float(r.copies):,.4g}"))
    return out


def prefill_violations(case, units, shares, share: float = 1.0) -> list[Problem]:
    """Each class's prefill pools serve the input tokens of the demand its aggregated units leave to
    the disaggregated decode: prefill tok/s ≥ (new ISL / OSL) × (demand − aggregated capacity)."""
    from .results import serving_units

    out = []
    for tc in case.classes:
        mine = serving_units(units, shares, tc.name)
        if not len(mine):
            continue
        agg = float(mine.loc[mine["kind"] == "aggregated", "throughput_tok_s"].sum())
        dis = max(0.0, share * tc.peak_demand_tok_s - agg)
        need = max(tc.isl - tc.cached_isl, 1) / tc.osl * dis
        have = float(mine.loc[mine["kind"] == "prefill", "prefill_tok_s"].sum())
        if have < need * (1 - REL_TOL) - 1e-6 * max(1.0, tc.demand_tok_s):  # solver round-off on tiny shares
            out.append(Problem(f"classes.{tc.name}.prefill", f"prefill pools serve {have:,.6g} of the {need:,.6g} "
                               "input tok/s the disaggregated decode needs"))
    return out


def kv_violations(case, units) -> list[Problem]:
    """Every serving unit's batch holds its KV: batch × KV per sequence (ISL + OSL of the longest
    class served) × copies the layout holds × (1 + headroom) ≤ memory left after the weights."""
    out = []
    for i, r in enumerate(_rows(units)):
        if r.kind == "prefill":
            continue
        for tc in unit_classes(case, r[0]):
            need, free = kv_reserved_bytes(case, tc, r)
            if need > free * (1 + 1e-9):
                out.append(Problem(f"units.{i}.batch", f"{int(r.batch):,} sequences of {tc.name} reserve "
                                   f"{need / GB:,.1f} GB of KV (headroom {tc.kv_headroom:.0%}); "
                                   f"{max(free, 0) / GB:,.1f} GB is left after the weights"))
    return out
