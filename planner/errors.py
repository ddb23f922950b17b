"""The exception tree; every error the CLI turns into a clean message.

    PlannerError                 base: anything the user can fix
    ├── CatalogError             a catalog file or overlay is malformed or names nothing known
    ├── CaseError                a case file or a --set override is malformed or invalid
    ├── InfeasibleError          the targets cannot be met (carries the diagnosis)
    └── SolverError              the solver failed, is missing, or found no plan in time
        └── TimeLimitError       the time limit ran out before any plan was found

Each carries a list of `Problem`s so validation can report every problem at once.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where (file and field path), what, and how to fix it."""

    where: str
    what: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}"
        return f"{text} — {self.fix}" if self.fix else text


class PlannerError(Exception):
    """Base class; `problems` lists every problem found, `exit_code` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])

    def render(self) -> str:
        lines = [str(self.args[0])]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class CatalogError(PlannerError):
    pass


class CaseError(PlannerError):
    pass


class InfeasibleError(PlannerError):
    exit_code = 1


class SolverError(PlannerError):
    exit_code = 3


class TimeLimitError(SolverError):
    """The time limit ran out before any plan was found: a failure, never an empty plan."""


def did_you_mean(word: str, options) -> str:
    """A 'did you mean X?' hint, or '' when nothing is close."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""
