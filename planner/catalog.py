"""Catalog loading: the shipped TOML catalogs plus user overlays, validated into domain records.

Every figure keeps its provenance. An overlay (`--catalog FILE`) may add entries or override single
fields of shipped ones; overridden figures without a provenance entry are credited to the overlay
file with confidence 'user'. Every problem in a file is reported at once.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from .domain import CHIP_CLASSES, CONFIDENCES, Chip, Economics, Model, Provenance
from .errors import CatalogError, Problem, did_you_mean

# field -> (kind, required, minimum, description with unit). kind: float | int | str | bool | strs
# minimum: ">0" strictly positive, ">=0" non-negative, "frac" in (0, 1], None = no bound.
CHIP_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "name": ("str", True, None, "display name"),
    "vendor": ("str", True, None, "vendor"),
    "class": ("str", True, None, "gpu | asic | sram | mram | prefill"),
    "aliases": ("strs", False, None, "other ids"),
    "system_name": ("str", True, None, "system or rack the chip ships in"),
    "chips_per_system": ("int", True, ">0", "chips per system/rack"),
    "sold_by_system": ("bool", True, None, "bought only in whole systems/racks"),
    "mem_gb": ("float", True, ">0", "memory capacity (GB)"),
    "mem_bw_tbs": ("float", True, ">0", "memory bandwidth (TB/s)"),
    "bf16_tflops": ("float", False, ">=0", "dense BF16 TFLOPS (0 = unsupported)"),
    "fp8_tflops": ("float", False, ">=0", "dense FP8 TFLOPS (0 = unsupported)"),
    "fp4_tflops": ("float", False, ">=0", "dense FP4 TFLOPS (0 = unsupported)"),
    "power_kw": ("float", True, ">0", "all-in power per chip (kW)"),
    "price_usd": ("float", True, ">0", "all-in price per chip (USD)"),
    "scaleup_domain_chips": ("int", True, ">0", "scale-up domain size (chips)"),
    "scaleup_bw_gbs": ("float", True, ">0", "scale-up bandwidth per chip, bidirectional (GB/s)"),
    "scaleout_bw_gbs": ("float", True, ">0", "scale-out bandwidth per chip (GB/s)"),
    "arch": ("str", False, None, "architecture group in catalogs/behaviour.toml [arch.*]"),
    "fabric": ("str", False, None, "fabric group in catalogs/behaviour.toml [fabric.*]"),
    "software": ("str", False, None, "serving-stack group in catalogs/behaviour.toml [software.*]"),
    # behaviour terms: normally inherited from the chip's groups; set here only as a chip deviation
    "bw_eff": ("float", False, "frac", "achieved fraction of memory bandwidth"),
    "flop_eff": ("float", False, "frac", "achieved fraction of dense FLOPS at large GEMMs"),
    "m_half_tokens": ("float", False, ">=0", "GEMM rows (tokens) at half the peak FLOP efficiency"),
    "kv_bw_eff": ("float", False, "frac", "achieved fraction of memory bandwidth reading the KV cache"),
    "t_layer_us": ("float", False, ">=0", "fixed time per layer per step (µs)"),
    "hop_latency_us": ("float", False, ">=0", "collective latency α (µs; per hop on direct links)"),
    "link_eff": ("float", False, "frac", "achieved fraction of scale-up link bandwidth"),
    "scaleout_alpha_us": ("float", False, ">=0", "latency of one scale-out message (µs)"),
    "topology": ("str", False, None, "switch | mesh | direct"),
    "t_step_us": ("float", False, ">=0", "per-step serving-stack overhead (µs)"),
    "t_seq_us": ("float", False, ">=0", "per-sequence, per-step host overhead (µs)"),
    "fp4_eff": ("float", False, "frac", "multiplier on bw_eff and flop_eff at fp4"),
    "moe_layer_extra": ("float", False, ">=0", "extra fixed time of an MoE layer, × t_layer_us"),
    "mla_layer_extra": ("float", False, ">=0", "extra fixed time of an MLA layer, × t_layer_us"),
    "annual_failure_rate": ("float", False, ">0", "failures per chip-year, all-in (chip, HBM, host and network share)"),
    "mttr_hours": ("float", False, ">0", "hours from a failure until the chip serves again"),
    "available_year": ("float", False, ">0", "first year it can be bought in volume (decimal: 2026.5 = H2-2026)"),
    "sold": ("bool", False, None, "can be bought at all (false: the vendor only rents it in its own cloud)"),
}
TOPOLOGIES = ("switch", "mesh", "direct")

# Behaviour groups (DESIGN.md §3): terms shared by every chip of an architecture generation, a
# fabric generation, or a serving stack. A chip takes each term from its group unless it sets it.
GROUP_FIELDS: dict[str, dict[str, tuple[str, bool, str | None, str]]] = {
    "arch": {
        "name": ("str", True, None, "display name"),
        "inherits": ("str", False, None, "predecessor arch whose fitted terms it takes when it has no points"),
        "error_band_p10": ("float", False, ">0", "held-out measured/predicted, 10th percentile"),
        "error_band_p90": ("float", False, ">0", "held-out measured/predicted, 90th percentile"),
        "bw_eff": ("float", True, "frac", "achieved fraction of memory bandwidth in decode kernels"),
        "flop_eff": ("float", True, "frac", "achieved fraction of dense FLOPS at large GEMMs"),
        "m_half_tokens": ("float", True, ">=0", "GEMM rows (tokens) at half the peak FLOP efficiency"),
        "t_layer_us": ("float", True, ">=0", "fixed time per layer per step (µs)"),
        "kv_bw_eff": ("float", False, "frac", "achieved fraction of memory bandwidth reading the KV cache (attention kernels)"),
    },
    "fabric": {
        "name": ("str", True, None, "display name"),
        "inherits": ("str", False, None, "predecessor fabric whose fitted terms it takes when it has no points"),
        "topology": ("str", True, None, "switch | mesh | direct"),
        "hop_latency_us": ("float", True, ">=0", "collective latency α (µs; per hop on direct links)"),
        "link_eff": ("float", True, "frac", "achieved fraction of scale-up link bandwidth"),
        "scaleout_alpha_us": ("float", True, ">=0", "latency of one scale-out message (µs)"),
    },
    "software": {
        "name": ("str", True, None, "display name"),
        "inherits": ("str", False, None, "stack whose fitted terms it takes when it has no points"),
        "t_step_us": ("float", True, ">=0", "per-step overhead: scheduler, sampling, launch (µs)"),
        "t_seq_us": ("float", False, ">=0", "per-sequence, per-step host overhead: scheduling, sampling, detokenising (µs)"),
        "maturity": ("float", True, "frac", "multiplier on the arch's bw_eff and flop_eff (≤ 1: less tuned kernels)"),
        "fp4_eff": ("float", False, "frac", "multiplier on bw_eff and flop_eff when serving fp4 weights (block-scaled kernels)"),
        "moe_layer_extra": ("float", False, ">=0", "extra fixed time of an MoE layer (router, top-k, dispatch, combine), × t_layer_us"),
        "mla_layer_extra": ("float", False, ">=0", "extra fixed time of an MLA layer (latent projections), × t_layer_us"),
    },
}
GROUP_TERMS = {g: [k for k in spec if k not in ("name", "inherits", "error_band_p10", "error_band_p90")]
               for g, spec in GROUP_FIELDS.items()}
CHIP_UNITLESS = {"name", "vendor", "class", "aliases", "system_name", "sold_by_system", "arch", "fabric", "software",
                 "topology"}

MODEL_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "name": ("str", True, None, "display name"),
    "aliases": ("strs", False, None, "other ids"),
    "attention": ("str", True, None, "gqa | mla"),
    "layers": ("int", True, ">0", "transformer layers"),
    "hidden": ("int", True, ">0", "hidden size"),
    "q_heads": ("int", True, ">0", "query heads"),
    "kv_heads": ("int", True, ">0", "KV heads"),
    "head_dim": ("int", True, ">0", "head dimension"),
    "vocab": ("int", True, ">0", "vocabulary size"),
    "tied_embeddings": ("bool", False, None, "input and output embeddings shared"),
    "dense_ffn_layers": ("int", False, ">=0", "layers with a dense FFN"),
    "dense_intermediate": ("int", False, ">=0", "dense FFN intermediate size"),
    "moe_layers": ("int", False, ">=0", "layers with routed experts"),
    "moe_intermediate": ("int", False, ">=0", "expert intermediate size"),
    "experts": ("int", False, ">=0", "routed experts per MoE layer"),
    "experts_per_token": ("int", False, ">=0", "routed experts per token"),
    "shared_experts": ("int", False, ">=0", "always-on experts per MoE layer"),
    "q_lora_rank": ("int", False, ">=0", "MLA query LoRA rank"),
    "kv_lora_rank": ("int", False, ">=0", "MLA KV latent rank"),
    "qk_nope_dim": ("int", False, ">=0", "MLA no-RoPE qk dim"),
    "qk_rope_dim": ("int", False, ">=0", "MLA RoPE qk dim"),
    "v_head_dim": ("int", False, ">=0", "MLA value head dim"),
    "sliding_layers": ("int", False, ">=0", "layers with sliding/chunked attention"),
    "sliding_window_tokens": ("int", False, ">=0", "sliding/chunk window (tokens)"),
    "published_total_params_b": ("float", True, ">0", "published total parameters (B)"),
    "published_active_params_b": ("float", True, ">0", "published active parameters (B)"),
}
MODEL_UNITLESS = {"name", "aliases", "attention", "tied_embeddings"}

ECONOMICS_FIELDS: dict[str, tuple[str, bool, str | None, str]] = {
    "electricity_usd_per_kwh": ("float", True, ">=0", "electricity price (USD/kWh)"),
    "pue": ("float", True, ">0", "power usage effectiveness (≥ 1)"),
    "amortization_years": ("float", True, ">0", "chip amortisation (years)"),
    "facility_capex_usd_per_mw": ("float", True, ">=0", "datacenter build cost (USD per MW IT)"),
    "facility_amortization_years": ("float", True, ">0", "facility amortisation (years)"),
    "idle_power_fraction": ("float", False, ">=0", "share of power_kw a bought chip draws while it runs no unit"),
    "annual_failure_rate": ("float", False, ">0", "failures per chip-year for chips that give none"),
    "mttr_hours": ("float", False, ">0", "repair time (hours) for chips that give none"),
    "discount_rate": ("float", False, ">=0", "yearly discount rate of a roadmap's net present value, e.g. 0.08"),
    "service_life_years": ("float", False, ">0", "age at which a chip is retired in a roadmap (years)"),
}


PHYSICAL_RANGES: dict[str, tuple[float, float, str]] = {
    # field → (lowest, highest, unit): a figure outside is a typo or a units slip (kW for W, USD for
    # kUSD), not a what-if; left in, it makes the MILP drop every row and call an empty fleet optimal.
    # Bounds sit one to two orders of magnitude beyond the widest shipped figure.
    "chips_per_system": (1, 100_000, "chips"),
    "mem_gb": (0.001, 100_000, "GB"),
    "mem_bw_tbs": (0.01, 1_000_000, "TB/s"),
    "bf16_tflops": (0, 10_000_000, "TFLOPS"),
    "fp8_tflops": (0, 10_000_000, "TFLOPS"),
    "fp4_tflops": (0, 10_000_000, "TFLOPS"),
    "power_kw": (0.001, 1_000, "kW per chip"),
    "price_usd": (1, 100_000_000, "USD per chip"),
    "scaleup_domain_chips": (1, 1_000_000, "chips"),
    "scaleup_bw_gbs": (0.1, 1_000_000, "GB/s"),
    "scaleout_bw_gbs": (0.01, 100_000, "GB/s"),
    "m_half_tokens": (0, 100_000, "tokens"),
    "t_layer_us": (0, 10_000, "µs"),
    "hop_latency_us": (0, 10_000, "µs"),
    "scaleout_alpha_us": (0, 100_000, "µs"),
    "t_step_us": (0, 1_000_000, "µs"),
    "t_seq_us": (0, 100_000, "µs"),
    "moe_layer_extra": (0, 100, "× t_layer_us"),
    "mla_layer_extra": (0, 100, "× t_layer_us"),
    "error_band_p10": (0.01, 100, "measured/predicted"),
    "error_band_p90": (0.01, 100, "measured/predicted"),
    "layers": (1, 10_000, "layers"),
    "hidden": (1, 1_000_000, ""),
    "q_heads": (1, 100_000, "heads"),
    "kv_heads": (1, 100_000, "heads"),
    "head_dim": (1, 100_000, ""),
    "vocab": (1, 100_000_000, "tokens"),
    "dense_ffn_layers": (0, 10_000, "layers"),
    "moe_layers": (0, 10_000, "layers"),
    "sliding_layers": (0, 10_000, "layers"),
    "dense_intermediate": (0, 10_000_000, ""),
    "moe_intermediate": (0, 10_000_000, ""),
    "experts": (0, 100_000, "experts"),
    "experts_per_token": (0, 10_000, "experts"),
    "shared_experts": (0, 10_000, "experts"),
    "q_lora_rank": (0, 1_000_000, ""),
    "kv_lora_rank": (0, 1_000_000, ""),
    "qk_nope_dim": (0, 100_000, ""),
    "qk_rope_dim": (0, 100_000, ""),
    "v_head_dim": (0, 100_000, ""),
    "sliding_window_tokens": (0, 100_000_000, "tokens"),
    "published_total_params_b": (0.001, 1_000_000, "B parameters"),
    "published_active_params_b": (0.001, 1_000_000, "B parameters"),
    "electricity_usd_per_kwh": (0, 10, "USD/kWh"),
    "pue": (1, 5, "facility/IT power"),
    "amortization_years": (0.1, 50, "years"),
    "facility_capex_usd_per_mw": (0, 1_000_000_000, "USD per MW"),
    "facility_amortization_years": (0.1, 100, "years"),
    "idle_power_fraction": (0, 1, "of power_kw"),
    "annual_failure_rate": (1e-4, 10, "failures per chip-year"),
    "mttr_hours": (0.01, 10_000, "hours"),
    "available_year": (1990, 2100, "year"),
    "discount_rate": (0, 1, "per year"),
    "service_life_years": (0.5, 50, "years"),
}


def check_range(key: str, value: Any, ranges: Mapping = PHYSICAL_RANGES) -> str | None:
    """Why a number is outside the physical range of its field, or None."""
    bounds = ranges.get(key)
    if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    lo, hi, unit = bounds
    if not lo <= value <= hi:
        return f"{value:,g} is outside the physical range [{lo:,g}, {hi:,g}] {unit}".rstrip()
    return None


def check_value(value: Any, kind: str, minimum: str | None) -> str | None:
    """Why `value` is not a valid `kind` (with `minimum`), or None when it is."""
    if kind == "str":
        if not (isinstance(value, str) and value.strip()):
            return "must be a non-empty string"
        if any(not ch.isprintable() for ch in value):  # a NUL or newline breaks every table, CSV and file name
            return f"must be printable text, got {value!r:.60}"
        if len(value) > 200:
            return f"must be at most 200 characters, got {len(value):,}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "strs":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok else "must be a list of strings"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "…"
        return f"must be a number, got {type(value).__name__} {shown}"
    if kind == "int" and not (isinstance(value, int) or float(value).is_integer()):
        return f"must be a whole number, got {value!r}"
    if not math.isfinite(float(value)):
        return f"must be finite, got {value!r}"
    if abs(float(value)) > 1e15:
        return f"is out of range ({value!r})"
    if minimum == ">0" and value <= 0:
        return f"must be > 0, got {value!r}"
    if minimum == ">=0" and value < 0:
        return f"must be ≥ 0, got {value!r}"
    if minimum == "frac" and not 1e-3 <= value <= 1:
        return f"must be a fraction in [0.001, 1], got {value!r}"
    return None


def check_fields(entry: Mapping, spec: Mapping, where: str, partial: bool,
                 ranges: Mapping = PHYSICAL_RANGES) -> list[Problem]:
    """Unknown keys, wrong types, bad ranges, and (unless partial) missing required fields."""
    problems: list[Problem] = []
    for key, value in entry.items():
        if key == "provenance":
            continue
        if key not in spec:
            hint = did_you_mean(key, spec)
            problems.append(Problem(f"{where}.{key}", "unknown field",
                                    hint or f"known fields: {', '.join(spec)}"))
            continue
        kind, _, minimum, desc = spec[key]
        why = check_value(value, kind, minimum) or check_range(key, value, ranges)
        if why:
            problems.append(Problem(f"{where}.{key}", why, f"give {desc}"))
    if not partial:
        for key, (_, required, _, desc) in spec.items():
            if required and key not in entry:
                problems.append(Problem(f"{where}.{key}", "missing required field", f"add {desc}"))
    return problems


@dataclass
class Catalog:
    """Chips, models and economics defaults, resolved and validated, with every figure's source."""

    chips: dict[str, Chip]
    models: dict[str, Model]
    economics: Economics
    economics_provenance: dict[str, Provenance]
    versions: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    groups: dict[str, dict[str, dict]] = field(default_factory=dict)
    """Behaviour groups: {'arch'|'fabric'|'software': {id: {term: value, 'provenance': {...}}}}."""

    def chip(self, key: str) -> Chip:
        return self.chips[self.resolve_chip(key)]

    def model(self, key: str) -> Model:
        return self.models[self.resolve_model(key)]

    def resolve_chip(self, key: str, where: str = "chip") -> str:
        return _resolve(key, self.chips, where, "chip", "fleet catalog list chips")

    def resolve_model(self, key: str, where: str = "model") -> str:
        return _resolve(key, self.models, where, "model", "fleet catalog list models")


