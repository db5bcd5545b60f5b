"""The worker: runs one job id taken from the queue, reporting everything through the store.

It claims the job (queued -> running, a compare-and-set, so a duplicated queue message is harmless), loads the
spec and data, trains with the chosen engine, and ends the job succeeded or failed with a message a person can
act on. It never talks HTTP; the API reads what it writes.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from honed.config import Settings, load_settings
from hone.types import Estimate, HonedOptions
from honed.engines import get_engine
from honed.engines.base import StopRule, TrainCallbacks, TrainConfig
from honed.errors import HonedError, IllegalTransition
from honed.jobs.busy import BusyGate
from honed.jobs.job_evaluation import JobEvaluation, JobStopped, record_validation
from honed.jobs.lifecycle import (
    announce_shutdown,
    claim,
    fail,
    hold_worker_lock,
    keep_queue,
    requeue_running,
    supervisor_gone,
)
from honed.jobs.queue import JobQueue
from honed.jobs.spec import FineTuneSpec, fine_tuned_model_name
from honed.jobs.store import CheckpointRow, Store
from honed.models.catalog import ModelCatalog
from honed.models.trust import tokenizer_load_options
from honed.observability.memory import peak_bytes, release_freed, reset_peak
from honed.planning.job_plan import JobPlan, estimate_job, plan_job

log = logging.getLogger("honed.worker")


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _plan(store: Store, settings: Settings, job_id: str, job_plan: JobPlan, model_dir: Path,
          event: Callable[..., None]) -> Estimate | None:
    """Record what honed chose for this machine and what the job should cost. Only on a job's first start:
    a resumed job keeps its stored choices, and its remaining time is not the estimate's."""
    if job_plan.plan.choices:
        store.update_job(job_id, spec=msgspec.to_builtins(job_plan.spec))
        event("log", "Chose for this machine: " + "; ".join(c.reason for c in job_plan.plan.choices),
              {"choices": msgspec.to_builtins(job_plan.plan.choices)})
    if not job_plan.spec.options.estimate or store.latest_event(job_id, "estimate") is not None:
        return None
    try:
        found = estimate_job(settings, job_plan, model_dir, job_plan.spec.model, in_process=True)
    except HonedError as exc:  # an estimate is advice: the job trains without one
        event("warning", f"No estimate for this job: {exc}", {"kind": "estimate_failed"}, level="warn")
        return None
    event("estimate", f"Estimated {_duration(found.total_seconds)} and {found.peak_memory_bytes / 2**30:.2f} GB "
          f"peak memory for {found.steps} steps", msgspec.to_builtins(found))
    return found


def _compare(found: Estimate, train_seconds: float, total_seconds: float, peak: int) -> dict[str, Any]:
    actual = {"train_seconds": train_seconds, "total_seconds": total_seconds, "peak_memory_bytes": peak}
    estimated = {"train_seconds": found.train_seconds, "total_seconds": found.total_seconds,
                 "peak_memory_bytes": found.peak_memory_bytes}
    error = {k: (estimated[k] - actual[k]) / actual[k] for k in actual if actual[k]}
    return {"estimated": estimated, "actual": actual, "error": error}


def stop_rule(options: HonedOptions) -> StopRule | None:
    """The job's early stopping with its direction: loss and perplexity improve as they fall."""
    rule = options.early_stopping
    if rule is None:
        return None
    from honed.evaluation.suite import higher_is_better

    better_higher = rule.metric != "valid_loss" and higher_is_better(rule.metric)
    return StopRule(rule.metric, rule.patience, rule.min_delta, better_higher)


