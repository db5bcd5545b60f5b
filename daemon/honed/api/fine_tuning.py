"""/v1/fine_tuning/jobs: create, list, get, cancel, events (list and live SSE), eval results, checkpoints."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from hone.types import (
    TERMINAL_STATUSES,
    CheckpointMetrics,
    EvalResult,
    EvalResultList,
    FineTuneCreate,
    FineTuningJob,
    FineTuningJobList,
    JobCheckpoint,
    JobCheckpointList,
    JobError,
    ResolvedHyperparameters,
    ResolvedMethod,
)
from honed.api.common import decode_body, job_page, limit_param, new_id, services, stored_job
from honed.api.events import events_response
from honed.errors import Conflict, InvalidRequest, NotFound
from honed.jobs.spec import resolve_spec, validate_request, with_suite_datasets
from honed.jobs.store import JobRow, Store



def job_object(row: JobRow) -> FineTuningJob:
    spec = row.spec
    hyper = ResolvedHyperparameters(spec["n_epochs"], spec["batch_size"], spec["learning_rate_multiplier"])
    error = JobError(**row.error) if row.error else None
    result_files = []
    return FineTuningJob(
        id=row.id, created_at=row.created_at, model=spec["model"], status=row.status,
        training_file=spec["training_file"], validation_file=spec["validation_file"], hyperparameters=hyper,
        seed=spec["seed"], fine_tuned_model=row.fine_tuned_model, finished_at=row.finished_at, error=error,
        result_files=result_files, trained_tokens=row.trained_tokens, estimated_finish=row.estimated_finish,
        metadata=spec.get("metadata"), user_provided_suffix=spec.get("suffix"),
        method=ResolvedMethod("supervised", {"hyperparameters": msgspec.to_builtins(hyper)}),
        honed={**spec["options"], "learning_rate": spec["learning_rate"], "result": row.result},
    )








def fine_tuning_job(request: Request, job_id: str) -> JobRow:
    return stored_job(request, job_id, "ftjob-", "fine-tuning job", "job_id", "GET /v1/fine_tuning/jobs")


def check_training_files(svc: Any, body: FineTuneCreate) -> None:
    _check_file(svc, body.training_file, "training_file")
    _check_file(svc, body.validation_file, "validation_file")


def _check_file(svc: Any, file_id: str | None, param: str) -> None:
    if file_id is None:
        return
    try:
        row = svc.store.get_file(file_id)
    except NotFound:
        raise NotFound(f"{param} '{file_id}' does not exist; upload it with POST /v1/files first",
                       param=param) from None
    if row.purpose != "fine-tune":
        raise InvalidRequest(f"{param} '{file_id}' has purpose '{row.purpose}', not 'fine-tune'", param=param)


class FineTuningController(Controller):
    path = "/v1/fine_tuning/jobs"

    @post("/", status_code=200)
    async def create(self, request: Request) -> FineTuningJob:
        svc = services(request)
        body = with_suite_datasets(decode_body(await request.body(), FineTuneCreate), svc.file_bytes)
        validate_request(body)  # the request's own fields first, then what it refers to
        source = svc.catalog.resolve(body.model)
        check_training_files(svc, body)
        examples = svc.store.get_file(body.training_file).examples
        spec = resolve_spec(body, source.name, examples)
        job_id = new_id("ftjob")
        return job_object(svc.submit(job_id, msgspec.to_builtins(spec), f"Created fine-tuning job: {job_id}",
                                     "Validated training files; job queued"))

    @get("/")
    async def list_jobs(self, request: Request, after: str | None = None,
                        limit: str | None = None) -> FineTuningJobList:
        rows, more = job_page(request, after, limit, "ftjob-", "fine-tuning job")
        return FineTuningJobList(data=[job_object(r) for r in rows], has_more=more)

    @get("/{job_id:str}")
    async def retrieve(self, request: Request, job_id: str) -> FineTuningJob:
        return job_object(fine_tuning_job(request, job_id))

    @post("/{job_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, job_id: str) -> FineTuningJob:
        store = services(request).store
        job = fine_tuning_job(request, job_id)
        if job.status in TERMINAL_STATUSES:
            raise Conflict(f"Job {job_id} has already {job.status}; only unfinished jobs can be cancelled",
                           param="job_id", code="invalid_state")
        return job_object(store.transition(job_id, "cancelled", message="Job cancelled by request"))

    @post("/{job_id:str}/pause", status_code=200)
    async def pause(self, request: Request, job_id: str) -> FineTuningJob:
        """Stop a queued or running job after its current step, keeping a checkpoint to resume from."""
        store = services(request).store
        job = fine_tuning_job(request, job_id)
        if job.status not in ("queued", "running"):
            raise Conflict(f"Job {job_id} is {job.status}; only queued or running jobs can be paused",
                           param="job_id", code="invalid_state")
        return job_object(store.transition(job_id, "paused", message="Job paused by request"))

    @post("/{job_id:str}/resume", status_code=200)
    async def resume(self, request: Request, job_id: str) -> FineTuningJob:
        """Put a paused job back on the queue; it continues from its last checkpoint."""
        svc = services(request)
        job = fine_tuning_job(request, job_id)
        if job.status != "paused":
            raise Conflict(f"Job {job_id} is {job.status}; only paused jobs can be resumed", param="job_id",
                           code="invalid_state")
        row = svc.store.transition(job_id, "queued", expect={"paused"}, message="Job resumed by request")
        svc.queue.enqueue(job_id)
        return job_object(row)

    @get("/{job_id:str}/events")
    async def events(self, request: Request, job_id: str, after: str | None = None, limit: str | None = None,
                     stream: bool = False) -> Any:
        fine_tuning_job(request, job_id)
        return events_response(request, job_id, after, limit, stream)

    @get("/{job_id:str}/eval_results")
    async def eval_results(self, request: Request, job_id: str) -> EvalResultList:
        """Every metric the job measured (baseline, each validation point, final), oldest first."""
        fine_tuning_job(request, job_id)
        return eval_results(services(request).store, job_id)

    @get("/{job_id:str}/checkpoints")
    async def checkpoints(self, request: Request, job_id: str, limit: str | None = None) -> JobCheckpointList:
        store = services(request).store
        job = fine_tuning_job(request, job_id)
        rows = store.checkpoints(job_id)[: limit_param(limit, default=10)]
        data = [
            JobCheckpoint(
                id=r.id, created_at=r.created_at, fine_tuning_job_id=job_id, step_number=r.step,
                fine_tuned_model_checkpoint=f"{job.fine_tuned_model or 'ft:' + job_id}:ckpt-step-{r.step}",
                metrics=msgspec.convert({k: v for k, v in r.metrics.items() if k in CheckpointMetrics.__struct_fields__},
                                        CheckpointMetrics),
            )
            for r in rows
        ]
        return JobCheckpointList(data=data, has_more=False, first_id=data[0].id if data else None,
                                 last_id=data[-1].id if data else None)


def eval_results(store: Store, job_id: str) -> EvalResultList:
    """A job's stored metric values, oldest first, each naming the event that announced it."""
    return EvalResultList(data=[
        EvalResult(job_id=r.job_id, phase=r.phase, suite=r.suite, metric=r.metric, value=r.value, low=r.low,
                   high=r.high, model=r.model, step=r.step, event_id=f"ftevent-{r.seq}")
        for r in store.eval_results(job_id)])
