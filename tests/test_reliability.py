"""Wrong answers never reported as success; every bad input one clear error; outputs safe to rely on."""
from __future__ import annotations

import copy
import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner.cases import build_case, load_case
from planner.cli import main
from planner.errors import CaseError, PlannerError, SolverError

BASE = {"name": "rel", "fleet": {"chips": ["b200", "h100"]},
        "classes": [{"name": "a", "model": "llama-3.1-8b", "precision": "fp8", "isl": 1000, "osl": 200,
                     "demand_tok_s": 10000, "min_speed_tok_s_user": 50, "ttft_s": 2}]}


def run(*args):
    return CliRunner().invoke(main, list(args))


# ------------------------------------------------------------------------------------ the Python API
def test_public_api_works_twice_in_one_process():
    """Importing planner.plan (the module) used to replace planner.plan (the function)."""
    import planner

    first = planner.plan("default", grid="coarse")
    second = planner.plan("default", grid="coarse", sets=["economics.pue=1.3"])
    assert first.power_mw < second.power_mw  # a higher PUE draws more at the site
    for _ in range(2):
        r = planner.estimate(model="llama-3.1-70b", chip="h100", chips=2, isl=2000, osl=200, precision="fp8")
        assert r["speed_tok_s_user"] > 0
    assert callable(planner.plan) and callable(planner.estimate)


# ------------------------------------------------------------------------------------ physical ranges
@pytest.mark.parametrize("setting, where", [
    ("economics.pue=1e15", "economics.pue"),
    ("chips.rubin.power_kw=1e15", "chips.rubin.power_kw"),
    ("chips.rubin.chips_per_system=1e15", "chips.rubin.chips_per_system"),
    ("economics.amortization_years=1e-300", "economics.amortization_years"),
    ("classes.0.kv_headroom=1e15", "classes.0.kv_headroom"),
    ("classes.0.demand_tok_s=1e15", "classes.0.demand_tok_s"),
])
def test_figures_outside_their_physical_range_are_refused_naming_the_set(setting, where):
    """They used to pass validation, then HiGHS dropped every row and called an empty fleet optimal."""
    with pytest.raises(PlannerError) as err:
        load_case("default", [setting])
    text = err.value.render()
    assert f"--set {where}" in text and "outside the physical range" in text, text


def test_catalog_overlay_pue_below_one_is_refused(tmp_path):
    overlay = tmp_path / "pue.toml"
    overlay.write_text("[economics]\npue = 0.5\n")
    res = run("plan", "--catalog", str(overlay))
    assert res.exit_code == 2 and "economics.pue" in res.output and "[1, 5]" in res.output


def test_fractional_cached_isl_above_isl_is_refused():
    with pytest.raises(CaseError) as err:
        load_case("default", ["classes.0.cached_isl=3000.0"])
    assert "--set classes.0.cached_isl: must be below isl" in err.value.render()


@pytest.mark.parametrize("option", [["--mip-gap", "nan"], ["--time-limit", "nan"], ["--mip-gap", "inf"]])
def test_non_finite_solver_options_are_refused(option):
    res = run("plan", *option)
    assert res.exit_code == 2 and f"Invalid value for '{option[0]}'" in res.output


# ------------------------------------------------------------------------------------ never a wrong success
def test_a_solver_answer_that_breaks_the_demand_is_an_error_not_a_plan(monkeypatch):
    """If HiGHS reports 'optimal' for a fleet that serves nothing, the user must not see it as a plan."""
    from planner import planning, solve as solve_mod

    real = solve_mod.solve

    def empty_optimum(p, opts=None, warm=None):
        o = real(p, opts, warm)
        return replace(o, x={u: 0 for u in o.x}, n={c: 0 for c in o.n})

    monkeypatch.setattr(planning, "solve", empty_optimum)
    with pytest.raises(SolverError) as err:
        planning.plan_case(build_case(copy.deepcopy(BASE), "rel.toml"))
    assert "classes.a.demand_tok_s" in err.value.render() and "serves 0" in err.value.render()