def run_fine_tune(job_id: str, settings: Settings, store: Store) -> None:
    job = claim(store, job_id, "Fine-tuning job started")
    if job is None:
        return
    spec = msgspec.convert(job.spec, FineTuneSpec)
    job_dir = settings.jobs_dir / job_id
    job_dir.mkdir(parents=True, exist_ok=True)
    trial = None
    if spec.search is not None:
        from honed.jobs.search_job import TrialReporter

        try:
            trial = TrialReporter(settings, store, spec.search, spec.trial)
        except Exception as exc:  # the study is unreadable: the trial cannot be judged, so it does not run
            fail(store, job_id, exc, "search_failed", "Trial")
            return

    def event(type_: str, message: str, data: dict[str, Any], level: str = "info") -> None:
        if type_ == "eval" and data.get("phase") == "validation":
            record_validation(store, job_id, message, data)
            if trial is not None:
                trial.observe(data)
        else:
            store.append_event(job_id, type_, message, data, level=level)
        if type_ == "metrics" and data.get("eta_s") is not None:
            store.update_job(job_id, trained_tokens=data["trained_tokens"],
                             estimated_finish=int(time.time() + data["eta_s"]))

    def checkpoint(step: int, directory: Path, metrics: dict[str, Any]) -> None:
        store.add_checkpoint(CheckpointRow(
            id=f"ftckpt-{job_id.removeprefix('ftjob-')}-{step}", job_id=job_id, step=step,
            created_at=int(time.time()), path=str(directory.relative_to(settings.home)), metrics=metrics))

    def running() -> bool:
        return store.get_job(job_id).status == "running"

    gate = BusyGate(settings.yield_when_busy, event, lambda: not running()) if settings.yield_when_busy else None

    def should_stop() -> str | None:
        if gate is not None and running():
            gate.wait_while_busy()
        status = store.get_job(job_id).status
        if status == "running" and trial is not None:
            return trial.reason()
        return None if status == "running" else status

    try:
        catalog = ModelCatalog(settings.models_dir)
        if catalog.resolve(spec.model).kind == "bundled":
            event("log", f"Preparing base model {spec.model} (first use only)", {"model": spec.model})
        model_dir = catalog.local_dir(spec.model)

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir, **tokenizer_load_options())
        job_plan = plan_job(settings, store, spec, model_dir, tokenizer)
        spec, options = job_plan.spec, job_plan.spec.options
        train_set, truncated = job_plan.train.examples, job_plan.train.truncated
        valid_set = job_plan.valid.examples if job_plan.valid else []
        if truncated:
            event("warning", f"{truncated} training examples are longer than max_seq_len={options.max_seq_len} "
                  "tokens and were cut; raise honed.max_seq_len to keep them whole",
                  {"kind": "truncated", "truncated": truncated},
                  level="warn")
        if not train_set:
            raise HonedError("no training example has an assistant token left after truncation; "
                             "raise honed.max_seq_len")
        estimated = _plan(store, settings, job_id, job_plan, model_dir, event)
        release_freed()  # what earlier jobs of this long-lived worker freed goes back to the OS first
        reset_peak()  # from here on the peak is this job's, not the probe's
        started = time.monotonic()
        config = TrainConfig(
            model_dir=model_dir, output_dir=job_dir, adapter=options.adapter, lora_rank=options.lora_rank,
            lora_alpha=options.lora_alpha or 2.0 * options.lora_rank, lora_dropout=options.lora_dropout,
            target_modules=options.target_modules, learning_rate=spec.learning_rate, n_epochs=spec.n_epochs,
            batch_size=spec.batch_size, max_steps=options.max_steps,
            max_seconds=options.max_minutes * 60 if options.max_minutes is not None else None,
            checkpoint_interval=options.checkpoint_interval, eval_interval=options.eval_interval,
            packing=options.packing, max_seq_len=options.max_seq_len,
            gradient_accumulation=options.gradient_accumulation, gradient_checkpointing=options.gradient_checkpointing,
            precision=options.precision, warmup_ratio=options.warmup_ratio,
            weight_decay=options.weight_decay, seed=spec.seed, early_stopping=stop_rule(options),
            divergence_factor=options.divergence_factor,
        )
        engine = get_engine(options.engine)
        evaluation = JobEvaluation(store, settings, job_id, model_dir, options, should_stop)
        evaluation.baseline()
        train_started = time.monotonic()
        result = engine.train(config, train_set, valid_set,
                              TrainCallbacks(event, checkpoint, should_stop,
                                             evaluation.probe(job_plan.train.first_prompt)))
        train_seconds = time.monotonic() - train_started
        eval_summary = None
        if result.stopped is None:
            eval_summary = evaluation.final(result.output_path, adapter=config.adapter != "full")
        accuracy = None
        if estimated is not None and result.stopped is None:
            accuracy = _compare(estimated, train_seconds, time.monotonic() - started, peak_bytes())
            error = accuracy["error"]
            event("log", f"Estimate vs actual: time {error.get('total_seconds', 0):+.0%}, "
                  f"peak memory {error.get('peak_memory_bytes', 0):+.0%}", accuracy)
    except JobStopped:
        return
    except Exception as exc:  # the job must end failed with a reason, whatever broke
        # a NaN or runaway loss is the run's own outcome (lower the learning rate), not honed breaking
        fail(store, job_id, exc, "training_diverged" if isinstance(exc, FloatingPointError) else "training_failed",
             "Fine-tuning")
        return

    if result.stopped is not None and trial is not None and result.stopped == trial.reason():
        try:
            store.transition(job_id, "cancelled", expect={"running"},
                             message=f"Pruned by search {spec.search} at step {trial.pruned_at}: its "
                                     f"{trial.body.metric} {trial.value:.4g} is worse than the earlier trials' there",
                             result={"pruned_at": trial.pruned_at, "value": trial.value})
        except IllegalTransition:  # cancelled meanwhile
            pass
        return
    if result.stopped is not None:
        log.info("job %s stopped at step %d: %s", job_id, result.steps, result.stopped)
        why = {"queued": "the daemon is shutting down; it resumes when honed starts again"}.get(result.stopped,
                                                                                               result.stopped)
        store.append_event(job_id, "log", f"Training stopped at step {result.steps} ({why})",
                           {"step": result.steps, "reason": result.stopped})
        return
    name = fine_tuned_model_name(spec.model, spec.suffix, job_id)
    try:
        store.transition(
            job_id, "succeeded", expect={"running"},
            message=f"The job has successfully completed. New model: {name}",
            fine_tuned_model=name, trained_tokens=result.trained_tokens,
            result={"output_path": str(result.output_path.relative_to(settings.home)), "steps": result.steps,
                    "final_loss": result.final_loss, "engine": engine.name, "eval": eval_summary,
                    "estimate": accuracy, "best_step": result.best_step,
                    "early_stopped": result.early_stopped},
        )
    except IllegalTransition:  # cancelled during the last step: the cancel wins
        log.info("job %s was cancelled as it finished", job_id)


