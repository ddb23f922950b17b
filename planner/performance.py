"""The closed-form performance model (DESIGN.md §3), vectorised with numpy; no Pyomo here.

Units inside: SI (bytes, seconds, FLOP, bytes/s). Catalog units are converted once in `ChipSI`.

Decode of a group of n chips laid out as pp pipeline stages × tp chips (tensor/expert parallel),
serving B sequences in pp micro-batches at mean context c̄ = ISL + OSL/2. Per token cycle:
    t_p = max(bytes_p / (tp·BW·η_bw), FLOPs_p / (tp·F·η_f(M))) for p ∈ {attn, ffn}
    cycle = t_attn + t_ffn + L·t_layer + t_step + collectives + (pp−1)·stage hand-offs
    bytes_attn = attention + LM-head weights + (B/pp)·KV(c̄)·replication;  bytes_ffn = dense FFN +
    touched experts;  per-user speed = 1/cycle;  throughput = B · speed
Every stage sees every token in sequence, so bytes are divided by tp, never by n: pipelining buys
memory and concurrency, not per-user speed. η_f(M) = η_max·M/(M + M½) falls for the small GEMMs of
decode (M = tokens per step, per expert for MoE). Collectives are α + bytes/β per fabric: one α per
collective through a switch or full mesh (NVLink, UALink, Infinity Fabric), log2(width)·α over
direct chip-to-chip links (SRAM chips, torus ASICs), plus a hierarchical scale-out step when the
width exceeds the scale-up domain. Behaviour terms (η, M½, t_layer, α, link efficiency, t_step)
come from the chip's arch, fabric and software groups (catalogs/behaviour.toml), never per chip.
Attention and FFN run one after the other (no micro-batch overlap): a conservative choice that
matches how co-located decode runs and under-counts AFD ping-pong by at most 2× in throughput.

Aggregated serving (prefill interleaved on the decode chips): request rate λ = B·v/OSL, prefill
takes the share f = λ·t_prefill, so v = (1 − f)/t_step, i.e. v = 1 / (t_step + B·t_prefill/OSL).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import modelspec as ms
from .domain import Chip, Model
from .units import ACT_BYTES, BYTES_PER_PARAM, GB, KV_BYTES_PER_ELEM, TB, TFLOPS, US

USABLE_MEM_FRAC = 0.9
"""Share of memory usable for weights + KV (runtime, activations and fragmentation take the rest)."""


@dataclass(frozen=True)
class ChipSI:
    """A chip's figures in SI units at one precision, with its resolved behaviour terms."""

    id: str
    mem_bytes: float
    bw: float
    flops: float
    bw_eff: float
    flop_eff: float
    t_layer: float
    hop: float  # collective latency α: per collective (switch, mesh) or per hop (direct links)
    link_bw: float  # per direction, bytes/s
    scaleout_bw: float
    domain: int
    switched: bool  # switch or full mesh: a collective costs one α whatever the width
    power_kw: float
    price_usd: float
    m_half: float = 0.0  # GEMM rows at half the peak FLOP efficiency; 0 = flat
    t_step: float = 0.0  # per-step serving-stack overhead
    t_seq: float = 0.0  # per-sequence, per-step host overhead (scheduling, sampling, detokenising)
    scaleout_alpha: float = -1.0  # < 0: same as hop
    moe_layer_extra: float = 0.0  # extra fixed time of an MoE layer (router, top-k, dispatch, combine), × t_layer
    mla_layer_extra: float = 0.0  # extra fixed time of an MLA layer (latent projections), × t_layer
    on_chip: bool = False  # weights in on-chip SRAM/MRAM (pipelined by layer across many chips)
    kv_bw_eff: float = 0.0  # fraction of bandwidth attention kernels reach reading KV; 0 = bw_eff

    @classmethod
    def of(cls, chip: Chip, precision: str) -> "ChipSI":
        fmt = chip.fp4_eff if precision == "fp4" else 1.0  # block-scaled fp4 kernels reach less of the silicon
        return cls(id=chip.id, mem_bytes=chip.mem_gb * GB, bw=chip.mem_bw_tbs * TB,
                   flops=chip.tflops(precision) * TFLOPS, bw_eff=chip.bw_eff * fmt, flop_eff=chip.flop_eff * fmt,
                   t_layer=chip.t_layer_us * US, hop=chip.hop_latency_us * US,
                   link_bw=chip.scaleup_bw_gbs * GB / 2 * chip.link_eff, scaleout_bw=chip.scaleout_bw_gbs * GB,
                   domain=chip.scaleup_domain_chips, switched=chip.fabric_topology in ("switch", "mesh"),
                   power_kw=chip.power_kw, price_usd=chip.price_usd, m_half=chip.m_half_tokens,
                   t_step=chip.t_step_us * US, t_seq=chip.t_seq_us * US, moe_layer_extra=chip.moe_layer_extra,
                   mla_layer_extra=chip.mla_layer_extra,
                   scaleout_alpha=(chip.scaleout_alpha_us if chip.scaleout_alpha_us >= 0 else chip.hop_latency_us) * US,
                   on_chip=chip.on_chip_memory, kv_bw_eff=chip.kv_bw_eff * fmt if chip.kv_bw_eff else 0.0)

    @property
    def so_alpha(self) -> float:
        return self.scaleout_alpha if self.scaleout_alpha >= 0 else self.hop


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


