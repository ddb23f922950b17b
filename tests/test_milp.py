"""The fleet MILP: one hand-solvable test per constraint family, brute force, direction checks."""
import math
import random

import pytest

from milp_helpers import brute_force, chip, milp, toy, unit
from planner.results import extract


def test_throughput_family():
    p = toy([chip("a")], [unit("c", "aggregated", "a", 1, tput=300)])  # demand 1000 → 4 units
    o = milp(p)
    assert o.status == "optimal" and o.x[0] == 4 and o.n["a"] == 4


def test_prefill_family():
    # decode 500 tok/s per unit, ISL/OSL = 4 → 2000 input tok/s per decode unit; prefill unit serves 1500
    p = toy([chip("a")], [unit("c", "decode", "a", 1, tput=500), unit("c", "prefill", "a", 1, pre=1500)],
            classes=(("c", 1000.0, 4000, 1000),))
    o = milp(p)
    assert o.x[0] == 2 and o.x[1] == 3  # 4000 input tok/s needs ceil(4000/1500) = 3


def test_power_family():
    hungry = chip("hungry", power_kw=10, price_usd=8760 * 0.5)  # 0.5 + 1.0 USD/h
    frugal = chip("frugal", power_kw=1, price_usd=8760 * 2)  # 2 + 0.1 USD/h
    units = [unit("c", "aggregated", "hungry", 1, tput=500), unit("c", "aggregated", "frugal", 1, tput=500)]
    assert milp(toy([hungry, frugal], units)).n.get("hungry") == 2
    o = milp(toy([hungry, frugal], units, power_mw=0.015))  # 2 hungry = 20 kW > 15 kW
    assert o.n["hungry"] == 1 and o.n["frugal"] == 1
    assert "power" in o.duals  # the budget row is reported (its value: test_power_shadow_price below)
    # demand's marginal cost in the LP behind the prices, by hand: with power to spare a hungry unit serves
    # 0.5 k tok/s for 1.5 USD/h (3 USD/h per k tok/s); with the 15 kW binding, demand d needs x_h + x_f = 2d
    # and 10·x_h + x_f = 15, so cost = 1.5·(15 − 2d)/9 + 2.1·(20d − 15)/9 rises 39/9 USD/h per k tok/s
    assert o.duals["throughput[c]"] == pytest.approx(-39 / 9, rel=1e-6)
    assert milp(toy([hungry, frugal], units, power_mw=1.0)).duals["throughput[c]"] == pytest.approx(-3.0, rel=1e-6)


def test_power_shadow_price():
    """Hand LP (stage choices fixed, counts relaxed): 0.5·(x_h + x_f) ≥ 1 k tok/s, 10·x_h + x_f ≤ 15 kW,
    min 1.5·x_h + 2.1·x_f → x_h = 13/9, x_f = 5/9; one more kW moves 1/9 of a unit from frugal to
    hungry: −0.6/9 USD/h per kW."""
    hungry = chip("hungry", power_kw=10, price_usd=8760 * 0.5)
    frugal = chip("frugal", power_kw=1, price_usd=8760 * 2)
    units = [unit("c", "aggregated", "hungry", 1, tput=500), unit("c", "aggregated", "frugal", 1, tput=500)]
    o = milp(toy([hungry, frugal], units, power_mw=0.015))
    assert abs(o.duals["power"]) == pytest.approx(0.6 / 9, rel=1e-6)


def test_capex_family():
    cheap_run = chip("x", power_kw=0.1, price_usd=8760 * 3)
    cheap_buy = chip("y", power_kw=30, price_usd=8760 * 1)
    units = [unit("c", "aggregated", "x", 1, tput=1000), unit("c", "aggregated", "y", 1, tput=1000)]
    assert milp(toy([cheap_run, cheap_buy], units)).n.get("x") == 1  # 3 + 0.01 < 1 + 3 USD/h
    o = milp(toy([cheap_run, cheap_buy], units, capex_usd=8760 * 2))
    assert o.n.get("y") == 1 and o.n.get("x", 0) == 0


def test_supply_family():
    units = [unit("c", "aggregated", "a", 1, tput=400), unit("c", "aggregated", "b", 1, tput=400)]
    o = milp(toy([chip("a"), chip("b", price_usd=8760 * 5)], units, supply={"a": 2}))
    assert o.n["a"] == 2 and o.n["b"] == 1


def test_whole_systems_family():
    o = milp(toy([chip("r", per_system=8, by_system=True)], [unit("c", "aggregated", "r", 1, tput=400)]))
    assert o.n["r"] == 8  # 3 chips needed, sold in racks of 8


