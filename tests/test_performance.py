"""Performance model: hand-computed terms, memory limits, monotonicity, serving modes, CLI."""
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from planner import modelspec as ms
from planner import performance as pf
from planner.cli import main
from planner.domain import Chip


def toy_chip(**kw):
    """Round numbers for hand calculation: 100 GB, 1 TB/s, 1000 TFLOPS fp8, no overheads."""
    base = dict(id="toy", name="toy", vendor="t", chip_class="gpu", system_name="s", chips_per_system=8,
                sold_by_system=False, mem_gb=100, mem_bw_tbs=1.0, power_kw=1.0, price_usd=10000,
                scaleup_domain_chips=8, scaleup_bw_gbs=1000, scaleout_bw_gbs=50, bw_eff=1.0, flop_eff=1.0,
                t_layer_us=0.0, hop_latency_us=0.0, fp8_tflops=1000)
    base.update(kw)
    return pf.ChipSI.of(Chip(**base), "fp8")


def test_single_chip_roofline_by_hand(catalog):
    m = catalog.models["llama-3.1-8b"]
    w = pf.Workload(m, "fp8", isl=1000, osl=200)
    d = pf.decode(w, toy_chip(), 1, None, None, 1)
    # attention 32 × (2·4096·4096 + 2·4096·1024) + LM head 128256·4096 + FFN 32 × 3·4096·14336
    weights = 32 * 41_943_040 + 525_336_576 + 5_637_144_576
    kv = 1100 * 32 * 2 * 8 * 128  # mean context 1000 + 200/2 tokens, 1-byte KV
    assert float(d["step_s"]) == pytest.approx((weights + kv) / 1e12, rel=1e-3)
    assert str(d["bound"]) == "memory"


def test_compute_bound_at_large_batch_by_hand(catalog):
    m = catalog.models["llama-3.1-8b"]
    w = pf.Workload(m, "fp8", isl=10, osl=2)
    fast_mem = toy_chip(mem_bw_tbs=1e6, mem_gb=1e4)  # memory time negligible
    d = pf.decode(w, fast_mem, 1, None, None, 1024)
    flops = 1024 * 2 * (ms.attention_params(m) + ms.lm_head_params(m) + ms.ffn_active_params(m))
    flops += 1024 * float(ms.attention_flops_per_token(m, 11))
    assert float(d["step_s"]) == pytest.approx(flops / 1e15, rel=1e-3)
    assert str(d["bound"]) == "compute"


def test_per_layer_time_and_hops_set_sram_speed(catalog):
    m = catalog.models["llama-3.1-70b"]
    w = pf.Workload(m, "fp8", 100, 100)
    sram = toy_chip(mem_gb=0.5, mem_bw_tbs=1e5, t_layer_us=10.0, hop_latency_us=1.0, scaleup_domain_chips=1024,
                    chip_class="sram")
    d = pf.decode(w, sram, 256, None, None, 1)
    hops = 80 * 2 * math.ceil(math.log2(256)) * 1e-6  # two all-reduces per layer, log2(256) hops each
    assert float(d["step_s"]) == pytest.approx(80 * 10e-6 + hops, rel=0.02)
    assert str(d["bound"]) == "latency"


def test_moe_expected_distinct_experts(catalog):
    m = catalog.models["deepseek-r1"]
    e = ms.expected_distinct_experts(m, np.array([1, 2, 10_000]))
    assert e[0] == pytest.approx(8)
    assert e[1] == pytest.approx(256 * (1 - (248 / 256) ** 2))  # 15.75
    assert e[2] == pytest.approx(256, rel=1e-6)


def test_mla_vs_gqa_kv_bytes(catalog):
    assert ms.kv_bytes_per_token(catalog.models["deepseek-r1"], 1.0) == 61 * 576
    assert ms.kv_bytes_per_token(catalog.models["llama-3.1-70b"], 1.0) == 80 * 2 * 8 * 128


