"""Multi-period roadmaps (planner/roadmap.py, formulations/roadmap.py): hand-solvable two-period
cases, a brute-force oracle over purchases and retirements on tiny instances, and the CLI."""
import itertools
import json
import math
import random

import pandas as pd
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.domain import Case, Constraints, Economics, Fleet, OwnedChips, Period, TrafficClass
from planner.errors import InfeasibleError
from planner.roadmap import build_roadmap_problem, discounted_years, roadmap_case, solve_roadmap
from planner.solve import SolveOptions

from milp_helpers import chip, unit

HOURS = 8760


def econ(price_kwh=0.1, rate=0.0, dep=2.0, life=10.0):
    return Economics(electricity_usd_per_kwh=price_kwh, pue=1.0, amortization_years=dep, facility_capex_usd_per_mw=0.0,
                     facility_amortization_years=1.0, discount_rate=rate, service_life_years=life)


def toy_roadmap(chips, units, periods, owned=(), economics=None, demand=100.0, buy=None, supply=None):
    """One class 'c' (ISL = OSL, so a prefill unit serves its own demand in input tokens); periods are
    Period records; owned: (chip, count, age_years)."""
    tc = TrafficClass(name="c", model="m", precision="fp8", isl=100, osl=100, demand_tok_s=demand,
                      min_speed_tok_s_user=1, ttft_s=1)
    case = Case(name="toy-roadmap", description="", economics=economics or econ(),
                constraints=Constraints(supply=supply or {}),
                fleet=Fleet(chips=tuple(c.id for c in chips), owned=tuple(OwnedChips(c, k, a) for c, k, a in owned),
                            buy=buy), classes=(tc,), chips={c.id: c for c in chips}, models={},
                periods=tuple(periods))
    return case, pd.DataFrame(units)


def solve(case, units, gap=1e-9):
    return roadmap_case(case, SolveOptions(mip_gap=gap, time_limit_s=60), units=units)


def bought(rm, year, chip_id):
    rows = rm.chips[(rm.chips["year"] == year) & (rm.chips["chip"] == chip_id)]
    return int(rows["bought"].sum())


def in_service(rm, year, chip_id):
    rows = rm.chips[(rm.chips["year"] == year) & (rm.chips["chip"] == chip_id)]
    return int(rows["in_service"].sum())


# ---------------------------------------------------------------------------------- hand-solvable
def early_or_late(price_kwh):
    """An owned 10 kW chip and a new 1 kW one, each unit serving 100 tok/s; demand 100 then 200.
    Depreciation over 2 years, no discounting, a 2-year horizon (price 8760 USD):
      keep the old chip, buy one new in year 2:   (10·2 + 1)·e·8760 + P/2
      retire it, buy one now and one in year 2:   (1 + 2)·e·8760 + P + P/2
      keep it a year, buy two new in year 2:      (10 + 2)·e·8760 + P
    At 0.1 USD/kWh buying early wins (15,768 USD of energy saved against 8,760 of depreciation);
    at 0.01 USD/kWh keeping the old chip and buying late does."""
    old, new = chip("old", power_kw=10.0), chip("new", power_kw=1.0)
    units = [unit("c", "aggregated", "old", 1, tput=100.0), unit("c", "aggregated", "new", 1, tput=100.0)]
    periods = [Period(year=2026, years=1), Period(year=2027, years=1, demand_growth={"*": 2.0})]
    return toy_roadmap([old, new], units, periods, owned=[("old", 1, 0.0)], economics=econ(price_kwh), buy=("new",))


def test_buying_early_beats_buying_late_when_the_old_chip_costs_enough_to_run():
    case, units = early_or_late(0.1)
    rm = solve(case, units)
    assert bought(rm, 2026, "new") == 1 and bought(rm, 2027, "new") == 1
    assert in_service(rm, 2026, "old") == 0 and in_service(rm, 2027, "old") == 0
    assert rm.npv_usd == pytest.approx(3 * 0.1 * HOURS + 8760 * 1.5, rel=1e-9)
    assert int(rm.chips.query("year == 2026 and chip == 'old'")["retired"].sum()) == 1


