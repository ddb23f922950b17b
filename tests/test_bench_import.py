"""Benchmark imports (#25 item 1): each tool's own file imports, figures checked by hand against the
file's numbers, and malformed, truncated and foreign files are refused by name (exit 2)."""
import csv
import io
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.benchmarks import import_files
from planner.cli import main

BENCH = Path(__file__).parent / "data" / "bench"
FLAGS = dict(chip="h200-sxm", chips=8, model="llama-3.1-70b", precision="fp8")


def _one(name, **flags):
    return import_files([BENCH / name], **{**FLAGS, **flags})[0]


def test_inference_perf_figures_are_the_files_own():
    r = _one("inference-perf-stage_0_lifecycle_metrics.json")
    assert r["measured_by"] == "inference-perf" and r["per_user_basis"] == "tpot"
    assert float(r["tpot_ms"]) == pytest.approx(7.278099, rel=1e-5)  # 0.007278099 s
    assert float(r["per_user_tok_s"]) == pytest.approx(1000 / 7.278099, rel=1e-5)
    assert float(r["ttft_p50_ms"]) == pytest.approx(54.6115, rel=1e-5)  # "median": 0.0546114695 s
    assert float(r["throughput_total_tok_s"]) == pytest.approx(211.507, rel=1e-5)
    assert float(r["throughput_per_chip_tok_s"]) == pytest.approx(211.507 / 8, rel=1e-5)
    assert (float(r["isl_p50"]), float(r["isl_p90"]), float(r["osl_p90"])) == (104.5, 528.1, 544.3)


def test_mlperf_server_summary_ns_become_ms():
    r = import_files([BENCH / "mlperf-llama2-70b-server-mlperf_log_summary.txt"])[0]  # chip etc. from the sidecar
    assert r["hardware"] == "NVIDIA H200-SXM-141GB" and r["chips"] == 8
    assert float(r["ttft_ms"]) == pytest.approx(198.269106, rel=1e-5)
    assert float(r["ttft_p99_ms"]) == pytest.approx(452.744202, rel=1e-5)
    assert float(r["tpot_ms"]) == pytest.approx(123.263268, rel=1e-5)
    assert float(r["throughput_total_tok_s"]) == pytest.approx(29228.22, rel=1e-5)
    assert float(r["osl"]) == pytest.approx(29228.22 / 100.35, rel=1e-4)


def test_mlperf_offline_has_throughput_but_no_speed():
    r = _one("mlperf-llama2-70b-offline-mlperf_log_summary.txt")
    assert r["system_config"] == "Offline" and r["per_user_tok_s"] == ""
    assert float(r["throughput_per_chip_tok_s"]) == pytest.approx(31302.7 / 8, rel=1e-5)


def test_sglang_jsonl_means_from_totals():
    r = _one("sglang-bench_serving-sharegpt.jsonl")
    assert r["measured_by"] == "sglang-jsonl" and r["concurrency_or_batch"] == "256"
    assert float(r["isl_mean"]) == pytest.approx(302118 / 1000, rel=1e-5)
    assert float(r["tpot_ms"]) == pytest.approx(11.8089, rel=1e-5)
    assert float(r["ttft_p99_ms"]) == pytest.approx(327.914, rel=1e-5)


def _cli(*args):
    return CliRunner().invoke(main, ["import-bench", *map(str, args)])


def test_cli_writes_the_points_csv(tmp_path):
    out = tmp_path / "points.csv"
    res = _cli(BENCH / "sglang-bench_serving-sharegpt.jsonl", "--chip", "h200-sxm", "--chips", "8",
               "--model", "llama-3.1-70b", "--precision", "fp8", "--layout", "8x1x1", "-o", out)
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 1 and rows[0]["layout"] == "8x1x1"


def test_a_point_without_chip_is_refused_by_name(tmp_path):
    f = tmp_path / "r.jsonl"
    shutil.copy(BENCH / "sglang-bench_serving-sharegpt.jsonl", f)
    res = _cli(f, "--model", "llama-3.1-70b", "--precision", "fp8")
    assert res.exit_code == 2 and "chip" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("content, word", [
    ('{"successes": {"count": 60, "latency": {"time_to', "truncated"),  # a truncated inference-perf report
    ('{"name": "some other tool", "version": 3}', "foreign"),
])
def test_malformed_truncated_foreign_files_are_named(tmp_path, content, word):
    f = tmp_path / "bench.json"
    f.write_text(content)
    res = _cli(f, *sum((["--" + k, str(v)] for k, v in FLAGS.items()), []))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert word in res.output and str(f) in res.output
