"""The web studio's files: GET / is its page, /studio/... its scripts, styles and vendored uPlot.

These routes are open even when HONED_API_KEY is set: the files hold no data, and a browser cannot send an
Authorization header when it opens a page. The studio itself sends the key (kept in the browser's
localStorage) with every API call it makes.
"""

from __future__ import annotations

from litestar import Request, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File
from litestar.static_files import create_static_files_router

from honed.studio import STATIC_DIR

# Revalidate on every load (ETag/Last-Modified make that cheap), so an upgraded daemon never serves a stale page.
REVALIDATE = CacheControlHeader(no_cache=True)


async def _open(_: Request) -> None:
    """Overrides the app's API key check for these routes (the closest before_request hook wins)."""


@get("/", before_request=_open, cache_control=REVALIDATE, include_in_schema=False)
async def studio_page() -> File:
    return File(STATIC_DIR / "index.html", filename="index.html", media_type="text/html", content_disposition_type="inline")


studio_files = create_static_files_router(path="/studio", directories=[STATIC_DIR], before_request=_open,
                                          cache_control=REVALIDATE, name="studio")
