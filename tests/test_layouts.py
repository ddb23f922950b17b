"""Parallel layouts: only runnable widths, pipelining never speeds up a user, collectives by fabric."""
import math

import numpy as np
import pytest

from planner import performance as pf
from planner.layouts import layouts, tp_widths


def test_widths_divide_heads_kv_heads_and_experts(catalog):
    oss = catalog.models["gpt-oss-120b"]  # 64 query heads, 8 KV heads, 128 experts
    assert tp_widths(oss) == [1, 2, 4, 8, 16, 32, 64]
    assert 3 not in tp_widths(oss) and 6 not in tp_widths(oss)
    mav = catalog.models["llama-4-maverick"]  # 40 query heads
    assert tp_widths(mav) == [1, 2, 4, 8]
    for mid, m in catalog.models.items():
        for t in tp_widths(m):
            assert m.q_heads % t == 0 and (m.kv_heads % t == 0 or t % m.kv_heads == 0), (mid, t)
            assert m.experts == 0 or m.experts % t == 0, (mid, t)


def test_hbm_groups_are_tp_times_power_of_two_pp(catalog):
    m = catalog.models["llama-3.1-70b"]
    lay = layouts(m, n_min=1, domain=8, on_chip=False)
    assert set(lay.n) <= {1, 2, 4, 8, 16, 32, 64, 128, 256}
    assert not ({10, 13, 30, 3, 6} & set(lay.n))  # the widths the old chip-count grid produced
    assert np.all(lay.n == lay.tp * lay.pp)
    assert np.all((lay.pp == 1) | (lay.tp >= 8))  # pipeline across full domains only


def test_pipelined_cpx_group_is_no_faster_per_user_than_one_chip(catalog):
    """Rubin CPX has no scale-up fabric: 48 chips are 48 pipeline stages, and every token still
    passes all of them in sequence."""
    w = pf.Workload(catalog.models["llama-3.1-70b"], "fp8", 1000, 1000)
    c = pf.ChipSI.of(catalog.chips["rubin-cpx"], "fp8")
    one_stage = pf.decode(w, c, 1, None, None, 1)
    speeds = [float(pf.decode(w, c, n, None, None, n, pp=n)["speed_tok_s_user"]) for n in (1, 8, 48)]
    assert speeds[0] == pytest.approx(float(one_stage["speed_tok_s_user"]))
    assert speeds[1] <= speeds[0] and speeds[2] <= speeds[1]  # stage hand-offs only add
    # throughput does grow with the stages: B = n sequences in flight
    tputs = [float(pf.decode(w, c, n, None, None, n, pp=n)["throughput_tok_s"]) for n in (1, 8, 48)]
    assert tputs[2] > 10 * tputs[0]


def test_tensor_parallel_speed_rises_within_a_switched_domain(catalog):
    for cid in ("h100-sxm", "b200", "gb200", "mi300x"):
        c = pf.ChipSI.of(catalog.chips[cid], "fp8")
        w = pf.Workload(catalog.models["llama-3.1-70b"], "fp8", 1000, 1000)
        speeds = [float(pf.decode(w, c, t, None, None, 1)["speed_tok_s_user"]) for t in (1, 2, 4, 8)]
        assert speeds == sorted(speeds), cid


def test_pipeline_reads_all_weights_per_token_by_hand():
    """Two stages of tp=1 on a toy chip: one token costs all weights over one chip's bandwidth."""
    from tests.test_performance import toy_chip
    from planner.catalog import load_catalog

    cat = load_catalog()
    w = pf.Workload(cat.models["llama-3.1-8b"], "fp8", isl=1000, osl=200)
    c = toy_chip(mem_gb=100)
    one = float(pf.decode(w, c, 1, None, None, 1)["step_s"])
    two = float(pf.decode(w, c, 2, None, None, 2, pp=2)["step_s"])
    hand_off = c.so_alpha + 1 * 4096 * 2 / c.scaleout_bw if 2 > c.domain else c.hop + 4096 * 2 / c.link_bw
    assert two == pytest.approx(one + hand_off, rel=1e-6)


def test_allreduce_alpha_beta_by_hand(catalog):
    c = pf.ChipSI.of(catalog.chips["h100-sxm"], "fp8")
    msg = 1e6
    expected = c.hop + 2 * 7 / 8 * msg / c.link_bw
    assert float(pf.allreduce_s(c, 8, msg)) == pytest.approx(expected)
    # 16 H100s span two HGX boards: the second level crosses the scale-out NICs
    two_nodes = float(pf.allreduce_s(c, 16, msg))
    assert two_nodes == pytest.approx(expected + c.so_alpha + 2 * 1 / 2 * (msg / 8) / c.scaleout_bw)
    # direct links: log2(width) hops
    g = pf.ChipSI.of(catalog.chips["groq-lpu-v1"], "fp8")
    assert float(pf.allreduce_s(g, 64, 0.0)) == pytest.approx(6 * g.hop)


