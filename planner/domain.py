"""Frozen domain records: what a chip, a model, a traffic class and a case are.

Fields carry their units in their names (catalog units: GB, TB/s, TFLOPS, kW, USD, µs); the
performance model converts them to SI once (planner/performance.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Mapping, get_args

from .units import Precision

ChipClass = Literal["gpu", "asic", "sram", "mram", "prefill"]
CHIP_CLASSES: tuple[ChipClass, ...] = get_args(ChipClass)
ON_CHIP_MEMORY_CLASSES = frozenset({"sram", "mram"})
Stage = Literal["prefill", "decode_attention", "decode_ffn", "decode_draft"]
STAGES: tuple[Stage, ...] = get_args(Stage)
Objective = Literal["tco", "capex", "power", "throughput"]
"""What the MILP minimises (throughput: maximises the served share of demand, then minimises TCO)."""
CONFIDENCES = ("vendor-spec", "reported", "estimate", "default", "calibrated", "user")


@dataclass(frozen=True)
class Provenance:
    """Where one figure comes from."""

    src: str
    cite: str
    date: str
    conf: str
    note: str = ""


@dataclass(frozen=True)
class Chip:
    """One accelerator, with all-in power and price per chip (its share of the system)."""

    id: str
    name: str
    vendor: str
    chip_class: ChipClass
    system_name: str
    chips_per_system: int
    sold_by_system: bool
    mem_gb: float
    mem_bw_tbs: float
    power_kw: float
    price_usd: float
    scaleup_domain_chips: int
    scaleup_bw_gbs: float
    scaleout_bw_gbs: float
    bw_eff: float
    flop_eff: float
    t_layer_us: float
    hop_latency_us: float
    bf16_tflops: float = 0.0
    fp8_tflops: float = 0.0
    fp4_tflops: float = 0.0
    # behaviour groups (catalogs/behaviour.toml) the terms above and below were resolved from
    arch: str = ""
    fabric: str = ""
    software: str = ""
    kv_bw_eff: float = 0.0  # achieved fraction of memory bandwidth reading KV (attention kernels); 0 = bw_eff
    m_half_tokens: float = 0.0  # GEMM rows (tokens) at which FLOP efficiency is half its peak; 0 = flat
    t_step_us: float = 0.0  # per-step serving-stack overhead (scheduler, sampling, launch)
    t_seq_us: float = 0.0  # per-sequence, per-step host overhead (scheduling, sampling, detokenising)
    fp4_eff: float = 1.0  # multiplier on bw_eff and flop_eff when serving fp4 weights
    moe_layer_extra: float = 0.0  # extra fixed time of an MoE layer, in units of t_layer_us
    mla_layer_extra: float = 0.0  # extra fixed time of an MLA attention layer, in units of t_layer_us
    link_eff: float = 1.0  # achieved fraction of scale-up link bandwidth in collectives
    scaleout_alpha_us: float = -1.0  # latency of one scale-out message; < 0 = hop_latency_us
    topology: str = ""  # switch | mesh | direct; "" = switch for gpu/prefill, direct otherwise
    annual_failure_rate: float = 0.0  # failures per chip-year; 0 = the economics default
    mttr_hours: float = 0.0  # repair time; 0 = the economics default
    available_year: float = 0.0  # first year it can be bought in volume (plans and roadmaps); 0 = always
    sold: bool = True  # False: the vendor does not sell it (rents it in its own cloud only)
    aliases: tuple[str, ...] = ()
    provenance: Mapping[str, Provenance] = field(default_factory=dict, compare=False, repr=False)

    @property
    def fabric_topology(self) -> str:
        return self.topology or ("switch" if self.chip_class in ("gpu", "prefill") else "direct")

    def tflops(self, precision: str) -> float:
        """Dense TFLOPS at `precision`; 0 when the chip cannot run it. A chip without fp4 units still
        serves fp4 weights weight-only: 4.5-bit reads dequantised into bf16 GEMMs (how vLLM's Marlin
        and Triton MoE kernels run MXFP4 GPT-OSS on Hopper and CDNA3), so at its bf16 rate."""
        value = float(getattr(self, f"{precision}_tflops"))
        if value == 0 and precision == "fp4":
            value = float(self.bf16_tflops)
        return value

    def supports(self, precision: str) -> bool:
        return self.tflops(precision) > 0

    @property
    def on_chip_memory(self) -> bool:
        return self.chip_class in ON_CHIP_MEMORY_CLASSES


@dataclass(frozen=True)
class Model:
    """A transformer's architecture numbers; sizes are derived in planner/modelspec.py."""

    id: str
    name: str
    attention: str
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    published_total_params_b: float
    published_active_params_b: float
    dense_ffn_layers: int = 0
    dense_intermediate: int = 0
    moe_layers: int = 0
    moe_intermediate: int = 0
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    tied_embeddings: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_dim: int = 0
    qk_rope_dim: int = 0
    v_head_dim: int = 0
    sliding_layers: int = 0
    sliding_window_tokens: int = 0
    aliases: tuple[str, ...] = ()
    provenance: Mapping[str, Provenance] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Economics:
    electricity_usd_per_kwh: float
    pue: float
    amortization_years: float
    facility_capex_usd_per_mw: float
    facility_amortization_years: float
    idle_power_fraction: float = 0.3  # a bought chip that runs no unit in a slice draws this share of power_kw
    annual_failure_rate: float = 0.173  # per chip-year, when the chip gives none (family default)
    mttr_hours: float = 72.0  # hours from failure to back in service, when the chip gives none
    electricity_usd_per_kwh_by_hour: tuple[float, ...] = ()  # 24 time-of-use prices; () = flat price
    discount_rate: float = 0.08  # per year, for a roadmap's net present value
    service_life_years: float = 6.0  # a roadmap retires chips at this age

    def price_at(self, hour: int) -> float:
        """Electricity price in slice `hour` (USD/kWh): the time-of-use price, else the flat one."""
        return self.electricity_usd_per_kwh_by_hour[hour] if self.electricity_usd_per_kwh_by_hour \
            else self.electricity_usd_per_kwh


