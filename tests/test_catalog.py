"""Catalog loading, provenance, derived model sizes, overlays and catalog errors."""
import csv
from pathlib import Path

import pytest

from planner import modelspec as ms
from planner.catalog import load_catalog
from planner.errors import CatalogError

REQUIRED_CHIPS = ["h100-sxm", "h200-sxm", "b200", "gb200", "b300", "gb300", "rubin", "rubin-cpx",
                  "groq3-lpu", "groq-lpu-v1", "cerebras-wse3", "mi300x", "mi355x", "mi455x", "tpu-v7",
                  "trainium2", "trainium3", "gaudi3", "dmatrix-corsair", "sn40l", "mram-spinpu"]
REQUIRED_MODELS = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "gpt-oss-20b", "gpt-oss-120b",
                   "deepseek-r1", "qwen3-32b", "qwen3-235b-a22b", "kimi-k2", "llama-4-maverick"]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_required_ids_and_aliases(catalog):
    assert set(REQUIRED_CHIPS) <= set(catalog.chips)
    assert set(REQUIRED_MODELS) <= set(catalog.models)
    assert catalog.resolve_model("deepseek-v3") == "deepseek-r1"
    assert catalog.resolve_chip("lp30") == "groq3-lpu"


def test_every_figure_has_source_date_and_confidence(catalog):
    for chip in catalog.chips.values():
        for name in ("mem_gb", "mem_bw_tbs", "power_kw", "price_usd", "bw_eff", "t_layer_us", "hop_latency_us"):
            p = chip.provenance[name]
            assert p.cite and p.date and p.conf, (chip.id, name)
        for prec in ("bf16", "fp8", "fp4"):
            if getattr(chip, f"{prec}_tflops") > 0:  # (fp4 without fp4 units runs weight-only at bf16)
                assert chip.provenance[f"{prec}_tflops"].cite
    for model in catalog.models.values():
        assert model.provenance["layers"].cite and model.provenance["layers"].date


def test_unpublished_figures_are_labelled_estimates(catalog):
    assert catalog.chips["groq3-lpu"].provenance["power_kw"].conf == "estimate"
    assert catalog.chips["groq3-lpu"].provenance["price_usd"].conf == "estimate"
    assert catalog.chips["rubin"].provenance["price_usd"].conf == "estimate"
    mram = catalog.chips["mram-spinpu"]
    assert all(mram.provenance[f].conf == "estimate" for f in ("mem_gb", "mem_bw_tbs", "price_usd"))
    assert "HYPOTHETICAL" in mram.name
    sram, hbm = catalog.chips["groq3-lpu"], catalog.chips["rubin"]
    assert sram.mem_gb < mram.mem_gb < hbm.mem_gb  # density between SRAM and HBM


@pytest.mark.parametrize("model_id", REQUIRED_MODELS)
def test_derived_total_params_match_published_within_2pct(catalog, model_id):
    m = catalog.models[model_id]
    assert ms.total_params(m) / 1e9 == pytest.approx(m.published_total_params_b, rel=0.02)


@pytest.mark.parametrize("model_id", REQUIRED_MODELS)
def test_derived_active_params_near_published(catalog, model_id):
    """Published 'active' counts differ in whether they include the input embedding (≤ 8%)."""
    m = catalog.models[model_id]
    assert ms.active_params(m) / 1e9 == pytest.approx(m.published_active_params_b, rel=0.08)


def test_kv_bytes_match_shared_models_csv(catalog):
    rows = {}
    if SHARED.exists():
        with open(SHARED / "models.csv", encoding="utf-8") as fh:
            rows = {r["model"]: r for r in csv.DictReader(fh)}
    expected = {"llama-3.1-8b": 131072, "llama-3.1-70b": 327680, "llama-3.1-405b": 516096,
                "deepseek-r1": 70272, "kimi-k2": 70272, "qwen3-235b-a22b": 192512, "qwen3-32b": 262144,
                "gpt-oss-120b": 73728, "llama-4-maverick": 196608}
    for model_id, kv in expected.items():
        assert ms.kv_bytes_per_token(catalog.models[model_id], 2.0, context=1) == kv
    if rows:
        assert int(rows["DeepSeek-V3 / R1 (671B)"]["kv_bytes_per_token_bf16"]) == expected["deepseek-r1"]


