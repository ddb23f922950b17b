"""Running a study's points: in this process, a local pool, speed chains or a Dask cluster; rows
appended to the output as they finish, a resume continuing only the same study, and the frame
tidied and rewritten in point order at the end (same inputs, same bytes, any worker count)."""
from __future__ import annotations

import json
import math
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..errors import CaseError, PlannerError, Problem, SolverError
from .points import CandidateCache, Point, StudySpec, evaluate
from .runtime import (HASH_COLUMN, CsvAppender, Interrupted, OutputLock, StudyOutputError, _Signalled, hold_for_test,
                      raise_if_signalled,
                      check_output, progress, read_resumable, run_chain_pool, run_pool, sigterm_raises, signal_number,
                      study_hash)


def run_points(spec: StudySpec, points: list[Point], workers: int | None = None, scheduler: str | None = None,
               output: str | Path | None = None, resume: bool = False, quiet: bool = True,
               force: bool = False, kind: str = "study", chains: bool = False,
               cache: CandidateCache | None = None) -> pd.DataFrame:
    """Evaluate points (locally, in a pool, or on Dask), appending rows to `output` as they finish.

    The output is checked and locked before any point runs; a resume continues only a file of this
    very study (same `study_sha256`). `cache`: candidate tables for the points run in this process
    (this process's by default; pool and Dask workers keep their own)."""
    points = unique_points(points)
    from ..cases import referenced_files

    sha = study_hash(kind, spec.raw, spec.catalogs, spec.objective, spec.time_limit_s, spec.mip_gap, spec.grid,
                     spec.families, [p.key for p in points], referenced_files(spec.raw, spec.label))
    out = Path(output) if output else None
    if out is None:
        return _finish(_run(spec, points, workers, scheduler, None, sha, quiet, kind, chains, cache), None)
    check_output(out)
    with OutputLock(out):
        done_rows: list[dict] = []
        done: list[Point] = []  # points already written, which a sweep chain replays
        if out.exists() and not (resume or force):
            raise PlannerError(f"{out} exists", [Problem(str(out), "output exists",
                               "pass --resume to continue it, --force to overwrite, or another --output")])
        if out.exists() and resume:
            done_rows = resume_rows(out, sha)
            have = {r["point_key"] for r in done_rows}
            done = [p for p in points if p.key in have]
            points = [p for p in points if p.key not in have]
        elif out.exists():
            out.unlink()
        rows = done_rows + _run(spec, points, workers, scheduler, out, sha, quiet, kind, chains, cache, done)
        return _finish(rows, out)


def unique_points(points: list[Point]) -> list[Point]:
    """One point per key (a value listed twice is one plan, and one row), renumbered in order."""
    seen: set[str] = set()
    out = []
    for p in points:
        if p.key not in seen:
            seen.add(p.key)
            out.append(replace(p, index=len(out)))
    return out


def resume_rows(out: Path, sha: str) -> list[dict]:
    """The rows a previous run of this study finished; the file is rewritten without torn rows."""
    import io

    from ..reports import write_atomic

    text, dropped = read_resumable(out, sha)
    try:
        prev = pd.read_csv(io.StringIO(text), dtype={"point_key": str, HASH_COLUMN: str})
    except (pd.errors.ParserError, ValueError) as exc:
        raise PlannerError(f"--resume: cannot continue {out}", [Problem(f"--resume {out}", f"unreadable rows ({exc})",
                           "use --force (without --resume) to start over, or another --output")]) from None
    rows = [r for r in (_unpack(r) for r in prev.to_dict("records")) if r is not None]
    if len(rows) < len(prev):  # a row whose overflow JSON is cut: recompute it
        dropped += len(prev) - len(rows)
        text = _only_points(text, {r["point_key"] for r in rows})
    if dropped:
        sys.stderr.write(f"--resume: dropped {dropped} torn or repeated row(s) from {out}\n")
    if text != out.read_text(encoding="utf-8", errors="replace"):
        try:
            write_atomic(out, text)
        except OSError as exc:
            raise StudyOutputError(f"cannot rewrite {out}", [Problem(str(out), exc.strerror or str(exc),
                                   "free space and rerun with --resume")]) from None
    return rows