def chips_to_hold(weight_bytes: float, c: ChipSI) -> int:
    """Fewest chips whose usable memory (USABLE_MEM_FRAC of it) holds `weight_bytes`: the smallest
    unit the candidate grid, the estimator, calibration and the diagnoses start from."""
    return max(1, math.ceil(weight_bytes / (c.mem_bytes * USABLE_MEM_FRAC)))


def _alpha(c: ChipSI, width) -> np.ndarray:
    """Latency of one collective among `width` chips of a scale-up domain."""
    width = np.asarray(width, dtype=float)
    if c.switched:
        return np.where(width > 1, c.hop, 0.0)
    return np.ceil(np.log2(np.maximum(width, 1))) * c.hop


def allreduce_s(c: ChipSI, n, msg_bytes) -> np.ndarray:
    """All-reduce of `msg_bytes` among n chips: α + ring bytes / β inside the scale-up domain, and
    for n wider than the domain a hierarchical step over scale-out (each chip all-reduces its
    1/d share with its peers in the other domains)."""
    n = np.asarray(n, dtype=float)
    d = np.minimum(n, c.domain)
    nodes = np.ceil(n / c.domain)
    intra = np.where(d > 1, _alpha(c, d) + 2 * (d - 1) / d * msg_bytes / c.link_bw, 0.0)
    inter = np.where(nodes > 1, c.so_alpha + 2 * (nodes - 1) / nodes * (msg_bytes / d) / c.scaleout_bw, 0.0)
    return intra + inter


def alltoall_s(c: ChipSI, n, sent_bytes) -> np.ndarray:
    """One expert-parallel dispatch (or combine) among n chips, each sending `sent_bytes`: the share
    for chips in its domain over scale-up links, the rest over scale-out."""
    n = np.asarray(n, dtype=float)
    d = np.minimum(n, c.domain)
    intra = np.where(d > 1, _alpha(c, d) + sent_bytes * (d - 1) / n / c.link_bw, 0.0)
    inter = np.where(n > d, c.so_alpha + sent_bytes * (n - d) / n / c.scaleout_bw, 0.0)
    return intra + inter


def p2p_s(c: ChipSI, msg_bytes, across_domains) -> np.ndarray:
    """One pipeline-stage hand-off of `msg_bytes` (scale-out when it leaves the domain)."""
    return np.where(across_domains, c.so_alpha + msg_bytes / c.scaleout_bw, c.hop + msg_bytes / c.link_bw)


def _group_comm(c: ChipSI, tp, pp, tokens, m: Model, parts: str = "both", attn_dp=False):
    """Collectives of one token cycle through the whole pipeline (all stages, all layers).

    Tensor-parallel attention: an all-reduce after attention. Attention data-parallel (MoE
    layouts): none there — each chip holds its own sequences. Dense FFN: an all-reduce. MoE: a
    dispatch and a combine all-to-all (expert parallel over the tp chips of the stage). Each stage
    boundary hands the micro-batch's activations on."""
    tp = np.asarray(tp, dtype=float)
    pp = np.asarray(pp, dtype=float)
    act = tokens * m.hidden * ACT_BYTES
    comm = 0.0
    if parts in ("both", "attn") and not attn_dp:
        comm = comm + m.layers * allreduce_s(c, tp, act)
    if parts in ("both", "ffn"):
        comm = comm + m.dense_ffn_layers * allreduce_s(c, tp, act)
        sent = act * max(m.experts_per_token, 1) / np.maximum(tp, 1)
        comm = comm + m.moe_layers * 2 * alltoall_s(c, tp, sent)
    across = tp * pp > c.domain
    return comm + (pp - 1) * p2p_s(c, act, across)


