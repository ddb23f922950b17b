"""Case loading, --set overrides, and validation that reports every problem at once."""
import pytest

from planner.cases import apply_override, load_case, parse_value, shipped_cases, split_path
from planner.errors import CaseError, PlannerError


def test_default_case_is_valid():
    case = load_case()
    assert case.name == "default"
    assert {c.name for c in case.classes} == {"chat", "reasoning"}
    assert "default" in shipped_cases()


def test_set_overrides_numbers_lists_and_catalog_figures():
    case = load_case("default", ["classes.0.min_speed_tok_s_user=400", 'fleet.chips=["b200", "groq3-lpu"]',
                                 "chips.groq3-lpu.price_usd=5000", "constraints.supply.b200=100"])
    assert case.classes[0].min_speed_tok_s_user == 400
    assert case.fleet.chips == ("b200", "groq3-lpu")
    assert case.chips["groq3-lpu"].price_usd == 5000
    assert case.constraints.supply == {"b200": 100}


def test_parse_value_and_paths():
    assert parse_value("3") == 3 and parse_value("0.5") == 0.5 and parse_value('["a"]') == ["a"]
    assert parse_value("rubin") == "rubin"
    assert split_path("models.llama-3.1-8b.layers") == ["models", "llama-3.1-8b", "layers"]
    assert split_path("classes.1.isl") == ["classes", 1, "isl"]
    raw = {"classes": [{"isl": 1}]}
    apply_override(raw, "classes.0.isl", 7)
    assert raw["classes"][0]["isl"] == 7


def _write(tmp_path, text):
    p = tmp_path / "case.toml"
    p.write_text(text, encoding="utf-8")
    return str(p)


BASE = """name = "t"
[fleet]
chips = ["b200"]
[[classes]]
name = "a"
model = "llama-3.1-70b"
precision = "fp8"
isl = 1000
osl = 200
demand_tok_s = 1000
min_speed_tok_s_user = 30
ttft_s = 2
"""


def test_minimal_case_loads(tmp_path):
    case = load_case(_write(tmp_path, BASE))
    assert case.classes[0].model == "llama-3.1-70b"


@pytest.mark.parametrize("edit, where, text", [
    (("fleet.chips", '["b200x"]'), "fleet.chips.0", "did you mean 'b200'"),
    (("classes.0.model", '"llama-70"'), "classes.0.model", "unknown model"),
    (("classes.0.isl", "-4"), "classes.0.isl", "must be > 0"),
    (("classes.0.precision", '"fp8"'), "classes.0.precision", "no chip in fleet.chips runs fp8"),
    (("classes.0.demnd_tok_s", "5"), "classes.0.demnd_tok_s", "did you mean 'demand_tok_s'"),
    (("constraints.power_mw", "0"), "constraints.power_mw", "must be > 0"),
    (("economics.pue", "0.8"), "economics.pue", "outside the physical range [1, 5]"),
    (("fleet.stages.prefil", '["b200"]'), "fleet.stages.prefil", "did you mean 'prefill'"),
    (("chips.b200.mem_gb", "-1"), "chips.b200.mem_gb", "must be > 0"),
])
def test_each_bad_field_is_named_with_a_fix(tmp_path, edit, where, text):
    path = _write(tmp_path, BASE)
    if edit[0] == "classes.0.precision":
        path = _write(tmp_path, BASE.replace('chips = ["b200"]', 'chips = ["sn40l"]'))  # bf16 only
    with pytest.raises(PlannerError) as err:
        load_case(path, [f"{edit[0]}={edit[1]}"])
    rendered = err.value.render()
    assert where in rendered and text in rendered, rendered


def test_all_problems_reported_at_once(tmp_path):
    path = _write(tmp_path, BASE.replace("isl = 1000", "isl = 0").replace("ttft_s = 2", "").replace(
        'chips = ["b200"]', 'chips = ["nochip"]'))
    with pytest.raises(CaseError) as err:
        load_case(path)
    wheres = " ".join(p.where for p in err.value.problems)
    assert "classes.0.isl" in wheres and "classes.0.ttft_s" in wheres and "fleet.chips.0" in wheres


def test_missing_classes_and_malformed_toml(tmp_path):
    with pytest.raises(CaseError, match="problem"):
        load_case(_write(tmp_path, 'name = "x"\n[fleet]\nchips = ["b200"]\n'))
    with pytest.raises(CaseError, match="not valid TOML"):
        load_case(_write(tmp_path, "name = \n"))


def test_set_pointing_nowhere(tmp_path):
    with pytest.raises(CaseError, match="no item 3"):
        load_case(_write(tmp_path, BASE), ["classes.3.isl=5"])
    with pytest.raises(CaseError, match="has no '='"):
        load_case(_write(tmp_path, BASE), ["classes.0.isl"])


def test_every_bad_set_is_reported_at_once():
    """A --set that leads nowhere and one that breaks a range: both named in one error."""
    with pytest.raises(CaseError) as err:
        load_case("default", ["economics.pue=0.5", "classes.5.isl=3"])
    text = err.value.render()
    assert "--set classes.5.isl" in text and "--set economics.pue" in text
