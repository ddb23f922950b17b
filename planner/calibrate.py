"""`fleet calibrate`: fit the behaviour groups' terms to published measurements.

Points come from a CSV shaped like shared/data/calibration-points.csv. Each usable point becomes
one of three kinds:
- single:   per-user speed of a single stream (vendor speed claims, Artificial Analysis);
            predicted at batch 1 on the chips the vendor served from (or the fewest that hold the model);
- frontier: per-user speed v* with per-chip throughput T* (MLPerf Server/Interactive, InferenceX);
            predicted T = max over runnable layouts (tp × pp, attention DP) and batches of B·v/n with
            v ≥ v* (aggregated serving, as these benchmarks run);
- offline:  per-chip throughput with no latency bound (MLPerf Offline, max-throughput tables).

What is fitted are the terms of the behaviour groups (catalogs/behaviour.toml), never a chip: per
architecture bw_eff, flop_eff and t_layer_us; per fabric the collective latency α (unless it is a
vendor figure); per serving stack the per-step overhead and, for stacks other than the reference
CUDA stack, a maturity factor. Architecture terms are shrunk toward their memory family (HBM vs
on-chip) so a group with few points stays near its peers, and a group without points inherits its
predecessor (`inherits`) or the family. The fit is scipy.optimize.least_squares on log terms with a
robust soft-L1 loss (a factor of 1.5 is where it turns linear) and bounds; points on one frontier
curve share a weight of one curve, so a curve of twelve points counts like a curve of three — the
fit is to curves, not to however many points a source happened to publish.

InferenceX per-GPU throughput counts input + output tokens: read as output tokens, its DeepSeek-R1
8k/1k B200 point (5,857 tok/s/GPU at 23 tok/s/user) would need ~4.9 PFLOPS of prefill + decode per
GPU, more than the B200's dense FP8 peak (4.5 PFLOPS); so output = total × OSL / (ISL + OSL).
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import performance as pf
from .catalog import Catalog
from .domain import Chip
from .errors import PlannerError, Problem
from .layouts import layouts

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
    lower_bound: bool = False  # a claim of "> X": only a prediction below X is an error
    concurrency: int | None = None  # requests in flight the measurement allowed (whole deployment)

    @property
    def measured(self) -> float:
        return self.speed if self.kind == "single" else self.tput_per_chip

    @property
    def metric(self) -> str:
        return "tok_s_user" if self.kind == "single" else "tok_s_per_chip"


def _num(text: str) -> float | None:
    """The first number in a cell ('2585.9 (derived…)', '>250', '1,038', '6k', '1e3', '-8'); None if none
    or not finite."""
    m = re.search(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?", text or "")
    if not m:
        return None
    try:
        value = float(m.group(0).replace(",", ""))
    except ValueError:
        return None
    tail = (text or "")[m.end():m.end() + 1].lower()
    value = value * 1000 if tail == "k" else value
    return value if math.isfinite(value) else None


def _concurrency(text: str) -> int | None:
    """Requests in flight a benchmark allowed, when the row states it: a bare number, 'max-concurrency
    N' or 'N requests sent at once' (never a latency figure from a scenario description)."""
    t = (text or "").strip().lower()
    for pattern in (r"^(\d+)$", r"max-concurrency (\d+)", r"^(\d+) requests"):
        m = re.search(pattern, t)
        if m:
            return int(m.group(1))
    return None


def _catalog_match(text: str, entries) -> tuple | None:
    """A catalog id, alias or display name given verbatim (users' own CSVs use them): (pattern, id, note)."""
    t = (text or "").strip().lower()
    for eid, e in entries.items():
        if t == eid or t in e.aliases or t == e.name.lower():
            return (t, eid, "")
    return None


def _match(rules, text: str):
    t = text.strip().lower()
    for rule in rules:
        if re.search(rule[0], t):
            return rule
    return None


