"""/healthz: is the daemon up, which queue does it use, how many jobs wait."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from honed import __version__
from honed.api.common import services


@get("/healthz", sync_to_thread=False)
def healthz(request: Request) -> dict[str, Any]:
    svc = services(request)
    return {"status": "ok", "version": __version__, "queue": svc.queue.backend,
            "home": str(svc.settings.home), "loaded_adapters": svc.registry.loaded_adapters(),
            "loaded_models": svc.registry.loaded_models()}