def _resolve(key: str, entries: Mapping, where: str, kind: str, listing: str) -> str:
    if key in entries:
        return key
    for entry_id, entry in entries.items():
        if key in entry.aliases:
            return entry_id
    folded = str(key).strip().lower()  # ids are lower-case: GB300 means gb300
    for entry_id, entry in entries.items():
        if folded == entry_id or folded in entry.aliases:
            return entry_id
    names = list(entries) + [a for e in entries.values() for a in e.aliases]
    hint = did_you_mean(key, names)
    raise CatalogError(f"unknown {kind} '{key}'", [
        Problem(where, f"unknown {kind} '{key}'", hint or f"see `{listing}` for the known ids")])


def _read_toml(path_or_text, label: str) -> dict:
    from .inputs import loads_toml, read_text

    text = read_text(path_or_text, "a catalog overlay (--catalog)", CatalogError) if isinstance(path_or_text, Path) \
        else path_or_text
    return loads_toml(text, label, CatalogError)


@functools.lru_cache(maxsize=1)
def shipped_catalog_texts() -> dict[str, str]:
    """The shipped catalogs, read from package data so an installed `fleet` finds them (once per
    process: studies load a case per point)."""
    root = resources.files("catalogs")
    return {name: (root / f"{name}.toml").read_text(encoding="utf-8")
            for name in ("chips", "models", "economics", "behaviour")}


