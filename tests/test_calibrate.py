"""Calibration: point parsing, the fit improves on uncalibrated terms, held-out error, overlay."""
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from planner import calibrate as cal
from planner.catalog import load_catalog
from planner.cli import main

POINTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "calibration-points.csv"
pytestmark = pytest.mark.skipif(not POINTS.exists(), reason="shared/data not beside the repo")

NAIVE = {"gpu": (0.75, 0.5, 8.0), "asic": (0.7, 0.5, 10.0), "sram": (0.6, 0.4, 2.0), "mram": (0.6, 0.4, 2.0),
         "prefill": (0.75, 0.5, 8.0)}


def naive(catalog):
    """The catalog with the pre-calibration class defaults put back."""
    chips = {}
    for cid, c in catalog.chips.items():
        bw, fl, tl = NAIVE[c.chip_class]
        chips[cid] = replace(c, bw_eff=bw, flop_eff=fl, t_layer_us=tl)
    return replace(catalog, chips=chips)


def test_points_parse_and_exclusions_have_reasons(catalog):
    points, excluded = cal.load_points(POINTS, catalog)
    assert len(points) > 50
    assert {p.kind for p in points} == {"single", "frontier", "offline"}
    assert all(reason for _, reason in excluded)
    assert not any("MTP" in p.id for p in points)  # speculative decoding is excluded


def test_calibration_improves_fit_over_defaults(catalog):
    points, _ = cal.load_points(POINTS, catalog)
    base = naive(catalog)
    fitted = cal.fit(points, base)
    rows = cal.evaluate(points, base, fitted)
    before = cal.error_summary(rows, "error_default")["median_abs_error"]
    after = cal.error_summary(rows, "error")["median_abs_error"]
    assert after < before


def test_shipped_terms_are_calibrated_and_sourced(catalog):
    b200 = catalog.chips["b200"]
    assert b200.provenance["t_layer_us"].conf == "calibrated"
    assert "IX-" in b200.provenance["t_layer_us"].cite or "MLP-" in b200.provenance["t_layer_us"].cite
    assert catalog.chips["groq-lpu-v1"].provenance["hop_latency_us"].conf == "vendor-spec"  # never fitted


@pytest.mark.slow
def test_cli_writes_overlay_that_loads(tmp_path):
    out = tmp_path / "overlay.toml"
    res = CliRunner().invoke(main, ["calibrate", str(POINTS), "--write", str(out), "--no-holdout"])
    assert res.exit_code == 0, res.output
    assert "median" in res.output and out.exists()
    cat = load_catalog([out])
    assert cat.chips["h100-sxm"].provenance["bw_eff"].conf == "calibrated"
    again = CliRunner().invoke(main, ["calibrate", str(POINTS), "--write", str(out), "--no-holdout"])
    assert again.exit_code != 0 and "--force" in again.output
