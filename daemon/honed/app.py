"""The Litestar application: routes, auth, and the one place errors become OpenAI's error shape."""

from __future__ import annotations

import hmac
import logging

import msgspec
from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from hone.types import ErrorBody, ErrorResponse
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
from honed.api.planning import ROUTES as PLANNING_ROUTES
from honed.api.models import list_models, retrieve_model
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


def _error(status: int, message: str, type_: str, param: str | None = None, code: str | None = None) -> Response:
    body = ErrorResponse(ErrorBody(message=message, type=type_, param=param, code=code))
    return Response(msgspec.json.encode(body), status_code=status, media_type="application/json")


def _honed_error(_: Request, exc: HonedError) -> Response:
    return _error(exc.status_code, exc.message, exc.error_type, exc.param, exc.code)


def _http_error(_: Request, exc: HTTPException) -> Response:
    message = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        message = f"{exc.detail}: {exc.extra}"
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return _error(exc.status_code, str(message), kind)


def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(500, f"internal error: {type(exc).__name__}: {exc}", "server_error")


def create_app(settings: Settings, services: Services | None = None) -> Litestar:
    services = services or Services.start(settings)

    async def check_api_key(request: Request) -> None:
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
        before_request=check_api_key,
        middleware=[timed],
        exception_handlers={
            HonedError: _honed_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        on_startup=[on_startup],
        request_max_body_size=settings.max_upload_bytes + 1024 * 1024,
        debug=False,
    )
    app.state.services = services
    return app
