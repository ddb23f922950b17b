"""The on-disk candidate cache (planner/candidate_cache.py): a hit is the very table generation
gives; a corrupt, torn or foreign file is a miss that is regenerated; any input change is a new key."""

import pandas as pd
import pytest

from planner import candidate_cache as cc
from planner.candidates import GRIDS, build_candidates
from planner.cases import load_case


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_PLANNER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FLEET_PLANNER_NO_CACHE", raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def default():
    case = load_case("default")
    return case, build_candidates(case)


def _count_generations(monkeypatch) -> list:
    import planner.candidates

    calls = []
    real = planner.candidates.build_candidates

    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(planner.candidates, "build_candidates", counting)
    return calls


def test_a_hit_is_the_generated_table(cache, default, monkeypatch):
    case, table = default
    calls = _count_generations(monkeypatch)
    first = cc.build(case)
    second = cc.build(case)
    assert len(calls) == 1 and len(list(cache.glob("*.npz"))) == 1
    pd.testing.assert_frame_equal(first, table, check_exact=True)
    pd.testing.assert_frame_equal(second, table, check_exact=True)  # values, dtypes, column order


def test_shared_units_round_trip(tmp_path):
    table = pd.DataFrame({"class": pd.Series(["a", "b"], dtype="str"), "n_attn": [1, 2], "speed": [1.5, float("nan")],
                          "attn_dp": [True, False], "serves": [(("short", 12.5), ("long", 3.0)), None]})
    path = tmp_path / "t.npz"
    cc.save(path, "k", table)
    pd.testing.assert_frame_equal(cc.load(path, "k"), table, check_exact=True)
    assert cc.load(path, "another key") is None


@pytest.mark.parametrize("damage", [b"", b"not a zip file", None])
def test_a_corrupt_cache_file_is_regenerated(cache, default, monkeypatch, damage):
    case, table = default
    cc.build(case)
    (path,) = cache.glob("*.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage is None else damage)  # torn, empty, garbage
    calls = _count_generations(monkeypatch)
    again = cc.build(case)
    assert len(calls) == 1
    pd.testing.assert_frame_equal(again, table, check_exact=True)
    assert cc.load(path, cc.key(case, GRIDS["fine"])) is not None  # replaced by a whole file


def test_any_input_change_is_a_new_key(default):
    case, _ = default
    k = cc.key(case, GRIDS["fine"])
    assert cc.key(case, GRIDS["coarse"]) != k
    assert cc.key(load_case("default", ["classes.0.min_speed_tok_s_user=41"]), GRIDS["fine"]) != k
    assert cc.key(load_case("default", ["chips.rubin.mem_bw_tbs=21"]), GRIDS["fine"]) != k
    assert cc.key(load_case("default"), GRIDS["fine"]) == k


def test_the_cache_can_be_turned_off(cache, default, monkeypatch):
    case, _ = default
    monkeypatch.setenv("FLEET_PLANNER_NO_CACHE", "1")
    calls = _count_generations(monkeypatch)
    cc.build(case)
    cc.build(case)
    assert len(calls) == 2 and not cache.exists()
    monkeypatch.delenv("FLEET_PLANNER_NO_CACHE")
    cc.build(case, use_cache=False)
    assert len(calls) == 3 and not cache.exists()


def test_an_unwritable_cache_only_costs_time(tmp_path, default, monkeypatch):
    case, table = default
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("FLEET_PLANNER_CACHE_DIR", str(blocker / "cache"))  # under a file: mkdir fails
    pd.testing.assert_frame_equal(cc.build(case), table, check_exact=True)


def test_a_tampered_table_with_its_key_intact_is_not_trusted(tmp_path):
    """The issue's attack: throughput × 10, header (key) untouched — the checksum no longer matches."""
    import json

    import numpy as np

    table = pd.DataFrame({"class": pd.Series(["a", "b"], dtype="str"), "throughput_tok_s": [100.0, 250.0]})
    path = tmp_path / "t.npz"
    cc.save(path, "k", table)
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    meta = json.loads(str(arrays["__meta__"]))
    col = [i for i, (name, _) in enumerate(meta["columns"]) if name == "throughput_tok_s"][0]
    arrays[f"c{col}"] = arrays[f"c{col}"] * 10
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    assert cc.load(path, "k") is None


def test_the_key_covers_sub_packages_and_the_plan_year(default):
    case, _ = default
    k = cc.key(case, GRIDS["fine"])
    assert cc.key(load_case("default", ["options.year=2028"]), GRIDS["fine"]) != k  # CPX buyable: another table
    cc._SOURCE = None
    real = cc.Path.read_bytes
    try:
        cc.Path.read_bytes = lambda self: real(self) + (b"#" if self.name == "points.py" else b"")
        assert cc.key(case, GRIDS["fine"]) != k  # an edit inside planner/studies/ is a new key
    finally:
        cc.Path.read_bytes = real
        cc._SOURCE = None
