"""What a job measures besides its headline: validation points while it trains, guard suites it must not
regress on, reference perplexity, the token-level view, and every number stored as rows beside its event."""

from __future__ import annotations

import json

import httpx

from hone import Client
from honed.evaluation.runner import generate_answer, load_model
from tests.conftest import SECRET_QA, chat_records, write_jsonl

GUARD_PROMPTS = ["Describe a river.", "Name a colour."]


def test_a_guard_suite_the_tuning_breaks_raises_a_regression(daemon, tiny_model, tmp_path):
    # The guard's references are the base model's own greedy answers, so the base scores 1.0 by construction
    # and a tuned model that now talks about its secret word does not.
    model, tokenizer = load_model(tiny_model)
    base_answers = [generate_answer(model, tokenizer, [{"role": "user", "content": p}], 8) for p in GUARD_PROMPTS]
    del model
    guard = {"name": "general", "metrics": ["exact_match"], "max_tokens": 8,
             "cases": [{"prompt": p, "reference": a} for p, a in zip(GUARD_PROMPTS, base_answers)]}
    cases_file = write_jsonl(tmp_path / "cases.jsonl", [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in SECRET_QA])

    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA, repeat=2)))
        validation = client.files.create(write_jsonl(tmp_path / "v.jsonl", chat_records(SECRET_QA[:2])))
        dataset = client.files.create(cases_file, purpose="evals")
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, validation_file=validation.id,
            hyperparameters={"n_epochs": 15, "batch_size": 4},
            honed={"lora_rank": 32, "learning_rate": 1e-2, "lora_dropout": 0.0, "eval_interval": 10,
                   "eval_live_cases": 2, "guards": [guard],
                   "eval": {"name": "secret", "dataset": dataset.id, "metrics": ["rouge_l", "perplexity"],
                            "max_tokens": 12, "inspect_case": 1, "attention_layer": -1}})
        client.files.delete(dataset.id)  # the job copied the cases; the file is no longer needed
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error
        events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data[::-1]
        rows = client.fine_tuning.jobs.eval_results(job.id).data

    evals = [e for e in events if e.kind == "eval"]
    # validation every 10 steps and at the end (30 steps), each with the quick task metric on 2 cases
    validation_points = [e.data for e in evals if e.data["phase"] == "validation"]
    assert [v["step"] for v in validation_points] == [10, 20, 30]
    assert all(v["valid_loss"] > 0 and set(v["task"]) == {"rouge_l", "perplexity"} for v in validation_points)
    assert validation_points[-1]["valid_loss"] < validation_points[0]["valid_loss"]

    main = {e.data["phase"]: e.data for e in evals if e.data.get("suite") == "secret"}
    assert main["baseline"]["run"]["outputs"] and len(main["baseline"]["run"]["outputs"]) == len(SECRET_QA)
    ppl_before = main["baseline"]["metrics"]["perplexity"]["value"]
    ppl_after = main["final"]["metrics"]["perplexity"]["value"]
    assert ppl_after < ppl_before / 2  # the references are what it was trained on
    assert main["comparison"]["comparison"]["perplexity"]["difference"] < 0

    tokens = main["tokens"]
    assert tokens["case"] == 1 and tokens["reference"] == SECRET_QA[1][1]
    assert len(tokens["tokens"]) == len(tokens["base_logprobs"]) == len(tokens["tuned_logprobs"]) > 0
    assert sum(tokens["tuned_logprobs"]) > sum(tokens["base_logprobs"])
    assert len(tokens["attention"]["weights"]) == len(tokens["attention"]["tokens"])

    guard_events = {e.data["phase"]: e.data for e in evals if e.data.get("suite") == "general"}
    assert all(d.get("guard") is True for d in guard_events.values())
    assert guard_events["baseline"]["metrics"]["exact_match"]["value"] == 1.0
    assert guard_events["final"]["metrics"]["exact_match"]["value"] < 1.0
    warnings = [e for e in events if e.kind == "warning" and (e.data or {}).get("kind") == "regression"]
    assert [(w.data["suite"], w.data["metric"], w.data["before"]) for w in warnings] == [
        ("general", "exact_match", 1.0)]
    assert warnings[0].level == "warn" and "Regression on guard suite 'general'" in warnings[0].message
    assert job.honed["result"]["eval"]["regressions"][0]["metric"] == "exact_match"

    # every number in an eval event is also a row, pointing back at that event
    by_event = {e.id: e.data for e in evals}
    for row in rows:
        data = by_event[row.event_id]
        if row.phase == "validation":
            assert row.value == data.get(row.metric, data["task"].get(row.metric)) and row.step == data["step"]
        else:
            assert row.value == data["metrics"][row.metric]["value"] and row.suite == data["suite"]
    assert {(r.phase, r.suite, r.metric) for r in rows if r.phase != "validation"} == {
        ("baseline", "secret", "rouge_l"), ("baseline", "secret", "perplexity"), ("final", "secret", "rouge_l"),
        ("final", "secret", "perplexity"), ("baseline", "general", "exact_match"),
        ("final", "general", "exact_match")}

    with httpx.Client(base_url=daemon.base_url) as raw:
        page = raw.get(f"/v1/reports/{job.id}.html").text
        assert "Regression" in page and "general" in page and "Token-level view" in page
        assert raw.get("/v1/fine_tuning/jobs/ftjob-nope/eval_results").status_code == 404


def test_a_suite_dataset_must_exist_and_parse(daemon, tiny_model, tmp_path):
    with httpx.Client(base_url=daemon.base_url) as raw:
        bad = raw.post("/v1/files", data={"purpose": "evals"}, files={"file": ("c.jsonl", b'{"prompt": "a"}\n[1]\n')})
        assert bad.status_code == 400 and "line 2" in bad.json()["error"]["message"]
        training = raw.post("/v1/files", data={"purpose": "fine-tune"}, files={
            "file": ("s.jsonl", write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA)).read_bytes())}).json()
        for dataset, status, message in [("file-missing", 404, "does not exist"),
                                         ("cases.jsonl", 400, "must be an uploaded file id")]:
            answer = raw.post("/v1/fine_tuning/jobs", json={
                "model": str(tiny_model), "training_file": training["id"],
                "honed": {"eval": {"name": "s", "dataset": dataset}}})
            assert answer.status_code == status, answer.text
            assert message in answer.json()["error"]["message"]
            assert answer.json()["error"]["param"] == "honed.eval.dataset"
        assert json.loads(raw.get("/v1/fine_tuning/jobs").text)["data"] == []
        assert [f["purpose"] for f in raw.get("/v1/files").json()["data"]] == ["fine-tune"]
