"""Refit the shipped behaviour terms: `python catalogs/derive/calibrate_shipped.py [POINTS_CSV]`.

Runs `fleet calibrate`'s fit on shared/data/calibration-points.csv (default), the leave-one-chip-out
and leave-one-model-out hold-outs, checks the physical invariants, and folds the fitted group terms
and the held-out error bands into catalogs/behaviour.toml (values, provenance with point ids, date).
Writes catalogs/derive/calibration-report.json with the error summaries the README quotes,
including the error on our own held-out set (catalogs/derive/holdout-points.csv: GPUStack
performance-lab measurements, never fitted; rows with fewer than 50 output tokens are left out —
their TPOT spans a handful of steps).
Priors are the values in behaviour.toml marked conf = "default"; a rerun starts from the last fit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from planner import calibrate as cal  # noqa: E402
from planner import invariants  # noqa: E402
from planner.catalog import load_catalog  # noqa: E402


def main(points_csv: str) -> None:
    cat = load_catalog()
    points, excluded = cal.load_points(points_csv, cat)
    fit = cal.fit_groups(points, cat)
    rows = cal.evaluate(points, cat, fit)
    held = {by: cal.leave_one_out(points, cat, by, full=fit) for by in ("chip", "model")}
    bands = cal.error_bands(held["chip"] + held["model"])
    broken = invariants.violations(cal.fitted_catalog(fit, cat))
    if broken:
        raise SystemExit("fit rejected:\n" + "\n".join(str(v) for v in broken[:10]))
    overlay = cal.overlay_dict(fit, cat, Path(points_csv).name, bands)
    hold_pts, hold_excl = cal.load_points(ROOT / "catalogs" / "derive" / "holdout-points.csv", cat)
    hold_pts = [p for p in hold_pts if p.osl >= 50]
    hold_rows = cal.evaluate(hold_pts, cat, fit, fold="own held-out set")
    path = ROOT / "catalogs" / "behaviour.toml"
    path.write_text(cal.fold_into_behaviour(path.read_text(encoding="utf-8"), overlay), encoding="utf-8")
    report = {
        "points": len(points), "excluded": len(excluded),
        "in_sample": cal.error_summary(rows), "catalog_priors": cal.error_summary(rows, "error_catalog"),
        **{f"held_out_by_{by}": cal.error_summary(h) for by, h in held.items()},
        "own_held_out_set": cal.error_summary(hold_rows),
        "own_held_out_rows": [{k: r[k] for k in ("id", "chip", "model", "measured", "predicted", "error")} for r in hold_rows],
        "own_held_out_excluded": [{"id": i, "reason": r} for i, r in hold_excl],
        "by_arch": {f"held_out_by_{by}": cal.summary_by(h, "arch") for by, h in held.items()},
        "error_bands": {a: {"p10": lo, "p90": hi, "points": n} for a, (lo, hi, n) in bands.items()},
        "worst_held_out": sorted(({"id": r["id"], "chip": r["chip"], "model": r["model"], "fold": r["fold"],
                                   "ratio": 1 + r["error"]} for h in held.values() for r in h),
                                 key=lambda r: -max(r["ratio"], 1 / r["ratio"]))[:15],
    }
    out = ROOT / "catalogs" / "derive" / "calibration-report.json"
    out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    for k in ("in_sample", "held_out_by_chip", "held_out_by_model", "own_held_out_set"):
        s = report[k]
        print(f"{k:18s} median {s['median_abs_error']:.0%} p90 {s['p90_abs_error']:.0%} worst x{s['worst_ratio']:.2f} "
              f">2x {s['off_by_more_than_2x']} >2.5x {s['off_by_more_than_2_5x']} of {s['points']}")
    print(f"wrote {path} and {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "data" / "calibration-points.csv"))
