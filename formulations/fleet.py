"""The fleet MILP (DESIGN.md §4): a pure builder, FleetProblem in, ConcreteModel out.

Index sets
    U   candidate units (planner/candidates.py), each of one class j(u)
    C   chip types used by some unit;  S = {prefill, decode_attention, decode_ffn}
Variables
    x[u] ∈ ℤ≥0   copies of unit u bought          n[c] ∈ ℤ≥0   chips of type c bought
    r[c] ∈ ℤ≥0   whole systems of c (sold by system)   y[s,c] ∈ {0,1}  stage s runs on chip c
    z[c] ∈ {0,1} chip type c used (fixed cost)          α ≥ 0   served share of demand (throughput objective)
    b[c], k[c] ∈ ℤ≥0  chips of c bought new / kept from the owned stock (only when chips are owned; else b ≡ n)
    s[u,j] ≥ 0   k tokens/s of length bucket j that the copies of shared unit u serve
Units: throughput k tokens/s, power kW, cost USD/hour (capex objective: M USD).

Each relaxable family (formulations/families.py) has a `relax_<family>(m, p)` beside its
`add_<family>`: it swaps the hard row for one with a non-negative slack and returns the slack's
penalty scaled by the right-hand side (Calliope's `ensure_feasibility`). formulations/elastic.py
applies them, in the registry's order, to diagnose an infeasible case.
"""
from __future__ import annotations

import pyomo.environ as pyo

from planner import packing
from planner.problem import FleetProblem


def build_model(p: FleetProblem) -> pyo.ConcreteModel:
    """The whole MILP; reads like a table of contents."""
    m = pyo.ConcreteModel(name=f"fleet[{p.case.name}]")
    add_variables(m, p)
    add_throughput(m, p)
    add_prefill(m, p)
    add_slices(m, p)
    add_sharing(m, p)
    add_chip_count(m, p)
    add_systems(m, p)
    add_spares(m, p)
    add_packing(m, p)
    add_owned(m, p)
    add_power(m, p)
    add_capex(m, p)
    add_supply(m, p)
    add_assignment(m, p)
    add_fixed_cost(m, p)
    set_objective(m, p)
    return m


def add_variables(m, p: FleetProblem) -> None:
    """x, n, r, y, z, α with data-derived bounds (x[u] ≤ unit_max[u] when finite)."""
    m.U = pyo.Set(initialize=p.unit_ids, doc="candidate units")
    m.C = pyo.Set(initialize=p.chips, doc="chip types")
    m.SC = pyo.Set(initialize=sorted({sc for st in p.unit_stages.values() for sc in st}), dimen=2,
                   doc="(stage, chip) pairs some unit uses")
    m.J = pyo.Set(initialize=p.classes, doc="traffic classes")

    def x_bounds(_, u):
        return (0, p.unit_max[u])  # None: no budget bounds it (throughput objective)

    m.x = pyo.Var(m.U, within=pyo.NonNegativeIntegers, bounds=x_bounds, doc="copies of unit u")
    m.n = pyo.Var(m.C, within=pyo.NonNegativeIntegers, doc="chips bought of type c")
    m.y = pyo.Var(m.SC, within=pyo.Binary, doc="stage s may run on chip c")
    m.alpha = pyo.Var(within=pyo.NonNegativeReals, bounds=(0, None), doc="served share of demand")
    m.S = pyo.Set(initialize=[(u, j) for u, sv in sorted(p.unit_serves.items()) for j in sv], dimen=2,
                  doc="(shared unit, bucket it may serve)")
    m.share = pyo.Var(m.S, within=pyo.NonNegativeReals, doc="bucket j's k tok/s on shared unit u")
    if p.objective != "throughput":
        m.alpha.fix(1.0)


def add_throughput(m, p: FleetProblem) -> None:
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


DEMAND_WEIGHT = 1e3
"""A demand shortfall weighs 1000× a budget overrun of the same share: demand is the target; budgets
are what the answer should stretch first ("power short by 3.2 MW")."""


