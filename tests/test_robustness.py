"""Robustness: any input gets a result or one clear error (never a traceback); numerics across
scales; solver limits; reproducible outputs."""
import copy
import json
import math

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from planner.cases import build_case
from planner.catalog import load_catalog
from planner.cli import main
from planner.errors import PlannerError

BASE = {"name": "fuzz", "constraints": {"power_mw": 5}, "fleet": {"chips": ["b200", "groq3-lpu"]},
        "classes": [{"name": "a", "model": "llama-3.1-8b", "precision": "fp8", "isl": 1000, "osl": 200,
                     "demand_tok_s": 10000, "min_speed_tok_s_user": 50, "ttft_s": 2}]}
FIELDS = [("name",), ("constraints", "power_mw"), ("constraints", "capex_usd"), ("constraints", "supply"),
          ("constraints", "max_chip_types_per_stage"), ("fleet", "chips"), ("fleet", "stages"), ("fleet", "modes"),
          ("classes",), ("classes", 0, "model"), ("classes", 0, "precision"), ("classes", 0, "isl"),
          ("classes", 0, "osl"), ("classes", 0, "demand_tok_s"), ("classes", 0, "min_speed_tok_s_user"),
          ("classes", 0, "ttft_s"), ("classes", 0, "kv_headroom"), ("classes", 0, "cached_isl"),
          ("classes", 0, "draft_model"), ("economics", "pue"), ("economics", "electricity_usd_per_kwh"),
          ("chips", "b200", "mem_gb"), ("chips", "newchip", "name"), ("models", "m", "layers"), ("families",),
          ("bogus_key",), ("classes", 0, "bogus")]
values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.lists(st.one_of(st.text(max_size=8), st.integers(-5, 5)), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers(-5, 5), max_size=2),
    st.sampled_from(["b200", "rubin", "ünïcødé", "", "fp4", "llama-3.1-70b", "gpt-oss-120b", "nan"]))


def put(raw, path, value):
    node = raw
    for key in path[:-1]:
        if isinstance(node, list):
            if not isinstance(key, int) or key >= len(node):
                return
            node = node[key]
        elif isinstance(node, dict):
            node = node.setdefault(key, {})
        else:
            return
    if isinstance(node, dict):
        if value is None:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        node[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=4))
def test_loader_answers_every_shape(edits):
    raw = copy.deepcopy(BASE)
    for path, value in edits:
        put(raw, path, value)
    try:
        case = build_case(raw, "fuzz.toml")
    except PlannerError as exc:
        text = exc.render()
        assert exc.problems and all(p.where and p.what for p in exc.problems), text
        return
    for tc in case.classes:  # whatever loads is finite and positive where it must be
        assert math.isfinite(tc.demand_tok_s) and tc.demand_tok_s > 0 and tc.isl > 0 and tc.osl > 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=40), st.text(max_size=40))
@example("²", "")  # a Unicode digit once crashed the path parser
def test_cli_set_never_tracebacks(path, value):
    res = CliRunner().invoke(main, ["validate", "default", "--set", f"{path}={value}", "--quiet"])
    assert res.exit_code in (0, 2), res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    if res.exit_code == 2:  # refused: the message names the --set it blames
        assert "--set" in res.output, res.output


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_cli_malformed_files(tmp_path_factory, blob):
    p = tmp_path_factory.mktemp("f") / "case.toml"
    p.write_bytes(blob)
    res = CliRunner().invoke(main, ["validate", str(p), "--quiet"])
    assert res.exit_code == 2 and "Traceback" not in res.output  # random bytes are never a valid case
    assert str(p.name) in res.output or "case.toml" in res.output, res.output
    cat = CliRunner().invoke(main, ["catalog", "list", "chips", "--catalog", str(p)])
    assert cat.exit_code in (0, 2) and "Traceback" not in cat.output
    if cat.exit_code == 0:  # bytes that parse as an (empty or partial) overlay: the shipped chips still list
        assert "b200" in cat.output


def test_duplicate_and_unicode_ids(tmp_path):
    f = tmp_path / "o.toml"
    f.write_text('[chips."ünï"]\nname = "x"\naliases = ["b200"]\n', encoding="utf-8")
    res = CliRunner().invoke(main, ["catalog", "list", "chips", "--catalog", str(f)])
    assert res.exit_code == 2 and "Traceback" not in res.output