def _only_points(text: str, keys: set[str]) -> str:
    """The CSV text with only the rows of these point keys."""
    import csv
    import io

    records = list(csv.reader(io.StringIO(text)))
    ki = records[0].index("point_key")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([records[0]] + [r for r in records[1:] if r[ki] in keys])
    return buf.getvalue()


CHAIN_POINTS = 10
"""Speeds per chain: long enough to reuse one model across points, short enough that a 2-core pool
stays busy (one family's chain of 40 took as long as the other four together). Fixed, not derived
from the worker count, so the same inputs give the same rows with any number of workers."""


def _chains(points: list[Point]) -> list[list[Point]]:
    """A speed study's points grouped by family and cut into runs of adjacent speeds, each one chain
    (planner/speed_chain.py)."""
    from ..speed_chain import speed_of

    groups: dict[str | None, list[Point]] = {}
    for p in points:
        groups.setdefault(p.family, []).append(p)
    chains = []
    for group in groups.values():
        group = sorted(group, key=speed_of)
        chains += [group[i:i + CHAIN_POINTS] for i in range(0, len(group), CHAIN_POINTS)]
    return chains


def _run(spec: StudySpec, points: list[Point], workers, scheduler, out: Path | None, sha: str, quiet: bool,
         kind: str, chains: bool | str = False, cache: CandidateCache | None = None, done: list[Point] = ()) -> list[dict]:
    """Evaluate the points; Ctrl-C or SIGTERM stops promptly with the finished rows on disk.
    `chains`: the points are speed targets, solved per family as a chain (one model, re-solved)."""
    new_rows: list[dict] = []
    appender = CsvAppender(out) if out is not None else None
    bar = progress(len(points), quiet, kind)

    def finished(row):
        raise_if_signalled()  # a row that failed because a signal hit HiGHS is not a result
        row[HASH_COLUMN] = sha
        if appender:
            appender.add(row)
        new_rows.append(row)
        bar.update(1)
        hold_for_test(len(new_rows))

    try:
        with sigterm_raises():
            shaped = any(isinstance(c, dict) and ("lengths" in c or "trace" in c) for c in spec.raw.get("classes", []))
            if chains and not scheduler and (chains == "sweep" or not shaped):  # length buckets: per-bucket speeds
                from ..price_chain import chains_of, evaluate_price_chain  # chains="sweep": price chains
                from ..speed_chain import evaluate_chain

                evaluate_chain, groups = (evaluate_price_chain, chains_of(points, done)) if chains == "sweep" else (
                    evaluate_chain, _chains(points))
                if (workers or 1) > 1 and len(groups) > 1:
                    run_chain_pool(evaluate_chain, spec, groups, workers, finished)
                else:
                    for group in groups:
                        evaluate_chain(spec, group, finished)
            elif scheduler:
                _run_dask(spec, points, scheduler, finished)
            elif (workers or 1) > 1 and len(points) > 1:
                run_pool(evaluate, spec, points, workers, finished)
            else:
                for p in points:
                    finished(evaluate(spec, p, cache))
    except (KeyboardInterrupt, _Signalled) as exc:
        signum = signal_number(exc)
        name = signal.Signals(signum).name
        where = f"{len(new_rows)} of {len(points)} points finished" + (f" and kept in {out}" if out else "")
        raise Interrupted(signum, f"interrupted by {name}: {where}", [Problem(
            "--resume", "the study stopped before its last point",
            "rerun the same command with --resume to continue" if out else "rerun it")]) from None
    finally:
        bar.close()
        if appender:
            appender.close()
    return new_rows


