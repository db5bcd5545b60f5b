"""/v1/evals: run an eval suite on one model, or compare two, as a job on the queue."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, get, post

from hone.types import EvalCreate, EvalResultList, EvalRun, JobError
from honed.api.common import decode_body, new_id, services, stored_job
from honed.api.events import events_response
from honed.api.fine_tuning import eval_results
from honed.errors import InvalidRequest, NotFound
from honed.evaluation.suite import validate_suite, with_dataset_cases
from honed.jobs.store import JobRow


def eval_object(row: JobRow) -> EvalRun:
    result = row.result or {}
    return EvalRun(id=row.id, created_at=row.created_at, status=row.status, suite=row.spec["suite"]["name"],
                   models=row.spec["models"], finished_at=row.finished_at, results=result.get("results"),
                   comparison=result.get("comparison"), judge=result.get("judge"), error=JobError(**row.error) if row.error else None)


class EvalsController(Controller):
    path = "/v1/evals"

    @post("/", status_code=200)
    async def create(self, request: Request) -> EvalRun:
        svc = services(request)
        body = decode_body(await request.body(), EvalCreate)
        body = msgspec.structs.replace(body, suite=with_dataset_cases(body.suite, svc.file_bytes, "suite"))
        validate_suite(body.suite, "suite")
        if not 1 <= len(body.models) <= 2 or len(set(body.models)) != len(body.models):
            raise InvalidRequest("models must name one model, or two different models to compare", param="models")
        for name in body.models:
            try:
                svc.registry.lookup_reference(name)
            except NotFound as exc:
                raise NotFound(exc.message, param="models") from None
        eval_id = new_id("eval")
        return eval_object(svc.submit(eval_id, msgspec.to_builtins(body), f"Created evaluation: {eval_id}",
                                      "Evaluation queued"))

    @get("/{eval_id:str}")
    async def retrieve(self, request: Request, eval_id: str) -> EvalRun:
        return eval_object(self._row(request, eval_id))

    @get("/{eval_id:str}/results")
    async def results(self, request: Request, eval_id: str) -> EvalResultList:
        self._row(request, eval_id)
        return eval_results(services(request).store, eval_id)

    @get("/{eval_id:str}/events")
    async def events(self, request: Request, eval_id: str, after: str | None = None, limit: str | None = None,
                     stream: bool = False) -> Any:
        self._row(request, eval_id)
        return events_response(request, eval_id, after, limit, stream)

    @staticmethod
    def _row(request: Request, eval_id: str) -> JobRow:
        return stored_job(request, eval_id, "eval-", "evaluation", "eval_id")
