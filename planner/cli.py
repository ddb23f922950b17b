"""The `fleet` command: a thin Click layer; every command calls one public function.

Heavy imports (pandas, Pyomo, HiGHS) happen inside commands, so `fleet --help` stays fast.
"""
from __future__ import annotations

import sys

import click

from .errors import PlannerError

FORMATS = click.Choice(["table", "json", "csv"])


class FleetCommand(click.Command):
    """Turns a PlannerError into its message on stderr and its exit code — never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PlannerError as exc:
            click.echo(exc.render(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)


class FleetGroup(click.Group):
    command_class = FleetCommand
    group_class = type


# shared options, defined once
def catalog_option(f):
    return click.option("--catalog", "catalogs", multiple=True, type=click.Path(dir_okay=False),
                        help="Catalog overlay TOML adding or overriding chips/models (repeatable).")(f)


def set_option(f):
    return click.option("--set", "sets", multiple=True, metavar="PATH=VALUE",
                        help="Override a case field, value parsed as TOML, e.g. "
                             "--set classes.0.min_speed_tok_s_user=400 (repeatable).")(f)


def format_option(f):
    return click.option("--format", "fmt", type=FORMATS, default="table", show_default=True,
                        help="Output format.")(f)


@click.group(cls=FleetGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fleet-planner")
def main():
    """Plan a heterogeneous inference fleet: which chips to buy and which stage runs where.

    \b
    Start with:
      fleet plan                      plan the shipped default case
      fleet cases                     list the shipped cases
      fleet catalog list chips        the chips the planner knows
      fleet validate my-case.toml     check a case file
    """


@main.group(cls=FleetGroup)
def catalog():
    """Browse the chip and model catalogs (every figure with its source)."""


@catalog.command("list")
@click.argument("kind", type=click.Choice(["chips", "models"]))
@catalog_option
@format_option
def catalog_list(kind, catalogs, fmt):
    """List chips or models as a table (units in the headers).

    \b
    Examples:
      fleet catalog list chips
      fleet catalog list models --format csv > models.csv
    """
    from . import inventory
    from .catalog import load_catalog
    from .reports import render

    cat = load_catalog(list(catalogs))
    if kind == "chips":
        rows, cols, heads = inventory.chip_rows(cat), inventory.CHIP_COLUMNS, inventory.CHIP_HEADERS
    else:
        rows, cols, heads = inventory.model_rows(cat), inventory.MODEL_COLUMNS, inventory.MODEL_HEADERS
    click.echo(render(rows, fmt, cols, heads), nl=False)


@catalog.command("show")
@click.argument("entry_id", metavar="ID")
@catalog_option
@format_option
def catalog_show(entry_id, catalogs, fmt):
    """Show one chip or model: every figure with its unit, confidence, source and date.

    \b
    Examples:
      fleet catalog show rubin
      fleet catalog show deepseek-r1 --format json
    """
    from . import inventory
    from .catalog import load_catalog
    from .reports import render

    title, rows = inventory.entry_rows(load_catalog(list(catalogs)), entry_id)
    if fmt == "table":
        click.echo(title)
    click.echo(render(rows, fmt, ["field", "value", "unit", "confidence", "source", "date", "note"]), nl=False)


@main.command()
@click.argument("case", required=False)
@set_option
@catalog_option
@click.option("--quiet", is_flag=True, help="Print nothing on success; only the exit code.")
def validate(case, sets, catalogs, quiet):
    """Check a case (path or shipped name; default 'default'): every problem at once.

    Exits 0 only when the case is valid, 2 otherwise.

    \b
    Examples:
      fleet validate cases/default.toml
      fleet validate default --set classes.0.precision=fp4
    """
    from .cases import load_case
    from .summary import describe_case

    c = load_case(case, sets, list(catalogs))
    if not quiet:
        click.echo(describe_case(c))
        click.echo(f"\n{c.source}: valid")


@main.command()
def cases():
    """List the shipped cases with the question each one asks."""
    from .summary import case_index

    click.echo(case_index())


def run():  # console-script entry point
    sys.exit(main())