def test_batch_that_just_fits_and_one_that_does_not(catalog):
    w = pf.Workload(catalog.models["llama-3.1-70b"], "fp8", 5000, 500)
    c = pf.ChipSI.of(catalog.chips["h100-sxm"], "fp8")
    mb = int(pf.decode(w, c, 2, None, None, 1)["max_batch"])
    assert mb > 0
    assert bool(pf.decode(w, c, 2, None, None, mb)["fits"])
    assert not bool(pf.decode(w, c, 2, None, None, mb + 1)["fits"])
    # by hand: (2 × 80 GB × 0.9 − 70.55 GB of fp8 weights) / (5500 tokens × 163,840 B)
    weights = w.weight_bytes()
    assert mb == math.floor((2 * 80e9 * 0.9 - weights) / (5500 * 80 * 2 * 8 * 128))


@pytest.mark.parametrize("model_id", ["llama-3.1-70b", "llama-3.1-405b"])
def test_more_chips_never_slower_for_bandwidth_bound_gpus(catalog, model_id):
    """Within the scale-up domain, dense models on HBM GPUs gain more bandwidth than they lose to
    all-reduce latency (on SRAM chips the opposite can hold: more chips, more hops)."""
    for chip in catalog.chips.values():
        if chip.chip_class != "gpu":
            continue
        w = pf.Workload(catalog.models[model_id], "fp8" if chip.supports("fp8") else "bf16", 2000, 500)
        c = pf.ChipSI.of(chip, w.precision)
        n0 = max(1, math.ceil(w.weight_bytes() / (c.mem_bytes * pf.USABLE_MEM_FRAC)))
        ns = np.arange(n0, max(n0, c.domain) + 1)
        speed = pf.decode(w, c, ns, None, None, 1)["speed_tok_s_user"]
        assert np.all(np.diff(speed) >= -1e-9), chip.id


@pytest.mark.parametrize("serving", ["decode", "aggregated"])
def test_larger_batch_never_lowers_throughput_while_it_fits(catalog, serving):
    for model_id in ("llama-3.1-70b", "deepseek-r1", "gpt-oss-120b"):
        for chip in catalog.chips.values():
            prec = "fp8" if chip.supports("fp8") else "bf16"
            w = pf.Workload(catalog.models[model_id], prec, 2000, 500)
            c = pf.ChipSI.of(chip, prec)
            n0 = max(1, math.ceil(w.weight_bytes() / (c.mem_bytes * pf.USABLE_MEM_FRAC)))
            mb = int(pf.decode(w, c, n0, None, None, 1)["max_batch"])
            B = np.arange(1, max(mb, 1) + 1)
            fn = pf.aggregated if serving == "aggregated" else (lambda w_, c_, n_, b_: pf.decode(w_, c_, n_, None, None, b_))
            t = fn(w, c, n0, B)["throughput_tok_s"]
            assert np.all(np.diff(t) >= -1e-9), (model_id, chip.id)


def test_aggregated_interference_matches_closed_form(catalog):
    w = pf.Workload(catalog.models["llama-3.1-70b"], "fp8", 4000, 400)
    c = pf.ChipSI.of(catalog.chips["h200-sxm"], "fp8")
    d = pf.decode(w, c, 4, None, None, 64)
    p = pf.prefill(w, c, 4)
    a = pf.aggregated(w, c, 4, 64)
    # prompt chunks ride in decode steps that read the weights anyway: only their compute is added
    expected = 1 / (float(d["step_s"]) + 64 * float(p["marginal_s"]) / 400)
    assert float(p["marginal_s"]) < float(p["prefill_s"])
    assert float(a["speed_tok_s_user"]) == pytest.approx(expected)
    f = float(a["prefill_fraction"])
    assert float(a["speed_tok_s_user"]) == pytest.approx((1 - f) / float(d["step_s"]))  # t_step / (1 − f)


def test_ttft_utilisation_inverse():
    rho = pf.max_utilization_for_ttft(0.5, 2.0, 0.1, cap=0.99)
    assert float(pf.ttft_at_utilization(0.5, rho, 0.1)) == pytest.approx(2.0)
    assert float(pf.max_utilization_for_ttft(0.5, 0.4)) == 0.0  # target below the service time


