"""True statuses (#23 item 5): a time limit reached before a plan is exit 3 with the best bound; a
plan short of the requested gap says so, and --require-optimal makes it exit 3; --time-limit bounds
fleet explain's re-solves. Outcomes are injected: no test races the clock."""
import json
import time
from dataclasses import replace

import pytest
from click.testing import CliRunner

import planner
from planner import planning
from planner.cli import main
from planner.errors import InfeasibleError, TimeLimitError
from planner.solve import SolveOptions
from tests.milp_helpers import chip, milp, toy, unit


def _toy(objective="tco", **kw):
    return toy([chip("a")], [unit("c", "aggregated", "a", 1, tput=500)], objective=objective, **kw)


def test_a_throughput_solve_stopped_before_any_serving_fleet_is_a_time_limit_not_infeasible():
    p = _toy("throughput", power_mw=1.0)
    o = milp(p)
    stopped = replace(o, status="time_limit", alpha=0.0, bound=2.5)
    with pytest.raises(TimeLimitError) as exc:
        planning.conclude(p, stopped, SolveOptions(), time.monotonic() + 30, {})
    assert "best bound 2.5" in exc.value.problems[0].what
    # a proven-optimal empty answer is still the budgets' fault, not the clock's
    with pytest.raises(InfeasibleError):
        planning.conclude(p, replace(o, alpha=0.0), SolveOptions(), time.monotonic() + 30, {})


def test_a_plan_short_of_the_requested_gap_says_so_with_the_bound():
    p = _toy()
    o = milp(p)
    loose = replace(o, status="time_limit", gap=0.25, bound=o.objective * 0.75)
    plan = planning.conclude(p, loose, SolveOptions(mip_gap=1e-3), time.monotonic() + 30, {})
    (w,) = [w for w in plan.warnings if w.startswith("NOT PROVEN OPTIMAL")]
    assert "25.00% gap" in w and f"{o.objective * 0.75:,.6g}" in w
    assert plan.to_dict()["solve"]["proven_optimal"] is False
    tight = planning.conclude(p, o, SolveOptions(mip_gap=1e-3), time.monotonic() + 30, {})
    assert not any(w.startswith("NOT PROVEN") for w in tight.warnings) and tight.to_dict()["solve"]["proven_optimal"]


@pytest.fixture
def loose_solves(monkeypatch):
    """Every solve comes back at a 50 % gap, as if the time limit had stopped HiGHS."""
    real = planning.solve

    def stopped(problem, opts, warm=None, **kw):
        o = real(problem, opts, warm, **kw)
        return replace(o, status="time_limit", gap=0.5, bound=o.objective * 0.5)

    monkeypatch.setattr(planning, "solve", stopped)


def test_require_optimal_turns_a_gap_plan_into_exit_3(two_chip_case, loose_solves):
    assert any(w.startswith("NOT PROVEN") for w in planner.plan(two_chip_case).warnings)
    with pytest.raises(TimeLimitError):
        planner.plan(two_chip_case, require_optimal=True)
    res = CliRunner().invoke(main, ["plan", two_chip_case, "--require-optimal", "--format", "json"])
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["status"] == "time_limit" and "--require-optimal" in json.dumps(doc)
    res = CliRunner().invoke(main, ["plan", two_chip_case, "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["solve"]["proven_optimal"] is False


def test_explain_answers_what_it_could_when_the_time_limit_runs_out(two_chip_case):
    from planner import explain as ex

    ctx = ex.load_context(two_chip_case, ['fleet.chips=["b200", "h100-sxm", "rubin-cpx"]'])
    ctx.reference = ex.reference(ctx)
    ctx.deadline = time.monotonic() - 1  # the limit has run out: no re-solve may start
    with pytest.raises(TimeLimitError):
        ex.remaining(ctx)
    entries = {e["chip"]: e for e in ex.chips_not_in_plan(ctx)}
    assert entries["h100-sxm"]["forced"]["status"] == "time_limit" and "--time-limit" in entries["h100-sxm"]["text"]
    assert entries["rubin-cpx"]["forced"]["status"] == "not_buyable"  # held back by the plan year: no solve needed


@pytest.mark.parametrize("sets", [["economics.mttr_hours=3000"], ['fleet.chips=["trainium3"]']])
def test_validate_refuses_what_plan_refuses_before_solving(sets):
    """`fleet validate` runs every check `fleet plan` makes before it builds a candidate."""
    v = CliRunner().invoke(main, ["validate", "availability-racks", *sets])
    p = CliRunner().invoke(main, ["plan", "availability-racks", *sets])
    assert v.exit_code == p.exit_code == 2
    assert v.output.splitlines()[-1] == p.output.splitlines()[-1]
