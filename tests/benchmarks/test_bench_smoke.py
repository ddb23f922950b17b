"""Benchmark smoke run: every section runs at tiny size and reports sane figures (no timing asserts)."""
import pytest

import bench


@pytest.mark.benchmark
@pytest.mark.slow
def test_benchmarks_smoke(tmp_path):
    out = bench.main(["--smoke", "--json", str(tmp_path / "b.json")])
    assert not any(r["imports_pyomo"] for r in out["startup"])
    assert out["plan"][0]["status"] in ("optimal", "feasible")
    limit = out["limit"][0]
    assert limit["highs_objective"] == pytest.approx(limit["objective"], rel=2e-3)
    assert all(r["status"] in ("optimal", "feasible", "time_limit") for r in out["scaling"])
    assert out["candidates"][0]["rows"] == 100_000
    sweeps = [r for r in out["studies"] if r["study"].startswith("sweep")]
    assert sweeps and all(r["points"] == 3 for r in sweeps)
    pareto = [r for r in out["studies"] if r["study"].startswith("fleet pareto")]
    assert pareto and all(r["points"] == 5 * 8 for r in pareto)  # five families × eight speeds
    assert out["workloads"][0]["status"] == "optimal" and out["workloads"][0]["case"] == "roadmap-100mw (2 periods)"
    assert (tmp_path / "b.json").stat().st_size > 100
