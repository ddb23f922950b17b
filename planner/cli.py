"""The `fleet` command: a thin Click layer; every command calls one public function.

Heavy imports (pandas, Pyomo, HiGHS) happen inside commands, so `fleet --help` stays fast.
"""
from __future__ import annotations

import sys

import click

from .defaults import DEFAULT_MIP_GAP, DEFAULT_TIME_LIMIT_S, OBJECTIVES, PARETO_OBJECTIVES
from .errors import PlannerError

FORMATS = click.Choice(["table", "json", "csv"])


class PrecisionType(click.ParamType):
    """A precision name or alias (fp16, nvfp4 …), mapped to the catalog precision that prices it."""

    name = "precision"

    def convert(self, value, param, ctx):
        from .units import PRECISION_ALIASES, canonical_precision

        canon = canonical_precision(value)
        if canon is None:
            self.fail(f"unknown precision '{value}'; use bf16, fp8 or fp4 "
                      f"(aliases: {', '.join(sorted(PRECISION_ALIASES))})", param, ctx)
        return canon


PRECISION = PrecisionType()


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf (click's own comparisons let nan through)."""

    def convert(self, value, param, ctx):
        import math

        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


class FleetCommand(click.Command):
    """Turns a PlannerError into its message on stderr and its exit code — never a traceback."""

    def make_context(self, info_name, args, parent=None, **extra):
        """A usage error (bad option value, unknown option) under --format json still puts JSON on stdout."""
        wants_json = any(a == "--format=json" or (a == "--format" and i + 1 < len(args) and args[i + 1] == "json")
                         for i, a in enumerate(args))
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            if wants_json:
                from .reports import to_json

                exc.show()
                click.echo(to_json({"status": "invalid", "exit_code": exc.exit_code, "message": exc.format_message(),
                                    "diagnosis": [{"where": getattr(exc.param, "opts", ["?"])[0] if exc.param else "",
                                                   "what": exc.format_message(), "fix": f"see fleet {info_name} --help"}]}),
                           nl=False)
                sys.exit(exc.exit_code)
            raise

    def invoke(self, ctx):
        from .signals import raise_if_signalled, sigterm_raises

        try:
            with sigterm_raises():  # every command ends 130 on SIGINT and 143 on SIGTERM
                try:
                    result = super().invoke(ctx)
                except PlannerError as exc:
                    if exc.exit_code < 128:  # a study's Interrupted already says which rows it kept
                        raise_if_signalled()  # HiGHS turned the signal into "error"/"infeasible": the signal is the answer
                    raise
                raise_if_signalled()
                return result
        except PlannerError as exc:
            click.echo(exc.render(), err=True)
            if ctx.params.get("fmt") == "json":  # a JSON request always gets JSON on stdout
                click.echo(error_json(exc), nl=False)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `fleet … | head`: the reader has what it wanted; not an error of ours
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug, not bad input: say so briefly; FLEET_DEBUG=1 shows the traceback
            import os

            if os.environ.get("FLEET_DEBUG"):
                raise
            click.echo(f"internal error ({type(exc).__name__}: {exc}); rerun with FLEET_DEBUG=1 and report it",
                       err=True)
            ctx.exit(70)
        except BaseException as exc:  # SIGTERM raised as signals._Signalled (sigterm_raises)
            signum = getattr(exc, "signum", None)
            if signum is None:
                raise
            click.echo("interrupted", err=True)
            ctx.exit(128 + signum)


def error_json(exc: PlannerError) -> str:
    """{"status", "message", "diagnosis": [{where, what, fix}]} for a failed JSON request."""
    from .errors import CaseError, CatalogError, InfeasibleError, TimeLimitError
    from .reports import to_json

    status = ("infeasible" if isinstance(exc, InfeasibleError) else "time_limit" if isinstance(exc, TimeLimitError)
              else "invalid" if isinstance(exc, (CaseError, CatalogError)) or exc.exit_code == 2 else "solver_error")
    return to_json({"status": status, "exit_code": exc.exit_code, "message": str(exc.args[0]),
                    "diagnosis": [{"where": p.where, "what": p.what, "fix": p.fix} for p in exc.problems]})


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
        rows = [{**r, "value": f"{r['value']:g}"} if r["unit"] == "year" else r for r in rows]  # 2026.5, not "2,026"
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
    from .planning import pre_solve_checks
    from .summary import describe_case

    c = load_case(case, sets, list(catalogs))
    _, held_back, _ = pre_solve_checks(c)  # every check `fleet plan` makes before solving
    if not quiet:
        click.echo(describe_case(c))
        for line in held_back:
            click.echo(f"note: {line}")
        click.echo(f"\n{c.source}: valid")


@main.command()
def cases():
    """List the shipped cases with the question each one asks."""
    from .summary import case_index

    click.echo(case_index())


@main.command()
@click.argument("case", required=False)
@click.option("--class", "class_name", help="With CASE: the class whose model, lengths and precision to use.")
@click.option("--model", help="Model id (see `fleet catalog list models`); default: the CASE class's.")
@click.option("--chip", required=True, help="Chip for the whole model, or its attention part with --ffn-chip.")
@click.option("--chips", required=True, type=click.IntRange(min=1), help="Number of --chip chips.")
@click.option("--batch", type=click.IntRange(min=1), help="Running batch (sequences). Default: 1, or min(concurrency, largest that fits).")
@click.option("--isl", type=click.IntRange(min=1), help="Input (prompt) tokens; default: the CASE class's.")
@click.option("--cached-isl", type=click.IntRange(min=0), help="Prompt tokens served from a prefix cache (< --isl).")
@click.option("--osl", type=click.IntRange(min=1), help="Output tokens; default: the CASE class's.")
@click.option("--precision", type=PRECISION, help="bf16, fp8 (default) or fp4; aliases fp16/bfloat16 → bf16, "
                                                  "float8/mxfp8 → fp8, nvfp4/mxfp4 → fp4.")
@click.option("--ffn-chip", help="Run decode FFN/experts on this chip (attention–FFN disaggregation).")
@click.option("--ffn-chips", type=click.IntRange(min=1), help="Number of --ffn-chip chips.")
@click.option("--prefill-chip", help="Separate prefill chip (disaggregated serving).")
@click.option("--prefill-chips", type=click.IntRange(min=1), help="Number of prefill chips.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Clients: batch = min(C, largest batch that fits); the rest queue.")
@click.option("--tp", type=click.IntRange(min=1), help="Tensor/expert-parallel width (default: the fastest runnable layout of --chips).")
@click.option("--pp", type=click.IntRange(min=1), help="Pipeline stages (chips = tp × pp).")
@click.option("--serving", type=click.Choice(["aggregated", "decode"]),
              help="aggregated: prefill interleaved on the decode chips (default without --prefill-chip); "
                   "decode: the decode group alone.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@set_option
@catalog_option
def estimate(case, class_name, model, chip, chips, batch, isl, cached_isl, osl, precision, ffn_chip, ffn_chips,
             prefill_chip, prefill_chips, concurrency, tp, pp, serving, fmt, sets, catalogs):
    """Predict speed, throughput, memory and TTFT of one deployment.

    Give the workload with --model/--isl/--osl, or take it from a class of CASE (a shipped case name
    or a path; its inline chips and models are known too). Exits 1 when the batch's KV cache does not
    fit (the deployment runs, the load does not); 2 when the weights do not fit on --chips or --chips
    has no runnable tp × pp layout (the message gives the counts that run).

    \b
    Examples:
      fleet estimate --model llama-3.1-70b --chip h100-sxm --chips 2 --batch 32 --isl 5000 --osl 500
      fleet estimate rubin-lpx --class premium --chip rubin --chips 64 --concurrency 64
      fleet estimate --model deepseek-r1 --chip rubin --chips 8 --ffn-chip groq3-lpu --ffn-chips 1536 \\
                     --isl 8000 --osl 1000 --concurrency 64 --format json
    """
    from .errors import Problem
    from .estimation import estimate as run_estimate, estimate_table, from_case
    from .reports import to_json

    catalog, fields = (from_case(case, class_name, sets, catalogs) if case else (None, {}))
    if not case and (class_name or sets):
        raise PlannerError("--class and --set need a CASE", [Problem("CASE", "missing",
                           "e.g. fleet estimate rubin-lpx --class premium --chip rubin --chips 64")])
    model, isl, osl = model or fields.get("model"), isl or fields.get("isl"), osl or fields.get("osl")
    missing = [f"--{n}" for n, v in (("model", model), ("isl", isl), ("osl", osl)) if v is None]
    if missing:
        raise PlannerError(f"missing {', '.join(missing)}", [Problem(m, "missing", "give it, or a CASE and --class "
                                                                     "to take it from") for m in missing])
    r = run_estimate(model, chip, chips, isl, osl, precision or fields.get("precision", "fp8"), batch, ffn_chip,
                     ffn_chips, concurrency, serving, prefill_chip, prefill_chips, catalogs=list(catalogs),
                     catalog=catalog, tp=tp, pp=pp,
                     cached_isl=cached_isl if cached_isl is not None else int(fields.get("cached_isl", 0)),
                     kv_headroom=fields.get("kv_headroom"))
    click.echo(to_json(r) if fmt == "json" else estimate_table(r), nl=fmt != "json")


@main.command()
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--buckets", "max_buckets", type=click.IntRange(1, 64), default=8, show_default=True,
              help="The most length buckets.")
@click.option("--tolerance", type=FiniteFloatRange(min=0, max=10), default=0.05, show_default=True,
              help="Bucketing error at which merging stops (once at most --buckets remain).")
@click.option("--chip", default="b200", show_default=True, help="Reference chip for the KV and tokens/s comparison.")
@click.option("--model", default="llama-3.1-70b", show_default=True, help="Reference model.")
@click.option("--precision", type=PRECISION, default="fp8", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), help="Reference batch (default: the largest that fits, ≤ 1024).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@catalog_option
def workload(trace, max_buckets, tolerance, chip, model, precision, batch, fmt, catalogs):
    """Bucket a request trace (CSV or Parquet: isl, osl[, arrival_s][, cached_isl]) by length.

    Prints each bucket (ISL/OSL range, mean, share of requests and of output tokens, the error of its
    mean), and the error of using one mean (ISL, OSL) pair for the whole trace: KV per running
    sequence and decode tokens/s/chip on a reference chip, mean pair vs bucket mixture.

    \b
    Examples:
      fleet workload cases/traces/chat-agent.csv
      fleet workload my-trace.csv --buckets 4 --chip h200 --model gpt-oss-120b --format json
    """
    from .reports import to_json
    from .workload import workload_report, workload_text

    r = workload_report(trace, max_buckets, tolerance, chip, model, precision, batch, catalogs)
    click.echo(to_json(r) if fmt == "json" else workload_text(r), nl=False)


@main.command("import-bench", cls=FleetCommand)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--chip", help="Chip the files measured (catalog id or vendor name), if they do not say.")
@click.option("--chips", type=click.IntRange(min=1), help="Chips the measured deployment used.")
@click.option("--model", help="Model measured, if the file does not say.")
@click.option("--precision", help="Precision the model ran in (bf16, fp8, fp4 …).")
@click.option("--layout", help="Parallel layout tp×ep×pp, e.g. 8x1x1.")
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False), help="Write the points CSV here (else stdout).")
def import_bench(files, chip, chips, model, precision, layout, out_path):
    """Import AIPerf, GuideLLM, vLLM, SGLang, inference-perf or MLPerf results as measured points.

    What a file does not say comes from the flags or a FILE.fleet.toml sidecar beside it.

    \b
    Example:
      fleet import-bench mlperf_log_summary.txt --chip h200-sxm --chips 8 --model llama-3.1-70b --precision fp8 -o points.csv
    """
    from .benchmarks import import_files, write_points

    text = write_points(import_files(files, chip, chips, model, precision, layout), out_path)
    if not out_path:
        click.echo(text, nl=False)