def test_mla_kv_is_replicated_under_tensor_parallel_not_under_attention_dp(catalog):
    m = catalog.models["deepseek-r1"]
    assert float(pf.kv_replication(m, 8)) == 8 and float(pf.kv_replication(m, 8, attn_dp=True)) == 1
    w = pf.Workload(m, "fp8", 8000, 1000)
    c = pf.ChipSI.of(catalog.chips["b200"], "fp8")
    tp = int(pf.decode(w, c, 8, None, None, 1)["max_batch"])
    dp = int(pf.decode(w, c, 8, None, None, 1, attn_dp=True)["max_batch"])
    assert dp > 5 * tp


def test_gemm_efficiency_falls_at_small_m(catalog):
    c = pf.ChipSI.of(catalog.chips["b200"], "fp8")
    eff = pf.gemm_eff(c, np.array([1, 16, 256, 4096]))
    assert np.all(np.diff(eff) > 0) and eff[-1] == pytest.approx(c.flop_eff * 4096 / (4096 + c.m_half))
    assert math.isclose(float(pf.gemm_eff(c, c.m_half)), c.flop_eff / 2)


def test_estimate_reports_layout_and_error_band_and_refuses_unrunnable_widths():
    import json

    from click.testing import CliRunner

    from planner.cli import main

    ok = CliRunner().invoke(main, ["estimate", "--model", "llama-3.1-70b", "--chip", "h100-sxm", "--chips", "8",
                                   "--isl", "1000", "--osl", "1000", "--format", "json"])
    assert ok.exit_code == 0, ok.output
    r = json.loads(ok.output)
    assert r["layout"] == {"tp": 8, "pp": 1, "ep": 1, "attn_dp": False}
    band = r["error_band"]
    assert band["arch"] == "hopper" and band["p10"] <= 1 <= band["p90"]
    assert band["throughput_tok_s_p10"] <= r["throughput_tok_s"] <= band["throughput_tok_s_p90"]
    bad = CliRunner().invoke(main, ["estimate", "--model", "gpt-oss-120b", "--chip", "b200", "--chips", "3",
                                    "--isl", "1000", "--osl", "1000", "--precision", "nvfp4"])
    assert bad.exit_code == 2 and "--chips 2 or 4" in bad.output and "Traceback" not in bad.output
    forced = CliRunner().invoke(main, ["estimate", "--model", "llama-3.1-70b", "--chip", "h100-sxm", "--chips", "16",
                                       "--tp", "8", "--pp", "2", "--isl", "1000", "--osl", "1000", "--format", "json"])
    assert forced.exit_code == 0 and json.loads(forced.output)["layout"]["pp"] == 2


def _hbm_gpus(catalog):
    return [c for c in catalog.chips.values() if c.chip_class == "gpu"]


def test_more_chips_never_slower_within_a_domain_across_the_catalog(catalog):
    """For every HBM GPU and every catalog model whose weight reads dominate a step (≥ 30 GB of active
    parameters per token): at batch 1,
    the fastest layout of n chips is never slower than that of n/2 chips, for power-of-two n up to
    the scale-up domain. (For GPT-OSS-120B on a Rubin — 5 B active parameters — tp=2 is rightly
    slower than tp=1: the collectives cost more than the halved read; the planner buys replicas.)"""
    from planner import modelspec as ms

    for chip in _hbm_gpus(catalog):
        prec = "fp8" if chip.supports("fp8") else "bf16"
        c = pf.ChipSI.of(chip, prec)
        for mid, m in catalog.models.items():
            w = pf.Workload(m, prec, 1000, 1000)
            if ms.active_params(m) * w.weight_bytes_per_param < 30e9:
                continue
            prev = 0.0
            for t in [t for t in tp_widths(m) if t <= c.domain]:
                d = pf.decode(w, c, t, None, None, 1)
                best = max(float(d["speed_tok_s_user"]) if bool(d["fits"]) else 0.0,
                           float(pf.decode(w, c, t, None, None, 1, attn_dp=True)["speed_tok_s_user"])
                           if m.experts and bool(pf.decode(w, c, t, None, None, 1, attn_dp=True)["fits"]) else 0.0)
                assert best >= prev * (1 - 1e-9), (chip.id, mid, t)
                prev = max(prev, best)


@pytest.mark.parametrize("chip", ["h100-sxm", "b200", "gb300", "mi300x", "rubin", "cerebras-wse3"])
def test_per_chip_throughput_falls_as_the_speed_target_rises(catalog, chip):
    from planner.invariants import best_tok_s_per_chip

    for model in ("llama-3.1-70b", "gpt-oss-120b"):
        values = [best_tok_s_per_chip(catalog, catalog.chips[chip], model, "fp8", 1000, 1000, v)
                  for v in (10, 30, 100, 300, 1000)]
        assert all(a >= b for a, b in zip(values, values[1:])), (chip, model, values)