@functools.lru_cache(maxsize=1)
def _shipped_layers() -> tuple[tuple[str, dict], ...]:
    """Parsed shipped catalogs; the merge below copies every entry it changes, so sharing is safe."""
    return tuple((f"catalogs/{n}.toml", _read_toml(t, f"catalogs/{n}.toml")) for n, t in shipped_catalog_texts().items())


def _provenance(entry: Mapping, fields_: list[str], sources: Mapping, where: str,
                user_label: str | None, problems: list[Problem]) -> dict[str, Provenance]:
    """Resolve per-field provenance ({src, conf, note}); '_all' covers fields not listed."""
    raw = entry.get("provenance", {})
    if not isinstance(raw, dict):
        problems.append(Problem(f"{where}.provenance", "must be a table of field = {src, conf}"))
        return {}
    out: dict[str, Provenance] = {}
    for name in fields_:
        spec = raw.get(name, raw.get("_all"))
        if spec is None:
            if user_label is not None:
                out[name] = Provenance("user", user_label, "", "user", "set in overlay")
            else:
                problems.append(Problem(f"{where}.provenance.{name}", "figure has no source",
                                        "add {src = <key of [sources]>, conf = vendor-spec|reported|estimate}"))
            continue
        if not isinstance(spec, dict) or "src" not in spec or "conf" not in spec:
            problems.append(Problem(f"{where}.provenance.{name}", "must be {src = ..., conf = ...}"))
            continue
        src = sources.get(spec["src"])
        if src is None:
            hint = did_you_mean(spec["src"], sources)
            problems.append(Problem(f"{where}.provenance.{name}", f"unknown source '{spec['src']}'",
                                    hint or "add it under [sources] with cite and date"))
            continue
        if spec["conf"] not in CONFIDENCES:
            problems.append(Problem(f"{where}.provenance.{name}", f"unknown confidence '{spec['conf']}'",
                                    f"use one of {', '.join(CONFIDENCES)}"))
            continue
        out[name] = Provenance(spec["src"], src.get("cite", ""), str(src.get("date", "")),
                               spec["conf"], spec.get("note", ""))
    for name in raw:
        overlay_set = isinstance(raw[name], dict) and str(raw[name].get("src", "")).startswith("overlay:")
        if name != "_all" and name not in fields_ and user_label is None and not overlay_set:
            problems.append(Problem(f"{where}.provenance.{name}", "provenance for a figure the entry does not have",
                                    "remove it or add the figure"))
    return out


