"""Derived sizes of a model: parameters per part, KV bytes per token, attention FLOPs.

Formulas (catalog-facts.md §B2):
- GQA attention per layer: h·nq·hd (Q) + 2·h·nkv·hd (K, V) + nq·hd·h (O)
- MLA attention per layer: h·q_lora + q_lora·nq·(nope+rope) + h·(kv_lora+rope)
  + kv_lora·nq·(nope+v) + nq·v·h
- SwiGLU FFN: 3·h·intermediate per dense layer or per expert; router h·E per MoE layer
- KV per token per layer: GQA 2·nkv·hd elements; MLA kv_lora + rope elements (the latent cache)
- Sliding/chunked-window layers stop growing at their window.
"""
from __future__ import annotations

import numpy as np

from .domain import Model


def attention_params_per_layer(m: Model) -> float:
    h = m.hidden
    if m.attention == "mla":
        return (h * m.q_lora_rank + m.q_lora_rank * m.q_heads * (m.qk_nope_dim + m.qk_rope_dim)
                + h * (m.kv_lora_rank + m.qk_rope_dim)
                + m.kv_lora_rank * m.q_heads * (m.qk_nope_dim + m.v_head_dim)
                + m.q_heads * m.v_head_dim * h)
    return 2 * h * m.q_heads * m.head_dim + 2 * h * m.kv_heads * m.head_dim


def attention_params(m: Model) -> float:
    return m.layers * attention_params_per_layer(m)


def expert_params(m: Model) -> float:
    """Parameters of one routed (or shared) expert."""
    return 3 * m.hidden * m.moe_intermediate


def dense_ffn_params(m: Model) -> float:
    return m.dense_ffn_layers * 3 * m.hidden * m.dense_intermediate


def moe_params(m: Model) -> float:
    """All experts (routed + shared) and routers of all MoE layers."""
    per_layer = (m.experts + m.shared_experts) * expert_params(m) + m.hidden * m.experts
    return m.moe_layers * per_layer


def embedding_params(m: Model) -> float:
    return m.vocab * m.hidden * (1 if m.tied_embeddings else 2)


def lm_head_params(m: Model) -> float:
    return m.vocab * m.hidden


def total_params(m: Model) -> float:
    return attention_params(m) + dense_ffn_params(m) + moe_params(m) + embedding_params(m)


def ffn_total_params(m: Model) -> float:
    return dense_ffn_params(m) + moe_params(m)


def ffn_active_params(m: Model) -> float:
    moe_active = m.moe_layers * ((m.experts_per_token + m.shared_experts) * expert_params(m)
                                 + m.hidden * m.experts)
    return dense_ffn_params(m) + moe_active


def active_params(m: Model) -> float:
    """Parameters touched per token (the input-embedding lookup excluded, as published)."""
    return attention_params(m) + ffn_active_params(m) + lm_head_params(m)


def expected_distinct_experts(m: Model, batch) -> np.ndarray:
    """Expected routed experts read per MoE layer for `batch` tokens: E·(1−(1−k/E)^B).

    Assumes uniform, independent routing — an upper bound on real, skewed routing.
    """
    batch = np.asarray(batch, dtype=float)
    if m.experts == 0:
        return np.zeros_like(batch)
    return m.experts * (1.0 - (1.0 - m.experts_per_token / m.experts) ** batch)


def ffn_params_read(m: Model, batch) -> np.ndarray:
    """FFN parameters a decode step reads for `batch` sequences (dense + touched experts)."""
    distinct = expected_distinct_experts(m, batch)
    moe = m.moe_layers * ((distinct + m.shared_experts) * expert_params(m) + m.hidden * m.experts)
    return dense_ffn_params(m) + moe


def kv_elems_per_token_per_layer(m: Model) -> float:
    if m.attention == "mla":
        return float(m.kv_lora_rank + m.qk_rope_dim)
    return float(2 * m.kv_heads * m.head_dim)


def kv_bytes_per_seq(m: Model, context, elem_bytes: float) -> np.ndarray:
    """KV bytes one sequence holds at `context` tokens (sliding layers capped at their window)."""
    context = np.asarray(context, dtype=float)
    per = kv_elems_per_token_per_layer(m) * elem_bytes
    full_layers = m.layers - m.sliding_layers
    window = np.minimum(context, m.sliding_window_tokens) if m.sliding_layers else 0.0
    return per * (full_layers * context + m.sliding_layers * window)


def kv_bytes_per_token(m: Model, elem_bytes: float, context: float = 1.0) -> float:
    """Mean KV bytes per cached token at `context` (all layers grow while context ≤ window)."""
    return float(kv_bytes_per_seq(m, context, elem_bytes) / max(context, 1.0))


def attention_flops_per_token(m: Model, context) -> np.ndarray:
    """Score + value FLOPs for one new token attending to `context` cached tokens."""
    context = np.asarray(context, dtype=float)
    if m.attention == "mla":  # weight-absorbed MLA works in the latent space
        per_cached = 2.0 * m.q_heads * (2 * m.kv_lora_rank + m.qk_rope_dim)
    else:
        per_cached = 4.0 * m.q_heads * m.head_dim
    full_layers = m.layers - m.sliding_layers
    window = np.minimum(context, m.sliding_window_tokens) if m.sliding_layers else 0.0
    return per_cached * (full_layers * context + m.sliding_layers * window)


def prefill_attention_flops(m: Model, isl) -> np.ndarray:
    """Causal attention FLOPs over a prompt of `isl` tokens (token i attends to i tokens)."""
    isl = np.asarray(isl, dtype=float)
    if m.attention == "mla":  # prefill runs MLA un-absorbed: per head qk (nope+rope) and v dims
        per_pair = 2.0 * m.q_heads * (m.qk_nope_dim + m.qk_rope_dim + m.v_head_dim)
    else:
        per_pair = 4.0 * m.q_heads * m.head_dim
    full_layers = m.layers - m.sliding_layers
    pairs_full = isl * (isl + 1) / 2
    if m.sliding_layers:
        w = float(m.sliding_window_tokens)
        pairs_win = np.where(isl <= w, pairs_full, w * (w + 1) / 2 + (isl - w) * w)
    else:
        pairs_win = 0.0
    return per_pair * (full_layers * pairs_full + m.sliding_layers * pairs_win)


def summary(m: Model) -> dict[str, float]:
    """Derived sizes in billions of parameters and KV bytes per token (bf16) for display."""
    return {
        "total_params_b": total_params(m) / 1e9,
        "active_params_b": active_params(m) / 1e9,
        "attn_params_b": attention_params(m) / 1e9,
        "ffn_total_params_b": ffn_total_params(m) / 1e9,
        "ffn_active_params_b": ffn_active_params(m) / 1e9,
        "embedding_params_b": embedding_params(m) / 1e9,
        "kv_bytes_per_token_bf16": kv_bytes_per_token(m, 2.0),
    }
