"""Chips you can buy (#23 item 2): a plan has a year; chips not sold or not shipping by then are
held back with a line saying so, unless the case asks for a what-if."""
import json

import pytest
from click.testing import CliRunner

from planner import purchasable
from planner.cases import load_case
from planner.cli import main
from planner.errors import CaseError
from planner.planning import plan_case

SMALL = """name = "small"
[fleet]
chips = ["b200", "rubin-cpx", "trainium3"]
[[classes]]
name = "c"
model = "llama-3.1-8b"
precision = "fp8"
isl = 1000
osl = 250
demand_tok_s = 40000
min_speed_tok_s_user = 60
ttft_s = 2
"""


@pytest.fixture
def small(tmp_path):
    p = tmp_path / "small.toml"
    p.write_text(SMALL, encoding="utf-8")
    return str(p)


def test_plan_year_defaults_to_the_chip_catalogs_date_then_first_period(small):
    case = load_case(small)
    version = case.catalog_versions["catalogs/chips.toml"]  # e.g. 2026-12-01
    year = purchasable.plan_year(case)
    assert int(version[:4]) <= year < int(version[:4]) + 1
    assert purchasable.plan_year(load_case(small, ["options.year=2027.5"])) == 2027.5
    roadmap = load_case("roadmap-100mw")
    assert purchasable.plan_year(roadmap) == roadmap.periods[0].year


def test_chips_not_on_sale_that_year_are_held_back_with_a_line_each(small):
    case = load_case(small, ["options.year=2027"])
    restricted, lines = purchasable.for_plan_year(case)
    assert set(purchasable.held_back(case)) == {"rubin-cpx", "trainium3"}
    assert restricted.fleet.chips == ("b200",) and restricted.fleet.buy == ("b200",)
    assert len(lines) == 2 and any("2028" in s and "Rubin CPX" in s for s in lines)
    assert any("not sold" in s and "Trainium3" in s for s in lines)
    # from 2028 CPX ships; Trainium3 is never sold
    assert set(purchasable.held_back(load_case(small, ["options.year=2028"]))) == {"trainium3"}


def test_a_plan_never_buys_a_chip_its_year_cannot_have(small):
    plan = plan_case(load_case(small))
    bought = {r.chip for r in plan.chips.itertuples() if r.bought > 0}
    assert bought and not bought & {"rubin-cpx", "trainium3"}
    assert plan.purchase["not_buyable"].keys() == {"rubin-cpx", "trainium3"}
    assert sum("is not bought" in w for w in plan.warnings) == 2


def test_allow_unavailable_keeps_them_buyable_and_every_output_says_so(small, tmp_path):
    case = load_case(small, ["options.allow_unavailable=true"])
    restricted, lines = purchasable.for_plan_year(case)
    assert restricted is case and all(s.startswith("WHAT-IF") for s in lines) and len(lines) == 2
    out = tmp_path / "plan"
    res = CliRunner().invoke(main, ["plan", small, "--set", "options.allow_unavailable=true", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "WHAT-IF" in res.output
    plan_json = json.loads((out / "plan.json").read_text())
    run_json = json.loads((out / "run.json").read_text())
    assert plan_json["purchase"]["allow_unavailable"] is True and run_json["purchase"]["allow_unavailable"] is True
    assert any(w.startswith("WHAT-IF") for w in plan_json["warnings"])


def test_owned_chips_of_a_held_back_type_still_serve(small):
    case = load_case(small, ["options.year=2027"])
    from dataclasses import replace

    from planner.domain import OwnedChips
    owned = replace(case, fleet=replace(case.fleet, owned=(OwnedChips("rubin-cpx", 8, 0.0),)))
    restricted, lines = purchasable.for_plan_year(owned)
    assert "rubin-cpx" in restricted.fleet.chips and "rubin-cpx" not in restricted.fleet.buy
    assert any("8 owned still serve" in s for s in lines)


def test_a_stage_left_with_no_chip_is_refused_naming_it(small):
    case = load_case(small, ['fleet.stages.prefill=["rubin-cpx"]'])
    with pytest.raises(CaseError) as exc:
        purchasable.for_plan_year(case)
    assert exc.value.problems[0].where == "fleet.stages.prefill"
    res = CliRunner().invoke(main, ["validate", small, "--set", 'fleet.chips=["trainium3"]'])
    assert res.exit_code == 2 and "fleet.chips" in res.output and "allow_unavailable" in res.output


@pytest.mark.parametrize("value,field", [('"soon"', "options.year"), ("1800", "options.year"),
                                         ('"yes"', "options.allow_unavailable")])
def test_bad_year_options_are_named(small, value, field):
    res = CliRunner().invoke(main, ["validate", small, "--set", f"{field}={value}"])
    assert res.exit_code == 2 and field in res.output and "Traceback" not in res.output


def test_roadmaps_never_buy_a_chip_that_is_not_sold():
    from planner.catalog import load_catalog

    cat = load_catalog()
    assert not cat.chips["trainium3"].sold and cat.chips["b200"].sold
    assert not purchasable.can_buy(cat.chips["trainium3"], 2100)
    assert purchasable.can_buy(cat.chips["rubin-cpx"], 2028) and not purchasable.can_buy(cat.chips["rubin-cpx"], 2027.9)
