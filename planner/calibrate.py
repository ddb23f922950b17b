"""`fleet calibrate`: fit per-chip performance terms to published measurements.

Points come from a CSV shaped like shared/data/calibration-points.csv. Each usable point becomes
one of three kinds:
- single:   per-user speed of a single stream (vendor speed claims, Artificial Analysis);
            predicted at batch 1 on the fewest chips that hold the model;
- frontier: per-user speed v* with per-chip throughput T* (MLPerf Server/Interactive, InferenceX);
            predicted T = max over chip counts n and batches B of B·v/n with v ≥ v* (aggregated
            serving, as these benchmarks run);
- offline:  per-chip throughput with no latency bound (MLPerf Offline, max-throughput tables).
The fit is a bounded coordinate search on log-scaled terms minimising the mean squared log error
(Huber beyond a factor of 2, so one odd point cannot dominate) — numpy only, robust to the max() in the
frontier prediction.

InferenceX per-GPU throughput counts input + output tokens: read as output tokens, its DeepSeek-R1
8k/1k B200 point (5,857 tok/s/GPU at 23 tok/s/user) would need ~4.9 PFLOPS of prefill + decode per
GPU, more than the B200's dense FP8 peak (4.5 PFLOPS); so output = total × OSL / (ISL + OSL).
Single-stream vendor claims are predicted on max(fewest chips that hold the model, one system),
as vendors serve from whole systems (SambaNova: a 16-socket rack). Terms whose catalog confidence is vendor-spec (e.g. Groq's published hop
latency) are never fitted. Chips with no points get the median of the fitted chips with the same kind of memory
(HBM/GDDR or on-chip SRAM/MRAM).
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import performance as pf
from .catalog import Catalog
from .domain import Chip
from .errors import PlannerError, Problem

TERMS = ("bw_eff", "flop_eff", "t_layer_us", "hop_latency_us")
BOUNDS = {"bw_eff": (0.3, 0.95), "flop_eff": (0.15, 0.9), "t_layer_us": (0.5, 100.0), "hop_latency_us": (0.1, 30.0)}
BATCHES = np.unique(np.round(np.logspace(0, 12, 37, base=2)).astype(int))
HUBER = math.log(2.0)
PRIOR_WEIGHT = 0.02

MODEL_RULES = [  # (regex on the point's model text, catalog model, note)
    (r"llama2-70b|llama 2 70b", "llama-3.1-70b", "Llama 2 70B has the Llama 3 70B layer shapes (vocab 32k vs 128k)"),
    (r"llama 3\.3 70b", "llama-3.1-70b", "same architecture"),
    (r"llama 3\.1 405b", "llama-3.1-405b", ""),
    (r"llama 3(\.1)? 8b", "llama-3.1-8b", ""),
    (r"^deepseek-r1", "deepseek-r1", ""),
    (r"gpt-oss-120b(?! \(eagle)", "gpt-oss-120b", ""),
    (r"qwen3-235b", "qwen3-235b-a22b", ""),
    (r"qwen3-32b", "qwen3-32b", ""),
    (r"maverick", "llama-4-maverick", ""),
]
CHIP_RULES = [  # (regex on the hardware text, catalog chip)
    (r"h100-sxm", "h100-sxm"), (r"^nvidia h200-sxm", "h200-sxm"), (r"^gb300", "gb300"), (r"nvidia gb300$", "gb300"),
    (r"^gb200", "gb200"), (r"^nvidia gb200$", "gb200"), (r"b200-sxm|^b200$|dgx b200", "b200"),
    (r"mi300x-nps1|mi300x 192gb hbm3$", "mi300x"), (r"mi355x", "mi355x"), (r"^groq lpu", "groq-lpu-v1"),
    (r"cerebras cs-3", "cerebras-wse3"), (r"sn40l", "sn40l"),
]
ASSUMED_ISL = {"mlperf:llama-3.1-70b": 300}
"""MLPerf Llama 2 70B (OpenOrca) input length is not tabulated in the shared data: ~300 assumed."""


@dataclass(frozen=True)
class CalPoint:
    id: str
    kind: str  # single | frontier | offline
    model: str
    chip: str
    precision: str
    isl: int
    osl: int
    chips: int | None
    speed: float | None
    tput_per_chip: float | None
    note: str = ""

    @property
    def measured(self) -> float:
        return self.speed if self.kind == "single" else self.tput_per_chip

    @property
    def metric(self) -> str:
        return "tok_s_user" if self.kind == "single" else "tok_s_per_chip"


def _num(text: str) -> float | None:
    m = re.search(r"[\d][\d,]*\.?\d*", text or "")
    if not m:
        return None
    value = float(m.group(0).replace(",", ""))
    tail = (text or "")[m.end():m.end() + 1].lower()
    return value * 1000 if tail == "k" else value


def _match(rules, text: str):
    t = text.strip().lower()
    for rule in rules:
        if re.search(rule[0], t):
            return rule
    return None


def load_points(path: str | Path, catalog: Catalog) -> tuple[list[CalPoint], list[tuple[str, str]]]:
    """Usable points and (id, reason) for every excluded one."""
    try:
        with open(path, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise PlannerError(f"cannot read {path}", [Problem(str(path), str(exc), "give a readable CSV")])
    need = {"id", "kind", "model", "precision", "hardware", "chips", "isl", "osl", "per_user_tok_s",
            "throughput_per_chip_tok_s", "throughput_total_tok_s", "concurrency_or_batch", "system_config"}
    if rows and not need <= set(rows[0]):
        missing = ", ".join(sorted(need - set(rows[0])))
        raise PlannerError(f"{path} lacks columns", [Problem(str(path), f"missing columns: {missing}",
                           "use the columns of shared/data/calibration-points.csv")])
    points, excluded = [], []
    for r in rows:
        pid = r["id"]
        text = " ".join(r[k] for k in ("model", "system_config", "precision", "id")).lower()
        if r["kind"] == "paper-model":
            excluded.append((pid, "paper model, not a measurement"))
            continue
        if any(s in text for s in ("eagle", "mtp", "spec-decode")) and "no spec-decode" not in text:
            excluded.append((pid, "speculative decoding (accepted tokens per step unknown)"))
            continue
        mrule, crule = _match(MODEL_RULES, r["model"]), _match(CHIP_RULES, r["hardware"])
        if mrule is None or crule is None:
            excluded.append((pid, f"{'model' if mrule is None else 'hardware'} not in the catalog"))
            continue
        model, chip_id = mrule[1], crule[1]
        chip = catalog.chips[chip_id]
        prec = _precision(r["precision"], chip)
        if prec is None or not chip.supports(prec):
            excluded.append((pid, f"precision '{r['precision']}' not runnable on {chip_id}"))
            continue
        speed, per_chip = _num(r["per_user_tok_s"]), _num(r["throughput_per_chip_tok_s"])
        chips = _num(r["chips"])
        chips = int(chips) if chips and "normal" not in r["chips"] else None
        if per_chip is None and _num(r["throughput_total_tok_s"]) and chips:
            per_chip = _num(r["throughput_total_tok_s"]) / chips
        scenario = r["concurrency_or_batch"].lower()
        isl, osl = _num(r["isl"]), _num(r["osl"])
        if r["category"] == "mlperf":
            isl = ASSUMED_ISL.get(f"mlperf:{model}")
            osl = _num(r["osl"].split("sample")[-1]) if "sample" in r["osl"] else None
        if r["category"] == "inferencex" and per_chip:
            per_chip *= osl / (isl + osl)  # InferenceX counts input + output tokens per GPU (see module doc)
        if speed and per_chip:
            kind = "frontier"
        elif per_chip and ("offline" in scenario or "max-throughput" in scenario):
            kind = "offline"
        elif speed and not per_chip and not r["throughput_total_tok_s"]:
            kind, isl, osl = "single", isl or 1000, osl or 1000
        else:
            excluded.append((pid, "no usable speed/throughput pair"))
            continue
        if not isl or not osl:
            excluded.append((pid, "input/output lengths unknown"))
            continue
        points.append(CalPoint(pid, kind, model, chip_id, prec, int(isl), int(osl), chips, speed, per_chip,
                               mrule[2]))
    return points, excluded


def _precision(text: str, chip: Chip) -> str | None:
    t = text.lower()
    if "fp4" in t or "mxfp4" in t:
        return "fp4"
    if "fp8" in t or "8-bit" in t or "quantization" in t:
        return "fp8"
    if "16" in t:
        return "bf16"
    return "fp8" if chip.supports("fp8") else "bf16"


def predict(p: CalPoint, chip: Chip, catalog: Catalog) -> float:
    """The point's metric as the model predicts it with `chip`'s current terms."""
    w = pf.Workload(catalog.models[p.model], p.precision, p.isl, p.osl)
    c = pf.ChipSI.of(chip, p.precision)
    n_min = max(1, math.ceil(w.weight_bytes() / (c.mem_bytes * pf.USABLE_MEM_FRAC)))
    if p.kind == "single":
        return float(pf.aggregated(w, c, max(n_min, chip.chips_per_system), 1)["speed_tok_s_user"])
    top = p.chips or max(72, c.domain if c.domain <= 72 else 72)
    ns = np.array(sorted({n for n in (1, 2, 4, 8, 16, 32, 64, 72, top) if n_min <= n <= top} or {n_min}), float)
    n, b = np.meshgrid(ns, BATCHES.astype(float), indexing="ij")
    r = pf.aggregated(w, c, n, b)
    per_chip = r["throughput_tok_s"] / n
    ok = r["fits"].astype(bool)
    if p.kind == "frontier":
        fast = ok & (r["speed_tok_s_user"] >= p.speed)
        if not fast.any():  # cannot reach the speed: report the shortfall as the error
            best_speed = float(np.max(np.where(ok, r["speed_tok_s_user"], 0)))
            return p.tput_per_chip * best_speed / p.speed
        return float(np.max(np.where(fast, per_chip, 0)))
    return float(np.max(np.where(ok, per_chip, 0)))


def _loss(points, chip, catalog, prior: Chip | None = None) -> float:
    """Mean Huber loss of the log error (quadratic within a factor of 2, linear beyond), plus a
    small pull toward the prior terms so that terms the points cannot tell apart stay put."""
    r = np.abs([math.log(max(predict(p, chip, catalog), 1e-9) / p.measured) for p in points])
    huber = np.where(r <= HUBER, r ** 2, 2 * HUBER * r - HUBER ** 2)
    pull = 0.0 if prior is None else PRIOR_WEIGHT * sum(
        math.log(getattr(chip, t) / getattr(prior, t)) ** 2 for t in TERMS if getattr(prior, t) > 0)
    return (float(np.mean(huber)) if len(r) else 0.0) + pull


def fit_chip(points: list[CalPoint], chip: Chip, catalog: Catalog, rounds: int = 4) -> Chip:
    """Coordinate search over the chip's non-vendor terms; returns the chip with fitted terms."""
    free = [t for t in TERMS if chip.provenance.get(t) is None or chip.provenance[t].conf in ("default", "calibrated")]
    best, best_loss = chip, _loss(points, chip, catalog, chip)
    for step in [2.0, 1.5, 1.2, 1.08][:rounds]:
        for term in free:
            for factor in (1 / step, step):
                lo, hi = BOUNDS[term]
                value = min(max(getattr(best, term) * factor, lo), hi)
                cand = replace(best, **{term: value})
                loss = _loss(points, cand, catalog, chip)
                while loss < best_loss - 1e-9:
                    best, best_loss = cand, loss
                    value = min(max(value * factor, lo), hi)
                    cand = replace(best, **{term: value})
                    loss = _loss(points, cand, catalog, chip)
    return best


