"""Small pieces every resource module uses: the shared services, body decoding, id minting."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.response import Stream

from honed.errors import InvalidRequest
from honed.jobs.store import new_id  # noqa: F401 - where API modules take it from
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
        if detail.startswith("Invalid enum value") and param and param.rsplit(".", 1)[-1] in AUTO_FIELDS:
            detail += ' (use a number or "auto")'
        raise InvalidRequest(f"{param}: {detail}" if param else f"invalid request body: {detail}",
                             param=param) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from exc


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
