"""`honed`: run the daemon (API + low-priority worker), or one of its parts."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

import click

from honed.config import Settings, load_settings

log = logging.getLogger("honed")


def _settings(home: str | None, host: str | None, port: int | None, redis: str | None) -> Settings:
    return load_settings(home=home, host=host, port=port, redis_url=redis)


def _worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HONED_HOME": str(settings.home), "HONED_HOST": settings.host, "HONED_PORT": str(settings.port),
                "HONED_SUPERVISOR_PID": str(os.getpid())})
    if settings.redis_url:
        env["HONED_REDIS_URL"] = settings.redis_url
    return env


class WorkerSupervisor:
    """Keeps one worker process alive beside the API; a crashed worker is restarted and its job requeued."""

    def __init__(self, settings: Settings, on_restart) -> None:
        self.settings = settings
        self.on_restart = on_restart
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        log_path = settings.logs_dir / "worker.log"
        self._log = open(log_path, "ab", buffering=0)

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="honed-worker-watch", daemon=True).start()

    def _spawn(self) -> None:
        # niced from its first instruction (not after its imports), so even loading torch stays in the background
        nice = self.settings.worker_nice
        self.process = subprocess.Popen([sys.executable, "-m", "honed", "worker"], env=_worker_env(self.settings),
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        preexec_fn=lambda: os.nice(nice))
        log.info("worker started (pid %d, log %s)", self.process.pid, self._log.name)

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.process is not None and self.process.poll() is not None:
                log.warning("worker exited with %s; restarting it", self.process.returncode)
                self.on_restart()
                self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # huey: finish gracefully
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@click.group()
def main() -> None:
    """honed: a local fine-tuning daemon."""
    # Loaders' tqdm bars only clutter the daemon's and worker's logs. transformers and huggingface_hub read
    # this when they are first imported, so setting it here costs nothing (importing transformers would).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@main.command()
@click.option("--home", help="State directory (HONED_HOME, default ~/.honed).")
@click.option("--host", help="Address to bind (HONED_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (HONED_PORT, default 8421).")
@click.option("--redis", help="Use RedisHuey at this URL instead of the SQLite queue (HONED_REDIS_URL).")
@click.option("--no-worker", is_flag=True, help="Serve the API only; run `honed worker` elsewhere.")
def serve(home: str | None, host: str | None, port: int | None, redis: str | None, no_worker: bool) -> None:
    """Start the HTTP API and a low-priority training worker."""
    import uvicorn

    from honed.app import create_app
    from honed.services import Services

    settings = _settings(home, host, port, redis)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not settings.is_loopback() and not settings.api_key:
        raise click.ClickException(f"refusing to bind {settings.host} without an API key: set HONED_API_KEY "
                                   "(or bind 127.0.0.1)")
    services = Services.start(settings)
    supervisor = None
    if not no_worker:
        supervisor = WorkerSupervisor(settings, services.requeue_unfinished)
        supervisor.start()
    try:
        uvicorn.run(create_app(settings, services), host=settings.host, port=settings.port, log_level="warning",
                    timeout_graceful_shutdown=5)
    finally:
        if supervisor is not None:
            supervisor.stop()


@main.command()
@click.option("--home", help="State directory (HONED_HOME).")
@click.option("--redis", help="RedisHuey URL (HONED_REDIS_URL).")
def worker(home: str | None, redis: str | None) -> None:
    """Run the job worker alone (normally started by `honed serve`)."""
    from honed.jobs.worker import worker_main

    worker_main(_settings(home, None, None, redis))


@main.command("prepare-model")
@click.argument("model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
@click.option("--home", help="State directory (HONED_HOME).")
def prepare_model(model: str, home: str | None) -> None:
    """Make MODEL ready offline (dequantise a bundled GGUF once); prints its directory."""
    from honed.errors import HonedError
    from honed.models.catalog import ModelCatalog

    settings = _settings(home, None, None, None)
    settings.ensure_dirs()
    started = time.monotonic()
    try:
        path = ModelCatalog(settings.models_dir).local_dir(model)
    except HonedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{path}  ({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":  # pragma: no cover
    main()