def relax_throughput(m, p: FleetProblem):
    """a_j + d_j + short_j ≥ demand_j  ∀ j (and each hourly slice's share of short_j)   [k tok/s];
    penalty DEMAND_WEIGHT · Σ_j short_j / demand_j."""
    m.short = pyo.Var(m.J, within=pyo.NonNegativeReals, doc="unmet demand [k tok/s]")
    m.throughput.deactivate()
    m.throughput_elastic = pyo.Constraint(m.J, rule=lambda m, j: m.served_agg[j] + m.served_dis[j] + m.short[j]
                                          >= p.demand_ktok_s[j])
    penalty = DEMAND_WEIGHT * sum(m.short[j] / p.demand_ktok_s[j] for j in m.J)
    if m.component("slice_throughput") is not None:  # the same shortfall, scaled to each slice's share of the peak
        m.slice_throughput.deactivate()
        m.slice_throughput_elastic = pyo.Constraint(m.J, m.H, rule=lambda m, j, h: m.sh_agg[j, h] + m.sh_dis[j, h]
                                                    + m.short[j] * p.slice_demand_ktok_s[j, h] / p.demand_ktok_s[j]
                                                    >= p.slice_demand_ktok_s[j, h])
    return penalty


def add_prefill(m, p: FleetProblem) -> None:
    """Σ_{u ∈ P_j} cap_u · x_u ≥ (ISL/OSL)_j · d_j   ∀ j   [k input tokens/s]: prefill for the demand
    the disaggregated decode serves (not for its spare capacity); cap_u already holds the utilisation
    the TTFT target allows. Aggregated units prefill on their own chips."""
    pools = {j: p.units_of(j, "prefill") for j in p.classes}
    shared = {j: p.shared_of(j, "prefill") for j in p.classes}
    m.prefill = pyo.Constraint(m.J, rule=lambda m, j: sum(p.unit_prefill_ktok_s[u] * m.x[u] for u in pools[j])
                               + sum(m.share[u, j] for u in shared[j])
                               >= p.isl_per_osl[j] * m.served_dis[j], doc="prefill capacity ≥ input tokens")


