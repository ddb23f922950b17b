#!/usr/bin/env python3
"""Derive per-GPU performance figures from NVIDIA aiconfigurator-core's measured operator tables.

Standalone: the planner never imports this file.  Run

    python catalogs/derive/aiconfigurator.py [--out DIR] [--data DIR]

Inputs: the parquet tables shipped in the ``aiconfigurator-core`` wheel (0.12.0, Apache-2.0),
``aiconfigurator_core/systems/data/<gpu>/<op>/<framework>/<version>/<file>`` for
gpu in h100_sxm, h200_sxm, b200_sxm, b300_sxm, gb200, gb300:

  comm/trtllm/1.3.0rc20/custom_allreduce_perf.parquet   TensorRT-LLM custom all-reduce (bf16)
  comm/nccl/2.29.2/nccl_perf.parquet                    NCCL all_reduce / alltoall (half)
  gemm/trtllm/1.3.0rc20/gemm_perf.parquet               GEMM, dtypes bfloat16 / fp8 / fp8_block / nvfp4
  attention/trtllm/1.3.0rc20/generation_attention_perf.parquet   decode attention, bf16 or fp8 KV

Table conventions (from the aiconfigurator collectors): ``latency`` is in ms; comm
``message_size`` is an element count (bf16/half, 2 bytes); GEMM is (m x k) @ (k x n), the weight
is n x k; generation attention ``step`` is the number of cached tokens, so context = step + 1.

Outputs (default locations in this repo; ``--out DIR`` writes both files into DIR instead):

  catalogs/derive/aiconfigurator-derived.toml   figures per GPU, each with a ``source`` string
  tests/data/aic_decode_layer.csv               one-layer decode time, summed from operators

How:
  all-reduce   latency = alpha_us + ring_bytes / beta_gbs, ring_bytes = 2(n-1)/n x message bytes,
               fitted on messages 1 KiB-64 MiB by least squares on log(latency) (relative error),
               with alpha, 1/beta >= 0.  The per-GPU headline ("node") is the n = 8 fit (n = 4 on
               gb200, whose tables stop there) plus a refit on the decode range 8 KiB-2 MiB.
               NCCL all_reduce is fitted the same way; NCCL alltoall uses (n-1)/n x message bytes.
  GEMM         on (n, k) in {8192, 16384}^2 (large-layer shapes measured up to m = 32768):
               eff(m) = 2mnk / latency / dense peak, fitted to eff_max * m / (m + m_half) by least
               squares on log(eff) at m = 1, 2, 4, ..., 32768 (each octave weighs the same);
               weight-bandwidth efficiency = n*k*bytes/latency / HBM at m = 1, 8, 32 (median over
               the four shapes).  Dtypes bfloat16, fp8 (per-tensor), fp8_block, nvfp4 where present.
  attention    64 q / 8 kv heads, head_dim 128: KV bytes read = batch * context * 8 * 128 * 2 * bytes;
               fraction of HBM bandwidth; median over batch*context >= 2^18 tokens.
  floors       minimum measured latency at tiny shapes (GEMM m <= 16, n, k <= 256; attention
               batch 1, context <= 128).
  test set     GEMMs by trilinear interpolation of log(latency) in (log m, log n, log k) between
               the measured grid points that bracket the shape (no extrapolation; exact points are
               used as-is); attention and all-reduce only at measured points; rows that need an
               unmeasured point are skipped and counted in the TOML.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import itertools
import json
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

DATE = "2026-12-01"
TRTLLM = "1.3.0rc20"
NCCL = "2.29.2"
GPUS = ["h100_sxm", "h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300"]
PEAK_TFLOPS = {  # dense, per GPU
    "h100_sxm": {"bf16": 989, "fp8": 1979},
    "h200_sxm": {"bf16": 989, "fp8": 1979},
    "b200_sxm": {"bf16": 2250, "fp8": 4500, "fp4": 9000},
    "gb200": {"bf16": 2500, "fp8": 5000, "fp4": 10000},
    "b300_sxm": {"bf16": 2250, "fp8": 4500, "fp4": 13500},
    "gb300": {"bf16": 2500, "fp8": 5000, "fp4": 15000},
}
HBM_TBS = {"h100_sxm": 3.35, "h200_sxm": 4.8, "b200_sxm": 8.0, "gb200": 8.0, "b300_sxm": 8.0, "gb300": 8.0}
# table dtype -> (peak key, weight bytes per element); nvfp4 counts its e4m3 scale per 16 weights
GEMM_DTYPES = {"bfloat16": ("bf16", 2.0), "fp8": ("fp8", 1.0), "fp8_block": ("fp8", 1.0), "nvfp4": ("fp4", 0.5625)}
KV_BYTES = {"fp8": 1, "bfloat16": 2}
FIT_SHAPES = [(8192, 8192), (8192, 16384), (16384, 8192), (16384, 16384)]
CURVE_M = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768]
AR_MIN_BYTES, AR_MAX_BYTES = 1 << 10, 64 << 20
DECODE_BYTES = (8 << 10, 2 << 20)
MODELS = {  # hidden, q heads, kv heads, head_dim, FFN intermediate (SwiGLU)
    "llama-3.1-70b": (8192, 64, 8, 128, 28672),
    "llama-3.1-8b": (4096, 32, 8, 128, 14336),
}
TPS, BATCHES, CONTEXTS = [1, 2, 4, 8], [1, 8, 32, 128], [2048, 8192]
WEIGHT_DTYPE, KV_DTYPE = "fp8", "fp8"
REPO = Path(__file__).resolve().parents[2]


class Tables:
    def __init__(self, root: Path, version: str):
        self.root, self.version = root, version

    def load(self, gpu: str, op: str, fw: str, ver: str, name: str) -> tuple[pd.DataFrame, str]:
        folder = self.root / gpu / op / fw / ver
        meta = folder / "collection_meta.yaml"
        prov = re.search(r"^provenance:\s*(\S+)", meta.read_text(), re.M) if meta.exists() else None
        src = (f"aiconfigurator-core {self.version} systems/data/{gpu}/{op}/{fw}/{ver}/{name}"
               f" ({prov.group(1) if prov else 'no collection_meta'}); derived {DATE}")
        return pd.read_parquet(folder / name), src


def sig(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}")


def fit_alpha_beta(x_bytes: np.ndarray, t_us: np.ndarray) -> dict:
    """t = alpha + x / beta, least squares on log t; beta in GB/s (1 GB/s = 1e3 bytes/us)."""
    a = np.c_[np.ones_like(x_bytes), x_bytes] / t_us[:, None]  # relative-weighted linear start
    p0 = np.maximum(np.linalg.lstsq(a, np.ones_like(t_us), rcond=None)[0], [0.1, 1e-9])
    res = least_squares(lambda q: np.log(np.exp(q[0]) + np.exp(q[1]) * x_bytes) - np.log(t_us), np.log(p0))
    alpha, inv = np.exp(res.x)
    rel = (alpha + inv * x_bytes) / t_us - 1
    return {"alpha_us": sig(alpha), "beta_gbs": sig(1e-3 / inv), "max_rel_err": sig(np.abs(rel).max(), 3),
            "n_points": len(t_us)}


def comm_fits(df: pd.DataFrame, factor) -> dict:
    out = {}
    for n, d in df.groupby("num_gpus"):
        nbytes = d.message_size.to_numpy(float) * 2
        keep = (nbytes >= AR_MIN_BYTES) & (nbytes <= AR_MAX_BYTES)
        out[f"n{n}"] = fit_alpha_beta(factor(n) * nbytes[keep], d.latency.to_numpy(float)[keep] * 1e3)
    return out


def allreduce(t: Tables, gpu: str) -> dict:
    ar, src = t.load(gpu, "comm", "trtllm", TRTLLM, "custom_allreduce_perf.parquet")
    ar = ar[ar.allreduce_dtype == "bfloat16"]
    out = {"source": src, "table": "TensorRT-LLM custom all-reduce (AUTO strategy), bf16",
           **comm_fits(ar, lambda n: 2 * (n - 1) / n)}
    node_n = 8 if 8 in set(ar.num_gpus) else int(ar.num_gpus.max())
    head = out[f"n{node_n}"]
    out["node"] = {"n": node_n, "alpha_us": head["alpha_us"], "beta_gbs": head["beta_gbs"],
                   "note": f"decode TP all-reduce inside one node/NVLink domain: the n={node_n} fit"}
    d = ar[ar.num_gpus == node_n].set_index("message_size").latency
    dec = d[(d.index * 2 >= DECODE_BYTES[0]) & (d.index * 2 <= DECODE_BYTES[1])]
    fit = fit_alpha_beta(2 * (node_n - 1) / node_n * 2 * dec.index.to_numpy(float), dec.to_numpy() * 1e3)
    out["node"].update({f"decode_{k}": v for k, v in fit.items()})
    out["node"]["decode_range"] = "messages 8 KiB-2 MiB (batch 1-128 x hidden 4096-8192 x 2 B)"
    out["node"]["measured_us"] = {f"{kib}KiB": sig(d[kib * 512] * 1e3) for kib in (16, 64, 256, 1024)}
    nc, nsrc = t.load(gpu, "comm", "nccl", NCCL, "nccl_perf.parquet")
    nc = nc[nc.nccl_dtype == "half"]
    nccl_ar = {"source": nsrc, **comm_fits(nc[nc.op_name == "all_reduce"], lambda n: 2 * (n - 1) / n)}
    a2a = {"source": nsrc, "bytes": "(n-1)/n x message bytes per rank",
           **comm_fits(nc[nc.op_name == "alltoall"], lambda n: (n - 1) / n)}
    return {"allreduce": out, "allreduce_nccl": nccl_ar, "alltoall_nccl": a2a}


def gemm(t: Tables, gpu: str) -> tuple[dict, pd.DataFrame]:
    df, src = t.load(gpu, "gemm", "trtllm", TRTLLM, "gemm_perf.parquet")
    out, hbm = {}, HBM_TBS[gpu] * 1e12
    for dtype, (pk, bpe) in GEMM_DTYPES.items():
        d = df[df.gemm_dtype == dtype]
        if d.empty or pk not in PEAK_TFLOPS[gpu]:
            continue
        peak = PEAK_TFLOPS[gpu][pk]
        s = d[[(n, k) in FIT_SHAPES for n, k in zip(d.n, d.k)]].copy()
        sec = s.latency * 1e-3
        s["eff"] = 2 * s.m * s.n * s.k / sec / (peak * 1e12)
        s["bw_eff"] = s.n * s.k * bpe / sec / hbm
        octave = s[s.m.isin(CURVE_M)]  # powers of two only: every octave of m weighs the same
        m, eff = octave.m.to_numpy(float), octave.eff.to_numpy()
        res = least_squares(lambda q: q[0] - np.log1p(np.exp(q[1]) / m) - np.log(eff),
                            [np.log(eff.max()), np.log(np.median(m))])
        med = s.groupby("m")[["eff", "bw_eff"]].median()
        tiny = d[(d.m <= 16) & (d.n <= 256) & (d.k <= 256)]
        out[dtype] = {
            "source": src, "kernel_source": ",".join(sorted(d.kernel_source.unique())),
            "peak_tflops": peak, "weight_bytes_per_element": bpe, "fit_shapes_nk": [list(x) for x in FIT_SHAPES],
            "eff_max": sig(np.exp(res.x[0]), 3), "m_half": sig(np.exp(res.x[1]), 3),
            "fit_max_rel_err": sig(np.abs(np.expm1(res.fun)).max(), 3),
            "m_half_roofline": sig(bpe * peak / (2 * HBM_TBS[gpu]), 3),
            "eff_plateau": sig(s.eff[s.m >= 4096].median(), 3),
            "eff_per_m_small": sig((s.eff / s.m)[s.m <= 16].median(), 3),
            "max_tflops_fit_shapes": sig((s.eff * peak).max()),
            "max_tflops_any_shape": sig((2 * d.m * d.n * d.k / (d.latency * 1e-3) / 1e12).max()),
            **{f"bw_eff_m{mm}": sig(med.bw_eff[mm], 3) for mm in (1, 8, 32)},
            "floor_us": sig(tiny.latency.min() * 1e3, 3),
            "curve_m": CURVE_M, "curve_eff": [sig(med.eff[mm], 3) for mm in CURVE_M],
            "curve_bw_eff": [sig(med.bw_eff[mm], 3) for mm in CURVE_M],
        }
    return out, df


def attention(t: Tables, gpu: str) -> tuple[dict, pd.DataFrame]:
    df, src = t.load(gpu, "attention", "trtllm", TRTLLM, "generation_attention_perf.parquet")
    d = df[(df.head_dim == 128) & (df.window_size == 0) & (df.beam_width == 1)
           & (df.num_heads == 64) & (df.num_key_value_heads == 8)]
    out = {}
    for kv, bpe in KV_BYTES.items():
        s = d[d.kv_cache_dtype == kv]
        ctx = s.step + 1
        frac = s.batch_size * ctx * 8 * 128 * 2 * bpe / (s.latency * 1e-3) / (HBM_TBS[gpu] * 1e12)
        lut = dict(zip(zip(s.batch_size, ctx), zip(s.latency * 1e3, frac)))
        pts = [{"batch": b, "context": c, "us": sig(lut[b, c][0]), "kv_bw_frac": sig(lut[b, c][1], 3)}
               for b, c in itertools.product(BATCHES, CONTEXTS) if (b, c) in lut]
        large = frac[s.batch_size * ctx >= 1 << 18]
        out[f"kv_{kv}"] = {
            "source": src, "shape": "64 q heads, 8 kv heads, head_dim 128, bf16 activations",
            "kv_bytes_per_element": bpe, "median_kv_bw_frac_large": sig(large.median(), 3),
            "large_points": int(large.size), "large_rule": "batch * context >= 262144 tokens",
            "max_kv_bw_frac": sig(frac.max(), 3),
            "floor_us": sig(s[(s.batch_size == 1) & (ctx <= 128)].latency.min() * 1e3, 3),
            "points": pts,
        }
    return out, df


def interp(lut: dict, grids: list[np.ndarray], point: tuple) -> tuple[float, list[int]]:
    """Multilinear interpolation of log(latency) in log coordinates; NaN if outside or a corner is missing."""
    brackets, moved = [], []
    for axis, (g, x) in enumerate(zip(grids, point)):
        i = int(np.searchsorted(g, x))
        if i < len(g) and g[i] == x:
            brackets.append([(g[i], 1.0)])
            continue
        if i == 0 or i == len(g):
            return float("nan"), moved
        w = np.log(x / g[i - 1]) / np.log(g[i] / g[i - 1])
        brackets.append([(g[i - 1], 1 - w), (g[i], w)])
        moved.append(axis)
    acc = 0.0
    for corner in itertools.product(*brackets):
        key = tuple(int(c[0]) for c in corner)
        if key not in lut:
            return float("nan"), moved
        acc += np.prod([c[1] for c in corner]) * np.log(lut[key])
    return float(np.exp(acc)), moved


def test_set(t: Tables, gpu: str, gemm_df: pd.DataFrame, attn_df: pd.DataFrame, skipped: dict) -> list[dict]:
    g = gemm_df[gemm_df.gemm_dtype == WEIGHT_DTYPE]
    g_lut = dict(zip(zip(g.m, g.n, g.k), g.latency * 1e3))
    g_grid = [np.sort(g[c].unique()) for c in ("m", "n", "k")]
    a = attn_df[(attn_df.head_dim == 128) & (attn_df.window_size == 0) & (attn_df.beam_width == 1)
                & (attn_df.kv_cache_dtype == KV_DTYPE)]
    a_lut = dict(zip(zip(a.num_heads, a.num_key_value_heads, a.batch_size, a.step + 1), a.latency * 1e3))
    ar, _ = t.load(gpu, "comm", "trtllm", TRTLLM, "custom_allreduce_perf.parquet")
    ar_lut = dict(zip(zip(ar.num_gpus, ar.message_size), ar.latency * 1e3))
    src = (f"aiconfigurator-core {t.version} {gpu} trtllm/{TRTLLM} gemm_perf[{WEIGHT_DTYPE}]"
           f"+generation_attention_perf[kv {KV_DTYPE}]+custom_allreduce_perf; {DATE}")
    rows = []
    for (model, (h, q, kv, hd, inter)), tp, b, c in itertools.product(MODELS.items(), TPS, BATCHES, CONTEXTS):
        gemms, notes = {}, []
        for name, n, k in [("qkv", (q + 2 * kv) * hd // tp, h), ("o", h, q * hd // tp),
                           ("gate_up", 2 * inter // tp, h), ("down", h, inter // tp)]:
            gemms[name], moved = interp(g_lut, g_grid, (b, n, k))
            notes += [f"{name}:{'mnk'[ax]}" for ax in moved]
        attn = a_lut.get((q // tp, kv // tp, b, c), float("nan"))
        ar_us = 0.0 if tp == 1 else 2 * ar_lut.get((tp, b * h), float("nan"))
        if np.isnan(attn):
            skipped["attention point not measured"] = skipped.get("attention point not measured", 0) + 1
            continue
        if np.isnan(ar_us):
            skipped[f"all-reduce n={tp} not measured"] = skipped.get(f"all-reduce n={tp} not measured", 0) + 1
            continue
        if any(np.isnan(v) for v in gemms.values()):
            skipped["GEMM outside the measured grid"] = skipped.get("GEMM outside the measured grid", 0) + 1
            continue
        ffn = gemms["gate_up"] + gemms["down"]
        rows.append({
            "model": model, "gpu": gpu, "dtype": WEIGHT_DTYPE, "tp": tp, "batch": b, "context": c,
            "qkv_gemm_us": gemms["qkv"], "attn_us": attn, "o_gemm_us": gemms["o"], "ffn_gemm_us": ffn,
            "allreduce_us": ar_us, "layer_us": gemms["qkv"] + attn + gemms["o"] + ffn + ar_us,
            "source": src, "kv_dtype": KV_DTYPE, "interp": ";".join(notes),
        })
    return rows


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    return "[" + ", ".join(toml_value(x) for x in v) + "]"


def toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def toml_tables(path: str, d: dict) -> list[str]:
    scalars = {k: v for k, v in d.items() if not isinstance(v, dict) or k == "measured_us"}
    lines = [f"\n[{path}]"] + [f"{toml_key(k)} = {toml_value(v)}" for k, v in scalars.items()]
    for k, v in d.items():
        if isinstance(v, dict) and k != "measured_us":
            lines += toml_tables(f"{path}.{toml_key(k)}", v)
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write both outputs into DIR (default: their places in the repo)")
    ap.add_argument("--data", type=Path, help="aiconfigurator_core/systems/data (default: the installed wheel)")
    args = ap.parse_args()
    root = args.data
    if root is None:
        spec = importlib.util.find_spec("aiconfigurator_core")
        if spec is None:
            sys.exit("aiconfigurator-core is not installed; pass --data DIR")
        root = Path(spec.submodule_search_locations[0]) / "systems" / "data"
    t = Tables(root, importlib.metadata.version("aiconfigurator-core") if args.data is None else "(--data)")
    toml_out = (args.out or REPO / "catalogs" / "derive") / "aiconfigurator-derived.toml"
    csv_out = (args.out or REPO / "tests" / "data") / "aic_decode_layer.csv"

    gpus, rows, skipped = {}, [], {}
    for gpu in GPUS:
        g, gdf = gemm(t, gpu)
        a, adf = attention(t, gpu)
        comm = allreduce(t, gpu)
        floors = {f"gemm_{k}_us": v["floor_us"] for k, v in g.items()}
        floors.update({f"attention_{k}_us": v["floor_us"] for k, v in a.items()})
        floors["note"] = "minimum measured latency at tiny shapes: a launch/overhead proxy"
        floors["source"] = next(iter(g.values()))["source"] + " | " + a["kv_fp8"]["source"]
        gpus[gpu] = {"hbm_tbs": HBM_TBS[gpu], "peaks_source": "dense peaks and HBM bandwidth given with the"
                     " derivation brief (planner figures, not aiconfigurator's)",
                     "dense_peak_tflops": PEAK_TFLOPS[gpu], **comm,
                     "gemm": g, "attention": a, "kernel_floor": floors}
        rows += test_set(t, gpu, gdf, adf, skipped)

    csv_out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(csv_out, index=False, float_format="%.3f")
    meta = {
        "generator": "catalogs/derive/aiconfigurator.py", "aiconfigurator_core": t.version, "date": DATE,
        "license": "aiconfigurator-core data: Apache-2.0 (NVIDIA)",
        "units": "latency us; bandwidth GB/s (1e9 B/s); efficiencies are fractions of the dense peak / HBM",
        "allreduce_model": "latency_us = alpha_us + ring_bytes / (beta_gbs * 1e3), ring_bytes = 2(n-1)/n x bytes",
        "allreduce_fit": "least squares on log(latency), messages 1 KiB-64 MiB (bf16 elements x 2 bytes)",
        "max_rel_err": "max |fit / measured - 1| over the fitted points",
        "gemm_model": "eff(m) = eff_max * m / (m + m_half), eff = 2mnk / latency / dense peak",
        "gemm_fit": "least squares on log(eff) over fit_shapes_nk and m = 1, 2, 4, ..., 32768",
        "eff_plateau": "median eff at m >= 4096; eff_per_m_small: median eff / m at m <= 16 (compare eff_max / m_half)",
        "m_half_roofline": "bytes_per_element * peak / (2 * HBM): m_half of an ideal roofline",
        "bw_eff": "n * k * weight_bytes_per_element / latency / HBM, median over fit_shapes_nk",
        "attention_kv_bw": "batch * context * kv_heads * head_dim * 2 (K,V) * bytes / latency / HBM",
    }
    test_meta = {"file": "tests/data/aic_decode_layer.csv", "rows": len(rows), "weights": WEIGHT_DTYPE,
                 "kv_cache": KV_DTYPE, "models": list(MODELS), "gpus": GPUS, "tp": TPS, "batch": BATCHES,
                 "context": CONTEXTS, "skipped": skipped,
                 "layer_us": "qkv + attention + o + (gate_up + down) + 2 all-reduces of batch x hidden x 2 B at n = tp",
                 "gemm_interpolation": "trilinear in (log m, log n, log k) on log(latency); `interp` column"
                                       " names the GEMM and axis that were interpolated"}
    lines = [f"# Derived by catalogs/derive/aiconfigurator.py on {DATE} from aiconfigurator-core {t.version}.",
             "# Regenerate: python catalogs/derive/aiconfigurator.py   (do not edit by hand)"]
    lines += toml_tables("meta", meta) + toml_tables("test_set", test_meta)
    for gpu, d in gpus.items():
        lines += toml_tables(f"gpu.{gpu}", d)
    toml_out.parent.mkdir(parents=True, exist_ok=True)
    toml_out.write_text("\n".join(lines) + "\n")
    tomllib.loads(toml_out.read_text())  # the emitter must produce valid TOML
    print(f"wrote {toml_out} and {csv_out} ({len(rows)} rows; skipped {skipped})")
    for gpu, d in gpus.items():
        nd, gm = d["allreduce"]["node"], d["gemm"]
        print(f"{gpu:9s} AR n={nd['n']}: alpha {nd['alpha_us']} us beta {nd['beta_gbs']} GB/s | " + " | ".join(
            f"{k} eff_max {v['eff_max']} m_half {v['m_half']} bw@1 {v['bw_eff_m1']}" for k, v in gm.items())
            + f" | attn kv_fp8 {d['attention']['kv_fp8']['median_kv_bw_frac_large']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
