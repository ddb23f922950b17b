"""`fleet explain`: forced-in costs, break-even prices, shadow prices in words, plan dirs, bad input."""
import json

import pytest
from click.testing import CliRunner

import planner
from planner.cli import main
from planner.explain import EXPLAIN_KEYS, explain

runner = CliRunner()


@pytest.fixture
def case(two_chip_case):
    return two_chip_case  # conftest.py


def chips_of(p):
    return {r.chip: int(r.chips) for r in p.chips.itertuples()}


def test_forcing_the_dearer_chip_in_costs_more_and_its_break_even_price_brings_it_in(case, catalog):
    r = explain(case)
    assert set(r["plan"]["chips"]) == {"b200"}
    (h100,) = r["chips_not_in_plan"]
    assert h100["chip"] == "h100-sxm"
    forced = h100["forced"]
    assert forced["status"] == "solved" and forced["chips"] >= 1
    assert forced["delta_tco_usd_per_hour"] > 0 and forced["delta_usd_per_mtok"] > 0
    assert forced["tco_usd_per_hour"] == pytest.approx(r["plan"]["tco_usd_per_hour"] + forced["delta_tco_usd_per_hour"])
    assert any(s.startswith("chat:") for s in forced["stages"])
    b = h100["breakeven"]
    price = catalog.chips["h100-sxm"].price_usd
    assert b["status"] == "found" and b["low_usd"] < b["price_usd"] < b["high_usd"] < price
    # the bisection's two ends, re-planned independently: bought at the low end, not at the high end
    assert chips_of(planner.plan(case, sets=[f"chips.h100-sxm.price_usd={b['low_usd']}"])).get("h100-sxm", 0) > 0
    assert chips_of(planner.plan(case, sets=[f"chips.h100-sxm.price_usd={b['high_usd']}"])).get("h100-sxm", 0) == 0
    assert "h100-sxm" in h100["text"] and "USD/hour" in h100["text"]
    (b200,) = r["chips_in_plan"]
    assert b200["share_of_chips"] == 1 and b200["share_of_tco"] == pytest.approx(1)
    assert "chat" in b200["text"] and "decode" in b200["text"]


def test_a_power_budget_that_limits_the_plan_has_a_positive_shadow_price_in_mw(case):
    # H100 made cheap: the cheapest fleet is H100, which draws more power per token than B200
    cheap = ["chips.h100-sxm.price_usd=10000", "classes.0.demand_tok_s=2000000"]
    h100_only = planner.plan(case, sets=cheap + ['fleet.chips=["h100-sxm"]'])
    b200_only = planner.plan(case, sets=cheap + ['fleet.chips=["b200"]'])
    assert b200_only.power_mw < h100_only.power_mw
    budget = (b200_only.power_mw + h100_only.power_mw) / 2
    r = explain(case, sets=cheap + [f"constraints.power_mw={budget}"])
    (power,) = [c for c in r["binding_constraints"] if c["name"] == "power"]
    assert power["lp_shadow_price"] > 0  # it limits the plan ...
    assert power["shadow_price"] == (power["lp_shadow_price"] if power["binding"] else 0)  # ... priced only without slack
    assert "power_mw" in power["text"] and "MW" in power["text"] and "lower TCO" in power["text"]
    assert r["plan"]["power_mw"] <= budget * (1 + 1e-6)
    # the budget really costs: without it the plan is cheaper
    assert planner.plan(case, sets=cheap).cost["tco_usd_per_hour"] < r["plan"]["tco_usd_per_hour"]


def test_a_chip_that_cannot_run_the_precision_is_explained_not_forced(case, catalog):
    assert catalog.chips["sn40l"].fp8_tflops == 0  # SN40L has no FP8
    r = explain(case, sets=['fleet.chips=["b200", "sn40l"]'])
    (sn40l,) = r["chips_not_in_plan"]
    assert sn40l["forced"]["status"] == "no_unit" and sn40l["breakeven"] is None
    assert any("fp8" in k for k in sn40l["keeps_out"]) and "cannot be forced in" in sn40l["text"]


