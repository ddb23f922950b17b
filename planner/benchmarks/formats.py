"""One small parser per tool's file; each returns a dict of the measured figures (ms, tok/s, req/s).

A parser only reads what its file says; the importer adds what it does not (chip, layout, model)."""
from __future__ import annotations

import json
import re


def _get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def aiperf_json(data: dict) -> dict:
    """AIPerf `profile_export_aiperf.json`: metrics as {unit, avg, p50, p90, p99} at the top level
    (or under `records`)."""
    m = data.get("records", data)
    s = lambda k, st="avg": _get(m, k, st)  # noqa: E731
    return {"model": _get(data, "input_config", "endpoint", "model_names", 0) if isinstance(
                _get(data, "input_config", "endpoint", "model_names"), list) else None,
            "tpot_ms": s("inter_token_latency"), "per_user_basis": "itl",
            "ttft_ms": s("time_to_first_token"), "ttft_p50_ms": s("time_to_first_token", "p50"),
            "ttft_p90_ms": s("time_to_first_token", "p90"), "ttft_p99_ms": s("time_to_first_token", "p99"),
            "output_tok_s": s("output_token_throughput"), "request_rate_req_s": s("request_throughput"),
            "isl_mean": s("input_sequence_length"), "isl_p50": s("input_sequence_length", "p50"),
            "isl_p90": s("input_sequence_length", "p90"), "osl_mean": s("output_sequence_length"),
            "osl_p50": s("output_sequence_length", "p50"), "osl_p90": s("output_sequence_length", "p90"),
            "concurrency": _get(data, "input_config", "loadgen", "concurrency")}


def vllm_json(data: dict) -> dict:
    """`vllm bench serve --save-result`: flat mean_/median_/p99_ keys in ms, throughputs in tok/s."""
    return {"model": data.get("model_id"), **_flat_serving(data), "concurrency": data.get("max_concurrency")}


def sglang_jsonl(data: dict) -> dict:
    """SGLang `bench_serving` JSONL: one flat record per run, vLLM-like key names."""
    return {"model": data.get("model_id"), **_flat_serving(data), "concurrency": data.get("max_concurrency")}


def _flat_serving(d: dict) -> dict:
    done = d.get("completed") or 0
    basis = "tpot" if d.get("mean_tpot_ms") else "itl"
    return {"tpot_ms": d.get("mean_tpot_ms") or d.get("mean_itl_ms"), "per_user_basis": basis,
            "ttft_ms": d.get("mean_ttft_ms"), "ttft_p50_ms": d.get("median_ttft_ms"),
            "ttft_p90_ms": d.get("p90_ttft_ms"), "ttft_p99_ms": d.get("p99_ttft_ms"),
            "output_tok_s": d.get("output_throughput"), "request_rate_req_s": d.get("request_throughput"),
            "isl_mean": d["total_input_tokens"] / done if done and d.get("total_input_tokens") else None,
            "osl_mean": d["total_output_tokens"] / done if done and d.get("total_output_tokens") else None}


def inference_perf_json(data: dict) -> dict:
    """inference-perf lifecycle report: latencies in seconds, lengths under prompt_len/output_len."""
    lat = lambda k, st="mean": _get(data, "successes", "latency", k, st)  # noqa: E731
    ms = lambda v: None if v is None else v * 1000.0  # noqa: E731
    ln = lambda k, st: _get(data, "successes", k, st)  # noqa: E731
    return {"tpot_ms": ms(lat("time_per_output_token")), "per_user_basis": "tpot",
            "ttft_ms": ms(lat("time_to_first_token")), "ttft_p50_ms": ms(lat("time_to_first_token", "median")),
            "ttft_p90_ms": ms(lat("time_to_first_token", "p90")), "ttft_p99_ms": ms(lat("time_to_first_token", "p99")),
            "output_tok_s": _get(data, "successes", "throughput", "output_tokens_per_sec"),
            "request_rate_req_s": _get(data, "successes", "throughput", "requests_per_sec"),
            "isl_mean": ln("prompt_len", "mean"), "isl_p50": ln("prompt_len", "median"), "isl_p90": ln("prompt_len", "p90"),
            "osl_mean": ln("output_len", "mean"), "osl_p50": ln("output_len", "median"), "osl_p90": ln("output_len", "p90")}


