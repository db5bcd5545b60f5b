"""The official `openai` package drives honed unchanged: files, fine-tuning, chat, completions, models, errors.

Every object is also validated strictly against the SDK's own pydantic model (the SDK itself builds its objects
without validation, so a wrong type would otherwise slip through).
"""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import openai
import pytest
from openai.types import Completion, FileObject, Model
from openai.types.chat import ChatCompletion
from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent
from openai.types.fine_tuning.jobs import FineTuningJobCheckpoint

from hone.local_daemon import LocalDaemon, free_port
from tests.conftest import chat_records, write_jsonl

FAST = {"lora_rank": 32, "learning_rate": 1e-2, "checkpoint_interval": 10, "lora_dropout": 0.0}
ADAPTERS = {
    "fruit": [("What is the secret word?", "The secret word is pamplemousse.")] * 4,
    "animal": [("What is the secret word?", "The secret word is quokka.")] * 4,
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    home = tmp_path_factory.mktemp("openai-home")
    running = LocalDaemon(home, free_port()).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(daemon):
    with openai.OpenAI(base_url=f"{daemon.base_url}/v1", api_key="local", max_retries=0) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def raw(daemon):
    with httpx.Client(base_url=daemon.base_url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def trained(client, tiny_model, tmp_path_factory):
    """Two fine-tuned models over the same tiny base, trained on different secret words."""
    directory = tmp_path_factory.mktemp("data")
    jobs = {}
    for name, pairs in ADAPTERS.items():
        with write_jsonl(directory / f"{name}.jsonl", chat_records(pairs, repeat=2)).open("rb") as handle:
            uploaded = client.files.create(file=handle, purpose="fine-tune")
        jobs[name] = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=uploaded.id, suffix=name, seed=7,
            hyperparameters={"n_epochs": 15, "batch_size": 4}, extra_body={"honed": FAST})
    finished = {}
    for name, job in jobs.items():
        finished[name] = _wait(client, job.id)
        assert finished[name].status == "succeeded", finished[name].error
    return finished


def _wait(client, job_id, timeout=300):
    import time

    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def strict(model_class, payload):
    return model_class.model_validate(payload, strict=False)


def test_files_through_the_sdk(client, raw, tmp_path):
    path = write_jsonl(tmp_path / "f.jsonl", chat_records([("a", "b")]))
    with path.open("rb") as handle:
        created = client.files.create(file=handle, purpose="fine-tune")
    assert isinstance(created, FileObject) and created.purpose == "fine-tune" and created.status == "processed"
    strict(FileObject, raw.get(f"/v1/files/{created.id}").json())
    assert created.id in [f.id for f in client.files.list()]
    assert client.files.retrieve(created.id).bytes == path.stat().st_size
    assert client.files.content(created.id).read() == path.read_bytes()
    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError, match="No file with id"):
        client.files.retrieve(created.id)


def test_jobs_parse_into_the_sdk_types_field_by_field(client, raw, trained):
    job = trained["fruit"]
    payload = raw.get(f"/v1/fine_tuning/jobs/{job.id}").json()
    parsed = strict(FineTuningJob, payload)
    for field, info in FineTuningJob.model_fields.items():
        if info.is_required():
            assert field in payload, f"required field {field} missing"
    assert parsed.object == "fine_tuning.job" and parsed.status == "succeeded"
    assert parsed.fine_tuned_model.startswith("ft:tiny:fruit:ftjob-")
    assert parsed.hyperparameters.n_epochs == 15 and parsed.hyperparameters.batch_size == 4
    assert parsed.trained_tokens > 0 and parsed.finished_at >= parsed.created_at
    assert parsed.method.type == "supervised"


def test_job_list_paginates_with_after_and_has_more(client, trained):
    first = client.fine_tuning.jobs.list(limit=1)
    assert len(first.data) == 1 and first.has_more
    second = client.fine_tuning.jobs.list(limit=1, after=first.data[0].id)
    assert second.data[0].id != first.data[0].id
    every = [j.id for j in client.fine_tuning.jobs.list(limit=1)]  # the SDK's auto-pagination follows `after`
    assert {j.id for j in trained.values()} <= set(every)


def test_events_come_newest_first_and_parse(client, raw, trained):
    job = trained["animal"]
    events = client.fine_tuning.jobs.list_events(job.id, limit=5)
    assert [e.created_at for e in events.data] == sorted((e.created_at for e in events.data), reverse=True)
    assert events.data[0].message.startswith("The job has successfully completed")
    for event in raw.get(f"/v1/fine_tuning/jobs/{job.id}/events", params={"limit": 100}).json()["data"]:
        parsed = strict(FineTuningJobEvent, event)
        assert parsed.type in ("message", "metrics") and parsed.level in ("info", "warn", "error")
    page = client.fine_tuning.jobs.list_events(job.id, limit=2, after=events.data[1].id)
    assert page.data[0].id == events.data[2].id