def fit(points: list[CalPoint], catalog: Catalog, chips: list[str] | None = None) -> dict[str, Chip]:
    """Fitted chips keyed by id (only chips with points, optionally limited to `chips`)."""
    by_chip: dict[str, list[CalPoint]] = {}
    for p in points:
        if chips is None or p.chip in chips:
            by_chip.setdefault(p.chip, []).append(p)
    return {cid: fit_chip(pts, catalog.chips[cid], catalog) for cid, pts in sorted(by_chip.items())}


MEMORY_GROUPS = {"gpu": "hbm", "asic": "hbm", "prefill": "hbm", "sram": "on-chip", "mram": "on-chip"}
"""Chips without points borrow from chips with the same kind of memory: off-chip HBM/GDDR, or
on-chip SRAM/MRAM (too few fitted chips per class for a class median to mean much)."""


def class_medians(fitted: dict[str, Chip], catalog: Catalog) -> dict[str, dict[str, float]]:
    """Median fitted terms per chip class (pooled by memory group), for chips with no points."""
    out: dict[str, dict[str, float]] = {}
    for cls, group in MEMORY_GROUPS.items():
        members = [c for c in fitted.values() if MEMORY_GROUPS[c.chip_class] == group]
        if members:
            out[cls] = {t: float(np.median([getattr(c, t) for c in members])) for t in TERMS}
    return out


