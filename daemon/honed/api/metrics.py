"""GET /metrics: Prometheus exposition of the store's job numbers and the API process's own instruments."""

from __future__ import annotations

import time

from litestar import Request, Response, get
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, generate_latest

from honed.api.common import services
from honed.observability.instruments import LOADED_ADAPTERS, REGISTRY, REQUEST_SECONDS, RESIDENT_MEMORY
from honed.observability.memory import resident_bytes
from honed.observability.store_metrics import StoreCollector


def _store_registry(request: Request) -> CollectorRegistry:
    state = request.app.state
    if getattr(state, "store_registry", None) is None:
        registry = CollectorRegistry(auto_describe=False)
        svc = services(request)
        registry.register(StoreCollector(svc.store, svc.settings.metrics_retention_s))
        state.store_registry = registry
    return state.store_registry


@get("/metrics", sync_to_thread=True, include_in_schema=False)
def metrics(request: Request) -> Response[bytes]:
    LOADED_ADAPTERS.set(len(services(request).registry.loaded_adapters()))
    RESIDENT_MEMORY.set(resident_bytes())
    body = generate_latest(REGISTRY) + generate_latest(_store_registry(request))
    # the classic text format every Prometheus reads (Litestar appends the charset)
    return Response(body, media_type="text/plain; version=0.0.4")


def timed(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: each HTTP request's time until its response starts, labelled by route template (not
    the raw path, whose ids would make a series per job)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = scope.get("path_template") or "unmatched"
                REQUEST_SECONDS.labels(route=route, method=scope["method"], status=str(message["status"])).observe(
                    time.perf_counter() - started)
            await send(message)

        await app(scope, receive, send_timed)

    return middleware
