"""Candidate units: the performance model evaluated on a grid, filtered and pruned (DESIGN.md §4).

Three kinds of unit per traffic class:
- aggregated  (chip, n, B): prefill and decode interleaved on the same n chips; self-contained.
- decode      (attention chip, n_a, FFN chip, n_f, B): same chip = co-located decode; different =
              attention–FFN disaggregation (attention on an HBM part, FFN on an SRAM/MRAM part).
              Needs prefill units beside it.
- prefill     (chip, n): input tokens/s it serves at the utilisation the TTFT target allows.

Filters: the unit fits in memory with the class's KV headroom (B·KV·(1+h) ≤ free memory — kept per
unit rather than as a fleet-wide sum, because a sequence's KV cannot live on another unit's
chips), meets the speed target, and (aggregated) the TTFT target.
Pruning (exact): among units of one class, kind and chip types, a unit is dropped when a whole
number a ≥ 1 of copies of another unit uses no more chips of each type and serves at least as much;
swapping them in never costs more and never breaks a constraint (more capacity never needs more
prefill: prefill is sized for served demand), so the optimum is unchanged (tested on real cases).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import performance as pf
from .domain import Case, TrafficClass
from .layouts import Layouts, layouts

BATCHES = np.unique(np.round(np.concatenate([2 ** np.arange(0, 13), 1.5 * 2 ** np.arange(0, 12)]))).astype(int)
N_FACTORS = (1, 1.25, 1.5, 2, 3, 4, 6, 8, 12, 16)


@dataclass(frozen=True)
class GridOptions:
    """How fine the candidate grid is; finer = more columns, slower solves, rarely better plans."""

    batches: tuple[int, ...] = tuple(int(b) for b in BATCHES)
    n_factors: tuple[float, ...] = N_FACTORS
    max_chips_per_unit: int = 20000
    prune: bool = True


GRIDS = {
    "fine": GridOptions(),
    "coarse": GridOptions(batches=tuple(2 ** k for k in range(13)), n_factors=(1, 1.5, 2, 4, 8)),
}
"""Named grids. 'coarse' halves the candidates and the solve time of the default case with the same
optimum there (measured); use it for large sweeps, and 'fine' for the plan you act on."""


def chip_counts(n_min: int, domain: int, opts: GridOptions) -> np.ndarray:
    """Chip counts to try: multiples of the minimum that holds the weights, plus powers of two."""
    ns = {max(n_min, math.ceil(n_min * f)) for f in opts.n_factors}
    ns |= {2 ** k for k in range(0, 13) if n_min <= 2 ** k <= n_min * max(opts.n_factors)}
    if n_min <= domain <= n_min * max(opts.n_factors):
        ns.add(domain)
    return np.array(sorted(n for n in ns if n <= opts.max_chips_per_unit), dtype=float)


def _n_min(part_bytes: float, c: pf.ChipSI) -> int:
    return max(1, math.ceil(part_bytes / (c.mem_bytes * pf.USABLE_MEM_FRAC)))


def _kv_ok(w: pf.Workload, batch, free_bytes, headroom: float):
    return batch * w.kv_bytes_per_seq() * (1 + headroom) <= free_bytes


def class_candidates(case: Case, j: int, tc: TrafficClass, opts: GridOptions) -> list[pd.DataFrame]:
    """All surviving units of one class, as DataFrame chunks."""
    w = pf.Workload(case.models[tc.model], tc.precision, tc.isl, tc.osl, tc.cached_isl)
    chips = {cid: pf.ChipSI.of(case.chips[cid], tc.precision) for cid in case.fleet.chips
             if case.chips[cid].supports(tc.precision)}
    allowed = {s: [c for c in case.fleet.allowed(s) if c in chips]
               for s in ("prefill", "decode_attention", "decode_ffn", "decode_draft")}
    rows: list[dict] = []
    chunks: list[pd.DataFrame] = []
    B = np.array(opts.batches, dtype=float)

    def emit(kind, d, ns_a, ns_f, a, f, extra=None, draft=("", None), lay=(1, 1, False), mtp=0):
        """Rows for the grid points that pass the filters; with pruning on, only the best batch of
        each chip set survives (same chips, more throughput: exact dominance, done here in numpy)."""
        speed, tput = d["speed_tok_s_user"], d["throughput_tok_s"]
        free = d["memory_capacity_bytes"] - (w.weight_bytes() if a == f else w.attn_weight_bytes())
        ok = d["fits"] & (speed >= tc.min_speed_tok_s_user) & _kv_ok(w, d["batch"], free, tc.kv_headroom)
        if extra is not None:
            ok &= extra
        ok = np.broadcast_to(ok, np.shape(tput))
        if opts.prune and ok.ndim >= 1 and ok.any():  # batch is the last grid axis
            masked = np.where(ok, tput, -np.inf)
            best = masked.argmax(axis=-1)[..., None]
            keep = np.zeros_like(ok)
            np.put_along_axis(keep, best, True, axis=-1)
            ok = keep & ok
        idx = np.nonzero(ok)
        if not len(idx[0]):
            return
        pick = lambda arr: np.broadcast_to(arr, ok.shape)[idx]  # noqa: E731
        ttft = pick(d["ttft_s"]) if "ttft_s" in d else np.full(len(idx[0]), np.nan)
        chunks.append(pd.DataFrame({
            "class": tc.name, "class_index": j, "kind": "aggregated" if kind == "aggregated" else "decode",
            "attn_chip": a, "n_attn": pick(ns_a).astype(int), "ffn_chip": f,
            "n_ffn": pick(ns_f).astype(int) if f != a else 0, "batch": pick(d["batch"]).astype(int),
            "throughput_tok_s": pick(tput), "speed_tok_s_user": pick(speed), "ttft_s": ttft,
            "prefill_tok_s": 0.0, "draft_chip": draft[0],
            "n_draft": pick(draft[1]).astype(int) if draft[1] is not None else 0,
            "tp": pick(np.asarray(lay[0], dtype=float)).astype(int), "pp": pick(np.asarray(lay[1], dtype=float)).astype(int),
            "ep": pick(np.asarray(lay[0], dtype=float)).astype(int) if w.model.experts else 1,
            "attn_dp": bool(lay[2]), "mtp_tokens": int(mtp)}))

    def grid(lay: Layouts, *extra_axes):
        """(layout, *extra, batch) arrays: n, tp, pp broadcast against the other axes."""
        shape = (-1,) + (1,) * (len(extra_axes) + 1)
        axes = np.meshgrid(lay.n, *extra_axes, B, indexing="ij")
        return axes, lay.tp.reshape(shape), lay.pp.reshape(shape)

    # aggregated and co-located decode on one chip type, every runnable layout
    lays = {cid: layouts(w.model, _n_min(w.weight_bytes(), c), c.domain, c.on_chip, opts.n_factors,
                         opts.max_chips_per_unit) for cid, c in chips.items()}
    for cid, c in chips.items():
        for dp in (False, True):
            lay = lays[cid].select(lays[cid].attn_dp == dp)
            if not len(lay):
                continue
            (n, b), tp, pp = grid(lay)
            for k in sorted({0, tc.mtp_tokens}):  # with MTP on, plain decoding stays a candidate
                acc = tc.accepted_tokens_per_step if k else 1.0
                if "aggregated" in case.fleet.modes and all(cid in allowed[s] for s in allowed):
                    d = pf.aggregated(w, c, n, b, pp=pp, attn_dp=dp, mtp_tokens=k, accepted_tokens=acc)
                    d["batch"] = b
                    emit("aggregated", d, n, n, cid, cid, d["ttft_s"] <= tc.ttft_s, lay=(tp, pp, dp), mtp=k)
                if "disaggregated" in case.fleet.modes and cid in allowed["decode_attention"] and cid in allowed["decode_ffn"]:
                    d = pf.mtp(w, c, n, b, k, acc, pp=pp, attn_dp=dp) if k else pf.decode(w, c, n, None, None, b, pp=pp,
                                                                                          attn_dp=dp)
                    d["batch"] = b
                    emit("decode", d, n, n, cid, cid, lay=(tp, pp, dp), mtp=k)

    # speculative decoding: target model co-located on one chip type, draft model on another (or the same)
    if tc.draft_model and "disaggregated" in case.fleet.modes:
        dw = pf.Workload(case.models[tc.draft_model], tc.precision, tc.isl, tc.osl)
        for tid in allowed["decode_attention"]:
            if tid not in allowed["decode_ffn"]:
                continue
            for did in allowed["decode_draft"]:
                c, dc = chips[tid], chips[did]
                lay = lays[tid].select(~lays[tid].attn_dp)
                nd = chip_counts(_n_min(dw.weight_bytes(), dc), dc.domain, opts)[:3]
                (n, ndr, b), tp, pp = grid(lay, nd)
                d = pf.speculative(w, c, n, dw, dc, ndr, b, tc.draft_tokens, tc.accepted_tokens_per_step, pp=pp)
                d["batch"] = b
                emit("decode", d, n, n, tid, tid, draft=(did, ndr), lay=(tp, pp, False))

    # attention–FFN disaggregation
    if "disaggregated" in case.fleet.modes:
        for aid in allowed["decode_attention"]:
            for fid in allowed["decode_ffn"]:
                if aid == fid or not _afd_pair(case, aid, fid):
                    continue
                a, f = chips[aid], chips[fid]
                la = layouts(w.model, _n_min(w.attn_weight_bytes() + w.kv_bytes_per_seq(), a), a.domain, a.on_chip,
                             opts.n_factors, opts.max_chips_per_unit)
                ns_a = np.unique(la.n[(la.pp == 1) & ~la.attn_dp])
                ns_f = chip_counts(_n_min(w.ffn_weight_bytes(), f), f.domain, opts)
                na, nf, b = np.meshgrid(ns_a, ns_f[: min(len(ns_f), 6)], B, indexing="ij")
                d = pf.decode(w, a, na, f, nf, b)
                d["batch"] = b
                emit("decode_afd", d, na, nf, aid, fid, lay=(na, 1, False))

    # prefill pools
    if "disaggregated" in case.fleet.modes:
        for pid in allowed["prefill"]:
            c = chips[pid]
            lp = layouts(w.model, _n_min(w.weight_bytes() + w.kv_bytes_per_seq(w.isl), c), c.domain, c.on_chip,
                         opts.n_factors, opts.max_chips_per_unit)
            ns = np.unique(lp.n)
            p = pf.prefill(w, c, ns)
            transfer = pf.kv_transfer_s(w, c, ns)
            rho = pf.max_utilization_for_ttft(p["prefill_s"], tc.ttft_s, transfer, cap=tc.max_utilization)
            cap = rho * p["tokens_per_s"]
            for i in np.nonzero(p["fits"] & (rho > 0))[0]:
                rows.append({"class": tc.name, "class_index": j, "kind": "prefill", "attn_chip": pid,
                             "n_attn": int(ns[i]), "ffn_chip": pid, "n_ffn": 0, "batch": 0,
                             "throughput_tok_s": 0.0, "speed_tok_s_user": float("nan"),
                             "ttft_s": float(pf.ttft_at_utilization(p["prefill_s"][i], rho[i], transfer[i])),
                             "prefill_tok_s": float(cap[i]), "draft_chip": "", "n_draft": 0,
                             "tp": int(min(ns[i], c.domain)), "pp": int(math.ceil(ns[i] / c.domain)), "ep": 1,
                             "attn_dp": False, "mtp_tokens": 0})
    if rows:
        chunks.append(pd.DataFrame(rows))
    return chunks


def prune(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, per class and chip signature, only units no other unit dominates (see module doc)."""
    if df.empty:
        return df
    value = np.where(df["kind"] == "prefill", df["prefill_tok_s"], df["throughput_tok_s"])
    df = df.assign(_value=value).sort_values(["_value"], ascending=False, kind="stable")
    # same chips, lower value (e.g. another batch): dominated; keep the best row of each chip set first
    df = df.drop_duplicates(["class", "kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "draft_chip", "n_draft"],
                            keep="first")
    keep = []
    for _, g in df.groupby(["class", "kind", "attn_chip", "ffn_chip", "draft_chip"], sort=False):
        na, nf, nd, v = (g["n_attn"].to_numpy(), g["n_ffn"].to_numpy(), g["n_draft"].to_numpy(),
                         g["_value"].to_numpy())
        kept: list[int] = []
        for i in range(len(g)):  # sorted by value, so earlier rows serve at least as much
            if not any(_covers(na[k], nf[k], v[k], na[i], nf[i], v[i]) and _fits_in(nd[k], nd[i], na[k], na[i])
                       for k in kept):
                kept.append(i)
        keep.extend(g.index[kept])
    return df.loc[sorted(keep)].drop(columns="_value")


def _covers(na_k, nf_k, v_k, na_i, nf_i, v_i) -> bool:
    """a copies of unit k (a ≥ 1 whole) fit in unit i's chips and serve at least as much."""
    a = na_i // na_k if na_k else 0
    if nf_k:
        a = min(a, nf_i // nf_k)
    return a >= 1 and a * v_k >= v_i - 1e-9


def _afd_pair(case: Case, attn_id: str, ffn_id: str) -> bool:
    """Attention–FFN disaggregation pairs worth a column: attention where the KV fits (off-chip
    HBM/GDDR memory), FFN/experts where weight reads are fastest (on-chip SRAM/MRAM). Splitting
    between two HBM parts, or putting the KV on SRAM, never beats co-locating on the better part by
    enough to earn the columns (it quadruples the candidate table on 20-chip cases)."""
    return not case.chips[attn_id].on_chip_memory and case.chips[ffn_id].on_chip_memory


def _fits_in(nd_k, nd_i, na_k, na_i) -> bool:
    """The copies of unit k that cover unit i also fit in unit i's draft chips."""
    if not nd_k:
        return True
    return (na_i // na_k) * nd_k <= nd_i


def build_candidates(case: Case, opts: GridOptions | None = None, deadline: float | None = None) -> pd.DataFrame:
    """The candidate table for every class of the case, pruned unless opts.prune is False.
    `deadline` (time.monotonic) stops a generation that would outlast the command's time limit."""
    import time

    from .errors import Problem, TimeLimitError

    opts = opts or GridOptions()
    chunks = []
    for j, tc in enumerate(case.classes):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeLimitError("time limit reached while generating candidate units", [Problem(
                "--time-limit", f"candidates for {j} of {len(case.classes)} classes were built in time",
                "raise --time-limit, use --grid coarse, or split the case")])
        chunks += class_candidates(case, j, tc, opts)
    cols = ["class", "class_index", "kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "batch",
            "throughput_tok_s", "speed_tok_s_user", "ttft_s", "prefill_tok_s", "draft_chip", "n_draft",
            "tp", "pp", "ep", "attn_dp", "mtp_tokens"]
    df = pd.concat(chunks, ignore_index=True)[cols] if chunks else pd.DataFrame(columns=cols)
    if opts.prune:
        df = prune(df)
    return df.reset_index(drop=True)