@main.command()
@click.argument("points_csv", type=click.Path(exists=True, dir_okay=False))
@click.option("--chips", "chip_ids", help="Comma-separated chip ids whose points to fit (default: every chip with points).")
@click.option("--write", "write_path", type=click.Path(dir_okay=False),
              help="Write the fitted group terms (and held-out error bands) as a catalog overlay TOML (use it with --catalog).")
@click.option("--holdout/--no-holdout", default=True, show_default=True,
              help="Also report leave-one-chip-out and leave-one-model-out error (refit without each, predict it).")
@click.option("--force", is_flag=True, help="Overwrite --write if it exists.")
@format_option
@catalog_option
def calibrate(points_csv, chip_ids, write_path, holdout, force, fmt, catalogs):
    """Fit the behaviour groups' terms (per architecture, fabric and serving stack) to measurements.

    No term is fitted per chip: every chip of a group shares its terms, successors are never fitted
    less efficient than their predecessors, and a fit that would predict a newer chip below an older
    one it dominates in spec is refused. Prints predicted vs measured per point, the fitted terms,
    and the error (median, 90th percentile, worst, points off by > 2×) in-sample and held out by chip
    and by model, per architecture group.

    \b
    Example:
      fleet calibrate ../shared/data/calibration-points.csv --write behaviour-overlay.toml
    """
    from . import calibrate as cal
    from .reports import render, to_json

    res = cal.calibrate(points_csv, catalogs, chip_ids, write_path, holdout, force,
                      announce=(lambda m: click.echo(m, err=True)) if fmt == "table" or holdout else None)
    if write_path:
        moved = [c for c in res.changes if c["catalog"] is None
                 or abs(float(c["overlay"]) - float(c["catalog"])) > 1e-6 * max(abs(float(c["catalog"])), 1e-12)]
        same = len(res.changes) - len(moved)
        click.echo(f"{write_path} holds {len(res.changes)} term(s) of the groups these points measure: "
                   f"{len(moved)} changed, {same} as the catalog has them" + (":" if moved else ""), err=True)
        for c in moved:
            old = "-" if c["catalog"] is None else f"{float(c['catalog']):.4g}"
            click.echo(f"  {c['group']}.{c['term']}: {old} → {float(c['overlay']):.4g}  (chips: {c['chips'] or 'none'})",
                       err=True)
    if fmt == "json":
        click.echo(to_json(res.to_dict()), nl=False)
        return
    if fmt == "csv":
        click.echo(render(res.rows + [x for h in res.held.values() for x in h], "csv"), nl=False)
        return
    click.echo(render([{**{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()
                           if k in ("id", "chip", "model", "kind", "predicted", "error")},
                        "measured": (f"> {r['measured']:.4g}" if r.get("lower_bound") else round(r["measured"], 3))}
                       for r in res.rows], "table", ["id", "chip", "model", "kind", "measured", "predicted", "error"]))
    if any(r.get("lower_bound") for r in res.rows):
        click.echo("(> X: a claim of more than X; a prediction at or above it counts as no error)")
    click.echo(render([{**t, "value": round(t["value"], 4), "catalog": None if t["catalog"] is None else round(t["catalog"], 4)}
                       for t in res.terms], "table"))
    for name, s_ in res.summary.items():
        click.echo(f"{name:18s} |error| median {s_['median_abs_error']:.0%}, p90 {s_['p90_abs_error']:.0%}, "
                   f"worst ×{s_['worst_ratio']:.2f}, {s_['off_by_more_than_2x']} of {s_['points']} points off by > 2×")
    for name, per in res.by_arch.items():
        if name == "in_sample":
            continue
        click.echo(f"\n{name} by architecture group:")
        click.echo(render([{"arch": a, "points": x["points"], "median": f"{x['median_abs_error']:.0%}",
                            "p90": f"{x['p90_abs_error']:.0%}", "worst_x": round(x["worst_ratio"], 2),
                            "off_2x": x["off_by_more_than_2x"]} for a, x in per.items()], "table"))
    click.echo(f"{len(res.points)} points used, {len(res.excluded)} excluded (see --format json for the reasons)")
    if write_path:
        click.echo(f"wrote {write_path}")


