"""Unit conversions, in one place: catalogs speak GB, TB/s, TFLOPS, kW; the model speaks SI."""
from typing import Literal, get_args

GB = 1e9
TB = 1e12
TFLOPS = 1e12
US = 1e-6
HOURS_PER_YEAR = 8760.0

# The MILP's own units (planner/problem.py converts to them once; results convert back):
TOK_S_PER_KTOK_S = 1e3
"""Throughput in the model is k tokens/s."""
USD_PER_MUSD = 1e6
"""The capex objective and budget are M USD."""
KW_PER_MW = 1e3
"""Power in the model is kW; budgets and reports say MW."""

BYTES_PER_PARAM = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5625}
"""Weight bytes per parameter; fp4 includes MX block scales (4.5 bits/param)."""

KV_BYTES_PER_ELEM = {"bf16": 2.0, "fp8": 1.0, "fp4": 1.0}
"""KV-cache element size: 8-bit KV with fp8/fp4 weights (as TRT-LLM and vLLM serve them)."""

ACT_BYTES = 2.0
"""Activation element size on the wire (bf16)."""

Precision = Literal["bf16", "fp8", "fp4"]
"""The catalog precisions; the names users give them are resolved through PRECISION_ALIASES at load."""
PRECISIONS: tuple[Precision, ...] = get_args(Precision)

PRECISION_ALIASES = {
    "bf16": "bf16", "bfloat16": "bf16", "fp16": "bf16", "float16": "bf16", "half": "bf16",
    "fp8": "fp8", "float8": "fp8", "e4m3": "fp8", "fp8_e4m3": "fp8", "mxfp8": "fp8", "int8": "fp8",
    "fp4": "fp4", "nvfp4": "fp4", "mxfp4": "fp4", "float4": "fp4", "int4": "fp4",
}
"""Names users and papers give a precision → the catalog precision that prices it. fp16 and bf16
move the same bytes and run at the same dense rate on every catalog chip, so fp16 maps to bf16;
int8/int4 weights are priced as fp8/fp4 (same bytes; integer peaks equal the fp ones on these chips)."""


def canonical_precision(name: str) -> str | None:
    """The catalog precision for `name` (case-insensitive), or None when unknown."""
    return PRECISION_ALIASES.get(str(name).strip().lower())
