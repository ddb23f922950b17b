"""Figures for studies and plans (matplotlib, headless), written atomically as PNG.

Each chart has a `*_figure` builder returning a matplotlib Figure (tests inspect it) and a writer
that saves it. Conventions every chart follows: the case name and the objective in the title, the
y-label saying whose metric it is, tick labels as plain numbers with thousands separators or k/M
(never a "1e6" offset, never 10^2 on log axes), infeasible points marked, and overlapping families
told apart by marker and line style (identical curves say so in the legend).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

FEASIBLE = ("optimal", "feasible", "time_limit")
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)), (0, (8, 2, 2, 2))]
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]

# objective → (the row column that measures it in user units, its name, its unit)
OBJECTIVE_METRIC = {"tco": ("tco_usd_per_hour", "TCO", "USD/hour"), "capex": ("capex_usd", "capex", "USD"),
                    "power": ("power_mw", "site power", "MW"),
                    "throughput": ("throughput_tok_s", "served throughput", "tok/s")}
OBJECTIVE_WORDS = {"tco": "min-TCO", "capex": "min-capex", "power": "min-power", "throughput": "max-throughput"}


# ------------------------------------------------------------------------------- number formatting
def human(v: float, unit_scale: float | None = None) -> str:
    """A compact number: 3.3M, 250k, 2,750, 0.59. `unit_scale` forces k (1e3) or M (1e6)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    a = abs(v)
    scale = unit_scale if unit_scale is not None else (1e9 if a >= 1e9 else 1e6 if a >= 1e6 else 1e3 if a >= 1e4 else 1)
    if v == 0:
        return "0"
    if scale == 1:
        if a >= 100:
            return f"{v:,.0f}"
        return f"{v:,.3g}"
    suffix = {1e3: "k", 1e6: "M", 1e9: "B"}[scale]
    x = v / scale
    text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return text + suffix


def _axis_scale(lo: float, hi: float) -> float:
    top = max(abs(lo), abs(hi))
    return 1e9 if top >= 1e9 else 1e6 if top >= 1e6 else 1e3 if top >= 1e4 else 1.0


def _plain_linear(axis, lim) -> None:
    """k/M tick labels on a linear axis, one unit for the whole axis, no offset text."""
    from matplotlib.ticker import FuncFormatter

    scale = _axis_scale(*lim)
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: human(v, scale)))


def nice_log_ticks(lo: float, hi: float, extra=()) -> list[float]:
    """1-2-5 ticks per decade inside [lo, hi] (plus round `extra` values not crowding them)."""
    if not (lo > 0 and hi > lo):
        return []
    ticks = []
    for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0 ** e
            if lo <= t * (1 + 1e-9) and t <= hi * (1 + 1e-9):
                ticks.append(float(f"{t:.12g}"))
    if len(ticks) < 3:  # a narrow range: 1-1.5-2-3-5-7
        ticks = sorted({float(f"{m * 10.0 ** e:.12g}") for e in range(math.floor(math.log10(lo)) - 1,
                                                                      math.ceil(math.log10(hi)) + 1)
                        for m in (1, 1.5, 2, 3, 5, 7) if lo <= m * 10.0 ** e <= hi})
    for v in extra:
        if lo <= v <= hi and float(f"{v:.2g}") == v and all(max(v, t) / min(v, t) > 1.35 for t in ticks):
            ticks.append(float(v))
    return sorted(ticks)