def solve_options(f):
    f = click.option("--grid", type=click.Choice(["fine", "coarse"]), default="fine", show_default=True,
                     help="Candidate grid. fine: the plan to act on. coarse: fewer chip counts per layout; on the "
                          "shipped cases not faster and 3-14 % dearer plans (for very large cases only).")(f)
    f = click.option("--time-limit", "time_limit_s", type=FiniteFloatRange(min=0.1, max=1e6), default=DEFAULT_TIME_LIMIT_S,
                     show_default=True,
                     help="Solver time limit (s); the best plan found so far is returned with status time_limit.")(f)
    f = click.option("--mip-gap", type=FiniteFloatRange(min=0.0, max=1.0), default=DEFAULT_MIP_GAP, show_default=True,
                     help="Relative MIP gap at which the solver stops.")(f)
    return f


@main.command()
@click.argument("case", required=False)
@set_option
@catalog_option
@click.option("--objective", type=click.Choice(OBJECTIVES),
              help="tco: amortised capex + energy + facility (USD/hour); throughput: maximise served tokens/s "
                   "within the budgets. Default: the case's [options] objective, else tco.")
@solve_options
@click.option("--write-model", type=click.Path(dir_okay=False), help="Also write the MILP as FILE.lp or FILE.mps.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", "out_dir", type=click.Path(file_okay=False),
              help="Write tidy CSVs (chips, stages, units, classes, constraints, costs) + plan.json + run.json.")
