"""Spreadsheets (#25 item 6): plan.xlsx holds the plan's CSV tables; studies write theirs with --xlsx."""
import math

import pandas as pd
import pytest
from click.testing import CliRunner

from planner.cli import main
from planner.spreadsheet import SHEET_NAME_MAX, sheet_name, workbook_bytes

PLAN_TABLES = ("chips", "stages", "units", "classes", "class_costs", "constraints", "systems", "costs")


def _same(csv_df: pd.DataFrame, xl_df: pd.DataFrame) -> None:
    """The workbook sheet carries the CSV's columns and values (numbers to 1e-9, text exactly)."""
    assert list(xl_df.columns) == list(csv_df.columns)
    assert len(xl_df) == len(csv_df)
    for col in csv_df.columns:
        for a, b in zip(csv_df[col], xl_df[col]):
            if isinstance(a, float) and math.isnan(a):
                assert b is None or (isinstance(b, float) and math.isnan(b)), (col, a, b)
            elif isinstance(a, (int, float)) and not isinstance(a, bool):
                assert b == pytest.approx(a, rel=1e-9, abs=1e-9), (col, a, b)  # the CSV rounds to 1e-10
            else:
                assert str(b) == str(a), (col, a, b)


def test_plan_output_writes_every_table_as_a_sheet(tmp_path):
    out = tmp_path / "plan"
    res = CliRunner().invoke(main, ["plan", "default", "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert "plan.xlsx" in res.output
    book = pd.read_excel(out / "plan.xlsx", sheet_name=None)
    assert list(book) == list(PLAN_TABLES)
    for name in PLAN_TABLES:
        _same(pd.read_csv(out / f"{name}.csv"), book[name])


def test_sweep_xlsx_beside_the_csv(tmp_path):
    out = tmp_path / "s.v1.csv"
    res = CliRunner().invoke(main, ["sweep", "default", "--vary", "economics.pue=1.1,1.3", "--output", str(out),
                                    "--quiet", "--workers", "1", "--xlsx"])
    assert res.exit_code == 0, res.output
    _same(pd.read_csv(out), pd.read_excel(tmp_path / "s.v1.xlsx"))


def test_budget_xlsx_needs_an_output_directory_before_solving(tmp_path):
    res = CliRunner().invoke(main, ["budget", "default", "--power-mw", "30", "--xlsx"])
    assert res.exit_code == 2
    assert "--output" in res.output and "Traceback" not in res.output


def test_sheet_names_are_valid_and_distinct():
    assert sheet_name("a/b[c]:d*e?f\\g") == "a_b_c__d_e_f_g"
    long = "x" * 40
    assert len(sheet_name(long)) == SHEET_NAME_MAX
    df = pd.DataFrame({"v": [1.0, float("nan")], "l": [[1, 2], {"a": 1}]})
    book = pd.read_excel(__import__("io").BytesIO(workbook_bytes({long: df, long + "y": df})), sheet_name=None)
    assert len(book) == 2 and all(len(n) <= SHEET_NAME_MAX for n in book)
    first = next(iter(book.values()))
    assert first["v"].iloc[0] == 1.0 and math.isnan(first["v"].iloc[1])
    assert first["l"].tolist() == ["[1, 2]", '{"a": 1}']
