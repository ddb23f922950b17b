"""Charts: the properties that make them readable, asserted on the matplotlib Figure before saving."""
import re

import numpy as np
import pandas as pd
import pytest

from planner import plots

PLAIN = re.compile(r"^−?-?[\d,]+(\.\d+)?[kMB]?$")


def _labels(axis):
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def _drawn(fig):
    fig.draw_without_rendering()
    return fig


def _pareto_df():
    speeds = [25.0, 50.0, 100.0, 200.0, 400.0, 1000.0, 2000.0]
    rows = []
    for fam, scale, limit in (("gpu-only", 1.0, 200), ("gpu+prefill", 1.0, 200), ("sram-only", 0.2, 1000),
                              ("unrestricted", 1.1, 1000)):
        for i, s in enumerate(speeds):
            ok = s <= limit
            rows.append({"family": fam, "speed_tok_s_user": s, "status": "optimal" if ok else "infeasible",
                         "tok_s_per_mw": 3.4e6 * scale / (1 + i) if ok else np.nan,
                         "usd_per_mtok": 0.05 * (1 + i) / scale if ok else np.nan})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("y", ["tok_s_per_mw", "usd_per_mtok"])
def test_pareto_ticks_are_plain_numbers(y):
    fig = _drawn(plots.pareto_figure(_pareto_df(), y, "metric", "m vs speed", case="default"))
    ax = fig.axes[0]
    for axis in (ax.xaxis, ax.yaxis):
        assert axis.get_offset_text().get_text() == ""  # no "1e6"
        labels = _labels(axis) or _labels(fig.axes[-1].xaxis)
        assert labels and all(PLAIN.match(t) for t in labels), labels
    xticks = _labels(fig.axes[-1].xaxis)
    assert {"50", "100", "200", "1,000"} <= set(xticks)  # plain log ticks, not 10^2
    if y == "tok_s_per_mw":
        assert any(t.endswith("M") for t in _labels(ax.yaxis))


def test_pareto_families_distinguishable_and_identical_curves_named():
    fig = plots.pareto_figure(_pareto_df(), "tok_s_per_mw", "tokens/s per MW", "t", case="default")
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert len(lines) == 4
    assert len({ln.get_marker() for ln in lines}) == 4
    assert len({str(ln.get_linestyle()) for ln in lines}) == 4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "gpu+prefill (= gpu-only)" in labels
    assert "unrestricted" in labels  # a different curve is not called equal


def test_pareto_title_and_ylabel_say_case_and_objective():
    fig = plots.pareto_figure(_pareto_df(), "usd_per_mtok", "USD per million output tokens", "cost", case="my-case")
    ax = fig.axes[0]
    assert "my-case" in ax.get_title() and "min-TCO" in ax.get_title()
    assert "min-TCO plan" in ax.get_ylabel()


def test_pareto_infeasible_speeds_marked():
    fig = plots.pareto_figure(_pareto_df(), "tok_s_per_mw", "tokens/s per MW", "t", case="default")
    strip = fig.axes[1]
    xs = sorted(x for ln in strip.get_lines() if ln.get_marker() == "x" for x in ln.get_xdata())
    # gpu-only and gpu+prefill fail at 400, 1000, 2000; the others at 2000
    assert xs == sorted([400.0, 1000.0, 2000.0] * 2 + [2000.0] * 2)
    assert [t.get_text() for t in strip.get_yticklabels()] == ["gpu-only", "gpu+prefill", "sram-only", "unrestricted"]


def test_pareto_all_feasible_has_no_strip():
    df = _pareto_df()
    df = df[df["status"] == "optimal"]
    assert len(plots.pareto_figure(df, "tok_s_per_mw", "m", "t").axes) == 1


def test_nice_log_ticks():
    assert plots.nice_log_ticks(20, 2400, [25, 2000]) == [20, 50, 100, 200, 500, 1000, 2000]
    assert plots.nice_log_ticks(22, 2400, [25, 2000]) == [25, 50, 100, 200, 500, 1000, 2000]
    assert plots.nice_log_ticks(0.04, 5) == [0.05, 0.1, 0.2, 0.5, 1, 2, 5]