def load_points(path: str | Path, catalog: Catalog) -> tuple[list[CalPoint], list[tuple[str, str]]]:
    """Usable points and (id, reason) for every excluded one."""
    from .inputs import read_text
    from .benchmarks import import_files, is_benchmark_file, write_points

    if is_benchmark_file(path):  # a benchmark tool's own file: imported on the fly (#25 item 1)
        text = write_points(import_files([path]), None)
    else:
        text = read_text(path, "a points CSV")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise PlannerError(f"{path} is not a readable CSV", [Problem(str(path), str(exc), "fix the CSV at that row")])
    for i, r in enumerate(rows):
        if None in r or any(v is None for v in r.values()):  # ragged: fewer or more fields than the header
            raise PlannerError(f"{path} has a ragged row", [Problem(f"{path}: row {i + 2}",
                               "its number of fields differs from the header's", "quote fields that contain commas")])
    need = {"id", "model", "precision", "hardware", "chips", "isl", "osl", "per_user_tok_s"}
    optional = ("kind", "category", "throughput_per_chip_tok_s", "throughput_total_tok_s", "concurrency_or_batch",
                "system_config")
    for r in rows:
        for k in optional:
            r.setdefault(k, "")
            r[k] = r[k] or ""
    if rows and not need <= set(rows[0]):
        missing = ", ".join(sorted(need - set(rows[0])))
        raise PlannerError(f"{path} lacks columns", [Problem(str(path), f"missing columns: {missing}",
                           "use the columns of shared/data/calibration-points.csv")])
    points, excluded = [], []
    seen_ids: set[str] = set()
    for r in rows:
        pid = (r["id"] or "").strip()
        if not pid:
            excluded.append(("(no id)", "row without an id"))
            continue
        if pid in seen_ids:
            excluded.append((pid, "duplicate id: only its first row is used"))
            continue
        seen_ids.add(pid)
        text = " ".join(r[k] for k in ("model", "system_config", "precision", "id")).lower()
        if r["kind"] == "paper-model":
            excluded.append((pid, "paper model, not a measurement"))
            continue
        if "open division" in (r["system_config"] + " " + r.get("notes", "")).lower():
            excluded.append((pid, "MLPerf open division: the model itself was altered (e.g. depth-pruned)"))
            continue
        if any(s in text for s in ("eagle", "mtp", "spec-decode")) and "no spec-decode" not in text:
            excluded.append((pid, "speculative decoding (accepted tokens per step unknown)"))
            continue
        mrule = _catalog_match(r["model"], catalog.models) or _match(MODEL_RULES, r["model"])
        crule = _catalog_match(r["hardware"], catalog.chips) or _match(CHIP_RULES, r["hardware"])
        if mrule is None or crule is None:
            excluded.append((pid, f"{'model' if mrule is None else 'hardware'} not in the catalog"))
            continue
        model, chip_id = mrule[1], crule[1]
        chip = catalog.chips[chip_id]
        prec = _precision(r["precision"], chip)
        if "using fp4" in (r.get("notes") or "").lower():
            prec = "fp4"  # the filed field reads fp16 + quantization; the submitter says FP4
        if prec is None or not chip.supports(prec):
            excluded.append((pid, f"precision '{r['precision']}' not runnable on {chip_id}"))
            continue
        speed, per_chip = _num(r["per_user_tok_s"]), _num(r["throughput_per_chip_tok_s"])
        chips = _num(r["chips"])
        bad = [f for f, v in (("per_user_tok_s", speed), ("throughput_per_chip_tok_s", per_chip),
                               ("chips", chips), ("isl", _num(r["isl"])), ("osl", _num(r["osl"])),
                               ("throughput_total_tok_s", _num(r["throughput_total_tok_s"])))
               if v is not None and (v <= 0 or v > 1e12)]
        if bad:
            excluded.append((pid, f"{', '.join(bad)} must be a positive number below 1e12"))
            continue
        if r["chips"].strip() and chips is None and "normal" not in r["chips"].lower():
            excluded.append((pid, f"chips '{r['chips'][:40]}' is not a number"))
            continue
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
        bound = kind == "single" and r["per_user_tok_s"].strip().startswith(">")
        points.append(CalPoint(pid, kind, model, chip_id, prec, int(isl), int(osl), chips, speed, per_chip,
                               mrule[2], bound, _concurrency(r["concurrency_or_batch"])))
    return points, excluded


def _precision(text: str, chip: Chip) -> str | None:
    from .units import canonical_precision

    t = text.lower().strip()
    if t in ("not stated", "n/a", "na", "unknown", "-", "?"):
        t = ""  # unstated: the chip's fastest 8-bit-or-wider precision, as before
    if canonical_precision(t):
        return canonical_precision(t)
    if "fp4" in t:
        return "fp4"
    if "no quantization" in t and "16" in t:
        return "bf16"
    if "fp8" in t or "8-bit" in t or "int8" in t or "quantization" in t:
        return "fp8"
    if "16" in t:
        return "bf16"
    if t:
        return None  # a precision we cannot read: excluded with its text as the reason
    return "fp8" if chip.supports("fp8") else "bf16"




# ---------------------------------------------------------------------------------------------
# Prediction

BATCHES = np.unique(np.round(np.concatenate([2 ** np.arange(0, 12), 1.5 * 2 ** np.arange(0, 11)]))).astype(float)
DEFAULT_TOP = 72
"""Widest group tried when a point does not say how many chips it used (one NVL72 rack)."""


@dataclass
class _Prepared:
    """What predicting one point needs that does not depend on the fitted terms."""

    point: CalPoint
    workload: pf.Workload
    lay: object  # Layouts


def _prepare(p: CalPoint, chip: Chip, catalog: Catalog) -> _Prepared:
    w = pf.Workload(catalog.models[p.model], p.precision, p.isl, p.osl)
    c = pf.ChipSI.of(chip, p.precision)
    n_min = pf.chips_to_hold(w.weight_bytes(), c)
    if p.kind == "single":  # vendors serve single streams from whole systems (SambaNova: a 16-socket rack)
        top = max(p.chips or 0, n_min, chip.chips_per_system)
    else:
        top = max(p.chips or DEFAULT_TOP, n_min)
    lay = layouts(w.model, n_min, c.domain, c.on_chip, max_chips=20000)
    keep = lay.n <= max(top, lay.n.min() if len(lay) else 0)
    return _Prepared(p, w, lay.select(keep))


