"""Fingerprint of every shipped case's plan: status, objective, chips, costs, constraints (slack,
shadow price) — or the diagnosis of an infeasible one. A refactor that claims "no behaviour change"
runs this before and after and compares:

    python tests/benchmarks/plan_fingerprint.py > before.json
    python tests/benchmarks/plan_fingerprint.py --compare before.json   # exit 1 on any difference

Numbers are compared within 1e-9 relative (HiGHS is deterministic: random_seed 0, one thread);
chips, statuses and names exactly. Wall-clock figures are left out.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from planner.cases import load_case, shipped_cases  # noqa: E402
from planner.errors import PlannerError  # noqa: E402
from planner.planning import plan_case  # noqa: E402
from planner.solve import SolveOptions  # noqa: E402

REL = 1e-9

VARIANTS = {  # label → (case, --set, objective): the elastic diagnosis and the other objectives
    "default:power-short": ("default", ["constraints.power_mw=1.5"], None),
    "default:capex-short": ("default", ["constraints.capex_usd=1e7"], None),
    "default:power-capex-short": ("default", ["constraints.power_mw=1.5", "constraints.supply.rubin=10",
                                              "constraints.capex_usd=5e7"], None),
    "default:supply-short": ("default", ['fleet.chips=["rubin","rubin-cpx"]', "constraints.supply.rubin=72"], None),
    "diurnal-tou:power-short": ("diurnal-tou", ["constraints.power_mw=0.2"], None),
    "default:capex": ("default", [], "capex"),
    "default:power": ("default", [], "power"),
    "hbm-shortage:throughput": ("hbm-shortage", [], "throughput"),
    "default:fixed-cost": ("default", ["constraints.fixed_cost_usd.trainium3=1e6"], None),
}


def fingerprint(name: str) -> dict:
    case_name, sets, objective = VARIANTS.get(name, (name, [], None))
    case = load_case(case_name, sets)
    try:
        p = plan_case(case, objective, solve_opts=SolveOptions(time_limit_s=600))
    except PlannerError as e:
        return {"status": type(e).__name__, "message": str(e),
                "diagnosis": [[d.where, d.what, d.fix] for d in e.problems]}
    d = p.to_dict()
    return {"status": d["status"], "objective": d["objective"], "objective_kind": d["objective_kind"],
            "chips": d["chips"], "bought": d["bought"], "systems": d["systems"], "cost": d["cost"],
            "power_mw": d["power_mw"], "throughput_tok_s": d["throughput_tok_s"],
            "constraints": d["constraints"], "classes": d["classes"], "stages": d["stages"],
            "units": d["units"], "warnings": d["warnings"]}


def same(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'before' if k in a else 'after'}")
            else:
                same(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items before, {len(b)} after")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", out)
    elif isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool):
        if not (a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= REL * max(abs(a), abs(b))):
            out.append(f"{where}: {a!r} → {b!r}")
    elif a != b:
        out.append(f"{where}: {a!r} → {b!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", help="a fingerprint written before; exit 1 on a difference")
    ap.add_argument("cases", nargs="*", help="case names (default: every shipped case)")
    a = ap.parse_args()
    names = a.cases or sorted(shipped_cases()) + list(VARIANTS)
    now = {n: json.loads(json.dumps(fingerprint(n), default=str)) for n in names}
    if not a.compare:
        print(json.dumps(now, indent=1, sort_keys=True))
        return 0
    before = json.loads(Path(a.compare).read_text())
    diffs: list[str] = []
    for n in names:
        same(before.get(n), now[n], n, diffs)
    for n in names:
        print(f"{n:22s} {now[n]['status']:16s} objective {now[n].get('objective')!s:>22s} "
              f"chips {now[n].get('chips', '-')}")
    print("\n".join(diffs) if diffs else "fingerprint: identical")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
