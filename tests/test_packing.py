"""Groups packed into the systems they are bought in (#23 item 1): exact against brute force."""
import itertools
import random

import pytest

from planner import packing
from planner.planning import plan_case
from planner.cases import load_case
from planner.verify import packing_violations
from tests.milp_helpers import chip, milp, min_systems, toy, unit, brute_force


@pytest.mark.parametrize("size", [4, 8, 12, 18])
def test_chain_condition_is_exactly_the_fewest_systems(size):
    sizes = [s for s in (1, 2, 4, 8, 16) if s <= size]
    rng = random.Random(size)
    for _ in range(60):
        counts = {s: rng.randint(0, 3) for s in sizes}
        groups = [s for s, k in counts.items() for _ in range(k)]
        levels = packing.chain_levels(sizes, size)
        by_chain = next(r for r in itertools.count() if all(
            sum(g * k for g, k in counts.items() if g >= s) <= slot * r for s, slot in levels))
        assert by_chain == min_systems(groups, size) == packing.systems_needed(counts, size)


def test_non_chain_sizes_use_patterns_and_match_brute_force():
    rng = random.Random(7)
    checked = 0
    for _ in range(40):
        c = chip("a", per_system=rng.choice([6, 7, 10]), by_system=False)
        units = [unit("c", "aggregated", "a", n, tput=rng.choice([100.0, 150.0, 250.0])) for n in rng.sample([2, 3, 4, 5], 3)]
        p = toy([c], units, classes=(("c", rng.choice([300.0, 500.0]), 1000, 1000),))
        truth = brute_force(p)
        o = milp(p)
        checked += 1
        assert truth is not None and o.status == "optimal" and o.objective == pytest.approx(truth, rel=1e-6)
    assert checked == 40


def test_a_wide_group_takes_whole_systems_and_leaves_room_to_smaller_ones():
    rack = chip("r", per_system=8, by_system=True)
    p = toy([rack], [unit("c", "aggregated", "r", 6, tput=100.0), unit("c", "aggregated", "r", 12, tput=210.0)],
            classes=(("c", 400.0, 1000, 1000),))
    o = milp(p)
    assert o.objective == pytest.approx(brute_force(p), rel=1e-9)
    # 4 × 6-chip groups need 4 racks (no two share one); 2 × 12-chip groups take 2 racks each
    assert packing.systems_needed({6: 4}, 8) == 4 and packing.systems_needed({12: 2}, 8) == 4


@pytest.mark.slow
@pytest.mark.parametrize("name, sets", [("default", []), ("default", ['fleet.chips=["h200-sxm"]']), ("owned-h100", [])])
def test_shipped_plans_hold_their_groups_in_whole_systems(name, sets):
    case = load_case(name, sets=sets)
    plan = plan_case(case)
    assert packing_violations(case, plan.units, plan.chips, plan.spares) == []
    for r in plan.chips.itertuples():
        size = case.chips[r.chip].chips_per_system
        assert r.chips % size == 0 and r.bought % size == 0 and r.owned_kept % size == 0
    laid = plan.systems.groupby("chip")["systems"].sum()
    for r in plan.chips.itertuples():
        if r.chip in laid:
            assert laid[r.chip] == r.systems
    broken = plan.units.copy()
    broken.loc[broken["n_attn"].idxmax(), "copies"] += 5  # one more of the widest unit than the racks hold
    assert packing_violations(case, broken, plan.chips, plan.spares)