def _predict_prepared(pp_: _Prepared, chip: Chip) -> float:
    p, w, lay = pp_.point, pp_.workload, pp_.lay
    if not len(lay):
        return 1e-9  # no runnable layout: the model cannot be served this way
    c = pf.ChipSI.of(chip, p.precision)
    best_fast, best_any, best_speed = 0.0, 0.0, 0.0
    for dp in (False, True):
        sel = lay.select(lay.attn_dp == dp)
        if not len(sel):
            continue
        batches = np.array([1.0]) if p.kind == "single" else _batches(p, sel.n)
        n, b = np.meshgrid(sel.n, batches, indexing="ij")
        r = pf.aggregated(w, c, n, b, pp=sel.pp[:, None], attn_dp=dp)
        ok = r["fits"].astype(bool)
        if not ok.any():
            continue
        speed = np.where(ok, r["speed_tok_s_user"], 0.0)
        per_chip = np.where(ok, r["throughput_tok_s"] / n, 0.0)
        best_speed = max(best_speed, float(speed.max()))
        best_any = max(best_any, float(per_chip.max()))
        if p.kind == "frontier":
            fast = speed >= p.speed
            if fast.any():
                best_fast = max(best_fast, float(np.where(fast, per_chip, 0.0).max()))
    if p.kind != "single" and not c.on_chip:
        fast, anyv = _disaggregated(p, w, c, lay)
        best_fast, best_any = max(best_fast, fast), max(best_any, anyv)
    if p.kind == "single":
        return best_speed
    if p.kind == "offline":
        return best_any
    if best_fast > 0:
        return best_fast
    # cannot reach the speed: the shortfall in speed is the error (continuous in the terms)
    return p.tput_per_chip * best_speed / p.speed if best_speed > 0 else 1e-9


PREFILL_UTILIZATION = 0.7
"""Busy share of a separate prefill pool in the disaggregated prediction (TTFT targets leave slack)."""


def _batches(p: CalPoint, ns) -> np.ndarray:
    """Batches to try; a stated concurrency caps them (its share for a group of the smallest size)."""
    if p.concurrency is None:
        return BATCHES
    cap = p.concurrency * float(np.min(ns)) / (p.chips or float(np.min(ns)))
    return np.unique(np.minimum(BATCHES, max(cap, 1.0)))


def _disaggregated(p: CalPoint, w: pf.Workload, c: pf.ChipSI, lay) -> tuple[float, float]:
    """Best per-chip output throughput (meeting v*, and unconstrained) when prompts run on a
    separate pool of the same chips: decode group n plus the prefill chips its request rate needs."""
    ns = np.unique(lay.n)
    pre = pf.prefill(w, c, ns)
    rate = float(np.max(np.where(pre["fits"], pre["tokens_per_s_per_chip"], 0.0)))  # prompt tokens/s per chip
    if rate <= 0:
        return 0.0, 0.0
    best_fast = best_any = 0.0
    for dp in (False, True):
        sel = lay.select(lay.attn_dp == dp)
        if not len(sel):
            continue
        n, b = np.meshgrid(sel.n, _batches(p, sel.n), indexing="ij")
        d = pf.decode(w, c, n, None, None, b, pp=sel.pp[:, None], attn_dp=dp)
        ok = d["fits"].astype(bool)
        out = d["throughput_tok_s"]
        prefill_chips = out / w.osl * w.new_isl / (rate * PREFILL_UTILIZATION)
        per_chip = np.where(ok, out / (n + prefill_chips), 0.0)
        best_any = max(best_any, float(per_chip.max()))
        if p.kind == "frontier":
            fast = ok & (d["speed_tok_s_user"] >= p.speed)
            if fast.any():
                best_fast = max(best_fast, float(np.where(fast, per_chip, 0.0).max()))
    return best_fast, best_any


def predict(p: CalPoint, chip: Chip, catalog: Catalog) -> float:
    """The point's metric as the model predicts it with `chip`'s current terms."""
    return _predict_prepared(_prepare(p, chip, catalog), chip)


# ---------------------------------------------------------------------------------------------
# The group fit

FAMILY = {"gpu": "hbm", "asic": "hbm", "prefill": "hbm", "sram": "on-chip", "mram": "on-chip"}
REFERENCE_SOFTWARE = "cuda"
"""The stack whose maturity is 1 by definition; other stacks' maturity is relative to it."""
BOUNDS = {"bw_eff": (0.2, 0.95), "flop_eff": (0.1, 0.9), "t_layer_us": (0.2, 300.0),
          "hop_latency_us": (0.1, 20.0), "t_step_us": (1.0, 20000.0), "maturity": (0.3, 1.0),
          "t_seq_us": (0.01, 200.0),
          "fp4_eff": (0.3, 1.0), "moe_layer_extra": (0.01, 5.0), "mla_layer_extra": (0.01, 5.0)}
SHRINK = 1.0
"""Weight of the pull of an arch term toward its family's (in units of one curve's squared log error
per unit squared log deviation): strong enough that an arch with one curve stays near its peers."""
PRIOR_PULL = 0.05
"""Weak pull of every term toward the catalog's prior, so terms the data cannot see stay put."""
LOSS_SCALE = math.log(1.5)

ARCH_TERMS = ("bw_eff", "flop_eff", "t_layer_us")
# hop_latency_us is bounded at 20 µs: measured NVLink all-reduces take 3–6 µs and an RCCL or NCCL
# collective over a full mesh or NIC stays within ~10–20 µs; beyond that α would stand in for a
# missing mechanism (a slow serving stack), which is the software group's maturity to carry.


@dataclass(frozen=True)
class Param:
    kind: str  # arch | fabric | software | family
    gid: str
    term: str
    prior: float


@dataclass
class Fit:
    """Fitted group terms with the points that support each group."""

    values: dict[tuple[str, str, str], float]  # (kind, gid, term) -> value
    points: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (kind, gid) -> point ids
    cost: float = float("nan")

    def chip(self, chip: Chip, catalog: Catalog) -> Chip:
        """`chip` with its groups' fitted terms (groups without points: inherited, see module doc)."""
        return _apply(chip, self.values, catalog)


def _group_term(values, catalog: Catalog, kind: str, gid: str, term: str, family: str | None = None):
    """A term's fitted value, else its predecessor's (inherits), else the family's, else None."""
    found = _group_source(values, catalog, kind, gid, term, family)
    return None if found is None else found[0]


