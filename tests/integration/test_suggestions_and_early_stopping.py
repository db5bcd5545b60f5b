"""Suggested hyperparameters, early stopping and the divergence guard, through a real daemon."""

from __future__ import annotations

import httpx
import pytest

from hone import Client
from tests.conftest import SECRET_QA, chat_records, write_jsonl
from tests.integration.test_files_and_cli import hone


@pytest.fixture(scope="module")
def daemon(shared_daemon):
    """One daemon for the module: its tests read what they made and nothing else."""
    return shared_daemon


def test_suggestions_come_with_reasons_and_fill_a_job_that_leaves_them_to_honed(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", chat_records(SECRET_QA, repeat=3)))
        found = client.fine_tuning.jobs.suggest(model=str(tiny_model), training_file=training.id)
        job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                             hyperparameters={"n_epochs": 2}, honed={"checkpoint_interval": 100})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        events = client.fine_tuning.jobs.list_events(job.id, limit=500).data
    chosen = {c.field: c for c in found.choices}
    assert found.examples == 12 and found.parameters > 1e6
    assert {"learning_rate", "n_epochs", "batch_size", "lora_rank", "lora_alpha", "lora_dropout", "warmup_ratio",
            "target_modules", "max_seq_len", "adapter"} <= set(chosen)
    assert all(c.reason for c in found.choices)
    assert chosen["learning_rate"].reason.startswith(f"lr {chosen['learning_rate'].value:g}: LoRA on a")
    assert found.hyperparameters == {"n_epochs": 3, "batch_size": 8}
    assert found.honed["lora_alpha"] == 2 * found.honed["lora_rank"]

    # the job left batch size and learning rate to honed (epochs it set): filled from the same rules, recorded
    assert job.status == "succeeded", job.error
    assert job.hyperparameters.n_epochs == 2 and job.hyperparameters.batch_size == 8
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(chosen["learning_rate"].value / 2e-4)
    made = [c["field"] for e in events if e.data and "choices" in e.data for c in e.data["choices"]]
    assert "learning_rate" in made and "batch_size" in made and "n_epochs" not in made

    shown = hone(daemon, "jobs", "suggest", "--model", str(tiny_model), "--training-file", training.id)
    assert shown.returncode == 0 and "learning_rate" in shown.stdout and "lora_rank" in shown.stdout


def test_early_stopping_keeps_the_best_checkpoint_and_serves_it(daemon, tiny_model, tmp_path):
    # training teaches red, validation says blue: once red is learnt the validation loss only rises
    train = [{"messages": [{"role": "user", "content": f"What colour is thing {i}?"},
                           {"role": "assistant", "content": f"Thing {i} is red."}]} for i in range(16)]
    valid = [{"messages": [{"role": "user", "content": f"What colour is thing {i}?"},
                           {"role": "assistant", "content": f"Thing {i} is blue."}]} for i in range(8)]
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", train))
        validation = client.files.create(write_jsonl(tmp_path / "v.jsonl", valid))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, validation_file=validation.id,
            hyperparameters={"n_epochs": 12, "batch_size": 8},
            honed={"learning_rate": 1e-2, "lora_dropout": 0.0, "warmup_ratio": 0.0, "checkpoint_interval": 100,
                   "eval_interval": 2, "early_stopping": {"patience": 2}})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error
        events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
        checkpoints = {c.step_number: c for c in client.fine_tuning.jobs.checkpoints(job.id).data}
        answer = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=8, temperature=0,
                                                messages=[{"role": "user", "content": "What colour is thing 3?"}])
    result = job.honed["result"]
    stopped = [e for e in events if e.data and e.data.get("kind") == "early_stopping"]
    assert result["early_stopped"] and stopped and result["steps"] < 24
    best = result["best_step"]
    assert stopped[0].data["best_step"] == best < result["steps"] and best in checkpoints
    validated = {e.data["step"]: e.data["valid_loss"] for e in events if e.data and "valid_loss" in e.data}
    assert min(validated, key=validated.get) == best
    assert answer.choices[0].message.content  # the served model is the job's (best) adapter


def test_bad_early_stopping_and_a_diverging_run_get_clear_errors(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", chat_records(SECRET_QA, repeat=4)))
        body = {"model": str(tiny_model), "training_file": training.id}
        no_validation = httpx.post(f"{daemon.base_url}/v1/fine_tuning/jobs",
                                   json={**body, "honed": {"early_stopping": {}}})
        unmeasured = httpx.post(f"{daemon.base_url}/v1/fine_tuning/jobs",
                                json={**body, "honed": {"early_stopping": {"metric": "exact_match"}}})
        bad_factor = httpx.post(f"{daemon.base_url}/v1/fine_tuning/jobs",
                                json={**body, "honed": {"divergence_factor": 0.5}})
        # a rate that overflows the weights: the loss is NaN by the second step (the ratio guard: the unit tests)
        job = client.fine_tuning.jobs.create(**body, hyperparameters={"n_epochs": 10, "batch_size": 2},
                                             honed={"learning_rate": 1e30, "warmup_ratio": 0.0,
                                                    "checkpoint_interval": 1000})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
    assert no_validation.status_code == 400 and "needs a validation_file" in no_validation.json()["error"]["message"]
    assert unmeasured.status_code == 400 and "does not measure" in unmeasured.json()["error"]["message"]
    assert bad_factor.status_code == 400 and bad_factor.json()["error"]["param"] == "honed.divergence_factor"
    assert job.status == "failed" and job.error.code == "training_diverged"
    assert "lower the learning rate" in job.error.message
