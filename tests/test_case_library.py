"""The shipped scenario library: every case loads, and what physics makes certain holds in the
planner's own output (never hard-coded figures)."""
import pytest
from click.testing import CliRunner

from planner import studies
from planner.candidates import build_candidates
from planner.cases import load_case, shipped_cases
from planner.cli import main

CASES = ["default", "rubin-lpx", "cerebras-full-stack", "trainium-cerebras", "speculative-draft",
         "agent-long-context", "hbm-shortage", "mram-what-if", "datacenter-100mw", "prefill-cpx",
         "owned-h100", "availability-racks", "diurnal-tou"]
OK = ("optimal", "feasible")


def test_every_case_ships_validates_and_is_listed():
    assert set(CASES) <= set(shipped_cases())
    listing = CliRunner().invoke(main, ["cases"]).output
    for name in CASES:
        case = load_case(name)
        assert case.description, name
        assert name in listing


@pytest.mark.slow
def test_above_gpu_speeds_only_sram_families_are_feasible():
    df = studies.pareto("cerebras-full-stack", speeds="1000", class_name="gptoss-fast")
    sram_fams = {"cerebras-only", "cerebras-decode-gpu-prefill", "unrestricted"}
    for row in df.itertuples():
        assert (row.status in OK) == (row.family in sram_fams), row.family


@pytest.mark.slow
def test_sram_only_hits_the_kv_wall_at_1m_context():
    case = load_case("agent-long-context")
    units = build_candidates(case)
    serving = units[units["kind"] != "prefill"]
    sram = serving[serving["attn_chip"].isin(["cerebras-wse3", "groq3-lpu"])]
    gpu = serving[serving["attn_chip"].isin(["rubin", "b300"])]
    # per dollar of chips, SRAM units hold far fewer 1M-token sequences (~35 GB of KV each) than HBM units
    price = {c: case.chips[c].price_usd for c in case.chips}

    def seq_per_musd(d):
        usd = d["n_attn"] * d["attn_chip"].map(price) + d["n_ffn"] * d["ffn_chip"].map(price)
        return (d["batch"] / usd * 1e6).max()

    assert seq_per_musd(sram) < seq_per_musd(gpu) / 10
    df = studies.pareto("agent-long-context", speeds="100", families=["gpu-only", "sram-only"])
    cost = dict(zip(df["family"], df["usd_per_mtok"]))
    assert df.set_index("family").loc["gpu-only", "status"] in OK
    assert df.set_index("family").loc["sram-only", "status"] not in OK or cost["sram-only"] > 3 * cost["gpu-only"]


@pytest.mark.slow
def test_tightening_the_hbm_cap_never_lowers_cost():
    df = studies.sweep("hbm-shortage", ["constraints.supply.rubin=2000,500,250"])
    ok = df[df["status"].isin(OK)]
    assert len(ok) >= 2
    assert ok["objective"].is_monotonic_increasing  # within the MIP gap the sequence must not fall
    assert (ok["objective"].diff().fillna(0) >= -2e-3 * ok["objective"]).all()


@pytest.mark.slow
def test_adding_a_chip_type_never_raises_cost():
    df = studies.pareto("prefill-cpx", speeds="50")
    cost = dict(zip(df["family"], df["objective"]))
    assert cost["gpu+cpx"] <= cost["gpu-only"] * (1 + 2e-3)
    spec = studies.pareto("speculative-draft", speeds="150")
    c = dict(zip(spec["family"], spec["objective"]))
    assert c["draft-on-gpu"] <= c["no-speculation"] * (1 + 2e-3)
    assert c["unrestricted"] <= min(c.values()) * (1 + 2e-3)


@pytest.mark.slow
def test_more_megawatts_never_serve_less():
    df = studies.budget("datacenter-100mw", power_mw="25,50")
    assert (df["status"].isin(OK)).all()
    assert df["throughput_tok_s"].iloc[1] >= df["throughput_tok_s"].iloc[0]
    assert (df["power_mw"] <= df["constraints.power_mw"] + 1e-6).all()


@pytest.mark.slow
def test_cheaper_mram_never_raises_cost():
    df = studies.sweep("mram-what-if", ["chips.mram-spinpu.price_usd=2000,8000,32000"])
    assert df["objective"].is_monotonic_increasing or (df["objective"].diff().fillna(0) >= -2e-3 * df["objective"]).all()


