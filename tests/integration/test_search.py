"""Hyperparameter searches through a real daemon: trials are real fine-tuning jobs on the queue, a diverging
trial is pruned, the best trial's model is served, and a cancelled search cancels its trial."""

from __future__ import annotations

import time

import httpx
import pytest

from hone import Client
from tests.conftest import SECRET_QA, chat_records, write_jsonl
from tests.integration.test_files_and_cli import hone


@pytest.fixture(scope="module")
def daemon(shared_daemon):
    return shared_daemon


@pytest.fixture(scope="module")
def files(daemon, tmp_path_factory):
    folder = tmp_path_factory.mktemp("search-data")
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(folder / "t.jsonl", chat_records(SECRET_QA, repeat=4)))
        validation = client.files.create(write_jsonl(folder / "v.jsonl", chat_records(SECRET_QA)))
    return training.id, validation.id


def template(tiny_model, files, **honed) -> dict:
    training, validation = files
    return {"model": str(tiny_model), "training_file": training, "validation_file": validation,
            "hyperparameters": {"n_epochs": 2, "batch_size": 4},
            # divergence_factor 0: a runaway trial is the pruner's to stop here, not the guard's
            "honed": {"checkpoint_interval": 100, "eval_interval": 2, "warmup_ratio": 0.0, "lora_dropout": 0.0,
                      "divergence_factor": 0, **honed}}


def wait_search(client: Client, search_id: str, timeout: float = 600) -> object:
    deadline = time.monotonic() + timeout
    while True:
        found = client.fine_tuning.searches.retrieve(search_id)
        if found.status in ("succeeded", "failed", "cancelled"):
            return found
        assert time.monotonic() < deadline, f"search still {found.status}: {found.trials}"
        time.sleep(0.5)


def test_a_four_trial_search_prunes_the_diverging_trial_and_serves_the_best(daemon, tiny_model, files):
    space = {"learning_rate_multiplier": {"low": 1, "high": 5000, "log": True}, "lora_rank": {"choices": [4, 8]}}
    # three trials set by hand (two sane ones for the median, then one whose learning rate runs away), and one
    # the TPE sampler proposes
    enqueue = [{"learning_rate_multiplier": 20, "lora_rank": 8}, {"learning_rate_multiplier": 5, "lora_rank": 4},
               {"learning_rate_multiplier": 5000, "lora_rank": 8}]
    with Client(daemon.base_url) as client:
        search = client.fine_tuning.searches.create(job=template(tiny_model, files), space=space, n_trials=4,
                                                    trial_max_steps=6, enqueue=enqueue, seed=3)
        assert search.status == "queued" and search.direction == "minimize" and search.metric == "valid_loss"
        found = wait_search(client, search.id)
        assert found.status == "succeeded", found.error
        jobs = {t.number: client.fine_tuning.jobs.retrieve(t.job_id) for t in found.trials}
        best = found.best_trial
        answer = client.chat.completions.create(model=best.fine_tuned_model, max_tokens=8, temperature=0,
                                                messages=[{"role": "user", "content": "What is the secret word?"}])
        events = client.fine_tuning.searches.list_events(search.id, limit=100).data
        report = client.fine_tuning.searches.report(search.id).decode()

    assert [t.number for t in found.trials] == [0, 1, 2, 3]
    assert [t.params for t in found.trials[:3]] == enqueue
    runaway = found.trials[2]
    assert runaway.state == "pruned" and runaway.step == 2  # stopped at its first validation point
    assert jobs[2].status == "cancelled" and jobs[2].honed["result"]["pruned_at"] == 2
    assert jobs[2].honed["max_steps"] == 6 and jobs[2].hyperparameters.learning_rate_multiplier == 5000
    complete = [t for t in found.trials if t.state == "complete"]
    assert len(complete) >= 2 and all(jobs[t.number].status == "succeeded" for t in complete)
    # each complete trial's value is its job's validation loss at its last step; the best is the lowest
    for t in complete:
        last = [r for r in client_results(daemon, t.job_id) if r["metric"] == "valid_loss"][-1]
        assert t.value == pytest.approx(last["value"]) and t.step == last["step"] == 6
    assert best.number == min(complete, key=lambda t: t.value).number
    assert best.fine_tuned_model == jobs[best.number].fine_tuned_model and answer.choices[0].message.content
    assert set(found.importance) == {"learning_rate_multiplier", "lora_rank"}
    assert sum(found.importance.values()) == pytest.approx(1.0)
    assert any(e.message.startswith("Trial 2: learning_rate_multiplier") and runaway.job_id in e.message
               for e in events)
    assert "Parameter importance" in report and "<svg" in report and runaway.job_id in report

    shown = hone(daemon, "search", "show", search.id)
    assert shown.returncode == 0 and "pruned" in shown.stdout and "importance" in shown.stdout