def test_buying_late_wins_when_the_old_chip_is_cheap_to_run():
    case, units = early_or_late(0.01)
    rm = solve(case, units)
    assert bought(rm, 2026, "new") == 0 and bought(rm, 2027, "new") == 1
    assert in_service(rm, 2026, "old") == 1 and in_service(rm, 2027, "old") == 1
    assert rm.npv_usd == pytest.approx(21 * 0.01 * HOURS + 8760 / 2, rel=1e-9)


def test_a_chip_is_not_bought_before_its_available_year():
    """The new chip is far cheaper to run but ships in 2027: 2026 must buy the old design."""
    old, new = chip("old", power_kw=10.0), chip("new", power_kw=1.0)
    from dataclasses import replace

    new = replace(new, available_year=2027.0)
    units = [unit("c", "aggregated", "old", 1, tput=100.0), unit("c", "aggregated", "new", 1, tput=100.0)]
    periods = [Period(year=2026, years=1), Period(year=2027, years=1)]
    case, units = toy_roadmap([old, new], units, periods)
    rm = solve(case, units)
    assert bought(rm, 2026, "old") == 1 and bought(rm, 2026, "new") == 0
    assert in_service(rm, 2027, "new") == 1  # from 2027 the 1 kW chip serves and the old one is retired
    assert in_service(rm, 2027, "old") == 0


def test_owned_chips_retire_at_their_service_life():
    """Owned chips 5.5 years old with a 6-year life serve 2026 only; 2027 must buy."""
    old = chip("old", power_kw=1.0)
    units = [unit("c", "aggregated", "old", 1, tput=100.0)]
    periods = [Period(year=2026, years=1), Period(year=2027, years=1)]
    case, units = toy_roadmap([old], units, periods, owned=[("old", 1, 5.5)], economics=econ(life=6.0))
    rm = solve(case, units)
    assert bought(rm, 2026, "old") == 0 and bought(rm, 2027, "old") == 1
    row = rm.chips.query("year == 2027 and chip == 'old'").iloc[0]
    assert row["retired"] == 1 and row["retired_end_of_life"] == 1 and row["in_service"] == 1


def test_a_retired_chip_does_not_come_back():
    """Demand 100, then 50, then 100: the owned chip must stay in service through the dip (retiring it in
    the dip and buying again would cost a purchase), and the dip's idle chip pays its running cost."""
    old = chip("old", power_kw=1.0, price_usd=1e6)
    units = [unit("c", "aggregated", "old", 1, tput=50.0)]
    periods = [Period(year=2026, years=1), Period(year=2027, years=1, demand_growth={"*": 0.5}),
               Period(year=2028, years=1)]
    case, units = toy_roadmap([old], units, periods, owned=[("old", 2, 0.0)])
    rm = solve(case, units)
    assert [in_service(rm, y, "old") for y in (2026, 2027, 2028)] == [2, 2, 2]
    assert rm.chips["bought"].sum() == 0
    assert rm.periods["chips_in_use"].tolist() == [2, 1, 2]


def test_period_capex_budget_forces_buying_early():
    """Demand triples in 2027 but 2027 may spend only one chip's price: 2026 buys ahead."""
    c = chip("a", power_kw=1.0)
    units = [unit("c", "aggregated", "a", 1, tput=100.0)]
    periods = [Period(year=2026, years=1), Period(year=2027, years=1, demand_growth={"*": 3.0}, capex_usd=8760)]
    case, units = toy_roadmap([c], units, periods)
    rm = solve(case, units)
    assert bought(rm, 2026, "a") == 2 and bought(rm, 2027, "a") == 1
    assert rm.periods.set_index("year").loc[2027, "capex_usd"] <= 8760


def test_discounting_and_depreciation_weights():
    assert discounted_years(0, 2, 0.0) == 2
    assert discounted_years(0, 1, 0.08) == pytest.approx((1 - 1 / 1.08) / math.log(1.08))
    c = chip("a")
    case, units = toy_roadmap([c], [unit("c", "aggregated", "a", 1, tput=100.0)],
                              [Period(year=2026, years=1), Period(year=2027, years=3)], economics=econ(rate=0.1, dep=2))
    r = build_roadmap_problem(case, units)
    co = [co for co in r.cohorts if co.bought_in == 1][0]
    assert co.depreciation_weight == pytest.approx(discounted_years(1, 3, 0.1) / 2)  # 2 depreciation years in 1…4
    co0 = [co for co in r.cohorts if co.bought_in == 0][0]
    assert co0.depreciation_weight == pytest.approx(discounted_years(0, 2, 0.1) / 2)
    assert r.hours_weight[1] == pytest.approx(HOURS * discounted_years(1, 4, 0.1))


