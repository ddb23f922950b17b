"""Candidate units: the performance model evaluated on a grid, filtered and pruned (DESIGN.md §4).

Three kinds of unit per traffic class:
- aggregated  (chip, n, B): prefill and decode interleaved on the same n chips; self-contained.
- decode      (attention chip, n_a, FFN chip, n_f, B): same chip = co-located decode; different =
              attention–FFN disaggregation (attention on an HBM part, FFN on an SRAM/MRAM part).
              Needs prefill units beside it.
- prefill     (chip, n): input tokens/s it serves at the utilisation the TTFT target allows.

Filters: the unit fits in memory with the class's KV headroom (B·KV·replication·(1+h) ≤ free memory,
decided once, by the performance model's `fits` — kept per unit rather than as a fleet-wide sum,
because a sequence's KV cannot live on another unit's chips), meets the speed target, and
(aggregated) the TTFT target.
Pruning (exact): among units of one class, kind and chip types, a unit is dropped when a whole
number a ≥ 1 of copies of another unit uses no more chips of each type and serves at least as much;
swapping them in never costs more and never breaks a constraint (more capacity never needs more
prefill: prefill is sized for served demand), so the optimum is unchanged (tested on real cases).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from . import performance as pf
from .domain import Case, TrafficClass
from .layouts import Layouts, layouts
from .purchasable import for_plan_year

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
"""Named grids. 'coarse' tries fewer chip counts per layout. Measured 2026-12-01 on four shipped
cases it has nearly as many candidates as 'fine' (the layout search dominates their number), is not
reliably faster, and its plans cost 3-14 % more (default: 4,071 vs 3,560 USD/hour): plan on 'fine';
'coarse' only thins very large synthetic cases."""


def chip_counts(n_min: int, domain: int, opts: GridOptions) -> np.ndarray:
    """Chip counts to try: multiples of the minimum that holds the weights, plus powers of two."""
    ns = {max(n_min, math.ceil(n_min * f)) for f in opts.n_factors}
    ns |= {2 ** k for k in range(0, 13) if n_min <= 2 ** k <= n_min * max(opts.n_factors)}
    if n_min <= domain <= n_min * max(opts.n_factors):
        ns.add(domain)
    return np.array(sorted(n for n in ns if n <= opts.max_chips_per_unit), dtype=float)


def _n_min(part_bytes: float, c: pf.ChipSI) -> int:
    return pf.chips_to_hold(part_bytes, c)


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
    h = tc.kv_headroom

    def emit(kind, d, ns_a, ns_f, a, f, extra=None, draft=("", None), lay=(1, 1, False), mtp=0):
        """Rows for the grid points that pass the filters; with pruning on, only the best batch of
        each chip set survives (same chips, more throughput: exact dominance, done here in numpy)."""
        speed, tput = d["speed_tok_s_user"], d["throughput_tok_s"]
        ok = d["fits"] & (speed >= tc.min_speed_tok_s_user)  # fits: KV after replication, with headroom
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
                    d = pf.aggregated(w, c, n, b, pp=pp, attn_dp=dp, mtp_tokens=k, accepted_tokens=acc, kv_headroom=h)
                    d["batch"] = b
                    emit("aggregated", d, n, n, cid, cid, d["ttft_s"] <= tc.ttft_s, lay=(tp, pp, dp), mtp=k)
                if "disaggregated" in case.fleet.modes and cid in allowed["decode_attention"] and cid in allowed["decode_ffn"]:
                    d = pf.mtp(w, c, n, b, k, acc, pp=pp, attn_dp=dp, kv_headroom=h) if k else \
                        pf.decode(w, c, n, None, None, b, pp=pp, attn_dp=dp, kv_headroom=h)
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
                d = pf.speculative(w, c, n, dw, dc, ndr, b, tc.draft_tokens, tc.accepted_tokens_per_step, pp=pp,
                                   kv_headroom=h)
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
                d = pf.decode(w, a, na, f, nf, b, kv_headroom=h)
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
    if not case.periods:  # no units for chips the plan's year cannot buy (roadmaps buy them later)
        case = for_plan_year(case)[0]
    chunks = []
    merging = {b for sh in case.shapes.values() if sh.merge_buckets and len(sh.buckets) > 1 for b in sh.buckets}
    full: dict[str, pd.DataFrame] = {}  # every grid point of a bucket that may share units (merged units need all)
    for j, tc in enumerate(case.classes):
        if deadline is not None and time.monotonic() > deadline:
            raise TimeLimitError("time limit reached while generating candidate units", [Problem(
                "--time-limit", f"candidates for {j} of {len(case.classes)} classes were built in time",
                "raise --time-limit, use --grid coarse, or split the case")])
        if tc.name in merging:
            mine = class_candidates(case, j, tc, replace(opts, prune=False))
            full[tc.name] = pd.concat(mine, ignore_index=True) if mine else pd.DataFrame(columns=COLUMNS)
            chunks += mine
        else:
            chunks += class_candidates(case, j, tc, opts)
    df = pd.concat(chunks, ignore_index=True)[COLUMNS] if chunks else pd.DataFrame(columns=COLUMNS)
    if opts.prune:
        df = prune(df)
    df = df.assign(serves=None)
    shared = [shared_candidates(sh, [full[b] for b in sh.buckets], opts.prune, sh.merge_span, deadline)
              for sh in case.shapes.values()
              if sh.merge_buckets and len(sh.buckets) > 1]
    shared = [d for d in shared if len(d)]
    if shared:
        df = pd.concat([df, *shared], ignore_index=True)
    return df.reset_index(drop=True)


COLUMNS = ["class", "class_index", "kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "batch",
           "throughput_tok_s", "speed_tok_s_user", "ttft_s", "prefill_tok_s", "draft_chip", "n_draft",
           "tp", "pp", "ep", "attn_dp", "mtp_tokens"]
CONFIG = ["kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "batch", "draft_chip", "n_draft", "tp", "pp", "attn_dp",
          "mtp_tokens"]
"""What makes two buckets' grid points the same deployment (same chips, layout and batch)."""


