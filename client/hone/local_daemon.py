"""Start a honed daemon on this machine in the background and wait until it answers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_up(base_url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{base_url}/healthz", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class LocalDaemon:
    """`honed serve` as a child process in its own session, logging to HONED_HOME/logs/daemon.log."""

    def __init__(self, home: Path, port: int, redis_url: str | None = None,
                 env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.home, self.port, self.redis_url = Path(home), port, redis_url
        self.extra_env = env or {}
        self.extra_args = args or []
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "LocalDaemon":
        (self.home / "logs").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HONED_HOME": str(self.home), "HONED_PORT": str(self.port), **self.extra_env}
        command = [sys.executable, "-m", "honed", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.redis_url:
            command += ["--redis", self.redis_url]
        command += self.extra_args
        log = open(self.home / "logs" / "daemon.log", "ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"honed exited with {self.process.returncode}; see {log.name}")
            if is_up(self.base_url, timeout=0.5):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"honed did not answer within {timeout:.0f} s; see {log.name}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the daemon, which stops its worker gracefully (a running job checkpoints and is requeued);
        SIGKILL it after `timeout` (its worker, in a process group of its own, then exits within a second)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL everything at once, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
