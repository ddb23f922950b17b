"""Cost per class (#23 item 6): every class's share of the fleet, adding up to the plan's figures."""
import json

import pandas as pd
import pytest
from click.testing import CliRunner

import planner
from planner.class_costs import class_cost_frame
from planner.cli import main


def test_hand_split_with_a_shared_unit_and_idle_chips():
    # chat: 2 copies of a 4-chip unit; code: 1 copy; a shared 8-chip unit serving chat 300 and code 100 tok/s;
    # (code's copy is a spare); 4 more chips bought (a system's leftover): 24 in all; of the 20 placed chat
    # occupies 2·4 + 8·300/400 = 14, code 4 + 8·100/400 = 6
    units = pd.DataFrame([
        {"class": "chat", "kind": "aggregated", "attn_chip": "g", "n_attn": 4, "ffn_chip": "g", "n_ffn": 0, "copies": 2, "spares": 0},
        {"class": "code", "kind": "aggregated", "attn_chip": "g", "n_attn": 4, "ffn_chip": "g", "n_ffn": 0, "copies": 0, "spares": 1},
        {"class": "chat", "kind": "aggregated", "attn_chip": "g", "n_attn": 8, "ffn_chip": "g", "n_ffn": 0, "copies": 1, "spares": 0}])
    shares = pd.DataFrame([{"unit": 2, "class": "chat", "kind": "aggregated", "tok_s": 300.0},
                           {"unit": 2, "class": "code", "kind": "aggregated", "tok_s": 100.0}])
    chips = pd.DataFrame([{"chip": "g", "chips": 24, "tco_usd_per_hour": 200.0, "capex_usd": 2000.0, "power_mw": 0.02}])
    df = class_cost_frame(units, shares, chips, {"g": 40.0}, {"chat": 1e6 / 3600, "code": 0.0}).set_index("class")
    assert df.loc["chat", "chips"] == pytest.approx(24 * 14 / 20)
    assert df.loc["chat", "tco_usd_per_hour"] == pytest.approx(240 * 14 / 20)
    assert df.loc["chat", "usd_per_mtok"] == pytest.approx(240 * 14 / 20)  # 1 M tokens an hour
    assert df.loc["code", "usd_per_mtok"] is None or pd.isna(df.loc["code", "usd_per_mtok"])
    assert df["tco_share"].sum() == pytest.approx(1.0)


def test_the_default_plan_prices_each_class_and_every_output_carries_it(tmp_path):
    plan = planner.plan("default")
    cc = plan.class_costs.set_index("class")
    assert cc["tco_usd_per_hour"].sum() == pytest.approx(plan.cost["tco_usd_per_hour"], rel=1e-9)
    assert cc["power_mw"].sum() == pytest.approx(plan.power_mw, rel=1e-9)
    assert cc["chips"].sum() == pytest.approx(float(plan.chips["chips"].sum()), rel=1e-9)
    # reasoning (DeepSeek-R1 at 150 tok/s/user) costs far more per token than chat (GPT-OSS-120B at 100)
    assert cc.loc["reasoning", "usd_per_mtok"] > 5 * cc.loc["chat", "usd_per_mtok"]
    out = tmp_path / "p"
    res = CliRunner().invoke(main, ["plan", "default", "--output", str(out)])
    assert res.exit_code == 0 and "Cost per class" in res.output
    csv = pd.read_csv(out / "class_costs.csv").set_index("class")
    assert csv.loc["chat", "usd_per_mtok"] == pytest.approx(cc.loc["chat", "usd_per_mtok"])
    assert {r["class"] for r in json.loads((out / "plan.json").read_text())["class_costs"]} == {"chat", "reasoning"}
    with pd.ExcelFile(out / "plan.xlsx") as book:
        assert "class_costs" in book.sheet_names
