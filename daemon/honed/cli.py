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
from honed.errors import HonedError
from honed.jobs.lifecycle import WORKER_DEATHS_ALLOWED, announce_shutdown, requeue_running, worker_died
from honed.jobs.store import Store
from honed.native_runtime import apply_openmp, reexec_worker_if_needed, runtime_environment

log = logging.getLogger("honed")


def _settings(home: str | None, host: str | None, port: int | None, redis: str | None) -> Settings:
    try:
        return load_settings(home=home, host=host, port=port, redis_url=redis)
    except ValueError as exc:  # an environment variable that cannot be read: say which, not a traceback
        raise click.ClickException(str(exc)) from None


def _worker_env(settings: Settings) -> dict[str, str]:
    env = runtime_environment(os.environ, worker=True)  # spawned ready: its allocator preloaded
    env.update({"HONED_HOME": str(settings.home), "HONED_HOST": settings.host, "HONED_PORT": str(settings.port),
                "HONED_SUPERVISOR_PID": str(os.getpid())})
    if settings.redis_url:
        env["HONED_REDIS_URL"] = settings.redis_url
    return env


class WorkerSupervisor:
    """Keeps one worker process alive beside the API; a crashed worker is restarted and its job requeued."""

    def __init__(self, settings: Settings, store: Store, on_restart, stop_timeout: float = 60.0) -> None:
        self.settings = settings
        self.store = store
        self.on_restart = on_restart
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self._stopping = threading.Event()
        log_path = settings.logs_dir / "worker.log"
        self._log = open(log_path, "ab", buffering=0)

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="honed-worker-watch", daemon=True).start()

    def _spawn(self) -> None:
        # niced from its first instruction (not after its imports), so even loading torch stays in the background.
        # Its own process group: a Ctrl-C or a SIGTERM sent to the whole group must not reach it directly (huey
        # would stop it mid-step); it takes its stop order from stop() alone.
        nice = self.settings.worker_nice
        self.process = subprocess.Popen([sys.executable, "-m", "honed", "worker"], env=_worker_env(self.settings),
                                        stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        process_group=0, preexec_fn=lambda: os.nice(nice))
        log.info("worker started (pid %d, log %s)", self.process.pid, self._log.name)

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            if self.process is not None and self.process.poll() is not None:
                log.warning("worker exited with %s; restarting it", self.process.returncode)
                for job_id in worker_died(self.store, self.process.returncode):
                    log.warning("%s failed: the worker died under it %d times", job_id, WORKER_DEATHS_ALLOWED)
                self.on_restart()
                self._spawn()

    def stop(self) -> None:
        """Stop the worker without losing a finished step.

        SIGINT is huey's graceful stop: the consumer takes no new job and waits for the running one. That job goes
        back to queued, so the training loop sees it is no longer running before its next step, saves a checkpoint
        at the step it finished and returns; the next `honed serve` requeues it and it resumes from there. A worker
        still alive after `stop_timeout` seconds is killed (its job then resumes from its last periodic checkpoint).
        """
        self._stopping.set()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        stopped: set[str] = set()
        deadline = time.monotonic() + self.stop_timeout
        while True:
            stopped |= requeue_running(self.store)  # each round: the consumer may have claimed a job as it stopped
            try:
                process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
                    log.warning("worker did not stop within %.0f s; killing it", self.stop_timeout)
                    process.kill()
                    process.wait()
                    break
        announce_shutdown(self.store, stopped)


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """honed: a local fine-tuning daemon."""
    # Loaders' tqdm bars only clutter the daemon's and worker's logs. transformers and huggingface_hub read
    # this when they are first imported, so setting it here costs nothing (importing transformers would).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # How OpenMP threads wait (native_runtime.py): libgomp reads it when torch loads it, after this line in every
    # honed process and child.
    try:
        apply_openmp(os.environ, worker=ctx.invoked_subcommand == "worker")
        runtime_environment(os.environ, worker=True)  # a bad HONED_ALLOCATOR stops here, not at the worker's spawn
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--home", help="State directory (HONED_HOME, default ~/.honed).")
@click.option("--host", help="Address to bind (HONED_HOST, default 127.0.0.1).")
@click.option("--port", type=int, help="Port (HONED_PORT, default 8421).")
@click.option("--redis", help="Use RedisHuey at this URL instead of the SQLite queue (HONED_REDIS_URL).")
@click.option("--no-worker", is_flag=True, help="Serve the API only; run `honed worker` elsewhere.")
@click.option("--stop-timeout", type=float, default=60.0, show_default=True, envvar="HONED_STOP_TIMEOUT_S",
              help="Seconds a stopping daemon waits for the worker to finish its step and checkpoint "
                   "(HONED_STOP_TIMEOUT_S).")
@click.option("--trust-pickle", is_flag=True,
              help="Load models whose weights are only in pickle format (.bin/.pt), which can run code when loaded "
                   "(HONED_TRUST_PICKLE=1). Off: such models are refused; safetensors always load.")
@click.option("--trust-remote-code", is_flag=True,
              help="Run the Python code a model ships for its architecture (transformers' trust_remote_code; "
                   "HONED_TRUST_REMOTE_CODE=1). Off: such models are refused.")
