"""The fleet MILP (DESIGN.md §4): a pure builder, Problem in, ConcreteModel out.

Index sets
    U   candidate units (planner/candidates.py), each of one class j(u)
    C   chip types used by some unit;  S = {prefill, decode_attention, decode_ffn}
Variables
    x[u] ∈ ℤ≥0   copies of unit u bought          n[c] ∈ ℤ≥0   chips of type c bought
    r[c] ∈ ℤ≥0   whole systems of c (sold by system)   y[s,c] ∈ {0,1}  stage s runs on chip c
    z[c] ∈ {0,1} chip type c used (fixed cost)          α ≥ 0   served share of demand (throughput objective)
    s[u,j] ≥ 0   k tokens/s of length bucket j that the copies of shared unit u serve
Units: throughput k tokens/s, power kW, cost USD/hour (capex objective: M USD).
"""
from __future__ import annotations

import pyomo.environ as pyo

from planner.problem import Problem


def build_model(p: Problem) -> pyo.ConcreteModel:
    """The whole MILP; reads like a table of contents."""
    m = pyo.ConcreteModel(name=f"fleet[{p.case.name}]")
    add_variables(m, p)
    add_throughput(m, p)
    add_prefill(m, p)
    add_sharing(m, p)
    add_chip_count(m, p)
    add_systems(m, p)
    add_power(m, p)
    add_capex(m, p)
    add_supply(m, p)
    add_assignment(m, p)
    add_fixed_cost(m, p)
    set_objective(m, p)
    return m


def add_variables(m, p: Problem) -> None:
    """x, n, r, y, z, α with data-derived bounds (x[u] ≤ unit_max[u] when finite)."""
    m.U = pyo.Set(initialize=p.unit_ids, doc="candidate units")
    m.C = pyo.Set(initialize=p.chips, doc="chip types")
    m.SC = pyo.Set(initialize=sorted({sc for st in p.unit_stages.values() for sc in st}), dimen=2,
                   doc="(stage, chip) pairs some unit uses")
    m.J = pyo.Set(initialize=p.classes, doc="traffic classes")

    def x_bounds(_, u):
        return (0, p.unit_max[u] if p.unit_max[u] >= 0 else None)

    m.x = pyo.Var(m.U, within=pyo.NonNegativeIntegers, bounds=x_bounds, doc="copies of unit u")
    m.n = pyo.Var(m.C, within=pyo.NonNegativeIntegers, doc="chips bought of type c")
    m.y = pyo.Var(m.SC, within=pyo.Binary, doc="stage s may run on chip c")
    m.alpha = pyo.Var(within=pyo.NonNegativeReals, bounds=(0, None), doc="served share of demand")
    m.S = pyo.Set(initialize=[(u, j) for u, sv in sorted(p.unit_serves.items()) for j in sv], dimen=2,
                  doc="(shared unit, bucket it may serve)")
    m.share = pyo.Var(m.S, within=pyo.NonNegativeReals, doc="bucket j's k tok/s on shared unit u")
    if p.objective != "throughput":
        m.alpha.fix(1.0)


def add_throughput(m, p: Problem) -> None:
    """Demand is split between aggregated and disaggregated serving, each covered by its units:
        Σ_{u ∈ A_j} tput_u·x_u ≥ a_j;   Σ_{u ∈ D_j} tput_u·x_u ≥ d_j;   a_j + d_j ≥ α·demand_j   ∀ j
    [k output tokens/s]. The split lets spare decode capacity go without prefill (see add_prefill)."""
    agg = {j: p.units_of(j, "aggregated") for j in p.classes}
    dec = {j: p.units_of(j, "decode") for j in p.classes}
    sh_agg = {j: p.shared_of(j, "aggregated") for j in p.classes}
    sh_dec = {j: p.shared_of(j, "decode") for j in p.classes}
    m.served_agg = pyo.Var(m.J, within=pyo.NonNegativeReals, doc="demand served by aggregated units")
    m.served_dis = pyo.Var(m.J, within=pyo.NonNegativeReals, doc="demand served by disaggregated decode")
    m.cover_agg = pyo.Constraint(m.J, rule=lambda m, j: sum(p.unit_tput_ktok_s[u] * m.x[u] for u in agg[j])
                                 + sum(m.share[u, j] for u in sh_agg[j]) >= m.served_agg[j],
                                 doc="aggregated capacity ≥ its share")
    m.cover_dis = pyo.Constraint(m.J, rule=lambda m, j: sum(p.unit_tput_ktok_s[u] * m.x[u] for u in dec[j])
                                 + sum(m.share[u, j] for u in sh_dec[j]) >= m.served_dis[j],
                                 doc="decode capacity ≥ its share")
    m.throughput = pyo.Constraint(m.J, rule=lambda m, j: m.served_agg[j] + m.served_dis[j]
                                  >= m.alpha * p.demand_ktok_s[j], doc="output throughput ≥ demand")


