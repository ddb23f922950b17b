"""`fleet diff`: plan dirs and cases side by side, identical plans, overrides, bad input."""
import json

import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.diff import diff

runner = CliRunner()


@pytest.fixture
def case(two_chip_case):
    return two_chip_case  # conftest.py


@pytest.fixture
def plan_dir(case, tmp_path):
    d = tmp_path / "plan"
    assert runner.invoke(main, ["plan", case, "--output", str(d)]).exit_code == 0
    return str(d)


def test_a_plan_against_itself_is_identical(plan_dir, case):
    res = runner.invoke(main, ["diff", plan_dir, plan_dir])
    assert res.exit_code == 0 and "identical" in res.output
    r = json.loads(runner.invoke(main, ["diff", plan_dir, case, "--format", "json"]).output)  # the dir vs its case
    assert r["identical"] is True and r["delta"]["chips"] == {} and r["delta"]["stages"] == {}
    assert set(r) == {"identical", "a", "b", "delta"}


def test_a_higher_pue_draws_more_mw_and_costs_more(case):
    res = runner.invoke(main, ["diff", case, "--set-b", "economics.pue=1.5", "--format", "json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    a, b, d = r["a"], r["b"], r["delta"]
    assert r["identical"] is False
    assert b["power_mw"] > a["power_mw"] and b["tco_usd_per_hour"] > a["tco_usd_per_hour"]
    assert d["power_mw"] == pytest.approx(b["power_mw"] - a["power_mw"])
    assert d["tco_usd_per_hour"] == pytest.approx(b["tco_usd_per_hour"] - a["tco_usd_per_hour"])
    assert "--set-b economics.pue=1.5" in b["source"]
    text = runner.invoke(main, ["diff", case, "--set-b", "economics.pue=1.5"]).output
    assert "power_mw" in text and "tco_usd_per_hour" in text and "identical" not in text


def test_chips_and_stages_that_change_are_in_the_delta(case):
    r = diff(case, set_a=['fleet.chips=["h100-sxm"]'], set_b=['fleet.chips=["b200"]'])
    a, b, d = r["a"], r["b"], r["delta"]
    assert set(a["chips"]) == {"h100-sxm"} and set(b["chips"]) == {"b200"}
    assert d["chips"] == {"b200": b["chips"]["b200"], "h100-sxm": -a["chips"]["h100-sxm"]}
    changed = d["stages"]["chat"]
    assert set(changed) == {"prefill", "decode_attention", "decode_ffn"}
    assert set(changed["decode_attention"]["a"]) == {"h100-sxm"} and set(changed["decode_attention"]["b"]) == {"b200"}


def test_a_power_budget_that_decides_b_is_listed_only_in_b(case):
    cheap = ["chips.h100-sxm.price_usd=10000", "classes.0.demand_tok_s=2000000"]  # H100: cheap, power-hungry
    a = diff(case, set_a=cheap, set_b=cheap + ['fleet.chips=["b200"]'])["a"]
    b200_mw = diff(case, set_a=cheap + ['fleet.chips=["b200"]'], set_b=cheap)["a"]["power_mw"]
    budget = (a["power_mw"] + b200_mw) / 2  # below the cheapest fleet's draw, above the frugal one's
    r = diff(case, set_a=cheap, set_b=cheap + [f"constraints.power_mw={budget}"])
    assert "power" in r["delta"]["binding"]["only_b"] and "power" not in r["a"]["binding"]
    assert r["b"]["power_mw"] <= budget * (1 + 1e-6) and r["delta"]["tco_usd_per_hour"] > 0


@pytest.mark.parametrize("args, names", [
    (["diff", "{empty}", "{case}"], "plan.json"),
    (["diff", "{case}", "no/such/plan"], "no/such/plan"),
    (["diff", "{case}"], "--set-a/--set-b"),
    (["diff", "{plan}", "--set-a", "economics.pue=1.5"], "--set-a"),
    (["diff", "{case}", "--set-b", "classes.0.isl=-5"], "--set-b classes.0.isl"),
])
def test_bad_input_is_exit_2_naming_the_field(tmp_path, case, plan_dir, args, names):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.format(empty=empty, case=case, plan=plan_dir) for a in args]
    res = runner.invoke(main, argv)
    assert res.exit_code == 2 and names in res.output and "Traceback" not in res.output, res.output
