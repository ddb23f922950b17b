"""Run-time machinery of a study: its output file (checked, locked, resumed, appended), progress,
the worker pool, and signals.

The output CSV is the study's memory between runs, so it is treated as untrusted on resume: every
row carries `study_sha256`, the hash of everything that decides the rows, and a resume whose hash
differs is refused. Rows are appended one `write` of a whole line each, and a failed write is
truncated back to the last good row, so a full disk or a kill leaves a file that resumes.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import PlannerError, Problem
from ..signals import (_RECEIVED, _Signalled, raise_if_signalled, signal_number, signals_ignored,  # noqa: F401 (re-exported)
                       sigterm_raises)

HASH_COLUMN = "study_sha256"


class StudyOutputError(PlannerError):
    """The output cannot be written (full disk, size limit, I/O error) — after some points ran."""

    exit_code = 3


class Interrupted(PlannerError):
    """SIGINT/SIGTERM stopped the study; the finished rows are in the output. Exit 128 + signal."""

    def __init__(self, signum: int, message: str, problems: list[Problem] | None = None):
        super().__init__(message, problems)
        self.exit_code = 128 + signum


# ------------------------------------------------------------------------------------- the hash
def study_hash(kind: str, raw: dict, catalogs, objective: str, time_limit_s: float, mip_gap: float, grid: str,
               families: dict, point_keys, files=()) -> str:
    """SHA-256 of what decides a study's rows: kind, raw case after --set, overlay file contents,
    solve settings, families and the points themselves (so resume never mixes two studies)."""
    overlays = []
    for c in catalogs:
        try:
            overlays.append(hashlib.sha256(Path(c).read_bytes()).hexdigest())
        except OSError:
            overlays.append(str(c))  # an unreadable overlay already failed to load; keep the hash total
    for f in files:  # files the case reads (traces): a changed trace is another study
        try:
            overlays.append(hashlib.sha256(Path(f).read_bytes()).hexdigest())
        except OSError:
            overlays.append(str(f))
    blob = json.dumps({"kind": kind, "raw": raw, "catalogs": overlays, "objective": objective,
                       "time_limit_s": float(time_limit_s), "mip_gap": float(mip_gap), "grid": grid,
                       "families": families, "points": list(point_keys)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------------------------- the file
def _refuse(path: Path, what: str, fix: str) -> PlannerError:
    return PlannerError(f"cannot write {path}", [Problem(str(path), what, fix)])


def check_output(path: Path) -> None:
    """Refuse an output that cannot take rows — before any point runs, not after an hour of solving."""
    if path.is_dir():
        raise _refuse(path, "is a directory", "give a file name, e.g. out/sweep.csv")
    if path.exists() and not path.is_file():
        raise _refuse(path, "is not a regular file (a device or pipe cannot be resumed)",
                      "give a path to a .csv file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _refuse(path, f"cannot create its directory: {exc.strerror or exc}",
                      "choose a writable location") from None
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise _refuse(path, "is read-only", "choose a writable location")


class OutputLock:
    """One writer per output: a non-blocking flock on `<output>.lock`, removed on release.

    After locking, the lock file must still be the one at the path (a releasing writer unlinks it;
    a process that opened the old file would otherwise hold a lock nobody else sees)."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self.fd: int | None = None

    def acquire(self) -> "OutputLock":
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise _refuse(self.path.with_suffix(""), f"cannot create the lock file: {exc.strerror or exc}",
                              "choose a writable location") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                out = str(self.path)[:-5]
                raise PlannerError(f"{out} is being written by another study", [Problem(
                    out, f"locked by another fleet process{f' (pid {holder})' if holder else ''} ({self.path})",
                    "wait for it to finish, or choose another --output")]) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return self
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _csv_line(values) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(
        ["" if v is None else (" ".join(v.splitlines()) if isinstance(v, str) else v) for v in values])
    return buf.getvalue().encode("utf-8")