def evaluate(points, catalog: Catalog, fitted: dict[str, Chip] | None = None) -> list[dict]:
    rows = []
    for p in points:
        base = catalog.chips[p.chip]
        pred0 = predict(p, base, catalog)
        chip = (fitted or {}).get(p.chip, base)
        pred = predict(p, chip, catalog)
        rows.append({"id": p.id, "kind": p.kind, "chip": p.chip, "model": p.model, "precision": p.precision,
                     "metric": p.metric, "measured": p.measured, "predicted_default": pred0,
                     "error_default": pred0 / p.measured - 1, "predicted": pred, "error": pred / p.measured - 1})
    return rows


def leave_one_model_out(points, catalog: Catalog) -> list[dict]:
    """Fit without each model's points, predict those points: the honest held-out error."""
    rows = []
    for model in sorted({p.model for p in points}):
        train = [p for p in points if p.model != model]
        test = [p for p in points if p.model == model]
        fitted = fit(train, catalog, sorted({p.chip for p in test}))
        rows += evaluate(test, catalog, fitted)
    return rows


def error_summary(rows: list[dict], key: str = "error") -> dict[str, float]:
    errs = np.abs([r[key] for r in rows]) if rows else np.array([np.nan])
    return {"points": len(rows), "median_abs_error": float(np.median(errs)),
            "p90_abs_error": float(np.percentile(errs, 90)), "worst_abs_error": float(np.max(errs))}


