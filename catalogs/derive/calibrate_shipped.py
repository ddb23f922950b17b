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
from planner import catalog as catalog_module  # noqa: E402
from planner.catalog import load_catalog  # noqa: E402


def _reload():
    """The catalog as it is on disk now (the loader caches the shipped files per process)."""
    catalog_module.shipped_catalog_texts.cache_clear()
    catalog_module._shipped_layers.cache_clear()
    return load_catalog()


def _fixed_point(points, rounds: int = 10, tol: float = 1e-2):
    """Refit from the last fit until no term moves by more than `tol` (relative): the shipped terms
    are then what `fleet calibrate` finds when started from them, whatever the starting priors."""
    path = ROOT / "catalogs" / "behaviour.toml"
    for i in range(rounds):
        cat = _reload()
        fit = cal.fit_groups(points, cat)
        before = {k: float(cat.groups[k[0]][k[1]][k[2]]) for k in fit.values
                  if k[0] != "family" and k[1] in cat.groups.get(k[0], {})}
        moved = max((abs(fit.values[k] / v - 1) for k, v in before.items() if v), default=0.0)
        overlay = cal.overlay_dict(fit, cat, "calibration-points.csv")
        path.write_text(cal.fold_into_behaviour(path.read_text(encoding="utf-8"), overlay), encoding="utf-8")
        print(f"refit {i + 1}: largest move {moved:.2%}")
        if moved < tol:
            break
    return _reload()


def main(points_csv: str) -> None:
    if not Path(points_csv).is_file():
        raise SystemExit(f"usage: python catalogs/derive/calibrate_shipped.py [POINTS_CSV]  ({points_csv} not found)")
    points, excluded = cal.load_points(points_csv, load_catalog())
    cat = _fixed_point(points)
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
    cat = _reload()
    rows = cal.evaluate(points, cat)  # the shipped terms as written (rounded to 4 digits)
    hold_rows = cal.evaluate(hold_pts, cat, fold="own held-out set")
    report = {
        "source": f"python catalogs/derive/calibrate_shipped.py on {Path(points_csv).name} (shared/data) and "
                  "catalogs/derive/holdout-points.csv, " + cal._today(),
        "points": len(points), "excluded": len(excluded),
        "in_sample": cal.error_summary(rows),
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
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0)
    main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "data" / "calibration-points.csv"))
