"""Unit conversions, in one place: catalogs speak GB, TB/s, TFLOPS, kW; the model speaks SI."""
GB = 1e9
TB = 1e12
TFLOPS = 1e12
US = 1e-6
KW = 1e3
HOURS_PER_YEAR = 8760.0

BYTES_PER_PARAM = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5625}
"""Weight bytes per parameter; fp4 includes MX block scales (4.5 bits/param)."""

KV_BYTES_PER_ELEM = {"bf16": 2.0, "fp8": 1.0, "fp4": 1.0}
"""KV-cache element size: 8-bit KV with fp8/fp4 weights (as TRT-LLM and vLLM serve them)."""

ACT_BYTES = 2.0
"""Activation element size on the wire (bf16)."""

PRECISIONS = ("bf16", "fp8", "fp4")
