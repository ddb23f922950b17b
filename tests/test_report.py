"""`fleet report`: one self-contained, escaped HTML page for a plan or a study; rendered in headless Chromium."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from planner.cli import main

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def plan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "p"
    res = CliRunner().invoke(main, ["plan", "default", "--grid", "coarse", "--output", str(out)])
    assert res.exit_code == 0, res.output
    return out


def _report(target, out, *extra):
    return CliRunner().invoke(main, ["report", str(target), "-o", str(out), *extra])


@pytest.fixture(scope="session")
def plan_html(plan_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "plan.html"
    res = _report(plan_dir, out)
    assert res.exit_code == 0, res.output
    return out


def test_plan_report_holds_tables_charts_constraints_and_provenance(plan_dir, plan_html):
    html = plan_html.read_text(encoding="utf-8")
    run = json.loads((plan_dir / "run.json").read_text())
    for heading in ("Chips to buy", "Classes", "Stages", "Units", "Constraints and shadow prices", "Provenance"):
        assert f">{heading}" in html
    assert run["inputs_sha256"] in html
    for name, version in run["catalog_versions"].items():
        assert name in html and version in html
    chips = pd.read_csv(plan_dir / "chips.csv")
    for r in chips.itertuples():
        assert f">{r.chip}<" in html and f">{int(r.capex_usd):,}<" in html  # thousands separators
    assert "capex (USD)" in html and "power (MW, site)" in html  # units in the headers
    assert html.count("src='data:image/png;base64,") == 2  # by class (4 panels) and by stage
    # binding constraints in words, with their shadow price
    cons = pd.read_csv(plan_dir / "constraints.csv")
    bound = cons[cons["binding"] & cons["shadow_price"].notna()].iloc[0]
    assert re.search(re.escape(bound["name"]) + r": .*met exactly; each extra 1,000 tok/s of it raises the TCO by",
                     html)


def test_report_is_self_contained(plan_html):
    html = plan_html.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:|//)""", html)
    assert "<script" not in html.lower()
    assert "<style>" in html


def test_strings_are_escaped(plan_dir, tmp_path):
    evil = tmp_path / "evil"
    shutil.copytree(plan_dir, evil)
    plan = json.loads((evil / "plan.json").read_text())
    plan["case"] = EVIL
    plan["warnings"] = [EVIL]
    plan["explain"] = [f"why {EVIL}"]
    (evil / "plan.json").write_text(json.dumps(plan))
    chips = pd.read_csv(evil / "chips.csv")
    chips.loc[0, "system_name"] = EVIL
    chips.to_csv(evil / "chips.csv", index=False)
    res = _report(evil, tmp_path / "e.html")
    assert res.exit_code == 0, res.output
    html = (tmp_path / "e.html").read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert ">Why this plan<" in html  # the explain section appears when plan.json has one


def test_explain_json_included_and_absent_skipped(plan_dir, plan_html, tmp_path):
    assert "Why this plan" not in plan_html.read_text()
    d = tmp_path / "x"
    shutil.copytree(plan_dir, d)
    (d / "explain.json").write_text(json.dumps({"summary": "Rubin is cheapest per token at 100 tok/s/user."}))
    assert _report(d, tmp_path / "x.html").exit_code == 0
    assert "Rubin is cheapest per token" in (tmp_path / "x.html").read_text()


def test_output_exists_needs_force(plan_dir, plan_html):
    res = _report(plan_dir, plan_html)
    assert res.exit_code == 2 and "--force" in res.output
    assert _report(plan_dir, plan_html, "--force").exit_code == 0