@click.option("--force", is_flag=True, help="Replace the plan in --output and an existing --write-model file.")
@click.option("--no-cache", is_flag=True, help="Generate the candidate units even when the on-disk cache "
              "(~/.cache/fleet-planner, keyed by the case and this code) holds them; FLEET_PLANNER_NO_CACHE=1 too.")
@click.option("--require-optimal", is_flag=True, help="Exit 3 (time_limit) instead of printing a plan the solver did "
              "not prove within --mip-gap (by default such a plan is printed with a NOT PROVEN OPTIMAL warning).")
def plan(case, sets, catalogs, objective, time_limit_s, mip_gap, grid, write_model, fmt, out_dir, force, no_cache,
         require_optimal):
    """Plan the fleet for CASE (a path or a shipped case name; default: 'default').

    Prints the chips to buy, which stage runs on which chip per class, cost, MW, achieved speed and
    TTFT, binding constraints with shadow prices, and the solve record. Exits 1 with a diagnosis
    when the targets cannot be met.

    \b
    Examples:
      fleet plan
      fleet plan default --set classes.1.min_speed_tok_s_user=400 --format json
      fleet plan my-case.toml --objective throughput --output out/
    """
    from .planning import check_output_dir, plan as run_plan, run_record, write_outputs
    from .reports import to_json
    from .results import plan_text

    from pathlib import Path

    from .errors import Problem

    if write_model and not write_model.endswith((".lp", ".mps")):
        raise click.BadParameter("must end in .lp or .mps", param_hint="--write-model")
    if write_model and Path(write_model).exists() and not force:  # outputs are checked before any solving
        raise PlannerError(f"{write_model} exists", [Problem("--write-model", "file exists",
                                                             "pass --force to overwrite or choose another path")])
    if write_model:
        from .reports import check_writable

        check_writable(Path(write_model).parent, write_model, "--write-model",
                       "give a path in an existing, writable directory")
    if out_dir:
        check_output_dir(out_dir, force)
    p = run_plan(case, sets, catalogs, objective, time_limit_s, mip_gap, write_model, grid, cache=not no_cache,
                 require_optimal=require_optimal)
    if write_model:
        click.echo(f"wrote the MILP to {write_model}", err=True)
    if out_dir:  # written first: a failed write is then the only JSON document on stdout
        run = run_record(p, p.problem.case.source, sets, catalogs,
                         {"objective": p.problem.objective, "time_limit_s": time_limit_s, "mip_gap": mip_gap,
                          "grid": grid})
        write_outputs(p, out_dir, run, force)
    click.echo(to_json(p.to_dict()) if fmt == "json" else plan_text(p), nl=fmt != "json")
    if out_dir:
        if fmt != "json":
            click.echo(f"wrote {out_dir}/ (chips, stages, units, classes, class_costs, constraints, systems, costs CSVs; "
                       "plan.xlsx; plan.json; run.json)")


def study_options(f):
    f = click.option("--workers", type=click.IntRange(min=1), default=None,
                     help="Local worker processes (default: all cores).")(f)
    f = click.option("--scheduler", metavar="ADDRESS", help="Run points on an existing Dask cluster (tcp://host:8786).")(f)
    f = click.option("--resume", is_flag=True, help="Continue the output CSV of this same study, skipping its finished "
                                                    "points (refused if the case, --set or options differ).")(f)
    f = click.option("--force", is_flag=True, help="Overwrite existing outputs.")(f)
    f = click.option("--quiet", is_flag=True, help="No progress on stderr.")(f)
    f = click.option("--xlsx", is_flag=True, help="Also write the points as a spreadsheet beside the CSV (.xlsx).")(f)
    f = click.option("--warm-start", is_flag=True,
                     help="Start each point's MIP from the previous point's plan (~1.8x faster sweeps; plans "
                          "equal within the MIP gap may then depend on worker count).")(f)
    return f


def _workers(n):
    import os

    return n or os.cpu_count() or 1


def _write_xlsx(df, path, sheet):
    """A study's points as a one-sheet workbook, written atomically; the path written."""
    from .reports import write_atomic
    from .spreadsheet import workbook_bytes

    return write_atomic(path, workbook_bytes({sheet: df}))


def _summary(df, cols):
    from .reports import text_table

    cols = [c for c in cols if c in df.columns]
    return text_table(df[cols].to_dict("records"), max_width=40)


