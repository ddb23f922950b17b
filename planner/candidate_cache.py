"""Candidate tables cached on disk, so planning the same case again skips the layout search.

A table is stored under a key that hashes everything it may depend on: the whole case (classes,
shapes, fleet, every chip's and model's figures, and — more than the table needs, so a hit is never
doubtful — economics and constraints), the grid, the source of every module of this package
(a new performance model is a new key), and the Python, NumPy and pandas versions. A hit is a file
named by that key whose own header repeats the key and whose columns hash to the checksum its header
records; anything else — a missing, torn, corrupt, edited or foreign file — is a miss: the table is
generated again and the file replaced.

Files are written atomically (a temporary file in the same directory, then renamed) and hold no
pickles: each column is a plain NumPy array (`np.load(allow_pickle=False)`) with its pandas dtype
in a JSON header, the shared units' `serves` tuples as JSON text.

Where: $FLEET_PLANNER_CACHE_DIR, else $XDG_CACHE_HOME/fleet-planner/candidates, else
~/.cache/fleet-planner/candidates. Off when FLEET_PLANNER_NO_CACHE is set (to anything but "" or
"0") or with `fleet plan --no-cache`; a cache directory that cannot be written only costs the time.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT = 2
"""Bumped when the file layout changes (part of the key). 2: a sha256 of the columns in the header."""


def cache_dir() -> Path:
    if os.environ.get("FLEET_PLANNER_CACHE_DIR"):
        return Path(os.environ["FLEET_PLANNER_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fleet-planner" / "candidates"


def enabled() -> bool:
    return os.environ.get("FLEET_PLANNER_NO_CACHE", "") in ("", "0")


_SOURCE: str | None = None


def _source_hash() -> str:
    """sha256 over every module source of this package (sub-packages included) and of the
    formulations (read once per process)."""
    global _SOURCE
    if _SOURCE is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent
        for path in sorted([*root.rglob("*.py"), *root.parent.joinpath("formulations").rglob("*.py")]):
            h.update(str(path.relative_to(root.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
        _SOURCE = h.hexdigest()
    return _SOURCE


def key(case, grid) -> str:
    """The cache key of the candidate table of `case` on `grid` (GridOptions)."""
    with np.printoptions(threshold=sys.maxsize):  # a trace's arrays in full, never "..."
        blob = repr((FORMAT, _source_hash(), platform.python_version(), np.__version__, pd.__version__, grid,
                     case.classes, case.fleet, sorted(case.chips.items()), sorted(case.models.items()),
                     sorted(case.shapes.items()), case.economics, case.constraints, sorted(case.options.items()),
                     sorted(case.catalog_versions.items()), case.periods))  # options and catalog date: the plan year
    return hashlib.sha256(blob.encode()).hexdigest()


def build(case, grid=None, deadline: float | None = None, use_cache: bool = True) -> pd.DataFrame:
    """build_candidates(case, grid, deadline), from the cache when it holds this very table."""
    from .candidates import GridOptions, build_candidates

    grid = grid or GridOptions()
    if not (use_cache and enabled()):
        return build_candidates(case, grid, deadline=deadline)
    k = key(case, grid)
    path = cache_dir() / f"{k}.npz"
    table = load(path, k)
    if table is None:
        table = build_candidates(case, grid, deadline=deadline)
        save(path, k, table)
    return table


def load(path: Path, k: str) -> pd.DataFrame | None:
    """The table stored at `path` under key `k`; None when the file is missing, unreadable or not it."""
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # fh: closed even when np.load fails
            meta = json.loads(str(f["__meta__"]))
            if meta.get("key") != k or meta.get("format") != FORMAT:
                return None
            if meta.get("sha256") != _checksum(f[f"c{i}"] for i in range(len(meta["columns"]))):
                return None  # edited or torn after it was written: never trusted
            cols = {}
            for i, (name, dtype) in enumerate(meta["columns"]):
                values = f[f"c{i}"]
                if name == "serves":
                    cols[name] = pd.Series([tuple(tuple(x) for x in json.loads(v)) if v else None for v in values],
                                           dtype=object)
                else:
                    cols[name] = pd.Series(values, dtype=dtype)
        table = pd.DataFrame(cols)
        return table if len(table) == meta["rows"] else None
    except Exception:  # noqa: BLE001 — a cache file that cannot be read is a miss, whatever went wrong
        return None


def _checksum(arrays) -> str:
    """sha256 over the columns as stored: dtype, shape and bytes of each, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode() + b"\0" + a.tobytes() + b"\0")
    return h.hexdigest()


def save(path: Path, k: str, table: pd.DataFrame) -> None:
    """Store `table` under key `k` (atomically; a failure to write leaves no file and is not an error)."""
    arrays, columns = {}, []
    for i, name in enumerate(table.columns):
        s = table[name]
        text = s.dtype == object or pd.api.types.is_string_dtype(s.dtype)
        if name != "serves" and text and s.isna().any():  # a missing text value has no plain-array form
            return
        if name == "serves":
            arrays[f"c{i}"] = np.array([json.dumps(v) if isinstance(v, tuple) else "" for v in s], dtype=str)
        elif text:
            arrays[f"c{i}"] = np.array(s.tolist(), dtype=str)
        else:
            arrays[f"c{i}"] = s.to_numpy()
        columns.append((name, str(s.dtype)))
    arrays["__meta__"] = np.array(json.dumps({"key": k, "format": FORMAT, "rows": len(table), "columns": columns,
                                              "sha256": _checksum(arrays[f"c{i}"] for i in range(len(columns)))}))
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as out:
            np.savez(out, **arrays)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