def _merge_layers(layers: list[tuple[str, dict]], section: str) -> tuple[dict, dict[str, str]]:
    """Merge one section across files: later files override fields; remembers who set what."""
    merged: dict[str, dict] = {}
    origin: dict[str, str] = {}
    for label, data in layers:
        table = data.get(section) or {}
        if not isinstance(table, dict):
            raise CatalogError(f"{label}: {section} must be a table of entries",
                               [Problem(f"{label}: {section}", f"must be a table, got {type(table).__name__}",
                                        f"write [{section}.ID] tables")])
        for key, entry in table.items():
            if not isinstance(entry, dict):
                raise CatalogError(f"{label}: [{section}.{key}] must be a table",
                                   [Problem(f"{label}: {section}.{key}", "must be a table")])
            if not isinstance(entry.get("provenance", {}), dict):
                raise CatalogError(f"{label}: {section}.{key}.provenance must be a table",
                                   [Problem(f"{label}: {section}.{key}.provenance", "must be a table of field = {src, conf}",
                                            'e.g. provenance = { mem_gb = { src = "mysource", conf = "reported" } }')])
            if key in merged:
                base = dict(merged[key])
                prov = dict(base.get("provenance", {}))
                prov.update(entry.get("provenance", {}))
                base.update({k: v for k, v in entry.items() if k != "provenance"})
                for k in entry:
                    if k != "provenance" and k not in entry.get("provenance", {}):
                        prov[k] = {"src": f"overlay:{label}", "conf": "user"}
                base["provenance"] = prov
                merged[key] = base
            else:
                merged[key] = dict(entry)
                origin[key] = label
    return merged, origin


