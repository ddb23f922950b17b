"""The closed-form performance model (DESIGN.md §3), vectorised with numpy; no Pyomo here.

Units inside: SI (bytes, seconds, FLOP, bytes/s). Catalog units are converted once in `ChipSI`.

Decode step of a group serving B sequences at mean context c̄ = ISL + OSL/2, per part p ∈ {attn, ffn}:
    t_p = max(bytes_p / (n_p·BW·η_bw), FLOPs_p / (n_p·F·η_f)) + L·t_layer + comm_p
    bytes_attn = attention + LM-head weights + B·KV(c̄);  bytes_ffn = dense FFN + touched experts
    per-user speed = 1 / (t_attn + t_ffn + t_afd);  throughput = B · speed
Attention and FFN run one after the other (no micro-batch overlap): a conservative choice that
matches how co-located decode runs and under-counts AFD ping-pong by at most 2× in throughput.

Inside the scale-up domain a group pays one all-reduce after attention and after each dense FFN,
and an all-to-all dispatch + combine around each MoE layer (expert parallel); each collective costs
its ring transfer plus 2 hops through a switch (GPUs: NVLink/UALink) or log2(n) hops over direct
chip-to-chip links (SRAM chips, torus ASICs); groups larger than the domain are pipelined across domains (one scale-out hop per
stage per token). SRAM chips spread a model over hundreds of chips, so for them the fixed
per-layer time and the hop latency — not bandwidth — set the speed; both are calibrated.

Aggregated serving (prefill interleaved on the decode chips): request rate λ = B·v/OSL, prefill
takes the share f = λ·t_prefill, so v = (1 − f)/t_step, i.e. v = 1 / (t_step + B·t_prefill/OSL).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import modelspec as ms
from .domain import Chip, Model
from .units import ACT_BYTES, BYTES_PER_PARAM, GB, KV_BYTES_PER_ELEM, TB, TFLOPS, US

USABLE_MEM_FRAC = 0.9
"""Share of memory usable for weights + KV (runtime, activations and fragmentation take the rest)."""


@dataclass(frozen=True)
class ChipSI:
    """A chip's figures in SI units at one precision."""

    id: str
    mem_bytes: float
    bw: float
    flops: float
    bw_eff: float
    flop_eff: float
    t_layer: float
    hop: float
    link_bw: float  # per direction, bytes/s
    scaleout_bw: float
    domain: int
    switched: bool  # scale-up through a switch (NVLink/UALink): all-reduce latency ~2 hops
    power_kw: float
    price_usd: float

    @classmethod
    def of(cls, chip: Chip, precision: str) -> "ChipSI":
        return cls(id=chip.id, mem_bytes=chip.mem_gb * GB, bw=chip.mem_bw_tbs * TB,
                   flops=chip.tflops(precision) * TFLOPS, bw_eff=chip.bw_eff, flop_eff=chip.flop_eff,
                   t_layer=chip.t_layer_us * US, hop=chip.hop_latency_us * US,
                   link_bw=chip.scaleup_bw_gbs * GB / 2, scaleout_bw=chip.scaleout_bw_gbs * GB,
                   domain=chip.scaleup_domain_chips, switched=chip.chip_class in ("gpu", "prefill"),
                   power_kw=chip.power_kw, price_usd=chip.price_usd)


