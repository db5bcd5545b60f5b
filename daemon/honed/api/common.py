"""Small pieces every resource module uses: the shared services, body decoding, id minting."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

import msgspec
from litestar import Request

from honed.errors import InvalidRequest
from honed.services import Services

T = TypeVar("T")
AUTO_FIELDS = frozenset({"n_epochs", "batch_size", "learning_rate_multiplier"})


def services(request: Request) -> Services:
    return request.app.state.services


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


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
