"""Studies under faults: untrusted resumes, full disks, concurrent writers, signals, progress."""
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from planner import studies
from planner.cli import main
from planner.studies.runtime import HOLD_ENV, OutputLock

REPO = Path(__file__).resolve().parents[1]
SWEEP = ["sweep", "default", "--grid", "coarse", "--workers", "1"]
PUE2 = ["--vary", "economics.pue=1.1,1.2"]


def fleet(*args, **kw):
    """The CLI in a real process (what a user, CI or a scheduler runs)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "planner", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def rows(path):
    return pd.read_csv(path, dtype={"point_key": str})


def same_rows(a, b):
    strip = lambda p: rows(p).drop(columns="wall_s")  # noqa: E731
    pd.testing.assert_frame_equal(strip(a), strip(b))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A finished two-point sweep, shared by the resume tests."""
    out = tmp_path_factory.mktemp("full") / "full.csv"
    res = invoke(*SWEEP, *PUE2, "--output", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    return out


# ------------------------------------------------------------------------------------- resume
def test_resume_refuses_another_set_or_case(full, tmp_path):
    out = tmp_path / "r.csv"
    out.write_bytes(full.read_bytes())
    for extra in (["--set", "economics.electricity_usd_per_kwh=0.2"], ["--mip-gap", "0.01"]):
        res = invoke(*SWEEP, *PUE2, "--output", str(out), "--resume", *extra)
        assert res.exit_code == 2, res.output
        assert "--resume" in res.output and "different study" in res.output
    res = invoke("sweep", "rubin-lpx", "--grid", "coarse", *PUE2, "--output", str(out), "--resume")
    assert res.exit_code == 2 and "different study" in res.output
    assert out.read_bytes() == full.read_bytes()  # a refused resume leaves the file alone


@pytest.mark.parametrize("text", ["", "a,b\n1,2\n", "point,point_key,status\n0,abc,optimal\n", "\x00\xff\xfe",
                                  '"unterminated\n'])
def test_resume_refuses_foreign_or_empty_csv(tmp_path, text):
    out = tmp_path / "f.csv"
    out.write_bytes(text.encode("latin-1"))
    res = invoke(*SWEEP, *PUE2, "--output", str(out), "--resume")
    assert res.exit_code == 2, res.output
    assert "--resume" in res.output and "Traceback" not in res.output and res.exception.__class__ is SystemExit


def test_resume_drops_torn_and_repeated_rows(full, tmp_path):
    header, first, second = full.read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path / "torn.csv"
    out.write_text(header + first + first + "1,xx,1.2\n" + ",,1.2" + "," * (header.count(",") - 2) + "\n"
                   + second[: len(second) // 2], encoding="utf-8")  # repeated, short, keyless and torn rows
    res = invoke(*SWEEP, *PUE2, "--output", str(out), "--resume", "--quiet")
    assert res.exit_code == 0, res.output
    assert "dropped" in res.output
    same_rows(full, out)


def test_repeated_values_are_one_point(tmp_path):
    out = tmp_path / "d.csv"
    res = invoke(*SWEEP, "--vary", "economics.pue=1.1,1.1", "--output", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    assert len(rows(out)) == 1
    res = invoke(*SWEEP, "--vary", "economics.pue=1.1,1.1", "--output", str(out), "--quiet", "--resume")
    assert res.exit_code == 0 and len(rows(out)) == 1


# ------------------------------------------------------------------------------------- disk
def _small_file_limit(nbytes):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@pytest.mark.slow
def test_full_disk_fails_at_first_write_and_resumes(full, tmp_path):
    out = tmp_path / "disk.csv"
    res = fleet(*SWEEP, "--vary", "economics.pue=1.1,1.2,1.3", "--output", str(out), "--quiet",
                preexec_fn=_small_file_limit(1500))
    assert res.returncode == 3, res.stderr
    assert "cannot write" in res.stderr and "--resume" in res.stderr and "Traceback" not in res.stderr
    if out.exists():  # the first row(s) that fitted: whole rows only
        assert out.read_bytes().endswith(b"\n") and len(rows(out)) < 3
    res = fleet(*SWEEP, "--vary", "economics.pue=1.1,1.2,1.3", "--output", str(out), "--quiet", "--resume")
    assert res.returncode == 0, res.stderr
    assert list(rows(out)["economics.pue"]) == [1.1, 1.2, 1.3]


def test_unwritable_outputs_fail_before_any_point(tmp_path):
    (tmp_path / "file").write_text("x")
    for target in ("/dev/null", str(tmp_path / "file" / "sub" / "o.csv")):
        res = invoke("sweep", "default", *PUE2, "--output", target)
        assert res.exit_code == 2, res.output
        assert "cannot write" in res.output and "points" not in res.output  # no progress: nothing ran
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "pareto.csv").mkdir()
    res = invoke("pareto", "default", "--speeds", "50", "--output", str(tmp_path / "p"))
    assert res.exit_code == 2 and "is a directory" in res.output


def test_read_only_directory_fails_before_any_point(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    args = [sys.executable, "-m", "planner", "sweep", "default", *PUE2, "--output", str(ro / "o.csv")]
    if os.geteuid() == 0:  # root ignores file modes: mount a read-only tmpfs there, in a private mount namespace
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            pytest.skip("needs unshare -m as root")
        args = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o ro,size=64k tmpfs "$0" && exec "$@"', str(ro), *args]
    else:
        ro.chmod(0o555)
    res = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                         timeout=300)
    ro.chmod(0o755)
    assert res.returncode == 2, res.stderr
    assert "read-only" in res.stderr and "points" not in res.stderr and "Traceback" not in res.stderr


# ------------------------------------------------------------------------------------- lock
def test_second_writer_is_refused(tmp_path):
    out = tmp_path / "l.csv"
    with OutputLock(out):  # another process holds the output (flock is per open file, across processes)
        res = fleet(*SWEEP, *PUE2, "--output", str(out), "--quiet")
    assert res.returncode == 2, res.stderr
    assert "being written by another study" in res.stderr and not out.exists()
    res = fleet(*SWEEP, "--vary", "economics.pue=1.1", "--output", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert not Path(str(out) + ".lock").exists()


def _wait_for(pred, what, limit_s=120):
    deadline = time.monotonic() + limit_s
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
def test_two_concurrent_studies_on_one_output(tmp_path):
    out = tmp_path / "c.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    vary = "economics.pue=" + ",".join(f"1.{i}" for i in range(1, 9))
    first = subprocess.Popen([sys.executable, "-m", "planner", *SWEEP, "--vary", vary, "--output", str(out),
                              "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: Path(str(out) + ".lock").exists() or first.poll() is not None, "the first study's lock")
        second = fleet(*SWEEP, "--vary", vary, "--output", str(out), "--quiet", "--resume")
        if first.poll() is None or second.returncode == 2:
            assert second.returncode == 2 and "being written by another study" in second.stderr, second.stderr
        _, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        first.kill()
    assert len(rows(out)) == 8


# ------------------------------------------------------------------------------------- signals
def _children(pid):
    kids = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids |= {int(k) for k in (task / "children").read_text().split()}
    return kids


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, pool", [(signal.SIGTERM, 143, True), (signal.SIGINT, 130, True),
                                             (signal.SIGTERM, 143, False)])
def test_signal_stops_promptly_and_keeps_rows(tmp_path, sig, code, pool):
    """pool: points planned one by one in worker processes; else the sweep chain (one model, in-process)."""
    out = tmp_path / "s.csv"
    vary = "economics.pue=" + ",".join(f"1.{i}" for i in range(1, 10))
    args = [sys.executable, "-m", "planner", "sweep", "default", "--grid", "coarse", "--workers", "2",
            "--vary", vary, "--output", str(out), "--quiet"] + (["--point-by-point"] if pool else [])
    held = tmp_path / "held"  # the study waits after its first row until the signal comes (no race)
    proc = subprocess.Popen(args, env={**os.environ, "PYTHONPATH": str(REPO), HOLD_ENV: f"1:{held}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: held.exists() or proc.poll() is not None, "the study to hold after its first row")
        workers = _children(proc.pid)
        assert workers or not pool, "the pool has workers"
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)  # Ctrl-C reaches the whole process group
        else:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    _wait_for(lambda: not any(_alive(w) for w in workers), "the workers to end", limit_s=10)
    done = rows(out)
    assert 1 <= len(done) < 9
    res = fleet("sweep", "default", "--grid", "coarse", "--workers", "2", "--vary", vary, "--output", str(out),
                "--quiet", "--resume", *(["--point-by-point"] if pool else []))
    assert res.returncode == 0, res.stderr
    assert list(rows(out)["point"]) == list(range(9))


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(tmp_path):
    """SIGKILL gives the parent no chance to clean up: the workers must still go (PR_SET_PDEATHSIG)."""
    out = tmp_path / "k.csv"
    vary = "economics.pue=" + ",".join(f"1.{i}" for i in range(1, 10))
    proc = subprocess.Popen([sys.executable, "-m", "planner", "sweep", "default", "--grid", "coarse", "--workers", "2",
                             "--vary", vary, "--output", str(out), "--quiet", "--point-by-point"],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: out.exists() and out.read_text().count("\n") >= 2 or proc.poll() is not None,
                  "the first row")
        workers = _children(proc.pid)
        assert workers
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    _wait_for(lambda: not any(_alive(w) for w in workers), "the workers to die with their parent", limit_s=10)
    assert out.read_bytes().endswith(b"\n") and len(rows(out)) >= 1  # whole rows only, so it resumes


# ------------------------------------------------------------------------------------- progress
def test_progress_off_a_terminal_is_a_line_per_tenth(capsys):
    from planner.studies.runtime import progress

    bar = progress(100, quiet=False, desc="pareto")
    for _ in range(100):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert 10 <= len(lines) <= 12, lines
    assert all("ETA" in ln and "/100 points" in ln for ln in lines)
    assert lines[-1].startswith("pareto: 100/100 points (100%)")
    quiet = progress(100, quiet=True)
    quiet.update(100)
    quiet.close()
    assert capsys.readouterr().err == ""


def test_study_says_how_far_it_is(tmp_path):
    res = fleet(*SWEEP, *PUE2, "--output", str(tmp_path / "p.csv"))
    assert res.returncode == 0, res.stderr
    assert "sweep: 2/2 points (100%)" in res.stderr and "ETA" in res.stderr
    quiet = fleet(*SWEEP, *PUE2, "--output", str(tmp_path / "q.csv"), "--quiet")
    assert "points" not in quiet.stderr


# ------------------------------------------------------------------------------------- input
def test_varied_catalog_figures_keep_their_floats(tmp_path):
    out = tmp_path / "f.csv"
    res = invoke(*SWEEP, "--vary", "chips.rubin.bw_eff=0.55,0.6", "--output", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    df = rows(out)
    assert list(df["chips.rubin.bw_eff"]) == [0.55, 0.6]
    assert df["chips.rubin"].dtype.kind == "i"  # the plan's chip count stays an integer
    assert not studies.is_count_column("chips.rubin.price_usd") and studies.is_count_column("chips.rubin")
    tidy = studies.tidy(pd.DataFrame([{"point": 0, "chips.rubin.price_usd": 66315.79, "chips.rubin": 12.0}]))
    assert tidy["chips.rubin.price_usd"].iloc[0] == 66315.79 and tidy["chips.rubin"].iloc[0] == 12


BAD_VALUES = [
    (["sweep", "default", "--vary", "economics.pue=nan,1.2"], "--vary"),
    (["sweep", "default", "--vary", "economics.pue=1.1,inf"], "--vary"),
    (["sweep", "default", "--vary", "economics.pue=1:2:3:4"], "--vary"),
    (["sweep", "default", "--vary", "economics.pue=1:2:0"], "--vary"),
    (["sweep", "default", "--vary", "economics.pue=±30%"], "--vary"),
    (["budget", "default", "--power-mw", "-5"], "--power-mw"),
    (["budget", "default", "--power-mw", "0"], "--power-mw"),
    (["budget", "default", "--power-mw", "nan"], "--power-mw"),
    (["budget", "default", "--power-mw", "abc"], "--power-mw"),
    (["budget", "default", "--capex-usd", "0"], "--capex-usd"),
    (["budget", "default", "--capex-usd", "-1e9,2e9"], "--capex-usd"),
    (["pareto", "default", "--speeds", "nan"], "--speeds"),
    (["pareto", "default", "--speeds", "0:100:5"], "--speeds"),
    (["pareto", "default", "--speeds", "abc"], "--speeds"),
    (["pareto", "default", "--speeds", "50,-1"], "--speeds"),
]


@pytest.mark.parametrize("args, option", BAD_VALUES)
def test_bad_study_values_fail_before_any_solve(tmp_path, args, option):
    out = ["--output", str(tmp_path / ("o.csv" if args[0] == "sweep" else "o"))]
    res = invoke(*args, *out)
    assert res.exit_code == 2, res.output
    assert option in res.output and "Traceback" not in res.output
    assert "points" not in res.output  # refused before the progress line of the first point
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o" / "pareto.csv").exists()


@pytest.mark.parametrize("vary, hint", [
    ("foo.bar=1,2", "--vary foo.bar"),
    ("economics.pu=1.1,1.2", "did you mean 'economics.pue'?"),
    ("chips.rubn.price_usd=5000,6000", "did you mean 'chips.rubin.price_usd'?"),
    ("chips.rubin.bw_ef=0.5,0.6", "did you mean 'chips.rubin.bw_eff'?"),
    ("classes.0.min_sped_tok_s_user=50,60", "did you mean 'classes.0.min_speed_tok_s_user'?"),
    ("constraints.capx_usd=1e9,2e9", "did you mean 'constraints.capex_usd'?"),
    ("classes.9.isl=100,200", "--vary classes.9.isl"),
])
def test_wrong_varied_path_fails_before_any_solve(tmp_path, vary, hint):
    res = invoke("sweep", "default", "--vary", vary, "--output", str(tmp_path / "o.csv"))
    assert res.exit_code == 2, res.output
    assert hint in res.output and "points" not in res.output and "Traceback" not in res.output


def test_known_path_with_some_bad_values_warns(tmp_path):
    out = tmp_path / "w.csv"
    res = fleet(*SWEEP, "--vary", "economics.pue=0.5,1.2", "--output", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "warning: 1 of 2 points are invalid" in res.stderr and "economics.pue" in res.stderr
    res = fleet(*SWEEP, "--vary", "economics.pue=0.5,0.7", "--output", str(tmp_path / "all.csv"), "--quiet")
    assert res.returncode == 2, res.stderr
    assert "every point of the study is invalid" in res.stderr and "point 0: " in res.stderr
    assert "economics.pue: " in res.stderr  # the first point's own reason
    assert not (tmp_path / "all.csv").exists()


@pytest.mark.parametrize("until, hint", [
    ("chips.cerebas-wse3 > 0", "did you mean 'cerebras-wse3'?"),
    ("chips.h100-sxm > 0", "not in the case's fleet"),
    ("chips.rubin-cxp > 0", "did you mean 'rubin-cpx'?"),
    ("stage.decode_fn == rubin", "did you mean 'decode_ffn'?"),
    ("stage.chatt.decode_ffn == rubin", "did you mean 'chat'?"),
    ("stage.decode_ffn == groq3-lp", "did you mean 'groq3-lpu'?"),
    ("chips.rubin > nan", "finite"),
])
def test_breakeven_until_names_the_case(until, hint):
    res = invoke("breakeven", "default", "--vary", "chips.rubin.price_usd=1000:90000", "--until", until)
    assert res.exit_code == 2, res.output
    assert "--until" in res.output and hint in res.output and "Traceback" not in res.output


def test_breakeven_until_chip_outside_the_fleet():
    res = invoke("breakeven", "default", "--set", 'fleet.chips=["rubin","gb300"]', "--vary",
                 "chips.rubin.price_usd=1000:90000", "--until", "chips.cerebras > 0")
    assert res.exit_code == 2 and "'cerebras' is not in the case's fleet" in res.output, res.output
    assert "chips of this case: rubin, gb300" in res.output


def test_breakeven_until_resolves_aliases(catalog):
    from planner.cases import load_case

    case = load_case("default")
    alias = next(a for a in catalog.chips["cerebras-wse3"].aliases)
    pred = studies.parse_until(f"chips.{alias} > 0", case, catalog)
    assert pred({"status": "optimal", "chips.cerebras-wse3": 3}) and not pred({"status": "optimal"})


@pytest.mark.parametrize("vary", ["chips.rubn.price_usd=1000:9000", "chips.rubin.price_usd=nan:9000",
                                  "chips.rubin.price_usd=5:5", "=1:2"])
def test_breakeven_vary_is_checked(vary):
    res = invoke("breakeven", "default", "--vary", vary, "--until", "chips.rubin > 0")
    assert res.exit_code == 2 and "--vary" in res.output and "Traceback" not in res.output, res.output


@pytest.mark.parametrize("output, png", [("out/t.csv", "out/t_tornado.png"),
                                         ("run.v1/results", "run.v1/results_tornado.png"),
                                         ("t.CSV", "t_tornado.png"), ("a.b/c.d.csv", "a.b/c.d_tornado.png"),
                                         ("out/tornado.csv", "out/tornado.png")])
def test_tornado_png_sits_beside_the_csv(output, png):
    assert studies.tornado_path(output) == Path(png)


def test_tornado_cli_writes_beside_the_csv(tmp_path):
    out = tmp_path / "run.v1" / "results"
    res = invoke(*SWEEP, "--vary", "economics.pue=1.1,1.2", "--tornado", "--output", str(out), "--quiet")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run.v1" / "results_tornado.png").stat().st_size > 1000
    assert not (tmp_path / "run_tornado.png").exists()


def test_resume_recomputes_a_row_with_cut_overflow_json(tmp_path):
    """A row whose `extra` JSON is not whole (edited or damaged) is recomputed, not trusted."""
    res = invoke(*SWEEP, *PUE2, "--output", str(tmp_path / "ref.csv"), "--quiet")
    assert res.exit_code == 0
    spec = studies.load_spec("default", grid="coarse")
    points = studies.sweep_points(studies.parse_vary(["economics.pue=1.1,1.2"], spec))
    sha = studies.study_hash("sweep", spec.raw, spec.catalogs, spec.objective, spec.time_limit_s, spec.mip_gap,
                             spec.grid, spec.families, [p.key for p in points])
    out = tmp_path / "x.csv"
    appender = studies.CsvAppender(out)
    for p in points:  # a column first seen in the second row goes to its overflow JSON
        appender.add({**studies.evaluate(spec, p), "study_sha256": sha, **({"shadow.new[x]": 1.0} if p.index else {})})
    appender.close()
    text = out.read_text(encoding="utf-8")
    assert '""shadow.new[x]"": 1.0}' in text  # the overflow JSON ends with the late column (others may precede it)
    out.write_text(text.replace('""shadow.new[x]"": 1.0}', '""shadow.new[x]"": 1.'), encoding="utf-8")
    res = invoke(*SWEEP, *PUE2, "--output", str(out), "--quiet", "--resume")
    assert res.exit_code == 0, res.output
    assert "dropped 1" in res.output
    same_rows(tmp_path / "ref.csv", out)


def test_points_the_solver_fails_on_are_not_invalid(monkeypatch, tmp_path):
    """A solver failure is exit 3 'solver_error' (not 'invalid', which means fix your input)."""
    from planner.errors import SolverError

    def broken(*a, **k):
        raise SolverError("HiGHS is missing", [])

    monkeypatch.setattr("planner.candidates.build_candidates", broken)
    cache = studies.CandidateCache()  # empty: the tables earlier tests left in studies.CACHE would hide the failure
    spec = studies.load_spec("default", grid="coarse")
    with pytest.raises(SolverError, match="no point of the study was solved"):
        studies.run_points(spec, studies.sweep_points([("economics.pue", [1.1, 1.2])]), cache=cache)
    row = studies.evaluate(spec, studies.Point(0, (("economics.pue", 1.1),)), cache)
    assert row["status"] == "solver_error" and "HiGHS" in row["message"]
