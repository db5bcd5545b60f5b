"""Hardware, the settings honed fills in, and the time/memory estimate, through a real daemon."""

from __future__ import annotations

import os

import httpx
import pytest

from hone import Client, HoneError
from tests.conftest import SECRET_QA, chat_records, write_jsonl
from tests.integration.test_files_and_cli import hone


@pytest.fixture(scope="module")
def daemon(shared_daemon):
    """One daemon for the module: its tests read what they made and nothing else."""
    return shared_daemon


def test_hardware_describes_this_machine(daemon):
    with Client(daemon.base_url) as client:
        hw = client.hardware()
    assert hw.device == "cpu" and hw.cpu_cores == len(os.sched_getaffinity(0))
    assert hw.memory_bytes > 2**30 and 0 < hw.memory_available_bytes <= hw.memory_bytes
    assert {"torch", "mlx"} <= set(hw.engines) and hw.default_engine == "torch"  # MLX is the default on a Mac only
    assert "avx512_bf16" not in open("/proc/cpuinfo").read() or hw.bf16
    shown = hone(daemon, "hardware")
    assert shown.returncode == 0 and "cores" in shown.stdout and "torch" in shown.stdout


def test_unset_options_are_chosen_and_the_estimate_is_recorded_against_the_actual(daemon, tiny_model, tmp_path):
    records = chat_records(SECRET_QA, repeat=3)
    records[0]["messages"][1]["content"] += " Indeed" * 40  # one long example sets max_seq_len
    request = dict(model=str(tiny_model), hyperparameters={"n_epochs": 2, "batch_size": 4},
                   honed={"learning_rate": 1e-3, "checkpoint_interval": 4})
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", records))
        estimate = client.fine_tuning.jobs.estimate(training_file=training.id, **request)
        again = client.fine_tuning.jobs.estimate(training_file=training.id, **request)
        job = client.fine_tuning.jobs.create(training_file=training.id, **request)
        job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error
        events = list(reversed(client.fine_tuning.jobs.list_events(job.id, limit=500).data))

    chosen = {c.field: c.value for c in estimate.choices}
    assert chosen["adapter"] == "lora" and chosen["precision"] == "fp32" and chosen["engine"] == "torch"
    assert chosen["gradient_accumulation"] == 1 and chosen["gradient_checkpointing"] is False
    assert chosen["max_seq_len"] % 64 == 0
    assert all(c.reason for c in estimate.choices)
    # 12 examples, batches of 4, 2 epochs: the estimate knows the exact schedule
    assert estimate.steps == 6 and estimate.micro_steps == 6 and estimate.trained_tokens > 0
    assert estimate.total_seconds > 0 and estimate.peak_memory_bytes > 200 * 2**20
    assert not estimate.probe.cached and again.probe.cached and again.total_seconds == estimate.total_seconds \
        or estimate.probe.cached  # a probe cache shared with an earlier run of the suite

    # the job resolved the same settings and says so in an event; the job object shows them
    assert job.honed["adapter"] == "lora" and job.honed["max_seq_len"] == chosen["max_seq_len"]
    assert job.honed["gradient_accumulation"] == 1 and job.honed["precision"] == "fp32"
    kinds = [e.kind for e in events]
    chose = next(e for e in events if e.kind == "log" and e.message.startswith("Chose for this machine"))
    assert {c["field"] for c in chose.data["choices"]} >= {"adapter", "max_seq_len", "gradient_accumulation"}
    recorded = next(e for e in events if e.kind == "estimate")
    assert kinds.index("estimate") < kinds.index("metrics")  # before training, not after
    assert recorded.data["steps"] == len([e for e in events if e.kind == "metrics"])
    accuracy = job.honed["result"]["estimate"]
    assert set(accuracy) == {"estimated", "actual", "error"}
    assert accuracy["actual"]["total_seconds"] > 0 and accuracy["actual"]["peak_memory_bytes"] > 0
    assert accuracy["error"]["peak_memory_bytes"] == pytest.approx(
        accuracy["estimated"]["peak_memory_bytes"] / accuracy["actual"]["peak_memory_bytes"] - 1)


def test_estimate_rejects_what_cannot_run_here(daemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "t.jsonl", chat_records(SECRET_QA)))
        with pytest.raises(HoneError, match="QLoRA .* MLX engine") as raised:
            client.fine_tuning.jobs.estimate(model=str(tiny_model), training_file=training.id,
                                             honed={"adapter": "qlora", "engine": "torch"})
        assert raised.value.status == 400
        with pytest.raises(HoneError, match="training_file 'file-nope' does not exist"):
            client.fine_tuning.jobs.estimate(model=str(tiny_model), training_file="file-nope")
        with pytest.raises(HoneError, match="gradient_accumulation"):
            client.fine_tuning.jobs.estimate(model=str(tiny_model), training_file=training.id,
                                             honed={"gradient_accumulation": 0})
    with httpx.Client(base_url=daemon.base_url) as raw:
        bad = raw.post("/v1/estimate", json={"model": str(tiny_model), "training_file": training.id,
                                             "honed": {"precision": "fp8"}})
        assert bad.status_code == 400 and "precision" in bad.json()["error"]["message"]
