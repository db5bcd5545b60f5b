"""Unknown ids, wrong routes and methods, bad query parameters and garbage SSE resume points: a 404, 405 or 400
naming what was wrong, a 409 for an action the resource's state forbids, and nothing stored changed."""

from __future__ import annotations

import pytest

from tests.badinput.conftest import Case, case_id, check_refused

SSE = {"accept": "text/event-stream"}


def get(path, status, message, param=..., headers=None):
    return Case("GET", path, status=status, message=message, param=param, headers=headers or {})


def post(path, status, message, param=...):
    return Case("POST", path, status=status, message=message, param=param)


def delete(path, status, message, param=...):
    return Case("DELETE", path, status=status, message=message, param=param)


def resume_from(last_event_id):
    return {**SSE, "last-event-id": last_event_id}


JOB = "/v1/fine_tuning/jobs/{paused_job}"
CASES = [
    # routes and methods
    get("/v1/nope", 404, "No such endpoint: GET /v1/nope", None),
    get("/v1/files/file-nope/nope", 404, "No such endpoint", None),
    delete("/v1/fine_tuning/jobs", 405, "DELETE /v1/fine_tuning/jobs is not allowed; this path takes", None),
    get("/v1/fine_tuning/jobs/ftjob-x/cancel", 405, "is not allowed; this path takes POST", None),
    Case("PATCH", "/v1/files", status=405, message="is not allowed"),
    post("/v1/models/acme/nope", 404, "did you mean POST /v1/models/{model}/export?"),
    # files
    get("/v1/files/file-nope", 404, "No file with id 'file-nope'", "file_id"),
    delete("/v1/files/file-nope", 404, "No file with id 'file-nope'", "file_id"),
    get("/v1/files/file-nope/content", 404, "No file with id 'file-nope'", "file_id"),
    get("/v1/files/file-nope/preview", 404, "No file with id 'file-nope'", "file_id"),
    get("/v1/files/{file}/preview?offset=-1", 400, "offset must be a non-negative integer", "offset"),
    get("/v1/files/{file}/preview?offset=abc", 400, "offset must be a non-negative integer", "offset"),
    get("/v1/files/{file}/preview?limit=0", 400, "limit must be between 1 and 200", "limit"),
    delete("/v1/files/{file}", 409, "is used by unfinished job(s)", "file_id"),
    # fine-tuning jobs
    get("/v1/fine_tuning/jobs/ftjob-nope", 404, "No fine-tuning job with id 'ftjob-nope'", "job_id"),
    get("/v1/fine_tuning/jobs/{file}", 404, "No fine-tuning job with id 'file-", "job_id"),
    post("/v1/fine_tuning/jobs/ftjob-nope/cancel", 404, "ftjob-nope", "job_id"),
    post("/v1/fine_tuning/jobs/{cancelled_job}/cancel", 409, "has already cancelled", "job_id"),
    post("/v1/fine_tuning/jobs/{cancelled_job}/pause", 409, "only queued or running jobs can be paused", "job_id"),
    post("/v1/fine_tuning/jobs/{cancelled_job}/resume", 409, "only paused jobs can be resumed", "job_id"),
    post(JOB + "/pause", 409, "is paused; only queued or running jobs can be paused", "job_id"),
    get("/v1/fine_tuning/jobs?limit=0", 400, "limit must be between 1 and 100", "limit"),
    get("/v1/fine_tuning/jobs?limit=abc", 400, "limit must be an integer", "limit"),
    get(f"/v1/fine_tuning/jobs?limit={10**30}", 400, "limit must be between 1 and 100", "limit"),
    get("/v1/fine_tuning/jobs?after=ftjob-nope", 404, "No fine-tuning job with id 'ftjob-nope'", "after"),
    get("/v1/fine_tuning/jobs/ftjob-nope/checkpoints", 404, "No fine-tuning job", "job_id"),
    get(JOB + "/checkpoints?limit=x", 400, "limit must be an integer", "limit"),
    get("/v1/fine_tuning/jobs/ftjob-nope/eval_results", 404, "No fine-tuning job", "job_id"),
    # events: pages and SSE streams, with garbage cursors and Last-Event-IDs
    get("/v1/fine_tuning/jobs/ftjob-nope/events", 404, "No fine-tuning job", "job_id"),
    get(JOB + "/events?after=garbage", 400, "after must be an event id like 'ftevent-12'", "after"),
    get(JOB + "/events?after=ftevent-" + "9" * 30, 400, "after must be an event id", "after"),
    get(JOB + "/events?limit=-1", 400, "limit must be between 1 and 1000", "limit"),
    get(JOB + "/events?stream=maybe", 400, "stream: Expected `bool`", "stream"),
    get(JOB + "/events", 400, "Last-Event-ID must be an event id", "Last-Event-ID", resume_from("garbage")),
    get(JOB + "/events", 400, "Last-Event-ID must be an event id", "Last-Event-ID", resume_from("-1")),
    get(JOB + "/events", 400, "Last-Event-ID must be an event id", "Last-Event-ID", resume_from("9" * 40)),
    get(JOB + "/events?stream=true", 400, "Last-Event-ID must be", "Last-Event-ID", {"last-event-id": "ftevent-x"}),
    get("/v1/events", 400, "Last-Event-ID must be an event id", "Last-Event-ID", resume_from("garbage")),
    get("/v1/events", 400, "Last-Event-ID must be an event id", "Last-Event-ID", resume_from(b"\xb2")),
    get("/v1/events", 400, "Last-Event-ID must be an event id", "Last-Event-ID", resume_from("1e3")),
    get("/v1/events?stream=true&after=abc", 400, "after must be an event id", "after"),
    get("/v1/events?after=%C2%B2", 400, "after must be an event id", "after"),
    get("/v1/events?limit=5000", 400, "limit must be between 1 and 1000", "limit"),
    # searches, evals, exports, reports: each kind's endpoints know only their own ids
    get("/v1/fine_tuning/searches/search-nope", 404, "No search with id 'search-nope'", "search_id"),
    get("/v1/fine_tuning/searches/{paused_job}", 404, "No search with id 'ftjob-", "search_id"),
    post("/v1/fine_tuning/searches/search-nope/cancel", 404, "No search with id", "search_id"),
    get("/v1/fine_tuning/searches/search-nope/report", 404, "No search with id", "search_id"),
    get("/v1/fine_tuning/searches/search-nope/events", 404, "No search with id", "search_id"),
    get("/v1/fine_tuning/searches?after=nope", 404, "No search with id 'nope'", "after"),
    get("/v1/evals/eval-nope", 404, "No evaluation with id 'eval-nope'", "eval_id"),
    get("/v1/evals/{paused_job}", 404, "No evaluation with id 'ftjob-", "eval_id"),
    get("/v1/evals/eval-nope/results", 404, "No evaluation with id", "eval_id"),
    get("/v1/evals/eval-nope/events", 404, "No evaluation with id", "eval_id"),
    get("/v1/exports/export-nope", 404, "No export with id 'export-nope'", "export_id"),
    get("/v1/exports/{paused_job}", 404, "No export with id 'ftjob-", "export_id"),
    get("/v1/exports/export-nope/events", 404, "No export with id", "export_id"),
    get("/v1/exports?limit=0", 400, "limit must be between 1 and 100", "limit"),
    get("/v1/exports?after={paused_job}", 404, "No export with id", "after"),
    get("/v1/reports/x.doc", 404, "ask for <job id>.html or <job id>.pdf", "name"),
    get("/v1/reports/ftjob-nope.html", 404, "No fine-tuning job with id 'ftjob-nope'", "job_id"),
    get("/v1/reports/{file}.pdf", 404, "No fine-tuning job with id 'file-", "job_id"),
    # models and aliases
    get("/v1/models/acme/nope", 404, "The model 'acme/nope' does not exist", "model"),
    get("/v1/aliases/nope", 404, "No alias 'nope'", "name"),
    delete("/v1/aliases/nope", 404, "No alias 'nope'", "name"),
    post("/v1/aliases/nope/rollback", 404, "No alias 'nope'", "name"),
]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_bad_id_route_or_query_is_refused_with_what_to_fix(api, stored, case):
    check_refused(api, stored, case)