def add_slices(m, p: FleetProblem) -> None:
    """Hourly slices h ∈ H = {0 … 23} (a daily demand profile or time-of-use prices): the fleet x is
    bought once; each slice runs xr_{u,h} ≤ x_u of it:
        Σ_{u ∈ A_j} tput_u·xr_{u,h} ≥ a_{j,h};  Σ_{u ∈ D_j} tput_u·xr_{u,h} ≥ d_{j,h};  a_{j,h} + d_{j,h} ≥ α·demand_{j,h}
        Σ_{u ∈ P_j} cap_u·xr_{u,h} ≥ (ISL/OSL)_j·d_{j,h}     ∀ j, h   [k tok/s]
    The peak slice sizes x through xr ≤ x (add_throughput's constraints at the peak are then implied).
    A shared unit u (length buckets) serves shs_{u,j,h} of bucket j in slice h with Σ_j shs_{u,j,h}/cap_{u,j} ≤ xr_{u,h}.
    Energy is priced per slice in set_objective: running chips at power_kw, the rest of n at idle power."""
    if not p.slices:
        return
    m.H = pyo.Set(initialize=p.slices, doc="hourly slices")
    m.xr = pyo.Var(m.U, m.H, within=pyo.NonNegativeReals, doc="copies of unit u running in slice h (hour-average)")
    m.run_le_bought = pyo.Constraint(m.U, m.H, rule=lambda m, u, h: m.xr[u, h] <= m.x[u], doc="runs what is bought")
    agg = {j: p.units_of(j, "aggregated") for j in p.classes}
    dec = {j: p.units_of(j, "decode") for j in p.classes}
    pre = {j: p.units_of(j, "prefill") for j in p.classes}
    m.sh_agg = pyo.Var(m.J, m.H, within=pyo.NonNegativeReals, doc="slice demand served aggregated")
    m.sh_dis = pyo.Var(m.J, m.H, within=pyo.NonNegativeReals, doc="slice demand served disaggregated")
    # shared units (length buckets, add_sharing) split each slice's running copies between their buckets
    shared = {(j, k): p.shared_of(j, k) for j in p.classes for k in ("aggregated", "decode", "prefill")}
    m.shs = pyo.Var(m.S, m.H, within=pyo.NonNegativeReals, doc="bucket j's k tok/s on shared unit u in slice h")
    if p.unit_serves:
        m.slice_sharing = pyo.Constraint(sorted(p.unit_serves), m.H, rule=lambda m, u, h: sum(
            m.shs[u, j, h] / cap for j, cap in p.unit_serves[u].items()) <= m.xr[u, h],
            doc="a shared unit's running time split between its buckets")

    def on_shared(m, j, kind, h):
        return sum(m.shs[u, j, h] for u in shared[j, kind])

    m.slice_agg = pyo.Constraint(m.J, m.H, rule=lambda m, j, h: sum(p.unit_tput_ktok_s[u] * m.xr[u, h] for u in agg[j])
                                 + on_shared(m, j, "aggregated", h) >= m.sh_agg[j, h])
    m.slice_dis = pyo.Constraint(m.J, m.H, rule=lambda m, j, h: sum(p.unit_tput_ktok_s[u] * m.xr[u, h] for u in dec[j])
                                 + on_shared(m, j, "decode", h) >= m.sh_dis[j, h])
    m.slice_throughput = pyo.Constraint(m.J, m.H, rule=lambda m, j, h: m.sh_agg[j, h] + m.sh_dis[j, h]
                                        >= m.alpha * p.slice_demand_ktok_s[j, h], doc="slice throughput ≥ slice demand")
    m.slice_prefill = pyo.Constraint(m.J, m.H, rule=lambda m, j, h: sum(
        p.unit_prefill_ktok_s[u] * m.xr[u, h] for u in pre[j]) + on_shared(m, j, "prefill", h)
        >= p.isl_per_osl[j] * m.sh_dis[j, h])


def slice_energy_usd_per_hour(m, p: FleetProblem):
    """(1/|H|)·Σ_h price_h·PUE·[Σ_c idle_c·n_c + Σ_u Σ_c chips_{u,c}·(power_c − idle_c)·xr_{u,h}]   [USD/h]:
    the day's mean energy bill; a bought chip that runs no unit draws idle power, a retired one nothing."""
    idle = sum(p.chip_idle_kw[c] * m.n[c] for c in m.C)
    delta = {u: sum(cnt * (p.chip_power_kw[c] - p.chip_idle_kw[c]) for c, cnt in p.unit_chips[u].items()) for u in p.unit_ids}
    return sum(p.slice_price_usd_per_kwh[h] * p.pue * (idle + sum(delta[u] * m.xr[u, h] for u in m.U))
               for h in m.H) / len(p.slices)


def add_sharing(m, p: FleetProblem) -> None:
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


def add_chip_count(m, p: FleetProblem) -> None:
    """n_c ≥ Σ_u chips_{u,c} · x_u   ∀ c   [chips]."""
    users: dict[str, list[tuple[int, int]]] = {c: [] for c in p.chips}
    for u, counts in p.unit_chips.items():
        for c, cnt in counts.items():
            users[c].append((u, cnt))
    m.chip_count = pyo.Constraint(m.C, rule=lambda m, c: m.n[c] >= sum(cnt * m.x[u] for u, cnt in users[c]),
                                  doc="chips bought cover the units")


