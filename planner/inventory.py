"""Catalog views: tidy rows for `fleet catalog list` and `fleet catalog show`, units in the keys."""
from __future__ import annotations

from . import modelspec as ms
from .catalog import CHIP_FIELDS, MODEL_FIELDS, Catalog
from .errors import CatalogError

CHIP_COLUMNS = ["id", "class", "mem_gb", "mem_bw_tbs", "bf16_tflops", "fp8_tflops", "fp4_tflops",
                "power_kw", "price_usd", "system_name", "chips_per_system", "scaleup_domain_chips"]
CHIP_HEADERS = {"mem_gb": "mem (GB)", "mem_bw_tbs": "bw (TB/s)", "bf16_tflops": "bf16 (TFLOPS)",
                "fp8_tflops": "fp8 (TFLOPS)", "fp4_tflops": "fp4 (TFLOPS)", "power_kw": "power (kW)",
                "price_usd": "price (USD)", "system_name": "system", "chips_per_system": "chips/system",
                "scaleup_domain_chips": "scale-up (chips)"}
MODEL_COLUMNS = ["id", "name", "attention", "layers", "total_params_b", "active_params_b",
                 "attn_params_b", "ffn_total_params_b", "experts", "experts_per_token",
                 "kv_bytes_per_token_bf16"]
MODEL_HEADERS = {"total_params_b": "total (B params)", "active_params_b": "active (B params)",
                 "attn_params_b": "attention (B)", "ffn_total_params_b": "FFN+experts (B)",
                 "experts_per_token": "experts/token", "kv_bytes_per_token_bf16": "KV (B/token, bf16)"}


def chip_rows(catalog: Catalog) -> list[dict]:
    rows = []
    for c in catalog.chips.values():
        row = {k: getattr(c, k) for k in CHIP_COLUMNS if k not in ("id", "class")}
        rows.append({"id": c.id, "class": c.chip_class, **row})
    return rows


def model_rows(catalog: Catalog) -> list[dict]:
    rows = []
    for m in catalog.models.values():
        s = ms.summary(m)
        rows.append({"id": m.id, "name": m.name, "attention": m.attention, "layers": m.layers,
                     **{k: round(v, 3) for k, v in s.items() if k != "kv_bytes_per_token_bf16"},
                     "experts": m.experts, "experts_per_token": m.experts_per_token,
                     "kv_bytes_per_token_bf16": int(s["kv_bytes_per_token_bf16"])})
    return rows


def entry_rows(catalog: Catalog, key: str) -> tuple[str, list[dict]]:
    """(title, rows of field/value/unit/confidence/source/date/note) for one chip or model."""
    try:
        chip = catalog.chip(key)
    except CatalogError:
        chip = None
    if chip is not None:
        title = f"{chip.id}: {chip.name} ({chip.chip_class}, {chip.system_name})"
        return title, _rows(chip, CHIP_FIELDS, {"class": chip.chip_class})
    try:
        model = catalog.model(key)
    except CatalogError:
        names = list(catalog.chips) + list(catalog.models)
        from .errors import Problem, did_you_mean

        raise CatalogError(f"no chip or model '{key}'", [Problem("ID", f"unknown id '{key}'",
                           did_you_mean(key, names) or "see `fleet catalog list chips|models`")])
    title = f"{model.id}: {model.name}"
    rows = _rows(model, MODEL_FIELDS, {})
    for k, v in ms.summary(model).items():
        rows.append({"field": k, "value": round(v, 4), "unit": _unit(k), "confidence": "estimate",
                     "source": "derived by planner/modelspec.py from the figures above", "date": "", "note": ""})
    return title, rows


DEFAULTED = ("annual_failure_rate", "mttr_hours")
"""Chip fields where 0 means 'the economics default'."""


def _rows(entry, spec, extra) -> list[dict]:
    rows = []
    for name, (_, _, _, desc) in spec.items():
        value = extra.get(name, getattr(entry, name, None))
        if value in (None, (), "") or name in ("name", "aliases"):
            continue
        if name in DEFAULTED and value == 0:  # 0 = the chip gives none: the economics default applies
            rows.append({"field": name, "value": "economics default", "unit": _unit(name), "confidence": "default",
                         "source": f"economics.{name} (catalogs/economics.toml)", "date": "", "note": desc})
            continue
        p = entry.provenance.get(name)
        rows.append({"field": name, "value": value, "unit": _unit(name), "confidence": p.conf if p else "",
                     "source": p.cite if p else "", "date": p.date if p else "", "note": p.note if p else desc})
    return rows


def _unit(name: str) -> str:
    for suffix, unit in (("_gb", "GB"), ("_tbs", "TB/s"), ("_tflops", "TFLOPS"), ("_kw", "kW"),
                         ("_usd", "USD"), ("_gbs", "GB/s"), ("_us", "µs"), ("_chips", "chips"),
                         ("_params_b", "B params"), ("_bf16", "bytes"), ("_tokens", "tokens"),
                         ("_year", "year")):
        if name.endswith(suffix):
            return unit
    return ""
