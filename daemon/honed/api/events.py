"""Job events over HTTP: OpenAI's newest-first pages, and live SSE streams of one job or of all of them.

A stream polls the store (the one event path: the worker writes, everyone reads) every EVENT_POLL_SECONDS, so
an event reaches a client within that much of being written; `id:` is the event's seq, so a client that
reconnects with Last-Event-ID gets exactly what it missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Request, get
from litestar.response import ServerSentEventMessage

from hone.types import TERMINAL_STATUSES, JobEvent, JobEventList
from honed.api.common import EventStream, limit_param, services
from honed.errors import InvalidRequest
from honed.jobs.store import EventRow

EVENT_POLL_SECONDS = 0.05
KEEPALIVE_SECONDS = 15.0


def event_object(row: EventRow) -> JobEvent:
    return JobEvent(id=f"ftevent-{row.seq}", created_at=int(row.created_at), level=row.level,
                    message=row.message, type="metrics" if row.type == "metrics" else "message", data=row.data,
                    seq=row.seq, kind=row.type, job_id=row.job_id, timestamp=row.created_at)


def _event_seq(value: str | None, param: str) -> int | None:
    if value is None or value == "":
        return None
    text = value.removeprefix("ftevent-")
    # ASCII digits only ("²".isdigit() is true), and few enough to fit SQLite's 64-bit integers
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise InvalidRequest(f"{param} must be an event id like 'ftevent-12', got {value!r}", param=param)
    return int(text)


def _wants_stream(request: Request, stream: bool) -> bool:
    return stream or "text/event-stream" in request.headers.get("accept", "")


def _start(request: Request, after: str | None) -> int:
    start = _event_seq(request.headers.get("last-event-id"), "Last-Event-ID")
    return start if start is not None else _event_seq(after, "after") or 0


def events_response(request: Request, job_id: str, after: str | None, limit: str | None, stream: bool) -> Any:
    """A job's events: OpenAI's newest-first page, or (stream=true / Accept: text/event-stream) a live SSE
    stream from Last-Event-ID (or `after`) on."""
    store = services(request).store
    store.get_job(job_id)
    if _wants_stream(request, stream):
        return EventStream(_follow(request, job_id, _start(request, after)))
    count = limit_param(limit, default=20, maximum=1000)
    rows = store.events_newest_first(job_id, before_seq=_event_seq(after, "after"), limit=count + 1)
    return JobEventList(data=[event_object(r) for r in rows[:count]], has_more=len(rows) > count)


@get("/v1/events")
async def all_events(request: Request, after: str | None = None, limit: str | None = None,
                     stream: bool = False) -> Any:
    """Every job's events in the order they were written: a page after `after` (oldest first), or a live SSE
    stream that runs until the client leaves."""
    if _wants_stream(request, stream):
        return EventStream(_follow(request, None, _start(request, after)))
    count = limit_param(limit, default=100, maximum=1000)
    rows = services(request).store.events(None, after_seq=_event_seq(after, "after") or 0, limit=count + 1)
    return JobEventList(data=[event_object(r) for r in rows[:count]], has_more=len(rows) > count)


async def _follow(request: Request, job_id: str | None, after_seq: int) -> AsyncIterator[bytes]:
    """Events after `after_seq` as they are written: one job's until it has ended and everything is sent (then
    a `done` event), or all jobs' until the client goes away. A comment line keeps idle connections open."""
    store = services(request).store
    idle = 0.0
    while True:
        rows = await asyncio.to_thread(store.events, job_id, after_seq=after_seq, limit=500)
        for row in rows:
            after_seq = row.seq
            yield ServerSentEventMessage(data=msgspec.json.encode(event_object(row)).decode(), event=row.type,
                                         id=str(row.seq)).encode()
        if rows:
            idle = 0.0
            continue
        if (job_id is not None and store.get_job(job_id).status in TERMINAL_STATUSES
                and not store.events(job_id, after_seq=after_seq, limit=1)):
            yield ServerSentEventMessage(data='{"done": true}', event="done", id=str(after_seq)).encode()
            return
        await asyncio.sleep(EVENT_POLL_SECONDS)
        idle += EVENT_POLL_SECONDS
        if idle >= KEEPALIVE_SECONDS:
            idle = 0.0
            yield ServerSentEventMessage(data=None, comment="keep-alive").encode()
