"""`hone recipe run` against a real daemon: upload, fine-tune with baseline and final evals, table, report."""

from __future__ import annotations

import subprocess
import sys


def hone_in(directory, daemon, *args, timeout=600):
    """The `hone` CLI as a subprocess run in `directory` (where the report lands)."""
    return subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, *args], cwd=directory,
                          capture_output=True, text=True, timeout=timeout, env={"COLUMNS": "200", "PATH": ""})


def test_a_recipe_run_prints_the_before_after_table_and_saves_the_report_here(daemon, tiny_model, tmp_path):
    run = hone_in(tmp_path, daemon, "recipe", "run", "customer-support", "--model", str(tiny_model),
                  "--subset", "16")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "customer-support: " in out and "before and after fine-tuning" in out
    for metric in ("exact_match ★", "macro_f1", "contains_all", "rouge_l"):
        assert metric in out
    assert "16 training examples, 8 test cases" in out
    reports = list(tmp_path.glob("customer-support-ftjob-*.html"))
    assert len(reports) == 1, out
    html = reports[0].read_text()
    assert "<html" in html and "exact_match" in html
    assert f"report: {reports[0]}" in out.replace("\n", "")