def add_prefill(m, p: Problem) -> None:
    """Σ_{u ∈ P_j} cap_u · x_u ≥ (ISL/OSL)_j · d_j   ∀ j   [k input tokens/s]: prefill for the demand
    the disaggregated decode serves (not for its spare capacity); cap_u already holds the utilisation
    the TTFT target allows. Aggregated units prefill on their own chips."""
    pools = {j: p.units_of(j, "prefill") for j in p.classes}
    shared = {j: p.shared_of(j, "prefill") for j in p.classes}
    m.prefill = pyo.Constraint(m.J, rule=lambda m, j: sum(p.unit_prefill_ktok_s[u] * m.x[u] for u in pools[j])
                               + sum(m.share[u, j] for u in shared[j])
                               >= p.isl_per_osl[j] * m.served_dis[j], doc="prefill capacity ≥ input tokens")


def add_sharing(m, p: Problem) -> None:
    """Σ_j s[u,j] / cap[u,j] ≤ x_u   ∀ shared unit u   [copies]: a unit that may serve several length
    buckets of one class (sized for the longest, planner/candidates.py shared_candidates) splits its
    time between them; cap[u,j] is what one copy serves of bucket j alone. Exact when a decode step's
    time is affine in the sequences' contexts (sequences of bucket j add their own KV reads, prefill
    chunks and per-sequence costs), and conservative where compute and memory times overlap (max)."""
    if not p.unit_serves:
        return
    U = sorted(p.unit_serves)
    m.sharing = pyo.Constraint(U, rule=lambda m, u: sum(m.share[u, j] / cap for j, cap in p.unit_serves[u].items())
                               <= m.x[u], doc="a shared unit's time split between its buckets")


def add_chip_count(m, p: Problem) -> None:
    """n_c ≥ Σ_u chips_{u,c} · x_u   ∀ c   [chips]."""
    users: dict[str, list[tuple[int, int]]] = {c: [] for c in p.chips}
    for u, counts in p.unit_chips.items():
        for c, cnt in counts.items():
            users[c].append((u, cnt))
    m.chip_count = pyo.Constraint(m.C, rule=lambda m, c: m.n[c] >= sum(cnt * m.x[u] for u, cnt in users[c]),
                                  doc="chips bought cover the units")


def add_systems(m, p: Problem) -> None:
    """n_c = size_c · r_c   ∀ c sold only as whole systems (72-GPU racks, 256-LPU LPX racks)."""
    if not p.system_size:
        return
    m.R = pyo.Set(initialize=sorted(p.system_size))
    m.r = pyo.Var(m.R, within=pyo.NonNegativeIntegers, doc="whole systems bought")
    m.systems = pyo.Constraint(m.R, rule=lambda m, c: m.n[c] == p.system_size[c] * m.r[c],
                               doc="whole systems")


def site_power_kw(m, p: Problem):
    return p.pue * sum(p.chip_power_kw[c] * m.n[c] for c in m.C)


def add_power(m, p: Problem) -> None:
    """PUE · Σ_c power_c · n_c ≤ power budget   [kW at the site meter]."""
    if p.power_kw_budget is None:
        return
    m.power = pyo.Constraint(expr=site_power_kw(m, p) <= p.power_kw_budget, doc="site power budget")


