"""`fleet estimate`: the performance model for one deployment, in user units."""
from __future__ import annotations


from . import performance as pf
from .catalog import Catalog, load_catalog
from .domain import TrafficClass
from .errors import InfeasibleError, PlannerError, Problem
from .layouts import exact_layouts, runnable_counts, tp_widths
from .units import GB

import numpy as np


def _chip(catalog: Catalog, key: str, precision: str, flag: str) -> pf.ChipSI:
    chip = catalog.chip(key)
    if not chip.supports(precision):
        runs = [p for p in ("bf16", "fp8", "fp4") if chip.supports(p)]
        raise PlannerError(f"{chip.id} cannot run {precision}", [Problem(
            flag, f"{chip.id} has no {precision} FLOPS in the catalog", f"use --precision {' or '.join(runs)}")])
    return pf.ChipSI.of(chip, precision)


def min_chips(w: pf.Workload, c: pf.ChipSI, part: str = "all") -> int:
    """Fewest chips whose usable memory holds the weights of `part` (all | attn | ffn)."""
    need = {"all": w.weight_bytes(), "attn": w.attn_weight_bytes(), "ffn": w.ffn_weight_bytes()}[part]
    return pf.chips_to_hold(need, c)


def choose_layout(w: pf.Workload, c: pf.ChipSI, chips: int, batch: int, tp: int | None = None,
                  pp: int | None = None) -> tuple[int, int, bool]:
    """The runnable layout of exactly `chips` chips (optionally with the given tp/pp) that is fastest
    per user at `batch`; PlannerError naming the chip counts that do run when none does."""
    lay = exact_layouts(w.model, chips, c.domain, c.on_chip)
    mask = lay.n == chips
    if tp:
        mask &= lay.tp == tp
    if pp:
        mask &= lay.pp == pp
    if not mask.any():
        widths_l = tp_widths(w.model, on_chip=c.on_chip)
        widths = ", ".join(str(t) for t in widths_l)
        why = (f"tensor/expert-parallel width tp must be one of {widths} (it divides the model's "
               f"{w.model.q_heads} query heads, {w.model.kv_heads} KV heads"
               + (f" and {w.model.experts} experts" if w.model.experts else "")
               + f"; at most 8 scale-up domains wide: tp ≤ {max(c.domain, 1) * 8}), pp ≤ {w.model.layers} layers")
        if not c.on_chip:
            why += (f"; HBM chips pipeline (pp > 1) only across full scale-up domains (tp ≥ {min(c.domain, widths_l[-1])}) "
                    "and in powers of two (pp = 1, 2, 4, … 32), as serving stacks split layers")
        if tp or pp:
            fix = "drop --tp/--pp to take the fastest runnable layout"
        else:
            runnable = runnable_counts(w.model, c.domain, c.on_chip)
            near = _nearest(runnable, chips)
            fix = f"use --chips {' or '.join(str(n) for n in near)}" if near else "no chip count runs this model here"
        raise PlannerError(f"no runnable layout of {w.model.id} on {chips} × {c.id}" + (f" with tp={tp}" if tp else "")
                           + (f" pp={pp}" if pp else ""), [Problem("--chips" if not (tp or pp) else "--tp/--pp",
                                                                    why + "; chips = tp × pp", fix)])
    best, best_speed = None, -1.0
    for i in np.nonzero(mask)[0]:
        d = pf.decode(w, c, chips, None, None, batch, pp=lay.pp[i], attn_dp=bool(lay.attn_dp[i]))
        speed = float(d["speed_tok_s_user"]) if bool(d["fits"]) else 0.0
        if speed > best_speed * (1 + 1e-9):
            best, best_speed = (int(lay.tp[i]), int(lay.pp[i]), bool(lay.attn_dp[i])), speed
    return best


def _nearest(values: list[int], target: int) -> list[int]:
    below = [v for v in values if v < target]
    above = [v for v in values if v > target]
    return ([below[-1]] if below else []) + ([above[0]] if above else [])


