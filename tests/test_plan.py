"""fleet plan end to end: pruning keeps the optimum, direction checks, outputs re-checked, diagnoses."""
import csv
import json

import pytest
from click.testing import CliRunner

from planner.candidates import GridOptions, build_candidates
from planner.cases import build_case
from planner.cli import main
from planner.errors import InfeasibleError
from planner.planning import plan_case
from planner.problem import build_problem
from planner.solve import SolveOptions, solve


def small_case(chips=("h100-sxm", "b200", "groq3-lpu"), model="llama-3.1-70b", speed=40.0, demand=50_000.0,
               isl=2000, osl=400, **constraints):
    raw = {"name": "small", "fleet": {"chips": list(chips)}, "constraints": constraints,
           "classes": [{"name": "c", "model": model, "precision": "fp8", "isl": isl, "osl": osl,
                        "demand_tok_s": demand, "min_speed_tok_s_user": speed, "ttft_s": 3.0}]}
    return build_case(raw, "small.toml")


def cost(case, **kw):
    return plan_case(case, solve_opts=SolveOptions(mip_gap=1e-7), **kw).outcome.objective


@pytest.mark.slow
@pytest.mark.parametrize("chips, model, speed", [
    (("h100-sxm", "b200"), "llama-3.1-8b", 60.0),
    (("b200", "rubin-cpx"), "llama-3.1-70b", 30.0),
    (("gb200", "groq3-lpu"), "gpt-oss-120b", 150.0),
    (("h200-sxm", "mi300x"), "qwen3-32b", 50.0),
])
def test_pruning_never_changes_the_optimum(chips, model, speed):
    case = small_case(chips, model, speed)
    opts = SolveOptions(mip_gap=1e-7)
    full = build_candidates(case, GridOptions(prune=False))
    pruned = build_candidates(case, GridOptions(prune=True))
    assert len(pruned) < len(full)
    a = solve(build_problem(case, full), opts)
    b = solve(build_problem(case, pruned), opts)
    assert a.objective == pytest.approx(b.objective, rel=1e-6)


def test_direction_checks():
    base = small_case()
    c0 = cost(base)
    assert cost(small_case(speed=80.0)) >= c0 - 1e-6  # a higher speed target never lowers cost
    assert cost(small_case(chips=("h100-sxm", "b200"))) >= c0 - 1e-6  # removing a chip type never lowers it
    tight = small_case(power_mw=0.9)
    loose = small_case(power_mw=5.0)
    assert cost(loose) <= cost(tight) + 1e-6  # relaxing a budget never raises cost


def test_infeasible_speed_says_best_reachable():
    with pytest.raises(InfeasibleError) as err:
        plan_case(small_case(chips=("h100-sxm",), speed=5000.0))
    text = err.value.render()
    assert "no allowed chip reaches 5,000 tok/s/user" in text and "best is" in text and "h100-sxm" in text


def test_infeasible_power_says_by_how_much():
    with pytest.raises(InfeasibleError) as err:
        plan_case(small_case(chips=("b200",), power_mw=0.005))
    text = err.value.render()
    assert "power short by" in text and "constraints.power_mw" in text


def test_plan_cli_json_outputs_and_independent_recheck(tmp_path):
    case = tmp_path / "c.toml"
    case.write_text('name = "c"\n[constraints]\npower_mw = 3\n[fleet]\nchips = ["h100-sxm", "b200", "rubin-cpx"]\n'
                    '[[classes]]\nname = "c"\nmodel = "llama-3.1-70b"\nprecision = "fp8"\nisl = 3000\nosl = 300\n'
                    'demand_tok_s = 60000\nmin_speed_tok_s_user = 40\nttft_s = 2\n', encoding="utf-8")
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(main, ["plan", str(case), "--format", "json", "--output", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    for key in ("status", "objective", "cost", "power_mw", "throughput_tok_s", "chips", "classes", "stages",
                "constraints", "solve"):
        assert key in d
    assert set(d["cost"]) >= {"capex_usd", "tco_usd_per_hour", "usd_per_mtok"}
    assert set(d["solve"]) >= {"solver", "wall_s", "gap"}
    assert {s["stage"] for s in d["stages"]} <= {"prefill", "decode_attention", "decode_ffn"}

    # independent re-check of every constraint from the written CSVs
    def rows(name):
        with open(out / name, encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    units, chips = rows("units.csv"), rows("chips.csv")
    from planner.catalog import load_catalog
    cat = load_catalog()
    need = {}
    for u in units:
        need[u["attn_chip"]] = need.get(u["attn_chip"], 0) + int(u["n_attn"]) * int(u["copies"])
        if u["ffn_chip"] != u["attn_chip"]:
            need[u["ffn_chip"]] = need.get(u["ffn_chip"], 0) + int(u["n_ffn"]) * int(u["copies"])
    bought = {c["chip"]: int(c["chips"]) for c in chips}
    assert all(bought[c] >= n for c, n in need.items())
    served = sum(float(u["throughput_tok_s"]) for u in units if u["kind"] != "prefill")
    assert served >= 60000 - 1e-6
    agg_out = sum(float(u["throughput_tok_s"]) for u in units if u["kind"] == "aggregated")
    decode_out = sum(float(u["throughput_tok_s"]) for u in units if u["kind"] == "decode")
    prefill_in = sum(float(u["prefill_tok_s"]) for u in units if u["kind"] == "prefill")
    rest = max(0.0, 60000 - agg_out)  # demand the disaggregated decode must carry
    assert decode_out >= rest - 1e-6 and prefill_in >= rest * 3000 / 300 - 1e-3
    site_mw = sum(bought[c] * cat.chips[c].power_kw for c in bought) * 1.25 / 1000
    assert site_mw <= 3 + 1e-9 and site_mw == pytest.approx(d["power_mw"])
    assert all(float(u["speed_tok_s_user"]) >= 40 for u in units if u["kind"] != "prefill")
    run = json.loads((out / "run.json").read_text())
    assert len(run["inputs_sha256"]) == 64 and "pyomo" in run["versions"]

    again = runner.invoke(main, ["plan", str(case), "--output", str(out)])
    assert again.exit_code == 2 and "--force" in again.output


def test_plan_cli_infeasible_exit_1():
    res = CliRunner().invoke(main, ["plan", "default", "--set", "classes.0.min_speed_tok_s_user=100000"])
    assert res.exit_code == 1 and "best is" in res.output and "Traceback" not in res.output


def test_write_model(tmp_path):
    lp = tmp_path / "m.lp"
    res = CliRunner().invoke(main, ["plan", "default", "--write-model", str(lp), "--format", "json"])
    assert res.exit_code == 0 and lp.exists() and "throughput" in lp.read_text()


def test_throughput_spares_without_a_bound_on_every_chip_is_the_users_error():
    """Under the throughput objective, spares with a supply cap on one chip only left the other chip's
    units unbounded: that was a ValueError while building (exit 70); it names the fix (exit 2)."""
    from planner.errors import CaseError

    case = small_case(chips=("h100-sxm", "b200"), supply={"h100-sxm": 100}, availability=0.999)
    with pytest.raises(CaseError) as e:
        plan_case(case, "throughput")
    assert e.value.exit_code == 2
    assert "b200" in e.value.problems[0].what and "power_mw" in e.value.problems[0].fix
