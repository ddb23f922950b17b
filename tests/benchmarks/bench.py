"""Benchmarks for fleet-planner: prints a table per section and writes the figures as JSON.

    python tests/benchmarks/bench.py                 # full run (several minutes)
    python tests/benchmarks/bench.py --smoke         # tiny sizes, seconds (what CI runs)
    python tests/benchmarks/bench.py --only scaling --json out.json

Figures, never assertions: targets are compared in the printout and in README §Benchmarks.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def table(rows: list[dict]) -> str:
    from planner.reports import text_table

    return text_table(rows, max_width=50)


# ------------------------------------------------------------------------------------------------
def bench_startup(smoke: bool) -> list[dict]:
    rows = []
    for args in (["--help"], ["catalog", "list", "chips"]):
        best = min(timed(subprocess.run, [sys.executable, "-m", "planner", *args], capture_output=True,
                         check=True, cwd=ROOT)[1] for _ in range(1 if smoke else 3))
        code = (f"import sys; from planner.cli import main\ntry: main({args!r})\nexcept SystemExit: pass\n"
                "print('pyomo' in sys.modules)")
        imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT).stdout
        rows.append({"command": "fleet " + " ".join(args), "wall_s": best,
                     "imports_pyomo": imported.strip().endswith("True")})
    return rows


def bench_plan(case: str) -> dict:
    """End to end for one case, each stage timed separately (import in a fresh process)."""
    imp = subprocess.run([sys.executable, "-c", "import time; t=time.perf_counter(); import planner.planning, "
                          "planner.results; print(time.perf_counter()-t)"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    from planner.candidates import build_candidates
    from planner.cases import load_case
    from planner.errors import PlannerError
    from planner.problem import build_problem
    from planner.reports import to_json
    from planner.results import extract
    from planner.solve import solve

    row = {"case": case, "import_s": float(imp.stdout.strip())}
    c, row["load_s"] = timed(load_case, case)
    units, row["candidates_s"] = timed(build_candidates, c)
    p, row["problem_s"] = timed(build_problem, c, units)
    try:
        o = solve(p)
    except PlannerError as exc:
        row["status"] = f"error: {exc}"
        return row
    row.update({"build_s": o.build_s, "solve_s": o.wall_s, "status": o.status, "gap": o.gap,
                "candidates": len(units), **{f"milp_{k}": v for k, v in o.stats.items()}})
    if o.status in ("optimal", "feasible", "time_limit"):
        plan, row["extract_s"] = timed(extract, p, o)
        _, row["output_s"] = timed(to_json, plan.to_dict())
    row["total_s"] = sum(v for k, v in row.items() if k.endswith("_s"))
    return row


def bench_limit(case: str = "default") -> dict:
    """Our end-to-end plan vs HiGHS alone on the same MILP (exported to MPS, same options)."""
    import highspy

    from planner.planning import plan
    from planner.solve import DEFAULT_MIP_GAP

    with tempfile.TemporaryDirectory() as d:
        mps = str(Path(d) / "m.mps")
        p, ours = timed(plan, case, write_model=mps)
        h = highspy.Highs()
        for k, v in {"output_flag": False, "threads": 1, "random_seed": 0, "mip_rel_gap": DEFAULT_MIP_GAP,
                     "mip_heuristic_run_root_reduced_cost": False}.items():
            h.setOptionValue(k, v)
        h.readModel(mps)
        _, alone = timed(h.run)
    return {"case": case, "ours_end_to_end_s": ours, "highs_alone_s": alone, "ratio": ours / alone,
            "ours_solve_s": p.outcome.wall_s, "objective": p.outcome.objective,
            "highs_objective": h.getInfo().objective_function_value}


# ------------------------------------------------------------------------------------------------
MODELS = ["llama-3.1-8b", "llama-3.1-70b", "gpt-oss-120b", "qwen3-32b", "deepseek-r1", "qwen3-235b-a22b"]
BASE_CHIPS = ["h100-sxm", "h200-sxm", "b200", "gb200", "b300", "gb300", "rubin", "mi300x", "mi355x", "mi455x",
              "tpu-v7", "trainium2", "trainium3", "gaudi3", "rubin-cpx", "groq3-lpu", "cerebras-wse3",
              "dmatrix-corsair", "mram-spinpu", "groq-lpu-v1"]


def synthetic_case(n_chips: int, n_classes: int, seed: int = 7) -> dict:
    """A raw case with n_chips chip types (catalog chips, then perturbed variants) and n_classes classes."""
    rng = random.Random(seed)
    chips, inline = list(BASE_CHIPS[:n_chips]), {}
    for i in range(n_chips - len(chips)):
        base = BASE_CHIPS[i % len(BASE_CHIPS)]
        name = f"{base}-v{i}"
        f = lambda: round(rng.uniform(0.8, 1.25), 3)  # noqa: E731
        inline[name] = {"_base": base, "price_f": f(), "bw_f": f()}
        chips.append(name)
    classes = []
    for j in range(n_classes):
        m = MODELS[j % len(MODELS)]
        classes.append({"name": f"c{j}", "model": m, "precision": "fp8", "isl": rng.choice([1000, 2000, 8000]),
                        "osl": rng.choice([250, 500, 1000]), "demand_tok_s": rng.choice([5e4, 2e5, 1e6]),
                        "min_speed_tok_s_user": rng.choice([30, 60, 100]), "ttft_s": 3.0})
    return {"name": f"synthetic-{n_chips}x{n_classes}", "fleet": {"chips": chips},
            "constraints": {"max_chip_types_per_stage": 3}, "classes": classes, "_variants": inline}


def materialise(raw: dict):
    """Turn the synthetic variants into full inline chip entries (copies of the base chip)."""
    from dataclasses import asdict

    from planner.catalog import load_catalog

    cat = load_catalog()
    variants = raw.pop("_variants")
    chips = {}
    for name, v in variants.items():
        c = asdict(cat.chips[v["_base"]])
        entry = {k: c[k] for k in ("name", "vendor", "system_name", "chips_per_system", "sold_by_system", "mem_gb",
                                   "mem_bw_tbs", "bf16_tflops", "fp8_tflops", "fp4_tflops", "power_kw", "price_usd",
                                   "scaleup_domain_chips", "scaleup_bw_gbs", "scaleout_bw_gbs", "bw_eff",
                                   "flop_eff", "t_layer_us", "hop_latency_us")}
        entry.update({"class": c["chip_class"], "price_usd": c["price_usd"] * v["price_f"],
                      "mem_bw_tbs": c["mem_bw_tbs"] * v["bw_f"], "name": f"{c['name']} (variant)"})
        chips[name] = entry
    if chips:
        raw["chips"] = chips
    return raw


def bench_scaling(smoke: bool) -> list[dict]:
    from planner.candidates import GridOptions, build_candidates
    from planner.cases import build_case
    from planner.problem import build_problem
    from planner.solve import SolveOptions, solve

    grids = {"coarse": GridOptions(batches=(1, 4, 16, 64, 256, 1024), n_factors=(1, 2, 4, 8)),
             "fine": GridOptions()}
    sizes = [(5, 1), (10, 4)] if smoke else [(5, 1), (10, 1), (10, 4), (20, 4), (20, 16), (40, 16)]
    rows = []
    for n_chips, n_classes in sizes:
        for gname, grid in grids.items():
            if smoke and gname == "fine":
                continue
            case = build_case(materialise(synthetic_case(n_chips, n_classes)), "synthetic.toml")
            units, cand_s = timed(build_candidates, case, grid)
            p = build_problem(case, units)
            o = solve(p, SolveOptions(time_limit_s=30 if smoke else 60, mip_gap=1e-3))
            rows.append({"chips": n_chips, "classes": n_classes, "grid": gname, "candidates": len(units),
                         "candidates_s": cand_s, "rows": o.stats.get("rows"), "columns": o.stats.get("columns"),
                         "integers": o.stats.get("integers"), "build_s": o.build_s, "solve_s": o.wall_s,
                         "status": o.status, "gap": o.gap})
    return rows


def bench_candidates(smoke: bool) -> list[dict]:
    import numpy as np

    from planner import performance as pf
    from planner.catalog import load_catalog

    cat = load_catalog()
    w = pf.Workload(cat.models["deepseek-r1"], "fp8", 8000, 1000)
    c = pf.ChipSI.of(cat.chips["gb300"], "fp8")
    n, b = np.meshgrid(np.arange(4, 104), np.arange(1, 1001), indexing="ij")
    _, agg = timed(pf.aggregated, w, c, n, b)
    a, f = pf.ChipSI.of(cat.chips["rubin"], "fp8"), pf.ChipSI.of(cat.chips["groq3-lpu"], "fp8")
    na, nf, bb = np.meshgrid(np.arange(8, 58), np.arange(1400, 1420), np.arange(1, 101), indexing="ij")
    _, afd = timed(pf.decode, w, a, na, f, nf, bb)
    return [{"what": "aggregated serving, 100k (n, B) rows", "rows": n.size, "wall_s": agg},
            {"what": "AFD decode, 100k (n_a, n_f, B) rows", "rows": na.size, "wall_s": afd}]


def bench_studies(points: int, smoke: bool) -> list[dict]:
    from planner import studies

    spec = studies.load_spec("default")
    values = [float(v) for v in range(60000, 60000 + 2000 * points, 2000)]  # Rubin price: candidates reusable
    pts = [studies.Point(i, (("chips.rubin.price_usd", v),)) for i, v in enumerate(values)]
    rows = []

    def run(label, workers, reuse, warm=False, chains=False):
        studies.CACHE.clear()
        spec.warm_start = warm
        if reuse:
            _, wall = timed(studies.run_points, spec, pts, workers=workers, chains="sweep" if chains else False)
        else:
            t = time.perf_counter()
            for p in pts:
                studies.CACHE.clear()
                studies.evaluate(spec, p)
            wall = time.perf_counter() - t
        rows.append({"study": label, "points": len(pts), "workers": workers, "wall_s": wall,
                     "points_per_s": len(pts) / wall})

    run("sweep, rebuild per point", 1, False)
    run("sweep, reuse candidates", 1, True)
    run("sweep, reuse + warm start", 1, True, warm=True)
    run("sweep, chains (the default)", 1, True, chains=True)
    if not smoke:
        run("sweep, reuse candidates", 2, True)
        run("sweep, reuse + warm start", 2, True, warm=True)
        run("sweep, chains (the default)", 2, True, chains=True)
    speeds = "25:2000:8" if smoke else "25:2000:40"
    for chains in ((True,) if smoke else (False, True)):
        df, wall = timed(studies.pareto, "default", speeds=speeds, workers=1 if smoke else 2, chains=chains)
        rows.append({"study": f"fleet pareto default --speeds {speeds}" + (", chains" if chains else ", point by point"),
                     "points": len(df), "workers": 1 if smoke else 2, "wall_s": wall, "points_per_s": len(df) / wall})
    return rows


SECTIONS = ["startup", "plan", "limit", "candidates", "scaling", "studies", "workloads"]


def bench_workloads(smoke: bool) -> list[dict]:
    """Issue #14's sizes: the 5-period roadmap-100mw and a 2-class × 3-bucket × 24-slice case."""
    from planner.planning import plan
    from planner.roadmap import roadmap

    rows = []
    limit = 10 if smoke else 120
    two = ['periods=[{year = 2026, power_mw = 40}, {year = 2027, power_mw = 70, demand_growth = 1.5}]']
    rm, wall = timed(roadmap, "roadmap-100mw", two if smoke else (), time_limit_s=limit)
    rows.append({"case": f"roadmap-100mw ({len(rm.periods)} periods)", "wall_s": wall, "status": rm.status, "gap": rm.gap,
                 "rows": rm.stats["rows"], "columns": rm.stats["columns"], "integers": rm.stats["integers"],
                 "relax_and_fix_s": rm.timings_s.get("relax_and_fix_s")})
    if smoke:  # the 2 × 3 × 24 case runs to its time limit; CI checks the roadmap path only
        return rows
    case = str(Path(__file__).parent / "cases" / "buckets-slices.toml")
    p, wall = timed(plan, case, time_limit_s=limit)
    s = p.outcome.stats
    rows.append({"case": "buckets-slices (2 × 3 buckets × 24 h)", "wall_s": wall, "status": p.outcome.status,
                 "gap": p.outcome.gap, "rows": s["rows"], "columns": s["columns"], "integers": s["integers"],
                 "relax_and_fix_s": None})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (CI)")
    ap.add_argument("--only", choices=SECTIONS, action="append")
    ap.add_argument("--points", type=int, default=200, help="points in the study benchmark")
    ap.add_argument("--json", type=str, help="write all figures to this JSON file")
    a = ap.parse_args(argv)
    sections = a.only or SECTIONS
    out = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                       "platform": platform.platform(), "processor": platform.processor()}}
    def show(name):
        print(f"\n== {name} ==\n{table(out[name])}", flush=True)

    if "startup" in sections:
        out["startup"] = bench_startup(a.smoke)
        show("startup")
    if "plan" in sections:
        from planner.cases import shipped_cases

        cases = ["default"] if a.smoke else sorted(shipped_cases())
        out["plan"] = [bench_plan(c) for c in cases]
        show("plan")
    if "limit" in sections:
        out["limit"] = [bench_limit()]
        show("limit")
    if "candidates" in sections:
        out["candidates"] = bench_candidates(a.smoke)
        show("candidates")
    if "scaling" in sections:
        out["scaling"] = bench_scaling(a.smoke)
        show("scaling")
    if "studies" in sections:
        out["studies"] = bench_studies(3 if a.smoke else a.points, a.smoke)
        show("studies")
    if "workloads" in sections:
        out["workloads"] = bench_workloads(a.smoke)
        show("workloads")
    print(f"\nmachine: {out['machine']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