def test_fixed_cost_with_throughput_objective_needs_a_bound_on_that_chip():
    raw = copy.deepcopy(BASE)
    raw["constraints"] = {"supply": {"b200": 100}, "fixed_cost_usd": {"h100": 1e6}}
    from planner.planning import plan_case

    with pytest.raises(PlannerError) as err:
        plan_case(build_case(raw, "rel.toml"), "throughput")
    assert err.value.exit_code == 2 and "constraints.fixed_cost_usd.h100-sxm" in err.value.render()


def test_usd_per_mtok_counts_demand_delivered_not_spare_capacity():
    """Same fleet, two speed targets: the cost per delivered token must not move with spare capacity."""
    import planner

    p = planner.plan("default", grid="coarse")
    served = p.classes["served_tok_s"].sum()
    assert served == pytest.approx(p.classes["demand_tok_s"].sum())
    assert p.cost["usd_per_mtok"] == pytest.approx(p.cost["tco_usd_per_hour"] / (served * 3600 / 1e6))
    assert p.cost["usd_per_mtok_capacity"] <= p.cost["usd_per_mtok"]
    assert "usd_per_mtok" in p.to_dict()["definitions"]


# ------------------------------------------------------------------------------------ JSON and --set
def test_infeasible_plan_as_json_prints_json_on_stdout():
    res = CliRunner().invoke(main, ["plan", "--set", "classes.0.min_speed_tok_s_user=5000", "--format", "json"])
    assert res.exit_code == 1
    d = json.loads(res.stdout)
    assert d["status"] == "infeasible" and d["diagnosis"][0]["where"] == "classes.chat.min_speed_tok_s_user"


def test_invalid_input_as_json_prints_json_on_stdout():
    res = CliRunner().invoke(main, ["plan", "--set", "economics.pue=0.2", "--format", "json"])
    assert res.exit_code == 2
    assert json.loads(res.stdout)["status"] == "invalid"


def test_list_items_are_addressed_by_name_as_well_as_index():
    by_name = load_case("default", ["classes.chat.isl=3000"])
    by_index = load_case("default", ["classes.0.isl=3000"])
    assert by_name.classes == by_index.classes and by_name.classes[0].isl == 3000


def test_a_misspelt_item_name_gets_a_did_you_mean():
    with pytest.raises(CaseError) as err:
        load_case("default", ["classes.chta.isl=3000"])
    assert "did you mean 'chat'" in err.value.render()


def test_a_bad_set_is_blamed_on_the_set_not_the_file():
    with pytest.raises(PlannerError) as err:
        load_case("default", ["chips.rubin.bw_eff=50"])
    text = err.value.render()
    assert "--set chips.rubin.bw_eff" in text and "chips.toml" not in text


# ------------------------------------------------------------------------------------ outputs
def test_existing_output_is_refused_before_any_solve(tmp_path, monkeypatch):
    from planner import planning

    (tmp_path / "plan.json").write_text("{}")
    monkeypatch.setattr(planning, "plan", lambda *a, **k: pytest.fail("solved before checking --output"))
    res = run("plan", "--output", str(tmp_path))
    assert res.exit_code == 2 and "already holds a plan" in res.output


def test_write_model_does_not_overwrite_without_force(tmp_path, monkeypatch):
    from planner import planning

    model = tmp_path / "m.lp"
    model.write_text("keep me")
    monkeypatch.setattr(planning, "plan", lambda *a, **k: pytest.fail("solved before checking --write-model"))
    res = run("plan", "--write-model", str(model))
    assert res.exit_code == 2 and model.read_text() == "keep me"


def test_output_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        res = run("plan", "--grid", "coarse", "--output", str(tmp_path / "p"))
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE((tmp_path / "p" / "plan.json").stat().st_mode) == 0o644


