"""Calibration: point parsing, the group fit, hold-out, invariants, overlays (shared/data points)."""
import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner import calibrate as cal
from planner import invariants
from planner.catalog import load_catalog
from planner.cli import main

POINTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "calibration-points.csv"
pytestmark = pytest.mark.skipif(not POINTS.exists(), reason="shared/data not beside the repo")


@pytest.fixture(scope="module")
def points(catalog):
    return cal.load_points(POINTS, catalog)


def test_points_parse_and_exclusions_have_reasons(points):
    pts, excluded = points
    assert len(pts) > 50
    assert {p.kind for p in pts} == {"single", "frontier", "offline"}
    assert all(reason for _, reason in excluded)
    assert not any("MTP" in p.id for p in pts)  # speculative decoding is excluded
    reasons = dict(excluded)
    assert "open division" in reasons["MLP-v4.1-012"]  # a depth-pruned model is not the catalog model
    assert next(p for p in pts if p.id == "GQ-05").lower_bound  # '>100' is a floor, not a value


NAIVE = {"bw_eff": 0.7, "flop_eff": 0.6, "t_layer_us": 20.0, "t_step_us": 200.0, "maturity": 1.0}


def naive(catalog):
    """The catalog with round, uncalibrated behaviour terms in every group and chip."""
    from dataclasses import replace

    groups = {k: {g: {**e, **{t: v for t, v in NAIVE.items() if t in e}} for g, e in gs.items()}
              for k, gs in catalog.groups.items()}
    chips = {cid: replace(c, bw_eff=0.7, flop_eff=0.6, t_layer_us=20.0, t_step_us=200.0)
             for cid, c in catalog.chips.items()}
    return replace(catalog, chips=chips, groups=groups)


@pytest.mark.slow
def test_group_fit_improves_on_naive_terms_and_keeps_terms_shared(catalog, points):
    pts, _ = points
    base = naive(catalog)
    fit = cal.fit_groups(pts, base, max_nfev=20)
    rows = cal.evaluate(pts, base, fit)
    assert cal.error_summary(rows)["median_abs_error"] < cal.error_summary(rows, "error_catalog")["median_abs_error"]
    fitted = cal.fitted_catalog(fit, base)
    # one architecture, one set of terms: B200 and GB200 get the same efficiencies and per-layer time
    for t in ("bw_eff", "flop_eff", "t_layer_us"):
        assert getattr(fitted.chips["b200"], t) == getattr(fitted.chips["gb200"], t)
    # no term is keyed by a chip
    assert all(kind in ("arch", "fabric", "software", "family") for kind, _, _ in fit.values)
    # a successor is never fitted less efficient than its predecessor
    bw, bu = fitted.chips["gb200"], fitted.chips["gb300"]
    assert bu.bw_eff >= bw.bw_eff - 1e-12 and bu.t_layer_us <= bw.t_layer_us + 1e-12
    # vendor figures are never fitted
    assert ("fabric", "groq-c2c-v1", "hop_latency_us") not in fit.values
    assert ("fabric", "nvlink4-hgx", "hop_latency_us") not in fit.values  # measured by aiconfigurator


def test_chip_without_points_inherits_predecessor_then_family(catalog, points):
    pts, _ = points
    fit = cal.fit_groups([p for p in pts if p.chip == "h100-sxm"], catalog, max_nfev=10)
    fitted = cal.fitted_catalog(fit, catalog)
    assert fitted.chips["h200-sxm"].t_layer_us == fitted.chips["h100-sxm"].t_layer_us  # same arch
    assert fitted.chips["tpu-v7"].t_layer_us == pytest.approx(fit.values[("family", "hbm", "t_layer_us")])
    # a measured figure (Hopper's bw_eff, from operator tables) is never replaced, not even by its family's
    assert fitted.chips["h100-sxm"].bw_eff == catalog.chips["h100-sxm"].bw_eff


def test_lower_bound_claim_is_no_error_when_beaten(catalog, points):
    pts, _ = points
    p = next(p for p in pts if p.lower_bound)
    big = cal.CalPoint(p.id, p.kind, p.model, p.chip, p.precision, p.isl, p.osl, p.chips, 1e-3, None,
                       lower_bound=True)
    assert cal.evaluate([big], catalog)[0]["error"] == 0.0