def add_spares(m, p: FleetProblem) -> None:
    """Spare capacity per group (planner/spares.py states the failure model), N working + k spare:
      units on chips not sold by system: s_u ≥ f·x_u;  s_u ≥ Σ_t δ_{u,t};  x_u ≤ N_{u,t} − 1 + (M_u − N_{u,t} + 1)·δ_{u,t}
      racks of chip c sold by system:     S_c·w_c ≥ Σ_u chips_{u,c}·x_u;  n_c = S_c·(w_c + sr_c);  sr_c ≥ f·w_c;
                                          sr_c ≥ Σ_t δ_{c,t};  w_c ≤ N_{c,t} − 1 + (W_c − N_{c,t} + 1)·δ_{c,t}
    [units, systems]. N_t are the thresholds of the binomial spares step function k(N) (k(N) = #{t: N_t ≤ N}),
    so Σ_t δ_t ≥ k(x) exactly; M_u, W_c bound the working copies demand can need (data-derived, budgets
    left out so the elastic model may exceed a budget).
    Spare copies take chips like working ones: n_c ≥ Σ_u chips_{u,c}·(x_u + s_u) over the unit's chips not
    sold by system (spares are installed, powered and inside the power budget, ready to take over)."""
    if not (p.spare_fraction > 0 or p.availability is not None):
        return
    f = p.spare_fraction
    US = sorted(p.unit_spare_chips)
    m.US = pyo.Set(initialize=US, doc="units with chips not sold by system")
    m.s = pyo.Var(m.US, within=pyo.NonNegativeIntegers, doc="spare copies of unit u")
    m.spare_share = pyo.Constraint(m.US, rule=lambda m, u: m.s[u] >= f * m.x[u] if f > 0 else pyo.Constraint.Skip,
                                   doc="spares ≥ spare_fraction · working copies")
    steps = [(u, t) for u in US for t in range(len(p.unit_spare_steps.get(u, [])))]
    m.dU = pyo.Var(steps, within=pyo.Binary, doc="unit u has passed spare threshold t")
    m.unit_step = pyo.Constraint(steps, rule=lambda m, u, t: m.x[u] <= p.unit_spare_steps[u][t] - 1
                                 + (p.spare_max[u] - p.unit_spare_steps[u][t] + 1) * m.dU[u, t], doc="threshold passed")
    big_m_links(m).append((m.unit_step, lambda k: m.dU[k]))
    m.unit_avail = pyo.Constraint(US, rule=lambda m, u: m.s[u] >= sum(m.dU[u, t] for t in range(
        len(p.unit_spare_steps[u]))) if p.unit_spare_steps.get(u) else pyo.Constraint.Skip, doc="spares ≥ k_u(x_u)")
    holders: dict[str, list[tuple[int, int]]] = {}
    for u in US:
        for c, cnt in p.unit_spare_chips[u].items():
            holders.setdefault(c, []).append((u, cnt))
    m.spare_chips = pyo.Constraint(sorted(holders), rule=lambda m, c: m.n[c] >= sum(
        cnt * (m.x[u] + m.s[u]) for u, cnt in holders[c]) + sum(
        cnt * m.x[u] for u, counts in p.unit_chips.items() for cc, cnt in counts.items()
        if cc == c and u not in p.unit_spare_chips), doc="chips cover working and spare copies")
    R = sorted(p.rack_down)
    if not R:
        return
    users = {c: [(u, counts[c]) for u, counts in p.unit_chips.items() if c in counts] for c in R}
    m.RS = pyo.Set(initialize=R, doc="chips sold by system with spares")
    m.w = pyo.Var(m.RS, within=pyo.NonNegativeIntegers, bounds=lambda _, c: (0, p.rack_max[c]), doc="working systems")
    m.sr = pyo.Var(m.RS, within=pyo.NonNegativeIntegers, doc="spare systems")
    m.rack_work = pyo.Constraint(m.RS, rule=lambda m, c: p.system_size[c] * m.w[c] >= sum(
        cnt * m.x[u] for u, cnt in users[c]), doc="working systems hold the units")
    m.rack_total = pyo.Constraint(m.RS, rule=lambda m, c: m.n[c] == p.system_size[c] * (m.w[c] + m.sr[c]),
                                  doc="chips = working + spare systems")
    m.rack_share = pyo.Constraint(m.RS, rule=lambda m, c: m.sr[c] >= f * m.w[c] if f > 0 else pyo.Constraint.Skip,
                                  doc="spare systems ≥ spare_fraction · working")
    rsteps = [(c, t) for c in R for t in range(len(p.rack_spare_steps.get(c, [])))]
    m.dR = pyo.Var(rsteps, within=pyo.Binary, doc="chip c's systems passed spare threshold t")
    m.rack_step = pyo.Constraint(rsteps, rule=lambda m, c, t: m.w[c] <= p.rack_spare_steps[c][t] - 1
                                 + (p.rack_max[c] - p.rack_spare_steps[c][t] + 1) * m.dR[c, t], doc="threshold passed")
    big_m_links(m).append((m.rack_step, lambda k: m.dR[k]))
    m.rack_avail = pyo.Constraint(m.RS, rule=lambda m, c: m.sr[c] >= sum(m.dR[c, t] for t in range(
        len(p.rack_spare_steps[c]))) if p.rack_spare_steps.get(c) else pyo.Constraint.Skip, doc="spare systems ≥ k_c(w_c)")