@pytest.mark.slow
@pytest.mark.parametrize("demand, power_mw", [(1.0, None), (1e9, None), (1e4, 1e4)])
def test_numerics_span_scales(demand, power_mw):
    raw = copy.deepcopy(BASE)
    raw["classes"][0]["demand_tok_s"] = demand
    raw["constraints"] = {} if power_mw is None else {"power_mw": power_mw}
    from planner.planning import plan_case

    p = plan_case(build_case(raw, "scale.toml"))
    assert p.outcome.status in ("optimal", "feasible")
    assert p.throughput_tok_s >= demand * (1 - 1e-9)
    served = sum(r.throughput_tok_s for r in p.units.itertuples() if r.kind != "prefill")
    assert served >= demand * (1 - 1e-9)


def test_one_kilowatt_site_is_diagnosed():
    raw = copy.deepcopy(BASE)
    raw["constraints"] = {"power_mw": 0.001}
    from planner.errors import InfeasibleError
    from planner.planning import plan_case

    with pytest.raises(InfeasibleError) as err:
        plan_case(build_case(raw, "tiny.toml"))
    assert "power short by" in err.value.render()


def test_time_limit_returns_best_plan_with_gap_or_fails_saying_so():
    res = CliRunner().invoke(main, ["plan", "hbm-shortage", "--time-limit", "0.1", "--mip-gap", "0", "--format",
                                    "json"])
    d = json.loads(res.stdout)
    if res.exit_code == 0:
        assert d["status"] in ("time_limit", "optimal", "feasible")
        assert d["chips"], "a success always has a fleet"
        if d["status"] == "time_limit":
            assert d["solve"]["gap"] is not None
    else:
        assert res.exit_code == 3 and d["status"] == "time_limit", res.output
        assert d["diagnosis"][0]["where"] == "--time-limit"


def test_time_limit_without_any_plan_is_a_failure_not_an_empty_fleet(monkeypatch):
    """HiGHS stopping at the limit with no incumbent used to print 'Chips to buy (none)' and exit 0."""
    from planner import planning
    from planner.errors import TimeLimitError
    from planner.solve import Outcome

    monkeypatch.setattr(planning, "solve", lambda p, opts=None, warm=None: Outcome(
        status="time_limit", objective=None, bound=None, gap=None, wall_s=1.0, build_s=0.0, solver="HiGHS"))
    with pytest.raises(TimeLimitError) as err:
        planning.plan_case(build_case(copy.deepcopy(BASE), "base.toml"))
    assert err.value.exit_code == 3 and "no feasible fleet" in err.value.render()


def test_plan_json_is_reproducible():
    runner = CliRunner()
    outs = []
    for _ in range(2):
        d = json.loads(runner.invoke(main, ["plan", "default", "--format", "json"]).output)
        d.pop("timings_s")
        for k in ("wall_s", "build_s"):
            d["solve"].pop(k)
        outs.append(json.dumps(d, sort_keys=True))
    assert outs[0] == outs[1]


def test_catalog_loads_cleanly():
    """The shipped catalogs: every chip the docs name, each with a sourced power and price."""
    cat = load_catalog()
    for cid in ("h100-sxm", "b200", "gb300", "rubin", "rubin-cpx", "groq3-lpu", "cerebras-wse3", "mi455x", "mram-spinpu"):
        chip = cat.chips[cid]
        assert chip.power_kw > 0 and chip.price_usd > 0 and chip.available_year >= 2020
        assert chip.provenance["price_usd"].cite and chip.provenance["power_kw"].cite


def test_numerics_warning_for_extreme_ranges():
    from milp_helpers import chip, toy, unit
    from planner.problem import numerics_warnings

    calm = toy([chip("a")], [unit("c", "aggregated", "a", 1, tput=300)])
    assert numerics_warnings(calm) == []
    wild = toy([chip("a")], [unit("c", "aggregated", "a", 1, tput=1e-3)], classes=(("c", 1e12, 10, 10),))
    text = " ".join(numerics_warnings(wild))
    assert "coefficients span" in text and "big-M" in text


# ------------------------------------------------------------------------------------- studies
@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=30), st.sampled_from(["nan", "inf,1", "1:2:3:4", "±30%", "1e999:2:3", "1:2:0",
                                                        "-inf:1:2", "1,,2", "±5%:3", "0:1:100001", ":", "1:nan:2"])))
def test_study_values_parse_or_refuse(text):
    from planner.studies import parse_values

    try:
        values = parse_values(text, base=100.0)
    except ValueError as exc:
        assert str(exc)
        return
    assert all(math.isfinite(v) for v in values if isinstance(v, float))


STUDY_OPTIONS = [("budget", "--power-mw"), ("budget", "--capex-usd"), ("pareto", "--speeds"),
                 ("sweep", "--vary")]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(STUDY_OPTIONS), st.text(max_size=20), st.sampled_from(["economics.pue", "chips.rubin.bw_eff",
                                                                               "foo", "classes.0.isl", ""]))
