"""Bad input gets a 4xx in OpenAI's error shape naming what to fix, and nothing stored changes."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest

from tests.badinput.conftest import assert_error, store_snapshot
from tests.conftest import chat_records, write_jsonl


@pytest.fixture(scope="module")
def daemon(shared_daemon):
    """One daemon for the module: each test compares what is stored before and after its own bad request."""
    return shared_daemon


@pytest.fixture(scope="module")
def api(daemon):
    with httpx.Client(base_url=daemon.base_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def stored(api, daemon, tmp_path_factory, tiny_model):
    """One good file and one finished-or-queued job, and a function that snapshots everything stored."""
    good = write_jsonl(tmp_path_factory.mktemp("bad-input") / "good.jsonl", chat_records([("Hi", "Hello")]))
    file_id = api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": good.open("rb")}).json()["id"]
    job = api.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": file_id,
                                                "honed": {"max_steps": 1}}).json()
    return {"file_id": file_id, "job_id": job["id"], "snapshot": lambda: store_snapshot(daemon.home)}


def upload(api, name, content: bytes):
    return api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": (name, content)})


def test_malformed_jsonl_line_is_named(api, stored):
    before = stored["snapshot"]()
    lines = [json.dumps(r) for r in chat_records([("q", "a")] * 4)]
    lines.insert(2, '{"messages": [{"role": "user", "content": "x"}')
    assert_error(upload(api, "bad.jsonl", "\n".join(lines).encode()), 400, "line 3", "invalid JSON")
    assert stored["snapshot"]() == before


def test_a_file_with_no_usable_example_is_refused(api, stored):
    before = stored["snapshot"]()
    content = b'{"messages": [{"role": "user", "content": "no answer here"}]}\n'
    assert_error(upload(api, "empty.jsonl", content), 400, "line 1", "no assistant turn")
    assert_error(upload(api, "blank.jsonl", b"\n\n"), 400, "the file is empty")
    assert stored["snapshot"]() == before


def test_wrong_purpose_is_refused(api, stored):
    before = stored["snapshot"]()
    response = api.post("/v1/files", data={"purpose": "assistants"}, files={"file": ("a.jsonl", b"{}")})
    assert_error(response, 400, "purpose must be one of fine-tune", param="purpose")
    assert stored["snapshot"]() == before


def test_unknown_model_is_not_found(api, stored):
    before = stored["snapshot"]()
    response = api.post("/v1/fine_tuning/jobs", json={"model": "acme/no-such-model", "training_file": stored["file_id"]})
    assert_error(response, 404, "model 'acme/no-such-model' is not on this machine", param="model")
    chat = api.post("/v1/chat/completions", json={"model": "ft:nope:x:ftjob-0", "messages": [
        {"role": "user", "content": "hi"}]})
    assert_error(chat, 404, "The model 'ft:nope:x:ftjob-0' does not exist", param="model")
    assert stored["snapshot"]() == before


def test_a_job_naming_a_missing_file_is_not_found(api, stored, tiny_model):
    before = stored["snapshot"]()
    response = api.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": "file-missing"})
    assert_error(response, 404, "training_file 'file-missing' does not exist", param="training_file")
    response = api.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": stored["file_id"],
                                                      "validation_file": "file-gone"})
    assert_error(response, 404, "validation_file 'file-gone' does not exist", param="validation_file")
    assert stored["snapshot"]() == before


@pytest.mark.parametrize("hyper", [{"learning_rate_multiplier": 0}, {"learning_rate_multiplier": -2}])
def test_a_non_positive_learning_rate_is_refused(api, stored, tiny_model, hyper):
    before = stored["snapshot"]()
    response = api.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": stored["file_id"],
                                                      "hyperparameters": hyper})
    assert_error(response, 400, "learning_rate_multiplier must be a positive number",
                 param="hyperparameters.learning_rate_multiplier")
    response = api.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": stored["file_id"],
                                                      "honed": {"learning_rate": -0.1}})
    assert_error(response, 400, "honed.learning_rate must be a positive number", param="honed.learning_rate")
    assert stored["snapshot"]() == before


@pytest.mark.parametrize("body,fragment,param", [
    ({"hyperparameters": {"n_epochs": "three"}},
     """hyperparameters.n_epochs: Invalid enum value 'three' (use a number or "auto")""", "hyperparameters.n_epochs"),
    ({"seed": "abc"}, "seed: Expected `int | null`, got `str`", "seed"),
    ({"honed": {"lora_rank": 1.5}}, "honed.lora_rank: Expected `int`, got `float`", "honed.lora_rank"),
    ({"honed": {"lora_rnak": 8}}, "honed: Object contains unknown field `lora_rnak`", "honed"),
])
def test_a_field_of_the_wrong_type_is_named(api, stored, tiny_model, body, fragment, param):
    before = stored["snapshot"]()
    response = api.post("/v1/fine_tuning/jobs", json={"model": str(tiny_model), "training_file": stored["file_id"],
                                                      **body})
    assert_error(response, 400, fragment, param=param)
    assert stored["snapshot"]() == before


def test_a_body_that_is_not_json_is_refused(api, stored):
    before = stored["snapshot"]()
    response = api.post("/v1/fine_tuning/jobs", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 400, "not valid JSON")
    assert stored["snapshot"]() == before


def test_unknown_job_and_file_ids_are_not_found(api, stored):
    assert_error(api.get("/v1/fine_tuning/jobs/ftjob-nope"), 404, "No fine-tuning job with id 'ftjob-nope'")
    assert_error(api.post("/v1/fine_tuning/jobs/ftjob-nope/cancel"), 404, "ftjob-nope")
    assert_error(api.get("/v1/files/file-nope"), 404, "No file with id 'file-nope'")
    assert_error(api.delete("/v1/files/file-nope"), 404, "file-nope")


def test_the_cli_prints_one_readable_line_and_exits_1(daemon, stored):
    result = subprocess.run([sys.executable, "-m", "hone.cli", "--url", daemon.base_url, "jobs", "create",
                             "--training-file", "file-missing"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: training_file 'file-missing' does not exist; upload it with POST /v1/files first"]