@dataclass(frozen=True)
class Constraints:
    """Fleet-wide limits; None = no limit."""

    power_mw: float | None = None
    capex_usd: float | None = None
    max_chip_types_per_stage: int | None = None
    supply: Mapping[str, int] = field(default_factory=dict)
    fixed_cost_usd: Mapping[str, float] = field(default_factory=dict)
    spare_fraction: float = 0.0  # spare units per group: s ≥ spare_fraction · working units
    availability: float | None = None  # P(working capacity ≥ demand) per group, binomial over failure domains


@dataclass(frozen=True)
class TrafficClass:
    """One workload: a model at a precision, prompt/answer lengths, demand and service targets."""

    name: str
    model: str
    precision: Precision
    isl: int
    osl: int
    demand_tok_s: float
    min_speed_tok_s_user: float
    ttft_s: float
    kv_headroom: float = 0.1
    max_utilization: float = 0.9
    cached_isl: int = 0
    draft_model: str | None = None
    draft_tokens: int = 4
    accepted_tokens_per_step: float = 1.0
    mtp_tokens: int = 0  # tokens the model's own multi-token-prediction head drafts per step (0 = off)
    demand_profile: tuple[float, ...] = ()  # 24 hourly factors on demand_tok_s; () = flat

    def demand_at(self, hour: int) -> float:
        """Demanded output tok/s in hourly slice `hour`."""
        return self.demand_tok_s * (self.demand_profile[hour] if self.demand_profile else 1.0)

    @property
    def peak_demand_tok_s(self) -> float:
        return self.demand_tok_s * (max(self.demand_profile) if self.demand_profile else 1.0)
    # a length bucket of a class with a length distribution (planner/workload.py); "" = a plain class
    parent: str = ""
    request_share: float = 1.0  # share of the parent's requests
    token_share: float = 1.0  # share of the parent's output tokens (its demand is this share)
    ttft_required: bool = True  # False: beyond the parent's ttft_percentile (ttft_s is the tail bound)
    speed_required: bool = True  # False: beyond the parent's speed_percentile

    @property
    def new_isl(self) -> int:
        return max(self.isl - self.cached_isl, 1)


