"""Defaults and choices the API and the CLI share, written once: light enough (no pandas, no Pyomo)
for `fleet --help` to show them and stay fast."""
from __future__ import annotations

from typing import get_args

from .domain import Objective

OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
PARETO_OBJECTIVES: tuple[Objective, ...] = ("tco", "power", "capex")
"""What a Pareto point can minimise: its demand is fixed, so throughput has nothing to maximise."""

DEFAULT_TIME_LIMIT_S = 60.0
"""Seconds for one plan (loading, candidates and HiGHS), and for each point of a study."""

DEFAULT_MIP_GAP = 1e-3
"""0.1 %: far below the performance model's own error (~20-35 %), and it keeps high-speed points —
hundreds of small units rounded into 72-GPU racks, a knapsack HiGHS closes slowly — to seconds."""