@main.command()
@click.argument("case", required=False)
@click.option("--speeds", default="25:2000:40", show_default=True,
              help="Speed targets (tok/s/user): start:stop:n (geometric) or a list 42,71,100.")
@click.option("--families", help="Comma-separated fleet families (default: all of the case's).")
@click.option("--class", "class_name", help="Apply the speed target to this class only (default: all).")
@click.option("--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory for pareto.csv and the two PNG charts.")
@click.option("--objective", type=click.Choice(PARETO_OBJECTIVES), default="tco", show_default=True,
              help="What each family's plan minimises at each speed: tco (USD/hour), power (site MW: the "
                   "most tokens/s per MW for the demand), capex.")
@set_option
@catalog_option
@solve_options
@study_options
def pareto(case, speeds, families, class_name, out_dir, objective, sets, catalogs, time_limit_s, mip_gap, grid, workers,
           scheduler, resume, force, quiet, warm_start, xlsx):
    """Best plan per fleet family across speed targets: the TPS/MW vs TPS/user frontier.

    Families come from the case ([families.NAME] chips/stages) or default to gpu-only,
    gpu+prefill, gpu+sram-ffn, sram-only and unrestricted drawn from the case's chips. Each
    point is the family's plan for the --objective; the charts say which. A family that holds
    another (unrestricted holds them all) never plots worse on the metric it optimised: with
    --objective power, on tokens/s per MW; with tco, on USD per million tokens.

    \b
    Examples:
      fleet pareto rubin-lpx --speeds 50:1500:12 --output out/pareto
      fleet pareto default --objective power --speeds 25:2000:20 --output out/pareto-mw
    """
    from pathlib import Path

    from .plots import pareto_plot
    from .studies import pareto as run

    out = Path(out_dir)
    df = run(case, speeds, families.split(",") if families else None, class_name, sets, catalogs, _workers(workers),
             scheduler, out / "pareto.csv", resume, quiet, force, time_limit_s, mip_gap, grid, warm_start,
             objective=objective)
    name = _case_label(case, sets)
    pareto_plot(df, "tok_s_per_mw", "output tokens/s per MW (site)", out / "pareto_tok_s_per_mw.png",
                "throughput per MW vs speed target", name, objective)
    pareto_plot(df, "usd_per_mtok", "USD per million output tokens", out / "pareto_usd_per_mtok.png",
                "cost per token vs speed target", name, objective)
    click.echo(_summary(df, ["family", "speed_tok_s_user", "status", "tok_s_per_chip", "tok_s_per_mw",
                             "usd_per_mtok", "stages"]))
    _study_record(out / "study.json", "pareto", case, sets, catalogs, {"speeds": speeds, "families": families,
                  "class": class_name, "objective": objective, "grid": grid, "mip_gap": mip_gap, "time_limit_s": time_limit_s})
    click.echo(f"wrote {out}/pareto.csv, pareto_tok_s_per_mw.png, pareto_usd_per_mtok.png, study.json")
    if xlsx:
        click.echo(f"wrote {_write_xlsx(df, out / 'pareto.xlsx', 'pareto')}")


@main.command()
@click.argument("case", required=False)
@click.option("--power-mw", help="Site power budget(s): a number, a list 50,100 or start:stop:n.")
@click.option("--capex-usd", help="Capex budget(s): a number, a list or start:stop:n.")
@click.option("--output", "out_dir", type=click.Path(file_okay=False), help="Directory for budget.csv (+ PNG).")
@set_option
@catalog_option
@solve_options
@study_options
def budget(case, power_mw, capex_usd, out_dir, sets, catalogs, time_limit_s, mip_gap, grid, workers, scheduler, resume,
           force, quiet, warm_start, xlsx):
    """Maximise served tokens/s inside power and money budgets; marginal value of each budget.

    Demand mix is kept: every class is served at the same share of its demand.

    \b
    Examples:
      fleet budget datacenter-100mw --power-mw 100
      fleet budget default --power-mw 20:100:5 --output out/budget
    """
    from pathlib import Path

    from .plots import line_plot
    from .studies import budget as run

    out = Path(out_dir) if out_dir else None
    if xlsx and not out:
        raise click.UsageError("--xlsx writes budget.xlsx beside budget.csv: give --output DIR too")
    df = run(case, power_mw, capex_usd, sets, catalogs, _workers(workers), scheduler,
             out / "budget.csv" if out else None, resume, quiet, force, time_limit_s, mip_gap, grid, warm_start)
    shadow = [c for c in df.columns if c.startswith(("shadow.power", "shadow.capex", "lp_shadow.power", "lp_shadow.capex"))]
    chips = sorted(c for c in df.columns if c.startswith("chips."))
    click.echo(_summary(df, ["constraints.power_mw", "constraints.capex_usd", "status", "throughput_tok_s",
                             "power_mw", "capex_usd", "usd_per_mtok", *shadow, *chips]))
    for c in (c for c in shadow if c.startswith("lp_shadow.")):
        label = "tokens/s per extra MW" if "power" in c else "tokens/s per extra M USD"
        click.echo(f"marginal value ({c[10:]}, the LP with stage choices fixed): "
                   f"{', '.join(f'{v:,.0f}' for v in df[c].dropna())} {label}")
    if shadow:
        click.echo("(shadow.* is the plan's own price: 0 where whole systems leave part of the budget unused)")
    if out and "constraints.power_mw" in df and df["constraints.power_mw"].nunique() > 1:
        line_plot(df, "constraints.power_mw", "throughput_tok_s", "site power budget (MW)",
                  "served output tokens/s\n(max-throughput plan)", out / "budget_power.png",
                  "max-throughput plan per power budget", _case_label(case, sets))
    if out and "constraints.capex_usd" in df and df["constraints.capex_usd"].nunique() > 1:
        line_plot(df, "constraints.capex_usd", "throughput_tok_s", "capex budget (USD)",
                  "served output tokens/s\n(max-throughput plan)", out / "budget_capex.png",
                  "max-throughput plan per capex budget", _case_label(case, sets))
    if out:
        _study_record(out / "study.json", "budget", case, sets, catalogs, {
            "power_mw": power_mw, "capex_usd": capex_usd, "objective": "throughput", "grid": grid, "mip_gap": mip_gap,
            "time_limit_s": time_limit_s})
        click.echo(f"wrote {out}/budget.csv, study.json")
    if xlsx:
        click.echo(f"wrote {_write_xlsx(df, out / 'budget.xlsx', 'budget')}")


