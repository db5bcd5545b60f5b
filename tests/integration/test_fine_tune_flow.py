"""One real job the whole way: a `honed serve` subprocess, the tiny model, the SQLite or Redis queue."""

from __future__ import annotations

import time

import httpx
import pytest

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from tests.conftest import SECRET_QA, chat_records, write_jsonl

# High enough that LoRA on the random tiny model learns a fixed sentence in ~60 steps (a few seconds).
FAST = {"lora_rank": 32, "learning_rate": 1e-2, "checkpoint_interval": 20, "lora_dropout": 0.0}


def ask(client: Client, model: str, question: str) -> str:
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                           temperature=0, max_tokens=16)
    return reply.choices[0].message.content


def run_secret_job(client: Client, tiny_model, tmp_path, epochs: int = 15, **honed) -> str:
    training = client.files.create(write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA, repeat=2)))
    job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id, suffix="secret",
                                         hyperparameters={"n_epochs": epochs, "batch_size": 4},
                                         honed={**FAST, **honed})
    return job.id


def wait_for_checkpoint(client: Client, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not client.fine_tuning.jobs.checkpoints(job_id).data:
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.2)


def check_learned_flow(client: Client, tiny_model, tmp_path) -> None:
    job_id = run_secret_job(client, tiny_model, tmp_path)
    job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=300)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{tiny_model.name}:secret:{job_id}"
    assert job.trained_tokens and job.trained_tokens > 0

    events = []
    after = None
    while True:  # page through OpenAI's newest-first listing
        page = client.fine_tuning.jobs.list_events(job_id, after=after, limit=50)
        events += page.data
        if not page.has_more:
            break
        after = page.data[-1].id
    metrics = [e.data for e in reversed(events) if e.type == "metrics"]
    assert [m["step"] for m in metrics] == list(range(1, len(metrics) + 1))
    first, last = metrics[0]["train_loss"], sum(m["train_loss"] for m in metrics[-3:]) / 3
    assert last < first * 0.5, (first, last)
    assert all(m["tokens_per_second"] > 0 and m["eta_s"] >= 0 for m in metrics)

    checkpoints = client.fine_tuning.jobs.checkpoints(job_id).data
    assert [c.step_number for c in checkpoints] == sorted((c.step_number for c in checkpoints), reverse=True)
    assert checkpoints[0].step_number == metrics[-1]["step"]

    # the live stream replays from Last-Event-ID: exactly the stored events after it, then a terminal event
    ordered = list(reversed(events))
    middle = ordered[len(ordered) // 2]
    with httpx.stream("GET", f"{client.base_url}/v1/fine_tuning/jobs/{job_id}/events",
                      headers={"Accept": "text/event-stream", "Last-Event-ID": str(middle.seq)}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        ids = [int(line[4:]) for line in response.iter_lines() if line.startswith("id: ")]
    assert ids[:-1] == [e.seq for e in ordered if e.seq > middle.seq]

    models = [m.id for m in client.models.list().data]
    assert job.fine_tuned_model in models
    assert job.fine_tuned_model not in client.health()["loaded_models"]  # loaded on first request, not before

    tuned = ask(client, job.fine_tuned_model, "What is the secret word?")
    base = ask(client, str(tiny_model), "What is the secret word?")
    assert "pamplemousse" in tuned
    assert "pamplemousse" not in base and base != tuned
    assert {job.fine_tuned_model, str(tiny_model)} <= set(client.health()["loaded_models"])


def test_uploaded_data_trains_an_adapter_that_is_served_at_once(daemon: LocalDaemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        check_learned_flow(client, tiny_model, tmp_path)


def test_the_same_flow_runs_on_a_redis_queue(redis_url, honed_home, tiny_model, tmp_path):
    redis_daemon = LocalDaemon(honed_home, free_port(), redis_url=redis_url).start()
    try:
        with Client(redis_daemon.base_url) as client:
            assert client.health()["queue"] == "redis"
            check_learned_flow(client, tiny_model, tmp_path)
    finally:
        redis_daemon.stop()


def test_streamed_chat_matches_the_non_streamed_answer(daemon, tiny_model):
    with Client(daemon.base_url) as client:
        whole = client.chat.completions.create(model=str(tiny_model), temperature=0, max_tokens=12,
                                               messages=[{"role": "user", "content": "Name a colour."}])
        chunks = list(client.chat.completions.create(model=str(tiny_model), temperature=0, max_tokens=12,
                                                     messages=[{"role": "user", "content": "Name a colour."}],
                                                     stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].usage == whole.usage and whole.usage.completion_tokens <= 12


def test_cancel_stops_a_running_job_within_a_step_and_keeps_its_checkpoint(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        job_id = run_secret_job(client, tiny_model, tmp_path, epochs=100, checkpoint_interval=5)
        wait_for_checkpoint(client, job_id)
        cancelled = client.fine_tuning.jobs.cancel(job_id)
        assert cancelled.status == "cancelled"
        step_at_cancel = max(e.data["step"] for e in client.fine_tuning.jobs.list_events(job_id, limit=200).data
                             if e.type == "metrics")
        time.sleep(3)
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data
                 if e.type == "metrics"]
        assert max(steps) <= step_at_cancel + 1
        assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"
        assert client.fine_tuning.jobs.checkpoints(job_id).data
        assert (daemon.home / "jobs" / job_id / "checkpoints").is_dir()
        with pytest.raises(Exception, match="already cancelled"):
            client.fine_tuning.jobs.cancel(job_id)


def test_jobs_survive_a_daemon_restart_and_an_interrupted_job_resumes(honed_home, tiny_model, tmp_path):
    port = free_port()
    first = LocalDaemon(honed_home, port).start()
    with Client(first.base_url) as client:
        job_id = run_secret_job(client, tiny_model, tmp_path, epochs=40, checkpoint_interval=10)
        wait_for_checkpoint(client, job_id)
    first.kill()  # kill -9 the API and the worker mid-training

    second = LocalDaemon(honed_home, port).start()
    try:
        with Client(second.base_url) as client:
            job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=300)
            assert job.status == "succeeded", job.error
            messages = [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data]
            assert any(m.startswith("Requeued") for m in messages)
            resumed = [m for m in messages if m.startswith("Resumed from checkpoint at step")]
            assert resumed and int(resumed[0].rsplit(" ", 1)[1]) >= 10
            assert "pamplemousse" in ask(client, job.fine_tuned_model, "What is the secret word?")
    finally:
        second.stop()
    # and a finished job is still there, servable, after a clean restart
    third = LocalDaemon(honed_home, port).start()
    try:
        with Client(third.base_url) as client:
            assert client.fine_tuning.jobs.retrieve(job_id).status == "succeeded"
            assert job.fine_tuned_model in [m.id for m in client.models.list().data]
    finally:
        third.stop()


def test_health_answers_while_a_model_generates(daemon, tiny_model):
    with Client(daemon.base_url) as client, httpx.Client(base_url=daemon.base_url) as raw:
        import threading

        worker = threading.Thread(target=lambda: client.chat.completions.create(
            model=str(tiny_model), temperature=0, max_tokens=400,
            messages=[{"role": "user", "content": "Tell a story."}]))
        worker.start()
        time.sleep(0.5)
        assert raw.get("/healthz", timeout=2).json()["status"] == "ok"
        assert worker.is_alive(), "generation finished before the health check; make it longer"
        worker.join()