@pytest.mark.parametrize("v, text", [(3_341_952, "3.34M"), (250_000, "250k"), (2_750, "2,750"), (0.5951, "0.595"),
                                     (0, "0"), (1.5e9, "1.5B"), (12_345, "12.3k")])
def test_human(v, text):
    assert plots.human(v) == text


def _sweep_df():
    rows = []
    for path, vals, objs in (("chips.rubin.price_usd", [83_000, 119_000, 155_000], [3591, 4071, 4330]),
                             ("economics.electricity_usd_per_kwh", [0.05, 0.08, 0.12], [3970, 4071, 4206]),
                             ("chips.cerebras-wse3.price_usd", [1e6, 2e6, 3e6], [2620, 4071, 4723])):
        for v, o in zip(vals, objs):
            rows.append({"varied": path, path: v, "status": "optimal", "objective": o, "tco_usd_per_hour": o,
                         "power_mw": o / 1000})
    for v in (0.5, 1.0):
        rows.append({"varied": "constraints.power_mw", "constraints.power_mw": v, "status": "infeasible"})
    rows.append({"varied": "chips.rubin.price_usd", "chips.rubin.price_usd": 200_000, "status": "infeasible"})
    return pd.DataFrame(rows)


def test_tornado_axis_baseline_rows_and_labels():
    df = _sweep_df()
    assert plots.infer_baseline(df, "tco_usd_per_hour") == 4071
    fig = _drawn(plots.tornado_figure(df, "tco", case="default"))
    ax = fig.axes[0]
    assert "USD/hour" in ax.get_xlabel()
    assert "constraints.power_mw" in ax.get_xlabel()  # the all-infeasible parameter is noted, not an empty row
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ticks) == 3 and not any("power_mw" in t for t in ticks)
    assert ticks[-1] == "chips.cerebras-wse3.price_usd"  # widest bar on top
    assert "1 of 4 infeasible" in next(t for t in ticks if t.startswith("chips.rubin"))
    vlines = [ln for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
    assert vlines and vlines[0].get_xdata()[0] == 4071
    texts = " ".join(t.get_text() for t in ax.texts)
    for value in ("2,620", "4,723", "3,591", "4,330", "3,970", "4,206"):
        assert value in texts
    assert ax.xaxis.get_offset_text().get_text() == ""
    assert "default" in ax.get_title()


@pytest.mark.parametrize("objective, unit", [("tco", "USD/hour"), ("capex", "USD"), ("power", "MW"),
                                             ("throughput", "tok/s")])
def test_tornado_unit_per_objective(objective, unit):
    df = _sweep_df().assign(capex_usd=1e8, throughput_tok_s=1.9e6)
    ax = plots.tornado_figure(df, objective, baseline=None).axes[0]
    assert f"({unit})" in ax.get_xlabel()


def test_line_plot_marks_infeasible_and_plain_ticks():
    df = pd.DataFrame({"constraints.power_mw": [2, 4, 6, 8], "status": ["infeasible", "optimal", "optimal", "optimal"],
                       "throughput_tok_s": [np.nan, 2.5e6, 4e6, 5.4e6]})
    fig = _drawn(plots.line_figure(df, "constraints.power_mw", "throughput_tok_s", "MW", "tok/s", "t", case="default"))
    ax = fig.axes[0]
    assert any(ln.get_marker() == "x" and list(ln.get_xdata()) == [2] for ln in ax.get_lines())
    assert ax.yaxis.get_offset_text().get_text() == ""
    assert all(PLAIN.match(t) for t in _labels(ax.yaxis))
    assert ax.get_title().startswith("default")


def test_plot_writes_png(tmp_path):
    out = plots.pareto_plot(_pareto_df(), "tok_s_per_mw", "m", tmp_path / "p.png", "t", case="default")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_case_label():
    from planner.cli import _case_label

    assert _case_label(None) == "default"
    assert _case_label("default", ["a=1"]) == "default (+1 --set)"