def add_capex(m, p: Problem) -> None:
    """Σ_c price_c · n_c ≤ capex budget   [M USD]."""
    if p.capex_usd_budget is None:
        return
    m.capex = pyo.Constraint(expr=sum(p.chip_price_usd[c] / 1e6 * m.n[c] for c in m.C)
                             <= p.capex_usd_budget / 1e6, doc="capex budget")


def add_supply(m, p: Problem) -> None:
    """n_c ≤ supply cap_c   ∀ c with a cap   [chips]."""
    if not p.supply:
        return
    m.supply = pyo.Constraint(sorted(p.supply), rule=lambda m, c: m.n[c] <= p.supply[c], doc="supply cap")


def add_assignment(m, p: Problem) -> None:
    """x_u ≤ M_u · y_{s,c}  ∀ u, (s,c) ∈ stages(u);  Σ_c y_{s,c} ≤ K  ∀ s   (K = max chip types per stage).
    M_u is the unit's own data-derived bound (demand / its throughput, or what the budgets allow);
    when no bound exists (no limit on a unit type) the link is skipped and y is free to follow."""
    if p.max_types_per_stage is None:
        m.y.fix(1)
        return
    pairs = [(u, s, c) for u in p.unit_ids for (s, c) in p.unit_stages[u] if p.unit_max[u] >= 0]
    m.assign = pyo.Constraint(range(len(pairs)), rule=lambda m, i: m.x[pairs[i][0]]
                              <= p.unit_max[pairs[i][0]] * m.y[pairs[i][1], pairs[i][2]], doc="unit needs its stage chips")
    stages = sorted({s for s, _ in m.SC})
    m.types_per_stage = pyo.Constraint(stages, rule=lambda m, s: sum(m.y[s2, c] for (s2, c) in m.SC if s2 == s)
                                       <= p.max_types_per_stage, doc="chip types per stage")


def add_fixed_cost(m, p: Problem) -> None:
    """n_c ≤ M_c · z_c  ∀ c with a fixed platform cost; M_c = Σ_u chips_{u,c} · M_u (or the supply cap)."""
    F = [c for c in p.chips if p.fixed_cost_usd_per_hour.get(c)]
    if not F:
        return
    bigm = {}
    for c in F:
        terms = [cnt * p.unit_max[u] for u in p.unit_ids for cc, cnt in p.unit_chips[u].items() if cc == c]
        bigm[c] = p.supply.get(c) or (sum(terms) if all(t >= 0 for t in terms) else None)
    if any(v is None for v in bigm.values()):
        raise ValueError("fixed cost needs a bounded chip count")
    m.F = pyo.Set(initialize=F)
    m.z = pyo.Var(m.F, within=pyo.Binary, doc="chip type used")
    m.fixed = pyo.Constraint(m.F, rule=lambda m, c: m.n[c] <= bigm[c] * m.z[c], doc="fixed cost switch")


def set_objective(m, p: Problem) -> None:
    """tco: Σ_c hourly_c·n_c + Σ fixed_c·z_c [USD/h]; capex [M USD]; power [kW]; throughput: max α."""
    fixed = sum(p.fixed_cost_usd_per_hour[c] * m.z[c] for c in m.F) if hasattr(m, "F") else 0
    if p.objective == "tco":
        expr = sum(p.chip_hourly_usd[c] * m.n[c] for c in m.C) + fixed
        m.obj = pyo.Objective(expr=expr, sense=pyo.minimize)
    elif p.objective == "capex":
        m.obj = pyo.Objective(expr=sum(p.chip_price_usd[c] / 1e6 * m.n[c] for c in m.C), sense=pyo.minimize)
    elif p.objective == "power":
        m.obj = pyo.Objective(expr=site_power_kw(m, p), sense=pyo.minimize)
    else:  # planner/solve.py re-solves at the best α for the cheapest fleet that reaches it
        m.obj = pyo.Objective(expr=m.alpha, sense=pyo.maximize)