def _group_source(values, catalog: Catalog, kind: str, gid: str, term: str, family: str | None = None):
    """(value, where it came from) for _group_term."""
    seen = set()
    g = gid
    while g and g not in seen:
        seen.add(g)
        if (kind, g, term) in values:
            return values[(kind, g, term)], f"{kind} {g}"
        group = catalog.groups.get(kind, {}).get(g, {})
        if g != gid and term in group and not _fittable(catalog, kind, g, term):
            return float(group[term]), f"{kind} {g} (measured, not fitted)"
        g = group.get("inherits")
    if family and ("family", family, term) in values:
        return values[("family", family, term)], f"the {family} family"
    return None


def _apply(chip: Chip, values, catalog: Catalog) -> Chip:
    fam = FAMILY[chip.chip_class]
    upd = {}
    if chip.arch:
        for t in ARCH_TERMS:
            if not _fittable(catalog, "arch", chip.arch, t):
                continue  # a measured or vendor figure: never replaced by a fit, its family's included
            v = _group_term(values, catalog, "arch", chip.arch, t, fam)
            if v is not None and not _chip_deviation(chip, t):
                upd[t] = v
    if chip.fabric and not _chip_deviation(chip, "hop_latency_us"):
        v = _group_term(values, catalog, "fabric", chip.fabric, "hop_latency_us")
        if v is not None:
            upd["hop_latency_us"] = v
    if chip.software:
        for t in ("t_step_us", "t_seq_us", "fp4_eff", "moe_layer_extra", "mla_layer_extra"):
            v = _group_term(values, catalog, "software", chip.software, t)
            if v is not None and not _chip_deviation(chip, t):
                upd[t] = v
        mat = values.get(("software", chip.software, "maturity"))
        if mat is not None:
            for t in ("bw_eff", "flop_eff", "kv_bw_eff"):
                base = upd.get(t, _catalog_arch_term(chip, catalog, t))
                if base:
                    upd[t] = base * mat
    for t in ("bw_eff", "flop_eff"):
        if t in upd:
            upd[t] = min(upd[t], BOUNDS[t][1])
    return replace(chip, **upd) if upd else chip


def _chip_deviation(chip: Chip, term: str) -> bool:
    """The chip sets this term itself (its provenance is not a group's): the fit leaves it alone."""
    p = chip.provenance.get(term)
    return p is not None and "group " not in (p.note or "")


def _catalog_arch_term(chip: Chip, catalog: Catalog, term: str) -> float:
    g = catalog.groups.get("arch", {}).get(chip.arch)
    return float(g.get(term, 0.0)) if g else float(getattr(chip, term))


def _fittable(catalog: Catalog, kind: str, gid: str, term: str) -> bool:
    g = catalog.groups.get(kind, {}).get(gid)
    if g is None:
        return False
    prov = g["provenance"].get(term)
    return prov is None or prov.conf in ("default", "calibrated", "estimate")


def _params(points: list[CalPoint], catalog: Catalog) -> list[Param]:
    out: dict[tuple, Param] = {}
    for p in points:
        chip = catalog.chips[p.chip]
        fam = FAMILY[chip.chip_class]
        if chip.arch:
            g = catalog.groups["arch"][chip.arch]
            for t in ARCH_TERMS:
                if _fittable(catalog, "arch", chip.arch, t):
                    out.setdefault(("arch", chip.arch, t), Param("arch", chip.arch, t, float(g[t])))
                    out.setdefault(("family", fam, t), Param("family", fam, t, float(g[t])))
        if chip.fabric and _fittable(catalog, "fabric", chip.fabric, "hop_latency_us"):
            g = catalog.groups["fabric"][chip.fabric]
            out.setdefault(("fabric", chip.fabric, "hop_latency_us"),
                           Param("fabric", chip.fabric, "hop_latency_us", float(g["hop_latency_us"])))
        if chip.software:
            g = catalog.groups["software"][chip.software]
            if _fittable(catalog, "software", chip.software, "t_step_us"):
                out.setdefault(("software", chip.software, "t_step_us"),
                               Param("software", chip.software, "t_step_us", max(float(g["t_step_us"]), 1.0)))
            if _fittable(catalog, "software", chip.software, "t_seq_us") and "t_seq_us" in g:
                out.setdefault(("software", chip.software, "t_seq_us"),
                               Param("software", chip.software, "t_seq_us", max(float(g["t_seq_us"]), 0.01)))
            m = catalog.models[p.model]
            for t, applies in (("moe_layer_extra", m.moe_layers > 0), ("mla_layer_extra", m.attention == "mla")):
                if applies and _fittable(catalog, "software", chip.software, t):
                    out.setdefault(("software", chip.software, t),
                                   Param("software", chip.software, t, max(float(g.get(t, 0.5)), 0.01)))
            if p.precision == "fp4" and _fittable(catalog, "software", chip.software, "fp4_eff"):
                out.setdefault(("software", chip.software, "fp4_eff"),
                               Param("software", chip.software, "fp4_eff", float(g.get("fp4_eff", 1.0))))
            if chip.software != REFERENCE_SOFTWARE and _fittable(catalog, "software", chip.software, "maturity"):
                out.setdefault(("software", chip.software, "maturity"),
                               Param("software", chip.software, "maturity", float(g["maturity"])))
    return sorted(out.values(), key=lambda q: (q.kind, q.gid, q.term))