def error_band(catalog: Catalog, chip_id: str) -> dict | None:
    """The held-out measured/predicted p10–p90 of the chip's architecture group (catalogs/behaviour.toml)."""
    chip = catalog.chips[chip_id]
    seen, g = set(), chip.arch
    while g and g not in seen:
        grp = catalog.groups.get("arch", {}).get(g, {})
        if "error_band_p10" in grp:
            return {"arch": g, "p10": float(grp["error_band_p10"]), "p90": float(grp["error_band_p90"]),
                    "basis": grp["provenance"]["error_band_p10"].note if "error_band_p10" in grp["provenance"] else "",
                    "inherited": g != chip.arch}
        seen.add(g)
        g = grp.get("inherits")
    return None


def from_case(case: str, class_name: str | None = None, sets=(), catalogs=()) -> tuple[Catalog, dict]:
    """A case's catalog (its inline chips/models included) and one class's workload fields, so
    `fleet estimate CASE --class NAME` runs the model and lengths the case plans for."""
    from .cases import apply_override, case_catalog, parse_sets, read_case_raw

    raw, label = read_case_raw(case)
    for path, value in parse_sets(sets):
        apply_override(raw, path, value)
    catalog = case_catalog(raw, label, catalogs)
    classes = [c for c in raw.get("classes", []) if isinstance(c, dict)]
    names = [str(c.get("name")) for c in classes]
    if class_name is None:
        if len(classes) != 1:
            raise PlannerError(f"{label} has {len(classes)} classes", [Problem(
                "--class", "missing", f"name one of: {', '.join(names)}")])
        cls = classes[0]
    elif class_name in names:
        cls = classes[names.index(class_name)]
    else:
        from .errors import did_you_mean

        raise PlannerError(f"no class '{class_name}' in {label}", [Problem(
            "--class", f"unknown class '{class_name}'", did_you_mean(class_name, names) or f"classes: {', '.join(names)}")])
    from .units import canonical_precision

    fields = {k: cls[k] for k in ("model", "isl", "osl", "cached_isl") if k in cls}
    h = cls.get("kv_headroom")
    if isinstance(h, (int, float)) and not isinstance(h, bool) and 0 <= h <= 10:  # the case's check rejects the rest
        fields["kv_headroom"] = float(h)
    if "precision" in cls:
        fields["precision"] = canonical_precision(str(cls["precision"])) or cls["precision"]
    return catalog, fields