def add_systems(m, p: FleetProblem) -> None:
    """n_c = size_c · r_c   ∀ c bought in whole systems (72-GPU racks, 8-GPU boards, 256-LPU LPX racks)."""
    if not p.system_size:
        return
    m.R = pyo.Set(initialize=sorted(p.system_size))
    m.r = pyo.Var(m.R, within=pyo.NonNegativeIntegers, doc="whole systems bought")
    m.systems = pyo.Constraint(m.R, rule=lambda m, c: m.n[c] == p.system_size[c] * m.r[c],
                               doc="whole systems")


def _copies_holding(m, p: FleetProblem, u: int, c: str):
    """Copies of unit u whose groups on chip c need room in c's systems: working copies, plus spare
    copies where u keeps spare copies on c (rack-scale chips keep spare systems instead)."""
    if m.component("s") is not None and u in p.unit_spare_chips and c in p.unit_spare_chips[u]:
        return m.x[u] + m.s[u]
    return m.x[u]


def add_packing(m, p: FleetProblem) -> None:
    """Every group fits the systems of its chip (planner/packing.py), ∀ c bought in systems of S_c:
        d_c = Σ_{(u,g): g > S_c} ⌈g/S_c⌉ · k_{u}                     systems wide groups take whole
        chain:    Σ_{(u,g): s_i ≤ g ≤ S_c} g · k_u ≤ slot_{c,i} · (R_c − d_c)   ∀ levels s_i
        patterns: Σ_π q_{c,π} ≤ R_c − d_c;  Σ_π a_{π,s} · q_{c,π} ≥ Σ_{(u,g): g = s} k_u   ∀ sizes s
    [groups, systems]; k_u = copies holding groups on c (working + spare copies), R_c = r_c, or the
    working systems w_c of a rack-scale chip with spare systems. Exact (the chain condition is first-
    fit-decreasing's, optimal for divisible sizes; patterns enumerate every maximal system)."""
    if not p.system_size:
        return
    holders: dict[str, list[tuple[int, int]]] = {c: [] for c in p.system_size}
    for u, groups in p.unit_groups.items():
        for c, g in groups:
            if c in holders:
                holders[c].append((u, g))
    C = sorted(c for c, hs in holders.items() if hs)

    def room(m, c):
        size = p.system_size[c]
        total = m.w[c] if m.component("RS") is not None and c in m.RS else m.r[c]
        wide = sum(packing.dedicated_systems(g, size) * _copies_holding(m, p, u, c) for u, g in holders[c] if g > size)
        return total - wide

    rows = [(c, i) for c in C for i in range(len(p.pack_levels.get(c, [])))]
    m.pack_chain = pyo.Constraint(rows, rule=lambda m, c, i: sum(
        g * _copies_holding(m, p, u, c) for u, g in holders[c] if p.pack_levels[c][i][0] <= g <= p.system_size[c])
        <= p.pack_levels[c][i][1] * room(m, c), doc="groups of size ≥ s_i fit the systems' s_i-slots")
    m.pack_wide = pyo.Constraint(C, rule=lambda m, c: room(m, c) >= 0, doc="wide groups take whole systems")
    P = [(c, k) for c in C for k in range(len(p.pack_patterns.get(c, [])))]
    if not P:
        return
    m.q = pyo.Var(P, within=pyo.NonNegativeIntegers, doc="systems of chip c packed as pattern k")
    PC = sorted({c for c, _ in P})
    m.pack_patterns = pyo.Constraint(PC, rule=lambda m, c: sum(m.q[c, k] for k in range(len(p.pack_patterns[c])))
                                     <= room(m, c), doc="patterned systems within the systems bought")
    sizes = [(c, g) for c in PC for g in sorted({g for _, g in holders[c] if g <= p.system_size[c]})]
    m.pack_sizes = pyo.Constraint(sizes, rule=lambda m, c, g: sum(
        pat.get(g, 0) * m.q[c, k] for k, pat in enumerate(p.pack_patterns[c]))
        >= sum(_copies_holding(m, p, u, c) for u, gg in holders[c] if gg == g), doc="pattern slots hold the groups")