@dataclass(frozen=True)
class OwnedChips:
    """Chips already in the fleet: sunk capex, running cost only, retirable."""

    chip: str
    count: int
    age_years: float = 0.0


@dataclass(frozen=True)
class Shape:
    """A class given as a length distribution: its buckets (sub-classes, shortest first) and targets."""

    name: str
    buckets: tuple[str, ...]
    demand_tok_s: float
    min_speed_tok_s_user: float
    ttft_s: float
    ttft_percentile: float = 100.0
    speed_percentile: float = 100.0
    max_error: float = 0.0  # the bucketing's error bound (planner/workload.py)
    mean_pair_error: float = 0.0  # the same error had one mean pair stood for the whole class
    merge_buckets: bool = True  # units may serve a contiguous range of buckets
    merge_span: int = 0  # at most this many buckets per shared unit (0 = any range)
    source: str = ""  # trace path or "lengths"
    rows: int = 0


@dataclass(frozen=True)
class Fleet:
    """Which chips may be used (bought or owned), and optionally which chips may run each stage."""

    chips: tuple[str, ...]
    stages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    modes: tuple[str, ...] = ("aggregated", "disaggregated")
    owned: tuple[OwnedChips, ...] = ()
    buy: tuple[str, ...] | None = None  # chips that may be bought new; None = every chip in `chips`

    def owned_count(self, chip: str) -> int:
        return sum(o.count for o in self.owned if o.chip == chip)

    def buyable(self, chip: str) -> bool:
        return self.buy is None or chip in self.buy

    def allowed(self, stage: str) -> tuple[str, ...]:
        return tuple(self.stages.get(stage, self.chips))


@dataclass(frozen=True)
class Period:
    """One step of a multi-year roadmap ([[periods]]): its demand, budgets and prices.

    The period runs from `year` for `years` years; chips bought in it serve from its start."""

    year: float
    years: float
    demand_growth: Mapping[str, float] = field(default_factory=dict)  # class (as the case names it) → × demand_tok_s
    power_mw: float | None = None  # site power in this period (None = the case's constraints.power_mw)
    capex_usd: float | None = None  # chips bought in this period cost at most this (None = no limit)
    electricity_usd_per_kwh: float | None = None  # None = the case's economics
    supply: Mapping[str, int] | None = None  # chips that may be bought new in this period (None = constraints.supply)

    def growth(self, class_name: str) -> float:
        return self.demand_growth.get(class_name, self.demand_growth.get("*", 1.0))


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    economics: Economics
    constraints: Constraints
    fleet: Fleet
    classes: tuple[TrafficClass, ...]
    chips: Mapping[str, Chip]
    models: Mapping[str, Model]
    source: str = ""
    catalog_versions: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, object] = field(default_factory=dict)  # [options]: objective, year, allow_unavailable
    shapes: Mapping[str, Shape] = field(default_factory=dict)  # classes given as length distributions
    periods: tuple[Period, ...] = ()  # a multi-year roadmap ([[periods]]; planner/roadmap.py)

    @property
    def objective(self) -> Objective:
        """The objective the case's question asks for (its [options], else min TCO)."""
        return self.options.get("objective", "tco")


__all__ = [
    "Chip", "Model", "Economics", "Constraints", "TrafficClass", "Fleet", "OwnedChips", "Case", "Provenance", "Shape", "Period",
    "CHIP_CLASSES", "STAGES", "CONFIDENCES", "replace",
]