@main.command()
@click.argument("case", required=False)
@click.option("--vary", multiple=True, required=True, metavar="PATH=VALUES",
              help="A case field or catalog figure (chips.ID.FIELD) and its values: 0.05,0.08 | start:stop:n | ±30%:n.")
@click.option("--mode", type=click.Choice(["grid", "oat"]), default="grid", show_default=True,
              help="Several --vary: full grid, or one-at-a-time (tornado).")
@click.option("--output", type=click.Path(dir_okay=False), required=True, help="CSV file, one row per point.")
@click.option("--tornado", is_flag=True, help="Also write a tornado PNG (implies --mode oat).")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="tco", show_default=True)
@click.option("--point-by-point", is_flag=True,
              help="Build and solve every point's model on its own (slower). By default points that share a "
                   "candidate table share one model, changed in place: the same optima; plans equal within the "
                   "MIP gap may differ.")
@set_option
@catalog_option
@solve_options
@study_options
def sweep(case, vary, mode, output, tornado, objective, point_by_point, sets, catalogs, time_limit_s, mip_gap, grid,
          workers, scheduler, resume, force, quiet, warm_start, xlsx):
    """Sensitivity sweep over case fields and catalog figures, to tidy CSV.

    \b
    Examples:
      fleet sweep default --vary economics.electricity_usd_per_kwh=0.05,0.08,0.12 --output out/elec.csv
      fleet sweep default --vary chips.rubin.price_usd=±30%:5 --vary constraints.power_mw=±30%:5 \\
                  --tornado --output out/tornado.csv
    """
    from .plots import tornado_plot
    from .studies import beside, sweep as run, tornado_path

    df = run(case, vary, "oat" if tornado else mode, sets, catalogs, objective, _workers(workers), scheduler, output,
             resume, quiet, force, time_limit_s, mip_gap, grid, warm_start, chains=not point_by_point)
    baseline = None
    if tornado:
        png = tornado_path(output)  # beside the CSV, whatever dots its directories have
        baseline = _sweep_baseline(df, case, sets, catalogs, objective, time_limit_s, mip_gap, grid)
        tornado_plot(df, str(png), objective=objective, baseline=baseline, case=_case_label(case, sets))
        click.echo(f"wrote {png}")
    from .studies import is_count_column

    varied = [c for c in df.columns if "." in c and not is_count_column(c) and not c.startswith("shadow.")][:4]
    click.echo(_summary(df, [*varied, "status", "objective", "usd_per_mtok", "power_mw", "stages"]))
    _study_record(beside(output, ".study.json"), "sweep", case, sets, catalogs, {
        "vary": list(vary), "mode": "oat" if tornado else mode, "objective": objective, "grid": grid,
        "mip_gap": mip_gap, "time_limit_s": time_limit_s}, baseline)
    click.echo(f"wrote {output} ({len(df)} points)")
    if xlsx:
        click.echo(f"wrote {_write_xlsx(df, beside(output, '.xlsx'), 'sweep')}")


@main.command()
@click.argument("case", required=False)
@click.option("--vary", required=True, metavar="PATH=LO:HI", help="One parameter and the interval to search.")
@click.option("--until", "until", required=True, metavar="EXPR",
              help="'chips.ID > 0', 'chips.ID == 0', or 'stage[.CLASS].STAGE == CHIP'.")
@click.option("--rel-tol", type=FiniteFloatRange(min=1e-6, max=0.5), default=0.01, show_default=True,
              help="Stop when the interval is this fraction of the value.")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="tco", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@set_option
@catalog_option
@solve_options
def breakeven(case, vary, until, rel_tol, objective, fmt, sets, catalogs, time_limit_s, mip_gap, grid):
    """At what value does the plan change in the named way? Bisection over one parameter.

    \b
    Examples (each finds a break-even on the shipped catalogs):
      fleet breakeven default --vary chips.groq3-lpu.price_usd=100:12000 --until 'chips.groq3-lpu > 0'
      fleet breakeven default --vary chips.cerebras-wse3.price_usd=200000:2000000 \\
          --until 'stage.reasoning.decode_ffn == cerebras-wse3'
    """
    from .reports import to_json
    from .studies import breakeven as run

    r = run(case, vary, until, rel_tol, sets, catalogs, objective, time_limit_s=time_limit_s, mip_gap=mip_gap,
            grid=grid)
    if fmt == "json":
        click.echo(to_json(r), nl=False)
        return
    if not r["found"]:
        click.echo(f"no break-even in [{r['low']:g}, {r['high']:g}]: {r['message']}")
    else:
        click.echo(f"{r['path']}: '{r['until']}' becomes {'false' if r['holds_at_low'] else 'true'} at "
                   f"{r['value']:,.4g} (between {r['low']:,.4g} and {r['high']:,.4g}, ±{r['tolerance']:.1%}; "
                   f"{r['steps']} plans)")
    for side in ("plan_low", "plan_high"):
        p = r[side]
        chips = ", ".join(f"{k[6:]} {v:,}" for k, v in p.items()
                          if k.startswith("chips.") and k != r["path"] and v and v == v)
        click.echo(f"  at {p.get(r['path'], '?')}: {p.get('status')}; chips: {chips or '-'}; "
                   f"USD/Mtok {p.get('usd_per_mtok') or float('nan'):.4f}; stages: {p.get('stages', '')}")


