"""Studies: value parsing, sweeps, Pareto families, budgets, break-even, resume, workers, Dask."""

import pandas as pd
import pytest
from click.testing import CliRunner

from planner import studies
from planner.cli import main
from planner.errors import CaseError


@pytest.fixture
def case(tiny_case):
    return tiny_case  # conftest.py


def test_parse_values():
    assert studies.parse_values("1,2.5,3") == [1, 2.5, 3]
    assert studies.parse_values("0:10:3") == [0.0, 5.0, 10.0]
    assert studies.parse_values("10:1000:3", geometric=True) == pytest.approx([10, 100, 1000])
    assert studies.parse_values("±50%:3", base=100) == [50.0, 100.0, 150.0]
    with pytest.raises(ValueError):
        studies.parse_values("±50%:3", base=None)


def test_until_grammar_is_not_code():
    pred = studies.parse_until("chips.groq3-lpu > 0")
    assert pred({"status": "optimal", "chips.groq3-lpu": 256}) and not pred({"status": "optimal"})
    stage = studies.parse_until("stage.decode_ffn == groq3-lpu")
    assert stage({"status": "optimal", "stages": "c:decode_ffn=groq3-lpu;c:prefill=b200"})
    with pytest.raises(CaseError):
        studies.parse_until("__import__('os').system('x')")


def test_sweep_rows_and_monotone_cost(case, tmp_path):
    out = tmp_path / "s.csv"
    df = studies.sweep(case, ["economics.electricity_usd_per_kwh=0.04,0.08,0.16"], output=out)
    assert list(df["economics.electricity_usd_per_kwh"]) == [0.04, 0.08, 0.16]
    assert (df["status"] == "optimal").all()
    assert df["objective"].is_monotonic_increasing  # dearer power never makes the fleet cheaper
    assert {"power_mw", "usd_per_mtok", "stages", "binding"} <= set(df.columns)
    assert any(c.startswith("chips.") for c in df.columns)
    assert pd.read_csv(out).shape[0] == 3


def test_sweep_catalog_figure_and_grid(case):
    df = studies.sweep(case, ["chips.b200.price_usd=±20%:2", "constraints.power_mw=1,2"])
    assert len(df) == 4 and set(df["constraints.power_mw"]) == {1, 2}
    assert sorted(set(df["chips.b200.price_usd"])) == pytest.approx([38000, 57000])