def test_afd_splits_memory_and_adds_transfers(catalog):
    w = pf.Workload(catalog.models["deepseek-r1"], "fp8", 8000, 1000)
    gpu = pf.ChipSI.of(catalog.chips["rubin"], "fp8")
    lpu = pf.ChipSI.of(catalog.chips["groq3-lpu"], "fp8")
    d = pf.decode(w, gpu, 8, lpu, 1536, 32)
    assert float(d["ffn_memory_used_bytes"]) == pytest.approx(w.ffn_weight_bytes())
    assert float(d["afd_transfer_s"]) > 61 * 2 * (gpu.hop + lpu.hop) / 2 * 0.999
    assert bool(d["fits"])
    too_few = pf.decode(w, gpu, 8, lpu, 512, 32)
    assert not bool(too_few["fits"]) and int(too_few["max_batch"]) == -1


def test_vectorised_grid_is_fast(catalog):
    import time
    w = pf.Workload(catalog.models["deepseek-r1"], "fp8", 8000, 1000)
    c = pf.ChipSI.of(catalog.chips["gb300"], "fp8")
    n, b = np.meshgrid(np.arange(4, 104), np.arange(1, 1001), indexing="ij")  # 100k rows
    t = time.perf_counter()
    out = pf.aggregated(w, c, n, b)
    assert out["speed_tok_s_user"].shape == (100, 1000)
    assert time.perf_counter() - t < 5  # generous: the figure itself is in the benchmarks