def add_owned(m, p: FleetProblem) -> None:
    """n_c = b_c + k_c,  0 ≤ k_c ≤ owned_c  ∀ c   [chips];  k_c = size_c · rk_c for chips sold by system;
    b_c = 0 for chips only owned (not in fleet.chips).
    Chips in service n_c are the new ones b_c plus the owned ones kept k_c; owned_c − k_c are retired:
    they draw no power and cost nothing (capex is sunk, no resale value is counted). Capex, its budget,
    supply caps and fixed platform costs apply to b_c only; power and running cost to all of n_c."""
    if not p.owned and not p.no_buy:
        return
    m.b = pyo.Var(m.C, within=pyo.NonNegativeIntegers, doc="chips bought new")
    m.O = pyo.Set(initialize=sorted(p.owned), doc="chip types owned")
    m.k = pyo.Var(m.O, within=pyo.NonNegativeIntegers, bounds=lambda _, c: (0, p.owned[c]), doc="owned chips kept")
    for c in p.no_buy:
        m.b[c].fix(0)
    m.fleet_split = pyo.Constraint(m.C, rule=lambda m, c: m.n[c] == m.b[c] + (m.k[c] if c in p.owned else 0),
                                   doc="chips in service = bought + kept")
    whole = sorted(c for c in p.owned if c in p.system_size)
    if whole:
        m.rk = pyo.Var(whole, within=pyo.NonNegativeIntegers, doc="owned systems kept")
        m.owned_systems = pyo.Constraint(whole, rule=lambda m, c: m.k[c] == p.system_size[c] * m.rk[c],
                                         doc="owned chips kept in whole systems")


def bought(m, c):
    """Chips of type c bought new (n_c when nothing is owned)."""
    return m.b[c] if hasattr(m, "b") else m.n[c]


def capex_musd(m, p: FleetProblem):
    return sum(p.chip_price_musd[c] * bought(m, c) for c in m.C)


def tco_usd_per_hour(m, p: FleetProblem):
    """Σ_c capex_c·b_c + running_c·n_c + Σ fixed_c·z_c   [USD/h]: amortised price on new chips only
    (with slices, running_c·n_c becomes facility_c·n_c + slice_energy_usd_per_hour)."""
    fixed = sum(p.fixed_cost_usd_per_hour[c] * m.z[c] for c in m.F) if hasattr(m, "F") else 0
    if p.slices:  # energy priced per slice on running chips; the facility share on every chip in service
        return (sum(p.chip_capex_usd_per_hour[c] * bought(m, c) + p.chip_facility_usd_per_hour[c] * m.n[c] for c in m.C)
                + slice_energy_usd_per_hour(m, p) + fixed)
    return (sum(p.chip_capex_usd_per_hour[c] * bought(m, c) + p.chip_running_usd_per_hour[c] * m.n[c] for c in m.C)
            + fixed)