def _curve_weights(points: list[CalPoint]) -> np.ndarray:
    """1/√(points on the curve): each curve's squared errors sum to one curve's worth."""
    key = lambda p: (p.chip, p.model, p.precision, p.isl, p.osl, p.kind, p.chips)  # noqa: E731
    counts: dict[tuple, int] = {}
    for p in points:
        counts[key(p)] = counts.get(key(p), 0) + 1
    return np.array([1 / math.sqrt(counts[key(p)]) for p in points])


NOT_WORSE = {"bw_eff": +1, "flop_eff": +1, "t_layer_us": -1}
"""A successor architecture is never less efficient than the one it inherits from: its deviation
from its predecessor is bounded to this sign (+1: ≥, −1: ≤), so spec dominance carries over."""


def _parents(params: list[Param], catalog: Catalog) -> list[int | None]:
    """For each arch param, the index of the same term of its nearest fitted predecessor."""
    index = {(q.kind, q.gid, q.term): i for i, q in enumerate(params)}
    out: list[int | None] = []
    for q in params:
        parent = None
        if q.kind == "arch":
            g = catalog.groups["arch"].get(q.gid, {}).get("inherits")
            seen = {q.gid}
            while g and g not in seen:
                if ("arch", g, q.term) in index:
                    parent = index[("arch", g, q.term)]
                    break
                seen.add(g)
                g = catalog.groups["arch"].get(g, {}).get("inherits")
        out.append(parent)
    return out


def fit_groups(points: list[CalPoint], catalog: Catalog, x0: dict | None = None, max_nfev: int = 60) -> Fit:
    """Least-squares fit of the group terms the points can see (see module doc).

    An arch with a fitted predecessor is fitted as the predecessor's value times a deviation of the
    sign NOT_WORSE allows, shrunk toward none; an arch without one is shrunk toward its family."""
    from scipy.optimize import least_squares

    params = _params(points, catalog)
    if not params or not points:
        return Fit({}, {})
    parents = _parents(params, catalog)
    order = _topological(parents)
    index = {(q.kind, q.gid, q.term): i for i, q in enumerate(params)}
    fam_of = {catalog.chips[p.chip].arch: FAMILY[catalog.chips[p.chip].chip_class] for p in points}
    log_lo = np.log([BOUNDS[q.term][0] for q in params])
    log_hi = np.log([BOUNDS[q.term][1] for q in params])
    prior_x = np.clip(np.log([q.prior for q in params]), log_lo + 1e-9, log_hi - 1e-9)
    init_x = np.array([math.log(x0[(q.kind, q.gid, q.term)]) if x0 and (q.kind, q.gid, q.term) in x0 else pr
                       for q, pr in zip(params, prior_x)])
    init_x = np.clip(init_x, log_lo + 1e-9, log_hi - 1e-9)
    lo, hi, start = log_lo.copy(), log_hi.copy(), init_x.copy()
    for i, par in enumerate(parents):
        if par is not None:  # z is the signed deviation from the predecessor
            span = log_hi[i] - log_lo[i]
            sign = NOT_WORSE[params[i].term]
            lo[i], hi[i] = (0.0, span) if sign > 0 else (-span, 0.0)
            start[i] = float(np.clip(init_x[i] - init_x[par], lo[i] + 1e-9, hi[i] - 1e-9))

    def x_of(z):
        x = np.array(z, dtype=float)
        for i in order:
            if parents[i] is not None:
                x[i] = z[i] + x[parents[i]]
        return x

    shrink_pairs = []  # (i, j): pull x_i toward x_j; j = None pulls the deviation z_i toward 0
    for i, q in enumerate(params):
        if q.kind != "arch":
            continue
        if parents[i] is not None:
            shrink_pairs.append((i, None))
        elif ("family", fam_of.get(q.gid, ""), q.term) in index:
            shrink_pairs.append((i, index[("family", fam_of[q.gid], q.term)]))
    prepared = [_prepare(p, catalog.chips[p.chip], catalog) for p in points]
    point_chips = sorted({p.chip for p in points})
    weights = _curve_weights(points)
    measured = np.log([p.measured for p in points])
    lower = np.array([p.lower_bound for p in points])

    def values_of(z):
        return {(q.kind, q.gid, q.term): float(math.exp(v)) for q, v in zip(params, x_of(z))}

    def residuals(z):
        x = x_of(z)
        vals = {(q.kind, q.gid, q.term): float(math.exp(v)) for q, v in zip(params, x)}
        chips = {cid: _apply(catalog.chips[cid], vals, catalog) for cid in point_chips}  # once per chip
        pred = np.array([_predict_prepared(pp_, chips[pp_.point.chip]) for pp_ in prepared])
        err = np.log(np.maximum(pred, 1e-12)) - measured
        err = np.where(lower, np.minimum(err, 0.0), err)
        r = weights * err / LOSS_SCALE
        shrink = [math.sqrt(SHRINK) * ((z[i]) if j is None else (x[i] - x[j])) / LOSS_SCALE
                  for i, j in shrink_pairs]
        pull = math.sqrt(PRIOR_PULL) * (x - prior_x) / LOSS_SCALE
        return np.concatenate([r, shrink, pull])

    sparsity = _jac_sparsity(points, params, parents, catalog, shrink_pairs)
    res = least_squares(residuals, start, bounds=(lo, hi), loss="soft_l1", f_scale=1.0, diff_step=0.02,
                        jac_sparsity=sparsity, max_nfev=max_nfev, x_scale=1.0)
    vals = values_of(res.x)
    support: dict[tuple[str, str], list[str]] = {}
    for p in points:
        chip = catalog.chips[p.chip]
        for kind, gid in (("arch", chip.arch), ("fabric", chip.fabric), ("software", chip.software)):
            if gid:
                support.setdefault((kind, gid), []).append(p.id)
    return Fit(vals, support, float(res.cost))


