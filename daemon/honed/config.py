"""Settings: where honed keeps its state and how it is reached, from flags and environment."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

DEFAULT_PORT = 8421
UPLOAD_TEMP_PREFIX = ".upload-"
"""Uploads are spooled under files/ with this prefix and renamed to their hash once whole."""


class Settings(msgspec.Struct, frozen=True):
    home: Path
    """HONED_HOME: the database, the queue, uploaded files, job artefacts and cached models."""
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    redis_url: str | None = None
    """When set, the job queue is RedisHuey on this URL instead of the SQLite queue in HONED_HOME."""
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    """HONED_CORS_ORIGINS (comma-separated, e.g. "http://localhost:3000"): web pages besides the daemon's own that
    may call it. Empty: only the studio, which the daemon serves itself (see api/origin.py)."""
    max_upload_bytes: int = 512 * 1024 * 1024
    adapter_memory_bytes: int = 1024 * 1024 * 1024
    """HONED_ADAPTER_MEMORY_MB: loaded LoRA adapters may take this much memory; the coldest go first."""
    worker_nice: int = 10
    worker_memory_bytes: int | None = None
    """HONED_WORKER_MEMORY_MB: the most address space the worker may map (Linux). A job that needs more fails with
    an out-of-memory reason instead of pushing the machine into swap or the kernel's out-of-memory killer."""
    metrics_retention_s: float = 3600.0
    """HONED_METRICS_RETENTION_S: a finished job's per-job series stay on /metrics this long."""
    yield_when_busy: float | None = None
    """HONED_YIELD_WHEN_BUSY (0..1): training waits between steps while other programs use more than this share
    of the CPU. Unset: training only runs niced."""
    probe_cache_dir: Path | None = None
    """HONED_PROBE_CACHE: where measured estimate probes are kept. They describe the machine, not one HONED_HOME,
    so the default is the user's cache (~/.cache/honed/probes)."""

    @property
    def db_path(self) -> Path:
        return self.home / "honed.db"

    @property
    def queue_path(self) -> Path:
        return self.home / "queue.db"

    @property
    def files_dir(self) -> Path:
        return self.home / "files"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ensure_dirs(self) -> None:
        for directory in (self.home, self.files_dir, self.jobs_dir, self.models_dir, self.logs_dir, self.exports_dir):
            directory.mkdir(parents=True, exist_ok=True)

    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_origins(text: str) -> tuple[str, ...]:
    """"http://localhost:3000, https://notebook.example" -> the origins; a browser sends an origin as
    scheme://host[:port] exactly, so anything else (a path, a trailing slash, no scheme) could never match."""
    origins = tuple(part.strip() for part in text.split(",") if part.strip())
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc or origin != f"{parts.scheme}://{parts.netloc}":
            raise ValueError(f"HONED_CORS_ORIGINS: '{origin}' is not an origin; write it as scheme://host[:port], "
                             "e.g. http://localhost:3000 (no path, no trailing slash)")
    return origins


def default_home() -> Path:
    return Path(os.environ.get("HONED_HOME") or Path.home() / ".honed").expanduser().resolve()


def load_settings(**overrides: object) -> Settings:
    """Settings from HONED_* environment variables, with explicit (non-None) overrides from flags."""
    values: dict[str, object] = {
        "home": default_home(),
        "host": os.environ.get("HONED_HOST", "127.0.0.1"),
        "port": int(os.environ.get("HONED_PORT", DEFAULT_PORT)),
        "redis_url": os.environ.get("HONED_REDIS_URL") or None,
        "api_key": os.environ.get("HONED_API_KEY") or None,
    }
    if os.environ.get("HONED_CORS_ORIGINS"):
        values["cors_origins"] = parse_origins(os.environ["HONED_CORS_ORIGINS"])
    if os.environ.get("HONED_MAX_UPLOAD_BYTES"):
        values["max_upload_bytes"] = int(os.environ["HONED_MAX_UPLOAD_BYTES"])
    if os.environ.get("HONED_WORKER_MEMORY_MB"):
        values["worker_memory_bytes"] = int(float(os.environ["HONED_WORKER_MEMORY_MB"]) * 1024 * 1024)
    if os.environ.get("HONED_ADAPTER_MEMORY_MB"):
        values["adapter_memory_bytes"] = int(float(os.environ["HONED_ADAPTER_MEMORY_MB"]) * 1024 * 1024)
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    values["probe_cache_dir"] = Path(os.environ.get("HONED_PROBE_CACHE") or cache_root / "honed" / "probes")
    if os.environ.get("HONED_YIELD_WHEN_BUSY"):
        values["yield_when_busy"] = float(os.environ["HONED_YIELD_WHEN_BUSY"])
    if os.environ.get("HONED_METRICS_RETENTION_S"):
        values["metrics_retention_s"] = float(os.environ["HONED_METRICS_RETENTION_S"])
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["home"] = Path(values["home"]).expanduser().resolve()  # type: ignore[arg-type]
    return Settings(**values)  # type: ignore[arg-type]
