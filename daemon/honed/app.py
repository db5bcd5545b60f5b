"""The Litestar application: routes, auth, and the one place errors become OpenAI's error shape."""

from __future__ import annotations

import hmac
import logging

import msgspec
from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec

from hone.types import ErrorBody, ErrorResponse
from honed import __version__
from honed.api.aliases import ROUTES as ALIAS_ROUTES
from honed.api.chat import chat_completions
from honed.api.completions import completions
from honed.api.datasets import ROUTES as DATASET_ROUTES
from honed.api.evals import EvalsController
from honed.api.events import all_events
from honed.api.exports import ROUTES as EXPORT_ROUTES
from honed.api.files import FilesController
from honed.api.fine_tuning import FineTuningController
from honed.api.health import healthz
from honed.api.metrics import metrics, timed
from honed.api.models import list_models, retrieve_model
from honed.api.origin import check_origin
from honed.api.planning import ROUTES as PLANNING_ROUTES
from honed.api.preferences import ROUTES as PREFERENCE_ROUTES
from honed.api.recipes import ROUTES as RECIPE_ROUTES
from honed.api.reports import job_report
from honed.api.searches import SearchesController
from honed.api.studio import studio_files, studio_page
from honed.config import Settings
from honed.errors import HonedError, Unauthorized
from honed.services import Services

log = logging.getLogger("honed.api")
OPEN_PATHS = frozenset({"/healthz"})
ERROR_RESPONSES = {
    status: ResponseSpec(ErrorResponse, generate_examples=False, description=description)
    for status, description in ((400, "The request is invalid; the message says what to fix"),
                                (401, "Missing or wrong API key"),
                                (403, "A web page of another origin, or a request addressed to a foreign host"),
                                (404, "No such resource (or endpoint)"),
                                (409, "The resource's state forbids this"), (413, "The body is over the upload limit"))
}
"""What every operation may answer besides its success: OpenAI's error shape (Litestar would document its own)."""


def _error(status: int, message: str, type_: str, param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None) -> Response:
    body = ErrorResponse(ErrorBody(message=message, type=type_, param=param, code=code))
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json", headers=headers)


def _honed_error(_: Request, exc: HonedError) -> Response:
    return _error(exc.status_code, exc.message, exc.error_type, exc.param, exc.code)


def _http_error(request: Request, exc: HTTPException) -> Response:
    """Litestar's own refusals (no such route, wrong method, body too large, a query parameter of the wrong
    type), reworded to say what to fix: their stock texts ("Not Found") do not."""
    message, param = str(exc.detail), None
    where = f"{request.method} {request.url.path}"
    if isinstance(exc, NotFoundException) and message == "Not Found":
        message = f"No such endpoint: {where}; GET /schema/openapi.json lists every endpoint"
    elif isinstance(exc, MethodNotAllowedException):
        allowed = sorted(m for m in (exc.headers or {}).get("allow", "").split(", ") if m not in ("", "OPTIONS"))
        message = f"{where} is not allowed" + (f"; this path takes {', '.join(allowed)}" if allowed else "")
    elif isinstance(exc, RequestEntityTooLarge):
        limit = request.app.state.services.settings.max_upload_bytes
        message = (f"the request body is too large: uploads are limited to {limit:,} bytes "
                   "(HONED_MAX_UPLOAD_BYTES); send a smaller file or raise the limit")
    elif isinstance(exc, ValidationException) and exc.extra:
        message, param = _validation_message(exc)
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return _error(exc.status_code, message, kind, param, headers=exc.headers)


def _validation_message(exc: ValidationException) -> tuple[str, str | None]:
    """Litestar's parameter checks come as [{"message", "key", "source"}]: "stream: Expected `bool`, got `str`
    (query parameter)", naming the first bad parameter."""
    problems = [e for e in exc.extra if isinstance(e, dict) and e.get("key")] if isinstance(exc.extra, list) else []
    if not problems:
        return f"{exc.detail}: {exc.extra}", None
    parts = [f"{e['key']}: {e.get('message')} ({getattr(e.get('source'), 'value', 'request')} parameter)"
             for e in problems]
    return "; ".join(parts), problems[0]["key"]


def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, f"internal error: {type(exc).__name__}: {exc}", "server_error")


def create_app(settings: Settings, services: Services | None = None) -> Litestar:
    services = services or Services.start(settings)

    async def check_caller(request: Request) -> None:
        check_origin(request, settings)
        if settings.api_key is None or request.url.path in OPEN_PATHS:
            return
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), settings.api_key.encode()):
            raise Unauthorized("Missing or wrong API key: send 'Authorization: Bearer <HONED_API_KEY>'",
                               code="invalid_api_key")

    def on_startup(app: Litestar) -> None:
        requeued = services.requeue_unfinished()
        if requeued:
            log.info("requeued %d unfinished job(s): %s", len(requeued), ", ".join(requeued))

    app = Litestar(
        route_handlers=[FilesController, FineTuningController, SearchesController, EvalsController, *DATASET_ROUTES, *PREFERENCE_ROUTES,
                        *PLANNING_ROUTES, *RECIPE_ROUTES, *ALIAS_ROUTES, *EXPORT_ROUTES,
                        chat_completions, completions, list_models, retrieve_model, job_report, healthz, metrics,
                        all_events, studio_page, studio_files],
        before_request=check_caller,
        # Only for origins the user listed; the daemon's own pages are same-origin and need no CORS headers
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins), allow_headers=["authorization", "content-type"],
                               allow_methods=["*"]) if settings.cors_origins else None,
        middleware=[timed],
        exception_handlers={
            HonedError: _honed_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        on_startup=[on_startup],
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
        openapi_config=OpenAPIConfig(title="honed", version=__version__),  # served at /schema/openapi.json
        debug=False,
    )
    app.state.services = services
    # Litestar takes `responses` per handler only, and would document its own 400 body: every operation gets
    # the one error shape _error writes, so clients and schemathesis can rely on the schema
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler):
                handler.responses = {**ERROR_RESPONSES, **(handler.responses or {})}
    return app