def test_neither_plan_nor_study(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    res = _report(tmp_path, tmp_path / "r.html")
    assert res.exit_code == 2
    assert str(tmp_path) in res.output and "plan.json" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r.html").exists()
    res = _report(tmp_path / "missing-dir/", tmp_path / "r.html")
    assert res.exit_code == 2 and "missing-dir" in res.output
    res = _report("no-such-case", tmp_path / "r.html")
    assert res.exit_code == 2 and "no-such-case" in res.output and "default" in res.output


def _pareto_dir(tmp_path, evil_family=False):
    rows = []
    for fam in ("gpu-only", EVIL if evil_family else "sram-only"):
        for s, ok in ((25.0, True), (100.0, True), (400.0, False)):
            rows.append({"point": len(rows), "point_key": f"k{len(rows)}", "family": fam, "speed_tok_s_user": s,
                         "status": "optimal" if ok else "infeasible", "objective": 400.0 if ok else None,
                         "tok_s_per_chip": 6884.0 if ok else None, "tok_s_per_mw": 3_341_952.0 / s if ok else None,
                         "usd_per_mtok": 0.0591 * s / 25 if ok else None, "power_mw": 0.57 if ok else None,
                         "chips.rubin": 72 if ok else 0,
                         "stages": "chat:decode_attention=rubin;chat:prefill=rubin" if ok else "",
                         "message": "" if ok else "no allowed chip reaches 400 tok/s/user"})
    d = tmp_path / "par"
    d.mkdir()
    pd.DataFrame(rows).to_csv(d / "pareto.csv", index=False)
    return d


def test_pareto_study_report(tmp_path):
    d = _pareto_dir(tmp_path, evil_family=True)
    (d / "study.json").write_text(json.dumps({"study": "pareto", "case_name": "my-case", "sets": []}))
    assert _report(d, tmp_path / "p.html").exit_code == 0
    html = (tmp_path / "p.html").read_text()
    assert "Pareto study — my-case" in html
    assert html.count("data:image/png;base64,") == 2
    assert "133,678" in html and "rubin (chips)" in html and "chat: attn=rubin, prefill=rubin" in html
    assert EVIL not in html


def test_sweep_csv_report_has_tornado(tmp_path):
    rows = [{"point": i, "point_key": f"k{i}", "varied": "economics.electricity_usd_per_kwh",
             "economics.electricity_usd_per_kwh": v, "status": "optimal", "objective": o, "tco_usd_per_hour": o}
            for i, (v, o) in enumerate(((0.05, 3970.0), (0.08, 4071.0), (0.12, 4206.0)))]
    pd.DataFrame(rows).to_csv(tmp_path / "elec.csv", index=False)
    assert _report(tmp_path / "elec.csv", tmp_path / "s.html").exit_code == 0
    html = (tmp_path / "s.html").read_text()
    assert ">Tornado<" in html and "data:image/png;base64," in html and "4,206" in html
    # a directory holding just that sweep CSV is a study directory too
    assert _report(tmp_path, tmp_path / "s2.html").exit_code == 0


def test_report_of_a_case_plans_it_first(tmp_path):
    res = _report("default", tmp_path / "c.html", "--grid", "coarse")
    assert res.exit_code == 0, res.output
    assert "Fleet plan — default" in (tmp_path / "c.html").read_text()


# --------------------------------------------------------------------------------- browser
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is not installed but CI=true: .ci/run installs it with apt-get (needs root)")
    pytest.skip("chromium not installed (apt-get install -y chromium); outside CI the browser test is skipped")


def _render(html_path: Path, png: Path) -> str:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
           "--enable-logging=stderr", "--v=0", f"--user-data-dir={png.parent / 'chromium-profile'}",
           "--window-size=1200,2000", f"--screenshot={png}", html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"chromium wrote no screenshot: {proc.stderr[-2000:]}"
    return proc.stderr


def _assert_not_blank(png: Path):
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    gray = img[..., :3].mean(axis=2)
    assert gray.std() > 0.05  # text, tables and charts, not a blank page
    assert (gray < 0.5).mean() > 0.005  # some dark ink (text)


def test_browser_renders_plan_and_study_reports(plan_html, tmp_path):
    d = _pareto_dir(tmp_path)
    assert _report(d, tmp_path / "p.html").exit_code == 0
    for page, shot in ((plan_html, tmp_path / "plan.png"), (tmp_path / "p.html", tmp_path / "pareto.png")):
        log = _render(page, shot)
        assert "Uncaught" not in log and "ERROR:CONSOLE" not in log, log[-2000:]
        _assert_not_blank(shot)