@main.command()
@click.argument("target", metavar="PLAN_DIR|STUDY_DIR|SWEEP_CSV|CASE")
@click.option("-o", "--output", "out_file", type=click.Path(dir_okay=False), required=True,
              help="The HTML file to write (one self-contained file: inline CSS and charts, no network).")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@click.option("--grid", type=click.Choice(["fine", "coarse"]), default="fine", show_default=True,
              help="Candidate grid when TARGET is a case that is planned first.")
def report(target, out_file, force, grid):
    """Write one self-contained HTML report of a plan or a study.

    TARGET is a directory from `fleet plan --output`, `fleet pareto --output` or
    `fleet budget --output`, a `fleet sweep` CSV, or a case (name or path): a case is planned
    first (objective tco). The page holds the tables (units in the headers), charts of chips, MW
    and cost by class and stage, binding constraints with their shadow prices in words, the
    explanation if `fleet explain` stored one, and the provenance (case, --set, catalog versions,
    inputs hash, package versions).

    \b
    Examples:
      fleet plan --output out/plan && fleet report out/plan -o plan.html
      fleet report out/pareto -o pareto.html
      fleet report default -o default.html --grid coarse
    """
    import tempfile
    from pathlib import Path

    from .errors import Problem
    from .report_html import build_report
    from .reports import write_atomic

    out = Path(out_file)
    if out.exists() and not force:
        raise PlannerError(f"{out} exists", [Problem(str(out), "output file exists",
                                                     "pass --force to overwrite or choose another -o")])
    path = Path(target)
    is_case_file = path.is_file() and path.suffix == ".toml"
    if not is_case_file and (path.exists() or target.endswith((".csv", "/")) or "/" in target and not target.endswith(".toml")):
        html = build_report(path)
    else:  # a case: plan it into a temporary directory, then report that
        from .cases import case_path
        from .errors import CaseError
        from .planning import plan as run_plan, run_record, write_outputs

        try:
            case_path(target)
        except CaseError as exc:
            raise PlannerError(f"{target}: no such plan or study directory, sweep CSV or case", [Problem(
                target, "not found as a directory, a CSV file or a case", "pass a directory written by "
                "`fleet plan --output`/`fleet pareto --output`/`fleet budget --output`, a `fleet sweep` CSV, or a "
                "case name or path (" + (exc.problems[0].fix if exc.problems else "see `fleet cases`") + ")")])

        p = run_plan(target, (), (), "tco", DEFAULT_TIME_LIMIT_S, DEFAULT_MIP_GAP, None, grid)
        with tempfile.TemporaryDirectory(prefix="fleet-report-") as tmp:
            write_outputs(p, tmp, run_record(p, p.problem.case.source, (), (),
                                             {"objective": "tco", "time_limit_s": DEFAULT_TIME_LIMIT_S,
                                              "mip_gap": DEFAULT_MIP_GAP, "grid": grid}), force=True)
            html = build_report(tmp)
    write_atomic(out, html, force=True)
    click.echo(f"wrote {out} ({len(html.encode()) / 1024:,.0f} KB)")


def _case_label(case, sets=()) -> str:
    """The case's name for chart titles ('default', or the file's name = …), '+ N --set' when overridden."""
    from .cases import read_case_raw

    try:
        raw, label = read_case_raw(case)
        name = str(raw.get("name") or label)
    except PlannerError:
        name = str(case or "default")
    return name + (f" (+{len(sets)} --set)" if sets else "")


def _study_record(path, study, case, sets, catalogs, options, baseline=None) -> None:
    """What `fleet report` shows as a study's provenance: the case, overrides, catalogs and options."""
    import json

    from .cases import load_case
    from .reports import write_atomic

    c = load_case(case, sets, list(catalogs))
    rec = {"study": study, "case_name": _case_label(case, sets), "case": c.source, "sets": list(sets),
           "catalogs": list(catalogs), "catalog_versions": dict(c.catalog_versions),
           "objective": options.get("objective"), "options": {k: v for k, v in options.items() if v is not None}}
    if baseline is not None:
        rec["baseline"] = float(baseline)
    write_atomic(path, json.dumps(rec, indent=2, sort_keys=True, default=str) + "\n")


def _sweep_baseline(df, case, sets, catalogs, objective, time_limit_s, mip_gap, grid):
    """The base case's objective for the tornado's baseline: read off the sweep when every parameter's
    points share it (an odd ±% range), else planned once."""
    from .plots import OBJECTIVE_METRIC, infer_baseline
    from .studies import Point, evaluate, load_spec

    column = OBJECTIVE_METRIC[objective][0]
    base = infer_baseline(df, column)
    if base is None:
        row = evaluate(load_spec(case, sets, catalogs, objective, time_limit_s, mip_gap, grid), Point(-1, ()))
        base = row.get(column) if row.get("status") in ("optimal", "feasible", "time_limit") else None
    return base