class CsvAppender:
    """Appends rows as they finish, each as one write of a whole line; a row whose write fails is
    cut off again, so the file always ends on a complete row. Columns are those first seen; fields
    of later rows outside them go into `extra` (JSON) until the final rewrite."""

    def __init__(self, path: Path):
        self.path, self.columns = Path(path), None
        self.fd: int | None = None
        self.good = 0  # offset after the last complete row
        self.created = False

    def _open(self, row: dict) -> bytes:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = b""
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, encoding="utf-8", newline="") as fh:
                self.columns = next(csv.reader(fh))
        else:
            self.columns = list(row) + ["extra"]
            header = _csv_line(self.columns)
            self.created = not self.path.exists()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.good = os.lseek(self.fd, 0, os.SEEK_END)
        return header

    def add(self, row: dict) -> None:
        try:
            data = self._open(row) if self.fd is None else b""
            extra = {k: v for k, v in row.items() if k not in self.columns}
            data += _csv_line(json.dumps(extra, default=str) if c == "extra" else row.get(c, "")
                              for c in self.columns)
            written = os.write(self.fd, data)
            if written != len(data):
                raise OSError(errno.EFBIG, f"short write ({written} of {len(data)} bytes): disk full or file size limit")
            os.fsync(self.fd)
        except BaseException as exc:
            self._cut()
            if isinstance(exc, OSError):
                raise StudyOutputError(f"cannot write {self.path}", [Problem(
                    str(self.path), exc.strerror or str(exc),
                    "free space (or raise the file size limit) and rerun with --resume: the rows written so "
                    "far are kept")]) from None
            raise
        self.good += len(data)

    def _cut(self) -> None:
        """Back to the last complete row (no file at all if this appender created it and wrote none)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, self.good)
            if self.created and self.good == 0:
                self.close()
                self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def read_resumable(path: Path, study_sha256: str) -> tuple[str, int]:
    """The clean CSV text of a previous run of *this* study, and how many rows were dropped.

    Refuses (PlannerError naming --resume) a file that is empty, not a study CSV, or from another
    study. Drops a last line without its newline, rows of the wrong field count or without a point
    key, and repeated points."""
    fix = "rerun with the same case, --set, --catalog and options, or use --force (without --resume) to start over, or another --output"
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise _resume_refusal(path, "is not a UTF-8 CSV", fix) from None
    except OSError as exc:
        raise _resume_refusal(path, f"cannot be read: {exc.strerror or exc}", fix) from None
    complete = text[: text.rfind("\n") + 1]
    torn = int(bool(text[len(complete):].strip()))
    try:
        records = list(csv.reader(io.StringIO(complete)))
    except csv.Error as exc:
        raise _resume_refusal(path, f"is not a CSV ({exc})", fix) from None
    if not records or not records[0]:
        raise _resume_refusal(path, "is empty", fix)
    header = records[0]
    if "point_key" not in header or HASH_COLUMN not in header:
        raise _resume_refusal(path, f"has no {HASH_COLUMN} column: not written by a fleet study (or by an older "
                              "version), so its rows cannot be trusted", fix)
    ki, hi = header.index("point_key"), header.index(HASH_COLUMN)
    width = len(header)
    if "extra" not in header:  # a finished (rewritten) file: appended rows need the overflow column
        header = header + ["extra"]
    good, seen = [header], set()
    for rec in records[1:]:
        if len(rec) != width or not rec[ki].strip():
            torn += 1
            continue
        if rec[hi] != study_sha256:
            raise _resume_refusal(path, "was written by a different study (another case, --set, --catalog, "
                                  "objective, grid, time limit, MIP gap or points)", fix)
        if rec[ki] not in seen:
            seen.add(rec[ki])
            good.append(rec + [""] * (len(header) - width))
        else:
            torn += 1
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(good)
    return buf.getvalue(), torn


def _resume_refusal(path: Path, what: str, fix: str) -> PlannerError:
    return PlannerError(f"--resume: cannot continue {path}", [Problem(f"--resume {path}", what, fix)])


# ------------------------------------------------------------------------------------- progress
class _Lines:
    """A file-like for tqdm off a terminal: each refresh becomes one line (no carriage returns),
    and a refresh that repeats the last count is dropped."""

    def __init__(self, stream):
        self.stream, self.last = stream, None

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        key = line.split(" points")[0]
        if line and key != self.last:
            self.last = key
            self.stream.write(line + "\n")
            self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int, quiet: bool, desc: str = "study"):
    """tqdm with an ETA: a live bar on a terminal; off one (CI, pipes) a line per ~10 % of the points."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: workers are forked from this process
    stream = sys.stderr
    if quiet or total < 1:
        return tqdm(total=total, disable=True)
    fmt = "{desc}: {n_fmt}/{total_fmt} points ({percentage:.0f}%), {elapsed} elapsed, ETA {remaining}"
    if stream.isatty():
        return tqdm(total=total, desc=desc, unit="point", file=stream, dynamic_ncols=True)
    return tqdm(total=total, desc=desc, file=_Lines(stream), bar_format=fmt, mininterval=0,
                miniters=max(1, total // 10), ascii=True)


# ------------------------------------------------------------------------------------- signals (planner/signals.py)
HOLD_ENV = "FLEET_PLANNER_TEST_HOLD"
"""Test-only: "N:PATH" makes a study stop after its N-th kept row, create PATH and wait there (up to
HOLD_LIMIT_S) for a signal, so a signal test interrupts a study at a known point instead of racing it."""
HOLD_LIMIT_S = 120.0


def hold_for_test(rows_kept: int) -> None:
    """Wait at the row count HOLD_ENV names (a no-op unless a test set it); a signal ends the wait by
    raising as it does anywhere else in the study."""
    spec = os.environ.get(HOLD_ENV, "")
    count, _, marker = spec.partition(":")
    if not marker or not count.isdigit() or rows_kept != int(count):
        return
    Path(marker).touch()
    deadline = time.monotonic() + HOLD_LIMIT_S
    while time.monotonic() < deadline:
        time.sleep(0.05)
        raise_if_signalled()


# ------------------------------------------------------------------------------------- the pool
def _worker_init() -> None:
    """Workers die with the parent (PR_SET_PDEATHSIG on Linux, a watchdog elsewhere) and leave
    Ctrl-C to the parent, which stops them itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        if libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        def watch():
            import time

            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def run_pool(evaluate: Callable, spec: Any, points: list, workers: int, finished: Callable[[dict], None]) -> None:
    """Evaluate points in a local process pool; on any exit but success (Ctrl-C, SIGTERM, a write
    error) queued points are cancelled and the workers are stopped, not waited for."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init)
    try:
        futures = [pool.submit(evaluate, spec, p) for p in points]
        for f in as_completed(futures):
            finished(f.result())
    except BaseException:
        with signals_ignored():
            stop_pool(pool)
        raise
    pool.shutdown(wait=True)


_ROWS = None  # in a chain worker: the queue its finished rows go to


def _chain_worker_init(rows) -> None:
    global _ROWS
    _ROWS = rows
    _worker_init()


def _run_chain(evaluate_chain: Callable, spec: Any, chain: list) -> int:
    return evaluate_chain(spec, chain, _ROWS.put)


def run_chain_pool(evaluate_chain: Callable, spec: Any, chains: list[list], workers: int,
                   finished: Callable[[dict], None]) -> None:
    """Evaluate chains of points (each chain in one worker, in order) in a local process pool; each
    row reaches `finished` as soon as its point is done, not when its chain is."""
    import multiprocessing
    import queue
    from concurrent.futures import ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context()
    rows = ctx.Queue()
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_chain_worker_init, initargs=(rows,))
    try:
        futures = [pool.submit(_run_chain, evaluate_chain, spec, c) for c in sorted(chains, key=len, reverse=True)]
        pending = set(futures)
        while pending:
            try:
                finished(rows.get(timeout=0.2))
                continue
            except queue.Empty:
                pass
            done, pending = wait(pending, timeout=0)
            for f in done:
                f.result()  # a worker's crash surfaces here
        while True:  # rows still in the queue after the last chain ended
            try:
                finished(rows.get(timeout=0.5))
            except queue.Empty:
                break
    except BaseException:
        with signals_ignored():
            stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def stop_pool(pool) -> None:
    """Cancel what is queued and end the running workers now (SIGTERM, then SIGKILL after 2 s)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(2.0)
        if p.is_alive():
            p.kill()
            p.join(2.0)
