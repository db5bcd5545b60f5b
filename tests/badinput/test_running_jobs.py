"""Bad requests that depend on what a job is doing: deleting the file a running job reads, cancel and resume
racing on one job, and exports or aliases that would write outside the store or over what is there."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.badinput.conftest import (Case, assert_error, assert_healthy, case_id, check_refused, store_snapshot,
                                     wait_for_status)
from tests.conftest import chat_records, write_jsonl


def test_deleting_the_file_a_running_job_reads_is_refused(api, stored, tuned_model, tiny_model, tmp_path):
    """The worker is idle once the tuned model exists, so this job runs at once; it trains until cancelled."""
    data = write_jsonl(tmp_path / "running.jsonl", chat_records([("Why?", "Because.")], repeat=4))
    file_id = api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": data.open("rb")}).json()["id"]
    job = api.post("/v1/fine_tuning/jobs", json={
        "model": str(tiny_model), "training_file": file_id, "hyperparameters": {"n_epochs": 100, "batch_size": 1},
        "honed": {"estimate": False, "lora_rank": 4, "checkpoint_interval": 10_000}}).json()
    try:
        wait_for_status(api, job["id"], {"running"})
        before = store_snapshot(stored["home"])
        error = assert_error(api.delete(f"/v1/files/{file_id}"), 409, f"used by unfinished job(s) {job['id']}",
                             param="file_id")
        assert "cancel them or wait" in error["message"]
        assert store_snapshot(stored["home"]) == before
        assert api.get(f"/v1/files/{file_id}/content").status_code == 200
    finally:
        api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert_healthy(api)


def race(api: httpx.Client, job_id: str) -> dict[str, int]:
    """POST cancel and resume to one job at the same instant, from two threads: each one's status code."""
    answers: dict[str, int] = {}
    start = threading.Barrier(2)

    def send(action: str) -> None:
        start.wait()
        answers[action] = api.post(f"/v1/fine_tuning/jobs/{job_id}/{action}").status_code

    threads = [threading.Thread(target=send, args=(action,)) for action in ("cancel", "resume")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_cancel_and_resume_at_once_leave_the_job_cancelled(api, stored, tuned_model, tiny_model):
    """Whichever lands first, cancel wins: resuming first queues the job, which cancel then ends; cancelling
    first makes the resume a 409. Never a 5xx, never a job that runs on after its cancel answered 200."""
    body = {"model": str(tiny_model), "training_file": stored["ids"]["file"],
            "honed": {"max_steps": 1, "estimate": False, "lora_rank": 4}}
    for _ in range(4):
        job_id = api.post("/v1/fine_tuning/jobs", json=body).json()["id"]
        api.post(f"/v1/fine_tuning/jobs/{job_id}/pause")
        wait_for_status(api, job_id, {"paused"})
        answers = race(api, job_id)
        assert set(answers.values()) <= {200, 409}, answers
        assert answers["cancel"] == 200, answers
        time.sleep(0.3)  # long enough for a worker that claimed the resumed job to have acted on it
        job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["finished_at"] is not None, job
    assert_healthy(api)


@pytest.fixture(scope="module")
def tuned(stored, tuned_model):
    """The stored ids plus the fine-tuned model, for cases that need a model that can be exported."""
    return {**stored, "ids": {**stored["ids"], "tuned_model": tuned_model}}


EXPORT = "/v1/exports"
CASES = [
    Case("POST", EXPORT, {"model": "{tuned_model}", "name": "../../etc"}, 400, "must be one folder name", "name"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "name": "a/b"}, 400, "must be one folder name", "name"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "name": "x" * 300}, 400, "must be one folder name", "name"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "output_dir": "relative/dir"}, 400,
         "output_dir must be an absolute path without '..'", "output_dir"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "output_dir": "/tmp/../etc"}, 400, "without '..'", "output_dir"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "output_dir": "{home}/files"}, 400,
         "is inside HONED_HOME, among honed's own files", "output_dir"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "output_dir": "{home}"}, 400, "is inside HONED_HOME",
         "output_dir"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "name": "n", "output_dir": "/tmp/x"}, 400,
         "give either name", "name"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "format": "adapter", "quantization": "q4_k_m"}, 400,
         "quantization applies to the gguf format, not 'adapter'", "quantization"),
    Case("POST", EXPORT, {"model": "{tuned_model}", "output_dir": "/"}, 409, "already exists and is not an empty "
                                                                               "folder", "output_dir"),
    Case("POST", EXPORT, {"model": "{tuned_model}:ckpt-step-999"}, 404, "ckpt-step-999"),
    Case("POST", "/v1/models/{tuned_model}/export", {"format": "tar"}, 400, "format: Invalid enum value 'tar'",
         "format"),
    Case("PUT", "/v1/aliases/ok", {"model": "{tuned_model}x"}, 404, "does not exist"),
    Case("POST", "/v1/chat/completions", {"model": "{tuned_model}", "messages": [{"role": "user", "content": "hi"}],
                                          "max_tokens": 5000}, 400, "this model's context is 1,024 tokens",
         "max_tokens"),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_an_export_or_alias_that_would_misplace_a_model_is_refused(api, tuned, case):
    check_refused(api, tuned, case)


def test_an_alias_cannot_point_at_another_alias(api, tuned):
    ids = tuned["ids"]
    assert api.put("/v1/aliases/first", json={"model": ids["tuned_model"]}).status_code == 200
    try:
        check_refused(api, tuned, Case("PUT", "/v1/aliases/second", {"model": "first"}, 400,
                                       "'first' is itself an alias; point 'second' at the model it serves", "model"))
        check_refused(api, tuned, Case("POST", "/v1/aliases/first/rollback", status=404,
                                       message="has no earlier model to roll back to"))
    finally:
        assert api.delete("/v1/aliases/first").status_code == 200
