"""A LoRA job on the MLX engine through the whole daemon: trained by mlx-lm, served by the torch registry from the
PEFT adapter it wrote, checkpoints included."""

from __future__ import annotations

from hone import Client
from hone.local_daemon import LocalDaemon
from tests.integration.test_fine_tune_flow import ask, run_secret_job

# mlx[cpu] multiplies with the reference BLAS: a few steps, not torch's sixty (batch 4 of 8 examples, 2 per epoch)
EPOCHS = 4


def test_an_mlx_lora_job_trains_and_torch_serves_what_it_learned(daemon: LocalDaemon, tiny_model, tmp_path):
    with Client(daemon.base_url) as client:
        job_id = run_secret_job(client, tiny_model, tmp_path, epochs=EPOCHS, engine="mlx", checkpoint_interval=4,
                                max_seq_len=128)
        job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=300)
        assert job.status == "succeeded", job.error

        events = client.fine_tuning.jobs.list_events(job_id, limit=200).data
        metrics = [e.data for e in reversed(events) if e.type == "metrics"]
        assert [m["step"] for m in metrics] == list(range(1, 2 * EPOCHS + 1))
        assert metrics[-1]["train_loss"] < metrics[0]["train_loss"] * 0.5
        started = next(e.data for e in events if e.kind == "log" and "trainable_parameters" in (e.data or {}))
        assert started["device"] in ("mlx-cpu", "mlx-gpu")
        assert (daemon.home / "jobs" / job_id / "adapter" / "mlx" / "adapters.safetensors").is_file()

        steps = sorted(c.step_number for c in client.fine_tuning.jobs.checkpoints(job_id).data)
        assert steps == [4, 2 * EPOCHS]
        assert ask(client, f"{job.fine_tuned_model}:ckpt-step-4", "What is the secret word?")  # a PEFT checkpoint
        assert "pamplemousse" in ask(client, job.fine_tuned_model, "What is the secret word?")
