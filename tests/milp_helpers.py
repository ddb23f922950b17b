"""Tiny hand-made fleet problems (toy chips, units given directly) and a brute-force oracle."""
import itertools
import math

import pandas as pd

from planner.domain import Case, Chip, Constraints, Economics, Fleet, OwnedChips, TrafficClass
from planner.problem import build_problem
from planner.solve import SolveOptions, solve
from planner.spares import spares_needed

ECON = Economics(electricity_usd_per_kwh=0.1, pue=1.0, amortization_years=1.0, facility_capex_usd_per_mw=0.0,
                 facility_amortization_years=1.0)


def chip(cid, power_kw=1.0, price_usd=8760.0, per_system=1, by_system=False, down=0.0):
    """price 8760 USD over 1 year = 1 USD/hour of capex; energy 0.1 USD/kWh; `down` = the fraction of
    time one chip is down (one failure a year, MTTR chosen to give it)."""
    extra = {"annual_failure_rate": 1.0, "mttr_hours": down * 8760 / (1 - down)} if down else {}
    return Chip(**extra,id=cid, name=cid, vendor="t", chip_class="gpu", system_name="s", chips_per_system=per_system,
                sold_by_system=by_system, mem_gb=100, mem_bw_tbs=1, power_kw=power_kw, price_usd=price_usd,
                scaleup_domain_chips=8, scaleup_bw_gbs=100, scaleout_bw_gbs=10, bw_eff=1, flop_eff=1,
                t_layer_us=0, hop_latency_us=0, fp8_tflops=1)


def unit(cls, kind, a, na, tput=0.0, pre=0.0, f=None, nf=0):
    return {"class": cls, "class_index": 0, "kind": kind, "attn_chip": a, "n_attn": na, "ffn_chip": f or a,
            "n_ffn": nf, "batch": 1, "throughput_tok_s": tput, "speed_tok_s_user": 100.0, "ttft_s": 0.1,
            "prefill_tok_s": pre}


def toy(chips, units, classes=(("c", 1000.0, 1000, 1000),), objective="tco", owned=None, buy=None,
        economics=ECON, **constraints):
    """classes: (name, demand_tok_s, isl, osl); owned: {chip: count} already in the fleet; buy: chips
    that may be bought new (None = all)."""
    tcs = tuple(TrafficClass(name=n, model="m", precision="fp8", isl=i, osl=o, demand_tok_s=d,
                             min_speed_tok_s_user=1, ttft_s=1) for n, d, i, o in classes)
    case = Case(name="toy", description="", economics=economics, constraints=Constraints(**constraints),
                fleet=Fleet(chips=tuple(c.id for c in chips), owned=tuple(OwnedChips(c, k) for c, k in (owned or {}).items()),
                            buy=None if buy is None else tuple(buy)), classes=tcs, chips={c.id: c for c in chips},
                models={})
    return build_problem(case, pd.DataFrame(units), objective)


def milp(p):
    return solve(p, SolveOptions(mip_gap=1e-9, time_limit_s=30))


def brute_force(p, limit=12):
    """Enumerate copies of every unit (0..bound) and return the cheapest feasible TCO (or None)."""
    U = p.unit_ids
    ranges = [range(0, (p.unit_max[u] if p.unit_max[u] is not None else limit) + 1) for u in U]
    spares_on = p.spare_fraction > 0 or p.availability is not None

    def spares(n_work, q):
        k = spares_needed(n_work, q, p.availability) if p.availability is not None else 0
        return max(k, math.ceil(p.spare_fraction * n_work - 1e-9))

    # each unit's class and kind, read from the table once (pandas lookups inside the loop made the
    # oracle ~15× slower than the enumeration itself)
    cls = {u: p.units.at[u, "class"] for u in U}
    kind = {u: p.units.at[u, "kind"] for u in U}
    members = {j: {k: [u for u in U if cls[u] == j and kind[u] == k] for k in ("aggregated", "decode")}
               for j in p.classes}
    prefill_of = {j: [u for u in U if cls[u] == j] for j in p.classes}
    best = None
    for xs in itertools.product(*ranges):
        x = dict(zip(U, xs))
        ok = True
        for j in p.classes:
            cap = {k: sum(p.unit_tput_ktok_s[u] * x[u] for u in members[j][k]) for k in ("aggregated", "decode")}
            pre = sum(p.unit_prefill_ktok_s[u] * x[u] for u in prefill_of[j])
            rest = max(0.0, p.demand_ktok_s[j] - cap["aggregated"])  # what disaggregated serving must carry
            if cap["decode"] < rest - 1e-9 or pre < p.isl_per_osl[j] * rest - 1e-9:
                ok = False
                break
        if not ok:
            continue
        n = {c: sum(p.unit_chips[u].get(c, 0) * x[u] for u in U) for c in p.chips}
        groups = {c: [] for c in p.chips}  # every group each copy (working or spare) places on its chip
        for u in U:
            k_spare = spares(x[u], p.unit_down[u]) if spares_on and u in p.unit_spare_chips else 0
            for c, g in p.unit_groups[u]:
                on_spares = k_spare if c in p.unit_spare_chips.get(u, {}) else 0
                groups[c] += [g] * (x[u] + on_spares)
                n[c] += g * on_spares
        for c, size in p.system_size.items():  # whole systems that hold the groups, packed by brute force
            w = min_systems(groups[c], size)
            if spares_on and c in p.rack_down:
                w += spares(w, p.rack_down[c])
            n[c] = w * size
        kept = {c: min(p.owned.get(c, 0), v) for c, v in n.items()}  # an owned chip is never dearer than a new one
        new = {c: n[c] - kept[c] for c in n}
        if any(new[c] > 0 for c in p.no_buy):
            continue
        if p.power_kw_budget is not None and p.pue * sum(p.chip_power_kw[c] * n[c] for c in n) > p.power_kw_budget + 1e-9:
            continue
        if p.capex_usd_budget is not None and sum(p.chip_price_usd[c] * new[c] for c in n) > p.capex_usd_budget + 1e-6:
            continue
        if any(new[c] > cap for c, cap in p.supply.items()):
            continue
        if p.max_types_per_stage is not None:
            used = {}
            for u in U:
                if x[u]:
                    for s, c in p.unit_stages[u]:
                        used.setdefault(s, set()).add(c)
            if any(len(v) > p.max_types_per_stage for v in used.values()):
                continue
        cost = sum(p.chip_capex_usd_per_hour[c] * new[c] + p.chip_running_usd_per_hour[c] * n[c] for c in n)
        cost += sum(v for c, v in p.fixed_cost_usd_per_hour.items() if new.get(c, 0) > 0)
        if best is None or cost < best - 1e-9:
            best = cost
    return best


def min_systems(groups, size):
    """The fewest systems of `size` chips that hold the groups (a group wider than a system takes
    ceil(g / size) of its own), by exhaustive search — the oracle's own packing, independent of
    planner/packing.py."""
    wide = sum(-(-g // size) for g in groups if g > size)
    items = sorted((g for g in groups if g <= size), reverse=True)
    best = [len(items)]

    def place(i, rooms):
        if len(rooms) >= best[0]:
            return
        if i == len(items):
            best[0] = len(rooms)
            return
        tried = set()
        for j, room in enumerate(rooms):
            if room >= items[i] and room not in tried:
                tried.add(room)
                place(i + 1, rooms[:j] + (room - items[i],) + rooms[j + 1:])
        place(i + 1, rooms + (size - items[i],))

    place(0, ())
    return wide + (best[0] if items else 0)