def test_max_types_per_stage_family():
    units = [unit("c", "aggregated", "a", 1, tput=400), unit("c", "aggregated", "b", 1, tput=400)]
    chips = [chip("a"), chip("b")]
    assert milp(toy(chips, units, supply={"a": 1, "b": 2}, max_chip_types_per_stage=2)).status == "optimal"
    assert milp(toy(chips, units, supply={"a": 1, "b": 2}, max_chip_types_per_stage=1)).status == "infeasible"


def test_fixed_cost_family():
    units = [unit("c", "aggregated", "a", 1, tput=1000), unit("c", "aggregated", "b", 1, tput=1000)]
    chips = [chip("a"), chip("b", price_usd=8760 * 2)]
    assert milp(toy(chips, units)).n.get("a") == 1
    o = milp(toy(chips, units, fixed_cost_usd={"a": 8760 * 5}))  # 5 USD/h platform cost on a
    assert o.n.get("b") == 1 and o.n.get("a", 0) == 0


def test_objectives_choose_differently():
    hungry = chip("hungry", power_kw=10, price_usd=8760 * 0.5)
    frugal = chip("frugal", power_kw=1, price_usd=8760 * 2)
    units = [unit("c", "aggregated", "hungry", 1, tput=1000), unit("c", "aggregated", "frugal", 1, tput=1000)]
    assert milp(toy([hungry, frugal], units, objective="capex")).n.get("hungry") == 1
    assert milp(toy([hungry, frugal], units, objective="power")).n.get("frugal") == 1


def test_throughput_objective_fills_the_budget():
    p = toy([chip("a", power_kw=1)], [unit("c", "aggregated", "a", 1, tput=300)], objective="throughput",
            power_mw=0.005)
    o = milp(p)
    assert o.n["a"] == 5 and o.alpha == pytest.approx(1.5)  # 5 × 300 / 1000


def random_problem(rng):
    chips = [chip(f"c{i}", power_kw=rng.choice([0.5, 1, 2, 4]), price_usd=8760 * rng.choice([0.5, 1, 2, 3]),
                  per_system=rng.choice([1, 1, 2, 4]), by_system=rng.random() < 0.3) for i in range(rng.choice([2, 3]))]
    classes = [("j0", rng.choice([300.0, 700.0, 1200.0]), rng.choice([500, 2000]), 500)]
    if rng.random() < 0.4:
        classes.append(("j1", rng.choice([200.0, 500.0]), 1000, 1000))
    units = []
    for name, *_ in classes:
        for _ in range(rng.choice([2, 3])):
            c = rng.choice(chips).id
            kind = rng.choice(["aggregated", "decode"])
            units.append(unit(name, kind, c, rng.choice([1, 2]), tput=rng.choice([150.0, 250.0, 400.0])))
        if any(u["kind"] == "decode" and u["class"] == name for u in units):
            units.append(unit(name, "prefill", rng.choice(chips).id, 1, pre=rng.choice([400.0, 900.0, 1600.0])))
    kw = {}
    if rng.random() < 0.4:
        kw["power_mw"] = rng.choice([0.004, 0.008, 0.02])
    if rng.random() < 0.3:
        kw["supply"] = {chips[0].id: rng.choice([1, 2, 4])}
    if rng.random() < 0.3:
        kw["max_chip_types_per_stage"] = 1
    if rng.random() < 0.2:
        kw["capex_usd"] = 8760 * rng.choice([4, 8])
    if rng.random() < 0.35:  # an owned stock, in whole systems, sometimes of a chip that cannot be bought
        c = rng.choice(chips)
        kw["owned"] = {c.id: c.chips_per_system * rng.choice([1, 2, 3]) if c.chips_per_system > 1 else rng.choice([1, 2, 4])}
        if rng.random() < 0.3:
            kw["buy"] = [x.id for x in chips if x.id != c.id]
    return toy(chips, units, classes=tuple(classes), **kw)


@pytest.mark.slow
def test_milp_equals_brute_force_on_random_tiny_instances():
    rng = random.Random(20261122)
    checked = feasible = 0
    for _ in range(400):
        p = random_problem(rng)
        if math.prod((m if m is not None else 12) + 1 for m in p.unit_max.values()) > 20000:  # enumerated: 20k is fast
            continue
        truth = brute_force(p)
        o = milp(p)
        checked += 1
        if truth is None:
            assert o.status == "infeasible"
        else:
            feasible += 1
            assert o.status == "optimal" and o.objective == pytest.approx(truth, rel=1e-6, abs=1e-6)
    assert checked >= 150 and feasible >= 60