def estimate(model: str, chip: str, chips: int, isl: int, osl: int, precision: str = "fp8", batch: int | None = None,
             ffn_chip: str | None = None, ffn_chips: int | None = None, concurrency: int | None = None,
             serving: str | None = None, prefill_chip: str | None = None, prefill_chips: int | None = None,
             prefill_utilization: float = 0.7, catalogs=(), catalog: Catalog | None = None,
             tp: int | None = None, pp: int | None = None, cached_isl: int = 0,
             kv_headroom: float | None = None) -> dict:
    """Speed, throughput, memory and TTFT of one deployment; raises PlannerError when impossible
    (weights or the requested batch's KV cache do not fit, a layout that cannot run). The batch
    limit keeps the class's KV headroom (default: a class's default), as the planner's units do."""
    catalog = catalog or load_catalog(list(catalogs))
    m = catalog.model(model)
    if not 0 <= int(cached_isl) < int(isl):
        raise PlannerError("cached prompt tokens must be fewer than the prompt", [Problem(
            "--cached-isl", f"{cached_isl} with --isl {isl}", f"give 0 … {int(isl) - 1}")])
    w = pf.Workload(m, precision, int(isl), int(osl), int(cached_isl))
    h = TrafficClass.kv_headroom if kv_headroom is None else float(kv_headroom)
    attn = _chip(catalog, chip, precision, "--chip")
    afd = ffn_chip is not None
    ffn = _chip(catalog, ffn_chip, precision, "--ffn-chip") if afd else None
    if afd and not ffn_chips:
        raise PlannerError("--ffn-chip needs --ffn-chips", [Problem("--ffn-chips", "missing",
                           f"give the FFN chip count (≥ {min_chips(w, ffn, 'ffn')} to hold the FFN weights)")])
    if afd and (tp or pp):
        raise PlannerError("--tp/--pp do not apply with --ffn-chip", [Problem("--tp/--pp",
                           "attention–FFN disaggregation runs attention tensor-parallel on --chips and the FFN on --ffn-chips",
                           "drop --tp/--pp")])
    serving = serving or ("decode" if prefill_chip else "aggregated")

    need = min_chips(w, attn, "attn" if afd else "all")
    if chips < need:
        raise PlannerError(f"{m.id} does not fit on {chips} × {attn.id}", [Problem(
            "--chips", f"weights need ≥ {need} × {attn.id} ({(w.attn_weight_bytes() if afd else w.weight_bytes()) / GB:,.0f} GB "
            f"at {precision}, {pf.USABLE_MEM_FRAC:.0%} of memory usable)", f"use --chips {need} or more")])
    if afd and ffn_chips < min_chips(w, ffn, "ffn"):
        nf = min_chips(w, ffn, "ffn")
        raise PlannerError(f"{m.id} FFN weights do not fit on {ffn_chips} × {ffn.id}", [Problem(
            "--ffn-chips", f"FFN/expert weights ({w.ffn_weight_bytes() / GB:,.0f} GB) need ≥ {nf} × {ffn.id}",
            f"use --ffn-chips {nf} or more")])

    lay = (chips, 1, False) if afd else choose_layout(w, attn, chips, batch or 1, tp, pp)
    lay_kw = {} if afd else {"pp": lay[1], "attn_dp": lay[2]}
    probe = pf.decode(w, attn, chips, ffn, ffn_chips if afd else None, 1, kv_headroom=h, **lay_kw)
    max_batch = int(probe["max_batch"])
    batch_given = batch is not None
    if batch is None:
        batch = max(1, min(concurrency, max_batch)) if concurrency else 1
        if not afd and batch > 1:
            lay = choose_layout(w, attn, chips, batch, tp, pp)
            lay_kw = {"pp": lay[1], "attn_dp": lay[2]}
    d = pf.decode(w, attn, chips, ffn, ffn_chips if afd else None, batch, kv_headroom=h, **lay_kw)
    if not bool(d["fits"]):
        raise InfeasibleError(f"batch {batch} does not fit on {chips} × {attn.id}", [Problem(
            "--batch" if batch_given else "--concurrency",
            f"its KV cache at ISL {w.isl:,} + OSL {w.osl:,} with {h:.0%} headroom needs more than the memory left "
            "after the weights "
            f"(largest batch that fits: {max_batch:,})",
            f"use --batch {max_batch} or less, or more --chips" if max_batch else "use more --chips")])
    p = pf.prefill(w, attn, chips)
    step = float(d["step_s"])
    interference = 0.0
    if serving == "aggregated":
        interference = batch * float(p["marginal_s"]) / w.osl  # as pf.aggregated: prompt chunks cost their compute
        ttft = float(p["prefill_s"]) + step
        prefill_rate = float(p["tokens_per_s_per_chip"])
        transfer = 0.0
    else:
        if prefill_chip:
            pc = _chip(catalog, prefill_chip, precision, "--prefill-chip")
            npf = prefill_chips or min_chips(w, pc)
            p = pf.prefill(w, pc, npf)
            transfer = float(pf.kv_transfer_s(w, pc, npf))
        else:
            transfer = 0.0
        ttft = float(pf.ttft_at_utilization(p["prefill_s"], prefill_utilization, transfer))
        prefill_rate = float(p["tokens_per_s_per_chip"])
    speed = 1.0 / (step + interference)
    total_chips = chips + (ffn_chips if afd else 0)
    queued = max(0, (concurrency or batch) - batch)
    band = error_band(catalog, attn.id)
    tput = batch * speed
    return {
        "layout": {"tp": lay[0], "pp": lay[1], "ep": lay[0] if m.experts else 1, "attn_dp": lay[2]},
        "error_band": None if band is None else {
            **band, "throughput_tok_s_p10": tput * band["p10"], "throughput_tok_s_p90": tput * band["p90"]},
        "model": m.id, "precision": precision, "isl": w.isl, "osl": w.osl, "cached_isl": w.cached_isl,
        "serving": serving,
        "chip": attn.id, "chips": chips, "ffn_chip": ffn.id if afd else attn.id,
        "ffn_chips": ffn_chips if afd else 0, "batch": int(batch), "queued_clients": queued,
        "speed_tok_s_user": speed, "throughput_tok_s": batch * speed,
        "throughput_tok_s_per_chip": batch * speed / total_chips, "step_time_s": step + interference,
        "ttft_s": ttft, "fits": bool(d["fits"]), "max_batch": max_batch,
        "memory_used_gb": float(d["memory_used_bytes"]) / GB,
        "memory_capacity_gb": float(d["memory_capacity_bytes"]) / GB,
        "ffn_memory_used_gb": float(d["ffn_memory_used_bytes"]) / GB if afd else None,
        "ffn_memory_capacity_gb": float(d["ffn_memory_capacity_bytes"]) / GB if afd else None,
        "bound": str(d["bound"]),
        "time_breakdown_s": {"attention": float(d["attention_s"]), "ffn": float(d["ffn_s"]),
                             "communication": float(d["comm_s"]), "fixed_per_layer": float(d["fixed_s"]),
                             "prefill_interference": interference},
        "prefill_time_s": float(p["prefill_s"]), "prefill_tok_s_per_chip": prefill_rate,
        "kv_transfer_s": transfer, "power_kw": chips * catalog.chip(chip).power_kw
        + (ffn_chips * catalog.chip(ffn_chip).power_kw if afd else 0.0),
    }