def layer_time(m: Model, c: ChipSI) -> float:
    """Fixed (latency) time of all layers in one pass: t_layer per layer, more for layers with more
    kernels — an MoE layer adds router, top-k, dispatch and combine; MLA adds its latent projections."""
    per = 1.0 + (c.mla_layer_extra if m.attention == "mla" else 0.0)
    return c.t_layer * (m.dense_ffn_layers * per + m.moe_layers * (per + c.moe_layer_extra))


def gemm_eff(c: ChipSI, m_rows) -> np.ndarray:
    """FLOP efficiency of a GEMM with m_rows rows (tokens): η_max · M/(M + M½) — small decode GEMMs
    cannot fill the tensor cores; M½ = 0 keeps it flat."""
    m_rows = np.maximum(np.asarray(m_rows, dtype=float), 1e-9)
    return c.flop_eff * m_rows / (m_rows + c.m_half)


def _part_time(bytes_, flops, n, c: ChipSI, m_rows=None):
    n = np.asarray(n, dtype=float)
    t_mem = bytes_ / (n * c.bw * c.bw_eff)
    eff = c.flop_eff if m_rows is None else gemm_eff(c, m_rows)
    t_cmp = flops / (n * c.flops * eff) if c.flops > 0 else np.full_like(t_mem, np.inf)
    return t_mem, t_cmp


def kv_replication(m: Model, tp, attn_dp=False) -> np.ndarray:
    """Copies of each sequence's KV the layout holds: tensor-parallel GQA replicates KV heads when
    tp > KV heads; tensor-parallel MLA replicates the latent on every rank; attention data-parallel
    holds one copy."""
    tp = np.asarray(tp, dtype=float)
    if attn_dp:
        return np.ones_like(tp)
    if m.attention == "mla":
        return np.maximum(tp, 1.0)
    return np.maximum(tp / m.kv_heads, 1.0)


