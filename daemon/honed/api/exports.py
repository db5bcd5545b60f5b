"""/v1/exports (and POST /v1/models/{model}/export): write a fine-tuned model out, as a job on the queue.

Where it goes: HONED_HOME/exports/<name or id>, or an absolute `output_dir` the person chose. A name is one
path component (no separators, no `..`); an output_dir must be absolute, free of `..`, outside honed's own
state (except its exports folder), and empty if it exists. Nothing is written until the job runs, and then
only into a staging folder beside the destination that is renamed into place when complete.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePath
from typing import Any

import msgspec
from litestar import Request, get, post

from hone.types import ExportCreate, ExportedFile, ExportJob, ExportJobList, JobError
from honed.api.common import decode_body, job_page, new_id, services, stored_job
from honed.api.events import events_response
from honed.errors import Conflict, InvalidRequest, NotFound
from honed.jobs.store import JobRow

EXPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def export_object(row: JobRow) -> ExportJob:
    result = row.result or {}
    return ExportJob(id=row.id, model=row.spec["model"], format=row.spec["format"], status=row.status,
                     created_at=row.created_at, output_dir=row.spec["output_dir"], finished_at=row.finished_at,
                     files=[ExportedFile(**f) for f in result.get("files", [])], checks=result.get("checks", {}),
                     error=JobError(**row.error) if row.error else None)


def _source(svc, model: str) -> tuple[str, JobRow]:
    """The model name to export and the succeeded job behind it; a job id stands for its fine-tuned model."""
    if model.startswith("ftjob-"):
        try:
            job = svc.store.get_job(model)
        except NotFound:
            raise NotFound(f"model '{model}' names no fine-tuning job; GET /v1/fine_tuning/jobs lists them",
                           param="model") from None
        if job.status != "succeeded" or not job.fine_tuned_model:
            raise Conflict(f"Job {model} is {job.status}; only a succeeded job's model can be exported (a running "
                           "job's checkpoints can: GET /v1/fine_tuning/jobs/JOB/checkpoints names them)",
                           param="model", code="invalid_state")
        return job.fine_tuned_model, job
    model = svc.registry.resolve_alias(model)  # exported as it is now: a later promotion must not change it
    return model, svc.registry.source_job(model)


def _destination(svc, body: ExportCreate, export_id: str) -> Path:
    home, exports = svc.settings.home, svc.settings.exports_dir
    if body.name is not None and body.output_dir is not None:
        raise InvalidRequest("give either name (a folder under HONED_HOME/exports) or output_dir, not both",
                             param="name")
    if body.output_dir is not None:
        raw = PurePath(body.output_dir)
        if not raw.is_absolute() or ".." in raw.parts:
            raise InvalidRequest(f"output_dir must be an absolute path without '..'; got '{body.output_dir}'",
                                 param="output_dir")
        target = Path(raw).resolve()
        inside_home = target == home or home in target.parents
        if inside_home and exports not in target.parents:
            raise InvalidRequest(f"output_dir '{target}' is inside HONED_HOME, among honed's own files; use a "
                                 f"folder outside it or under {exports}", param="output_dir")
    else:
        name = body.name if body.name is not None else export_id
        if not EXPORT_NAME.fullmatch(name):
            raise InvalidRequest(f"name '{name}' must be one folder name (letters, digits, '.', '_', '-'; no "
                                 "'/' or '..'); to write elsewhere give an absolute output_dir", param="name")
        target = exports / name
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"'{target}' already exists and is not an empty folder; choose another name or remove it",
                       param="output_dir" if body.output_dir else "name")
    return target


def _create(svc, body: ExportCreate) -> ExportJob:
    if not body.model:
        raise InvalidRequest("model is required: a fine-tuned model, checkpoint, alias or job id", param="model")
    model, job = _source(svc, body.model)
    if body.format in ("adapter", "gguf-lora") and job.spec["options"].get("adapter") == "full":
        raise InvalidRequest(f"'{model}' is a full fine-tune and has no adapter; export it as 'merged', 'onnx' or "
                             "'gguf'", param="format")
    if body.quantization is not None and not body.format.startswith("gguf"):
        raise InvalidRequest(f"quantization applies to the gguf format, not '{body.format}'", param="quantization")
    export_id = new_id("export")
    target = _destination(svc, body, export_id)
    spec = {"model": model, "job_id": job.id, "format": body.format, "output_dir": str(target),
            "quantization": body.quantization}
    return export_object(svc.submit(export_id, spec, f"Created export {export_id}: {model} as {body.format}",
                                    f"Export queued, to {target}"))


def export_job(request: Request, export_id: str) -> JobRow:
    return stored_job(request, export_id, "export-", "export", "export_id", "GET /v1/exports")


@post("/v1/exports", status_code=200)
async def create_export(request: Request) -> ExportJob:
    svc = services(request)
    return _create(svc, decode_body(await request.body(), ExportCreate))


@post("/v1/models/{model_id:path}", status_code=200)
async def export_model(request: Request, model_id: str) -> ExportJob:
    """POST /v1/models/{model}/export: the same, with the model in the path (its name may hold slashes)."""
    model, _, action = model_id.lstrip("/").rpartition("/")
    if action != "export" or not model:
        raise NotFound(f"No such endpoint: POST /v1/models/{model_id.lstrip('/')}; did you mean "
                       "POST /v1/models/{model}/export?")
    svc = services(request)
    raw = await request.body()
    body = decode_body(raw, ExportCreate) if raw.strip() else ExportCreate()
    if body.model and body.model != model:
        raise InvalidRequest(f"the body names model '{body.model}' but the path names '{model}'", param="model")
    return _create(svc, msgspec.structs.replace(body, model=model))


@get("/v1/exports")
async def list_exports(request: Request, after: str | None = None, limit: str | None = None) -> ExportJobList:
    rows, more = job_page(request, after, limit, "export-", "export")
    return ExportJobList(data=[export_object(r) for r in rows], has_more=more)


@get("/v1/exports/{export_id:str}")
async def retrieve_export(request: Request, export_id: str) -> ExportJob:
    return export_object(export_job(request, export_id))


@get("/v1/exports/{export_id:str}/events")
async def export_events(request: Request, export_id: str, after: str | None = None, limit: str | None = None,
                        stream: bool = False) -> Any:
    export_job(request, export_id)
    return events_response(request, export_id, after, limit, stream)


ROUTES = [create_export, export_model, list_exports, retrieve_export, export_events]