def test_cli_study_options_never_traceback(tmp_path, option, value, path):
    """Bad values fail with a message naming the option; good ones reach the (held) output lock."""
    from planner.studies.runtime import OutputLock

    command, name = option
    out = tmp_path / ("o.csv" if command == "sweep" else "o")
    arg = f"{path}={value}" if command == "sweep" else value
    out.parent.mkdir(exist_ok=True)
    if command != "sweep":
        out.mkdir(exist_ok=True)
    with OutputLock(out if command == "sweep" else out / f"{command}.csv"):
        res = CliRunner().invoke(main, [command, "default", name, arg, "--output", str(out), "--quiet"])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert name in res.output or "being written by another study" in res.output or "--set" in res.output, res.output


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_until_parses_or_refuses(expr):
    from planner.cases import load_case
    from planner.errors import CaseError
    from planner.studies import parse_until

    case = load_case("default")
    try:
        pred = parse_until(expr, case, load_catalog())
    except CaseError as exc:
        assert exc.problems and exc.problems[0].where == "--until"
        return
    assert pred({"status": "infeasible"}) is False


def test_resume_of_any_truncation_is_clean_or_refused(tmp_path):
    """Every byte-prefix of a study CSV resumes to whole rows of that study, or is refused."""
    import io

    import pandas as pd

    from planner.studies.runtime import read_resumable

    sha = "ab" * 32
    lines = ["point,point_key,status,message,study_sha256,extra\n"] + [
        f'{i},k{i},invalid,"a, quoted; message {i}",{sha},"{{""x"": {i}}}"\n' for i in range(4)]
    blob = "".join(lines)
    for cut in range(len(blob) + 1):
        p = tmp_path / "t.csv"
        p.write_text(blob[:cut], encoding="utf-8")
        try:
            text, dropped = read_resumable(p, sha)
        except PlannerError as exc:
            assert "--resume" in exc.render()
            assert cut < len(lines[0])  # only a torn header is refused
            continue
        df = pd.read_csv(io.StringIO(text), dtype={"point_key": str})
        assert list(df["point"]) == list(range(len(df)))  # a prefix of the rows, each whole
        assert blob[:cut].startswith(text) and dropped <= 1


# ------------------------------------------------------------------------------------ overlays
_LEAF = st.one_of(st.integers(-10, 10**6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                  st.text(max_size=8), st.lists(st.text(max_size=5), max_size=3))
_SECTION_KEYS = ["chips", "models", "economics", "sources", "arch", "fabric", "software", "provenance", "catalog_version"]
_ENTRY_IDS = ["rubin", "h100-sxm", "new-chip", "llama-3.1-8b", "blackwell", "cuda", "nvlink5-nvl72", "pue", "x"]
_FIELD_KEYS = ["price_usd", "power_kw", "mem_gb", "bw_eff", "name", "class", "arch", "inherits", "provenance",
               "t_step_us", "pue", "cite", "date", "layers", "src", "conf", "topology", "aliases"]


@st.composite
def overlays(draw):
    """Overlay-shaped dicts: known and unknown sections, entries and fields, values of any type."""
    out = {}
    for section in draw(st.lists(st.sampled_from(_SECTION_KEYS), max_size=3, unique=True)):
        if draw(st.booleans()):
            out[section] = draw(_LEAF)
            continue
        out[section] = {e: (draw(_LEAF) if draw(st.integers(0, 4)) == 0 else
                            {f: draw(st.one_of(_LEAF, st.dictionaries(st.sampled_from(_FIELD_KEYS), _LEAF, max_size=2)))
                             for f in draw(st.lists(st.sampled_from(_FIELD_KEYS), max_size=4, unique=True))})
                        for e in draw(st.lists(st.sampled_from(_ENTRY_IDS), min_size=1, max_size=2, unique=True))}
    return out


@settings(max_examples=300, deadline=None)
@given(overlays())
def test_any_overlay_loads_or_is_refused_with_named_problems(overlay):
    """--catalog FILE with any structure: a catalog, or a CatalogError naming where — never a crash."""
    from planner.errors import CatalogError

    try:
        cat = load_catalog([("fuzz.toml", overlay)])
    except CatalogError as exc:
        assert exc.problems and all(p.where for p in exc.problems)
    else:  # an overlay adds or overrides entries: every shipped chip and model is still there
        shipped = load_catalog()
        assert set(shipped.chips) <= set(cat.chips) and set(shipped.models) <= set(cat.models)