def load_catalog(overlays: list | None = None, shipped: Mapping[str, str] | None = None) -> Catalog:
    """Shipped catalogs + overlays → validated Catalog, or CatalogError listing every problem.

    An overlay is a path to a TOML file or a (label, already-parsed dict) pair, e.g. the
    [chips]/[models] tables written inline in a case file.
    """
    if shipped is None:
        layers = list(_shipped_layers())
        shipped = shipped_catalog_texts()
    else:
        layers = [(f"catalogs/{n}.toml", _read_toml(t, f"catalogs/{n}.toml")) for n, t in shipped.items()]
    for overlay in overlays or []:
        if isinstance(overlay, tuple):
            layers.append(overlay)
        else:
            p = Path(overlay)
            layers.append((str(p), _read_toml(p, str(p))))

    problems: list[Problem] = []
    sources: dict[str, dict] = {}
    versions: dict[str, str] = {}
    for label, data in layers:
        unknown = set(data) - {"sources", "chips", "models", "economics", "catalog_version", *GROUP_FIELDS}
        for key in sorted(unknown):
            problems.append(Problem(f"{label}: {key}", "unknown top-level table",
                                    did_you_mean(key, ["sources", "chips", "models", "economics", *GROUP_FIELDS])
                                    or "use [sources], [chips.ID], [models.ID], [economics], [arch.ID], "
                                       "[fabric.ID] or [software.ID]"))
        bad = [k for k in ("sources", "chips", "models", "economics", *GROUP_FIELDS)
               if k in data and not isinstance(data[k], dict)]
        if bad:
            raise CatalogError(f"{label}: {bad[0]} must be a table", [Problem(
                f"{label}: {k}", f"must be a table, got {type(data[k]).__name__}",
                f"write [{k}]" + ("" if k == "economics" else f" with [{k}.ID] entries" if k != "sources" else " key = {cite, date}"))
                for k in bad])
        for key, src in (data.get("sources") or {}).items():
            if not isinstance(src, dict) or "cite" not in src or "date" not in src:
                problems.append(Problem(f"{label}: sources.{key}", "must be {cite = ..., date = ...}"))
            else:
                sources[key] = src
        versions[label] = str(data.get("catalog_version", "unversioned"))
    for label, _ in layers[len(shipped):]:
        sources[f"overlay:{label}"] = {"cite": f"user overlay {label}", "date": ""}

    shipped_labels = {label for label, _ in layers[:len(shipped)]}
    chips_raw, chip_origin = _merge_layers(layers, "chips")
    models_raw, model_origin = _merge_layers(layers, "models")

    groups: dict[str, dict[str, dict]] = {}
    broken_groups: set[tuple[str, str]] = set()
    for kind, spec in GROUP_FIELDS.items():
        raw_groups, group_origin = _merge_layers(layers, kind)
        groups[kind] = {}
        for key, entry in raw_groups.items():
            label = group_origin[key]
            where = f"{label}: {kind}.{key}"
            user = None if label in shipped_labels else label
            errs = check_fields(entry, spec, where, partial=False)
            if kind == "fabric" and entry.get("topology") not in (None, *TOPOLOGIES):
                errs.append(Problem(f"{where}.topology", f"unknown topology '{entry['topology']}'",
                                    f"use one of {', '.join(TOPOLOGIES)}"))
            prov = _provenance(entry, [k for k in entry if k in spec and k not in ("name", "topology", "inherits")],
                               sources, where, user, errs)
            if errs and user and any(p.what == "missing required field" for p in errs):
                known = [g for g, lab in group_origin.items() if lab in shipped_labels]
                hint = did_you_mean(key, known)
                if hint:  # a typo in an override path, not a new group
                    errs = [Problem(where, f"unknown {kind} group '{key}'", hint)]
            problems += errs
            if errs:
                broken_groups.add((kind, key))
            else:
                groups[kind][key] = {**{k: v for k, v in entry.items() if k != "provenance"}, "provenance": prov}

    for kind in GROUP_FIELDS:
        failing = {key: _group_checks(kind, key, entry, groups[kind]) for key, entry in groups[kind].items()}
        for key, errs in failing.items():
            if errs:
                problems += errs
                broken_groups.add((kind, key))
                del groups[kind][key]

    chips: dict[str, Chip] = {}
    for key, entry in chips_raw.items():
        label = chip_origin[key]
        where = f"{label}: chips.{key}"
        user = None if label in shipped_labels else label
        errs = check_fields(entry, CHIP_FIELDS, where, partial=False)
        if entry.get("class") is not None and entry.get("class") not in CHIP_CLASSES:
            errs.append(Problem(f"{where}.class", f"unknown class '{entry['class']}'",
                                f"use one of {', '.join(CHIP_CLASSES)}"))
        if entry.get("topology") not in (None, *TOPOLOGIES):
            errs.append(Problem(f"{where}.topology", f"unknown topology '{entry['topology']}'",
                                f"use one of {', '.join(TOPOLOGIES)}"))
        figures = [k for k in entry if k in CHIP_FIELDS and k not in CHIP_UNITLESS]
        prov = _provenance(entry, figures, sources, where, user, errs)
        if not any(entry.get(f"{p}_tflops", 0) for p in ("bf16", "fp8", "fp4")) and not errs:
            errs.append(Problem(where, "no precision has FLOPS > 0",
                                "give at least one of bf16_tflops, fp8_tflops, fp4_tflops"))
        if any(isinstance(entry.get(k), str) and (k, entry[k]) in broken_groups for k in GROUP_FIELDS):
            continue  # its group's own problem is reported; the chip's would only repeat it
        resolved = {} if errs else _resolve_behaviour(entry, groups, where, errs)
        problems += errs
        if not errs:
            kwargs = {k: v for k, v in entry.items() if k not in ("provenance", "class", "aliases")}
            kwargs.update({k: v for k, (v, _) in resolved.items()})
            prov.update({k: p for k, (_, p) in resolved.items() if p is not None})
            chips[key] = Chip(id=key, chip_class=entry["class"], aliases=tuple(entry.get("aliases", ())),
                              provenance=prov, **_coerce(kwargs, CHIP_FIELDS))

    models: dict[str, Model] = {}
    for key, entry in models_raw.items():
        label = model_origin[key]
        where = f"{label}: models.{key}"
        user = None if label in shipped_labels else label
        errs = check_fields(entry, MODEL_FIELDS, where, partial=False)
        if entry.get("attention") not in (None, "gqa", "mla"):
            errs.append(Problem(f"{where}.attention", f"unknown attention '{entry['attention']}'",
                                "use gqa or mla"))
        figures = [k for k in entry if k in MODEL_FIELDS and k not in MODEL_UNITLESS]
        prov = _provenance(entry, figures, sources, where, user, errs)
        errs += _model_consistency(entry, where) if not errs else []
        problems += errs
        if not errs:
            kwargs = {k: v for k, v in entry.items() if k not in ("provenance", "aliases")}
            model = Model(id=key, aliases=tuple(entry.get("aliases", ())), provenance=prov,
                          **_coerce(kwargs, MODEL_FIELDS))
            shape_errs = _published_vs_shape(model, where)
            problems += shape_errs
            if not shape_errs:
                models[key] = model

    econ_raw: dict = {}
    econ_prov_raw: dict = {}
    econ_user: str | None = None
    for label, data in layers:
        section = data.get("economics") or {}
        if not isinstance(section.get("provenance", {}), dict):
            problems.append(Problem(f"{label}: economics.provenance", "must be a table of field = {src, conf}",
                                    'e.g. provenance = { pue = { src = "mysource", conf = "estimate" } }'))
            section = {k: v for k, v in section.items() if k != "provenance"}
        if label not in shipped_labels and section:
            econ_user = label
            for k in section:
                if k != "provenance":
                    econ_prov_raw[k] = section.get("provenance", {}).get(k, {"src": f"overlay:{label}", "conf": "user"})
        else:
            econ_prov_raw.update(section.get("provenance", {}))
        econ_raw.update({k: v for k, v in section.items() if k != "provenance"})
    errs = check_fields(econ_raw, ECONOMICS_FIELDS, "economics", partial=False)
    econ_prov = _provenance({"provenance": econ_prov_raw}, list(econ_raw), sources, "economics", econ_user, errs)
    problems += errs

    _check_aliases(chips, "chips", problems)
    _check_aliases(models, "models", problems)
    if problems:
        raise CatalogError(f"the catalog has {len(problems)} problem(s)", problems)
    return Catalog(chips=chips, models=models,
                   economics=Economics(**_coerce(econ_raw, ECONOMICS_FIELDS)),
                   economics_provenance=econ_prov, versions=versions,
                   files=[label for label, _ in layers], groups=groups)


