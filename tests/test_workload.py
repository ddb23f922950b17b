"""Workload shape: bucketing, histogram/trace validation, shared units in the MILP, `fleet workload`."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from milp_helpers import chip, milp, toy, unit
from planner import performance as pf
from planner.candidates import GridOptions, build_candidates
from planner.cases import build_case, load_case
from planner.cli import main
from planner.errors import CaseError
from planner.workload import bucketize, required_buckets

TRACE = Path(__file__).parents[1] / "cases" / "traces" / "chat-agent.csv"


def shared(cls, kind, a, na, serves):
    """A toy unit that may serve several buckets: serves = {bucket: tok/s of one copy serving only it}."""
    u = unit(cls, kind, a, na, tput=min(serves.values()))
    u["serves"] = tuple(serves.items())
    return u


BUCKETS = (("short", 300.0, 1000, 100), ("long", 300.0, 1000, 100))


def test_two_small_buckets_share_one_unit():
    # each bucket alone needs 300 tok/s; a unit serves 1000 of short or 800 of long: one shared unit
    # (300/1000 + 300/800 = 0.675 of its time) replaces one unit per bucket
    units = [unit("short", "aggregated", "a", 1, tput=1000), unit("long", "aggregated", "a", 1, tput=1000),
             shared("both", "aggregated", "a", 1, {"short": 1000, "long": 800})]
    for u in units[:2]:
        u["serves"] = None
    o = milp(toy([chip("a")], units, classes=BUCKETS))
    assert o.status == "optimal" and o.x[2] == 1 and o.x[0] == o.x[1] == 0 and o.n["a"] == 1
    assert o.shares[(2, "short")] == pytest.approx(300) and o.shares[(2, "long")] == pytest.approx(300)


def test_time_split_is_enforced():
    # 600 + 600 tok/s: 600/1000 + 600/800 = 1.35 copies → two shared copies, or one shared + ...
    units = [shared("both", "aggregated", "a", 1, {"short": 1000, "long": 800})]
    o = milp(toy([chip("a")], units, classes=(("short", 600.0, 1000, 100), ("long", 600.0, 1000, 100))))
    assert o.x[0] == 2


def test_buckets_that_must_not_share():
    # the unit sized for the long bucket's KV needs 4 chips: one single-chip unit per bucket is cheaper
    units = [unit("short", "aggregated", "a", 1, tput=1000), unit("long", "aggregated", "a", 1, tput=1000),
             shared("both", "aggregated", "a", 4, {"short": 4000, "long": 4000})]
    for u in units[:2]:
        u["serves"] = None
    o = milp(toy([chip("a")], units, classes=BUCKETS))
    assert o.x[2] == 0 and o.x[0] == o.x[1] == 1 and o.n["a"] == 2


def histogram_case(lengths, demand=20_000.0, **cls):
    raw = {"name": "h", "fleet": {"chips": ["h200-sxm"]},
           "classes": [{"name": "chat", "model": "llama-3.1-70b", "precision": "fp8", "demand_tok_s": demand,
                        "min_speed_tok_s_user": 30, "ttft_s": 3, "bucket_tolerance": 0.0,
                        "lengths": [dict(zip(("isl", "osl", "share"), e)) for e in lengths], **cls}]}
    return build_case(raw, "test.toml")


def test_shared_units_are_sized_for_the_longest_bucket():
    case = histogram_case([(1000, 200, 0.5), (60_000, 1000, 0.5)])
    short, long_ = case.classes
    units = build_candidates(case)
    both = units[units["serves"].notna() & (units["kind"] != "prefill")]
    assert len(both)
    w_long = pf.Workload(case.models[long_.model], "fp8", long_.isl, long_.osl)
    c = pf.ChipSI.of(case.chips["h200-sxm"], "fp8")
    for r in both.itertuples():  # every shared unit holds a batch of the long bucket's sequences
        free = r.n_attn * c.mem_bytes * pf.USABLE_MEM_FRAC - w_long.weight_bytes()
        assert r.batch * float(w_long.kv_bytes_per_seq()) * (1 + long_.kv_headroom) <= free + 1e-6
    # the short bucket's own best unit runs a batch whose long-context KV would not fit: it is not shared
    mine = units[(units["class"] == short.name) & (units["kind"] == "decode")]
    best = mine.loc[(mine["throughput_tok_s"] / mine["n_attn"]).idxmax()]
    same = both[(both["kind"] == "decode") & (both["n_attn"] == best["n_attn"]) & (both["batch"] == best["batch"])
                & (both["attn_chip"] == best["attn_chip"])]
    assert same.empty


def test_a_speed_target_only_the_short_bucket_meets_leaves_no_shared_decode_unit():
    lengths = [(500, 200, 0.5), (100_000, 200, 0.5)]
    case = histogram_case(lengths)
    units = build_candidates(case, GridOptions(prune=False))  # every batch: the fastest point too
    long_speed = units[(units["class"] == case.classes[1].name) & (units["kind"] != "prefill")]["speed_tok_s_user"]
    assert len(units[units["serves"].notna() & (units["kind"] != "prefill")])  # at 30 tok/s/user they share
    # just above the long bucket's best speed: the short bucket keeps its units, none serve both
    case2 = histogram_case(lengths, min_speed_tok_s_user=float(long_speed.max()) * 1.01)
    units2 = build_candidates(case2)
    serving = units2[units2["kind"] != "prefill"]
    assert (serving["class"] == case2.classes[0].name).any()
    assert serving["serves"].isna().all()  # only prefill pools (no speed target) may still be shared


def test_demand_splits_by_output_tokens_not_requests():
    case = histogram_case([(1000, 100, 0.5), (1000, 300, 0.5)], demand=1000.0)
    d = [tc.demand_tok_s for tc in case.classes]
    assert d == pytest.approx([250.0, 750.0])
    assert [tc.request_share for tc in case.classes] == pytest.approx([0.5, 0.5])
    assert case.shapes["chat"].demand_tok_s == 1000.0


def test_shares_not_summing_to_one_name_the_field():
    with pytest.raises(CaseError) as exc:
        histogram_case([(1000, 100, 0.5), (2000, 100, 0.4)])
    where = " ".join(p.where for p in exc.value.problems)
    assert "classes.0.lengths.share" in where and "0.9" in " ".join(p.what for p in exc.value.problems)


def test_isl_with_a_trace_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("isl,osl\n100,10\n")
    raw = {"fleet": {"chips": ["h200-sxm"]}, "classes": [{"name": "c", "model": "llama-3.1-70b", "precision": "fp8",
                                                            "trace": "t.csv", "isl": 5, "demand_tok_s": 1,
                                                            "min_speed_tok_s_user": 1, "ttft_s": 1}]}
    with pytest.raises(CaseError) as exc:
        build_case(raw, str(tmp_path / "c.toml"))
    assert any(p.where.endswith("classes.0.isl") for p in exc.value.problems)


def test_a_trace_with_a_bad_column_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("isl,output_tokens\n100,10\n200,20\n")
    r = CliRunner().invoke(main, ["workload", str(bad)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "column 'output_tokens'" in r.output and "osl" in r.output
    neg = tmp_path / "neg.csv"
    neg.write_text("isl,osl\n100,10\n-5,20\n")
    r = CliRunner().invoke(main, ["workload", str(neg)])
    assert r.exit_code == 2 and "column 'isl'" in r.output and "row 2" in r.output


def test_bucket_error_is_what_its_definition_gives():
    # two requests (1000, 100) and (3000, 100) in one bucket: KV and decode contexts are exact
    # (both OSLs equal), the prefill proxy is |2000 − (1000² + 3000²)/4000| / 2500 = 0.2
    pts = pd.DataFrame({"isl": [1000, 3000], "osl": [100, 100], "cached_isl": [0, 0], "weight": [1.0, 1.0]})
    b = bucketize(pts, max_buckets=1, tolerance=1.0)
    (k,) = b.buckets
    assert k.kv_error == pytest.approx(0.0) and k.speed_error == pytest.approx(0.0)
    assert k.prefill_error == pytest.approx(0.2) and b.max_error == pytest.approx(0.2)
    assert bucketize(pts, max_buckets=2, tolerance=0.0).max_error == pytest.approx(0.0)


def test_bucketing_bounds_the_error_it_reports():
    rng = np.random.default_rng(1)
    n = 3000
    pts = pd.DataFrame({"isl": np.exp(rng.normal(7, 1.5, n)).astype(int) + 1,
                        "osl": np.exp(rng.normal(5, 1.0, n)).astype(int) + 1, "cached_isl": 0, "weight": 1.0})
    one = bucketize(pts, max_buckets=1, tolerance=10)
    many = bucketize(pts, max_buckets=8, tolerance=0.05)
    assert len(many.buckets) <= 8
    assert sum(b.request_share for b in many.buckets) == pytest.approx(1)
    assert sum(b.token_share for b in many.buckets) == pytest.approx(1)
    assert many.max_error == pytest.approx(max(b.error for b in many.buckets))
    assert many.max_error < one.max_error  # more buckets, tighter representation
    assert one.buckets[0].error == pytest.approx(one.mean_pair.error)
    # the means of the buckets, weighted by requests, give back the trace's means
    assert sum(b.isl * b.request_share for b in many.buckets) == pytest.approx(pts["isl"].mean())
    assert sum(b.osl * b.request_share for b in many.buckets) == pytest.approx(pts["osl"].mean())


def test_percentile_exempts_only_buckets_wholly_beyond_it():
    assert required_buckets([100, 1000, 10_000], [0.5, 0.4, 0.1], 90) == [True, True, False]
    assert required_buckets([100, 1000, 10_000], [0.5, 0.4, 0.1], 50) == [True, False, False]
    assert required_buckets([100, 1000, 10_000], [0.5, 0.4, 0.1], 99) == [True, True, True]
    assert required_buckets([10_000, 100], [0.1, 0.9], 90) == [False, True]  # order is by length, not listing


def test_ttft_percentile_relaxes_the_long_buckets_only():
    case = histogram_case([(1000, 100, 0.95), (60_000, 100, 0.05)], ttft_percentile=90, ttft_s=0.5)
    short, long_ = case.classes
    assert short.ttft_required and short.ttft_s == 0.5
    assert not long_.ttft_required and long_.ttft_s > 0.5


def test_fleet_workload_on_the_shipped_trace():
    r = CliRunner().invoke(main, ["workload", str(TRACE), "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    rows = d["buckets"]
    assert 1 <= len(rows) <= 8 and d["rows"] == len(pd.read_csv(TRACE, comment="#"))
    assert sum(b["request_share"] for b in rows) == pytest.approx(1)
    assert sum(b["token_share"] for b in rows) == pytest.approx(1)
    assert d["max_bucket_error"] <= d["mean_pair"]["error"]
    ref = d["reference"]
    mix_kv = sum(b["token_share"] * b["ref_kv_gb_per_seq"] for b in rows)
    assert ref["mixture"]["kv_gb_per_seq"] == pytest.approx(mix_kv)
    tau = np.array([b["token_share"] for b in rows])
    rate = np.array([b["ref_tok_s_per_chip"] for b in rows])
    assert ref["mixture"]["tok_s_per_chip"] == pytest.approx(tau.sum() / (tau / rate).sum())
    table = CliRunner().invoke(main, ["workload", str(TRACE), "--buckets", "3"])
    assert table.exit_code == 0 and "3 length buckets" in table.output and "mean pair" in table.output


def test_trace_case_loads_and_its_buckets_carry_the_demand():
    case = load_case("trace-chat-agent")
    sh = case.shapes["chat"]
    buckets = [tc for tc in case.classes if tc.parent == "chat"]
    assert [tc.name for tc in buckets] == list(sh.buckets)
    assert sum(tc.demand_tok_s for tc in buckets) == pytest.approx(sh.demand_tok_s)
    assert all(tc.ttft_required for tc in buckets[:1])


def test_a_histogram_plan_shows_buckets_and_the_class_total():
    from planner.planning import plan_case

    case = histogram_case([(1000, 200, 0.7), (30_000, 500, 0.3)], demand=5000.0)
    p = plan_case(case)
    cls = p.classes.set_index("name")
    assert cls.loc["chat", "level"] == "total"
    assert cls.loc["chat", "demand_tok_s"] == pytest.approx(5000.0)
    buckets = cls[cls["level"] == "bucket"]
    assert len(buckets) == 2 and (buckets["capacity_tok_s"] >= buckets["demand_tok_s"] * (1 - 1e-6)).all()
    assert p.throughput_tok_s == pytest.approx(5000.0)  # the total row is not counted twice
