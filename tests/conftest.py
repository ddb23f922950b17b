import pytest

from planner.catalog import load_catalog


@pytest.fixture(scope="session")
def catalog():
    return load_catalog()


@pytest.fixture(autouse=True, scope="session")
def _candidate_cache(tmp_path_factory):
    """The on-disk candidate cache (planner/candidate_cache.py) in a directory of this session, so
    tests neither read nor fill the user's."""
    import os

    old = os.environ.get("FLEET_PLANNER_CACHE_DIR")
    os.environ["FLEET_PLANNER_CACHE_DIR"] = str(tmp_path_factory.mktemp("candidate-cache"))
    yield
    if old is None:
        os.environ.pop("FLEET_PLANNER_CACHE_DIR", None)
    else:
        os.environ["FLEET_PLANNER_CACHE_DIR"] = old
