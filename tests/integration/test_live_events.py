"""Watching a job live: the event stream survives reconnects without gaps or repeats, carries every kind of
event a person watches, and /metrics shows the same numbers."""

from __future__ import annotations

import json

import httpx

from hone import Client
from tests.conftest import SECRET_QA, chat_records, write_jsonl


def _read_sse(client: httpx.Client, path: str, headers: dict[str, str], stop_after: int | None = None):
    """(seq, event type, data) of each SSE message, until the stream ends or `stop_after` messages."""
    got, event, seq = [], None, None
    with client.stream("GET", path, headers={"Accept": "text/event-stream", **headers}, timeout=120) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                got.append((seq, event, json.loads(line[6:])))
                if stop_after is not None and len(got) >= stop_after:
                    break  # hang up mid-job, like a laptop going to sleep
    return got


def test_a_client_that_reconnects_mid_job_misses_nothing_and_sees_nothing_twice(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA, repeat=2)))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, hyperparameters={"n_epochs": 20, "batch_size": 4},
            honed={"lora_rank": 8, "learning_rate": 1e-2, "checkpoint_interval": 10, "lora_dropout": 0.0})
        with httpx.Client(base_url=daemon.base_url) as raw:
            first = _read_sse(raw, f"/v1/fine_tuning/jobs/{job.id}/events", {}, stop_after=8)
            assert client.fine_tuning.jobs.retrieve(job.id).status in ("queued", "running")  # really mid-job
            rest = _read_sse(raw, f"/v1/fine_tuning/jobs/{job.id}/events", {"Last-Event-ID": str(first[-1][0])})
            stored = []
            after = None
            while True:
                page = client.fine_tuning.jobs.list_events(job.id, after=after, limit=100)
                stored += page.data
                if not page.has_more:
                    break
                after = page.data[-1].id
            every = raw.get("/v1/events", params={"limit": 1000}).json()["data"]
            metrics_text = raw.get("/metrics").text

    assert rest[-1][1] == "done"  # the stream ends with a terminal event once the job has ended
    streamed = [seq for seq, kind, _ in first + rest[:-1]]
    assert streamed == sorted(e.seq for e in stored)  # the union is the stored sequence: no gap, no repeat
    kinds = {kind for _, kind, _ in first + rest}
    assert {"status", "log", "metrics", "checkpoint", "sample", "done"} <= kinds
    metrics = [data["data"] for _, kind, data in first + rest if kind == "metrics"]
    assert all(m["memory_rss"] > 0 and m["memory_peak"] >= m["memory_rss"] * 0.5 for m in metrics)
    samples = [data["data"] for _, kind, data in first + rest if kind == "sample"]
    assert [s["step"] for s in samples] == [10, 20, 30, 40] and samples[0]["prompt"] == SECRET_QA[0][0]
    assert all(isinstance(s["output"], str) for s in samples)
    # precise write times, in order
    times = [e.timestamp for e in sorted(stored, key=lambda e: e.seq)]
    assert times == sorted(times) and all(isinstance(t, float) for t in times)

    # all jobs' events, oldest first, each naming its job
    assert [e["seq"] for e in every] == sorted(e["seq"] for e in every)
    assert {e["job_id"] for e in every} == {job.id}

    # /metrics tells the same story as the last metrics event
    last = metrics[-1]
    line = next(li for li in metrics_text.splitlines() if li.startswith(f'honed_train_step{{job="{job.id}"}}'))
    assert float(line.split()[-1]) == last["step"]
    assert 'honed_jobs{kind="ftjob",state="succeeded"} 1.0' in metrics_text
    assert "honed_job_duration_seconds_count 1.0" in metrics_text
    assert 'honed_request_duration_seconds_count{method="GET",route="/v1/events"' in metrics_text
