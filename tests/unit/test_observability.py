"""Loss spike warnings, and /metrics series derived from the store with bounded cardinality."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, generate_latest

from honed.engines.schedule import LossWatch
from honed.jobs.store import Store
from honed.observability.store_metrics import StoreCollector


def test_a_loss_spike_warns_once_per_episode_and_not_during_warmup():
    watch = LossWatch(warmup_steps=3)
    losses = [9.0, 1.0, 5.0, 1.2, 1.0, 4.0, 4.5, 5.0, 1.1, 3.5]
    warnings = [step for step, loss in enumerate(losses, start=1) if watch.observe(step, loss)]
    assert warnings == [6, 10]  # step 3 is warmup; steps 7-8 continue the same spike
    assert watch.minimum == 1.0


def _finished_job(store: Store, job_id: str, finished_at: float, loss: float) -> None:
    store.create_job(job_id, {"model": "m"})
    store.transition(job_id, "queued")
    store.transition(job_id, "running")
    store.append_event(job_id, "metrics", "step", {"step": 5, "train_loss": loss, "trained_tokens": 100})
    store.transition(job_id, "succeeded")
    store.update_job(job_id, started_at=int(finished_at - 42), finished_at=int(finished_at))


def test_per_job_series_cover_active_and_recent_jobs_only(tmp_path):
    store = Store(tmp_path / "honed.db")
    now = time.time()
    _finished_job(store, "ftjob-old", now - 7200, 0.5)
    _finished_job(store, "ftjob-new", now - 60, 0.25)
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, retention_s=3600))
    text = generate_latest(registry).decode()
    assert 'honed_train_loss{job="ftjob-new"} 0.25' in text
    assert "ftjob-old" not in text  # dropped after the retention window
    assert 'honed_jobs{kind="ftjob",state="succeeded"} 2.0' in text  # counts cover every job
    assert 'honed_train_trained_tokens_total{job="ftjob-new"} 100.0' in text
    assert "honed_job_duration_seconds_count 2.0" in text and 'le="60.0"} 2.0' in text
