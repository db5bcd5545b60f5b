"""Small pieces every resource module uses: the shared services, body decoding, id minting."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.response import Stream

from honed.errors import InvalidRequest, NotFound
from honed.jobs.store import JobRow, new_id  # noqa: F401 - where API modules take new_id from
from honed.services import Services

T = TypeVar("T")
AUTO_FIELDS = frozenset({"n_epochs", "batch_size", "learning_rate_multiplier"})


def services(request: Request) -> Services:
    return request.app.state.services


def decode_body(raw: bytes, type_: type[T]) -> T:
    """Decode a JSON body into a wire struct; errors name the field and what was wrong with it."""
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        text = str(exc)
        detail, _, where = text.partition(" - at `$.")
        param = where.rstrip("`") or None
        if detail.startswith("Object missing required field `"):  # name the field, not the object lacking it
            missing = detail.removeprefix("Object missing required field `").rstrip("`")
            param = f"{param}.{missing}" if param else missing
            raise InvalidRequest(f"{param} is required", param=param) from exc
        if detail.startswith("Invalid enum value") and param and param.rsplit(".", 1)[-1] in AUTO_FIELDS:
            detail += ' (use a number or "auto")'
        raise InvalidRequest(f"{param}: {detail}" if param else f"invalid request body: {detail}",
                             param=param) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


def stored_job(request: Request, job_id: str, prefix: str, what: str, param: str, listed_by: str = "") -> JobRow:
    """A stored job of one kind (fine-tuning job, evaluation, search, export: told apart by the id's prefix);
    NotFound naming that kind for any other id, so one kind's endpoints never act on another's jobs."""
    if job_id.startswith(prefix):
        try:
            return services(request).store.get_job(job_id)
        except NotFound:
            pass
    raise NotFound(f"No {what} with id '{job_id}'" + (f". {listed_by} lists them." if listed_by else ""), param=param)


def job_page(request: Request, after: str | None, limit: str | None, prefix: str,
             what: str) -> tuple[list[JobRow], bool]:
    """One newest-first page of one kind of job, and whether more follow; `after` is the last id of the page
    before (NotFound naming `after` when it is not one of these)."""
    count = limit_param(limit)
    if after is not None:
        stored_job(request, after, prefix, what, "after")
    rows = services(request).store.list_jobs(after=after, limit=count + 1, prefix=prefix)
    return rows[:count], len(rows) > count


def limit_param(value: Any, default: int = 20, maximum: int = 100) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"limit must be an integer, got {value!r}", param="limit") from None
    if not 1 <= number <= maximum:
        raise InvalidRequest(f"limit must be between 1 and {maximum}", param="limit")
    return number


class EventStream(Stream):
    """A text/event-stream response.

    Litestar's Stream lets the route's media type win over its own, and routes that also answer JSON (chat,
    events) default to JSON; an SSE body must say text/event-stream or browsers and SDKs will not parse it.
    """

    def __init__(self, content: Any) -> None:
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["media_type"] = "text/event-stream"
        return super().to_asgi_response(*args, **kwargs)