def test_a_search_with_the_hyperband_pruner_runs_its_trials_to_a_best_one(daemon, tiny_model, files):
    with Client(daemon.base_url) as client:
        search = client.fine_tuning.searches.create(
            job=template(tiny_model, files), space={"learning_rate_multiplier": {"low": 1, "high": 50, "log": True}},
            n_trials=3, trial_max_steps=4, pruner="hyperband", enqueue=[{"learning_rate_multiplier": 5}])
        found = wait_search(client, search.id)
    assert found.status == "succeeded", found.error
    assert len(found.trials) == 3 and {t.state for t in found.trials} <= {"complete", "pruned"}
    assert found.trials[0].params == {"learning_rate_multiplier": 5} and found.trials[0].state == "complete"
    assert found.best_trial.value == min(t.value for t in found.trials if t.state == "complete")


def client_results(daemon, job_id: str) -> list[dict]:
    rows = httpx.get(f"{daemon.base_url}/v1/fine_tuning/jobs/{job_id}/eval_results").json()["data"]
    return sorted((r for r in rows if r["phase"] == "validation"), key=lambda r: r["step"])


def test_cancelling_a_search_cancels_its_running_trial_and_starts_no_more(daemon, tiny_model, files):
    with Client(daemon.base_url) as client:
        search = client.fine_tuning.searches.create(
            job={**template(tiny_model, files), "hyperparameters": {"n_epochs": 100, "batch_size": 4}},
            space={"learning_rate_multiplier": {"low": 1, "high": 10}}, n_trials=3)
        deadline = time.monotonic() + 120
        while True:
            found = client.fine_tuning.searches.retrieve(search.id)
            if found.trials and client.fine_tuning.jobs.retrieve(found.trials[0].job_id).status == "running":
                break
            assert time.monotonic() < deadline, found
            time.sleep(0.2)
        cancelled = client.fine_tuning.searches.cancel(search.id)
        assert cancelled.status == "cancelled"
        trial_job = client.fine_tuning.jobs.retrieve(found.trials[0].job_id)
        assert trial_job.status == "cancelled"
        time.sleep(3)  # the trial's loop notices, and the worker settles it: no next trial may start
        after = client.fine_tuning.searches.retrieve(search.id)
        again = httpx.post(f"{daemon.base_url}/v1/fine_tuning/searches/{search.id}/cancel")
    assert len(after.trials) == 1 and after.trials[0].state == "failed" and after.status == "cancelled"
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]["message"]


def test_a_trial_minutes_budget_ends_training_early_with_a_model(daemon, tiny_model, files):
    training, validation = files
    with Client(daemon.base_url) as client:
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training, validation_file=validation,
            hyperparameters={"n_epochs": 100, "batch_size": 4}, honed={"max_minutes": 0.05, "checkpoint_interval": 1000})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    assert job.status == "succeeded", job.error
    ran_out = [e for e in events if e.data and e.data.get("kind") == "time_budget"]
    assert ran_out and ran_out[0].data["total_steps"] == 400
    assert job.honed["result"]["steps"] == ran_out[0].data["step"] < 400 and job.fine_tuned_model


@pytest.mark.parametrize(("change", "param", "words"), [
    ({"space": {"temperature": {"low": 0, "high": 1}}}, "space.temperature", "cannot be searched"),
    ({"space": {"lora_rank": {"low": 16, "high": 4}}}, "space.lora_rank", "low must be below high"),
    ({"space": {"lora_rank": {"low": 4.5, "high": 16}}}, "space.lora_rank", "integers"),
    ({"space": {"learning_rate_multiplier": {"low": 0, "high": 2, "log": True}}}, "space.learning_rate_multiplier",
     "log-scale"),
    ({"space": {}}, "space", "at least one"),
    ({"n_trials": 0}, "n_trials", "between 1 and 100"),
    ({"metric": "exact_match"}, "metric", "does not measure"),
    ({"enqueue": [{"learning_rate_multiplier": 99}]}, "enqueue[0]", "outside the space"),
    ({"space": {"lora_dropout": {"low": 0.1, "high": 1.5}}}, "space", "honed.lora_dropout"),
])
def test_a_bad_search_is_refused_with_the_field_to_fix(daemon, tiny_model, files, change, param, words):
    body = {"job": template(tiny_model, files), "space": {"learning_rate_multiplier": {"low": 1, "high": 10}},
            **change}
    before = httpx.get(f"{daemon.base_url}/v1/fine_tuning/searches").json()["data"]
    answer = httpx.post(f"{daemon.base_url}/v1/fine_tuning/searches", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"]
    assert httpx.get(f"{daemon.base_url}/v1/fine_tuning/searches").json()["data"] == before


def test_the_cli_says_what_is_wrong_with_a_space_in_one_line(daemon, tiny_model, files):
    shown = hone(daemon, "search", "run", "--space", "lora_rank=4..x", "--training-file", files[0],
                 "--model", str(tiny_model))
    assert shown.returncode == 1 and shown.stderr.strip() == "error: --space: 'x' in 'lora_rank=4..x' is not a number"