def _finish(rows: list[dict], out: Path | None) -> pd.DataFrame:
    """Tidy the rows, say how many points failed (invalid, solver error), and rewrite the output
    in point order. A study none of whose points has an answer is an error, not a CSV of reasons."""
    df = tidy(pd.DataFrame(rows))
    failed = df[df["status"].isin(("invalid", "solver_error"))] if "status" in df else df.iloc[0:0]
    if len(df) and len(failed) == len(df):
        if out is not None:
            out.unlink(missing_ok=True)  # only failed rows: nothing worth resuming
        first = failed.iloc[0]
        invalid = first["status"] == "invalid"
        raise (CaseError if invalid else SolverError)(
            f"{'every point of the study is invalid' if invalid else 'no point of the study was solved'} "
            f"({len(df)} point(s))", [Problem(f"point {first['point']}", str(first.get("message", "")),
                                              "fix the case or the varied values; `fleet validate CASE --set "
                                              "PATH=VALUE` checks one" if invalid else "")])
    if len(failed):
        first = failed.iloc[0]
        counts = [f"{n} of {len(df)} points {what}" for n, what in (
            ((failed["status"] == "invalid").sum(), "are invalid"),
            ((failed["status"] == "solver_error").sum(), "failed to solve")) if n]
        sys.stderr.write(f"warning: {'; '.join(counts)} (first, point {first['point']}: "
                         f"{first.get('message', '')})\n")
    if out is not None:
        from ..reports import write_atomic

        try:
            write_atomic(out, df.to_csv(index=False, lineterminator="\n", float_format="%.10g"))
        except OSError as exc:
            raise StudyOutputError(f"cannot rewrite {out}", [Problem(str(out), exc.strerror or str(exc),
                                   "free space and rerun with --resume: the rows appended so far are kept")]) from None
    return df


def _unpack(row: dict) -> dict | None:
    """A row read back from a partial CSV: NaN → missing, the 'extra' JSON back into columns
    (None when that JSON is not a whole object)."""
    out = {k: v for k, v in row.items() if k != "extra" and not (isinstance(v, float) and math.isnan(v))}
    extra = row.get("extra")
    if isinstance(extra, str) and extra:
        try:
            extra = json.loads(extra)
        except ValueError:
            return None
        if not isinstance(extra, dict):
            return None
        out.update(extra)
    return out


def is_count_column(name: str) -> bool:
    """`chips.<id>` (one dot) is a plan's chip count; `chips.<id>.<field>` is a varied catalog figure."""
    return name.startswith("chips.") and name.count(".") == 1


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Point order; identity and status columns first, chips/shadow columns sorted, timing and hash last."""
    if df.empty:
        return df
    df = df.drop(columns=[c for c in ("extra",) if c in df]).sort_values("point", kind="stable").reset_index(drop=True)
    first = [c for c in ("point", "point_key", "family") if c in df]
    last = [c for c in ("wall_s", HASH_COLUMN) if c in df]
    lead = [c for c in df.columns if c not in first and c not in last and not c.startswith(("chips.", "shadow.", "lp_shadow."))]
    tail = sorted(c for c in df.columns if c.startswith("chips.")) + sorted(
        c for c in df.columns if c.startswith(("shadow.", "lp_shadow.")))
    counts = [c for c in df.columns if is_count_column(c)]
    df[counts] = df[counts].fillna(0).astype(int)
    return df[first + lead + tail + last]


def _run_dask(spec, points, address, finished):
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise PlannerError("--scheduler needs dask.distributed", [Problem(
            "--scheduler", "dask.distributed is not installed", "pip install 'fleet-planner[dask]'")])
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise PlannerError(f"cannot reach the Dask scheduler at {address}", [Problem(
            "--scheduler", str(exc), "check the address (tcp://host:8786) and that the scheduler runs")])
    with client:
        futures = client.map(evaluate, [spec] * len(points), points, pure=False)
        try:
            for f in as_completed(futures):
                finished(f.result())
        except BaseException:
            client.cancel(futures)
            raise


def beside(output: str | Path, suffix: str) -> Path:
    """A file beside the sweep CSV: out/t.csv → out/t{suffix}, run.v1/results → run.v1/results{suffix}
    (only a .csv suffix is dropped; dots in directories and names stay)."""
    out = Path(output)
    stem = out.stem if out.suffix.lower() == ".csv" else out.name
    return out.with_name(f"{stem}{suffix}")


def tornado_path(output: str | Path) -> Path:
    """The tornado PNG beside the sweep CSV (out/tornado.csv → out/tornado.png, not tornado_tornado.png)."""
    out = Path(output)
    stem = out.stem if out.suffix.lower() == ".csv" else out.name
    return beside(output, ".png" if stem.lower().endswith("tornado") else "_tornado.png")