def shared_candidates(shape, tables: list[pd.DataFrame], prune_: bool = True, max_span: int | None = None,
                      deadline: float | None = None) -> pd.DataFrame:
    """Units that serve a contiguous range of a class's buckets (shortest first), sized for the
    longest they serve: a deployment (chips, layout, batch) is a shared unit of buckets s..e when it
    is a candidate of every one of them — so its KV fits the longest bucket's sequences, and it
    meets every bucket's speed (and, aggregated or prefill, TTFT) target. Each bucket keeps the
    throughput the performance model gives the unit at that bucket's lengths (`serves`); the MILP
    splits a unit's time between its buckets (formulations/fleet.py, add_sharing). Pruning keeps,
    per chip set, the batches whose per-bucket throughputs no other batch beats on every bucket."""
    out = []
    n = len(tables)
    max_span = max_span or n
    value = [t.assign(_v=np.where(t["kind"] == "prefill", t["prefill_tok_s"], t["throughput_tok_s"]))
             [CONFIG + ["_v", "speed_tok_s_user", "ttft_s", "class_index"]] for t in tables]
    import time

    from .errors import Problem, TimeLimitError

    for s in range(n):
        acc = value[s].rename(columns={"_v": "_v0", "speed_tok_s_user": "_s0", "ttft_s": "_t0"})
        for e in range(s + 1, min(n, s + max_span)):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeLimitError("time limit reached while generating units shared between length buckets", [
                    Problem("--time-limit", f"{shape.name}: {n} buckets, shared units over up to {max_span} of them",
                            f"raise --time-limit, or lower classes.{shape.name}.max_buckets / merge_span")])
            k = e - s
            acc = acc.merge(value[e].drop(columns="class_index").rename(
                columns={"_v": f"_v{k}", "speed_tok_s_user": f"_s{k}", "ttft_s": f"_t{k}"}), on=CONFIG)
            if acc.empty:
                break
            v = acc[[f"_v{i}" for i in range(k + 1)]].to_numpy(float)
            keep = _pareto(acc, v) if prune_ else np.ones(len(acc), dtype=bool)
            if prune_:
                keep &= _not_covered(acc, v, keep)
            sel = acc[keep]
            vs = v[keep]
            names = shape.buckets[s:e + 1]
            rows = sel[CONFIG].copy()
            rows.insert(0, "class", f"{shape.name}[buckets {s + 1}-{e + 1}]")
            rows.insert(1, "class_index", sel["class_index"].to_numpy())
            longest = vs[:, -1]
            rows["throughput_tok_s"] = np.where(rows["kind"] == "prefill", 0.0, longest)
            rows["prefill_tok_s"] = np.where(rows["kind"] == "prefill", longest, 0.0)
            rows["speed_tok_s_user"] = sel[[f"_s{i}" for i in range(k + 1)]].min(axis=1).to_numpy()
            rows["ttft_s"] = sel[[f"_t{i}" for i in range(k + 1)]].max(axis=1).to_numpy()
            rows["ep"] = 1
            rows["serves"] = [tuple(zip(names, map(float, r))) for r in vs]
            out.append(rows)
    if not out:
        return pd.DataFrame(columns=COLUMNS + ["serves"])
    df = pd.concat(out, ignore_index=True)
    return df[COLUMNS + ["serves"]]


def _not_covered(df: pd.DataFrame, v: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """The exact pruning of `prune` for shared units: drop a unit when whole copies of another of the
    same chip types use no more chips and serve at least as much of every bucket."""
    keep = alive.copy()
    key = df[["kind", "attn_chip", "ffn_chip", "draft_chip"]].astype(str).agg("|".join, axis=1).to_numpy()
    na, nf, nd = (df[c].to_numpy() for c in ("n_attn", "n_ffn", "n_draft"))
    for _, idx in pd.Series(range(len(df))).groupby(key, sort=False).indices.items():
        idx = idx[alive[idx]]
        idx = idx[np.argsort(-v[idx].sum(axis=1), kind="stable")]
        kept: list[int] = []
        for i in idx:
            for k in kept:
                a = na[i] // na[k]
                if nf[k]:
                    a = min(a, nf[i] // nf[k])
                if a >= 1 and (a * v[k] >= v[i] - 1e-9).all() and _fits_in(nd[k], nd[i], na[k], na[i]):
                    keep[i] = False
                    break
            else:
                kept.append(i)
    return keep


def _pareto(df: pd.DataFrame, v: np.ndarray) -> np.ndarray:
    """Rows no other row of the same chip set beats (≥ on every bucket, > on one)."""
    keep = np.zeros(len(df), dtype=bool)
    key = df[["kind", "attn_chip", "n_attn", "ffn_chip", "n_ffn", "draft_chip", "n_draft"]].astype(str).agg("|".join, axis=1)
    for _, idx in df.groupby(key.to_numpy(), sort=False).indices.items():
        g = v[idx]
        ge = (g[:, None, :] >= g[None, :, :]).all(axis=2)
        gt = (g[:, None, :] > g[None, :, :]).any(axis=2)
        dominated = (ge & gt).any(axis=0)
        same = np.triu((g[:, None, :] == g[None, :, :]).all(axis=2), 1).any(axis=0)  # exact ties: keep the first
        keep[idx[~dominated & ~same]] = True
    return keep