# ------------------------------------------------------------------------------------- the process


def lower_priority(nice: int) -> None:
    """Run at low OS priority so the laptop stays responsive while a job trains."""
    try:
        current = os.nice(0)
        if current < nice:
            os.nice(nice - current)
    except OSError:  # pragma: no cover - not permitted on some systems
        log.warning("could not lower the worker's priority")


def limit_memory(limit: int | None) -> None:
    """Cap the worker's address space at `limit` bytes, so an allocation past it raises (and the job fails saying
    so) rather than the machine swapping or the kernel killing the worker. Linux enforces RLIMIT_AS; macOS does
    not, and there the setting does nothing."""
    if limit is None:
        return
    import resource

    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    except (ValueError, OSError) as exc:
        log.warning("could not limit the worker's memory to %d MB: %s", limit // 2**20, exc)


def exit_with_supervisor(poll_seconds: float = 1.0) -> None:
    """A worker started by `honed serve` ends when that process does, even if it was killed with SIGKILL and
    could not stop it: an orphaned worker would go on consuming the queue beside the next daemon's worker.
    (The job it was running stays `running` in the store and is requeued by the next daemon.)"""
    supervisor = os.environ.get("HONED_SUPERVISOR_PID")
    if not supervisor or not supervisor.isdigit():
        return  # started on its own (systemd, launchd, a terminal): nobody to follow

    def watch() -> None:
        while True:
            time.sleep(poll_seconds)
            if supervisor_gone():
                log.warning("honed serve (pid %s) is gone; the worker exits with it", supervisor)
                os._exit(0)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def worker_main(settings: Settings | None = None) -> None:
    """Entry point of the worker process: consume job ids from the queue until told to stop."""
    settings = settings or load_settings()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lower_priority(settings.worker_nice)
    limit_memory(settings.worker_memory_bytes)
    exit_with_supervisor()
    settings.ensure_dirs()
    worker_lock = hold_worker_lock(settings.home)
    store = Store(settings.db_path)

    def run_job(job_id: str) -> None:
        try:
            run_one(job_id)
        finally:
            release_freed()  # an idle worker should not sit on a finished job's memory (glibc kept 3.7 GB)

    def run_one(job_id: str) -> None:
        if job_id.startswith("eval-"):
            from honed.jobs.eval_job import run_eval_job

            run_eval_job(job_id, settings, store)
        elif job_id.startswith("export-"):
            from honed.jobs.export_job import run_export_job

            run_export_job(job_id, settings, store)
        elif job_id.startswith("search-"):
            from honed.jobs.search_job import advance

            advance(job_id, settings, store, queue)
        else:
            run_fine_tune(job_id, settings, store)
            from honed.jobs.search_job import trial_ended

            trial_ended(job_id, settings, store, queue)  # a search's trial that has ended moves its search on

    queue = JobQueue(settings, run_job)
    stopping = threading.Event()
    keep_queue(store, queue, stopping)
    log.info("worker consuming the %s queue (nice %d)", queue.backend, os.nice(0))
    # Started by `honed serve`, the supervisor requeues the running job and says so; started alone (a unit of
    # its own, a terminal), the worker does it itself when told to stop.
    supervised = bool(os.environ.get("HONED_SUPERVISOR_PID"))
    stopped: set[str] = set()

    def before_stop() -> None:
        stopping.set()
        if not supervised:
            stopped.update(requeue_running(store))

    queue.consumer(before_stop).run()
    for job_id in stopped:  # the next worker finds it on the queue (a restarted `honed serve` would requeue it too)
        queue.enqueue(job_id)
    announce_shutdown(store, stopped)
    worker_lock.close()