def overlay_toml(fitted: dict[str, Chip], medians: dict[str, dict[str, float]], catalog: Catalog,
                 points: list[CalPoint], csv_name: str) -> str:
    """A catalog overlay with the fitted terms, each crediting the calibration point ids."""
    lines = ["# Performance terms fitted by `fleet calibrate`.", "catalog_version = \"calibrated\"", "",
             "[sources]"]
    ids = {cid: sorted(p.id for p in points if p.chip == cid) for cid in fitted}
    for cid, pid_list in ids.items():
        cite = f"fleet calibrate on {csv_name}: " + ", ".join(pid_list[:40]) + (" …" if len(pid_list) > 40 else "")
        lines.append(f'calibration-{cid} = {{ cite = "{cite}", date = "{_today()}" }}')
    lines.append(f'calibration-class-median = {{ cite = "median of chips fitted by fleet calibrate on {csv_name}", date = "{_today()}" }}')
    for cid, chip in catalog.chips.items():
        if cid in fitted:
            terms, src, note = {t: getattr(fitted[cid], t) for t in TERMS}, f"calibration-{cid}", f"{len(ids[cid])} points"
        elif chip.chip_class in medians:
            group = MEMORY_GROUPS[chip.chip_class]
            terms, src, note = medians[chip.chip_class], "calibration-class-median", f"no points; median of fitted {group}-memory chips"
        else:
            continue
        terms = {t: v for t, v in terms.items()
                 if chip.provenance.get(t) is None or chip.provenance[t].conf in ("default", "calibrated")}
        if not terms:
            continue
        lines += ["", f"[chips.{cid}]"] + [f"{t} = {v:.4g}" for t, v in terms.items()]
        lines += [f"[chips.{cid}.provenance]"] + [
            f'{t} = {{ src = "{src}", conf = "calibrated", note = "{note}" }}' for t in terms]
    return "\n".join(lines) + "\n"


def _today() -> str:
    import datetime

    return datetime.date.today().isoformat()


def fold_into_catalog(chips_toml: str, overlay: str) -> str:
    """Rewrite a chips catalog's term values and provenance with an overlay's fitted terms
    (how the shipped catalogs/chips.toml gets its calibrated terms)."""
    import tomllib

    ov = tomllib.loads(overlay)
    out, section = [], None
    for line in chips_toml.splitlines():
        m = re.match(r"^\[chips\.([^\].]+)(\.provenance)?\]", line)
        if m:
            section = (m.group(1), bool(m.group(2)))
        if line.startswith("calibration-"):
            continue
        if line.startswith("perf-default = "):
            out.append(line)
            out += [f'{k} = {{ cite = "{v["cite"]}", date = "{v["date"]}" }}' for k, v in ov["sources"].items()]
            continue
        km = re.match(r"^(bw_eff|flop_eff|t_layer_us|hop_latency_us) = ", line)
        entry = ov["chips"].get(section[0]) if km and section else None
        if entry and km.group(1) in entry:
            term = km.group(1)
            if section[1]:
                p = entry["provenance"][term]
                line = f'{term} = {{ src = "{p["src"]}", conf = "calibrated", note = "{p["note"]}" }}'
            else:
                line = f"{term} = {entry[term]:.4g}"
        out.append(line)
    return "\n".join(out) + "\n"