def test_json_keys_are_stable_and_output_file_matches(case, tmp_path):
    out = tmp_path / "explain.json"
    res = runner.invoke(main, ["explain", case, "--format", "json", "--output", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    assert tuple(r) == EXPLAIN_KEYS == ("case", "source", "objective", "grid", "plan_grid", "what_if", "plan",
                                        "reference", "chips_in_plan", "binding_constraints", "speed_targets",
                                        "chips_not_in_plan", "notes", "timings_s")
    assert json.loads(out.read_text(encoding="utf-8")) == r
    assert set(r["chips_not_in_plan"][0]) == {"chip", "price_usd", "forced", "breakeven", "keeps_out", "text", "wall_s"}
    assert {"name", "binding", "slack", "shadow_price", "unit", "text"} <= set(r["binding_constraints"][0])
    assert r["timings_s"]["solves"] >= 2 and r["timings_s"]["total_s"] > 0
    again = runner.invoke(main, ["explain", case, "--output", str(out)])
    assert again.exit_code == 2 and "--force" in again.output  # no silent overwrite


def test_a_plan_directory_is_explained_from_its_plan_and_run_record(case, tmp_path):
    d = tmp_path / "plan"
    assert runner.invoke(main, ["plan", case, "--output", str(d)]).exit_code == 0
    from_dir = explain(str(d))
    from_case = explain(case)
    assert from_dir["source"] == f"plan dir {d}" and from_dir["reference"]["solved"] is False
    assert from_dir["plan"] == from_case["plan"]
    assert [e["forced"]["delta_tco_usd_per_hour"] for e in from_dir["chips_not_in_plan"]] == pytest.approx(
        [e["forced"]["delta_tco_usd_per_hour"] for e in from_case["chips_not_in_plan"]])
    res = runner.invoke(main, ["explain", str(d), "--set", "classes.0.isl=500"])
    assert res.exit_code == 2 and "--set" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("setup, names", [
    (lambda d: None, "plan.json"),
    (lambda d: (d / "plan.json").write_text("{not json", encoding="utf-8"), "not valid JSON"),
    (lambda d: (d / "plan.json").write_text('{"cost": {}}', encoding="utf-8"), "power_mw"),
])
def test_a_bad_plan_directory_is_exit_2_naming_the_file(tmp_path, setup, names):
    d = tmp_path / "bad"
    d.mkdir()
    setup(d)
    res = runner.invoke(main, ["explain", str(d)])
    assert res.exit_code == 2 and names in res.output and "Traceback" not in res.output


def test_a_plan_directory_without_run_json_names_it(case, tmp_path):
    d = tmp_path / "plan"
    assert runner.invoke(main, ["plan", case, "--output", str(d)]).exit_code == 0
    (d / "run.json").unlink()
    res = runner.invoke(main, ["explain", str(d)])
    assert res.exit_code == 2 and "run.json" in res.output and "fleet plan" in res.output


@pytest.mark.slow
def test_explain_default_accounts_for_every_allowed_chip():
    r = explain("default")
    from planner.cases import load_case

    allowed = set(load_case("default").fleet.chips)
    left_out = {e["chip"] for e in r["chips_not_in_plan"]}
    assert left_out | set(r["plan"]["chips"]) == allowed and not left_out & set(r["plan"]["chips"])
    gap = 1e-3 * r["plan"]["tco_usd_per_hour"]
    for e in r["chips_not_in_plan"]:
        if e["forced"]["status"] == "solved":
            assert e["forced"]["delta_tco_usd_per_hour"] >= -gap  # forcing a chip in never beats the optimum
            if e["breakeven"]["status"] == "found":
                assert e["breakeven"]["price_usd"] < e["price_usd"]
    assert any(c["name"].startswith("throughput[") for c in r["binding_constraints"])


def test_a_draft_chip_role_names_each_stage_once():
    """A speculative draft chip's stages were listed with decode_draft twice (STAGES already holds it)."""
    from planner.explain import chip_roles

    unit = {"kind": "decode", "attn_chip": "gb300", "n_attn": 4, "ffn_chip": "gb300", "n_ffn": 0,
            "draft_chip": "groq3-lpu", "n_draft": 8, "class": "chat", "copies": 2}
    roles = chip_roles({"units": [unit, dict(unit)]})
    for chip, classes in roles.items():
        for role in classes.values():
            assert len(role["stages"]) == len(set(role["stages"])), (chip, role)
    assert "decode_draft" in roles["groq3-lpu"]["chat"]["stages"]
