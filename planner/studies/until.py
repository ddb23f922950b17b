"""Break-even's --until: a predicate over a plan row, read by a small grammar, never evaluated."""
from __future__ import annotations

import math
import re
from typing import Callable

from ..errors import CaseError, PlannerError, Problem, did_you_mean


UNTIL = re.compile(r"^\s*(chips\.([\w.\-]+)|stage\.(?:([\w\-]+)\.)?([\w\-]+))\s*"
                   r"(==|!=|>=|<=|>|<)\s*([\w.\-]+)\s*$")
UNTIL_FORMS = "use 'chips.ID > 0', 'chips.ID == 0' or 'stage.decode_ffn == CHIP' (optionally stage.CLASS.STAGE)"


def parse_until(expr: str, case=None, catalog=None) -> Callable[[dict], bool]:
    """A predicate over a plan row: 'chips.ID OP NUMBER' or 'stage[.CLASS].STAGE ==|!= CHIP'.
    Parsed by a small grammar — never evaluated as code. With the case (and its catalog), chip
    ids (or aliases), classes and stages must be the case's, so a typo fails before any solve."""
    from ..domain import STAGES

    m = UNTIL.match(expr or "")
    if not m:
        raise CaseError(f"cannot read --until '{expr}'", [Problem("--until", f"'{expr}'", UNTIL_FORMS)])
    chip_id, cls, stage, op, rhs = m.group(2), m.group(3), m.group(4), m.group(5), m.group(6)
    ops = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
           "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}
    if chip_id:
        try:
            number = float(rhs)
        except ValueError:
            raise CaseError(f"--until: '{rhs}' is not a number", [Problem("--until", rhs, "compare chip counts to a number")])
        if not math.isfinite(number):
            raise CaseError(f"--until: '{rhs}' is not a finite number", [Problem("--until", rhs, "compare chip counts to a number")])
        chip_id = _case_chip(chip_id, case, catalog)
        return lambda row: row.get("status") in ("optimal", "feasible", "time_limit") and ops[op](
            float(row.get(f"chips.{chip_id}", 0) or 0), number)
    if op not in ("==", "!="):
        raise CaseError("--until: stages compare with == or !=", [Problem("--until", op, "use == or !=")])
    if stage not in STAGES:
        raise CaseError(f"--until: no stage '{stage}'", [Problem("--until", f"unknown stage '{stage}'",
                        did_you_mean(stage, STAGES) or f"stages: {', '.join(STAGES)}")])
    if case is not None and cls is not None:
        names = [c.name for c in case.classes]
        if cls not in names:
            raise CaseError(f"--until: no class '{cls}'", [Problem("--until", f"unknown class '{cls}'",
                            did_you_mean(cls, names) or f"classes of this case: {', '.join(names)}")])
    rhs = _case_chip(rhs, case, catalog)

    def stage_pred(row):
        if row.get("status") not in ("optimal", "feasible", "time_limit"):
            return False
        chips = {s.split("=")[1] for s in str(row.get("stages", "")).split(";") if "=" in s
                 and s.split("=")[0].split(":")[1] == stage and (cls is None or s.split(":")[0] == cls)}
        return (rhs in chips) if op == "==" else (rhs not in chips)

    return stage_pred


def _case_chip(key: str, case, catalog) -> str:
    """A chip id or alias of the case's fleet, as its catalog id (rows name chips by id)."""
    if case is None:
        return key
    allowed = list(case.fleet.chips)
    try:
        chip_id = catalog.resolve_chip(key) if catalog is not None else key
    except PlannerError:
        chip_id = None
    if chip_id not in allowed:
        raise CaseError(f"--until: '{key}' is not a chip of this case", [Problem(
            "--until", f"'{key}' is not in the case's fleet",
            did_you_mean(key, allowed) or f"chips of this case: {', '.join(allowed)}")])
    return chip_id