def running_usd_per_hour(m, p: FleetProblem):
    """Σ_c running_c·n_c   [USD/h] (with slices: Σ_c facility_c·n_c + slice_energy_usd_per_hour): what the
    chips in service cost beyond their price; a roadmap (formulations/roadmap.py) prices each period by it."""
    if p.slices:
        return sum(p.chip_facility_usd_per_hour[c] * m.n[c] for c in m.C) + slice_energy_usd_per_hour(m, p)
    return sum(p.chip_running_usd_per_hour[c] * m.n[c] for c in m.C)


def site_power_kw(m, p: FleetProblem):
    return p.pue * sum(p.chip_power_kw[c] * m.n[c] for c in m.C)


def add_power(m, p: FleetProblem) -> None:
    """PUE · Σ_c power_c · n_c ≤ power budget   [kW at the site meter]."""
    if p.power_kw_budget is None:
        return
    m.power = pyo.Constraint(expr=site_power_kw(m, p) <= p.power_kw_budget, doc="site power budget")


def relax_power(m, p: FleetProblem):
    """PUE · Σ_c power_c · n_c − over_power ≤ budget   [kW]; penalty over_power / budget."""
    m.power.deactivate()
    m.over_power = pyo.Var(within=pyo.NonNegativeReals, doc="power over budget [kW]")
    m.power_elastic = pyo.Constraint(expr=site_power_kw(m, p) - m.over_power <= p.power_kw_budget)
    return m.over_power / p.power_kw_budget


def add_capex(m, p: FleetProblem) -> None:
    """Σ_c price_c · b_c ≤ capex budget   [M USD] (b = chips bought new; owned chips are sunk)."""
    if p.capex_usd_budget is None:
        return
    m.capex = pyo.Constraint(expr=capex_musd(m, p) <= p.capex_musd_budget, doc="capex budget")


def relax_capex(m, p: FleetProblem):
    """Σ_c price_c · b_c − over_capex ≤ budget   [M USD]; penalty over_capex / budget."""
    m.capex.deactivate()
    m.over_capex = pyo.Var(within=pyo.NonNegativeReals, doc="capex over budget [M USD]")
    m.capex_elastic = pyo.Constraint(expr=capex_musd(m, p) - m.over_capex <= p.capex_musd_budget)
    return m.over_capex / p.capex_musd_budget


def add_supply(m, p: FleetProblem) -> None:
    """b_c ≤ supply cap_c   ∀ c with a cap   [chips bought new]."""
    if not p.supply:
        return
    m.supply = pyo.Constraint(sorted(p.supply), rule=lambda m, c: bought(m, c) <= p.supply[c], doc="supply cap")


def relax_supply(m, p: FleetProblem):
    """b_c − over_supply_c ≤ cap_c  ∀ c with a cap   [chips]; penalty Σ_c over_supply_c / max(cap_c, 1)."""
    m.supply.deactivate()
    S = sorted(p.supply)
    m.over_supply = pyo.Var(S, within=pyo.NonNegativeReals, doc="chips over supply cap")
    m.supply_elastic = pyo.Constraint(S, rule=lambda m, c: bought(m, c) - m.over_supply[c] <= p.supply[c])
    return sum(m.over_supply[c] / max(p.supply[c], 1) for c in S)


RELAX = {"throughput": relax_throughput, "power": relax_power, "capex": relax_capex, "supply": relax_supply}
"""Family name (formulations/families.py) → its relaxation."""


def big_m_links(m) -> list:
    """(row component, index → its binary) of every big-M row: with its binary at 1 such a row is only
    a bound derived from the budgets (M), which must not take a budget's dual in the LP behind the
    shadow prices (planner/solve.py relaxes it there)."""
    if not hasattr(m, "_big_m_links"):
        object.__setattr__(m, "_big_m_links", [])
    return m._big_m_links


def add_assignment(m, p: FleetProblem) -> None:
    """x_u ≤ M_u · y_{s,c}  ∀ u, (s,c) ∈ stages(u);  Σ_c y_{s,c} ≤ K  ∀ s   (K = max chip types per stage).
    M_u is the unit's own data-derived bound (demand / its throughput, or what the budgets allow);
    when no bound exists (no limit on a unit type) the link is skipped and y is free to follow."""
    if p.max_types_per_stage is None:
        m.y.fix(1)
        return
    pairs = [(u, s, c) for u in p.unit_ids for (s, c) in p.unit_stages[u] if p.unit_max[u] is not None]
    m.assign = pyo.Constraint(range(len(pairs)), rule=lambda m, i: m.x[pairs[i][0]]
                              <= p.unit_max[pairs[i][0]] * m.y[pairs[i][1], pairs[i][2]], doc="unit needs its stage chips")
    big_m_links(m).append((m.assign, lambda i: m.y[pairs[i][1], pairs[i][2]]))
    stages = sorted({s for s, _ in m.SC})
    m.types_per_stage = pyo.Constraint(stages, rule=lambda m, s: sum(m.y[s2, c] for (s2, c) in m.SC if s2 == s)
                                       <= p.max_types_per_stage, doc="chip types per stage")


def relax_unit_bounds(m, p: FleetProblem) -> None:
    """x_u unbounded and x_u ≤ M'_u · y_{s,c} with M'_u from demand alone (problem.elastic_unit_max):
    the unit bounds came from the budgets, which an elastic model may exceed."""
    for u in p.unit_ids:
        m.x[u].setub(None)
    if m.component("assign") is None:
        return
    m.assign.deactivate()
    pairs = [(u, s, c) for u in p.unit_ids for (s, c) in p.unit_stages[u]]
    bigm = {u: p.elastic_unit_max(u) for u in p.unit_ids}
    m.assign_elastic = pyo.Constraint(range(len(pairs)), rule=lambda m, i: m.x[pairs[i][0]]
                                      <= bigm[pairs[i][0]] * m.y[pairs[i][1], pairs[i][2]])


def add_fixed_cost(m, p: FleetProblem) -> None:
    """b_c ≤ M_c · z_c  ∀ c with a fixed platform cost; M_c = Σ_u chips_{u,c} · M_u (or the supply cap).
    The platform cost comes with buying a chip type; an owned type has already paid it."""
    F = [c for c in p.chips if p.fixed_cost_usd_per_hour.get(c)]
    if not F:
        return
    m.F = pyo.Set(initialize=F)
    m.z = pyo.Var(m.F, within=pyo.Binary, doc="chip type used")
    m.fixed = pyo.Constraint(m.F, rule=lambda m, c: bought(m, c) <= p.fixed_cost_bigm[c] * m.z[c],
                             doc="fixed cost switch")
    big_m_links(m).append((m.fixed, lambda c: m.z[c]))


def set_objective(m, p: FleetProblem) -> None:
    """tco: tco_usd_per_hour [USD/h]; capex: Σ price·b [M USD]; power [kW]; throughput: max α."""
    if p.objective == "tco":
        m.obj = pyo.Objective(expr=tco_usd_per_hour(m, p), sense=pyo.minimize)
    elif p.objective == "capex":
        m.obj = pyo.Objective(expr=capex_musd(m, p), sense=pyo.minimize)
    elif p.objective == "power":
        m.obj = pyo.Objective(expr=site_power_kw(m, p), sense=pyo.minimize)
    else:  # planner/solve.py re-solves at the best α for the cheapest fleet that reaches it
        m.obj = pyo.Objective(expr=m.alpha, sense=pyo.maximize)