def test_mla_kv_is_far_smaller_than_gqa_equivalent(catalog):
    m = catalog.models["deepseek-r1"]
    mla = ms.kv_bytes_per_seq(m, 1000, 1.0)
    assert mla == 61 * (512 + 64) * 1000  # hand: layers × (kv_lora + rope) × tokens × 1 byte
    gqa_equiv = 2 * 61 * m.q_heads * 128 * 1000  # a full-MHA cache with the same heads
    assert mla < gqa_equiv / 50


def test_sliding_window_caps_kv(catalog):
    m = catalog.models["gpt-oss-120b"]
    per_layer_token = 2 * 8 * 64 * 2  # K+V, 8 kv heads, head_dim 64, bf16
    at_100 = ms.kv_bytes_per_seq(m, 100, 2.0)
    at_10k = ms.kv_bytes_per_seq(m, 10_000, 2.0)
    assert at_100 == 36 * 100 * per_layer_token
    assert at_10k == per_layer_token * (18 * 10_000 + 18 * 128)


def test_overlay_adds_and_overrides_with_provenance(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('[chips.rubin]\nprice_usd = 90000\n\n[chips.my-chip]\nname = "Mine"\nvendor = "me"\n'
                 'class = "gpu"\nsystem_name = "box"\nchips_per_system = 8\nsold_by_system = false\n'
                 'mem_gb = 100\nmem_bw_tbs = 5\nfp8_tflops = 1000\npower_kw = 1\nprice_usd = 10000\n'
                 'scaleup_domain_chips = 8\nscaleup_bw_gbs = 900\nscaleout_bw_gbs = 50\nbw_eff = 0.7\n'
                 'flop_eff = 0.5\nt_layer_us = 5\nhop_latency_us = 4\n', encoding="utf-8")
    cat = load_catalog([f])
    assert cat.chips["rubin"].price_usd == 90000
    assert cat.chips["rubin"].provenance["price_usd"].conf == "user"
    assert cat.chips["rubin"].mem_bw_tbs == 22  # untouched figures keep the shipped value
    assert cat.chips["my-chip"].fp8_tflops == 1000
    assert cat.chips["my-chip"].provenance["mem_gb"].cite.endswith("mine.toml")


def test_overlay_errors_name_field_and_fix(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[chips.rubin]\nmem_bw_tbs = -3\nmem_bww_tbs = 2\n', encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog([f])
    text = err.value.render()
    assert "chips.rubin.mem_bw_tbs: must be > 0" in text
    assert "did you mean 'mem_bw_tbs'" in text


def test_new_chip_missing_fields_reports_each(tmp_path):
    f = tmp_path / "new.toml"
    f.write_text('[chips.x]\nname = "X"\nclass = "tpu"\n', encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog([f])
    wheres = [p.where for p in err.value.problems]
    assert any(w.endswith("chips.x.mem_gb") for w in wheres)
    assert any(w.endswith("chips.x.class") for w in wheres)
    assert len(err.value.problems) > 10


def test_malformed_overlay_and_missing_file(tmp_path):
    bad = tmp_path / "m.toml"
    bad.write_text("[chips\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog([bad])
    with pytest.raises(CatalogError, match="not found"):
        load_catalog([tmp_path / "none.toml"])


def test_shipped_catalog_must_source_every_figure():
    texts = {"chips": '[sources]\ns = {cite = "c", date = "d"}\n[chips.a]\nname="A"\nvendor="v"\nclass="gpu"\n'
             'system_name="s"\nchips_per_system=1\nsold_by_system=false\nmem_gb=1\nmem_bw_tbs=1\nfp8_tflops=1\n'
             'power_kw=1\nprice_usd=1\nscaleup_domain_chips=1\nscaleup_bw_gbs=1\nscaleout_bw_gbs=1\nbw_eff=1\n'
             'flop_eff=1\nt_layer_us=1\nhop_latency_us=1\n[chips.a.provenance]\n_all = {src = "s", conf = "vendor-spec"}\n'
             'mem_gb = {src = "nowhere", conf = "vendor-spec"}\n',
             "models": "", "economics": '[economics]\nelectricity_usd_per_kwh=0.1\npue=1.2\namortization_years=4\n'
             'facility_capex_usd_per_mw=1\nfacility_amortization_years=10\n'}
    with pytest.raises(CatalogError) as err:
        load_catalog(shipped=texts)
    text = err.value.render()
    assert "unknown source 'nowhere'" in text
    assert "economics.provenance.pue: figure has no source" in text


def test_behaviour_terms_come_from_groups_not_chips(catalog):
    import tomllib
    from importlib import resources

    raw = tomllib.loads((resources.files("catalogs") / "chips.toml").read_text(encoding="utf-8"))
    for cid, entry in raw["chips"].items():
        assert not {"bw_eff", "flop_eff", "t_layer_us"} & set(entry), f"{cid} sets a behaviour term itself"
        assert entry.get("arch") and entry.get("fabric") and entry.get("software"), cid
    # chips that share an architecture share its terms
    assert catalog.chips["b200"].t_layer_us == catalog.chips["gb200"].t_layer_us
    assert catalog.chips["h100-sxm"].bw_eff == catalog.chips["h200-sxm"].bw_eff


def test_unknown_group_and_group_override(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[chips.h100-sxm]\narch = "hoppr"\n', encoding="utf-8")
    with pytest.raises(CatalogError) as exc:
        load_catalog([bad])
    assert "unknown arch group 'hoppr'" in exc.value.render() and "hopper" in exc.value.render()
    ov = tmp_path / "ov.toml"
    ov.write_text('[arch.hopper]\nbw_eff = 0.9\n', encoding="utf-8")
    cat = load_catalog([ov])
    assert cat.chips["h100-sxm"].bw_eff == 0.9 and cat.chips["h200-sxm"].bw_eff == 0.9
    assert cat.chips["h100-sxm"].provenance["bw_eff"].conf == "user"
    assert cat.chips["b200"].bw_eff != 0.9


@pytest.mark.parametrize("alias,canon", [("fp16", "bf16"), ("bfloat16", "bf16"), ("float8", "fp8"),
                                         ("nvfp4", "fp4"), ("MXFP4", "fp4"), ("bf16", "bf16")])
def test_precision_aliases(alias, canon):
    from planner.cases import load_case
    from planner.units import canonical_precision

    assert canonical_precision(alias) == canon
    case = load_case("default", [f"classes.0.precision={alias!r}".replace("'", '"')])
    assert case.classes[0].precision == canon


def test_unknown_precision_names_the_aliases():
    from planner.cases import load_case
    from planner.errors import CaseError

    with pytest.raises(CaseError) as exc:
        load_case("default", ['classes.0.precision="fp17"'])
    assert "unknown precision 'fp17'" in exc.value.render() and "fp16" in exc.value.render()
    with pytest.raises(CaseError) as exc:
        load_case("default", ['classes.0.precision="q3"'])
    assert "nvfp4" in exc.value.render()  # no near name: the aliases are listed


@pytest.mark.parametrize("text,needle", [
    ('[arch.hopper]\ninherits = "blackwell"\n[arch.blackwell]\ninherits = "hopper"\n', "cycle"),
    ('[arch.hopper]\ninherits = "nosuch"\n', "unknown arch group 'nosuch'"),
    ('arch = 5\n', "arch must be a table"),
    ('[chips.rubin]\nprovenance = 5\n', "provenance must be a table"),
    ('[arch.cdna4]\nerror_band_p10 = 0.5\n', "come together"),
    ('[arch.hopper]\nbw_eff = 5\n', "fraction in [0.001, 1]"),
    ('[arch.hopper]\nbw_eff = 1e-300\n', "fraction in [0.001, 1]"),
])
def test_hostile_group_overlays_are_named(tmp_path, text, needle):
    ov = tmp_path / "ov.toml"
    ov.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as exc:
        load_catalog([ov])
    assert needle in exc.value.render()
