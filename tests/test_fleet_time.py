"""Load over time and real fleets (issue #14): owned chips, spares and availability, daily profiles —
validation with named fixes, and the plan on catalog chips."""
import pytest
from click.testing import CliRunner

from planner.cases import load_case
from planner.cli import main
from planner.errors import CaseError

CASE = """name = "t"
[fleet]
chips = ["b200"]
{fleet}
[constraints]
{constraints}
[economics]
{economics}
[[classes]]
name = "chat"
model = "gpt-oss-120b"
precision = "fp8"
isl = 2000
osl = 500
demand_tok_s = 10000
min_speed_tok_s_user = 100
ttft_s = 2.0
{cls}
"""


def write(tmp_path, fleet="", constraints="", economics="", cls=""):
    p = tmp_path / "case.toml"
    p.write_text(CASE.format(fleet=fleet, constraints=constraints, economics=economics, cls=cls), encoding="utf-8")
    return str(p)


def problems(path):
    with pytest.raises(CaseError) as exc:
        load_case(path)
    return {p.where.split(": ", 1)[1]: p for p in exc.value.problems}


def test_owned_chips_load_and_join_the_fleet_without_being_buyable(tmp_path):
    case = load_case(write(tmp_path, fleet='[[fleet.owned]]\nchip = "h100"\ncount = 16\nage_years = 2'))
    assert case.fleet.chips == ("b200", "h100-sxm") and case.fleet.owned_count("h100-sxm") == 16
    assert case.fleet.buyable("b200") and not case.fleet.buyable("h100-sxm")
    assert case.fleet.owned[0].age_years == 2


def test_bad_owned_entries_are_named_with_their_fix(tmp_path):
    fleet = ('[[fleet.owned]]\nchip = "h9000"\ncount = 8\n[[fleet.owned]]\nchip = "h100"\ncount = -8\n'
             '[[fleet.owned]]\nchip = "gb300"\ncount = 100\n[[fleet.owned]]\ncount = 3')
    got = problems(write(tmp_path, fleet=fleet))
    assert "unknown chip" in got["fleet.owned.0.chip"].what and "h200" in got["fleet.owned.0.chip"].fix
    assert "≥ 0" in got["fleet.owned.1.count"].what
    assert "multiple of 72" in got["fleet.owned.2.count"].what and "72 or 144" in got["fleet.owned.2.count"].fix
    assert "missing" in got["fleet.owned.3.chip"].what


def test_bad_owned_entry_exits_nonzero_without_a_traceback(tmp_path):
    res = CliRunner().invoke(main, ["plan", write(tmp_path, fleet='[[fleet.owned]]\nchip = "h100"\ncount = -1')])
    assert res.exit_code == 2 and "fleet.owned.0.count" in res.output and "Traceback" not in res.output


def test_spares_that_break_the_power_budget_are_diagnosed_in_mw():
    import planner
    from planner.errors import InfeasibleError

    base = planner.plan("availability-racks", grid="coarse")
    with pytest.raises(InfeasibleError) as exc:  # the fleet fits without spares, not with them
        planner.plan("availability-racks", grid="coarse", sets=[f"constraints.power_mw={base.power_mw * 0.95:.4f}"])
    assert any(p.where == "constraints.power_mw" and "short by" in p.what for p in exc.value.problems)


def test_bad_profiles_and_prices_name_the_field(tmp_path):
    got = problems(write(tmp_path, cls="demand_profile = [1, 2, 3]",
                         economics="electricity_usd_per_kwh_by_hour = [" + ", ".join(["-0.1"] + ["0.1"] * 23) + "]"))
    assert "24 numbers" in got["classes.0.demand_profile"].what
    assert "≥ 0" in got["economics.electricity_usd_per_kwh_by_hour.0"].what
    got = problems(write(tmp_path, cls="demand_profile = [" + ", ".join(["0"] * 24) + "]"))
    assert "every hour is 0" in got["classes.0.demand_profile"].what


