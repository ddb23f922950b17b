"""Reading user input files, bounded: a case, catalog overlay or points CSV is a few kB to a few MB.

`/dev/zero`, a directory named `x.toml`, an unreadable file or a TOML nested ten thousand deep each
become one clear error instead of exhausting memory or the stack.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import PlannerError, Problem

MAX_INPUT_BYTES = 32 * 1024 * 1024  # the shipped catalogs are ~100 kB; a 32 MB case is a mistake


def read_text(path: str | Path, what: str, error=PlannerError, limit: int = MAX_INPUT_BYTES) -> str:
    """The file's UTF-8 text (a leading BOM dropped), or `error` naming the file and the fix."""
    p = Path(path)
    data = read_bytes(p, what, error, limit)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{p} is not UTF-8 text", [Problem(str(p), str(exc)[:120], "save it as UTF-8 text")])


def read_bytes(path: str | Path, what: str, error=PlannerError, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The file's bytes (at most `limit`), or `error` naming the file and the fix (traces, Parquet)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise error(f"{p} is a directory", [Problem(str(p), "is a directory, not a file", f"give the path of {what}")])
        if p.exists() and not (p.is_file() or p.is_char_device()):  # a FIFO or socket would block the read
            raise error(f"{p} is not a regular file", [Problem(str(p), "a pipe, socket or other special file",
                                                              f"give the path of {what}")])
        with open(p, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise error(f"{what} not found: {p}", [Problem(str(p), "no such file", f"check the path of {what}")])
    except OSError as exc:
        raise error(f"cannot read {p}", [Problem(str(p), exc.strerror or str(exc), f"give a readable {what}")])
    if len(data) > limit:
        raise error(f"{p} is too large", [Problem(str(p), f"more than {limit // 2**20} MB",
                                                  f"give {what}, not a data dump or a device")])
    return data


MAX_NESTING = 32
"""Tables and arrays deeper than this are refused: the deepest case or catalog field is 4 levels, and
a 20,000-level dotted key parses fine but overflows the stack of every later copy or walk."""


def loads_toml(text: str, label: str, error=PlannerError) -> dict:
    """Parsed TOML, or `error` naming the file: syntax errors, pathological nesting and numbers too
    long for Python's int conversion alike."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{label} is not valid TOML", [Problem(label, str(exc), "fix the TOML syntax at that line")])
    except RecursionError:
        raise error(f"{label} is nested too deeply", [Problem(label, "tables or arrays nested beyond what a case needs",
                                                              "flatten the file")])
    except ValueError as exc:  # an integer of more than 4,300 digits (sys.get_int_max_str_digits)
        raise error(f"{label} holds a number too long to read", [Problem(label, str(exc).split(";")[0],
                                                                         "give the figure in a few digits")])
    if nesting_depth(data) > MAX_NESTING:
        raise error(f"{label} is nested too deeply", [Problem(label, f"tables or arrays nested more than "
                                                              f"{MAX_NESTING} levels", "flatten the file")])
    return data


def nesting_depth(value, limit: int = MAX_NESTING) -> int:
    """How deeply tables and arrays nest in `value` (walked without recursion; stops past `limit`)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return depth
        deepest = max(deepest, depth)
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest
