"""Figures for studies (matplotlib, headless), written atomically as PNG."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from .reports import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    return write_atomic(path, buf.getvalue())


def pareto_plot(df: pd.DataFrame, y: str, ylabel: str, path: str | Path, title: str) -> Path:
    """One curve per family: y against tokens/s/user (log x), feasible points only."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(8, 5))
    ok = df[df["status"].isin(["optimal", "feasible", "time_limit"])] if "status" in df else df
    for fam, g in ok.groupby("family", sort=False):
        g = g.sort_values("speed_tok_s_user")
        ax.plot(g["speed_tok_s_user"], g[y], marker="o", ms=3, label=fam)
    ax.set_xscale("log")
    if y == "usd_per_mtok":
        ax.set_yscale("log")
    ax.set_xlabel("tokens/s per user (speed target)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    out = _save(fig, path)
    plt.close(fig)
    return out


def line_plot(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, path: str | Path, title: str) -> Path:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ok = df[df["status"].isin(["optimal", "feasible", "time_limit"])]
    ax.plot(ok[x], ok[y], marker="o")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out


def tornado_plot(df: pd.DataFrame, path: str | Path, metric: str = "objective") -> Path:
    """Objective swing per varied parameter (one-at-a-time sweep), widest bar on top."""
    plt = _figure()
    ok = df[df["status"].isin(["optimal", "feasible", "time_limit"])]
    swings = ok.groupby("varied")[metric].agg(["min", "max"])
    swings = swings.assign(width=swings["max"] - swings["min"]).sort_values("width")
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(swings) + 1.5))
    ax.barh(swings.index, swings["width"], left=swings["min"], color="tab:blue")
    ax.set_xlabel(metric)
    ax.set_title("objective swing per parameter (one at a time)")
    out = _save(fig, path)
    plt.close(fig)
    return out