def test_a_case_answers_its_own_question_by_default():
    """datacenter-100mw asks for the most tokens/s in 100 MW: plain `fleet plan` must maximise them."""
    import planner

    case = load_case("datacenter-100mw")
    assert case.objective == "throughput"
    p = planner.plan("datacenter-100mw", grid="coarse")
    assert p.problem.objective == "throughput" and p.power_mw <= 100 + 1e-6
    # chips come in whole systems: what is left of the 100 MW is less than one more system of any chip bought
    system_mw = max(case.chips[r.chip].chips_per_system * case.chips[r.chip].power_kw * case.economics.pue / 1000
                    for r in p.chips.itertuples() if r.chips)
    assert 100 - p.power_mw < system_mw
    assert planner.plan("datacenter-100mw", grid="coarse", objective="tco").problem.objective == "tco"  # a flag wins


def test_the_shortage_case_differs_from_default_only_in_supply_and_never_costs_less():
    import planner

    short, base = load_case("hbm-shortage"), load_case("default")
    assert set(short.fleet.chips) == set(base.fleet.chips) and short.fleet.stages == base.fleet.stages
    assert short.classes == base.classes
    assert short.constraints.power_mw == base.constraints.power_mw
    assert short.constraints.max_chip_types_per_stage == base.constraints.max_chip_types_per_stage
    assert short.constraints.supply
    a, b = planner.plan("hbm-shortage", grid="coarse"), planner.plan("default", grid="coarse")
    assert a.cost["tco_usd_per_hour"] >= b.cost["tco_usd_per_hour"] * (1 - 2e-3)


def test_owned_h100s_are_kept_while_cheap_to_run_and_retired_when_energy_is_dear():
    import planner

    cheap = planner.plan("owned-h100", grid="coarse")
    assert sum(cheap.to_dict()["bought"].values()) == 0 and cheap.cost["capex_usd"] == 0
    kept = cheap.to_dict()["owned"]["h100-sxm"]
    assert kept["kept"] > 0 and kept["kept"] + kept["retired"] == 2048
    dear = planner.plan("owned-h100", grid="coarse", sets=["economics.electricity_usd_per_kwh=2.0"])
    assert dear.to_dict()["owned"]["h100-sxm"]["retired"] > kept["retired"]  # energy this dear: new chips win
    assert sum(dear.to_dict()["bought"].values()) > 0


def test_availability_never_lowers_cost_and_every_group_meets_it():
    import planner

    loose = planner.plan("availability-racks", grid="coarse", sets=["constraints.availability=0.5"])
    tight = planner.plan("availability-racks", grid="coarse")
    assert tight.cost["tco_usd_per_hour"] >= loose.cost["tco_usd_per_hour"]
    assert len(tight.spares) and (tight.spares["p_covered"] >= 0.999).all() and tight.spares["spares"].sum() > 0


def test_a_diurnal_fleet_is_sized_for_its_peak_and_the_average_sizing_falls_short():
    import planner

    p = planner.plan("diurnal-tou", grid="coarse")
    prof = p.to_dict()["profile"]["chat"]
    assert prof["peak_utilization"] <= 1 + 1e-6 and prof["average_utilization"] < prof["peak_utilization"]
    assert (p.slices["running_capacity_tok_s"] >= p.slices["demand_tok_s"] * (1 - 1e-6)).all()
    assert p.slices["running_chips"].min() < p.slices["running_chips"].max()  # off-peak hours run fewer chips
    avg = p.sized_at_average
    assert avg["peak_share_served"]["chat"] < 1 and avg["tco_usd_per_hour"] < p.cost["tco_usd_per_hour"]


def test_fleet_cases_shows_whole_questions():
    """A description wrapped over TOML lines used to be cut at the first line break, mid-sentence."""
    from planner.summary import first_sentence

    for name, path in shipped_cases().items():
        question = first_sentence(load_case(name).description)
        assert question.endswith(("?", ".", "!")), (name, question)
    assert first_sentence("Does it pay at\nvery high speed? More text.") == "Does it pay at very high speed?"
