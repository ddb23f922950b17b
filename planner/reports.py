"""Writers: tidy tables to text / JSON / CSV, and atomic file output (temp file + rename)."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value == 0:
            return "0"
        if abs(value) >= 1e12 or abs(value) < 1e-3:
            return f"{value:.4g}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 1000 else str(value)
    return str(value)


def text_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               headers: Mapping[str, str] | None = None, max_width: int = 60) -> str:
    """A plain aligned table; numbers right-aligned, long text cut at `max_width`."""
    if not rows:
        return "(none)"
    columns = list(columns or rows[0].keys())
    headers = dict(headers or {})
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in row] for row in cells]
    names = [headers.get(c, c) for c in columns]
    widths = [max(len(n), *(len(row[i]) for row in cells)) for i, n in enumerate(names)]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in columns]

    def line(vals):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric)).rstrip()

    out = [line(names), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def to_json(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def _clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf → null, numpy scalars → Python, tuples → lists."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    rows = list(rows)
    buf = io.StringIO()
    columns = list(columns or (rows[0].keys() if rows else []))
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _csv_value(r.get(k)) for k in columns})
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    v = _clean(v)
    if isinstance(v, float):
        return repr(round(v, 10))
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True)
    return "" if v is None else v


def check_writable(directory: str | Path, target: str | Path, option: str, fix: str) -> None:
    """Raise a PlannerError naming `option` unless a file can really be created in `directory`
    (a probe, because os.access says yes to root on a read-only mount)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        from .errors import PlannerError, Problem

        raise PlannerError(f"cannot write {target}", [Problem(option, f"{directory}: {exc.strerror or exc}", fix)]) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes, force: bool = True) -> Path:
    """Write via a temp file in the same directory and rename: readers never see half a file."""
    path = Path(path)
    if path.exists() and not force:
        from .errors import PlannerError, Problem

        raise PlannerError(f"{path} exists", [Problem(str(path), "output file exists",
                                                      "pass --force to overwrite or choose another path")])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = "wb" if isinstance(data, bytes) else "w"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        from .errors import PlannerError, Problem

        raise PlannerError(f"cannot write {path}", [Problem(str(path), exc.strerror or str(exc),
                                                            "choose a writable path in an existing directory")])
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; an output file gets the user's usual mode
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        from .errors import PlannerError, Problem

        raise PlannerError(f"cannot write {path}", [Problem(str(path), exc.strerror or str(exc),
                                                            "free space or choose a writable path; nothing was changed")])
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def render(rows: Sequence[Mapping[str, Any]], fmt: str, columns=None, headers=None) -> str:
    """One table in the user's format: table | json | csv."""
    if fmt == "json":
        return to_json([{c: r.get(c) for c in (columns or r.keys())} for r in rows])
    if fmt == "csv":
        return to_csv(rows, columns)
    return text_table(rows, columns, headers) + "\n"