def _topological(parents: list[int | None]) -> list[int]:
    done: list[int] = []
    seen: set[int] = set()

    def visit(i):
        if i in seen:
            return
        seen.add(i)
        if parents[i] is not None:
            visit(parents[i])
        done.append(i)

    for i in range(len(parents)):
        visit(i)
    return done


def _jac_sparsity(points, params, parents, catalog, shrink_pairs):
    from scipy.sparse import lil_matrix

    def ancestors(i):
        out = {i}
        while parents[i] is not None and parents[i] not in out:
            i = parents[i]
            out.add(i)
        return out

    m = lil_matrix((len(points) + len(shrink_pairs) + len(params), len(params)), dtype=int)
    for r, p in enumerate(points):
        chip = catalog.chips[p.chip]
        fam = FAMILY[chip.chip_class]
        for i, q in enumerate(params):
            if (q.kind == "arch" and q.gid == chip.arch) or (q.kind == "fabric" and q.gid == chip.fabric) \
                    or (q.kind == "software" and q.gid == chip.software) or (q.kind == "family" and q.gid == fam):
                for a in ancestors(i):
                    m[r, a] = 1
    for k, (i, j) in enumerate(shrink_pairs):
        for a in ancestors(i) | (ancestors(j) if j is not None else set()):
            m[len(points) + k, a] = 1
    for i in range(len(params)):
        for a in ancestors(i):
            m[len(points) + len(shrink_pairs) + i, a] = 1
    return m


def fitted_catalog(fit: Fit, catalog: Catalog) -> Catalog:
    """The catalog with every chip's terms taken from the fit (inheritance applied)."""
    return replace(catalog, chips={cid: fit.chip(c, catalog) for cid, c in catalog.chips.items()})


# ---------------------------------------------------------------------------------------------
# Evaluation and hold-out

def evaluate(points, catalog: Catalog, fit: Fit | None = None, fold: str = "in-sample") -> list[dict]:
    rows = []
    for p in points:
        base = catalog.chips[p.chip]
        pred0 = predict(p, base, catalog)
        pred = predict(p, fit.chip(base, catalog), catalog) if fit else pred0
        chip = catalog.chips[p.chip]
        err0, err = pred0 / p.measured - 1, pred / p.measured - 1
        if p.lower_bound:  # "> X": meeting or beating X is no error
            err0, err = min(err0, 0.0), min(err, 0.0)
        rows.append({"id": p.id, "kind": p.kind, "chip": p.chip, "arch": chip.arch, "model": p.model,
                     "precision": p.precision, "isl": p.isl, "osl": p.osl, "metric": p.metric,
                     "measured": p.measured, "lower_bound": p.lower_bound, "predicted_catalog": pred0,
                     "error_catalog": err0, "predicted": pred, "error": err, "fold": fold})
    return rows


def leave_one_out(points, catalog: Catalog, by: str, full: Fit | None = None, max_nfev: int = 25) -> list[dict]:
    """Fit without each chip's (by='chip') or model's (by='model') points, predict those points."""
    rows = []
    for key in sorted({getattr(p, by) for p in points}):
        train = [p for p in points if getattr(p, by) != key]
        test = [p for p in points if getattr(p, by) == key]
        f = fit_groups(train, catalog, x0=full.values if full else None, max_nfev=max_nfev)
        rows += evaluate(test, catalog, f, fold=f"without {by} {key}")
    return rows


def error_summary(rows: list[dict], key: str = "error") -> dict[str, float]:
    """median, p90 and worst |error|, and how many points are off by more than 2× (either way)."""
    if not rows:
        return {"points": 0, "median_abs_error": float("nan"), "p90_abs_error": float("nan"),
                "worst_abs_error": float("nan"), "worst_ratio": float("nan"), "off_by_more_than_2x": 0}
    ratio = np.array([1 + r[key] for r in rows])
    errs = np.abs(ratio - 1)
    fold = np.maximum(ratio, 1 / np.maximum(ratio, 1e-12))
    return {"points": len(rows), "median_abs_error": float(np.median(errs)),
            "p90_abs_error": float(np.percentile(errs, 90)), "worst_abs_error": float(np.max(errs)),
            "worst_ratio": float(np.max(fold)), "off_by_more_than_2x": int(np.sum(fold > 2)),
            "off_by_more_than_2_5x": int(np.sum(fold > 2.5))}


def summary_by(rows: list[dict], key: str, err: str = "error") -> dict[str, dict]:
    return {k: error_summary(v, err) for k, v in sorted(_by(rows, key).items())}