# --- owned chips: sunk capex, running cost only, retirable -------------------------------------------
OLD = dict(power_kw=2, price_usd=8760 * 1)  # runs at 0.2 USD/h; new it would cost 1 + 0.2
NEW = dict(power_kw=0.5, price_usd=8760 * 1)  # 1 + 0.05 USD/h
OWN_UNITS = [unit("c", "aggregated", "old", 1, tput=250), unit("c", "aggregated", "new", 1, tput=500)]


def test_owned_chips_cheaper_to_run_than_new_ones_are_kept_and_nothing_is_bought():
    base = milp(toy([chip("old", **OLD), chip("new", **NEW)], OWN_UNITS))
    assert base.n == {"old": 0, "new": 2}  # 2 × 1.05 < 4 × 1.2
    o = milp(toy([chip("old", **OLD), chip("new", **NEW)], OWN_UNITS, owned={"old": 4}))
    assert o.kept == {"old": 4} and o.n["new"] == 0 and o.objective == pytest.approx(4 * 0.2)


def test_owned_chips_dearer_to_run_than_new_ones_are_retired():
    hot = dict(power_kw=20, price_usd=8760)  # 2 USD/h of energy each: 4 of them cost 8 > 2 new at 2.1
    p = toy([chip("old", **hot), chip("new", **NEW)], OWN_UNITS, owned={"old": 4})
    o = milp(p)
    assert o.kept == {"old": 0} and o.n == {"old": 0, "new": 2}
    plan = extract(p, o)
    row = plan.chips.set_index("chip").loc["old"]
    assert row.owned_retired == 4 and row.power_mw == 0 and row.tco_usd_per_hour == 0  # retired: no power, no cost
    assert plan.power_mw == pytest.approx(2 * 0.5 / 1000)


def test_part_of_the_owned_stock_is_topped_up_with_new_chips():
    o = milp(toy([chip("old", **OLD), chip("new", **NEW)], OWN_UNITS, owned={"old": 2}))
    assert o.kept == {"old": 2} and o.n["new"] == 1  # 2 × 0.2 + 1.05 < 2 × 1.05
    assert o.objective == pytest.approx(0.4 + 1.05)


def test_owned_capex_is_sunk_for_the_capex_budget_and_supply_caps_only_limit_new_chips():
    p = toy([chip("old", **OLD), chip("new", **NEW)], OWN_UNITS, owned={"old": 4}, capex_usd=1.0, supply={"old": 0})
    o = milp(p)
    assert o.status == "optimal" and o.kept == {"old": 4} and o.n["new"] == 0


def test_an_owned_only_chip_is_used_but_never_bought():
    p = toy([chip("old", **OLD), chip("new", power_kw=0.5, price_usd=8760 * 9)], OWN_UNITS, owned={"old": 2},
            buy=["new"])
    o = milp(p)
    assert o.n["old"] == 2 and o.kept == {"old": 2} and o.n["new"] == 1  # buying 2 more old would be cheaper


def test_owned_rack_systems_are_kept_or_retired_whole():
    rack = chip("rack", power_kw=0.1, price_usd=8760, per_system=4, by_system=True)
    p = toy([rack, chip("new", **NEW)], [unit("c", "aggregated", "rack", 1, tput=200),
                                         unit("c", "aggregated", "new", 1, tput=500)], owned={"rack": 8})
    o = milp(p)
    assert o.kept["rack"] % 4 == 0 and o.n["rack"] % 4 == 0
    assert o.objective == pytest.approx(brute_force(p), rel=1e-9)


# --- spares and availability --------------------------------------------------------------------------
def test_availability_buys_exactly_one_more_unit():
    # 4 units carry the load; each is down 1 % of the time. 4 alone: P(all up) = 0.961 < 0.99;
    # 4 + 1: P(≤ 1 of 5 down) = 0.99902 ≥ 0.99 → exactly one spare
    units = [unit("c", "aggregated", "a", 1, tput=250)]
    assert milp(toy([chip("a", down=0.01)], units)).x[0] == 4
    p = toy([chip("a", down=0.01)], units, availability=0.99)
    o = milp(p)
    assert o.x[0] == 4 and o.spares == {0: 1} and o.n["a"] == 5
    plan = extract(p, o)
    assert plan.spares.iloc[0].p_covered == pytest.approx(0.99 ** 5 + 5 * 0.01 * 0.99 ** 4)
    assert int(plan.chips.set_index("chip").loc["a", "spare_chips"]) == 1
    assert milp(toy([chip("a", down=0.01)], units, availability=0.9999)).spares == {0: 2}


