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


def test_help_and_catalog_do_not_import_pyomo():
    code = ("import sys; from planner.cli import main\n"
            "try: main(['catalog','list','chips'])\nexcept SystemExit: pass\n"
            "print('pyomo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")