@dataclass(frozen=True)
class Workload:
    """A model at a precision with prompt/answer lengths — what the model needs per token."""

    model: Model
    precision: str
    isl: int
    osl: int
    cached_isl: int = 0  # prompt tokens already in a prefix cache: held as KV, not recomputed

    @property
    def new_isl(self) -> int:
        """Prompt tokens prefill must compute."""
        return max(self.isl - self.cached_isl, 1)

    @property
    def weight_bytes_per_param(self) -> float:
        return BYTES_PER_PARAM[self.precision]

    @property
    def kv_elem_bytes(self) -> float:
        return KV_BYTES_PER_ELEM[self.precision]

    @property
    def mean_context(self) -> float:
        return self.isl + self.osl / 2

    @property
    def max_context(self) -> float:
        return float(self.isl + self.osl)

    def kv_bytes_per_seq(self, context=None) -> np.ndarray:
        return ms.kv_bytes_per_seq(self.model, self.max_context if context is None else context,
                                   self.kv_elem_bytes)

    def attn_weight_bytes(self) -> float:
        """Stored on the attention side: attention layers + input and output embeddings."""
        return (ms.attention_params(self.model) + ms.embedding_params(self.model)) * self.weight_bytes_per_param

    def ffn_weight_bytes(self) -> float:
        return ms.ffn_total_params(self.model) * self.weight_bytes_per_param

    def weight_bytes(self) -> float:
        return self.attn_weight_bytes() + self.ffn_weight_bytes()


def _collective(c: ChipSI, n, msg_bytes):
    """One all-reduce or all-to-all among n chips: ring transfer + hop latency."""
    n_tp = np.minimum(np.asarray(n, dtype=float), c.domain)
    hops = 2.0 if c.switched else np.ceil(np.log2(np.maximum(n_tp, 1)))
    return np.where(n_tp > 1, 2 * (n_tp - 1) / n_tp * msg_bytes / c.link_bw + hops * c.hop, 0.0)


def _group_comm(c: ChipSI, n, tokens, m: Model, parts: str = "both"):
    """Per-step collectives of a group: an all-reduce after attention and after each dense FFN,
    an all-to-all dispatch and combine around each MoE layer (expert parallel), and one
    scale-out hop per pipeline stage boundary when the group spans several scale-up domains."""
    n = np.asarray(n, dtype=float)
    act = tokens * m.hidden * ACT_BYTES
    comm = 0.0
    if parts in ("both", "attn"):
        comm = comm + m.layers * _collective(c, n, act)
    if parts in ("both", "ffn"):
        comm = comm + m.dense_ffn_layers * _collective(c, n, act)
        comm = comm + m.moe_layers * 2 * _collective(c, n, act * max(m.experts_per_token, 1))
    stages = np.ceil(n / c.domain)
    return comm + (stages - 1) * (act / c.scaleout_bw + c.hop)


def _part_time(bytes_, flops, n, c: ChipSI):
    n = np.asarray(n, dtype=float)
    t_mem = bytes_ / (n * c.bw * c.bw_eff)
    t_cmp = flops / (n * c.flops * c.flop_eff) if c.flops > 0 else np.full_like(t_mem, np.inf)
    return t_mem, t_cmp


