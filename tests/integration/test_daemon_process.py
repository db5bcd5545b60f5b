"""The daemon as a process: low-priority worker, loopback by default, API key when asked."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import psutil

from hone.local_daemon import LocalDaemon, free_port


def test_the_worker_runs_at_low_os_priority(daemon):
    children = psutil.Process(daemon.process.pid).children(recursive=True)
    workers = [p for p in children if "worker" in p.cmdline()]
    assert len(workers) == 1
    assert workers[0].nice() >= 10
    assert psutil.Process(daemon.process.pid).nice() < workers[0].nice()  # the API stays responsive


def test_a_worker_does_not_outlive_a_killed_daemon(daemon):
    serve = psutil.Process(daemon.process.pid)
    worker = next(p for p in serve.children(recursive=True) if "worker" in p.cmdline())
    serve.kill()  # SIGKILL the API alone: it cannot stop its worker, so the worker must notice by itself
    serve.wait(timeout=10)
    psutil.wait_procs([worker], timeout=10)
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_binding_beyond_loopback_needs_an_api_key(honed_home):
    env = {k: v for k, v in os.environ.items() if k != "HONED_API_KEY"}
    result = subprocess.run([sys.executable, "-m", "honed", "serve", "--host", "0.0.0.0", "--port",
                             str(free_port()), "--home", str(honed_home)], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode != 0
    assert "refusing to bind 0.0.0.0 without an API key: set HONED_API_KEY" in result.stderr


def test_with_an_api_key_requests_without_it_get_401(honed_home):
    daemon = LocalDaemon(honed_home, free_port(), env={"HONED_API_KEY": "s3cret"}).start()
    try:
        with httpx.Client(base_url=daemon.base_url) as raw:
            assert raw.get("/healthz").status_code == 200  # liveness stays open for supervisors
            denied = raw.get("/v1/models")
            assert denied.status_code == 401
            assert denied.json()["error"]["type"] == "authentication_error"
            assert raw.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert raw.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        daemon.stop()
