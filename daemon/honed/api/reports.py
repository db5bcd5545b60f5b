"""/v1/reports/{job_id}.html|.pdf: a job's self-contained report (before/after, curves, side by side)."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Request, Response, get

from honed.api.common import services
from honed.api.events import event_object
from honed.api.fine_tuning import fine_tuning_job, job_object
from honed.errors import NotFound

FORMATS = {"html": "text/html; charset=utf-8", "pdf": "application/pdf"}


@get("/v1/reports/{name:str}")
async def job_report(request: Request, name: str) -> Response[bytes]:
    job_id, _, fmt = name.rpartition(".")
    if fmt not in FORMATS or not job_id:
        raise NotFound(f"no report '{name}': ask for <job id>.html or <job id>.pdf", param="name")
    store = services(request).store
    job = fine_tuning_job(request, job_id)
    events = store.events(job_id, limit=1_000_000)

    def render() -> bytes:
        from honed.evaluation.report import render_job_report

        html = render_job_report(msgspec.to_builtins(job_object(job)),
                                 [msgspec.to_builtins(event_object(e)) for e in events])
        if fmt == "pdf":
            from honed.evaluation.pdf import html_to_pdf

            return html_to_pdf(html)
        return html.encode()

    return Response(await asyncio.to_thread(render), media_type=FORMATS[fmt])