def test_shipped_terms_are_calibrated_sourced_and_banded(catalog):
    hopper = catalog.groups["arch"]["hopper"]
    assert hopper["provenance"]["t_layer_us"].conf == "calibrated"
    assert "MLP-" in hopper["provenance"]["t_layer_us"].cite
    assert 0 < hopper["error_band_p10"] <= 1 <= hopper["error_band_p90"]
    assert catalog.chips["b200"].provenance["t_layer_us"].note.startswith("arch group blackwell")
    assert catalog.chips["groq-lpu-v1"].provenance["hop_latency_us"].conf == "vendor-spec"
    rubin = catalog.groups["arch"]["rubin"]["provenance"]["t_layer_us"]
    assert "blackwell-ultra" in rubin.note  # no points: inherits its predecessor
    assert catalog.groups["arch"]["rubin"]["bw_eff"] == catalog.groups["arch"]["blackwell-ultra"]["bw_eff"]


def test_shipped_catalog_keeps_the_physical_invariants(catalog):
    assert invariants.violations(catalog) == []


def test_invariant_check_catches_a_newer_chip_made_slower(catalog):
    from dataclasses import replace

    slow = replace(catalog.chips["gb300"], bw_eff=catalog.chips["gb200"].bw_eff / 2)
    broken = replace(catalog, chips={**catalog.chips, "gb300": slow})
    found = invariants.violations(broken, pairs=(("gb300", "gb200"),), models=["llama-3.1-70b"], speeds=(50.0,),
                                  lengths=((1000, 1000),))
    assert found and "gb300 predicted below gb200" in str(found[0])


def test_holdout_by_chip_reports_every_point(catalog, points):
    pts, _ = points
    few = [p for p in pts if p.chip in ("h100-sxm", "h200-sxm")]
    rows = cal.leave_one_out(few, catalog, "chip", max_nfev=5)
    assert len(rows) == len(few) and {r["fold"] for r in rows} == {"without chip h100-sxm", "without chip h200-sxm"}
    s = cal.error_summary(rows)
    assert s["points"] == len(few) and s["off_by_more_than_2x"] <= len(few)


def test_user_csv_with_catalog_ids_and_no_category(tmp_path, catalog):
    csv = tmp_path / "mine.csv"
    csv.write_text("id,model,precision,hardware,chips,isl,osl,per_user_tok_s,throughput_per_chip_tok_s\n"
                   "a,llama-3.1-70b,fp8,h100-sxm,8,1000,1000,30,1500\n"
                   "b,llama-3.1-70b,fp16,h100,8,1000,1000,20,2000\n", encoding="utf-8")
    pts, excluded = cal.load_points(csv, catalog)
    assert [p.chip for p in pts] == ["h100-sxm", "h100-sxm"] and not excluded
    assert [p.precision for p in pts] == ["fp8", "bf16"]


@pytest.mark.slow
def test_cli_writes_overlay_that_changes_only_fitted_groups(tmp_path):
    out = tmp_path / "overlay.toml"
    res = CliRunner().invoke(main, ["calibrate", str(POINTS), "--write", str(out), "--no-holdout", "--chips", "h100-sxm"])
    assert res.exit_code == 0, res.output
    assert "median" in res.output and out.exists()
    cat = load_catalog([out])
    assert cat.groups["arch"]["hopper"]["provenance"]["t_layer_us"].conf == "calibrated"
    assert cat.groups["arch"]["hopper"]["provenance"]["bw_eff"].conf == "reported"  # measured: not fitted
    base = load_catalog()
    assert cat.groups["arch"]["wse3"]["t_layer_us"] == base.groups["arch"]["wse3"]["t_layer_us"]  # untouched
    import tomllib

    raw = tomllib.loads(out.read_text(encoding="utf-8"))
    assert set(raw.get("arch", {})) == {"hopper"}  # only what H100 points measure: no inherited groups
    assert set(raw.get("software", {})) <= {"cuda"} and set(raw.get("fabric", {})) <= {"nvlink4-hgx"}
    for gid in ("blackwell", "blackwell-ultra", "rubin"):  # no H100 point says anything about them
        assert cat.groups["arch"][gid]["t_layer_us"] == base.groups["arch"][gid]["t_layer_us"]
    assert "arch.hopper.t_layer_us" in res.stderr and "h100-sxm" in res.stderr  # says what it changed
    again = CliRunner().invoke(main, ["calibrate", str(POINTS), "--write", str(out), "--no-holdout"])
    assert again.exit_code != 0 and "--force" in again.output


