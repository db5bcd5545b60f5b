"""Prometheus metrics derived from the store at scrape time: one source of truth for job numbers.

The worker writes events and rows; nothing keeps a second copy of them in memory, so the numbers Prometheus
sees are the ones the API and the report show, whichever process wrote them and however often it restarted.
Per-job series exist only for unfinished jobs and jobs finished within the retention window, which bounds
label cardinality however many jobs the store has seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from honed.jobs.store import Store

DURATION_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0)
STATES = ("validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled")
TRAIN_GAUGES = {  # metrics event field -> (metric name, help)
    "train_loss": ("honed_train_loss", "Training loss over the last logging window"),
    "learning_rate": ("honed_train_learning_rate", "Learning rate at the last step"),
    "tokens_per_second": ("honed_train_tokens_per_second", "Training throughput over the last logging window"),
    "step": ("honed_train_step", "Optimizer steps done"),
    "total_steps": ("honed_train_total_steps", "Optimizer steps planned"),
    "grad_norm": ("honed_train_grad_norm", "Gradient norm before clipping at the last step"),
    "eta_s": ("honed_train_eta_seconds", "Estimated seconds until training ends"),
    "memory_rss": ("honed_train_memory_rss_bytes", "Resident memory of the training process"),
}


class StoreCollector(Collector):
    def __init__(self, store: Store, retention_s: float = 3600.0) -> None:
        self.store, self.retention_s = store, retention_s

    def collect(self) -> Iterator[Metric]:
        yield from self._job_counts()
        jobs = [j for j in self.store.active_or_recent_jobs(time.time() - self.retention_s)
                if j.id.startswith("ftjob-")]
        results = {job.id: self.store.eval_results(job.id) for job in jobs}  # read once per scrape
        yield from self._training(jobs, results)
        yield from self._evaluations(jobs, results)
        yield self._durations()

    def _job_counts(self) -> Iterator[Metric]:
        counts = self.store.job_counts()
        jobs = GaugeMetricFamily("honed_jobs", "Jobs by state", labels=["state", "kind"])
        finished = CounterMetricFamily("honed_jobs_finished", "Jobs that reached a final state",
                                       labels=["state", "kind"])
        for kind in ("ftjob", "eval"):
            for state in STATES:
                n = counts.get((kind, state), 0)
                jobs.add_metric([state, kind], n)
                if state in ("succeeded", "failed", "cancelled"):
                    finished.add_metric([state, kind], n)
        yield jobs
        yield finished
        yield GaugeMetricFamily("honed_queue_depth", "Jobs waiting for the worker",
                                value=sum(n for (_, state), n in counts.items() if state == "queued"))

    def _training(self, jobs, results) -> Iterator[Metric]:
        families = {field: GaugeMetricFamily(name, text, labels=["job"]) for field, (name, text) in TRAIN_GAUGES.items()}
        tokens = CounterMetricFamily("honed_train_trained_tokens", "Tokens trained on so far", labels=["job"])
        valid = GaugeMetricFamily("honed_valid_loss", "Validation loss at the last validation point", labels=["job"])
        for job in jobs:
            latest = self.store.latest_event(job.id, "metrics")
            if latest is not None and latest.data:
                for field, family in families.items():
                    value = latest.data.get(field)
                    if isinstance(value, (int, float)):
                        family.add_metric([job.id], float(value))
                tokens.add_metric([job.id], float(latest.data.get("trained_tokens") or 0))
            for row in reversed(results[job.id]):
                if row.phase == "validation" and row.metric == "valid_loss" and row.value is not None:
                    valid.add_metric([job.id], row.value)
                    break
        yield from families.values()
        yield tokens
        yield valid

    def _evaluations(self, jobs, results) -> Iterator[Metric]:
        scores = GaugeMetricFamily("honed_eval_score", "Eval metric of a job's suite (latest per phase)",
                                   labels=["job", "suite", "metric", "phase"])
        regressions = GaugeMetricFamily("honed_eval_regression", "1 when a guard suite metric regressed",
                                        labels=["job", "suite", "metric"])
        warnings = CounterMetricFamily("honed_train_warnings", "Warnings a job raised, by kind (regression, "
                                       "loss_spike, nan_loss, ...)", labels=["job", "kind"])
        for job in jobs:
            latest: dict[tuple[str, str, str], float] = {}
            for row in results[job.id]:
                if row.value is not None:
                    latest[(row.suite, row.metric, row.phase)] = row.value
            for (suite, metric, phase), value in latest.items():
                scores.add_metric([job.id, suite, metric, phase], value)
            kinds: dict[str, int] = {}
            for row in self.store.events_of_type(job.id, "warning"):
                data = row.data or {}
                kind = str(data.get("kind") or "other")
                kinds[kind] = kinds.get(kind, 0) + 1
                if kind == "regression":
                    regressions.add_metric([job.id, data["suite"], data["metric"]], 1.0)
            for kind, count in kinds.items():
                warnings.add_metric([job.id, kind], float(count))
        yield scores
        yield regressions
        yield warnings

    def _durations(self) -> Metric:
        durations = [seconds for _, seconds in self.store.finished_durations()]
        buckets = [(str(bound), float(sum(1 for d in durations if d <= bound))) for bound in DURATION_BUCKETS]
        buckets.append(("+Inf", float(len(durations))))
        return HistogramMetricFamily("honed_job_duration_seconds", "Wall time of finished jobs, start to end",
                                     buckets=buckets, sum_value=sum(durations))