def test_spare_fraction_rounds_up_per_group():
    p = toy([chip("a")], [unit("c", "aggregated", "a", 2, tput=100)], spare_fraction=0.05)  # 10 working → 0.5 → 1
    o = milp(p)
    assert o.x[0] == 10 and o.spares == {0: 1} and o.n["a"] == 22


def test_a_rack_failure_takes_the_whole_rack_so_spares_come_in_racks():
    rack = chip("r", per_system=4, by_system=True, down=0.001)  # rack down 1 − 0.999⁴ ≈ 0.4 %
    units = [unit("c", "aggregated", "r", 1, tput=200)]  # 5 units → 2 working racks
    o = milp(toy([rack], units, availability=0.999))
    assert o.n["r"] == 12 and o.spare_systems == {"r": 1}  # P(≤1 of 3 racks down) ≥ 0.999 > P(both of 2 up)


def test_spares_can_tip_the_choice_to_a_smaller_failure_domain():
    # big: one 8-chip unit does it all, but it is down whenever any of 8 chips is, so it needs a whole spare unit;
    # small: 1-chip units, 8 of them, one spare chip is enough
    big = unit("c", "aggregated", "a", 8, tput=1000)
    small = unit("c", "aggregated", "a", 1, tput=126)
    assert milp(toy([chip("a", down=0.002)], [big, small])).n["a"] == 8
    o = milp(toy([chip("a", down=0.002)], [big, small], availability=0.999))
    assert o.n["a"] == 9 and o.x[1] == 8 and o.spares.get(1) == 1


@pytest.mark.slow
def test_spares_follow_the_brute_force_oracle():
    rng = random.Random(7)
    checked = 0
    for _ in range(25):
        p = random_problem(rng)
        chips = [chip(c, power_kw=p.case.chips[c].power_kw, price_usd=p.case.chips[c].price_usd,
                      per_system=p.case.chips[c].chips_per_system, by_system=p.case.chips[c].sold_by_system,
                      down=rng.choice([0.001, 0.01, 0.05])) for c in p.case.chips]
        kw = rng.choice([{"availability": 0.99}, {"spare_fraction": 0.2}, {"availability": 0.999, "spare_fraction": 0.1}])
        q = toy(chips, p.units.to_dict("records"), classes=tuple((tc.name, tc.demand_tok_s, tc.isl, tc.osl)
                                                                  for tc in p.case.classes), **kw)
        if math.prod((m if m is not None else 12) + 1 for m in q.unit_max.values()) > 3000:
            continue
        truth, o = brute_force(q), milp(q)
        checked += 1
        assert (o.status == "infeasible") if truth is None else o.objective == pytest.approx(truth, rel=1e-6, abs=1e-6)
    assert checked >= 12


# --- daily profile and time-of-use prices ------------------------------------------------------------------
PEAK = [0.25] * 12 + [1.0] + [0.25] * 11  # one peak hour at noon


def profiled(chips, units, profile=PEAK, prices=(), **kw):
    from dataclasses import replace

    p = toy(chips, units, **kw)
    case = replace(p.case, classes=tuple(replace(tc, demand_profile=tuple(profile)) for tc in p.case.classes),
                   economics=replace(p.case.economics, electricity_usd_per_kwh_by_hour=tuple(prices)))
    from planner.problem import build_problem

    return build_problem(case, p.units, p.objective)


def test_the_peak_slice_alone_decides_the_purchase_and_off_peak_runs_less():
    p = profiled([chip("a")], [unit("c", "aggregated", "a", 1, tput=250)])  # peak 1000 → 4; off-peak 250 → 1
    o = milp(p)
    assert o.x[0] == 4 and o.n["a"] == 4
    assert o.running[(0, 12)] == 4 and all(o.running[(0, h)] == 1 for h in range(24) if h != 12)
    # capex 4 × 1 + facility 0 + energy: 4 × 0.3 idle kW + (1 − 0.3) kW per running chip, at 0.1 USD/kWh
    energy = sum(0.1 * (4 * 0.3 + 0.7 * (4 if h == 12 else 1)) for h in range(24)) / 24
    assert o.objective == pytest.approx(4 + energy)
    plan = extract(p, o)
    assert plan.slices["utilization"].max() == pytest.approx(1.0) and plan.slices["utilization"].min() == pytest.approx(0.25)


