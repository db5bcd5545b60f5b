"""/v1/fine_tuning/searches: a hyperparameter search (Optuna) whose trials are fine-tuning jobs on the queue:
create, list, get, cancel (its trials too), events, and a report with the trials, importances and a plot."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post

from hone.types import TERMINAL_STATUSES, JobError, Search, SearchCreate, SearchList, SearchTrial
from honed.api.common import decode_body, job_page, new_id, services, stored_job
from honed.api.events import events_response
from honed.api.fine_tuning import check_training_files
from honed.errors import Conflict, IllegalTransition
from honed.jobs.search_job import direction
from honed.jobs.spec import with_suite_datasets
from honed.jobs.store import JobRow, Store
from honed.planning.search_space import validate_search


def search_object(row: JobRow) -> Search:
    request = msgspec.convert(row.spec["request"], SearchCreate)
    result = row.result or {}
    trials = [msgspec.convert({k: v for k, v in t.items() if k != "curve"}, SearchTrial)
              for t in result.get("trials", [])]
    best = next((t for t in trials if t.number == result.get("best_trial")), None)
    return Search(object="fine_tuning.search", id=row.id, created_at=row.created_at, status=row.status,
                  model=row.spec["model"], metric=request.metric, direction=direction(request.metric),
                  n_trials=request.n_trials, space=request.space, trials=trials, best_trial=best,
                  importance=result.get("importance"), finished_at=row.finished_at,
                  error=JobError(**row.error) if row.error else None)


def cancel_search(store: Store, search_id: str) -> JobRow:
    """Cancel the search, then every trial of it that has not ended (a running one stops after its step)."""
    row = store.transition(search_id, "cancelled", message="Search cancelled by request")
    for trial in (row.result or {}).get("trials", []):
        if trial.get("job_id") and store.get_job(trial["job_id"]).status not in TERMINAL_STATUSES:
            try:
                store.transition(trial["job_id"], "cancelled", message=f"Cancelled with its search {search_id}")
            except IllegalTransition:  # it ended meanwhile
                pass
    return store.get_job(search_id)


class SearchesController(Controller):
    path = "/v1/fine_tuning/searches"

    @post("/", status_code=200)
    async def create(self, request: Request) -> Search:
        svc = services(request)
        body = decode_body(await request.body(), SearchCreate)
        body = msgspec.structs.replace(body, job=with_suite_datasets(body.job, svc.file_bytes))
        validate_search(body)
        source = svc.catalog.resolve(body.job.model)
        check_training_files(svc, body.job)
        search_id = new_id("search")
        spec = {"model": source.name, "request": msgspec.to_builtins(body)}
        return search_object(svc.submit(search_id, spec, f"Created search: {search_id}",
                                        f"Search queued: {body.n_trials} trials over {', '.join(body.space)}"))

    @get("/")
    async def list_searches(self, request: Request, after: str | None = None,
                            limit: str | None = None) -> SearchList:
        rows, more = job_page(request, after, limit, "search-", "search")
        return SearchList(object="list", data=[search_object(r) for r in rows], has_more=more)

    @get("/{search_id:str}")
    async def retrieve(self, request: Request, search_id: str) -> Search:
        return search_object(self._row(request, search_id))

    @post("/{search_id:str}/cancel", status_code=200)
    async def cancel(self, request: Request, search_id: str) -> Search:
        row = self._row(request, search_id)
        if row.status in TERMINAL_STATUSES:
            raise Conflict(f"Search {search_id} has already {row.status}; only unfinished searches can be "
                           "cancelled", param="search_id", code="invalid_state")
        return search_object(cancel_search(services(request).store, search_id))

    @get("/{search_id:str}/events")
    async def events(self, request: Request, search_id: str, after: str | None = None, limit: str | None = None,
                     stream: bool = False) -> Any:
        self._row(request, search_id)
        return events_response(request, search_id, after, limit, stream)

    @get("/{search_id:str}/report")
    async def report(self, request: Request, search_id: str) -> Response[bytes]:
        """The search as a page: trials, the best one, parameter importances and the metric per trial."""
        row = self._row(request, search_id)

        def render() -> bytes:
            from honed.evaluation.search_report import render_search_report

            return render_search_report(msgspec.to_builtins(search_object(row)), row.result or {}).encode()

        return Response(await asyncio.to_thread(render), media_type="text/html; charset=utf-8")

    @staticmethod
    def _row(request: Request, search_id: str) -> JobRow:
        return stored_job(request, search_id, "search-", "search", "search_id", "GET /v1/fine_tuning/searches")