def _group_checks(kind: str, key: str, entry: Mapping, peers: Mapping) -> list[Problem]:
    """A group's inherits chain must end (no cycle, no unknown group); error bands come in pairs."""
    where = f"{kind}.{key}"
    out = []
    chain, g = [key], entry.get("inherits")
    while g:
        if g not in peers:
            out.append(Problem(f"{where}.inherits", f"unknown {kind} group '{g}'",
                               did_you_mean(g, peers) or f"known: {', '.join(peers)}"))
            break
        if g in chain:
            out.append(Problem(f"{where}.inherits", f"inherits in a cycle: {' → '.join(chain + [g])}",
                               "make the chain end at a group that inherits from none"))
            break
        chain.append(g)
        g = peers[g].get("inherits")
    lo, hi = entry.get("error_band_p10"), entry.get("error_band_p90")
    if (lo is None) != (hi is None):
        out.append(Problem(f"{where}.error_band_p10", "error_band_p10 and error_band_p90 come together",
                           "give both or neither"))
    elif lo is not None and lo > hi:
        out.append(Problem(f"{where}.error_band_p10", f"p10 {lo} is above p90 {hi}", "swap them"))
    return out


REQUIRED_BEHAVIOUR = ("bw_eff", "flop_eff", "t_layer_us", "hop_latency_us")
"""Terms a chip must get from somewhere: its own entry or its groups (the rest have neutral defaults)."""