def decode(w: Workload, attn: ChipSI, n_attn, ffn: ChipSI | None = None, n_ffn=None, batch=1,
           tokens_per_seq: int = 1) -> dict:
    """Decode step of a group; arrays broadcast over (n_attn, n_ffn, batch).

    tokens_per_seq > 1 is a speculative verify step: every sequence scores that many tokens in one
    pass, so FLOPs, activations and touched experts scale with it while weight and KV reads do not.

    ffn=None (or the same chip id with n_ffn=None) means co-located decode on the n_attn chips.
    Returns SI arrays: step_s, speed_tok_s_user, throughput_tok_s, time parts, memory, fits, max_batch.
    """
    m = w.model
    colocated = ffn is None or (ffn.id == attn.id and n_ffn is None)
    ffn = attn if ffn is None else ffn
    n_attn = np.asarray(n_attn, dtype=float)
    n_ffn = n_attn if colocated or n_ffn is None else np.asarray(n_ffn, dtype=float)
    B = np.asarray(batch, dtype=float)
    T = B * tokens_per_seq  # tokens scored this step
    wb = w.weight_bytes_per_param

    attn_read = (ms.attention_params(m) + ms.lm_head_params(m)) * wb + B * w.kv_bytes_per_seq(w.mean_context)
    attn_flops = T * (2 * (ms.attention_params(m) + ms.lm_head_params(m))
                      + ms.attention_flops_per_token(m, w.mean_context))
    ffn_read = ms.ffn_params_read(m, T) * wb
    ffn_flops = T * 2 * ms.ffn_active_params(m)

    a_mem, a_cmp = _part_time(attn_read, attn_flops, n_attn, attn)
    f_mem, f_cmp = _part_time(ffn_read, ffn_flops, n_ffn, ffn)
    fixed = m.layers * (attn.t_layer + (0.0 if colocated else ffn.t_layer))
    if colocated:
        comm = _group_comm(attn, n_attn, T, m)
        afd = np.zeros_like(comm)
    else:
        comm = _group_comm(attn, n_attn, T, m, "attn") + _group_comm(ffn, n_ffn, T, m, "ffn")
        link = np.minimum(n_attn * attn.scaleout_bw, n_ffn * ffn.scaleout_bw)
        afd = m.layers * 2 * (T * m.hidden * ACT_BYTES / link + (attn.hop + ffn.hop) / 2)
    t_attn = np.maximum(a_mem, a_cmp)
    t_ffn = np.maximum(f_mem, f_cmp)
    step = t_attn + t_ffn + fixed + comm + afd

    kv_max = w.kv_bytes_per_seq()
    if colocated:
        cap = n_attn * attn.mem_bytes * USABLE_MEM_FRAC
        used = w.weight_bytes() + B * kv_max
        max_batch = np.floor((cap - w.weight_bytes()) / kv_max)
        cap_ffn = used_ffn = np.zeros_like(cap)
        fits = used <= cap
    else:
        cap = n_attn * attn.mem_bytes * USABLE_MEM_FRAC
        used = w.attn_weight_bytes() + B * kv_max
        cap_ffn = n_ffn * ffn.mem_bytes * USABLE_MEM_FRAC
        used_ffn = np.full_like(cap_ffn, w.ffn_weight_bytes())
        max_batch = np.where(cap_ffn >= used_ffn, np.floor((cap - w.attn_weight_bytes()) / kv_max), -1.0)
        fits = (used <= cap) & (used_ffn <= cap_ffn)

    mem_time = a_mem + f_mem
    cmp_time = a_cmp + f_cmp
    lat_time = fixed + comm + afd
    bound = np.where((lat_time >= mem_time) & (lat_time >= cmp_time), "latency",
                     np.where(cmp_time > mem_time, "compute", "memory"))
    speed = 1.0 / step
    return {
        "step_s": step, "speed_tok_s_user": speed, "throughput_tok_s": B * speed,
        "attention_s": t_attn, "ffn_s": t_ffn, "fixed_s": fixed + np.zeros_like(step),
        "comm_s": comm + afd, "afd_transfer_s": afd,
        "memory_used_bytes": used, "memory_capacity_bytes": cap,
        "ffn_memory_used_bytes": used_ffn, "ffn_memory_capacity_bytes": cap_ffn,
        "fits": fits, "max_batch": np.maximum(max_batch, -1), "bound": bound,
        "chips": n_attn + (0 if colocated else n_ffn),
    }