def test_a_failed_rewrite_leaves_the_old_plan_whole(tmp_path, monkeypatch):
    """The plan is written into a fresh directory and swapped in: a crash mid-write changes nothing."""
    import planner
    from planner import planning, reports

    out = tmp_path / "p"
    p = planner.plan("default", grid="coarse")
    planning.write_outputs(p, out, {"run": 1})
    (out / "notes.txt").write_text("mine")
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    real = reports.write_atomic

    def disk_full_at_plan_json(path, data, force=True):  # the disk fills up half-way through the files
        if Path(path).name == "plan.json":
            raise OSError(28, "No space left on device")
        return real(path, data, force)

    monkeypatch.setattr(reports, "write_atomic", disk_full_at_plan_json)
    with pytest.raises(PlannerError, match="cannot write"):
        planning.write_outputs(p, out, {"run": 2}, force=True)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert sorted(f.name for f in tmp_path.iterdir()) == ["p"]  # no temp directory left behind
    monkeypatch.undo()
    planning.write_outputs(p, out, {"run": 3}, force=True)
    assert (out / "notes.txt").read_text() == "mine" and json.loads((out / "run.json").read_text()) == {"run": 3}


# ------------------------------------------------------------------------------------ hostile files
def test_hostile_input_files_get_clean_errors(tmp_path):
    (tmp_path / "d.toml").mkdir()
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n")
    cases = [(["plan", str(tmp_path / "d.toml")], "is a directory"),
             (["plan", "--catalog", "/dev/zero"], "too large"),
             (["plan", str(deep)], "nested too deeply"),
             (["plan", "--catalog", str(deep)], "nested too deeply")]
    for key in ("sources", "economics", "chips", "arch"):
        f = tmp_path / f"{key}.toml"
        f.write_text(f"{key} = 5\n")
        cases.append((["plan", "--catalog", str(f)], f"{key}: must be a table"))
    f = tmp_path / "eprov.toml"
    f.write_text("[economics]\nprovenance = 5\npue = 1.2\n")
    cases.append((["plan", "--catalog", str(f)], "economics.provenance: must be a table"))
    cases.append((["plan", "--set", 'families.x={chips=["rubin"],stages=5}'], "families.x.stages"))
    for args, text in cases:
        res = run(*args)
        assert res.exit_code == 2 and text in res.output, (args, res.output)


# ------------------------------------------------------------------------------------ estimate
def test_estimate_takes_a_case_class_with_its_inline_model():
    """gpt-oss-2t is defined only inside cases/rubin-lpx.toml."""
    res = run("estimate", "rubin-lpx", "--class", "premium", "--chip", "rubin", "--chips", "64", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["model"] == "gpt-oss-2t" and d["speed_tok_s_user"] > 0


def test_estimate_with_a_cached_prompt_is_faster_to_first_token():
    base = ["estimate", "default", "--class", "chat", "--chip", "b200", "--chips", "2", "--format", "json"]
    cold, warm = (json.loads(run(*base, *extra).stdout) for extra in ([], ["--cached-isl", "1500"]))
    assert warm["cached_isl"] == 1500 and warm["ttft_s"] < cold["ttft_s"]


def test_estimate_of_a_batch_that_does_not_fit_exits_non_zero_with_the_largest_that_does():
    res = run("estimate", "--chip", "b200", "--chips", "1", "--batch", "2048", "--model", "llama-3.1-70b",
              "--isl", "2000", "--osl", "200")
    assert res.exit_code == 1 and "largest batch that fits" in res.output and "throughput" not in res.stdout


def test_every_example_in_estimate_help_runs():
    import re
    import shlex

    help_text = run("estimate", "--help").output
    examples = [e.replace("\\\n", " ") for e in re.findall(r"fleet (estimate .+?)(?=\n\s*fleet |\n\n|\Z)",
                                                            help_text.replace("\\\n", " "), re.S)]
    assert len(examples) >= 3
    for e in examples:
        res = run(*shlex.split(" ".join(e.split())))
        assert res.exit_code == 0, (e, res.output)


@pytest.mark.slow
def test_power_shortfall_is_readable_at_any_size_and_its_fix_works():
    """A shortfall of a few kW used to read 'short by 0.00 MW'."""
    from planner.errors import InfeasibleError

    with pytest.raises(InfeasibleError) as err:
        load_and_plan(["constraints.power_mw=2.96"])
    text = err.value.render()
    assert "0.00 MW" not in text and " kW " in text
    fix = float(text.split("raise power_mw to ≥ ")[1].split()[0].replace(",", ""))
    assert load_and_plan([f"constraints.power_mw={fix}"]).power_mw <= fix


def load_and_plan(sets):
    import planner

    return planner.plan("default", sets=sets, grid="coarse")


def test_time_limit_bounds_a_huge_case_from_loading_on(tmp_path):
    """10,000 classes with --time-limit 1 used to run for 900 s; the limit now bounds the command."""
    from planner.errors import TimeLimitError
    import planner

    lines = ['name = "big"', "[fleet]", 'chips = ["b200", "h100"]']
    for i in range(2000):
        lines += ["[[classes]]", f'name = "c{i}"', 'model = "llama-3.1-8b"', 'precision = "fp8"', f"isl = {1000 + i}",
                  "osl = 200", "demand_tok_s = 1000", "min_speed_tok_s_user = 50", "ttft_s = 2"]
    case = tmp_path / "big.toml"
    case.write_text("\n".join(lines) + "\n")
    with pytest.raises(TimeLimitError) as err:
        planner.plan(str(case), time_limit_s=0.5)
    assert err.value.exit_code == 3 and "--time-limit" in err.value.render()


def test_plan_output_on_a_read_only_mount_fails_before_solving(tmp_path):
    """os.access says yes to root on a read-only mount; the check must really try to write."""
    import subprocess
    import sys
    from pathlib import Path

    ro = tmp_path / "ro"
    ro.mkdir()
    args = [sys.executable, "-m", "planner", "plan", "--output", str(ro / "p")]
    if os.geteuid() == 0:
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("needs unshare -m as root")
        args = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o ro,size=64k tmpfs "$0" && exec "$@"', str(ro), *args]
    else:
        ro.chmod(0o555)
    repo = Path(__file__).resolve().parents[1]
    res = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(repo)}, timeout=300)
    ro.chmod(0o755)
    assert res.returncode == 2, res.stderr
    assert "cannot write" in res.stderr and "Traceback" not in res.stderr and "Chips to buy" not in res.stdout