def test_time_of_use_prices_change_which_units_run():
    hungry = chip("hungry", power_kw=10, price_usd=8760 * 0.5)  # flat: 0.5 + 1.0 USD/h running
    frugal = chip("frugal", power_kw=1, price_usd=8760 * 2)  # flat: 2 + 0.1
    units = [unit("c", "aggregated", "hungry", 1, tput=1000), unit("c", "aggregated", "frugal", 1, tput=1000)]
    flat = milp(profiled([hungry, frugal], units, profile=[1.0] * 24))
    assert {u for u, h in flat.running} == {0}  # only the hungry unit runs, every hour
    dear = [0.1] * 17 + [1.0] * 6 + [0.1]  # an evening peak price: mean 0.325 USD/kWh
    tou = milp(profiled([hungry, frugal], units, profile=[1.0] * 24, prices=dear))
    assert {u for u, h in tou.running} == {1} and tou.n.get("hungry", 0) == 0
    # with both bought for a peak, the hungry unit runs only in the cheap hours
    both = milp(profiled([hungry, frugal], units, profile=[1.0] * 12 + [2.0] + [1.0] * 11, prices=dear))
    assert both.n == {"hungry": 1, "frugal": 1}
    assert all((1, h) in both.running for h in range(24)) and {h for u, h in both.running if u == 0} == {12}


def test_a_units_make_up_is_one_definition_for_the_milp_and_the_plan():
    """problem.unit_parts is what the MILP's chips and stage pairs and the plan's stages table read.
    They differed for a draft model on an aggregated unit: build_problem bought its chips but gave it
    no decode_draft stage (so no stage binary, no max_chip_types_per_stage row), while the stages
    table listed one. Candidates only put drafts on decode units, so no shipped plan changed."""
    from planner.problem import unit_parts

    draft = {"draft_chip": "d", "n_draft": 2}
    p = toy([chip("a"), chip("b"), chip("d")],
            [{**unit("c", "aggregated", "a", 2, tput=1000.0), **draft},
             {**unit("c", "decode", "a", 2, tput=500.0), **draft},
             {**unit("c", "decode", "a", 1, tput=400.0, f="b", nf=3), "draft_chip": "", "n_draft": 0},
             {**unit("c", "prefill", "b", 1, pre=1e6), "draft_chip": "", "n_draft": 0}])
    assert p.unit_stages[0] == [("prefill", "a"), ("decode_attention", "a"), ("decode_ffn", "a"), ("decode_draft", "d")]
    assert p.unit_chips[0] == {"a": 2, "d": 2}
    assert p.unit_stages[1] == [("decode_attention", "a"), ("decode_ffn", "a"), ("decode_draft", "d")]
    assert p.unit_stages[2] == [("decode_attention", "a"), ("decode_ffn", "b")] and p.unit_chips[2] == {"a": 1, "b": 3}
    assert p.unit_stages[3] == [("prefill", "b")] and p.unit_chips[3] == {"b": 1}
    assert unit_parts("decode", "a", 2, "a", 0, float("nan"), 0) == [("a", 2, ("decode_attention", "decode_ffn"))]

    o = milp(p)
    plan = extract(p, o)
    used = [u for u, v in o.x.items() if v > 0]
    assert used == [0]  # the aggregated unit serves it all at the least cost
    stages = {(r.stage, r.chip): (r.chips, r.shared) for r in plan.stages.itertuples()}
    assert stages == {("prefill", "a"): (2, True), ("decode_attention", "a"): (2, True),
                      ("decode_ffn", "a"): (2, True), ("decode_draft", "d"): (2, False)}
    assert set(stages) == set(p.unit_stages[0])


def test_candidates_give_drafts_to_decode_units_only():
    """Why the draft difference above never showed: speculative units are decode units."""
    from planner.candidates import GRIDS, build_candidates
    from planner.cases import load_case

    table = build_candidates(load_case("speculative-draft"), GRIDS["coarse"])
    drafted = table[table["draft_chip"].astype(str) != ""]
    assert len(drafted) and set(drafted["kind"]) == {"decode"}


def test_a_fleet_problem_is_frozen():
    """The solver, the elastic model and the speed chains share one FleetProblem; a variant is a copy."""
    import dataclasses

    p = toy([chip("a")], [unit("c", "aggregated", "a", 1, tput=1000.0)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.objective = "capex"
    assert dataclasses.replace(p, objective="capex").objective == "capex" and p.objective == "tco"
