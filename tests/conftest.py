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


TINY_FOUR_CHIPS = """name = "tiny"
[constraints]
power_mw = 2
[fleet]
chips = ["h100-sxm", "b200", "rubin-cpx", "groq3-lpu"]
[[classes]]
name = "c"
model = "llama-3.1-8b"
precision = "fp8"
isl = 1000
osl = 250
demand_tok_s = 40000
min_speed_tok_s_user = 60
ttft_s = 2
"""
"""A small study case: four chip families, one class, a 2 MW budget (tests of studies and sweep chains)."""

TWO_CHIPS = """name = "two-chips"
[fleet]
chips = ["b200", "h100-sxm"]
[[classes]]
name = "chat"
model = "llama-3.1-8b"
precision = "fp8"
isl = 1000
osl = 250
demand_tok_s = 200000
min_speed_tok_s_user = 60
ttft_s = 2
"""
"""B200 or H100 for one class: B200 has 2.3× the bandwidth for 1.2× the price, so the cheapest plan buys
only B200 (tests of explain and diff)."""


@pytest.fixture
def tiny_case(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_FOUR_CHIPS, encoding="utf-8")
    return str(p)


@pytest.fixture
def two_chip_case(tmp_path):
    p = tmp_path / "two.toml"
    p.write_text(TWO_CHIPS, encoding="utf-8")
    return str(p)
