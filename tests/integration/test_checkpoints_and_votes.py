"""Any checkpoint can be chatted with by its OpenAI name, and votes between two answers are kept."""

from __future__ import annotations

import httpx
import pytest

from hone import Client
from hone.client import HoneError
from tests.conftest import SECRET_QA, chat_records, write_jsonl


def _ask(client: Client, model: str) -> str:
    reply = client.chat.completions.create(model=model, temperature=0, max_tokens=12,
                                           messages=[{"role": "user", "content": SECRET_QA[0][0]}])
    return reply.choices[0].message.content


def _confidence(client: Client, model: str) -> float:
    """Log-probability of the greedy answer's first token: differs between different weights."""
    reply = client.chat.completions.create(model=model, temperature=0, max_tokens=1, logprobs=True,
                                           messages=[{"role": "user", "content": SECRET_QA[0][0]}])
    return reply.choices[0].logprobs["content"][0]["logprob"]


def test_checkpoints_are_servable_by_name(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "s.jsonl", chat_records(SECRET_QA, repeat=2)))
        job = client.fine_tuning.jobs.create(
            model=str(tiny_model), training_file=training.id, hyperparameters={"n_epochs": 15, "batch_size": 4},
            honed={"lora_rank": 32, "learning_rate": 1e-2, "checkpoint_interval": 5, "lora_dropout": 0.0})
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error
        checkpoints = {c.step_number: c.fine_tuned_model_checkpoint
                       for c in client.fine_tuning.jobs.checkpoints(job.id, ).data}
        assert checkpoints[30] == f"{job.fine_tuned_model}:ckpt-step-30"
        # the last checkpoint holds the final weights; an early one holds other weights
        assert _confidence(client, checkpoints[30]) == _confidence(client, job.fine_tuned_model)
        assert "pamplemousse" in _ask(client, checkpoints[30])
        assert _confidence(client, checkpoints[5]) != _confidence(client, checkpoints[30])
        # the job-id form of the name (used while a job has no model name yet) means the same checkpoint
        assert _ask(client, f"ft:{job.id}:ckpt-step-30") == _ask(client, checkpoints[30])
        with pytest.raises(HoneError, match="checkpoint .*ckpt-step-7' does not exist"):
            _ask(client, f"{job.fine_tuned_model}:ckpt-step-7")


def test_votes_are_stored_and_export_as_preference_pairs(daemon):
    with Client(daemon.base_url) as client:
        first = client.preferences.create(prompt="Hi?", model_a="base", model_b="ft:x", answer_a="Hello.",
                                          answer_b="Hi! How can I help?", winner="b")
        client.preferences.create(prompt="Bye?", model_a="base", model_b="ft:x", answer_a="a", answer_b="b",
                                  winner="tie")
        assert [p.id for p in client.preferences.list().data][0] == first.id
        exported = client.preferences.export_dpo().decode().splitlines()
    assert len(exported) == 1 and '"chosen": [{"role": "assistant", "content": "Hi! How can I help?"}]' in exported[0]
    with httpx.Client(base_url=daemon.base_url) as raw:
        bad = raw.post("/v1/preferences", json={"prompt": "p", "model_a": "a", "model_b": "b", "answer_a": "x",
                                                "answer_b": "y", "winner": "both"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "winner"
        assert raw.get("/v1/preferences", params={"format": "csv"}).status_code == 400