def test_infeasible_period_is_named_with_its_own_diagnosis():
    c = chip("a", power_kw=1.0)
    units = [unit("c", "aggregated", "a", 1, tput=100.0)]
    periods = [Period(year=2026, years=1, power_mw=1.0), Period(year=2027, years=1, demand_growth={"*": 30.0},
                                                                power_mw=0.002)]
    case, units = toy_roadmap([c], units, periods)
    with pytest.raises(InfeasibleError) as exc:
        solve(case, units)
    wheres = [p.where for p in exc.value.problems]
    assert any(w.startswith("periods.1 (2027)") and "power_mw" in w for w in wheres), wheres
    assert not any(w.startswith("periods.0") for w in wheres)


# -------------------------------------------------------------------------------- brute force
def oracle(case, units, max_combinations=None):
    """Cheapest NPV by enumeration: every purchase count per (chip, period) up to what the peak needs, every
    non-increasing keep sequence per cohort, and for each period's chips in service whether some
    whole number of units serves the demand within the power budget. Independent of the MILP's
    bookkeeping: costs from first principles (energy = kW × PUE × price; facility share 0)."""
    per, e = case.periods, case.economics
    y0 = per[0].year
    H = per[-1].year + per[-1].years - y0
    U = units.to_dict("records")
    chips = sorted({u["attn_chip"] for u in U})
    T = range(len(per))
    peak = case.classes[0].demand_tok_s * max(t.growth("c") for t in per)
    need = {u["attn_chip"]: math.ceil(peak / u["throughput_tok_s"] - 1e-9) * u["n_attn"] for u in U}
    """more chips of a type than the peak period could use never pays (the unit's own chips, one unit per chip type)"""

    def alive(age0, t):
        return age0 + per[t].year - y0 < e.service_life_years

    cohorts = []  # (chip, first period, lots available at first, owned?)
    for o in case.fleet.owned:
        cohorts.append((o.chip, o.age_years, o.count, True, None))
    for c in chips:
        if not case.fleet.buyable(c):
            continue
        for t in T:
            if case.chips[c].available_year <= per[t].year:
                cohorts.append((c, -(per[t].year - y0), None, False, t))

    def seqs(co):
        c, age0, cap, owned, t0 = co
        periods = [t for t in T if (t0 is None or t >= t0) and alive(age0, t)]
        out = []
        starts = range(0, (cap if owned else need[c]) + 1)
        for s0 in starts:
            for rest in itertools.product(range(0, s0 + 1), repeat=max(len(periods) - 1, 0)):
                vals = (s0,) + rest
                if all(a >= b for a, b in zip(vals, vals[1:])):
                    out.append((dict(zip(periods, vals)), s0))
        return out

    feasible_cache = {}

    def servable(t, n):
        key = (t, tuple(sorted(n.items())))
        if key in feasible_cache:
            return feasible_cache[key]
        demand = case.classes[0].demand_tok_s * per[t].growth("c")
        ok = False
        ranges = [range(0, n.get(u["attn_chip"], 0) // u["n_attn"] + 1) for u in U]
        for xs in itertools.product(*ranges):
            use = {}
            for u, x in zip(U, xs):
                use[u["attn_chip"]] = use.get(u["attn_chip"], 0) + u["n_attn"] * x
            if any(use[c] > n.get(c, 0) for c in use):
                continue
            if sum(u["throughput_tok_s"] * x for u, x in zip(U, xs)) >= demand - 1e-9:
                ok = True
                break
        feasible_cache[key] = ok
        return ok

    options = [seqs(co) for co in cohorts]
    if max_combinations is not None and math.prod(len(o) for o in options) > max_combinations:
        return "too big"
    best = None
    for choice in itertools.product(*options):
        n = {t: {} for t in T}
        capex = {t: 0.0 for t in T}
        cost = 0.0
        for co, (keep, s0) in zip(cohorts, choice):
            c, _, _, owned, t0 = co
            for t, v in keep.items():
                n[t][c] = n[t].get(c, 0) + v
            if not owned and s0:
                capex[t0] += s0 * case.chips[c].price_usd
                a = per[t0].year - y0
                cost += s0 * case.chips[c].price_usd * discounted_years(a, min(a + e.amortization_years, H),
                                                                        e.discount_rate) / e.amortization_years
        ok = True
        for t in T:
            if per[t].capex_usd is not None and capex[t] > per[t].capex_usd + 1e-6:
                ok = False
                break
            power = e.pue * sum(case.chips[c].power_kw * v for c, v in n[t].items())
            if per[t].power_mw is not None and power > per[t].power_mw * 1000 + 1e-9:
                ok = False
                break
            if not servable(t, n[t]):
                ok = False
                break
            price = per[t].electricity_usd_per_kwh if per[t].electricity_usd_per_kwh is not None else e.electricity_usd_per_kwh
            hours = HOURS * discounted_years(per[t].year - y0, per[t].year - y0 + per[t].years, e.discount_rate)
            cost += hours * power * price
        if ok and (best is None or cost < best - 1e-9):
            best = cost
    return best


def random_roadmap(rng):
    n_chips = rng.choice([1, 2])
    chips = []
    for i in range(n_chips):
        c = chip(f"k{i}", power_kw=rng.choice([0.5, 1.0, 3.0]), price_usd=rng.choice([2000.0, 8760.0, 30000.0]))
        if rng.random() < 0.3:
            from dataclasses import replace

            c = replace(c, available_year=2027.0)
        chips.append(c)
    units = [unit("c", "aggregated", c.id, rng.choice([1, 2]), tput=rng.choice([60.0, 100.0, 150.0])) for c in chips]
    periods = []
    years = (2026, 2027, 2029)[: rng.choice([2, 3])]
    for k, year in enumerate(years):  # a period lasts until the next; the last 1 or 2 years
        periods.append(Period(year=year, years=years[k + 1] - year if k + 1 < len(years) else rng.choice([1.0, 2.0]), demand_growth={"*": rng.choice([0.5, 1.0, 1.6, 2.2])},
                              power_mw=rng.choice([None, 0.006, 0.012]), capex_usd=rng.choice([None, None, 60000.0]),
                              electricity_usd_per_kwh=rng.choice([None, 0.3])))
    owned = [(chips[0].id, rng.choice([0, 1, 2]), rng.choice([0.0, 2.5]))] if rng.random() < 0.6 else []
    return toy_roadmap(chips, units, periods, owned=owned, demand=100.0,
                       economics=econ(price_kwh=rng.choice([0.05, 0.2]), rate=rng.choice([0.0, 0.1]),
                                      dep=rng.choice([1.0, 2.0]), life=rng.choice([2.0, 10.0])))


@pytest.mark.parametrize("seed", range(24))
def test_roadmap_matches_brute_force(seed):
    rng = random.Random(seed)
    while True:  # instances the enumeration finishes in well under a second
        case, units = random_roadmap(rng)
        want = oracle(case, units, max_combinations=20_000)
        if want != "too big":
            break
    r = build_roadmap_problem(case, units)
    got = solve_roadmap(r, SolveOptions(mip_gap=1e-9, time_limit_s=30))
    if want is None:
        assert got is None, f"seed {seed}: the MILP found a roadmap the oracle calls infeasible"
        return
    assert got is not None, f"seed {seed}: the oracle finds {want:,.2f} USD, the MILP nothing"
    assert got.npv_usd == pytest.approx(want, rel=1e-7, abs=1e-6), f"seed {seed}"


# ---------------------------------------------------------------------------------------- CLI
def write_case(tmp_path, extra=""):
    text = f'''
name = "tiny-roadmap"
[fleet]
chips = ["b200", "rubin"]
[[fleet.owned]]
chip = "h100-sxm"
count = 512
age_years = 4.5
[[classes]]
name = "chat"
model = "gpt-oss-120b"
precision = "fp8"
isl = 2000
osl = 500
demand_tok_s = 200_000
min_speed_tok_s_user = 100
ttft_s = 2.0
[[periods]]
year = 2026
power_mw = 5
[[periods]]
year = 2027
demand_growth = 2.0
power_mw = 5
{extra}
'''
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def test_cli_roadmap_table_json_and_output(tmp_path):
    path = write_case(tmp_path)
    res = CliRunner().invoke(main, ["roadmap", str(path), "--format", "json", "--output", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["status"] in ("optimal", "feasible") and d["npv_usd"] > 0
    assert [p["year"] for p in d["periods"]] == [2026, 2027]
    assert {"bought", "retired", "in_service", "retired_end_of_life"} <= set(d["chips"][0])
    # the H100s turn 6 during 2027's period start (4.5 + 1 < 6 serves; 2028 would not): no rubin before 2027
    assert not any(c["chip"] == "rubin" and c["year"] == 2026 and c["bought"] for c in d["chips"])
    files = {f.name for f in (tmp_path / "out").iterdir()}
    assert {"periods.csv", "chips.csv", "units.csv", "roadmap.json", "run.json", "roadmap.png"} <= files
    assert (tmp_path / "out" / "roadmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    periods = pd.read_csv(tmp_path / "out" / "periods.csv")
    assert periods["capacity_tok_s"].ge(periods["demand_tok_s"] * (1 - 1e-6)).all()
    res = CliRunner().invoke(main, ["roadmap", str(path)])
    assert res.exit_code == 0 and "What to buy, keep and retire" in res.output and "NPV" in res.output


def test_cli_roadmap_refuses_bad_periods(tmp_path):
    path = write_case(tmp_path, '[[periods]]\nyear = 2026.5\ndemand_growth = {chaat = 2}\n')
    res = CliRunner().invoke(main, ["roadmap", str(path), "--set", "periods.0.years=3"])
    assert res.exit_code == 2
    assert "periods.0.years" in res.output and "overlaps" in res.output
    assert "periods.2.year" in res.output and "increasing" in res.output
    assert "periods.2.demand_growth.chaat" in res.output and "chat" in res.output
    assert "Traceback" not in res.output


def test_cli_roadmap_needs_periods():
    res = CliRunner().invoke(main, ["roadmap", "default"])
    assert res.exit_code == 2 and "[[periods]]" in res.output


def test_cli_roadmap_infeasible_json(tmp_path):
    path = write_case(tmp_path)
    res = CliRunner().invoke(main, ["roadmap", str(path), "--set", "periods.1.power_mw=0.05", "--format", "json"])
    assert res.exit_code == 1, res.output
    d = json.loads(res.stdout)
    assert d["status"] == "infeasible"
    assert any(p["where"].startswith("periods.1 (2027)") for p in d["diagnosis"]), d["diagnosis"]


def test_a_roadmap_with_nothing_in_service_still_writes_its_files(tmp_path):
    """Every class without demand in every period and nothing owned: an empty fleet, a chart without bars."""
    path = write_case(tmp_path)
    sets = ["fleet.owned=[]", "periods.0.demand_growth=0", "periods.1.demand_growth=0"]
    res = CliRunner().invoke(main, ["roadmap", str(path), *sum((["--set", s] for s in sets), []),
                                    "--output", str(tmp_path / "empty")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "empty" / "roadmap.png").stat().st_size > 0
    assert pd.read_csv(tmp_path / "empty" / "periods.csv")["chips_in_service"].eq(0).all()


def test_a_period_price_with_hourly_prices_is_refused(tmp_path):
    hourly = "[" + ", ".join(["0.1"] * 24) + "]"
    path = write_case(tmp_path)
    res = CliRunner().invoke(main, ["roadmap", str(path), "--set", f"economics.electricity_usd_per_kwh_by_hour={hourly}",
                                    "--set", "periods.1.electricity_usd_per_kwh=5"])
    assert res.exit_code == 2 and "periods.1.electricity_usd_per_kwh" in res.output


def test_a_period_before_any_chip_ships_says_so(tmp_path):
    path = write_case(tmp_path)
    res = CliRunner().invoke(main, ["roadmap", str(path), "--set", "fleet.owned=[]", "--set", "periods.0.year=2020",
                                    "--set", "periods.1.year=2021"])
    assert res.exit_code == 1, res.output
    assert "periods.0.year" in res.output and "no chip can be bought by 2020" in res.output


def test_the_periods_npv_shares_add_up_and_an_unproven_roadmap_says_so():
    case, units = early_or_late(0.1)
    rm = solve(case, units)
    assert rm.periods["npv_usd"].sum() == pytest.approx(rm.npv_usd, rel=1e-9)
    assert not any(w.startswith("not proven optimal") for w in rm.warnings)