def test_tightening_supply_never_lowers_cost(case):
    base = studies.sweep(case, ["economics.pue=1.25"])
    chip_cols = [c for c in base.columns if c.startswith("chips.") and base[c].iloc[0] > 0]
    top = max(chip_cols, key=lambda c: base[c].iloc[0])
    used = int(base[top].iloc[0])
    caps = [used, max(used // 2, 1), max(used // 4, 1)]
    df = studies.sweep(case, [f"constraints.supply.{top[6:]}={','.join(map(str, caps))}"])
    ok = df[df["status"] == "optimal"]["objective"].to_numpy()
    assert len(ok) >= 2
    assert all(b >= a * (1 - 2e-3) for a, b in zip(ok, ok[1:]))  # within the MIP gap, never cheaper


def test_pareto_families_and_plots(case, tmp_path):
    res = CliRunner().invoke(main, ["pareto", case, "--speeds", "60,300", "--output", str(tmp_path / "p"),
                                    "--workers", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(tmp_path / "p" / "pareto.csv")
    assert set(df["family"]) >= {"gpu-only", "gpu+prefill", "gpu+sram-ffn", "sram-only", "unrestricted"}
    for col in ("family", "speed_tok_s_user", "tok_s_per_chip", "tok_s_per_mw", "usd_per_mtok", "status"):
        assert col in df
    assert (tmp_path / "p" / "pareto_tok_s_per_mw.png").stat().st_size > 1000
    # the unrestricted family can mix freely, so it is never dearer than any restricted one
    for speed, g in df[df["status"] == "optimal"].groupby("speed_tok_s_user"):
        free = g[g["family"] == "unrestricted"]["usd_per_mtok"]
        assert len(free) and (g["usd_per_mtok"] >= free.iloc[0] * (1 - 2e-3)).all()
    assert not (df[df["family"] == "gpu-only"].filter(like="chips.groq3").fillna(0) > 0).any().any()


def test_budget_marginal_values(case, tmp_path):
    df = studies.budget(case, power_mw="0.5,1")
    assert (df["status"] == "optimal").all()
    assert df["throughput_tok_s"].iloc[1] >= df["throughput_tok_s"].iloc[0]
    assert "lp_shadow.power" in df.columns and (df["lp_shadow.power"] > 0).all()  # the budget decides the fleet
    # the plan's own price is the LP's where it uses the whole budget, and 0 where whole systems leave slack
    tight = df["power_mw"] >= df["constraints.power_mw"] * (1 - 1e-6)
    assert (df["shadow.power"][~tight] == 0).all()
    assert (df["shadow.power"][tight] == df["lp_shadow.power"][tight]).all()


def test_breakeven_price_brings_chip_in(case):
    r = studies.breakeven(case, "chips.h100-sxm.price_usd=1000:200000", "chips.h100-sxm > 0", rel_tol=0.02)
    assert r["found"] and r["holds_at_low"] and not r["holds_at_high"]
    assert r["plan_low"]["chips.h100-sxm"] > 0 and r["plan_high"].get("chips.h100-sxm", 0) == 0
    assert r["high"] - r["low"] <= 0.02 * r["high"] + 1e-9


def test_resume_and_worker_counts_give_identical_csv(case, tmp_path):
    vary = ["economics.pue=1.1,1.2,1.3,1.4"]
    full = tmp_path / "full.csv"
    studies.sweep(case, vary, output=full, workers=1)
    part = tmp_path / "part.csv"
    spec = studies.load_spec(case)
    points = studies.sweep_points(studies.parse_vary(vary, spec))
    sha = studies.study_hash("sweep", spec.raw, spec.catalogs, spec.objective, spec.time_limit_s, spec.mip_gap,
                             spec.grid, spec.families, [p.key for p in points])
    appender = studies.CsvAppender(part)
    for p in points[:2]:  # a run killed after two points leaves a valid CSV
        appender.add({**studies.evaluate(spec, p), "study_sha256": sha})
    assert len(pd.read_csv(part)) == 2
    studies.sweep(case, vary, output=part, resume=True)
    two = tmp_path / "two.csv"
    studies.sweep(case, vary, output=two, workers=2)
    strip = lambda p: pd.read_csv(p).drop(columns="wall_s")  # noqa: E731
    pd.testing.assert_frame_equal(strip(full), strip(part))
    pd.testing.assert_frame_equal(strip(full), strip(two))
    res = CliRunner().invoke(main, ["sweep", case, "--vary", vary[0], "--output", str(full)])
    assert res.exit_code == 2 and "--resume" in res.output


@pytest.mark.slow
def test_dask_cluster_matches_local(case, tmp_path):
    distributed = pytest.importorskip("distributed")
    vary = ["economics.electricity_usd_per_kwh=0.05,0.1,0.2"]
    local = studies.sweep(case, vary, chains=False).drop(columns="wall_s")  # point by point, as the cluster runs them
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = studies.sweep(case, vary, scheduler=cluster.scheduler_address).drop(columns="wall_s")
    pd.testing.assert_frame_equal(local, remote)


def test_warm_start_keeps_the_optimum(case):
    vary = ["chips.b200.price_usd=40000,45000,50000,55000"]
    cold = studies.sweep(case, vary)
    warm = studies.sweep(case, vary, warm_start=True)
    assert (warm["status"] == "optimal").all()
    for a, b in zip(cold["objective"], warm["objective"]):
        assert b == pytest.approx(a, rel=2e-3)  # both within the 0.1 % MIP gap of the optimum


@pytest.mark.slow
def test_pareto_chains_find_the_plans_points_planned_alone_find():
    """A family's speeds solved as one chain (one model, units bounded per target, the last plan as
    MIP start) must reach the same optima as planning every point on its own."""
    import pandas as pd

    from planner import studies

    kw = dict(speeds="60,150,400", families=["gpu-only", "unrestricted"], grid="coarse")
    alone, chained = studies.pareto("default", chains=False, **kw), studies.pareto("default", chains=True, **kw)
    m = alone.merge(chained, on=["family", "speed_tok_s_user"], suffixes=("_alone", "_chain"))
    assert len(m) == 6 and (m["status_alone"] == m["status_chain"]).all()
    ok = m[m["status_alone"] == "optimal"]
    assert len(ok) >= 3
    # both within the MIP gap of the true optimum, so within twice the gap of each other
    assert ((ok["objective_chain"] - ok["objective_alone"]).abs() <= 2e-3 * ok["objective_alone"]).all()
    assert pd.Series(chained["point"]).tolist() == list(range(6))  # rows still in point order


@pytest.mark.slow
@pytest.mark.parametrize("objective, metric, better", [("power", "tok_s_per_mw", max), ("tco", "usd_per_mtok", min)])
def test_a_superset_family_never_plots_worse_on_the_metric_it_optimised(objective, metric, better):
    """'unrestricted' holds every family's chips and stages: on its own objective's metric it must be at
    least as good as each of them at every speed (a chart where it sits below read like a bug)."""
    from planner import studies

    df = studies.pareto("default", speeds="60,150", objective=objective)
    for speed, g in df[df["status"] == "optimal"].groupby("speed_tok_s_user"):
        top = g.set_index("family")[metric]
        assert "unrestricted" in top
        best_subset = better(top.drop("unrestricted"))
        tol = 2e-3 * abs(best_subset)  # each plan is within the 0.1 % MIP gap of its optimum
        assert (top["unrestricted"] >= best_subset - tol) if better is max else (top["unrestricted"] <= best_subset + tol)