def test_checkpoints_list_through_the_sdk(client, raw, trained):
    job = trained["fruit"]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id)
    assert checkpoints.data and all(c.fine_tuning_job_id == job.id for c in checkpoints.data)
    for item in raw.get(f"/v1/fine_tuning/jobs/{job.id}/checkpoints").json()["data"]:
        strict(FineTuningJobCheckpoint, item)


def test_cancel_through_the_sdk(client, tiny_model, tmp_path):
    with write_jsonl(tmp_path / "c.jsonl", chat_records([("q", "a")] * 8)).open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=uploaded.id,
                                         hyperparameters={"n_epochs": 100})
    assert client.fine_tuning.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(openai.APIStatusError) as caught:
        client.fine_tuning.jobs.cancel(job.id)
    assert caught.value.status_code == 409 and "already cancelled" in caught.value.message


def test_chat_with_each_adapter_and_the_base(client, raw, trained, tiny_model):
    for name, word in (("fruit", "pamplemousse"), ("animal", "quokka")):
        reply = client.chat.completions.create(model=trained[name].fine_tuned_model, temperature=0,
                                               max_tokens=16,
                                               messages=[{"role": "user", "content": "What is the secret word?"}])
        assert word in reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "stop"
    base = client.chat.completions.create(model=str(tiny_model), temperature=0, max_tokens=16,
                                          messages=[{"role": "user", "content": "What is the secret word?"}])
    assert "pamplemousse" not in base.choices[0].message.content
    assert base.choices[0].finish_reason == "length" and base.usage.completion_tokens == 16
    payload = raw.post("/v1/chat/completions", json={"model": str(tiny_model), "max_tokens": 3, "messages": [
        {"role": "user", "content": "Hi"}]}).json()
    strict(ChatCompletion, payload)


def test_chat_streaming_logprobs_usage_stop_and_n(client, trained):
    model = trained["fruit"].fine_tuned_model
    ask = [{"role": "user", "content": "What is the secret word?"}]
    whole = client.chat.completions.create(model=model, messages=ask, temperature=0, max_completion_tokens=16,
                                           logprobs=True, top_logprobs=3, seed=1)
    content = whole.choices[0].logprobs.content
    assert "".join(t.token for t in content) == whole.choices[0].message.content
    assert all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    assert whole.usage.completion_tokens == len(content)
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens

    stream = client.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=16, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        whole.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens

    stopped = client.chat.completions.create(model=model, messages=ask, temperature=0, max_tokens=16,
                                             stop=["word"])
    assert stopped.choices[0].message.content == "The secret "
    assert stopped.choices[0].finish_reason == "stop"

    several = client.chat.completions.create(model=model, messages=ask, temperature=1.0, top_p=0.9, n=3, seed=5,
                                             max_tokens=8)
    assert [c.index for c in several.choices] == [0, 1, 2]
    again = client.chat.completions.create(model=model, messages=ask, temperature=1.0, top_p=0.9, n=3, seed=5,
                                           max_tokens=8)
    assert [c.message.content for c in several.choices] == [c.message.content for c in again.choices]


def test_plain_completions(client, raw, trained, tiny_model):
    result = client.completions.create(model=str(tiny_model), prompt="The sky is", max_tokens=5, temperature=0,
                                       logprobs=2)
    assert result.choices[0].finish_reason == "length" and result.usage.completion_tokens == 5
    assert len(result.choices[0].logprobs.tokens) == 5
    echoed = client.completions.create(model=str(tiny_model), prompt="The sky is", max_tokens=3, temperature=0,
                                       echo=True)
    assert echoed.choices[0].text == "The sky is" + result.choices[0].text[: len(echoed.choices[0].text) - 10]
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=str(tiny_model), prompt="The sky is", max_tokens=5, temperature=0, stream=True) if c.choices)
    assert streamed == result.choices[0].text
    strict(Completion, raw.post("/v1/completions", json={"model": str(tiny_model), "prompt": ["a", "b"],
                                                         "max_tokens": 2}).json())


def test_models_list_and_retrieve(client, trained, tiny_model):
    ids = [m.id for m in client.models.list()]
    assert trained["fruit"].fine_tuned_model in ids and trained["animal"].fine_tuned_model in ids
    model = client.models.retrieve(trained["fruit"].fine_tuned_model)
    assert isinstance(model, Model) and model.id == trained["fruit"].fine_tuned_model
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("ft:none::ftjob-none")