def _plain_log(ax, which: str, data) -> None:
    """Log axis with ticks at readable plain numbers (25, 50, 100, 200 …), no 10^n labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = (ax.get_xlim() if which == "x" else ax.get_ylim())
    vals = [float(v) for v in data if v is not None and np.isfinite(v) and v > 0]
    extra = [min(vals), max(vals)] if vals else []
    axis.set_major_locator(FixedLocator(nice_log_ticks(lo, hi, extra)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: human(v) if v >= 1e4 else f"{v:,.10g}"))
    axis.set_minor_locator(NullLocator())
    axis.set_minor_formatter(NullFormatter())


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), layout="constrained")
    return fig, fig.add_subplot()


def _save(fig, path: str | Path) -> Path:
    from .reports import write_atomic

    return write_atomic(path, png_bytes(fig))


def png_bytes(fig, dpi: int = 120) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _feasible(df: pd.DataFrame) -> pd.Series:
    return df["status"].isin(FEASIBLE) if "status" in df else pd.Series(True, index=df.index)


def _same_curve(a: pd.Series, b: pd.Series, rel: float) -> bool:
    """Two curves (x → y, NaN = no feasible plan) equal within `rel`, at the same x."""
    if len(a) != len(b) or not np.allclose(a.index.to_numpy(float), b.index.to_numpy(float), rtol=1e-9):
        return False
    x, y = a.to_numpy(float), b.to_numpy(float)
    if not (np.isnan(x) == np.isnan(y)).all():
        return False
    m = ~np.isnan(x)
    return bool(np.allclose(x[m], y[m], rtol=rel, atol=0))


def _mark_infeasible(ax, xs, color, row: int, label: str | None) -> None:
    """An 'x' on the bottom axis at each x that has no feasible plan (one row per curve)."""
    if not len(xs):
        return
    tr = ax.get_xaxis_transform()  # x in data, y in axes fraction
    ax.plot(list(xs), [0.03 + 0.035 * row] * len(xs), "x", color=color, ms=7, mew=2, transform=tr, clip_on=False,
            label=label, linestyle="none")


def _with_columns(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """`df` with each of `cols` present: a study whose every point is infeasible has no figure columns,
    and its chart is all 'x' marks, not a KeyError."""
    missing = [c for c in cols if c not in df]
    return df.assign(**{c: np.nan for c in missing}) if missing else df


# --------------------------------------------------------------------------------------- pareto
def pareto_figure(df: pd.DataFrame, y: str, ylabel: str, title: str, case: str | None = None,
                  objective: str = "tco"):
    """One curve per family: y against tokens/s/user (log x). Speeds where a family has no feasible
    plan are an 'x' in a strip under the chart, one row per family."""
    from matplotlib.figure import Figure

    df = _with_columns(df, y)
    ok = _feasible(df)
    families = list(dict.fromkeys(df["family"])) if "family" in df else ["all"]
    curves = {}
    for fam in families:
        g = (df[df["family"] == fam] if "family" in df else df).sort_values("speed_tok_s_user")
        curves[fam] = pd.Series(np.where(ok[g.index], pd.to_numeric(g[y], errors="coerce"), np.nan),
                                index=g["speed_tok_s_user"].astype(float))
    bad_fams = [f for f in families if curves[f].isna().any()]
    fig = Figure(figsize=(8.5, 5.2 + 0.22 * len(bad_fams)), layout="constrained")
    if bad_fams:
        ax, strip = fig.subplots(2, 1, sharex=True, height_ratios=[5, 0.3 + 0.26 * len(bad_fams)])
    else:
        ax, strip = fig.add_subplot(), None
    for i, fam in enumerate(families):
        s = curves[fam]
        label = str(fam)
        for other in families[:i]:
            if _same_curve(s, curves[other], 1e-9):
                label = f"{fam} (= {other})"
                break
            if _same_curve(s, curves[other], 2e-3):
                label = f"{fam} (≈ {other}, within 0.2%)"
                break
        color = COLORS[i % len(COLORS)]
        feas = s.dropna()
        # later families drawn smaller, hollow and on top, so coinciding curves stay visible
        ax.plot(feas.index, feas.to_numpy(), marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[i % len(LINESTYLES)],
                ms=max(4.0, 11 - 1.6 * i), mfc="none", mew=1.6, lw=max(1.0, 2.6 - 0.35 * i), color=color, label=label,
                zorder=3 + i)
        if fam in bad_fams:
            row = bad_fams.index(fam)
            bad = s.index[s.isna()]
            strip.plot(list(bad), [row] * len(bad), "x", color=color, ms=7, mew=2, linestyle="none",
                       label="infeasible" if row == 0 else None)
    ax.set_xscale("log")
    log_y = y == "usd_per_mtok"
    if log_y:
        ax.set_yscale("log")
    words = OBJECTIVE_WORDS.get(objective, objective)
    ax.set_ylabel(f"{ylabel}\n(each family's {words} plan)")
    head = f"{case} — {words} plan per family" if case else f"{words} plan per family"
    ax.set_title(f"{head}\n{title}")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8.5, loc="best", framealpha=0.9)
    xlabel = "speed target (output tokens/s per user)"
    if strip is not None:
        strip.set_yticks(range(len(bad_fams)), [f"{f}" for f in bad_fams], fontsize=8)
        strip.set_ylim(len(bad_fams) - 0.5, -0.5)
        strip.set_title("infeasible: no plan of the family meets this speed", fontsize=8.5, loc="left")
        strip.grid(True, axis="x", alpha=0.3)
        strip.set_xlabel(xlabel)
    else:
        ax.set_xlabel(xlabel)
    if len(df):
        ax.set_xlim(*_log_pad(df["speed_tok_s_user"].astype(float)))
    _plain_log(ax, "x", df["speed_tok_s_user"].astype(float) if len(df) else [])
    if log_y:
        _plain_log(ax, "y", df.loc[ok, y] if y in df else [])
    else:
        ax.set_ylim(bottom=0)
        _plain_linear(ax.yaxis, ax.get_ylim())
    return fig


def _log_pad(x: pd.Series) -> tuple[float, float]:
    lo, hi = float(x.min()), float(x.max())
    if lo <= 0 or hi <= 0:
        return (max(lo, 1e-3), max(hi, 1.0))
    return lo / 1.15, hi * 1.15


def pareto_plot(df: pd.DataFrame, y: str, ylabel: str, path: str | Path, title: str, case: str | None = None,
                objective: str = "tco") -> Path:
    return _save(pareto_figure(df, y, ylabel, title, case, objective), path)


# ----------------------------------------------------------------------------------------- lines
def line_figure(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str, case: str | None = None):
    """y against x (linear), feasible points joined; infeasible x values as 'x' on the bottom axis."""
    fig, ax = _figure(7.5, 4.6)
    d = _with_columns(df, y).sort_values(x)
    ok = _feasible(d)
    ax.plot(d.loc[ok, x], d.loc[ok, y], marker="o", color=COLORS[0], lw=1.8, label="optimal plan")
    bad = d.loc[~ok, x]
    _mark_infeasible(ax, bad, "tab:red", 0, "infeasible" if len(bad) else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{case} — {title}" if case else title)
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)
    if len(bad):
        ax.legend(fontsize=9)
    _plain_linear(ax.yaxis, ax.get_ylim())
    _plain_linear(ax.xaxis, ax.get_xlim())
    return fig


def line_plot(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, path: str | Path, title: str,
              case: str | None = None) -> Path:
    return _save(line_figure(df, x, y, xlabel, ylabel, title, case), path)


# --------------------------------------------------------------------------------------- tornado
def infer_baseline(df: pd.DataFrame, column: str) -> float | None:
    """The base-case value in a one-at-a-time sweep: the value every varied parameter's points share
    (a ±% range with an odd count holds the base value); None when no value is common to all."""
    if "varied" not in df or column not in df:
        return None
    df = _with_columns(df, column)
    ok = df[_feasible(df)]
    groups = [set(np.round(pd.to_numeric(g[column], errors="coerce").dropna().to_numpy(float), 6))
              for _, g in ok.groupby("varied", sort=False)]
    groups = [g for g in groups if g]
    if not groups:
        return None
    common = set.intersection(*groups) if len(groups) > 1 else set()
    return float(sorted(common)[0]) if len(common) == 1 else None


def tornado_rows(df: pd.DataFrame, column: str) -> tuple[list[dict], list[str]]:
    """Per varied parameter: the metric at its lowest and its highest value (feasible points only).
    Returns (rows, parameters with no feasible point)."""
    rows, empty = [], []
    df = _with_columns(df, column)
    ok = _feasible(df)
    for path, g in df.groupby("varied", sort=False):
        if path not in g:
            continue
        gf = g[ok[g.index]].copy()
        gf["_v"] = pd.to_numeric(gf[path], errors="coerce")
        gf = gf.dropna(subset=["_v", column]).sort_values("_v")
        if gf.empty:
            empty.append(str(path))
            continue
        lo, hi = gf.iloc[0], gf.iloc[-1]
        rows.append({"varied": str(path), "low_value": lo["_v"], "high_value": hi["_v"],
                     "at_low": float(lo[column]), "at_high": float(hi[column]),
                     "min": float(gf[column].min()), "max": float(gf[column].max()),
                     "points": len(g), "feasible": len(gf)})
    rows.sort(key=lambda r: r["max"] - r["min"])
    return rows, empty


def tornado_figure(df: pd.DataFrame, objective: str = "tco", baseline: float | None = None, case: str | None = None):
    """Swing of the objective per varied parameter (one at a time), widest bar on top, split at the
    base-case value: blue = parameter at its lowest value, orange = at its highest."""
    column, name, unit = OBJECTIVE_METRIC.get(objective, ("objective", "objective", ""))
    if column not in df:
        column = "objective"
    rows, empty = tornado_rows(df, column)
    if baseline is None:
        baseline = infer_baseline(df, column)
    fig, ax = _figure(9, 0.62 * max(len(rows), 1) + 2.0 + (0.3 if empty else 0))
    base = baseline if baseline is not None else (np.median([r["at_low"] for r in rows] + [r["at_high"] for r in rows])
                                                  if rows else 0.0)
    span = max([r["max"] for r in rows] + [base]) - min([r["min"] for r in rows] + [base]) if rows else 1.0
    span = span or abs(base) or 1.0
    scale = _axis_scale(base, base + span)
    labels = []
    for i, r in enumerate(rows):
        for val, color, side in ((r["at_low"], "#4c72b0", "low"), (r["at_high"], "#dd8452", "high")):
            ax.barh(i, val - base, left=base, color=color, height=0.6,
                    label=f"{side}est value of the parameter" if i == 0 else None)
        for val, pv in ((r["at_low"], r["low_value"]), (r["at_high"], r["high_value"])):
            right = val >= base
            ax.annotate(f"{human(val, scale)}\n(at {_param(pv)})", (val, i), xytext=(4 if right else -4, 0),
                        textcoords="offset points", ha="left" if right else "right", va="center", fontsize=8)
        note = "" if r["feasible"] == r["points"] else f"\n({r['points'] - r['feasible']} of {r['points']} infeasible)"
        labels.append(r["varied"] + note)
    ax.set_yticks(range(len(rows)), labels)
    if not rows:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no parameter has a feasible point", transform=ax.transAxes, ha="center", va="center")
    if baseline is not None:
        ax.axvline(baseline, color="0.15", lw=1.2, ls="--", label=f"base case {human(baseline, scale)} {unit}", zorder=5)
    lo = min([r["min"] for r in rows] + [base])
    hi = max([r["max"] for r in rows] + [base])
    pad = 0.22 * (hi - lo or span)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    _plain_linear(ax.xaxis, (base, base + span))
    ax.set_xlabel(f"{name} of the {OBJECTIVE_WORDS.get(objective, objective)} plan ({unit})" if unit else name)
    words = OBJECTIVE_WORDS.get(objective, objective)
    ax.set_title(f"{case + ' — ' if case else ''}{words} plan: {name} swing per parameter (one at a time)")
    ax.grid(True, axis="x", alpha=0.3)
    if rows:
        fig.legend(fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    if empty:
        ax.set_xlabel(ax.get_xlabel() + "\nnot shown (no feasible point at any value): " + ", ".join(empty))
    return fig


def _param(v) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return human(v) if abs(v) >= 1e4 else f"{v:,.4g}"


def tornado_plot(df: pd.DataFrame, path: str | Path, metric: str = "objective", objective: str = "tco",
                 baseline: float | None = None, case: str | None = None) -> Path:
    """`metric` is kept for callers that passed it; the objective picks the plotted column and unit."""
    return _save(tornado_figure(df, objective, baseline, case), path)


# ------------------------------------------------------------------------------------ plan charts
def _stacked_bars(ax, pivot: pd.DataFrame, xlabel: str, unit: str, labels: bool) -> list:
    handles = []
    left = np.zeros(len(pivot))
    for i, col in enumerate(pivot.columns):
        vals = pivot[col].to_numpy(float)
        handles.append(ax.barh(range(len(pivot)), vals, left=left, color=COLORS[i % len(COLORS)], label=str(col),
                               hatch=["", "//", "..", "xx", "\\\\"][i % 5], edgecolor="white", height=0.6))
        left += vals
    ax.set_yticks(range(len(pivot)), [str(i) for i in pivot.index] if labels else [""] * len(pivot))
    ax.set_ylim(len(pivot) - 0.5, -0.5)
    top = float(left.max()) if len(left) and left.max() > 0 else 1.0
    scale = _axis_scale(0, top)
    for i, total in enumerate(left):
        ax.annotate(human(total, scale) + (f" {unit}" if unit else ""), (total, i), xytext=(4, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, top * 1.28)
    _plain_linear(ax.xaxis, ax.get_xlim())
    ax.set_xlabel(xlabel)
    ax.grid(True, axis="x", alpha=0.3)
    return handles


def stacked_figure(df: pd.DataFrame, index: str, stack: str, value: str, xlabel: str, title: str, unit: str = ""):
    """Horizontal stacked bars: one bar per `index` value, segments per `stack` value."""
    return stacked_panels(df, index, stack, [(value, xlabel, unit)], title, ncols=1)


def stacked_panels(df: pd.DataFrame, index: str, stack: str, panels: list[tuple[str, str, str]], title: str,
                   ncols: int = 2):
    """Several stacked-bar panels (one per (value, label, unit)) over the same bars and segments, one legend."""
    from matplotlib.figure import Figure

    n_bars = max(df[index].nunique(), 1)
    nrows = math.ceil(len(panels) / ncols)
    width = 9.5 if ncols > 1 else 8
    fig = Figure(figsize=(width, nrows * (0.5 * n_bars + 1.3) + 1.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    handles = []
    for k, (value, xlabel, unit) in enumerate(panels):
        pivot = df.pivot_table(index=index, columns=stack, values=value, aggfunc="sum", fill_value=0, sort=False)
        handles = _stacked_bars(axes[k], pivot, xlabel, unit, labels=k % ncols == 0)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.legend(handles=handles, title=stack, fontsize=8.5, title_fontsize=8.5, loc="outside lower center",
               ncols=min(len(handles), 6), frameon=False)
    return fig