def serve(home: str | None, host: str | None, port: int | None, redis: str | None, no_worker: bool,
          stop_timeout: float, trust_pickle: bool, trust_remote_code: bool) -> None:
    """Start the HTTP API and a low-priority training worker."""
    import uvicorn

    from honed.app import create_app
    from honed.services import Services

    # Every process of the daemon loads models (models/trust.py): the worker and the probes inherit these
    if trust_pickle:
        os.environ["HONED_TRUST_PICKLE"] = "1"
    if trust_remote_code:
        os.environ["HONED_TRUST_REMOTE_CODE"] = "1"
    settings = _settings(home, host, port, redis)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not settings.is_loopback() and not settings.api_key:
        raise click.ClickException(f"refusing to bind {settings.host} without an API key: set HONED_API_KEY "
                                   "(or bind 127.0.0.1)")
    # systemd and launchd stop a service with SIGTERM. uvicorn shuts the server down on it and then raises it
    # again; without a handler that would end the process before the `finally` stops the worker gracefully.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    services = Services.start(settings)
    supervisor = None
    if not no_worker:
        supervisor = WorkerSupervisor(settings, services.store, services.requeue_unfinished, stop_timeout)
    try:
        if supervisor is not None:
            supervisor.start()
        uvicorn.run(create_app(settings, services), host=settings.host, port=settings.port, log_level="warning",
                    timeout_graceful_shutdown=5)
    except SystemExit as stop:
        if stop.code not in (0, None):
            raise
    finally:
        if supervisor is not None:
            supervisor.stop()
    exit_at_once()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def exit_at_once() -> None:
    """End a process whose work is done and saved without tearing down its interpreter: with torch, transformers
    and peft imported, Python's own teardown takes ~2 s here, which a stopping daemon (and every restart)
    would wait for while holding nothing."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@main.command()
@click.option("--home", help="State directory (HONED_HOME).")
@click.option("--redis", help="RedisHuey URL (HONED_REDIS_URL).")
def worker(home: str | None, redis: str | None) -> None:
    """Run the job worker alone (normally started by `honed serve`)."""
    # SIGINT is how a stop is asked for; a worker started from a background shell inherits it ignored, and a
    # stop sent while it is still importing torch would then be lost until the supervisor gave up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reexec_worker_if_needed()  # its settings were checked in main()
    from honed.jobs.worker import worker_main

    worker_main(_settings(home, None, None, redis))
    exit_at_once()


@main.command("prepare-model")
@click.argument("model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
@click.option("--home", help="State directory (HONED_HOME).")
def prepare_model(model: str, home: str | None) -> None:
    """Make MODEL ready offline (dequantise a bundled GGUF once); prints its directory."""
    from honed.models.catalog import ModelCatalog

    settings = _settings(home, None, None, None)
    settings.ensure_dirs()
    started = time.monotonic()
    try:
        path = ModelCatalog(settings.models_dir).local_dir(model)
    except HonedError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{path}  ({time.monotonic() - started:.1f} s)")


def _service_options(command):
    command = click.option("--launchd", "manager", flag_value="launchd",
                           help="A launchd LaunchAgent (macOS; the default there).")(command)
    command = click.option("--systemd", "manager", flag_value="systemd",
                           help="A systemd user service (Linux; the default elsewhere).")(command)
    return click.option("--home", help="State directory the service uses (HONED_HOME, default ~/.honed).")(command)


def _service_paths(manager: str | None, home: str | None):
    from honed.install import ServicePaths

    manager = manager or ("launchd" if sys.platform == "darwin" else "systemd")
    return manager, ServicePaths.here(_settings(home, None, None, None).home)


@main.command()
@_service_options
@click.option("--no-start", is_flag=True, help="Write the service file only; do not load or start it.")
@click.option("--print", "print_only", is_flag=True, help="Print the service file; write nothing.")
def install(manager: str | None, home: str | None, no_start: bool, print_only: bool) -> None:
    """Run honed in the background at login: a launchd agent or a systemd user service, low priority."""
    from honed.install import install as install_service
    from honed.install import render

    try:
        manager, paths = _service_paths(manager, home)
        if print_only:
            click.echo(render(manager, paths), nl=False)
            return
        click.echo(install_service(manager, paths, start=not no_start))
    except HonedError as exc:
        raise click.ClickException(exc.message) from None


@main.command()
@_service_options
def uninstall(manager: str | None, home: str | None) -> None:
    """Stop the background service and remove its file."""
    from honed.install import uninstall as uninstall_service

    try:
        click.echo(uninstall_service(*_service_paths(manager, home)))
    except HonedError as exc:
        raise click.ClickException(exc.message) from None


class _DeployCommands(click.Group):
    """`honed models ...`: hone's deploy commands (list, alias, rollback, unalias), aimed at this machine's
    daemon, for whoever runs it. Loaded on use, so other honed commands do not import the client."""

    @staticmethod
    def _client_group() -> click.Group:
        from hone.deploy_cli import models

        return models

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._client_group().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._client_group().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> object:
        from hone.client import HoneError

        try:
            return super().invoke(ctx)
        except HoneError as exc:
            raise click.ClickException(exc.message) from None


@main.group("models", cls=_DeployCommands)
@click.option("--url", envvar="HONED_URL", default=None, help="The daemon (default: HONED_HOST:HONED_PORT).")
@click.pass_context
def models(ctx: click.Context, url: str | None) -> None:
    """The models this daemon serves, and aliases that deploy them."""
    ctx.obj = {"url": url or load_settings().base_url, "api_key": os.environ.get("HONED_API_KEY")}




if __name__ == "__main__":  # pragma: no cover
    main()