def estimate_table(r: dict) -> str:
    """The estimate as a reader wants it."""
    afd = f" + FFN on {r['ffn_chips']} × {r['ffn_chip']}" if r["ffn_chips"] else ""
    lines = [
        f"{r['model']} ({r['precision']}, ISL {r['isl']:,}"
        + (f" ({r['cached_isl']:,} cached)" if r.get("cached_isl") else "") + f" / OSL {r['osl']:,}) on {r['chips']} × {r['chip']}{afd}, "
        f"serving: {r['serving']}",
        f"  batch                 {r['batch']:>12,}   (largest that fits: {r['max_batch']:,}; queued clients: {r['queued_clients']:,})",
        f"  speed                 {r['speed_tok_s_user']:>12,.1f}   tokens/s/user",
        f"  throughput            {r['throughput_tok_s']:>12,.0f}   output tokens/s ({r['throughput_tok_s_per_chip']:,.1f} per chip)",
        f"  step time             {r['step_time_s'] * 1e3:>12,.3f}   ms  (bound: {r['bound']})",
        f"  TTFT                  {r['ttft_s']:>12,.3f}   s   (prefill {r['prefill_time_s']:.3f} s; "
        f"{r['prefill_tok_s_per_chip']:,.0f} prefill tokens/s/chip)",
        f"  memory                {r['memory_used_gb']:>12,.1f}   GB used of {r['memory_capacity_gb']:,.1f} GB usable"
        f"  ({'fits' if r['fits'] else 'DOES NOT FIT'})",
        f"  layout                tp {r['layout']['tp']} × pp {r['layout']['pp']}"
        + (f", ep {r['layout']['ep']}" if r['layout']['ep'] > 1 else "")
        + (", attention data-parallel" if r['layout']['attn_dp'] else ""),
    ]
    if r.get("error_band"):
        b = r["error_band"]
        lines.append(f"  trust                 measured/predicted p10–p90 ×{b['p10']:.2f}–×{b['p90']:.2f} for arch {b['arch']}"
                     f" (held out{', inherited' if b['inherited'] else ''}): {b['throughput_tok_s_p10']:,.0f}–"
                     f"{b['throughput_tok_s_p90']:,.0f} output tok/s")
    if r["ffn_memory_used_gb"] is not None:
        lines.append(f"  FFN memory            {r['ffn_memory_used_gb']:>12,.1f}   GB used of {r['ffn_memory_capacity_gb']:,.1f} GB")
    lines.append("  time per step (ms):   " + ", ".join(f"{k} {v * 1e3:.3f}" for k, v in r["time_breakdown_s"].items()))
    return "\n".join(lines)


__all__ = ["estimate", "estimate_table", "from_case", "min_chips"]
