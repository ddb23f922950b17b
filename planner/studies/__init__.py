"""Studies: many plans at once — sweeps, Pareto frontiers, budget curves, break-even searches.

Every study is a list of *points*; a point is a set of overrides (`--set` paths, including catalog
figures `chips.ID.FIELD`) applied to one raw case. Points run in this process, in a local process
pool (`workers`), or on a Dask distributed cluster (`scheduler`); each finished point becomes one
tidy row. Rows are appended to the CSV as they finish (a killed run leaves a valid CSV; `resume`
skips the points already written, and only for the same study: see runtime) and the file is
rewritten in point order at the end, so the same inputs give the same bytes whatever the worker count.
Bad study values and misspelt paths are refused before any point is solved.

One module per job; every public name is importable from `planner.studies`:

    points    a point, the study spec, one point → raw case → candidates → plan → row
    families  the fleet families of a Pareto study and how one narrows a case
    values    study values ('1,2,3', 'a:b:n', '±30%:n') and varied paths, checked up front
    until     break-even's --until predicate (a small grammar, never evaluated)
    runner    run the points (process, pool, speed chains, Dask), resume, tidy, rewrite
    runtime   the output file (hashed, locked, appended), progress, worker pools, signals
    drivers   sweep, pareto, budget, breakeven
"""
from .drivers import breakeven, budget, load_spec, pareto, speed_paths, sweep, sweep_points
from .families import CHIP_GROUPS, apply_family, case_families, default_families
from .points import (CACHE, CandidateCache, Point, StudySpec, cached_candidates, error_row, evaluate, plan_row,
                     point_raw, point_row)
from .runner import (CHAIN_POINTS, beside, is_count_column, resume_rows, run_points, tidy, tornado_path,
                     unique_points)
from .runtime import (HASH_COLUMN, CsvAppender, Interrupted, OutputLock, StudyOutputError, check_output, progress,
                      read_resumable, run_chain_pool, run_pool, sigterm_raises, signal_number, study_hash)
from .until import UNTIL, UNTIL_FORMS, parse_until
from .values import (FORMS, MAX_VALUES, PCT, RANGE, base_value, check_paths, parse_values, parse_vary, path_hint,
                     positive_numbers, spec_catalog)

__all__ = [
    "breakeven", "budget", "load_spec", "pareto", "speed_paths", "sweep", "sweep_points",
    "CHIP_GROUPS", "apply_family", "case_families", "default_families",
    "CACHE", "CandidateCache", "Point", "StudySpec", "cached_candidates", "error_row", "evaluate", "plan_row", "point_raw", "point_row",
    "CHAIN_POINTS", "beside", "is_count_column", "resume_rows", "run_points", "tidy", "tornado_path", "unique_points",
    "HASH_COLUMN", "CsvAppender", "Interrupted", "OutputLock", "StudyOutputError", "check_output", "progress",
    "read_resumable", "run_chain_pool", "run_pool", "sigterm_raises", "signal_number", "study_hash",
    "UNTIL", "UNTIL_FORMS", "parse_until",
    "FORMS", "MAX_VALUES", "PCT", "RANGE", "base_value", "check_paths", "parse_values", "parse_vary", "path_hint",
    "positive_numbers", "spec_catalog",
]