def test_estimate_cli_json_keys_and_errors():
    runner = CliRunner()
    res = runner.invoke(main, ["estimate", "--model", "llama-3.1-70b", "--chip", "h100-sxm", "--chips", "2",
                               "--batch", "32", "--isl", "5000", "--osl", "500", "--precision", "fp8",
                               "--format", "json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output)
    for key in ("speed_tok_s_user", "throughput_tok_s", "throughput_tok_s_per_chip", "step_time_s", "ttft_s",
                "fits", "max_batch", "memory_used_gb", "memory_capacity_gb", "bound", "time_breakdown_s"):
        assert key in r
    assert r["throughput_tok_s"] == pytest.approx(32 * r["speed_tok_s_user"])
    dec = json.loads(runner.invoke(main, ["estimate", "--model", "llama-3.1-70b", "--chip", "h100-sxm", "--chips",
                                          "2", "--batch", "32", "--isl", "5000", "--osl", "500", "--serving",
                                          "decode", "--format", "json"]).output)
    assert dec["speed_tok_s_user"] > r["speed_tok_s_user"]  # prefill interference slows aggregated serving
    conc = json.loads(runner.invoke(main, ["estimate", "--model", "llama-3.1-70b", "--chip", "h100-sxm",
                                           "--chips", "2", "--isl", "5000", "--osl", "500", "--concurrency",
                                           "250", "--format", "json"]).output)
    assert conc["batch"] == conc["max_batch"] and conc["queued_clients"] == 250 - conc["max_batch"]
    bad = runner.invoke(main, ["estimate", "--model", "llama-3.1-405b", "--chip", "h100-sxm", "--chips", "2",
                               "--isl", "100", "--osl", "100"])
    assert bad.exit_code == 2 and "--chips" in bad.output and "Traceback" not in bad.output
    fp8 = runner.invoke(main, ["estimate", "--model", "llama-3.1-8b", "--chip", "sn40l", "--chips", "1",
                               "--isl", "100", "--osl", "100", "--precision", "fp8"])
    assert fp8.exit_code == 2 and "cannot run fp8" in fp8.output


def test_speculative_decoding_by_hand(catalog):
    w = pf.Workload(catalog.models["llama-3.1-70b"], "fp8", 1000, 500)
    dw = pf.Workload(catalog.models["llama-3.1-8b"], "fp8", 1000, 500)
    gpu = pf.ChipSI.of(catalog.chips["b200"], "fp8")
    lpu = pf.ChipSI.of(catalog.chips["groq3-lpu"], "fp8")
    plain = pf.decode(w, gpu, 2, None, None, 8)
    verify = pf.decode(w, gpu, 2, None, None, 8, tokens_per_seq=5)
    assert float(verify["step_s"]) >= float(plain["step_s"])  # same reads, 5× the FLOPs
    draft = pf.decode(dw, lpu, 32, None, None, 8)
    s = pf.speculative(w, gpu, 2, dw, lpu, 32, 8, draft_tokens=4, accepted_tokens=3.0)
    expected = 3.0 / (4 * float(draft["step_s"]) + float(verify["step_s"]) + (gpu.hop + lpu.hop))
    assert float(s["speed_tok_s_user"]) == pytest.approx(expected)
    more = pf.speculative(w, gpu, 2, dw, lpu, 32, 8, draft_tokens=4, accepted_tokens=4.0)
    assert float(more["speed_tok_s_user"]) > float(s["speed_tok_s_user"])


def test_cached_prefix_cuts_prefill_not_kv(catalog):
    m = catalog.models["llama-3.1-70b"]
    c = pf.ChipSI.of(catalog.chips["h200-sxm"], "fp8")
    full = pf.Workload(m, "fp8", 100_000, 500)
    cached = pf.Workload(m, "fp8", 100_000, 500, cached_isl=96_000)
    assert float(pf.prefill(cached, c, 8)["prefill_s"]) < float(pf.prefill(full, c, 8)["prefill_s"]) / 5
    assert float(cached.kv_bytes_per_seq()) == float(full.kv_bytes_per_seq())


def test_mtp_round_by_hand_and_when_it_pays(catalog):
    w = pf.Workload(catalog.models["deepseek-r1"], "fp8", 1000, 1000)
    c = pf.ChipSI.of(catalog.chips["b200"], "fp8")
    plain = pf.decode(w, c, 8, None, None, 16)
    verify = pf.decode(w, c, 8, None, None, 16, tokens_per_seq=2)
    m = pf.mtp(w, c, 8, 16, 1, 1.8)
    one_layer = (float(verify["step_s"]) - c.t_step - 16 * c.t_seq) / w.model.layers
    lm_head = w.model.vocab * w.model.hidden * 1.0 / (8 * c.bw * c.bw_eff)
    assert float(m["step_s"]) == pytest.approx(float(verify["step_s"]) + one_layer + lm_head)
    assert float(m["speed_tok_s_user"]) == pytest.approx(1.8 / float(m["step_s"]))
    assert float(m["speed_tok_s_user"]) > float(plain["speed_tok_s_user"])  # 1.8 tokens a round pays at batch 16
    never = pf.mtp(w, c, 8, 16, 1, 1.0)  # nothing accepted: only the extra work remains
    assert float(never["speed_tok_s_user"]) < float(plain["speed_tok_s_user"])


def test_mtp_in_a_case_is_validated_and_planned(catalog):
    from planner.cases import load_case
    from planner.errors import CaseError
    from planner.candidates import build_candidates

    with pytest.raises(CaseError) as exc:
        load_case("default", ["classes.1.mtp_tokens=1", "classes.1.accepted_tokens_per_step=2.5"])
    assert "mtp_tokens + 1" in exc.value.render()
    case = load_case("default", ["classes.1.mtp_tokens=1", "classes.1.accepted_tokens_per_step=1.8"])
    units = build_candidates(case)
    reasoning = units[(units["class"] == "reasoning") & (units["kind"] != "prefill")]
    assert set(reasoning["mtp_tokens"]) == {0, 1}  # plain decoding stays a candidate


def test_fp4_weights_run_weight_only_on_chips_without_fp4_units(catalog):
    h100 = catalog.chips["h100-sxm"]
    assert h100.fp4_tflops == 0 and h100.supports("fp4") and h100.tflops("fp4") == h100.bf16_tflops
    w4 = pf.Workload(catalog.models["gpt-oss-120b"], "fp4", 1000, 1000)
    w8 = pf.Workload(catalog.models["gpt-oss-120b"], "fp8", 1000, 1000)
    c4, c8 = pf.ChipSI.of(h100, "fp4"), pf.ChipSI.of(h100, "fp8")
    assert w4.weight_bytes() < 0.6 * w8.weight_bytes()  # 4.5-bit reads
    assert c4.flops == h100.bf16_tflops * 1e12  # dequantised into bf16 GEMMs
    assert not catalog.chips["sn40l"].supports("fp8")


def test_kv_headroom_applies_to_the_replicated_kv_by_hand(catalog):
    """tp 16 over 8 KV heads holds every sequence's KV twice; the class's 10 % headroom is kept on
    both copies (the bug kept it on one copy and replication without it: a batch of 910 where 827 fits)."""
    w = pf.Workload(catalog.models["llama-3.1-8b"], "fp8", 10_000, 2_000)
    c = toy_chip(scaleup_domain_chips=16)
    free = 16 * 100e9 * 0.9 - 8_029_995_008  # 16 × 100 GB × 0.9 usable − fp8 weights (with both embeddings)
    kv = 12_000 * 32 * 2 * 8 * 128  # ISL + OSL tokens × 65,536 B at 1-byte KV = 786,432,000 B
    tp16 = pf.decode(w, c, 16, None, None, 1, kv_headroom=0.1)
    assert int(tp16["max_batch"]) == math.floor(free / (kv * 2 * 1.1)) == 827
    assert bool(pf.decode(w, c, 16, None, None, 827, kv_headroom=0.1)["fits"])
    assert not bool(pf.decode(w, c, 16, None, None, 828, kv_headroom=0.1)["fits"])
    # pp 2 × tp 8: one copy per sequence, headroom still kept
    assert int(pf.decode(w, c, 16, None, None, 1, pp=2, kv_headroom=0.1)["max_batch"]) == math.floor(free / (kv * 1.1)) == 1655
    assert int(pf.decode(w, c, 16, None, None, 1)["max_batch"]) == 910  # no headroom asked: the raw limit


def test_candidates_and_estimate_keep_headroom_on_replicated_kv(catalog):
    """One computation decides the batch limit: the planner's units and `fleet estimate` agree with it."""
    from planner.candidates import GridOptions, build_candidates
    from planner.cases import build_case
    from planner.estimation import estimate

    raw = {"name": "kv", "fleet": {"chips": ["gb200"], "modes": ["disaggregated"]},
           "classes": [{"name": "long", "model": "llama-3.1-8b", "precision": "fp8", "demand_tok_s": 1000.0,
                        "min_speed_tok_s_user": 1, "ttft_s": 30, "isl": 30_000, "osl": 2_000, "kv_headroom": 0.5}]}
    case = build_case(raw, "test.toml")
    units = build_candidates(case, GridOptions(prune=False))  # every batch that passed the filter
    decode = units[units["kind"] == "decode"]
    assert (decode["tp"] > 8).any()  # layouts that replicate KV (72-GPU NVLink domain) are among them
    c = pf.ChipSI.of(catalog.chips["gb200"], "fp8")
    w = pf.Workload(catalog.models["llama-3.1-8b"], "fp8", 30_000, 2_000)
    for r in decode.itertuples():
        rep = max(r.tp / 8, 1)
        free = r.n_attn * c.mem_bytes * 0.9 - w.weight_bytes()
        assert r.batch * float(w.kv_bytes_per_seq()) * rep * 1.5 <= free
    e = estimate("llama-3.1-8b", "gb200", 16, 30_000, 2_000, "fp8", tp=16, kv_headroom=0.5, catalog=catalog)
    free = 16 * c.mem_bytes * 0.9 - w.weight_bytes()
    assert e["max_batch"] == math.floor(free / (float(w.kv_bytes_per_seq()) * 2 * 1.5))