def _resolve_behaviour(entry: Mapping, groups: Mapping, where: str, errs: list[Problem]) -> dict:
    """Behaviour terms a chip inherits from its arch/fabric/software groups: {term: (value, provenance)}.

    A term the chip sets itself is a deviation and wins. The software group's maturity multiplies
    the arch's bw_eff and flop_eff (a less-tuned stack reaches less of the same silicon)."""
    out: dict[str, tuple[Any, Provenance | None]] = {}
    maturity, maturity_prov = 1.0, None
    for kind in ("arch", "fabric", "software"):
        gid = entry.get(kind)
        if gid is None:
            continue
        group = groups[kind].get(gid)
        if group is None:
            errs.append(Problem(f"{where}.{kind}", f"unknown {kind} group '{gid}'",
                                did_you_mean(gid, groups[kind]) or f"known: {', '.join(groups[kind])}"))
            continue
        for term in GROUP_TERMS[kind]:
            if term == "maturity":
                maturity, maturity_prov = float(group[term]), group["provenance"].get(term)
                continue
            if term in entry or term not in group:
                continue
            p = group["provenance"].get(term)
            if p is not None:
                p = Provenance(p.src, p.cite, p.date, p.conf, f"{kind} group {gid}" + (f"; {p.note}" if p.note else ""))
            out[term] = (group[term], p)
    if maturity != 1.0:
        for term in ("bw_eff", "flop_eff", "kv_bw_eff"):
            if term in out:
                v, p = out[term]
                note = f"{p.note if p else ''}; × software {entry.get('software')} maturity {maturity:g}"
                out[term] = (v * maturity, replace(p, note=note.strip("; ")) if p else maturity_prov)
    for term in REQUIRED_BEHAVIOUR:
        if term not in entry and term not in out:
            errs.append(Problem(f"{where}.{term}", "missing behaviour term",
                                f"set {term} on the chip or name an arch/fabric group that has it "
                                "(see catalogs/behaviour.toml)"))
    return out