def guidellm_json(data: dict) -> dict:
    """GuideLLM report: `benchmarks[0].metrics.<name>.successful.{mean,median,percentiles}`."""
    b = data["benchmarks"][0]
    m = lambda k, st="mean": _get(b, "metrics", k, "successful", st)  # noqa: E731
    pct = lambda k, p: _get(b, "metrics", k, "successful", "percentiles", p)  # noqa: E731
    return {"tpot_ms": m("time_per_output_token_ms"), "per_user_basis": "tpot",
            "ttft_ms": m("time_to_first_token_ms"), "ttft_p50_ms": m("time_to_first_token_ms", "median"),
            "ttft_p90_ms": pct("time_to_first_token_ms", "p90"), "ttft_p99_ms": pct("time_to_first_token_ms", "p99"),
            "output_tok_s": m("output_tokens_per_second"), "request_rate_req_s": m("requests_per_second"),
            "isl_mean": m("prompt_token_count"), "isl_p50": m("prompt_token_count", "median"),
            "osl_mean": m("output_token_count"), "osl_p50": m("output_token_count", "median"),
            "concurrency": _get(b, "args", "strategy", "streams")}


MLPERF_NS = {"ttft_ms": r"Mean First Token latency \(ns\)\s*:\s*([\d.]+)",
             "ttft_p50_ms": r"50\.00 percentile first token latency \(ns\)\s*:\s*([\d.]+)",
             "ttft_p90_ms": r"90\.00 percentile first token latency \(ns\)\s*:\s*([\d.]+)",
             "ttft_p99_ms": r"99\.00 percentile first token latency \(ns\)\s*:\s*([\d.]+)",
             "tpot_ms": r"Mean Time to Output Token \(ns\)\s*:\s*([\d.]+)"}


def mlperf_summary(text: str) -> dict:
    """LoadGen `mlperf_log_summary.txt`: ns latencies (Server runs only), tokens per second."""
    out: dict = {"per_user_basis": "tpot", "scenario": _re(r"Scenario\s*:\s*(\w+)", text)}
    for key, pattern in MLPERF_NS.items():
        v = _re(pattern, text)
        out[key] = float(v) / 1e6 if v else None
    tok = _re(r"(?:Completed tokens|Tokens) per second\s*:\s*([\d.]+)", text)
    req = _re(r"(?:Completed samples|Samples) per second\s*:\s*([\d.]+)", text)
    out["output_tok_s"] = float(tok) if tok else None
    out["request_rate_req_s"] = float(req) if req else None
    if out["output_tok_s"] and out["request_rate_req_s"]:
        out["osl_mean"] = out["output_tok_s"] / out["request_rate_req_s"]
    return out


def mlperf_detail(text: str) -> dict:
    """LoadGen `mlperf_log_detail.txt`: `:::MLLOG {json}` lines keyed result_* (latencies in ns)."""
    vals = {}
    for line in text.splitlines():
        if line.startswith(":::MLLOG"):
            rec = json.loads(line[len(":::MLLOG"):])
            vals[rec.get("key")] = rec.get("value")
    ns = lambda k: vals[k] / 1e6 if isinstance(vals.get(k), (int, float)) else None  # noqa: E731
    tok = vals.get("result_completed_tokens_per_second") or vals.get("result_tokens_per_second")
    return {"per_user_basis": "tpot", "scenario": vals.get("effective_scenario"),
            "ttft_ms": ns("result_first_token_mean_latency_ns"), "tpot_ms": ns("result_time_per_output_token_mean_ns"),
            "output_tok_s": tok, "request_rate_req_s": vals.get("result_completed_samples_per_sec")
            or vals.get("result_samples_per_second")}


def _re(pattern: str, text: str):
    m = re.search(pattern, text)
    return m.group(1) if m else None