def test_daily_profile_with_length_buckets_runs_shared_units_by_the_hour(tmp_path):
    """Hourly slices and length buckets together: each bucket's demand is met hour by hour (verify
    re-checks it), what shared units serve in an hour is within their running copies, and the
    night runs fewer chips than the peak."""
    import planner

    path = tmp_path / "b.toml"
    path.write_text('''
name = "buckets-by-the-hour"
[fleet]
chips = ["b200"]
[[classes]]
name = "chat"
model = "gpt-oss-120b"
precision = "fp8"
demand_tok_s = 200_000
min_speed_tok_s_user = 100
ttft_s = 2.0
demand_profile = [0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5, 0.7, 0.9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.9, 0.8, 0.6, 0.5, 0.4]
[[classes.lengths]]
isl = 1000
osl = 300
share = 0.6
[[classes.lengths]]
isl = 6000
osl = 800
share = 0.4
''')
    p = planner.plan(str(path))
    s = p.slices
    assert set(s["class"]) == {tc.name for tc in p.problem.case.classes} and len(s) == 24 * 2
    assert (s["running_capacity_tok_s"] >= s["demand_tok_s"] * (1 - 1e-6)).all()
    night, peak = s[s["hour"] == 2]["running_chips"].iloc[0], s[s["hour"] == 12]["running_chips"].iloc[0]
    assert night < peak
    o, prob = p.outcome, p.problem
    assert any(o.x.get(u, 0) for u in prob.unit_serves)  # the plan does use units shared between the buckets
    for u, caps in prob.unit_serves.items():  # Σ_j served/cap ≤ copies running, every hour
        for h in prob.slices:
            used = sum(o.slice_shares.get((u, j, h), 0.0) / (cap * 1000) for j, cap in caps.items())
            assert used <= o.running.get((u, h), 0.0) + 1e-6


def _arrivals(path, hours, per_hour):
    """A trace of `hours` hours whose hour h carries per_hour(h) requests of 100 output tokens."""
    lines = ["arrival_s,isl,osl"]
    for h in range(hours):
        n = per_hour(h % 24)
        lines += [f"{h * 3600 + (k + 0.5) * 3600 / n:.1f},1000,100" for k in range(n)]
    path.write_text("\n".join(lines) + "\n")


def _arrivals_case(tmp_path):
    """A one-class case whose daily profile comes from tmp_path/a.csv (10,000 tok/s on the mean hour)."""
    path = tmp_path / "c.toml"
    path.write_text('''
name = "arrivals"
[fleet]
chips = ["b200"]
[[classes]]
name = "chat"
model = "gpt-oss-120b"
precision = "fp8"
isl = 1000
osl = 100
demand_tok_s = 10_000
min_speed_tok_s_user = 100
ttft_s = 2.0
demand_profile = "a.csv"
''')
    return path


def test_a_demand_profile_from_a_trace_of_arrivals(tmp_path):
    """Hour h's factor is its output tokens over the mean hour's (averaged over the days the trace spans)."""
    from planner.cases import load_case

    _arrivals(tmp_path / "a.csv", 48, lambda h: 30 if 18 <= h < 22 else 10)
    path = _arrivals_case(tmp_path)
    tc = load_case(str(path)).classes[0]
    mean = (4 * 30 + 20 * 10) / 24
    assert tc.demand_profile[19] == pytest.approx(30 / mean) and tc.demand_profile[3] == pytest.approx(10 / mean)
    assert sum(tc.demand_profile) / 24 == pytest.approx(1.0)
    assert tc.peak_demand_tok_s == pytest.approx(10_000 * 30 / mean)


def test_a_trace_shorter_than_a_day_cannot_give_a_profile(tmp_path):
    from planner.cases import load_case
    from planner.errors import CaseError

    _arrivals(tmp_path / "a.csv", 5, lambda h: 10)
    path = _arrivals_case(tmp_path)
    with pytest.raises(CaseError) as err:
        load_case(str(path))
    assert "classes.0.demand_profile" in err.value.render() and "at least 23" in err.value.render()
