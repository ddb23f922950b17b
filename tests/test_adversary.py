"""What a hostile pass over the newest features found (2026-12-01): each a wrong answer, a crash or a
silent mix-up before, a plan or one named error now."""
from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from planner.cli import main

TRACE = "isl,osl\n1000,100\n2000,200\n4000,50\n"
CASE = """name = "t"
[fleet]
chips = ["b200", "h200-sxm"]
[[classes]]
name = "chat"
model = "llama-3.1-70b"
precision = "fp8"
{lengths}
demand_tok_s = 100000
min_speed_tok_s_user = 40
ttft_s = 2.0
"""


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def traced(tmp_path):
    (tmp_path / "tr.csv").write_text(TRACE)
    case = tmp_path / "m2.toml"
    case.write_text(CASE.format(lengths='trace = "tr.csv"'))
    return case


@pytest.fixture
def plain(tmp_path):
    case = tmp_path / "m3.toml"
    case.write_text(CASE.format(lengths="isl = 2000\nosl = 200"))
    return case


def test_pareto_of_a_class_given_as_a_trace_finds_plans(traced, tmp_path):
    """The speed chains gated rows by the parent class's name; rows carry the buckets' names."""
    res = run("pareto", traced, "--speeds", "40", "--families", "gpu-only", "--output", tmp_path / "p", "--workers", 1)
    assert res.exit_code == 0, res.output
    import pandas as pd

    assert (pd.read_csv(tmp_path / "p" / "pareto.csv")["status"] == "optimal").all()


def test_a_speed_percentile_with_shared_buckets_plans(traced):
    """A unit shared by a required and a tail bucket shows the tail's speed; it is no violation."""
    res = run("plan", traced, "--set", "classes.chat.speed_percentile=50", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "optimal"


def test_a_daily_profile_peaking_below_one_plans_and_prices_the_mean(tmp_path):
    res = run("plan", "diurnal-tou", "--set", "classes.chat.demand_profile=" + str([0.5] * 24), "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    chat = next(c for c in d["classes"] if c["name"] == "chat")
    assert chat["served_tok_s"] == pytest.approx(0.5 * chat["demand_tok_s"])  # the day's mean, not the base
    assert d["cost"]["usd_per_mtok"] == pytest.approx(d["cost"]["tco_usd_per_hour"] / (chat["served_tok_s"] * 3600 / 1e6))


def test_a_budget_that_buys_nothing_is_infeasible_not_an_empty_optimum(plain):
    for budget in ("constraints.capex_usd=1", "constraints.power_mw=0.001"):
        res = run("plan", plain, "--objective", "throughput", "--set", budget)
        assert res.exit_code == 1 and "buys no serving unit" in res.output, res.output


def test_a_trace_row_with_an_extra_field_is_refused(tmp_path):
    (tmp_path / "tr.csv").write_text("isl,osl\n1000,100,7\n2000,200,9\n")
    case = tmp_path / "m.toml"
    case.write_text(CASE.format(lengths='trace = "tr.csv"'))
    res = run("plan", case)
    assert res.exit_code == 2 and "line 2 has 3 fields" in res.output, res.output


def test_a_fifo_as_input_is_refused_not_waited_on(tmp_path):
    fifo = tmp_path / "f.toml"
    os.mkfifo(fifo)
    for args in (["plan", fifo], ["plan", "--catalog", fifo]):
        res = run(*args)
        assert res.exit_code == 2 and "not a regular file" in res.output


def test_explain_refuses_a_plan_whose_trace_changed(traced, tmp_path):
    out = tmp_path / "p"
    assert run("plan", traced, "--output", out).exit_code == 0
    (tmp_path / "tr.csv").write_text(TRACE + "8000,400\n")
    res = run("explain", out)
    assert res.exit_code == 2 and "inputs_sha256" in res.output, res.output


def test_resume_refuses_a_study_whose_trace_changed(traced, tmp_path):
    out = tmp_path / "s.csv"
    args = ["sweep", traced, "--vary", "classes.chat.min_speed_tok_s_user=40,50", "--output", out, "--workers", 1]
    assert run(*args).exit_code == 0
    (tmp_path / "tr.csv").write_text(TRACE + "8000,400\n")
    res = run(*args, "--resume")
    assert res.exit_code == 2 and "--resume" in res.output, res.output


def test_unreachable_availability_is_a_named_error():
    res = run("plan", "availability-racks", "--set", "economics.mttr_hours=3000")
    assert res.exit_code == 2 and "constraints.availability" in res.output, res.output


def test_unwritable_model_path_and_empty_speeds_fail_before_solving(plain, tmp_path):
    res = run("plan", plain, "--write-model", tmp_path / "nodir" / "m.lp")
    assert res.exit_code == 2 and "--write-model" in res.output
    res = run("pareto", plain, "--speeds", "", "--output", tmp_path / "p")
    assert res.exit_code == 2 and "--speeds" in res.output


def test_hand_edited_plan_json_is_refused_by_explain_diff_and_report(plain, tmp_path):
    good = tmp_path / "p"
    assert run("plan", plain, "--output", good).exit_code == 0
    plan = json.loads((good / "plan.json").read_text())
    for name, edit in (("lots", lambda d: d["chips"].update({"b200": "lots"})), ("list", lambda d: d.update(chips=[1])),
                       ("unit", lambda d: d["units"][0].pop("attn_chip"))):
        bad = tmp_path / name
        bad.mkdir()
        for f in good.iterdir():
            (bad / f.name).write_bytes(f.read_bytes())
        d = json.loads(json.dumps(plan))
        edit(d)
        (bad / "plan.json").write_text(json.dumps(d))
        for args in (["explain", bad], ["diff", bad, good], ["report", bad, "-o", tmp_path / f"{name}.html"]):
            res = run(*args)
            assert res.exit_code == 2 and "is not a plan fleet-planner wrote" in res.output, (args, res.output)


def test_report_takes_a_case_file_path(plain, tmp_path):
    res = run("report", plain, "-o", tmp_path / "r.html")
    assert res.exit_code == 0, res.output
    assert "<html" in (tmp_path / "r.html").read_text()


def test_one_field_varied_twice_under_two_spellings_is_refused(plain, tmp_path):
    res = run("sweep", plain, "--vary", "classes.chat.isl=1000", "--vary", "classes.0.isl=2000", "--output", tmp_path / "s.csv")
    assert res.exit_code == 2 and "the same field" in res.output


def test_a_class_named_like_a_bucket_is_refused(traced):
    from planner.cases import load_case

    bucket = next(tc.name for tc in load_case(str(traced)).classes)
    traced.write_text(traced.read_text() + f"""
[[classes]]
name = "{bucket}"
model = "llama-3.1-70b"
precision = "fp8"
isl = 2000
osl = 200
demand_tok_s = 1000
min_speed_tok_s_user = 40
ttft_s = 2.0
""")
    res = run("plan", traced)
    assert res.exit_code == 2 and "also a length bucket" in res.output, res.output


def test_the_time_limit_bounds_shared_bucket_generation():
    res = run("plan", "trace-chat-agent", "--set", "classes.chat.max_buckets=64", "--set", "classes.chat.merge_span=64",
              "--set", "classes.chat.bucket_tolerance=0", "--time-limit", "3")
    assert res.exit_code == 3 and "--time-limit" in res.output, res.output
