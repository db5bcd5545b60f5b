"""Files end to end, the async SDK, and the `hone` CLI driving a real daemon."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from hone import AsyncClient, Client, HoneError
from tests.conftest import SECRET_QA, chat_records, write_jsonl


def test_files_round_trip_and_are_stored_once_by_content(daemon, tmp_path):
    data = write_jsonl(tmp_path / "a.jsonl", chat_records(SECRET_QA))
    with Client(daemon.base_url) as client:
        first = client.files.create(data)
        second = client.files.create(data, filename="copy.jsonl")
        assert first.id != second.id and first.bytes == data.stat().st_size
        assert client.files.content(first.id) == data.read_bytes()
        assert {f.id for f in client.files.list().data} == {first.id, second.id}
        blobs = list((daemon.home / "files").iterdir())
        assert len(blobs) == 1  # same content, one blob

        assert client.files.delete(first.id).deleted
        assert client.files.content(second.id) == data.read_bytes()  # still referenced by the copy
        client.files.delete(second.id)
        assert not list((daemon.home / "files").iterdir())
        with pytest.raises(HoneError, match="No file with id"):
            client.files.retrieve(first.id)


def test_a_file_used_by_an_unfinished_job_cannot_be_deleted(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "a.jsonl", chat_records(SECRET_QA)))
        job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                             hyperparameters={"n_epochs": 100})
        with pytest.raises(HoneError, match=f"used by unfinished job\\(s\\) {job.id}") as caught:
            client.files.delete(training.id)
        assert caught.value.status == 409
        client.fine_tuning.jobs.cancel(job.id)
        assert client.files.delete(training.id).deleted


def test_validation_file_gives_validation_loss_on_checkpoints(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", chat_records(SECRET_QA, repeat=2)))
        validation = client.files.create(write_jsonl(tmp_path / "v.jsonl", chat_records(SECRET_QA[:2])))
        job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                             validation_file=validation.id,
                                             hyperparameters={"n_epochs": 4, "batch_size": 4},
                                             honed={"checkpoint_interval": 3, "learning_rate": 5e-3})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error
        checkpoints = client.fine_tuning.jobs.checkpoints(job.id).data
        assert len(checkpoints) == 3  # steps 3, 6 and the final step 8
        assert all(c.metrics.valid_loss is not None and c.metrics.valid_loss > 0 for c in checkpoints)
        evals = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.kind == "eval"]
        assert [e.data["step"] for e in evals[::-1]] == [3, 6, 8]  # validated at each checkpoint and at the end
        assert all(e.data["phase"] == "validation" and e.data["valid_loss"] > 0 for e in evals)


def test_async_client_lists_and_streams(daemon, tiny_model):
    async def main():
        async with AsyncClient(daemon.base_url) as client:
            models = await client.models.list()
            pieces = [chunk async for chunk in await_stream(client)]
            return models, pieces

    async def await_stream(client):
        async for chunk in client.chat.completions.create(model=str(tiny_model), stream=True, temperature=0,
                                                          max_tokens=5, messages=[{"role": "user", "content": "Hi"}]):
            yield chunk

    models, pieces = asyncio.run(main())
    assert any(m.id for m in models.data)
    assert pieces[-1].choices[0].finish_reason in ("stop", "length")


def hone(daemon, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, *args],
                          capture_output=True, text=True, timeout=timeout, env={"COLUMNS": "200", "PATH": ""})


def test_the_cli_uploads_trains_follows_lists_and_chats(daemon, tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA, repeat=2))
    upload = hone(daemon, "files", "upload", str(data))
    assert upload.returncode == 0 and upload.stdout.startswith("file-"), upload.stderr

    created = hone(daemon, "jobs", "create", "--model", str(tiny_model), "--file", str(data), "--suffix", "cli",
                   "--epochs", "12", "--batch-size", "4", "--lora-rank", "32", "--follow")
    assert created.returncode == 0, created.stderr
    assert "succeeded: ft:tiny:cli:ftjob-" in created.stdout
    assert "loss" in created.stdout and "tok/s" in created.stdout
    model = created.stdout.split("succeeded: ", 1)[1].split()[0]

    listing = hone(daemon, "jobs", "list")
    assert model.rsplit(":", 1)[1] in listing.stdout and "succeeded" in listing.stdout
    shown = hone(daemon, "jobs", "show", model.rsplit(":", 1)[1])
    assert "trained tokens" in shown.stdout and model in shown.stdout

    answer = hone(daemon, "chat", model, "-m", "What is the secret word?", "--temperature", "0")
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.strip()

    missing = hone(daemon, "chat", "ft:nope::ftjob-x", "-m", "hi")
    assert missing.returncode == 1 and missing.stderr.startswith("error: The model 'ft:nope::ftjob-x' does not exist")
