"""Which web pages may call the daemon: its own (the studio) and origins the user lists, nobody else's.

A browser lets any page send "simple" requests (a form POST, a multipart upload, a GET) to 127.0.0.1 without
asking first, and reads of the answer are all CORS blocks. So a page on another origin could upload files,
start or cancel jobs on a loopback daemon that has no API key. Browsers name the page in the `Origin` header of
every such request, which no page can forge: requests carrying a foreign origin are refused before any handler
runs. A page reached through a DNS name that an attacker points at 127.0.0.1 (DNS rebinding) is same-origin to
itself, but its requests carry the attacker's name in `Host`: a loopback daemon answers only loopback names.
Clients that are not browsers (hone, the openai SDK, curl) send no Origin and are untouched.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar import Request

from honed.config import Settings
from honed.errors import Forbidden

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def _host_name(host: str) -> str:
    """The name part of a `Host` value: "127.0.0.1:8421" -> "127.0.0.1", "[::1]:8421" -> "::1"."""
    return (urlsplit(f"//{host}").hostname or "") if host else ""


def check_origin(request: Request, settings: Settings) -> None:
    host = request.headers.get("host", "")
    if settings.is_loopback() and _host_name(host) not in LOOPBACK_NAMES:
        raise Forbidden(f"this daemon listens on {settings.host} and answers only requests addressed to 127.0.0.1 "
                        f"or localhost; this one named host '{host}'", code="foreign_host")
    origin = request.headers.get("origin")
    if origin is None:
        return
    page = urlsplit(origin)
    own = page.netloc == host and page.scheme in ("http", "https")
    if not own and origin not in settings.cors_origins:
        raise Forbidden(f"requests from web pages of other origins are refused (this one came from '{origin}'); "
                        "to let that page call honed, start the daemon with HONED_CORS_ORIGINS="
                        f"{origin}", code="foreign_origin")