def _coerce(values: Mapping, spec: Mapping) -> dict:
    out = {}
    for k, v in values.items():
        kind = spec[k][0]
        out[k] = int(v) if kind == "int" else float(v) if kind == "float" else v
    return out


def _model_consistency(entry: Mapping, where: str) -> list[Problem]:
    problems = []
    layers = entry.get("layers", 0)
    ffn_layers = entry.get("dense_ffn_layers", 0) + entry.get("moe_layers", 0)
    if ffn_layers != layers:
        problems.append(Problem(f"{where}.dense_ffn_layers", f"dense_ffn_layers + moe_layers = {ffn_layers}, "
                                f"layers = {layers}", "every layer needs a dense FFN or experts"))
    if entry.get("moe_layers", 0) and not (0 < entry.get("experts_per_token", 0) <= entry.get("experts", 0)):
        problems.append(Problem(f"{where}.experts_per_token", "must be between 1 and experts",
                                "give experts and experts_per_token for MoE layers"))
    if entry.get("moe_layers", 0) and not entry.get("moe_intermediate", 0):
        problems.append(Problem(f"{where}.moe_intermediate", "MoE layers need moe_intermediate > 0"))
    if entry.get("dense_ffn_layers", 0) and not entry.get("dense_intermediate", 0):
        problems.append(Problem(f"{where}.dense_intermediate", "dense layers need dense_intermediate > 0"))
    if entry.get("attention") == "mla" and not entry.get("kv_lora_rank", 0):
        problems.append(Problem(f"{where}.kv_lora_rank", "MLA needs kv_lora_rank > 0"))
    if entry.get("attention") == "gqa" and entry.get("kv_heads", 0) > entry.get("q_heads", 0):
        problems.append(Problem(f"{where}.kv_heads", f"{entry['kv_heads']} KV heads for {entry['q_heads']} query heads",
                                "grouped-query attention shares each KV head among query heads: kv_heads ≤ q_heads"))
    elif entry.get("attention") == "gqa" and entry.get("q_heads", 0) % max(entry.get("kv_heads", 1), 1):
        problems.append(Problem(f"{where}.kv_heads", f"{entry['q_heads']} query heads do not split into "
                                f"{entry['kv_heads']} KV groups", "q_heads must be a multiple of kv_heads"))
    if entry.get("sliding_layers", 0) > layers:
        problems.append(Problem(f"{where}.sliding_layers", "more sliding layers than layers"))
    if entry.get("sliding_layers", 0) and not entry.get("sliding_window_tokens", 0):
        problems.append(Problem(f"{where}.sliding_window_tokens", "sliding layers need a window > 0"))
    return problems


PARAMS_TOLERANCE = 2.0
"""Published parameter counts may differ from the shape's count (rounding, vision towers, MTP heads:
the shipped models are within 7 %); a factor of 2 either way is a wrong shape or a units slip."""


def _published_vs_shape(m, where: str) -> list[Problem]:
    """The published total and active parameters against what layers × hidden × heads imply."""
    from .modelspec import active_params, total_params

    problems = []
    for field, implied in (("published_total_params_b", total_params(m)), ("published_active_params_b", active_params(m))):
        published = getattr(m, field) * 1e9
        if not implied > 0 or not 1 / PARAMS_TOLERANCE <= published / implied <= PARAMS_TOLERANCE:
            problems.append(Problem(f"{where}.{field}", f"{published / 1e9:,.4g} B published, the shape implies "
                                    f"{implied / 1e9:,.4g} B", "check the shape fields (layers, hidden, heads, "
                                    "intermediate sizes, experts) and the published count"))
    return problems


def _check_aliases(entries: Mapping, section: str, problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for key, entry in entries.items():
        for name in (key, *entry.aliases):
            if name in seen and seen[name] != key:
                problems.append(Problem(f"{section}.{key}", f"id or alias '{name}' is also used by '{seen[name]}'",
                                        "give each entry distinct ids and aliases"))
            seen.setdefault(name, key)