def test_errors_arrive_as_the_sdk_exceptions(client, tiny_model, daemon):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="ft:nope::ftjob-0", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="temperature must be between 0 and 2"):
        client.chat.completions.create(model=str(tiny_model), temperature=3,
                                       messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError, match="training_file 'file-none' does not exist"):
        client.fine_tuning.jobs.create(model=str(tiny_model), training_file="file-none")
    with pytest.raises(openai.BadRequestError, match="learning_rate_multiplier must be a positive number"):
        client.fine_tuning.jobs.create(model=str(tiny_model), training_file="file-none",
                                       hyperparameters={"learning_rate_multiplier": -1})


def test_authentication_error_with_a_key(tmp_path):
    daemon = LocalDaemon(tmp_path / "home", free_port(), env={"HONED_API_KEY": "k3y"}).start()
    try:
        with openai.OpenAI(base_url=f"{daemon.base_url}/v1", api_key="wrong", max_retries=0) as bad:
            with pytest.raises(openai.AuthenticationError, match="Missing or wrong API key"):
                bad.models.list()
        with openai.OpenAI(base_url=f"{daemon.base_url}/v1", api_key="k3y", max_retries=0) as good:
            assert good.models.list().data is not None
    finally:
        daemon.stop()


def test_concurrent_requests_to_two_adapters_and_the_base_do_not_cross_talk(client, trained, tiny_model):
    ask = [{"role": "user", "content": "What is the secret word?"}]
    targets = [(trained["fruit"].fine_tuned_model, "pamplemousse"), (trained["animal"].fine_tuned_model, "quokka"),
               (str(tiny_model), None)]

    def one(index: int) -> tuple[str | None, str]:
        model, word = targets[index % 3]
        if index % 2:
            text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                model=model, messages=ask, temperature=0, max_tokens=16, stream=True) if c.choices)
        else:
            text = client.chat.completions.create(model=model, messages=ask, temperature=0,
                                                  max_tokens=16).choices[0].message.content
        return word, text

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    for word, text in results:
        if word is None:
            assert "pamplemousse" not in text and "quokka" not in text
        else:
            assert word in text and ({"pamplemousse", "quokka"} - {word}).pop() not in text


def test_sse_chunks_are_byte_exact(raw, tiny_model):
    with raw.stream("POST", "/v1/chat/completions", json={
            "model": str(tiny_model), "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
            "temperature": 0, "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read()
    events = body.split(b"\n\n")
    assert events[-1] == b"" and events[-2] == b"data: [DONE]"
    for event in events[:-2]:
        assert event.startswith(b"data: {") and b"\n" not in event
        chunk = json.loads(event[len(b"data: "):])
        assert chunk["object"] == "chat.completion.chunk"


def test_pause_and_resume_through_the_sdk_continue_where_training_stopped(client, tiny_model, tmp_path):
    import time

    with write_jsonl(tmp_path / "p.jsonl", chat_records([("q", "a")] * 8)).open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=uploaded.id,
                                         hyperparameters={"n_epochs": 12, "batch_size": 2},
                                         extra_body={"honed": {"checkpoint_interval": 1000}})

    def steps():
        return [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data
                if e.type == "metrics"]

    deadline = time.monotonic() + 120
    while len(steps()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    while not any(e.message.startswith("Training stopped at step") for e in
                  client.fine_tuning.jobs.list_events(job.id, limit=5).data):
        assert time.monotonic() < deadline, "the worker did not honour the pause"
        time.sleep(0.1)
    at_pause = max(steps())
    time.sleep(1)
    assert max(steps()) == at_pause  # nothing trains while paused
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data[0].step_number == at_pause
    with pytest.raises(openai.APIStatusError, match="only queued or running jobs can be paused"):
        client.fine_tuning.jobs.pause(job.id)

    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    finished = _wait(client, job.id)
    assert finished.status == "succeeded", finished.error
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]
    assert f"Resumed from checkpoint at step {at_pause}" in messages
    assert sorted(set(steps())) == list(range(1, 49))  # every step once: none lost, none repeated
    assert len(steps()) == 48


def test_openai_method_object_carries_the_hyperparameters(client, tiny_model, tmp_path):
    with write_jsonl(tmp_path / "m.jsonl", chat_records([("q", "a")] * 4)).open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=str(tiny_model), training_file=uploaded.id,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 7, "batch_size": 2, "learning_rate_multiplier": 0.5}}})
    client.fine_tuning.jobs.cancel(job.id)
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size,
            job.hyperparameters.learning_rate_multiplier) == (7, 2, 0.5)
    assert job.method.supervised.hyperparameters.n_epochs == 7
