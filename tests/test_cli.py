"""The CLI as a user runs it: output, formats, exit codes, help, lazy imports."""
import json
import subprocess
import sys

import click
from click.testing import CliRunner

from planner.cli import main

runner = CliRunner()


def run(*args):
    return runner.invoke(main, list(args), catch_exceptions=False)


def test_catalog_list_formats():
    table = run("catalog", "list", "chips")
    assert table.exit_code == 0 and "mem (GB)" in table.output and "groq3-lpu" in table.output
    rows = json.loads(run("catalog", "list", "chips", "--format", "json").output)
    assert {r["id"] for r in rows} >= {"rubin", "cerebras-wse3"}
    assert "mem_bw_tbs" in rows[0]
    csv_out = run("catalog", "list", "models", "--format", "csv").output
    assert csv_out.splitlines()[0].startswith("id,name,attention")


def test_catalog_show_sources():
    out = run("catalog", "show", "rubin").output
    assert "vendor-spec" in out and "estimate" in out and "Vera Rubin" in out
    rows = json.loads(run("catalog", "show", "deepseek-v3", "--format", "json").output)
    assert any(r["field"] == "total_params_b" for r in rows)
    bad = runner.invoke(main, ["catalog", "show", "rubinn"])
    assert bad.exit_code == 2 and "did you mean" in bad.output


def test_validate_exit_codes(tmp_path):
    assert run("validate", "default").exit_code == 0
    bad = tmp_path / "b.toml"
    bad.write_text("[fleet]\nchips = []\n", encoding="utf-8")
    res = runner.invoke(main, ["validate", str(bad)])
    assert res.exit_code == 2 and "fleet.chips" in res.output and "Traceback" not in res.output


def test_every_command_has_help():
    def walk(group, prefix):
        for name, cmd in group.commands.items():
            res = run(*prefix, name, "--help")
            assert res.exit_code == 0 and cmd.help, name
            if isinstance(cmd, click.Group):
                walk(cmd, [*prefix, name])
    walk(main, [])


def test_solve_defaults_and_objectives_come_from_the_api():
    """The CLI shows the API's defaults and choices, not copies of them that could drift."""
    from planner.problem import OBJECTIVES
    from planner.solve import DEFAULT_MIP_GAP, SolveOptions
    from planner.studies import StudySpec

    def option(command, name):
        return next(o for o in main.commands[command].params if o.name == name)

    for command in ("plan", "sweep", "pareto", "budget", "breakeven", "explain", "diff"):
        assert option(command, "mip_gap").default == DEFAULT_MIP_GAP == StudySpec.mip_gap
        assert option(command, "time_limit_s").default == SolveOptions().time_limit_s == StudySpec.time_limit_s
    for command in ("plan", "sweep", "breakeven"):
        assert tuple(option(command, "objective").type.choices) == OBJECTIVES
    assert set(option("pareto", "objective").type.choices) == set(OBJECTIVES) - {"throughput"}


def test_help_and_catalog_do_not_import_pyomo():
    code = ("import sys; from planner.cli import main\n"
            "try: main(['catalog','list','chips'])\nexcept SystemExit: pass\n"
            "print('pyomo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")


def test_a_usage_error_under_format_json_is_still_json():
    import json

    from click.testing import CliRunner

    from planner.cli import main

    res = CliRunner().invoke(main, ["plan", "default", "--time-limit", "0", "--format", "json"])
    assert res.exit_code == 2
    d = json.loads(res.stdout)
    assert d["status"] == "invalid" and d["diagnosis"][0]["where"] == "--time-limit"
    res = CliRunner().invoke(main, ["plan", "default", "--time-limit", "0"])  # table: Click's own usage message
    assert res.exit_code == 2 and "Usage:" in res.output and "{" not in res.output
