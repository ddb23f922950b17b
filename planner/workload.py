"""Workload shape: a class's length distribution (histogram or trace) → a few length buckets.

What a share is: **a share of requests.** A histogram's `share` and a trace's rows both count
requests; a bucket's demand (output tokens/s) is the class's demand times its share of *output
tokens*, token_share_b = r_b·OSL̄_b / Σ r·OSL̄ (r = request share, OSL̄ = the bucket's mean OSL).

Bucketing. Requests are first put in half-octave ISL × OSL cells (edges at 2^(k/2)); buckets are
then merged greedily — always the pair whose merge adds the least token-weighted error (error ×
(share of output tokens + share of input tokens)) —
until at most `max_buckets` remain and no further merge keeps the error under `tolerance`.
A bucket stands for its requests by its mean pair (ISL̄, OSL̄). The error of doing so, per bucket:

    kv_error    = |(ISL̄ + OSL̄) − K*| / K*,   K* = Σ osl·(isl + osl) / Σ osl
    speed_error = |(ISL̄ + OSL̄/2) − C*| / C*, C* = Σ osl·(isl + osl/2) / Σ osl

K* is the context a running sequence's KV slot holds at its end and C* the mean context a decode
step reads, both averaged over *running* sequences (a request runs for OSL steps, so by Little's
law it is weighted by its OSL). KV memory is linear in context, so kv_error is the relative error
of the bucket's KV need; the KV read is the context-dependent part of a decode step, so
speed_error bounds the relative error of its tokens/s. Input tokens per output token are exact
(Σ isl / Σ osl = ISL̄ / OSL̄), but prefill cost and TTFT grow faster than linearly with a prompt, so

    prefill_error = |ISL̄ − I*| / I*,          I* = Σ isl² / Σ isl   (the prompt an input token is in)

keeps short and long prompts apart. A bucket's error is the largest of the three; the reported
bound is the largest over buckets. Merging may join any two buckets (the errors, not adjacency,
decide), so a bucket's ISL and OSL ranges may overlap another's.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import CaseError, Problem

DEFAULT_MAX_BUCKETS = 8
DEFAULT_TOLERANCE = 0.05
TRACE_COLUMNS = ("isl", "osl", "arrival_s", "cached_isl")
REQUIRED_COLUMNS = ("isl", "osl")
LENGTH_FIELDS = ("isl", "osl", "share", "cached_isl")
SHARE_TOL = 1e-6


@dataclass(frozen=True)
class Bucket:
    """One length bucket: its mean pair, ranges, shares and representation error."""

    isl: float  # mean ISL of its requests
    osl: float
    cached_isl: float
    isl_min: int
    isl_max: int
    osl_min: int
    osl_max: int
    requests: float  # weight (rows of a trace, or summed histogram shares)
    request_share: float
    token_share: float  # share of the class's output tokens
    kv_error: float
    speed_error: float
    prefill_error: float = 0.0

    @property
    def error(self) -> float:
        return max(self.kv_error, self.speed_error, self.prefill_error)

    def label(self, parent: str) -> str:
        return f"{parent}[isl≤{_k(self.isl_max)},osl≤{_k(self.osl_max)}]"


@dataclass(frozen=True)
class Bucketing:
    """Buckets ordered from shortest to longest (mean ISL + OSL), and the error bound reached."""

    buckets: tuple[Bucket, ...]
    max_buckets: int
    tolerance: float
    rows: int
    mean_pair: Bucket  # the whole distribution as one bucket (one mean pair)

    @property
    def max_error(self) -> float:
        return max(b.error for b in self.buckets)

    def labels(self, parent: str) -> list[str]:
        names = [b.label(parent) for b in self.buckets]
        if len(set(names)) < len(names):  # same upper bounds: add the lower ones
            names = [f"{parent}[isl{_k(b.isl_min)}-{_k(b.isl_max)},osl{_k(b.osl_min)}-{_k(b.osl_max)}]"
                     for b in self.buckets]
        if len(set(names)) < len(names):
            names = [f"{n}#{i + 1}" for i, n in enumerate(names)]
        return names


def _k(n: float) -> str:
    """1500 → '1.5k', 2048 → '2k', 300 → '300'."""
    n = int(n)
    if n >= 1000:
        v = n / 1000
        return f"{v:.0f}k" if v >= 10 or abs(v - round(v)) < 0.05 else f"{v:.1f}k"
    return str(n)


# ---- reading ------------------------------------------------------------------------------------

def _check_fields_per_line(text: str, where: str, p) -> None:
    """Every data line has the header's number of fields: a row with one more would otherwise be read
    with its first value as a row label and every length shifted one column (pandas' index guess)."""
    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return
    want = lines[0][1].count(",")
    for i, ln in lines[1:]:
        if ln.split("#", 1)[0].count(",") != want:
            raise CaseError(f"{p}: line {i} has {ln.count(',') + 1} fields, the header {want + 1}", [Problem(
                where, f"line {i} has {ln.count(',') + 1} fields, the header {want + 1}: {ln[:60]!r}",
                "one value per header column on every line (no trailing commas)")])


def load_trace(path: str | Path, where: str) -> pd.DataFrame:
    """A trace's requests: columns isl, osl, cached_isl (0 when absent); bounded read, clear errors."""
    from .inputs import read_bytes

    p = Path(path)
    try:
        data = read_bytes(p, "a trace file (CSV or Parquet)", CaseError)
    except CaseError as exc:
        raise CaseError(str(exc.args[0]), [Problem(where, f"{pr.where}: {pr.what}", pr.fix) for pr in exc.problems])
    if p.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CaseError(f"{p}: reading Parquet needs pyarrow", [Problem(where, "pyarrow is not installed",
                            "pip install 'fleet-planner[parquet]', or convert the trace to CSV")])
        try:
            df = pd.read_parquet(io.BytesIO(data))
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise CaseError(f"{p} is not a readable Parquet file", [Problem(where, str(exc)[:160],
                            "write the trace with columns isl, osl[, arrival_s][, cached_isl]")])
    else:
        try:
            text = data.decode("utf-8-sig")
            _check_fields_per_line(text, where, p)
            df = pd.read_csv(io.StringIO(text), comment="#", skipinitialspace=True, index_col=False)
        except UnicodeDecodeError:
            raise CaseError(f"{p} is not UTF-8 text", [Problem(where, "not a UTF-8 CSV", "save the trace as UTF-8 CSV")])
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise CaseError(f"{p} is not a readable CSV", [Problem(where, str(exc).strip()[:160],
                            "a header line isl,osl[,arrival_s][,cached_isl] then one request per line")])
    df.columns = [str(c).strip().lower() for c in df.columns]
    return check_trace(df, f"{where} ({p.name})")


def check_trace(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Column names and values of a trace; every problem at once."""
    problems = []
    unknown = [c for c in df.columns if c not in TRACE_COLUMNS]
    for c in unknown:
        from .errors import did_you_mean

        problems.append(Problem(f"{where}: column '{c}'", "unknown column",
                                did_you_mean(c, TRACE_COLUMNS) or f"columns: {', '.join(TRACE_COLUMNS)}"))
    for c in REQUIRED_COLUMNS:
        if c not in df.columns:
            problems.append(Problem(f"{where}: column '{c}'", "missing", "give isl and osl per request (tokens)"))
    if problems:
        raise CaseError(f"{where}: {len(problems)} problem(s) in the trace", problems)
    if not len(df):
        raise CaseError(f"{where}: the trace has no rows", [Problem(where, "no requests", "give one row per request")])
    out = {}
    for c in [c for c in ("isl", "osl", "cached_isl", "arrival_s") if c in df.columns]:
        v = pd.to_numeric(df[c], errors="coerce")
        bad = ~np.isfinite(v.to_numpy(float))
        lo = 0 if c in ("cached_isl", "arrival_s") else 1
        bad |= v.to_numpy(float) < lo
        if c != "arrival_s":
            bad |= ~np.isclose(v.fillna(0.5).to_numpy(float) % 1, 0)
        if bad.any():
            row = int(np.argmax(bad))
            problems.append(Problem(f"{where}: column '{c}'", f"{int(bad.sum())} bad value(s), first on data row "
                                    f"{row + 1}: {df[c].iloc[row]!r}",
                                    f"give whole numbers ≥ {lo}" if c != "arrival_s" else "give seconds ≥ 0"))
        out[c] = v
    if problems:
        raise CaseError(f"{where}: {len(problems)} problem(s) in the trace", problems)
    res = pd.DataFrame({"isl": out["isl"].astype(int), "osl": out["osl"].astype(int),
                        "cached_isl": out["cached_isl"].astype(int) if "cached_isl" in out else 0, "weight": 1.0})
    if "arrival_s" in out:
        res["arrival_s"] = out["arrival_s"].astype(float)
    over = res["cached_isl"] >= res["isl"]
    if over.any():
        row = int(np.argmax(over.to_numpy()))
        raise CaseError(f"{where}: cached_isl must be below isl", [Problem(f"{where}: column 'cached_isl'",
                        f"{int(over.sum())} row(s) cache the whole prompt, first on data row {row + 1}",
                        "cached_isl counts prompt tokens already cached (< isl)")])
    return res


def check_lengths(entries, where: str) -> list[Problem]:
    """A histogram [[classes.lengths]]: isl, osl, share (of requests) per entry, shares summing to 1."""
    from .catalog import check_value

    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        return [Problem(where, "must be a list of tables", "[[classes.lengths]] isl = 1000, osl = 200, share = 0.6")]
    problems = []
    for i, e in enumerate(entries):
        for key in e:
            if key not in LENGTH_FIELDS:
                from .errors import did_you_mean

                problems.append(Problem(f"{where}.{i}.{key}", "unknown field",
                                        did_you_mean(key, LENGTH_FIELDS) or f"fields: {', '.join(LENGTH_FIELDS)}"))
        for key, kind, minimum in (("isl", "int", ">0"), ("osl", "int", ">0"), ("share", "float", ">0"),
                                   ("cached_isl", "int", ">=0")):
            if key not in e:
                if key != "cached_isl":
                    problems.append(Problem(f"{where}.{i}.{key}", "missing", "each entry needs isl, osl and share"))
                continue
            why = check_value(e[key], kind, minimum)
            if why:
                problems.append(Problem(f"{where}.{i}.{key}", why))
        ci, isl = e.get("cached_isl", 0), e.get("isl")
        if isinstance(ci, int) and isinstance(isl, int) and ci >= isl > 0:
            problems.append(Problem(f"{where}.{i}.cached_isl", f"must be below isl ({isl}), got {ci}"))
    if not problems:
        total = sum(float(e["share"]) for e in entries)
        if abs(total - 1) > SHARE_TOL:
            problems.append(Problem(f"{where}.share", f"shares sum to {total:.6g}, not 1 (each is a share of requests)",
                                    f"scale them so they sum to 1 (divide each by {total:.6g})"))
    return problems


def lengths_frame(entries) -> pd.DataFrame:
    return pd.DataFrame({"isl": [int(e["isl"]) for e in entries], "osl": [int(e["osl"]) for e in entries],
                         "cached_isl": [int(e.get("cached_isl", 0)) for e in entries],
                         "weight": [float(e["share"]) for e in entries]})


# ---- bucketing ----------------------------------------------------------------------------------

def _stats(isl, osl, cached, w) -> np.ndarray:
    """Sufficient statistics of a set of requests: Σw, Σw·isl, Σw·osl, Σw·osl·(isl+osl),
    Σw·osl·(isl+osl/2), Σw·cached; min/max are kept beside them."""
    return np.array([w.sum(), (w * isl).sum(), (w * osl).sum(), (w * osl * (isl + osl)).sum(),
                     (w * osl * (isl + osl / 2)).sum(), (w * cached).sum(), (w * isl * isl).sum()])


def _errors(s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kv_error, speed_error, prefill_error) of representing each row of stats by its mean pair."""
    s = np.atleast_2d(s)
    W, I, O, P, C, Q = s[:, 0], s[:, 1], s[:, 2], s[:, 3], s[:, 4], s[:, 6]
    isl, osl = I / W, O / W
    k_true, c_true, i_true = P / O, C / O, Q / I
    return (np.abs(isl + osl - k_true) / k_true, np.abs(isl + osl / 2 - c_true) / c_true,
            np.abs(isl - i_true) / i_true)


def bucketize(points: pd.DataFrame, max_buckets: int = DEFAULT_MAX_BUCKETS,
              tolerance: float = DEFAULT_TOLERANCE) -> Bucketing:
    """Greedy merging of neighbouring half-octave ISL × OSL cells (module doc)."""
    isl = points["isl"].to_numpy(float)
    osl = points["osl"].to_numpy(float)
    cached = points["cached_isl"].to_numpy(float) if "cached_isl" in points else np.zeros_like(isl)
    w = points["weight"].to_numpy(float) if "weight" in points else np.ones_like(isl)
    ci = np.floor(2 * np.log2(isl) + 1e-9).astype(int)
    co = np.floor(2 * np.log2(osl) + 1e-9).astype(int)
    cells = sorted(set(zip(ci.tolist(), co.tolist())))
    index = {c: k for k, c in enumerate(cells)}
    member = np.array([index[(a, b)] for a, b in zip(ci.tolist(), co.tolist())])
    n = len(cells)
    stats = np.array([_stats(isl[member == k], osl[member == k], cached[member == k], w[member == k])
                      for k in range(n)])
    lo_i = np.array([isl[member == k].min() for k in range(n)])
    hi_i = np.array([isl[member == k].max() for k in range(n)])
    lo_o = np.array([osl[member == k].min() for k in range(n)])
    hi_o = np.array([osl[member == k].max() for k in range(n)])
    alive = np.ones(n, dtype=bool)
    own = np.max(np.stack(_errors(stats)), axis=0)
    tot_o, tot_i = stats[:, 2].sum(), stats[:, 1].sum()

    def weight(s):
        return s[:, 2] / tot_o + s[:, 1] / tot_i

    def pair_row(i):
        """Error and added weighted error of merging bucket i with each bucket."""
        merged = stats[i] + stats
        err = np.max(np.stack(_errors(merged)), axis=0)
        cost = weight(merged) * err - weight(stats[i:i + 1]) * own[i] - weight(stats) * own
        cost[~alive] = np.inf
        cost[i] = np.inf
        return err, cost

    err_m = np.full((n, n), np.inf)
    cost_m = np.full((n, n), np.inf)
    for i in range(n):
        err_m[i], cost_m[i] = pair_row(i)
    while alive.sum() > 1:
        # Ward-like: the merge that adds least token-weighted error (a bucket's error matters in
        # proportion to the output and input tokens it carries), once few enough only under the bound
        cost = cost_m if alive.sum() > max_buckets else np.where(err_m <= tolerance, cost_m, np.inf)
        flat = int(np.argmin(cost))
        i, j = divmod(flat, n)
        if not np.isfinite(cost[i, j]):
            break
        stats[i] = stats[i] + stats[j]
        own[i] = err_m[i, j]
        lo_i[i], hi_i[i] = min(lo_i[i], lo_i[j]), max(hi_i[i], hi_i[j])
        lo_o[i], hi_o[i] = min(lo_o[i], lo_o[j]), max(hi_o[i], hi_o[j])
        alive[j] = False
        cost_m[j, :] = cost_m[:, j] = np.inf
        err_m[i], cost_m[i] = pair_row(i)
        err_m[:, i], cost_m[:, i] = err_m[i], cost_m[i]
    ids = np.nonzero(alive)[0]
    total_w, total_o = stats[ids, 0].sum(), stats[ids, 2].sum()
    buckets = [_bucket(stats[k], lo_i[k], hi_i[k], lo_o[k], hi_o[k], total_w, total_o) for k in ids]
    buckets.sort(key=lambda b: (b.isl + b.osl, b.isl))
    whole = _stats(isl, osl, cached, w)
    mean = _bucket(whole, isl.min(), isl.max(), osl.min(), osl.max(), whole[0], whole[2])
    return Bucketing(buckets=tuple(buckets), max_buckets=max_buckets, tolerance=tolerance, rows=len(points),
                     mean_pair=mean)


def _bucket(s, lo_i, hi_i, lo_o, hi_o, total_w, total_o) -> Bucket:
    kv, sp, pre = _errors(s)
    return Bucket(isl=s[1] / s[0], osl=s[2] / s[0], cached_isl=s[5] / s[0], isl_min=int(lo_i), isl_max=int(hi_i),
                  osl_min=int(lo_o), osl_max=int(hi_o), requests=float(s[0]), request_share=float(s[0] / total_w),
                  token_share=float(s[2] / total_o), kv_error=float(kv[0]), speed_error=float(sp[0]),
                  prefill_error=float(pre[0]))


# ---- percentiles --------------------------------------------------------------------------------

def required_buckets(values, request_shares, percentile: float) -> list[bool]:
    """Which buckets must meet a target that holds for `percentile` % of requests: buckets sorted by
    the length that drives the metric (`values`); the shortest ones whose requests reach the
    percentile must meet it (the one that straddles it included), those wholly above may not."""
    order = np.argsort(values, kind="stable")
    need = [False] * len(values)
    before = 0.0
    for k in order:
        need[k] = before < percentile / 100 - 1e-12
        before += request_shares[k]
    return need


# ---- the error of one mean pair, with the performance model ------------------------------------

def mixture_comparison(bucketing: Bucketing, model, chip, precision: str = "fp8", batch: int | None = None) -> dict:
    """KV bytes per running sequence and decode tokens/s/chip on a reference deployment, for the one
    mean pair vs the bucket mixture. The deployment: the fewest chips (a power of two, tensor
    parallel) that hold the weights; each pair at `batch`, or the largest batch that fits (≤ 1024).

    Mixture KV per running sequence = Σ_b τ_b·KV(ISL̄_b + OSL̄_b) (running sequences of bucket b are in
    proportion to its output tokens τ_b); mixture tokens/s/chip = Σ τ_b / Σ (τ_b / tput_b), the rate
    at which the deployment produces the mixture's tokens when each bucket runs at its own batch."""
    from . import performance as pf

    c = pf.ChipSI.of(chip, precision)

    def at(isl, osl, cached):
        w = pf.Workload(model, precision, max(1, round(isl)), max(1, round(osl)), min(round(cached), round(isl) - 1))
        n_min = pf.chips_to_hold(w.weight_bytes(), c)
        n = 2 ** math.ceil(math.log2(n_min))
        probe = pf.decode(w, c, n, None, None, 1)
        b = batch or int(min(1024, max(0, float(probe["max_batch"]))))
        if b < 1:
            return {"kv_bytes_per_seq": float(w.kv_bytes_per_seq()), "chips": n, "batch": 0,
                    "tok_s_per_chip": 0.0, "speed_tok_s_user": 0.0}
        d = pf.decode(w, c, n, None, None, b)
        ok = bool(d["fits"])
        return {"kv_bytes_per_seq": float(w.kv_bytes_per_seq()), "chips": n, "batch": b,
                "tok_s_per_chip": float(d["throughput_tok_s"]) / n if ok else 0.0,
                "speed_tok_s_user": float(d["speed_tok_s_user"]) if ok else 0.0}

    m = bucketing.mean_pair
    mean = at(m.isl, m.osl, m.cached_isl)
    per = [at(b.isl, b.osl, b.cached_isl) for b in bucketing.buckets]
    tau = np.array([b.token_share for b in bucketing.buckets])
    kv_mix = float(sum(t * r["kv_bytes_per_seq"] for t, r in zip(tau, per)))
    rates = np.array([r["tok_s_per_chip"] for r in per])
    tput_mix = float(tau.sum() / (tau / rates).sum()) if (rates > 0).all() else 0.0
    return {"mean_pair": mean, "buckets": per,
            "mixture": {"kv_bytes_per_seq": kv_mix, "tok_s_per_chip": tput_mix},
            "kv_error": (mean["kv_bytes_per_seq"] - kv_mix) / kv_mix if kv_mix else None,
            "tok_s_error": (mean["tok_s_per_chip"] - tput_mix) / tput_mix if tput_mix else None}


# ---- `fleet workload` ---------------------------------------------------------------------------

def workload_report(path: str, max_buckets: int = DEFAULT_MAX_BUCKETS, tolerance: float = DEFAULT_TOLERANCE,
                    chip: str = "b200", model: str = "llama-3.1-70b", precision: str = "fp8",
                    batch: int | None = None, catalogs=()) -> dict:
    """What `fleet workload TRACE` prints: the buckets and the error of one mean pair instead."""
    from .catalog import load_catalog

    if max_buckets < 1:
        raise CaseError("--buckets must be at least 1", [Problem("--buckets", f"got {max_buckets}", "give 1 to 64")])
    points = load_trace(path, "TRACE")
    b = bucketize(points, max_buckets, tolerance)
    cat = load_catalog(list(catalogs))
    chip_id, model_id = cat.resolve_chip(chip), cat.resolve_model(model)
    if not cat.chips[chip_id].supports(precision):
        raise CaseError(f"{chip_id} does not run {precision}", [Problem("--precision", precision, "pick bf16, fp8 or fp4")])
    cmp = mixture_comparison(b, cat.models[model_id], cat.chips[chip_id], precision, batch)
    rows = []
    for name, k, ref in zip(b.labels("bucket"), b.buckets, cmp["buckets"]):
        rows.append({"bucket": name.removeprefix("bucket"), "isl_min": k.isl_min, "isl_max": k.isl_max,
                     "osl_min": k.osl_min, "osl_max": k.osl_max, "isl_mean": k.isl, "osl_mean": k.osl,
                     "cached_isl_mean": k.cached_isl, "request_share": k.request_share, "token_share": k.token_share,
                     "kv_error": k.kv_error, "speed_error": k.speed_error, "prefill_error": k.prefill_error,
                     "ref_batch": ref["batch"], "ref_kv_gb_per_seq": ref["kv_bytes_per_seq"] / 1e9,
                     "ref_tok_s_per_chip": ref["tok_s_per_chip"]})
    m = b.mean_pair
    return {"trace": str(path), "rows": b.rows, "max_buckets": max_buckets, "tolerance": tolerance,
            "buckets": rows, "max_bucket_error": b.max_error,
            "mean_pair": {"isl_mean": m.isl, "osl_mean": m.osl, "cached_isl_mean": m.cached_isl,
                          "error": m.error, "kv_error": m.kv_error, "speed_error": m.speed_error,
                          "prefill_error": m.prefill_error},
            "reference": {"chip": chip_id, "model": model_id, "precision": precision,
                          "chips": cmp["mean_pair"]["chips"], "batch": batch or "largest that fits (≤ 1024)",
                          "mean_pair": {"batch": cmp["mean_pair"]["batch"],
                                        "kv_gb_per_seq": cmp["mean_pair"]["kv_bytes_per_seq"] / 1e9,
                                        "tok_s_per_chip": cmp["mean_pair"]["tok_s_per_chip"]},
                          "mixture": {"kv_gb_per_seq": cmp["mixture"]["kv_bytes_per_seq"] / 1e9,
                                      "tok_s_per_chip": cmp["mixture"]["tok_s_per_chip"]},
                          "kv_error": cmp["kv_error"], "tok_s_error": cmp["tok_s_error"]},
            "definitions": {
                "request_share": "share of the trace's requests in the bucket",
                "token_share": "share of its output tokens: a bucket's share of a class's demand (tok/s)",
                "kv_error": "|ISL̄+OSL̄ − K*|/K*, K* = Σ osl·(isl+osl)/Σ osl: KV a running sequence's slot holds",
                "speed_error": "|ISL̄+OSL̄/2 − C*|/C*, C* = Σ osl·(isl+osl/2)/Σ osl: context a decode step reads",
                "prefill_error": "|ISL̄ − I*|/I*, I* = Σ isl²/Σ isl: the prompt an input token belongs to",
                "mixture kv_gb_per_seq": "Σ_b token_share_b · KV(ISL̄_b + OSL̄_b): per running sequence",
                "mixture tok_s_per_chip": "Σ τ_b / Σ (τ_b / tput_b): each bucket at its own largest batch that fits",
            }}


def workload_text(r: dict) -> str:
    from .reports import text_table

    ref, m = r["reference"], r["mean_pair"]
    rows = [{"bucket": b["bucket"], "ISL range": f"{b['isl_min']:,}-{b['isl_max']:,}",
             "OSL range": f"{b['osl_min']:,}-{b['osl_max']:,}", "mean ISL": round(b["isl_mean"]),
             "mean OSL": round(b["osl_mean"]), "cached": round(b["cached_isl_mean"]),
             "requests": f"{b['request_share']:.1%}", "out tokens": f"{b['token_share']:.1%}",
             "error": f"{max(b['kv_error'], b['speed_error'], b['prefill_error']):.1%}",
             "KV GB/seq": round(b["ref_kv_gb_per_seq"], 2), "batch": b["ref_batch"],
             "tok/s/chip": round(b["ref_tok_s_per_chip"])} for b in r["buckets"]]
    mp, mx = ref["mean_pair"], ref["mixture"]

    def pct(x):
        return "-" if x is None else f"{x:+.0%}"

    lines = [f"{r['trace']}: {r['rows']:,} requests in {len(r['buckets'])} length buckets "
             f"(at most {r['max_buckets']}; adjacent buckets merge while the error stays within {r['tolerance']:.0%}, "
             f"and beyond it only as far as the {r['max_buckets']}-bucket cap needs)", "",
             text_table(rows), "",
             f"Bucketing error (largest over buckets; KV, decode-context and prefill proxies): {r['max_bucket_error']:.1%}; "
             f"one mean pair (ISL {m['isl_mean']:,.0f}, OSL {m['osl_mean']:,.0f}) instead: {m['error']:.1%} "
             f"(KV {m['kv_error']:.1%}, decode {m['speed_error']:.1%}, prefill {m['prefill_error']:.1%})", "",
             f"On {ref['chips']} × {ref['chip']} running {ref['model']} ({ref['precision']}), each pair at the largest "
             f"batch that fits (≤ 1024)" if not isinstance(ref["batch"], int) else
             f"On {ref['chips']} × {ref['chip']} running {ref['model']} ({ref['precision']}) at batch {ref['batch']}",
             f"  KV per running sequence: mean pair {mp['kv_gb_per_seq']:.2f} GB, bucket mixture {mx['kv_gb_per_seq']:.2f} GB "
             f"(mean pair {pct(ref['kv_error'])})",
             f"  decode tok/s/chip:       mean pair {mp['tok_s_per_chip']:,.0f} (batch {mp['batch']}), "
             f"bucket mixture {mx['tok_s_per_chip']:,.0f} (mean pair {pct(ref['tok_s_error'])})"]
    return "\n".join(lines) + "\n"


__all__ = ["Bucket", "Bucketing", "bucketize", "load_trace", "check_lengths", "lengths_frame", "required_buckets",
           "mixture_comparison", "DEFAULT_MAX_BUCKETS", "DEFAULT_TOLERANCE"]


SECONDS_PER_HOUR = 3600.0
DAY_S = 24 * SECONDS_PER_HOUR


def hourly_profile(df: pd.DataFrame, where: str) -> tuple[float, ...]:
    """24 hourly demand factors from a trace's arrivals: the output tokens arriving in each hour of the
    day (arrival_s counts seconds from 00:00 of the trace's first day; hours seen on several days are
    averaged over them), over the mean hour — so the factors average 1 and demand_tok_s is the day's
    mean rate. The trace must span at least a day."""
    if "arrival_s" not in df.columns:
        raise CaseError(f"{where}: no arrival_s column", [Problem(where, "a demand profile from a trace needs arrival "
                        "times", "add an arrival_s column (seconds from 00:00 of the first day)")])
    t = df["arrival_s"].to_numpy(float)
    span = float(t.max() - t.min()) if len(t) else 0.0
    if span < DAY_S - SECONDS_PER_HOUR:
        raise CaseError(f"{where}: the arrivals span {span / SECONDS_PER_HOUR:.2g} h", [Problem(
            where, f"arrivals span {span / SECONDS_PER_HOUR:.3g} hours; a daily profile needs at least 23",
            "give a trace of a day or more, or 24 factors: demand_profile = [0.4, 0.35, …]")])
    slot = np.floor(t / SECONDS_PER_HOUR).astype(int)
    tokens = np.bincount(slot % 24, weights=df["osl"].to_numpy(float), minlength=24)
    days = np.array([len(np.unique(slot[slot % 24 == h] // 24)) or 1 for h in range(24)], dtype=float)
    rate = tokens / days
    if rate.mean() <= 0:
        raise CaseError(f"{where}: no output tokens", [Problem(where, "every request has osl 0", "give output lengths")])
    return tuple(float(v) for v in rate / rate.mean())
