"""The daemon as a process: low-priority worker, loopback by default, API key when asked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from honed.native_runtime import WORKER_SPIN_COUNT, jemalloc_library
from tests.conftest import train_on_long_chats, worker_process


def _on_jemalloc(pid: int) -> bool:
    return "libjemalloc" in Path(f"/proc/{pid}/maps").read_text()


needs_jemalloc = pytest.mark.skipif(jemalloc_library() is None, reason="libjemalloc is not installed "
                                    "(apt install libjemalloc2; .ci/run installs it)")


def test_the_worker_runs_at_low_os_priority(daemon):
    children = psutil.Process(daemon.process.pid).children(recursive=True)
    workers = [p for p in children if "worker" in p.cmdline()]
    assert len(workers) == 1
    assert workers[0].nice() >= 10
    assert psutil.Process(daemon.process.pid).nice() < workers[0].nice()  # the API stays responsive


@needs_jemalloc
def test_the_worker_runs_on_jemalloc_and_spins_briefly_while_waiting(honed_home):
    daemon = LocalDaemon(honed_home, free_port(), env={"HONED_OMP_WAIT_POLICY": "auto"}).start()  # the default
    try:
        worker = worker_process(daemon)
        assert _on_jemalloc(worker.pid)
        assert not _on_jemalloc(daemon.process.pid)  # the API keeps the system allocator
        env = worker.environ()
        assert env["GOMP_SPINCOUNT"] == WORKER_SPIN_COUNT and "OMP_WAIT_POLICY" not in env
    finally:
        daemon.stop()


def test_the_worker_can_keep_the_system_allocator_and_sleep_while_waiting(honed_home):
    daemon = LocalDaemon(honed_home, free_port(), env={"HONED_ALLOCATOR": "system",
                                                      "HONED_OMP_WAIT_POLICY": "passive"}).start()
    try:
        worker = worker_process(daemon)
        assert not _on_jemalloc(worker.pid)
        env = worker.environ()
        assert env["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in env
    finally:
        daemon.stop()


@needs_jemalloc
def test_a_worker_started_by_hand_starts_itself_again_on_jemalloc(honed_home):
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "HONED_SUPERVISOR_PID")}
    env["HONED_OMP_WAIT_POLICY"] = "auto"
    worker = subprocess.Popen([sys.executable, "-m", "honed", "worker", "--home", str(honed_home)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not _on_jemalloc(worker.pid):  # the same process, after its exec
            assert worker.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        assert psutil.Process(worker.pid).environ()["GOMP_SPINCOUNT"] == WORKER_SPIN_COUNT
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@pytest.mark.parametrize("variable", ["HONED_ALLOCATOR", "HONED_OMP_WAIT_POLICY"])
def test_an_unknown_runtime_choice_stops_serve_with_one_line(honed_home, variable):
    result = subprocess.run([sys.executable, "-m", "honed", "serve", "--port", str(free_port()), "--home",
                             str(honed_home)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, variable: "fastest"})
    assert result.returncode != 0
    assert f"{variable}='fastest' is not one of" in result.stderr.strip().splitlines()[-1]


def test_a_worker_does_not_outlive_a_killed_daemon(daemon):
    serve = psutil.Process(daemon.process.pid)
    worker = worker_process(daemon)
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


def test_an_idle_worker_gives_back_what_its_last_job_used(honed_home, tiny_model, tmp_path):
    """Between jobs the worker holds about what its libraries take, not the finished job's peak: glibc kept a
    SmolLM2 job's 3.7 GB resident until the next job started. (jemalloc, the default where installed, gives
    freed pages back by itself within seconds; glibc, the allocator everywhere else, never does.)"""
    daemon = LocalDaemon(honed_home, free_port(), env={"HONED_ALLOCATOR": "system"}).start()
    try:
        with Client(daemon.base_url) as client:
            job = train_on_long_chats(client, tiny_model, tmp_path, rows=4, batch_size=4, max_steps=1)
            assert job.status == "succeeded", job.error
            peak = max(e.data["memory_peak"] for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data
                       if e.kind == "metrics" and "memory_peak" in (e.data or {}))
        worker = worker_process(daemon)
        deadline = time.monotonic() + 10  # the job is marked succeeded just before the worker lets go
        while (resident := worker.memory_info().rss) >= peak / 2 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert resident < peak / 2, f"the idle worker holds {resident >> 20} MB; the job peaked at {peak >> 20} MB"
    finally:
        daemon.stop()