def error_bands(rows: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Per arch group, p10 and p90 of measured/predicted on held-out points: multiply a prediction
    by these to get the range the measurements fell in."""
    out = {}
    for arch, rs in sorted(_by(rows, "arch").items()):
        ratio = np.array([1 / (1 + r["error"]) for r in rs])
        out[arch] = (float(np.percentile(ratio, 10)), float(np.percentile(ratio, 90)), len(rs))
    return out


def _by(rows, key):
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r[key], []).append(r)
    return out


# ---------------------------------------------------------------------------------------------
# Writing the fit

def overlay_dict(fit: Fit, catalog: Catalog, csv_name: str, bands: dict | None = None, inherit: bool = True) -> dict:
    """A catalog overlay with the fitted group terms, each crediting its points. `inherit` also
    writes the groups without points (their predecessor's fitted terms): right for the shipped
    catalog's own refit over every point, wrong for a user's few points, which support only the
    groups they measure."""
    today = _today()
    out: dict = {"catalog_version": "calibrated", "sources": {}}
    for (kind, gid), ids in sorted(fit.points.items()):
        terms = {t: v for (k, g, t), v in fit.values.items() if k == kind and g == gid}
        if not terms and not (bands and kind == "arch" and gid in bands):
            continue
        src = f"calibration-{kind}-{gid}"
        ids = sorted(set(ids))
        out["sources"][src] = {"cite": f"fleet calibrate on {csv_name}: " + ", ".join(ids), "date": today}
        entry = {t: float(f"{v:.4g}") for t, v in terms.items()}
        prov = {t: {"src": src, "conf": "calibrated", "note": f"{len(ids)} points"} for t in terms}
        if bands and kind == "arch" and gid in bands:
            lo, hi, n = bands[gid]
            entry.update({"error_band_p10": round(lo, 3), "error_band_p90": round(hi, 3)})
            prov.update({t: {"src": src, "conf": "calibrated", "note": f"held-out measured/predicted over {n} points"}
                         for t in ("error_band_p10", "error_band_p90")})
        entry["provenance"] = prov
        out.setdefault(kind, {})[gid] = entry
    if inherit:
        _inherited_entries(fit, catalog, out, today)
    return out


def _inherited_entries(fit: Fit, catalog: Catalog, out: dict, today: str) -> None:
    """Groups without points take their predecessor's fitted terms (or their memory family's), so
    the shipped catalog says what the planner will use for them, and why."""
    family_of = {}
    for chip in catalog.chips.values():
        if chip.arch:
            family_of.setdefault(chip.arch, FAMILY[chip.chip_class])
    terms_of = {"arch": ARCH_TERMS, "fabric": ("hop_latency_us",),
                "software": ("t_step_us", "t_seq_us", "fp4_eff", "moe_layer_extra", "mla_layer_extra")}
    out["sources"]["calibration-inherited"] = {
        "cite": "fleet calibrate: a group without points takes the fitted value of the group it inherits from, "
                "or of its memory family (HBM / on-chip)", "date": today}
    for kind, terms in terms_of.items():
        for gid in catalog.groups.get(kind, {}):
            if (kind, gid) in fit.points:
                continue
            entry, prov = {}, {}
            for t in terms:
                if not _fittable(catalog, kind, gid, t):
                    continue
                found = _group_source(fit.values, catalog, kind, gid, t, family_of.get(gid) if kind == "arch" else None)
                if found is None:
                    continue
                entry[t] = float(f"{found[0]:.4g}")
                prov[t] = {"src": "calibration-inherited", "conf": "estimate", "note": f"no points: from {found[1]}"}
            if entry:
                entry["provenance"] = prov
                out.setdefault(kind, {})[gid] = entry


def overlay_toml(fit: Fit, catalog: Catalog, csv_name: str, bands: dict | None = None) -> str:
    """The user's overlay: only the groups the points measure (no inherited entries)."""
    import tomli_w

    return "# Behaviour-group terms fitted by `fleet calibrate`: only the groups these points measure.\n" + tomli_w.dumps(
        overlay_dict(fit, catalog, csv_name, bands, inherit=False))


def overlay_changes(overlay: dict, catalog: Catalog) -> list[dict]:
    """What an overlay changes: each group term, its old and new value, and the chips it moves."""
    rows = []
    for kind in ("arch", "fabric", "software"):
        for gid, entry in sorted(overlay.get(kind, {}).items()):
            chips = sorted(c.id for c in catalog.chips.values() if getattr(c, kind, None) == gid)
            old = catalog.groups.get(kind, {}).get(gid, {})
            for term, value in entry.items():
                if term == "provenance":
                    continue
                rows.append({"group": f"{kind}.{gid}", "term": term, "catalog": old.get(term), "overlay": value,
                             "chips": ", ".join(chips)})
    return rows


def _today() -> str:
    import datetime

    return datetime.date.today().isoformat()


def fold_into_behaviour(text: str, overlay: dict) -> str:
    """Rewrite catalogs/behaviour.toml's fitted values and provenance from an overlay dict (how the
    shipped behaviour terms get their calibrated values), keeping comments and order."""
    out: list[str] = []
    section = None
    for line in text.splitlines():
        m = re.match(r"^\[(arch|fabric|software)\.([^\].]+)(\.provenance)?\]", line)
        if m or line.startswith("["):
            _add_missing(overlay, section, out)
            section = (m.group(1), m.group(2), bool(m.group(3))) if m else None
        if line.startswith("calibration-"):
            continue
        if line.startswith("prior = "):
            out.append(line)
            out += [f'{k} = {{ cite = "{v["cite"]}", date = "{v["date"]}" }}' for k, v in overlay["sources"].items()]
            continue
        km = re.match(r"^([a-z0-9_]+) = ", line)
        entry = overlay.get(section[0], {}).get(section[1]) if km and section else None
        term = km.group(1) if km else None
        if entry and term != "provenance" and term in (entry["provenance"] if section[2] else entry):
            line = _prov_line(term, entry["provenance"][term]) if section[2] else f"{term} = {entry[term]:.4g}"
        out.append(line)
    _add_missing(overlay, section, out)
    return "\n".join(out) + "\n"


def _prov_line(term: str, p: dict) -> str:
    return f'{term} = {{ src = "{p["src"]}", conf = "{p["conf"]}", note = "{p["note"]}" }}'


def _add_missing(overlay: dict, section, out: list[str]) -> None:
    """Append the overlay's terms the section lacks (e.g. a first error band), before its blank lines."""
    if not section:
        return
    entry = overlay.get(section[0], {}).get(section[1])
    if not entry:
        return
    tail = 0
    while out and not out[-1].strip():
        out.pop()
        tail += 1
    have = set()
    for line in reversed(out):
        if line.startswith("["):
            break
        have.add(line.split(" = ")[0])
    source = entry["provenance"] if section[2] else {k: v for k, v in entry.items() if k != "provenance"}
    for t, v in source.items():
        if t not in have:
            out.append(_prov_line(t, v) if section[2] else f"{t} = {v:.4g}")
    out.extend([""] * tail)


@dataclass(frozen=True)
class Calibration:
    """One calibration run: the points used and excluded, the fit, predicted vs measured per point
    (in sample, and held out by chip and by model), error summaries overall and per architecture
    group, the fitted terms beside the catalog's, and the terms a written overlay changes."""

    points: list[CalPoint]
    excluded: list[tuple[str, str]]
    fit: Fit
    rows: list[dict]
    held: dict[str, list[dict]]
    summary: dict[str, dict]
    by_arch: dict[str, dict]
    terms: list[dict]
    bands: dict[str, tuple[float, float, int]] | None
    changes: list[dict]  # what the overlay at write_path changes; [] when none was written

    def to_dict(self) -> dict:
        return {"points": self.rows, "held_out": dict(self.held), "summary": self.summary, "by_arch": self.by_arch,
                "terms": self.terms,
                "error_bands": {a: {"p10": lo, "p90": hi, "points": n} for a, (lo, hi, n) in (self.bands or {}).items()},
                "excluded": [{"id": i, "reason": r} for i, r in self.excluded]}


def calibrate(points_csv: str, catalogs=(), chip_ids: str | None = None, write_path: str | None = None,
              holdout: bool = True, force: bool = False, announce=None) -> Calibration:
    """Fit the behaviour groups' terms to the points of `points_csv` (only those on `chip_ids`, comma
    separated, if given), hold out each chip and each model when `holdout`, refuse a fit that breaks
    a physical invariant, and write the overlay TOML to `write_path` (refused before the fit if it
    exists and not `force`). `announce(message)` is told what is about to take time."""
    from . import invariants
    from .catalog import load_catalog
    from .reports import write_atomic

    if write_path and Path(write_path).exists() and not force:  # before a fit that can take a minute
        raise PlannerError(f"{write_path} exists", [Problem(str(write_path), "output file exists",
                                                            "pass --force to overwrite or choose another path")])
    cat = load_catalog(list(catalogs))
    points, excluded = load_points(points_csv, cat)
    if chip_ids:
        keep = {cat.resolve_chip(c.strip(), "--chips") for c in chip_ids.split(",")}
        points = [p for p in points if p.chip in keep]
    if not points:
        reasons = "; ".join(f"{i}: {r}" for i, r in excluded[:5]) + (" …" if len(excluded) > 5 else "")
        raise PlannerError("no usable calibration points", [Problem(
            points_csv, f"{len(excluded)} row(s) excluded" + (f" ({reasons})" if reasons else "")
            + (f"; none of the usable rows is on {chip_ids}" if chip_ids else ""),
            "rows need a catalog model and chip (catalog ids or the vendor names the shipped points use), "
            "lengths, and a speed or throughput")])
    if announce:
        folds = len({p.chip for p in points}) + len({p.model for p in points}) if holdout else 0
        announce(f"fitting {len(points)} points"
                 + (f", then {folds} hold-out refits (a few minutes; --no-holdout skips them)" if folds else ""))
    fit = fit_groups(points, cat)
    rows = evaluate(points, cat, fit)
    summary = {"in_sample": error_summary(rows), "catalog_terms": error_summary(rows, "error_catalog")}
    held: dict[str, list[dict]] = {}
    if holdout:
        for by in ("chip", "model"):
            held[by] = leave_one_out(points, cat, by, full=fit)
            summary[f"held_out_by_{by}"] = error_summary(held[by])
    bands = error_bands(held["chip"] + held["model"]) if held else None
    broken = invariants.violations(fitted_catalog(fit, cat))
    if broken:
        raise PlannerError("calibration rejected: it breaks a physical invariant", [Problem(
            "fit", str(v), "the points of one of the two chips disagree with the other's beyond what their specs "
                          "allow (a different engine or setup?): check them, or leave one chip's points out with "
                          "--chips") for v in broken[:5]])
    changes: list[dict] = []
    if write_path:
        write_atomic(write_path, overlay_toml(fit, cat, points_csv.split("/")[-1], bands), force=force)
        changes = overlay_changes(overlay_dict(fit, cat, "", bands, inherit=False), cat)
    terms = [{"group": f"{k}.{g}", "term": t, "value": v,
              "catalog": float(cat.groups[k][g][t]) if k in cat.groups and g in cat.groups[k] and t in cat.groups[k][g] else None,
              "points": len(fit.points.get((k, g), []))}
             for (k, g, t), v in sorted(fit.values.items()) if k != "family"]
    by_arch = {name: summary_by(r, "arch") for name, r in (("in_sample", rows), *(
        (f"held_out_by_{b}", h) for b, h in held.items()))}
    return Calibration(points, excluded, fit, rows, held, summary, by_arch, terms, bands, changes)