def prefill(w: Workload, c: ChipSI, n) -> dict:
    """One prompt on n chips: time, token capacity (new prompt tokens/s), whether it fits.

    With a cached prefix only the new tokens are computed; they attend to the whole context
    (causal attention over the new part plus new × cached pairs)."""
    m = w.model
    n = np.asarray(n, dtype=float)
    new = w.new_isl
    attn = ms.prefill_attention_flops(m, new) + new * ms.attention_flops_per_token(m, w.cached_isl) \
        if w.cached_isl else ms.prefill_attention_flops(m, w.isl)
    flops = 2 * ms.active_params(m) * new + attn
    weights_read = w.weight_bytes() if m.experts == 0 else (
        (ms.attention_params(m) + ms.lm_head_params(m) + ms.ffn_params_read(m, new)) * w.weight_bytes_per_param)
    t_mem, t_cmp = _part_time(weights_read + w.kv_bytes_per_seq(w.cached_isl) * (w.cached_isl > 0), flops, n, c)
    comm = _group_comm(c, n, new, m)
    t = np.maximum(t_mem, t_cmp) + m.layers * c.t_layer + comm
    cap = n * c.mem_bytes * USABLE_MEM_FRAC
    used = w.weight_bytes() + w.kv_bytes_per_seq(w.isl)
    return {"prefill_s": t, "tokens_per_s": new / t, "tokens_per_s_per_chip": new / t / n,
            "fits": used <= cap, "memory_used_bytes": used + np.zeros_like(cap), "memory_capacity_bytes": cap}


def kv_transfer_s(w: Workload, c: ChipSI, n) -> np.ndarray:
    """Moving one prompt's KV cache from the prefill chips to the decode side over scale-out."""
    return w.kv_bytes_per_seq(w.isl) / (np.asarray(n, dtype=float) * c.scaleout_bw)


def ttft_at_utilization(prefill_s, utilization, transfer_s=0.0):
    """M/D/1: wait = ρ/(2(1−ρ)) · service time; TTFT = wait + service + KV transfer."""
    rho = np.asarray(utilization, dtype=float)
    return prefill_s * (1 + rho / (2 * (1 - rho))) + transfer_s


def max_utilization_for_ttft(prefill_s, ttft_s, transfer_s=0.0, cap=0.9):
    """Largest ρ whose M/D/1 TTFT meets the target (inverse of ttft_at_utilization); ≤ 0 = never."""
    slack = (ttft_s - transfer_s) / prefill_s - 1.0
    rho = np.where(slack > 0, 2 * slack / (1 + 2 * np.maximum(slack, 0)), 0.0)
    return np.minimum(rho, cap)


def aggregated(w: Workload, c: ChipSI, n, batch) -> dict:
    """Prefill and decode interleaved on the same n chips (continuous batching, chunked prefill)."""
    d = decode(w, c, n, None, None, batch)
    p = prefill(w, c, n)
    B = np.asarray(batch, dtype=float)
    prefill_share = B * p["prefill_s"] / w.osl
    speed = 1.0 / (d["step_s"] + prefill_share)
    out = dict(d)
    out.update({"speed_tok_s_user": speed, "throughput_tok_s": B * speed,
                "prefill_fraction": prefill_share * speed, "prefill_s": p["prefill_s"] + np.zeros_like(speed),
                "ttft_s": p["prefill_s"] + d["step_s"]})
    return out


def speculative(w: Workload, target: ChipSI, n, draft_w: Workload, draft: ChipSI, n_draft, batch,
                draft_tokens: int, accepted_tokens: float) -> dict:
    """Speculative decoding: a draft model (e.g. on SRAM chips) proposes k tokens one by one, the
    target model verifies all k+1 positions in one pass; `accepted_tokens` (≥ 1, ≤ k+1) are emitted
    per round on average. speed = accepted / (k·t_draft + t_verify + 2 hops between the groups)."""
    v = decode(w, target, n, None, None, batch, tokens_per_seq=draft_tokens + 1)
    d = decode(draft_w, draft, n_draft, None, None, batch)
    handoff = 2 * (target.hop + draft.hop) / 2 if draft.id != target.id else 0.0
    round_s = draft_tokens * d["step_s"] + v["step_s"] + handoff
    speed = accepted_tokens / round_s
    B = np.asarray(batch, dtype=float)
    out = dict(v)
    out.update({"step_s": round_s, "speed_tok_s_user": speed, "throughput_tok_s": B * speed,
                "draft_s": draft_tokens * d["step_s"], "verify_s": v["step_s"],
                "fits": v["fits"] & d["fits"], "draft_fits": d["fits"]})
    return out