def decode(w: Workload, attn: ChipSI, n_attn, ffn: ChipSI | None = None, n_ffn=None, batch=1,
           tokens_per_seq: int = 1, pp=1, attn_dp: bool = False, kv_headroom: float = 0.0) -> dict:
    """Decode step of a group; arrays broadcast over (n_attn, n_ffn, batch, pp).

    Layout: the n_attn chips form pp pipeline stages of tp = n_attn/pp chips each (tensor parallel
    for attention and dense FFN, expert parallel for MoE; attn_dp = attention data-parallel over the
    tp chips instead). Each of the pp micro-batches of B/pp sequences passes every stage once per
    token, so one token costs the weights of every stage over tp chips' bandwidth, summed over stages
    — pipelining adds memory and concurrent sequences, never per-user speed.

    tokens_per_seq > 1 is a speculative verify step: every sequence scores that many tokens in one
    pass, so FLOPs, activations and touched experts scale with it while weight and KV reads do not.

    ffn=None (or the same chip id with n_ffn=None) means co-located decode on the n_attn chips;
    otherwise attention–FFN disaggregation, each side one stage (FFN on n_ffn chips, pp ignored).
    kv_headroom is the class's spare KV fraction: `fits` and `max_batch` reserve it on the KV the
    layout holds (after replication) — the one batch limit the candidates and the estimate use.
    Returns SI arrays: step_s, speed_tok_s_user, throughput_tok_s, time parts, memory, fits, max_batch.
    """
    m = w.model
    colocated = ffn is None or (ffn.id == attn.id and n_ffn is None)
    ffn = attn if ffn is None else ffn
    n_attn = np.asarray(n_attn, dtype=float)
    pp = np.asarray(pp, dtype=float) if colocated else np.ones_like(n_attn)
    tp = n_attn / pp
    n_ffn = n_attn if colocated or n_ffn is None else np.asarray(n_ffn, dtype=float)
    tp_ffn = tp if colocated else n_ffn
    B = np.asarray(batch, dtype=float)
    micro = B / pp  # sequences per micro-batch
    T = micro * tokens_per_seq  # tokens a stage scores per micro-batch step
    wb = w.weight_bytes_per_param
    rep = kv_replication(m, tp, attn_dp and m.experts > 0)
    dp = attn_dp and m.experts > 0

    attn_w = (ms.attention_params(m) + ms.lm_head_params(m)) * wb
    kv_read = micro * w.kv_bytes_per_seq(w.mean_context)
    proj_flops = T * 2 * (ms.attention_params(m) + ms.lm_head_params(m))  # weight GEMMs: M = tokens
    core_flops = T * ms.attention_flops_per_token(m, w.mean_context)  # scores/values: M = heads × tokens
    # KV is streamed by attention kernels, which reach a different share of the bandwidth than GEMMs
    kv_scale = attn.bw_eff / attn.kv_bw_eff if attn.kv_bw_eff else 1.0
    if dp:  # every chip reads the whole attention and its own B/tp sequences' KV
        a_mem, a_cmp = _part_time(attn_w * tp + kv_read * kv_scale, proj_flops, tp, attn, T / tp)
    else:
        a_mem, a_cmp = _part_time(attn_w + kv_read * rep * kv_scale, proj_flops, tp, attn, T)
    a_cmp = a_cmp + (core_flops / (tp * attn.flops * attn.flop_eff) if attn.flops > 0 else np.inf)
    ffn_read = ms.ffn_params_read(m, T) * wb
    ffn_flops = T * 2 * ms.ffn_active_params(m)
    rows_per_expert = T * max(m.experts_per_token, 1) / np.maximum(ms.expected_distinct_experts(m, T), 1) \
        if m.experts else T
    f_mem, f_cmp = _part_time(ffn_read, ffn_flops, tp_ffn, ffn, rows_per_expert)
    fixed = layer_time(m, attn) + (0.0 if colocated else layer_time(m, ffn)) + attn.t_step + B * attn.t_seq
    if colocated:
        comm = _group_comm(attn, tp, pp, T, m, attn_dp=dp)
        afd = np.zeros_like(comm)
    else:
        comm = _group_comm(attn, tp, 1, T, m, "attn") + _group_comm(ffn, n_ffn, 1, T, m, "ffn")
        link = np.minimum(n_attn * attn.scaleout_bw, n_ffn * ffn.scaleout_bw)
        afd = m.layers * 2 * (T * m.hidden * ACT_BYTES / link + (attn.so_alpha + ffn.so_alpha) / 2)
    t_attn = np.maximum(a_mem, a_cmp)
    t_ffn = np.maximum(f_mem, f_cmp)
    step = t_attn + t_ffn + fixed + comm + afd

    kv_max = w.kv_bytes_per_seq() * rep  # held per sequence, every replica counted
    kv_reserved = kv_max * (1 + kv_headroom)  # what a sequence takes from the memory budget
    attn_store = w.attn_weight_bytes() * (tp if dp else 1.0)
    if colocated:
        cap = n_attn * attn.mem_bytes * USABLE_MEM_FRAC
        weights = attn_store + w.ffn_weight_bytes()
        used = weights + B * kv_max
        max_batch = np.floor((cap - weights) / kv_reserved)
        cap_ffn = used_ffn = np.zeros_like(cap)
        fits = weights + B * kv_reserved <= cap
    else:
        cap = n_attn * attn.mem_bytes * USABLE_MEM_FRAC
        used = attn_store + B * kv_max
        cap_ffn = n_ffn * ffn.mem_bytes * USABLE_MEM_FRAC
        used_ffn = np.full_like(cap_ffn, w.ffn_weight_bytes())
        max_batch = np.where(cap_ffn >= used_ffn, np.floor((cap - attn_store) / kv_reserved), -1.0)
        fits = (attn_store + B * kv_reserved <= cap) & (used_ffn <= cap_ffn)

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
        "chips": n_attn + (0 if colocated else n_ffn), "tp": tp + np.zeros_like(step), "pp": pp + np.zeros_like(step),
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
    t_mem, t_cmp = _part_time(weights_read + w.kv_bytes_per_seq(w.cached_isl) * (w.cached_isl > 0), flops, n, c,
                              m_rows=new)
    # tensor parallel inside the domain, pipelined across domains (chunks keep every stage busy)
    comm = _group_comm(c, np.minimum(n, c.domain), np.ceil(n / c.domain), new, m)
    t = np.maximum(t_mem, t_cmp) + layer_time(m, c) + c.t_step + comm
    cap = n * c.mem_bytes * USABLE_MEM_FRAC
    used = w.weight_bytes() + w.kv_bytes_per_seq(w.isl)
    return {"prefill_s": t, "marginal_s": t_cmp, "tokens_per_s": new / t, "tokens_per_s_per_chip": new / t / n,
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


def mtp(w: Workload, c: ChipSI, n, batch, mtp_tokens: int, accepted_tokens: float, pp=1,
        attn_dp: bool = False, kv_headroom: float = 0.0) -> dict:
    """Multi-token prediction: the model's own MTP head drafts k tokens (each one MTP layer plus the
    LM head, in sequence), then one pass verifies all k+1 positions; `accepted_tokens` are emitted
    per round. speed = accepted / (t_verify(k+1 tokens per sequence) + k·t_mtp_layer)."""
    m = w.model
    v = decode(w, c, n, None, None, batch, tokens_per_seq=mtp_tokens + 1, pp=pp, attn_dp=attn_dp,
               kv_headroom=kv_headroom)
    tp = np.asarray(n, dtype=float) / np.asarray(pp, dtype=float)
    one_layer = (v["step_s"] - c.t_step - np.asarray(batch, dtype=float) * c.t_seq) / m.layers  # incl. collectives
    lm_head = ms.lm_head_params(m) * w.weight_bytes_per_param / (tp * c.bw * c.bw_eff)
    draft = mtp_tokens * (one_layer + lm_head)
    round_s = v["step_s"] + draft
    B = np.asarray(batch, dtype=float)
    out = dict(v)
    speed = accepted_tokens / round_s
    out.update({"step_s": round_s, "speed_tok_s_user": speed, "throughput_tok_s": B * speed,
                "draft_s": draft + np.zeros_like(round_s), "verify_s": v["step_s"],
                "tokens_per_round": accepted_tokens})
    return out


def aggregated(w: Workload, c: ChipSI, n, batch, pp=1, attn_dp: bool = False, mtp_tokens: int = 0,
               accepted_tokens: float = 1.0, kv_headroom: float = 0.0) -> dict:
    """Prefill and decode interleaved on the same n chips (continuous batching, chunked prefill).

    Prompt chunks ride in the decode steps, which read the weights anyway, so a prompt costs the
    decode its compute (its marginal time), not a second pass over the weights; TTFT still waits
    for the prompt's own time. With mtp_tokens > 0 each round emits `accepted_tokens` per sequence."""
    if mtp_tokens:
        d = mtp(w, c, n, batch, mtp_tokens, accepted_tokens, pp=pp, attn_dp=attn_dp, kv_headroom=kv_headroom)
    else:
        d = decode(w, c, n, None, None, batch, pp=pp, attn_dp=attn_dp, kv_headroom=kv_headroom)
    p = prefill(w, c, n)
    B = np.asarray(batch, dtype=float)
    per_round = accepted_tokens if mtp_tokens else 1.0
    prefill_share = B * per_round * p["marginal_s"] / w.osl  # requests finishing per round × their prompt
    speed = per_round / (d["step_s"] + prefill_share)
    out = dict(d)
    out.update({"speed_tok_s_user": speed, "throughput_tok_s": B * speed,
                "prefill_fraction": prefill_share * speed / per_round, "prefill_s": p["prefill_s"] + np.zeros_like(speed),
                "ttft_s": p["prefill_s"] + d["step_s"]})
    return out


def speculative(w: Workload, target: ChipSI, n, draft_w: Workload, draft: ChipSI, n_draft, batch,
                draft_tokens: int, accepted_tokens: float, pp=1, attn_dp: bool = False,
                kv_headroom: float = 0.0) -> dict:
    """Speculative decoding: a draft model (e.g. on SRAM chips) proposes k tokens one by one, the
    target model verifies all k+1 positions in one pass; `accepted_tokens` (≥ 1, ≤ k+1) are emitted
    per round on average. speed = accepted / (k·t_draft + t_verify + 2 hops between the groups)."""
    v = decode(w, target, n, None, None, batch, tokens_per_seq=draft_tokens + 1, pp=pp, attn_dp=attn_dp,
               kv_headroom=kv_headroom)
    d = decode(draft_w, draft, n_draft, None, None, batch, kv_headroom=kv_headroom)
    handoff = 2 * (target.hop + draft.hop) / 2 if draft.id != target.id else 0.0
    round_s = draft_tokens * d["step_s"] + v["step_s"] + handoff
    speed = accepted_tokens / round_s
    B = np.asarray(batch, dtype=float)
    out = dict(v)
    out.update({"step_s": round_s, "speed_tok_s_user": speed, "throughput_tok_s": B * speed,
                "draft_s": draft_tokens * d["step_s"], "verify_s": v["step_s"],
                "fits": v["fits"] & d["fits"], "draft_fits": d["fits"]})
    return out
