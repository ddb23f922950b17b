"""Sweeps solved as chains (planner/price_chain.py): one model per candidate table, changed in place
between points, must reach the optima planning every point on its own reaches."""

import pytest

from planner import studies
from planner.solve import FleetSolver


@pytest.fixture
def case(tiny_case):
    return tiny_case  # conftest.py


def _count_builds(monkeypatch) -> list:
    built = []
    init = FleetSolver.__init__

    def counting(self, *a, **kw):
        built.append(1)
        init(self, *a, **kw)

    monkeypatch.setattr(FleetSolver, "__init__", counting)
    return built


@pytest.mark.parametrize("vary", [
    # prices move only the objective; the power budget its row, the units' bounds and big-Ms (0.05 MW: infeasible)
    ["chips.b200.price_usd=20000,45000,70000", "constraints.power_mw=0.05,1,2"],
    # a capex budget: the price moves its row's coefficients and the units' bounds too
    ["chips.h100-sxm.price_usd=10000,30000", "constraints.capex_usd=4e6,2e7"],
    ["economics.pue=1.1,1.6", "economics.electricity_usd_per_kwh=0.03,0.2"],
])
def test_a_sweep_chain_finds_the_optima_points_planned_alone_find(case, vary, monkeypatch):
    alone = studies.sweep(case, vary, chains=False)
    built = _count_builds(monkeypatch)
    chained = studies.sweep(case, vary)
    assert len(built) == 1  # one model for the whole sweep, retargeted at every point
    assert list(chained["point"]) == list(range(len(alone)))
    assert list(chained["status"]) == list(alone["status"])
    ok = alone["status"] == "optimal"
    assert ok.sum() >= 2
    # both within the 0.1 % MIP gap of the true optimum, so within twice the gap of each other
    assert ((chained["objective"][ok] - alone["objective"][ok]).abs() <= 2e-3 * alone["objective"][ok]).all()
    assert (chained["gap"][ok] <= 1e-3 * 1.01).all()
    if (~ok).any():  # an infeasible point is diagnosed from its own problem, as when planned alone
        assert list(chained["message"][~ok]) == list(alone["message"][~ok])


def test_a_sweep_over_demand_builds_a_model_per_table(case, monkeypatch):
    """Demand changes the candidate table (and the rows): every point gets its own model — the
    chain never poses a point on a model it cannot change exactly."""
    built = _count_builds(monkeypatch)
    df = studies.sweep(case, ["classes.0.demand_tok_s=20000,40000"])
    assert len(built) == 2 and (df["status"] == "optimal").all()


def test_retarget_refuses_what_it_cannot_change_in_place(case):
    from planner.cases import load_case
    from planner.candidates import build_candidates
    from planner.problem import build_problem

    base = load_case(case)
    units = build_candidates(base)
    solver = FleetSolver(build_problem(base, units))
    first = solver.run()
    more = load_case(case, ["classes.0.demand_tok_s=60000"])
    assert not solver.retarget(build_problem(more, units))  # demand: other rows
    assert not solver.retarget(build_problem(base, units, "throughput"))
    assert solver.run(start_from_last=True).objective == pytest.approx(first.objective, rel=2e-3)  # untouched
    dearer = load_case(case, ["chips.b200.price_usd=90000", "constraints.power_mw=3"])
    p = build_problem(dearer, units)
    assert solver.retarget(p)
    fresh = FleetSolver(p).run()
    again = solver.run(start_from_last=True)
    assert again.objective == pytest.approx(fresh.objective, rel=2e-3)
