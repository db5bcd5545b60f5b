"""A job with an eval suite measures the base model before training and the tuned model after."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import yaml

from hone import Client
from tests.conftest import SECRET_QA, chat_records, write_jsonl

SUITE = {
    "name": "secret-word",
    "metrics": ["contains_all", "rouge_l"],
    "max_tokens": 12,
    "cases": [{"prompt": q, "keywords": ["secret word is pamplemousse"], "reference": a} for q, a in SECRET_QA],
}


def test_baseline_and_final_evaluations_show_the_gain(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA, repeat=2)))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, hyperparameters={"n_epochs": 15, "batch_size": 4},
            honed={"lora_rank": 32, "learning_rate": 1e-2, "lora_dropout": 0.0, "eval": SUITE})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error
        events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    evals = {e.data["phase"]: e.data for e in events if e.kind == "eval"}
    assert set(evals) == {"baseline", "validation", "final", "comparison", "tokens"}
    seqs = {e.data["phase"]: e.seq for e in events if e.kind == "eval"}
    first_metrics = min(e.seq for e in events if e.kind == "metrics")
    assert seqs["baseline"] < first_metrics < seqs["final"] < seqs["comparison"]  # before, then after training

    baseline, final = evals["baseline"]["metrics"], evals["final"]["metrics"]
    assert baseline["contains_all"]["value"] == 0.0
    assert final["contains_all"]["value"] == 1.0
    assert final["rouge_l"]["value"] > baseline["rouge_l"]["value"]
    assert final["contains_all"]["low"] <= final["contains_all"]["value"] <= final["contains_all"]["high"]
    outputs = evals["final"]["run"]["outputs"]
    assert len(outputs) == len(SECRET_QA) and all("pamplemousse" in o for o in outputs)

    comparison = evals["comparison"]["comparison"]["contains_all"]
    assert comparison["difference"] == 1.0 and comparison["significant"] is True
    assert job.honed["result"]["eval"]["comparison"]["contains_all"]["after"] == 1.0

    # the report tells the same story as the events
    with httpx.Client(base_url=daemon.base_url) as raw:
        page = raw.get(f"/v1/reports/{job.id}.html")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert job.id in page.text and "contains_all" in page.text and "<svg" in page.text
        pdf = raw.get(f"/v1/reports/{job.id}.pdf", timeout=120)
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
        assert raw.get("/v1/reports/ftjob-nope.html").status_code == 404
        assert raw.get(f"/v1/reports/{job.id}.docx").status_code == 404
    saved = tmp_path / "report.html"
    result = subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, "report", job.id,
                             "-o", str(saved)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert saved.read_text() == page.text

    # the PDF is the same report on paper: more than one page, with the job and its numbers in its text
    pdf_path = tmp_path / "report.pdf"
    pdf_path.write_bytes(pdf.content)
    pages = subprocess.run(["pdfinfo", str(pdf_path)], capture_output=True, text=True, check=True).stdout
    assert int(next(line.split()[-1] for line in pages.splitlines() if line.startswith("Pages:"))) > 1
    text = subprocess.run(["pdftotext", str(pdf_path), "-"], capture_output=True, text=True, check=True).stdout
    assert job.id in text and "contains_all" in text
    assert "0.00 [0.00, 0.00]" in text and "1.00 [1.00, 1.00]" in text


def test_a_suite_that_cannot_run_is_refused_at_creation(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA)))
    cases = [{"prompt": "q", "keywords": ["x"]}]
    bad = [
        ({"name": "s", "metrics": ["vibes"], "cases": cases}, "unknown metric 'vibes'", "honed.eval.metrics"),
        ({"name": "s", "metrics": ["contains_all"], "cases": [{"prompt": "q"}]}, "needs keywords for contains_all",
         "honed.eval.cases[0].keywords"),
        ({"name": "s", "metrics": ["exact_match"], "cases": cases}, "needs a reference for exact_match",
         "honed.eval.cases[0].reference"),
        ({"name": "s", "cases": []}, "the eval suite has no cases", "honed.eval.cases"),
    ]
    with httpx.Client(base_url=daemon.base_url) as raw:
        before = raw.get("/v1/fine_tuning/jobs").json()["data"]
        for suite, message, param in bad:
            response = raw.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": training.id,
                                                              "honed": {"eval": suite}})
            assert response.status_code == 400, response.text
            assert message in response.json()["error"]["message"]
            assert response.json()["error"]["param"] == param
        assert raw.get("/v1/fine_tuning/jobs").json()["data"] == before


def test_an_eval_run_compares_the_base_and_the_tuned_model(daemon, tiny_model, tmp_path):
    import time

    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA, repeat=2)))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, hyperparameters={"n_epochs": 15, "batch_size": 4},
            honed={"lora_rank": 32, "learning_rate": 1e-2, "lora_dropout": 0.0})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        run = client.evals.create(suite=SUITE, models=[str(tiny_model), job.fine_tuned_model])
        assert run.status == "queued" and run.id.startswith("eval-")
        deadline = time.monotonic() + 120
        while run.status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.3)
            run = client.evals.retrieve(run.id)
        assert run.status == "succeeded", run.error
        assert run.results[job.fine_tuned_model]["metrics"]["contains_all"]["value"] == 1.0
        assert run.results[str(tiny_model)]["metrics"]["contains_all"]["value"] == 0.0
        assert run.comparison["contains_all"]["significant"] is True
        assert run.id not in [j.id for j in client.fine_tuning.jobs.list(limit=100).data]
        results = client.evals.results(run.id).data
        assert {(r.model, r.metric): r.value for r in results} == {
            (name, metric): run.results[name]["metrics"][metric]["value"]
            for name in run.models for metric in SUITE["metrics"]}

        with httpx.Client(base_url=daemon.base_url) as raw:
            unknown = raw.post("/v1/evals", json={"suite": SUITE, "models": ["acme/nothing"]})
            assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "models"
            three = raw.post("/v1/evals", json={"suite": SUITE, "models": ["a", "b", "c"]})
            assert three.status_code == 400 and "two different models" in three.json()["error"]["message"]

    # the same comparison from a YAML suite through the CLI, with the base model judging the answer pairs
    suite_file = tmp_path / "secret.yaml"
    suite_file.write_text(yaml.safe_dump({**SUITE, "metrics": ["contains_all"], "cases": SUITE["cases"][:2],
                                          "judge": {"model": str(tiny_model), "max_tokens": 4}}))
    result = subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, "evals", "run",
                             str(suite_file), "--model", str(tiny_model), "--model", job.fine_tuned_model],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "contains_all" in result.stdout and "LLM judge:" in result.stdout
    with Client(daemon.base_url) as client:
        run_id = result.stdout.split()[0]
        judged = client.evals.retrieve(run_id).judge
    assert judged["n"] == 2 and judged["wins"] + judged["losses"] + judged["ties"] + judged["invalid"] == 2
    assert all(case["raw_first_order"] is not None and case["raw_swapped"] is not None
               for case in judged["per_case"])
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\ncases: [{prompt: p, colour: red}]\n")
    result = subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, "evals", "run",
                             str(broken), "--model", str(tiny_model)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "colour" in result.stderr and "Traceback" not in result.stderr

