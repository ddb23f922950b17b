"""fleet-planner: plan heterogeneous LLM inference fleets (chips to buy, stage per chip) with a MILP.

The Python API mirrors the CLI and returns plain objects and pandas DataFrames:

    import planner
    plan = planner.plan("default")                        # a Plan (frames + to_dict())
    df = planner.sweep("default", ["economics.pue=1.1,1.3"])
    fr = planner.pareto("rubin-lpx", speeds="50:1500:10")
Imports are lazy so that `import planner` stays cheap.
"""
__version__ = "0.1.0"

_API = {
    "plan": ("planner.planning", "plan"),
    "plan_case": ("planner.planning", "plan_case"),
    "load_case": ("planner.cases", "load_case"),
    "load_catalog": ("planner.catalog", "load_catalog"),
    "estimate": ("planner.estimation", "estimate"),
    "sweep": ("planner.studies", "sweep"),
    "pareto": ("planner.studies", "pareto"),
    "budget": ("planner.studies", "budget"),
    "breakeven": ("planner.studies", "breakeven"),
}


def __getattr__(name):
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'planner' has no attribute {name!r}")


__all__ = list(_API)
