"""The independent re-check (#23 item 4): a deliberately corrupted unit table is caught, in memory
and read back from the written CSVs."""
from dataclasses import replace

import planner
from planner import verify


def test_a_corrupted_unit_table_is_caught(tmp_path):
    plan = planner.plan("default")
    case, tables = plan.problem.case, verify.tables_of(plan)
    assert verify.recheck_tables(case, tables) == []
    units = tables.units.copy()
    i = int(units[units["kind"] != "prefill"].index[0])
    units.loc[i, "throughput_tok_s"] *= 10  # claims 10× what its layout serves
    assert verify.recheck_tables(case, replace(tables, units=units))
    units = tables.units.copy()
    units.loc[i, "batch"] *= 10  # a batch its memory cannot hold at its speed
    assert verify.recheck_tables(case, replace(tables, units=units))
    from click.testing import CliRunner

    from planner.cli import main

    out = tmp_path / "p"
    assert CliRunner().invoke(main, ["plan", "default", "--output", str(out)]).exit_code == 0
    written = verify.read_tables(out)
    assert verify.recheck_tables(case, written) == []
    csv = out / "units.csv"
    text = csv.read_text().splitlines()
    import pandas as pd

    df = pd.read_csv(csv)
    df.loc[i, "throughput_tok_s"] *= 10
    df.to_csv(csv, index=False)
    assert verify.recheck_tables(case, verify.read_tables(out)) and text