def test_unmeasured_warning_only_for_architectures_without_their_own_measurements():
    """H100/B200 (Hopper, Blackwell: fitted to points, bandwidth from NVIDIA's tables) are measured;
    Rubin inherits Blackwell Ultra's terms and must say so."""
    from planner.results import unmeasured_warnings
    import pandas as pd

    case = load_case("default", ['fleet.chips=["rubin", "gb300", "cerebras-wse3"]'])
    chips = pd.DataFrame({"chip": ["rubin", "gb300", "cerebras-wse3"], "chips": [72, 72, 1]})
    warned = {w.split(":")[0] for w in unmeasured_warnings(case, chips)}
    assert warned == {"rubin"}


@pytest.mark.slow
def test_every_breakeven_help_example_finds_a_break_even():
    """Both examples printed 'no break-even' once the catalogs moved; a user copies them first."""
    import re
    import shlex

    text = run("breakeven", "--help").output.replace("\\\n", " ")
    examples = re.findall(r"fleet (breakeven .+?)(?=\n\s*fleet |\n\n|\Z)", text, re.S)
    assert len(examples) == 2
    for e in examples:
        res = run(*shlex.split(" ".join(e.split())), "--format", "json")
        assert res.exit_code == 0 and json.loads(res.stdout)["found"], (e, res.output[-400:])


@pytest.mark.slow
def test_every_public_study_function_works_twice_in_one_process():
    """Notebooks call the API again and again: sweep, pareto, budget and breakeven included."""
    import planner

    for _ in range(2):
        assert len(planner.sweep("default", ["economics.pue=1.1,1.3"])) == 2
        assert len(planner.pareto("default", speeds="100", families=["gpu-only"])) == 1
        assert len(planner.budget("default", power_mw="5")) == 1
        r = planner.breakeven("default", vary="chips.groq3-lpu.price_usd=100:12000", until="chips.groq3-lpu > 0",
                              rel_tol=0.2)
        assert r["found"]
    assert callable(planner.sweep) and callable(planner.pareto) and callable(planner.breakeven)