def test_calibrate_refuses_an_existing_overlay_before_fitting(tmp_path, monkeypatch):
    """The workflow (calibrate.calibrate, which `fleet calibrate` only prints) checks its output first:
    a fit can take minutes."""
    out = tmp_path / "overlay.toml"
    out.write_text("", encoding="utf-8")
    monkeypatch.setattr(cal, "fit_groups", lambda *a, **k: pytest.fail("fitted before refusing the output"))
    with pytest.raises(cal.PlannerError, match="exists"):
        cal.calibrate(str(POINTS), write_path=str(out))
    heard = []
    with pytest.raises(cal.PlannerError, match="no usable calibration points"):
        cal.calibrate(str(POINTS), chip_ids="rubin", announce=heard.append)
    assert heard == []  # nothing to fit: nothing announced


def test_calibrate_returns_what_the_command_prints(tmp_path):
    heard = []
    r = cal.calibrate(str(POINTS), chip_ids="h100-sxm", holdout=False, write_path=str(tmp_path / "o.toml"),
                      announce=heard.append)
    assert heard == [f"fitting {len(r.points)} points"]
    assert r.held == {} and r.bands is None and set(r.summary) == {"in_sample", "catalog_terms"}
    assert any(c["group"] == "arch.hopper" for c in r.changes) and (tmp_path / "o.toml").exists()
    assert {t["group"] for t in r.terms} >= {"arch.hopper"} and len(r.rows) == len(r.points)
    assert set(r.to_dict()) == {"points", "held_out", "summary", "by_arch", "terms", "error_bands", "excluded"}


@pytest.mark.slow
def test_cli_json_reports_holdout_by_chip_and_model():
    res = CliRunner().invoke(main, ["calibrate", str(POINTS), "--format", "json", "--chips", "h100-sxm,h200-sxm,mi300x"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)  # progress goes to stderr; stdout is the JSON alone
    assert "fitting" in res.stderr
    assert {"held_out_by_chip", "held_out_by_model", "in_sample"} <= set(d["summary"])
    assert set(d["by_arch"]["held_out_by_chip"]) == {"hopper", "cdna3"}
    assert all(math.isfinite(r["error"]) for r in d["held_out"]["chip"])


def test_chip_deviation_survives_the_fit(catalog, points, tmp_path):
    ov = tmp_path / "dev.toml"
    ov.write_text("[chips.h100-sxm]\nt_layer_us = 50\n", encoding="utf-8")
    cat = load_catalog([ov])
    pts, _ = points
    fit = cal.fit_groups([p for p in pts if p.chip in ("h100-sxm", "h200-sxm")], cat, max_nfev=5)
    assert cal.fitted_catalog(fit, cat).chips["h100-sxm"].t_layer_us == 50  # the chip's own figure wins
    assert cal.fitted_catalog(fit, cat).chips["h200-sxm"].t_layer_us != 50


def test_hostile_csv_cells_are_excluded_with_reasons(tmp_path, catalog):
    csv = tmp_path / "bad.csv"
    csv.write_text("\ufeffid,model,precision,hardware,chips,isl,osl,per_user_tok_s,throughput_per_chip_tok_s\n"
                   "neg,llama-3.1-70b,fp8,h100-sxm,-8,1000,1000,30,1500\n"
                   "sci,llama-3.1-70b,fp8,h100-sxm,8,1e3,1e3,30,2e3\n"
                   "huge,llama-3.1-70b,fp8,h100-sxm,8,1000,1000,30,1e300\n"
                   "sci,llama-3.1-70b,fp8,h100-sxm,8,1000,1000,30,1500\n"
                   ",llama-3.1-70b,fp8,h100-sxm,8,1000,1000,30,1500\n", encoding="utf-8")
    pts, excluded = cal.load_points(csv, catalog)
    reasons = dict(excluded)
    assert [p.id for p in pts] == ["sci"] and pts[0].isl == 1000 and pts[0].tput_per_chip == 2000
    assert "positive" in reasons["neg"] and "below 1e12" in reasons["huge"]
    assert "duplicate" in reasons["sci"] and "(no id)" in reasons
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,model,precision,hardware,chips,isl,osl,per_user_tok_s\na,b,c\n", encoding="utf-8")
    with pytest.raises(cal.PlannerError, match="ragged"):
        cal.load_points(ragged, catalog)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,model\n\xe9,x\n".encode("latin-1"))
    with pytest.raises(cal.PlannerError, match="UTF-8"):
        cal.load_points(latin, catalog)
