"""Detect a benchmark file's format, add what it does not say (flags, then a FILE.fleet.toml sidecar),
and write measured-point rows; a point without chip, chips, model or precision is refused by name."""
from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path

from ..errors import PlannerError, Problem
from . import formats

COLUMNS = ["id", "kind", "measured_by", "category", "model", "precision", "hardware", "chips", "system_config",
           "isl", "osl", "concurrency_or_batch", "per_user_tok_s", "per_user_basis", "throughput_total_tok_s",
           "throughput_per_chip_tok_s", "ttft_ms", "tpot_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
           "request_rate_req_s", "layout", "isl_mean", "isl_p50", "isl_p90", "osl_mean", "osl_p50", "osl_p90",
           "source", "source_date", "notes"]
REQUIRED = ("chip", "chips", "model", "precision")


def _refuse(path, what, fix):
    raise PlannerError(f"{path}: not an importable benchmark file", [Problem(str(path), what, fix)])


def detect(path: Path, text: str) -> tuple[str, dict]:
    """(format name, parsed figures); a named error for a malformed, truncated or foreign file."""
    if "MLPerf Results Summary" in text:
        return "mlperf-summary", formats.mlperf_summary(text)
    if text.lstrip().startswith(":::MLLOG"):
        try:
            return "mlperf-detail", formats.mlperf_detail(text)
        except json.JSONDecodeError as exc:
            _refuse(path, f"a :::MLLOG line is not JSON ({exc.msg})", "pass the whole mlperf_log_detail.txt")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    try:
        data = json.loads(text) if len(lines) != 1 or not path.suffix == ".jsonl" else json.loads(lines[-1])
    except json.JSONDecodeError:
        try:
            data = json.loads(lines[-1]) if lines else None  # JSONL: the last run
        except json.JSONDecodeError as exc:
            _refuse(path, f"not JSON, JSONL or an MLPerf log (truncated? {exc.msg} at char {exc.pos})",
                    "pass an AIPerf, GuideLLM, vLLM, SGLang, inference-perf or MLPerf file as the tool wrote it")
    if not isinstance(data, dict):
        _refuse(path, "JSON that is not an object", "pass the tool's result file")
    if "successes" in data and "load_summary" in data:
        return "inference-perf", formats.inference_perf_json(data)
    if isinstance(data.get("benchmarks"), list) and data["benchmarks"]:
        return "guidellm", formats.guidellm_json(data)
    if "time_to_first_token" in data or "time_to_first_token" in (data.get("records") or {}):
        return "aiperf-json", formats.aiperf_json(data)
    if "mean_ttft_ms" in data and "total_output_tokens_retokenized" in data:
        return "sglang-jsonl", formats.sglang_jsonl(data)
    if "mean_ttft_ms" in data:
        return "vllm-json", formats.vllm_json(data)
    _refuse(path, "a JSON file of no known benchmark tool (foreign file?)",
            "pass an AIPerf, GuideLLM, vLLM, SGLang, inference-perf or MLPerf result")


def is_benchmark_file(path: str | Path) -> bool:
    """True for anything but a CSV (the project's own points): `fleet calibrate` imports it on the fly."""
    return Path(path).suffix.lower() != ".csv"


def _sidecar(path: Path) -> dict:
    side = path.with_name(path.name + ".fleet.toml")
    if not side.exists():
        return {}
    try:
        return tomllib.loads(side.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise PlannerError(f"{side} is not valid TOML", [Problem(str(side), str(exc), "fix the sidecar")])


def _fmt(v) -> str:
    return "" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))


def point_row(path: Path, flags: dict) -> dict:
    """One measured-point row for `path`; flags win over the sidecar, the sidecar over the file."""
    text = path.read_text(errors="replace")
    name, m = detect(path, text)
    given = {**{k: v for k, v in _sidecar(path).items()}, **{k: v for k, v in flags.items() if v is not None}}
    given.setdefault("model", m.get("model"))
    missing = [k for k in REQUIRED if not given.get(k)]
    if missing:
        raise PlannerError(f"{path}: the point lacks {', '.join(missing)}", [Problem(
            str(path), f"{name} files do not say {', '.join(missing)}",
            f"pass --{' --'.join(missing)} or write them in {path.name}.fleet.toml")])
    tpot, tok = m.get("tpot_ms"), m.get("output_tok_s")
    if not tpot and not tok:
        _refuse(path, f"{name} file without a speed or a throughput (truncated?)", "pass the complete result file")
    chips = int(given["chips"])
    row = {"id": given.get("id") or path.name, "kind": "measured", "measured_by": name, "category": "import",
           "model": given["model"], "precision": given["precision"], "hardware": given["chip"], "chips": chips,
           "system_config": m.get("scenario") or "", "isl": _fmt(m.get("isl_mean")), "osl": _fmt(m.get("osl_mean")),
           "concurrency_or_batch": _fmt(m.get("concurrency")),
           "per_user_tok_s": _fmt(1000.0 / tpot if tpot else None), "per_user_basis": m.get("per_user_basis", ""),
           "throughput_total_tok_s": _fmt(tok), "throughput_per_chip_tok_s": _fmt(tok / chips if tok else None),
           "layout": given.get("layout", ""), "source": str(path), "source_date": given.get("source_date", ""),
           "notes": "throughput is output tokens/s"}
    for k in ("ttft_ms", "tpot_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "request_rate_req_s",
              "isl_mean", "isl_p50", "isl_p90", "osl_mean", "osl_p50", "osl_p90"):
        row[k] = _fmt(m.get(k))
    return row


def import_files(paths, chip=None, chips=None, model=None, precision=None, layout=None) -> list[dict]:
    """Rows for every file, in order; a missing or unreadable file is a named error."""
    flags = {"chip": chip, "chips": chips, "model": model, "precision": precision, "layout": layout}
    rows = []
    for p in map(Path, paths):
        if not p.is_file():
            raise PlannerError(f"{p} not found", [Problem(str(p), "no such file", "check the path")])
        rows.append(point_row(p, flags))
    return rows


def write_points(rows: list[dict], out_path: str | None) -> str:
    """The CSV text; written atomically to `out_path` when given."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    if out_path:
        from ..reports import write_atomic

        write_atomic(out_path, buf.getvalue(), force=True)
    return buf.getvalue()