@main.command()
@click.argument("target", metavar="CASE_OR_PLAN_DIR", required=False)
@set_option
@catalog_option
@solve_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the explanation as FILE.json.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
def explain(target, sets, catalogs, time_limit_s, mip_gap, grid, fmt, output, force):
    """Why the plan is what it is: each chip's role, each binding constraint's value, and for every
    allowed chip left out, what forcing it in costs and the price that would bring it in.

    CASE_OR_PLAN_DIR is a case (name or path; default 'default', planned for TCO) or a directory
    written by `fleet plan --output DIR` (its run.json names the case the what-ifs re-solve). Each
    left-out chip costs about 9 solves (one forced-in plan, a price bisection of up to 8); --grid
    sets the what-if grid.

    \b
    Examples:
      fleet explain
      fleet explain default --format json --output explain.json
      fleet plan default --output out/plan && fleet explain out/plan
    """
    from .explain import explain as run_explain, explain_text
    from .reports import to_json, write_atomic

    if output:
        _check_output_file(output, force)
    r = run_explain(target, sets, catalogs, grid, time_limit_s, mip_gap)
    click.echo(to_json(r) if fmt == "json" else explain_text(r), nl=fmt != "json")
    if output:
        write_atomic(output, to_json(r))
        if fmt != "json":
            click.echo(f"wrote {output}")


def _check_output_file(path, force):
    """Refuse an unusable output file before any solving: an existing file without --force, no write access."""
    import os
    from pathlib import Path

    from .errors import Problem

    out = Path(path)
    if out.exists() and not force:
        raise PlannerError(f"{out} exists", [Problem("--output", "output file exists",
                                                     "pass --force to overwrite or choose another path")])
    parent = next((p for p in out.absolute().parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PlannerError(f"cannot write {out}", [Problem("--output", f"{parent} is not a writable directory",
                                                           "choose a path you can write to")])


@main.command()
@click.argument("a", metavar="A")
@click.argument("b", metavar="B", required=False)
@click.option("--set-a", "set_a", multiple=True, metavar="PATH=VALUE", help="Override a field of case A (repeatable).")
@click.option("--set-b", "set_b", multiple=True, metavar="PATH=VALUE",
              help="Override a field of case B (repeatable); without B, B is case A.")
@catalog_option
@solve_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def diff(a, b, set_a, set_b, catalogs, time_limit_s, mip_gap, grid, fmt):
    """Two plans side by side: chips, stages per class, cost, MW, throughput, binding constraints.

    A and B are each a plan directory (`fleet plan --output DIR`) or a case (name or path, planned
    here). With one CASE, --set-a and --set-b compare it under two sets of overrides. Identical
    plans print 'identical'; the exit code is 0 either way.

    \b
    Examples:
      fleet diff out/plan-a out/plan-b          (two `fleet plan --output` directories)
      fleet diff default --set-b economics.pue=1.5
      fleet diff default hbm-shortage --format json
    """
    from .diff import diff as run_diff, diff_text
    from .reports import to_json

    r = run_diff(a, b, set_a, set_b, catalogs, grid, time_limit_s, mip_gap)
    click.echo(to_json(r) if fmt == "json" else diff_text(r), nl=fmt != "json")


def run():  # console-script entry point
    sys.exit(main())


@main.command()
@click.argument("case")
@set_option
@catalog_option
@solve_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--output", "out_dir", type=click.Path(file_okay=False),
              help="Write periods.csv, chips.csv, units.csv, roadmap.json, run.json and roadmap.png.")
@click.option("--force", is_flag=True, help="Replace the roadmap in --output.")
def roadmap(case, sets, catalogs, time_limit_s, mip_gap, grid, fmt, out_dir, force):
    """Plan a fleet over years for CASE (its [[periods]]): what to buy, keep and retire each period.

    Minimises the net present value of running costs and straight-line depreciation
    (economics.discount_rate, economics.amortization_years); chips can be bought from their catalog available_year,
    are retired at economics.service_life_years of age, and a retired chip does not come back.
    Owned chips ([[fleet.owned]]) are sunk. Exits 1 with a per-period diagnosis when no roadmap
    meets every period's demand within its power and capex.

    \b
    Examples:
      fleet roadmap roadmap-100mw
      fleet roadmap roadmap-100mw --set economics.discount_rate=0.12 --format json
      fleet roadmap roadmap-100mw --set chips.rubin-cpx.available_year=2027 --output out/
    """
    from .planning import case_run_record, check_output_dir
    from .reports import to_json
    from .roadmap import roadmap as run_roadmap
    from .roadmap_report import ROADMAP_FILES, roadmap_text, write_roadmap

    if out_dir:
        check_output_dir(out_dir, force, ROADMAP_FILES, "a roadmap")
    rm = run_roadmap(case, sets, catalogs, time_limit_s, mip_gap, grid)
    if out_dir:  # written first: a failed write is then the only JSON document on stdout
        run = case_run_record(rm.problem.case, rm.stats.get("solver", ""), rm.problem.case.source, sets, catalogs,
                              {"time_limit_s": time_limit_s, "mip_gap": mip_gap, "grid": grid})
        write_roadmap(rm, out_dir, run, force)
    click.echo(to_json(rm.to_dict()) if fmt == "json" else roadmap_text(rm), nl=fmt != "json")
    if out_dir:
        if fmt != "json":
            click.echo(f"wrote {out_dir}/ (periods, chips, units CSVs; roadmap.json; run.json; roadmap.png)")
