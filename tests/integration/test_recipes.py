"""`hone recipe run` against a real daemon: upload, fine-tune with baseline and final evals, table, report."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hone.client import Call


def hone_in(directory, daemon, *args, timeout=600):
    """The `hone` CLI as a subprocess run in `directory` (where the report lands)."""
    return subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, *args], cwd=directory,
                          capture_output=True, text=True, timeout=timeout, env={"COLUMNS": "200", "PATH": ""})


def test_a_recipe_run_prints_the_before_after_table_and_saves_the_report_here(shared_daemon, tiny_model, tmp_path):
    run = hone_in(tmp_path, shared_daemon, "recipe", "run", "customer-support", "--model", str(tiny_model),
                  "--subset", "8")
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "customer-support: " in out and "before and after fine-tuning" in out
    for metric in ("exact_match ★", "macro_f1", "contains_all", "rouge_l"):
        assert metric in out
    assert "8 training examples, 4 test cases" in out
    reports = list(tmp_path.glob("customer-support-ftjob-*.html"))
    assert len(reports) == 1, out
    html = reports[0].read_text()
    assert "<html" in html and "exact_match" in html
    assert f"report: {reports[0]}" in out.replace("\n", "")


def test_the_api_lists_recipes_and_prepares_one_as_stored_files_and_a_job(shared_daemon, tiny_model):
    from hone.client import Client, HoneError

    with Client(shared_daemon.base_url) as client:
        listed = {r.name: r for r in client.recipes.list().data}
        assert set(listed) >= {"customer-support", "code-generation", "creative-writing"}
        support = listed["customer-support"]
        assert support.primary_metric == "exact_match" and support.test_cases >= 200 and support.train_examples > 0

        prepared = client.recipes.prepare("customer-support", model=str(tiny_model), subset=12)
        assert prepared.training_file.examples == 12 and prepared.validation_file.examples == 6
        job = prepared.job
        assert job["training_file"] == prepared.training_file.id and job["model"] == str(tiny_model)
        assert job["honed"]["adapter"] == support.method and len(job["honed"]["eval"]["cases"]) == 6
        # the same recipe and subset again: the same stored files, not new copies
        again = client.recipes.prepare("customer-support", model=str(tiny_model), subset=12)
        assert (again.training_file.id, again.validation_file.id) == (prepared.training_file.id,
                                                                        prepared.validation_file.id)
        files_before = [f.id for f in client.files.list().data]

        # the prepared body is a valid job as it stands
        created = client.fine_tuning.jobs.create(**{k: v for k, v in job.items() if v is not None})
        assert created.status in ("queued", "running") and created.user_provided_suffix == "customer-support"
        client.fine_tuning.jobs.cancel(created.id)

        for name, body, status, words in [("no-such-recipe", {}, 404, "Known: "),
                                          ("customer-support", {"subset": 1}, 400, "subset must be at least 2"),
                                          ("customer-support", {"model": "no/such-model"}, 404, "no/such-model"),
                                          ("customer-support", {"subsett": 3}, 400, "subsett")]:
            with pytest.raises(HoneError) as caught:
                client._execute(Call("POST", f"/v1/recipes/{name}/prepare", json=body))
            assert caught.value.status == status and words in caught.value.message, caught.value.message
        assert [f.id for f in client.files.list().data] == files_before
