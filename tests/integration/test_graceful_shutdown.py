"""Stopping the daemon the way systemd and launchd do (SIGTERM to `honed serve`) loses no training step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from honed.jobs.store import Store
from tests.conftest import worker_process
from tests.integration.test_fine_tune_flow import run_secret_job


def wait_for_steps(store: Store, job_id: str, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while len(store.events_of_type(job_id, "metrics")) < count:
        assert time.monotonic() < deadline, f"fewer than {count} training steps were reported"
        time.sleep(0.1)


def test_sigterm_finishes_the_step_checkpoints_it_and_the_job_resumes_there_after_restart(honed_home, tiny_model,
                                                                                          tmp_path):
    port = free_port()
    first = LocalDaemon(honed_home, port).start()
    store = Store(honed_home / "honed.db")
    try:
        with Client(first.base_url) as client:
            # no periodic checkpoint: the only one before the restart is the one the shutdown writes
            job_id = run_secret_job(client, tiny_model, tmp_path, epochs=15, checkpoint_interval=1000)
        wait_for_steps(store, job_id, 3)
        worker = worker_process(first)

        os.kill(first.process.pid, signal.SIGTERM)  # the API process alone, as systemd (KillMode=mixed) and launchd do
        try:
            assert first.process.wait(timeout=30) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError("honed serve did not exit within 30 s of SIGTERM") from None
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE  # it stopped its worker

        job = store.get_job(job_id)
        assert job.status == "queued", job.error  # neither failed nor cancelled: ready to resume
        last_step = store.events_of_type(job_id, "metrics")[-1].data["step"]
        assert [c.step for c in store.checkpoints(job_id)] == [last_step]
        assert (honed_home / "jobs" / job_id / "checkpoints" / f"step-{last_step}").is_dir()
        notice = store.latest_event(job_id, "log")
        assert notice.message == (f"Daemon shutting down: checkpoint at step {last_step}; "
                                  "the job resumes when honed starts again")
    finally:
        first.stop()

    second = LocalDaemon(honed_home, port).start()
    try:
        with Client(second.base_url) as client:
            job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=120)
        assert job.status == "succeeded", job.error
        after_restart = [e.data["step"] for e in store.events_of_type(job_id, "metrics") if e.seq > notice.seq]
        assert after_restart[0] == last_step + 1  # no step redone, none skipped
        assert after_restart == list(range(last_step + 1, after_restart[-1] + 1))
        assert any(e.message == f"Resumed from checkpoint at step {last_step}"
                   for e in store.events_of_type(job_id, "log"))
    finally:
        second.stop()
        store.close()


def test_a_worker_run_on_its_own_stops_as_gracefully_and_the_next_worker_resumes(honed_home, tiny_model, tmp_path):
    """`honed worker` as its own service (API elsewhere): SIGTERM requeues its job after a checkpointed step."""
    api = LocalDaemon(honed_home, free_port(), args=["--no-worker"]).start()
    env = {**os.environ, "HONED_HOME": str(honed_home)}
    env.pop("HONED_SUPERVISOR_PID", None)
    log = open(honed_home / "logs" / "worker.log", "ab")

    def start_worker() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "honed", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)

    store = Store(honed_home / "honed.db")
    worker = start_worker()
    try:
        with Client(api.base_url) as client:
            job_id = run_secret_job(client, tiny_model, tmp_path, epochs=15, checkpoint_interval=1000)
            wait_for_steps(store, job_id, 3)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
            last_step = store.events_of_type(job_id, "metrics")[-1].data["step"]
            assert store.get_job(job_id).status == "queued"
            assert [c.step for c in store.checkpoints(job_id)] == [last_step]
            assert store.latest_event(job_id, "log").message.startswith(f"Daemon shutting down: checkpoint at step {last_step}")
            worker = start_worker()
            job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=120)
        assert job.status == "succeeded", job.error
        steps = [e.data["step"] for e in store.events_of_type(job_id, "metrics")]
        assert steps == list(range(1, steps[-1] + 1))  # every step once: none redone, none skipped
    finally:
        worker.kill()
        worker.wait()
        api.stop()
        store.close()
