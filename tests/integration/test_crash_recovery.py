"""Crashes lose nothing: a worker or an API process killed with SIGKILL (no chance to save anything) mid-work.

SIGTERM's graceful path is tests/integration/test_graceful_shutdown.py; these are the ungraceful ones.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from honed.jobs.store import Store
from tests.conftest import SECRET_QA, chat_records, train_on_long_chats, worker_process, write_jsonl

CHECKPOINT_INTERVAL = 6
OPTIONS = {"lora_rank": 8, "learning_rate": 3e-3, "checkpoint_interval": CHECKPOINT_INTERVAL, "lora_dropout": 0.1,
           "estimate": False}


def step_losses(store: Store, job_id: str) -> list[tuple[int, int, float]]:
    """(event seq, step, training loss) of each step event, in the order they were written."""
    return [(e.seq, e.data["step"], e.data["train_loss"]) for e in store.events_of_type(job_id, "metrics")]


def test_a_worker_killed_mid_training_resumes_from_its_last_checkpoint_and_trains_as_if_never_stopped(
        daemon, tiny_model, tmp_path):
    """The restarted worker resumes with the optimizer, the learning-rate schedule, the data order and the
    dropout RNG where the checkpoint left them: every step after it gives the same loss as an uninterrupted run of
    the same job, and at most one checkpoint interval of steps is trained twice."""
    store = Store(daemon.home / "honed.db")
    data = write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA, repeat=3))
    with Client(daemon.base_url) as client:
        training = client.files.create(data)

        def create_job() -> str:
            return client.fine_tuning.jobs.create(
                model=str(tiny_model), training_file=training.id, seed=7,
                hyperparameters={"n_epochs": 12, "batch_size": 4}, honed=OPTIONS).id

        crashed = create_job()
        deadline = time.monotonic() + 120
        while not store.checkpoints(crashed) or len(step_losses(store, crashed)) < CHECKPOINT_INTERVAL + 2:
            assert time.monotonic() < deadline, "the job never got past its first checkpoint"
            time.sleep(0.02)
        worker = worker_process(daemon)
        worker.send_signal(signal.SIGKILL)
        killed_at = step_losses(store, crashed)[-1][1]
        assert killed_at < 36, "the job ended before the worker was killed; the test proves nothing"
        worker.wait(timeout=10)

        job = client.fine_tuning.jobs.wait(crashed, poll=0.5, timeout=180)
        assert job.status == "succeeded", job.error
        reference = client.fine_tuning.jobs.wait(create_job(), poll=0.5, timeout=180)
        assert reference.status == "succeeded", reference.error

    resumed = next(e for e in store.events_of_type(crashed, "log") if e.message.startswith("Resumed from checkpoint"))
    checkpoint_step = resumed.data["step"]
    assert killed_at - CHECKPOINT_INTERVAL <= checkpoint_step <= killed_at
    after = [(step, loss) for seq, step, loss in step_losses(store, crashed) if seq > resumed.seq]
    assert [step for step, _ in after] == list(range(checkpoint_step + 1, 37))
    uninterrupted = {step: loss for _, step, loss in step_losses(store, reference.id)}
    for step, loss in after:
        assert abs(loss - uninterrupted[step]) <= 1e-4 * max(1.0, abs(loss)), (step, loss, uninterrupted[step])
    assert job.honed["result"]["final_loss"] == pytest.approx(reference.honed["result"]["final_loss"], rel=1e-4)
    store.close()


def test_an_api_killed_during_uploads_and_job_creations_loses_nothing_it_answered_and_lists_nothing_half_written(
        honed_home, tiny_model, tmp_path):
    """Four clients upload files and create jobs as fast as they can; the API process is SIGKILLed under them.
    After a restart: every upload and job it answered is there once, every listed file is whole, no temp file
    is left, the database passes SQLite's integrity check, and the jobs run."""
    port = free_port()
    first = LocalDaemon(honed_home, port).start()
    answered_files: dict[str, bytes] = {}
    answered_jobs: set[str] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def client_loop(number: int) -> None:
        sequence = 0
        with httpx.Client(base_url=first.base_url, timeout=10) as http:
            while not stop.is_set():
                sequence += 1
                body = "".join(f'{{"messages": [{{"role": "user", "content": "q{number}-{sequence}-{i}"}}, '
                               f'{{"role": "assistant", "content": "{"a" * 2000}"}}]}}\n' for i in range(40))
                try:
                    uploaded = http.post("/v1/files", data={"purpose": "fine-tune"},
                                         files={"file": (f"c{number}-{sequence}.jsonl", body.encode())})
                    if uploaded.status_code != 200:
                        continue
                    with lock:
                        answered_files[uploaded.json()["id"]] = body.encode()
                    created = http.post("/v1/fine_tuning/jobs", json={
                        "model": str(tiny_model), "training_file": uploaded.json()["id"],
                        "honed": {"max_steps": 1, "estimate": False}})
                    if created.status_code == 200:
                        with lock:
                            answered_jobs.add(created.json()["id"])
                except httpx.HTTPError:
                    return  # the API is gone

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(answered_jobs) < 6:
        assert time.monotonic() < deadline, "no jobs were created"
        time.sleep(0.01)
    os.kill(first.process.pid, signal.SIGKILL)  # the API alone, mid-request; its worker follows it out
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    first.process.wait()

    second = LocalDaemon(honed_home, port).start()
    try:
        with Client(second.base_url) as client:
            listed = {f.id for f in client.files.list().data}
            job_ids = [j.id for j in client.fine_tuning.jobs.list(limit=100).data]
            assert set(answered_files) <= listed
            assert len(job_ids) == len(set(job_ids)) and answered_jobs <= set(job_ids)
            # none was left half-created: each is queued (or already running/done) and the oldest one runs through
            assert {client.fine_tuning.jobs.retrieve(j).status for j in job_ids} <= {"queued", "running", "succeeded"}
            assert client.fine_tuning.jobs.wait(job_ids[-1], poll=0.5, timeout=120).status == "succeeded"
    finally:
        second.stop()
    with sqlite3.connect(honed_home / "honed.db") as db:
        rows = {file_id: (path, size) for file_id, path, size in db.execute("SELECT id, path, bytes FROM files")}
    assert set(rows) == listed
    for file_id, (path, size) in rows.items():  # whole, and the bytes that were sent
        assert (honed_home / path).stat().st_size == size
        if file_id in answered_files:
            assert (honed_home / path).read_bytes() == answered_files[file_id]
    assert not list((honed_home / "files").glob(".upload-*")), "temp files of cut-off uploads were left behind"
    with sqlite3.connect(honed_home / "honed.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server that keeps nothing on disk: restarted, it has forgotten every queued message."""
    process = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)


def test_a_daemons_worker_takes_no_job_while_a_previous_worker_still_holds_the_home(honed_home, tiny_model, tmp_path):
    """After `honed serve` is killed, its orphaned worker needs up to a second to notice and exit; a daemon started
    again at once must not let its own worker train the job the orphan may still be training. The orphan is played
    here by this test holding HONED_HOME/worker.lock as a worker does (a real one cannot be kept lingering: freezing
    it with SIGSTOP does not work, as the kernel wakes a stopped process whose process group is orphaned)."""
    import fcntl

    lock = open(honed_home / "worker.lock", "a+")
    fcntl.flock(lock, fcntl.LOCK_EX)
    lock.write("4242")
    lock.flush()
    daemon = LocalDaemon(honed_home, free_port()).start()
    try:
        with Client(daemon.base_url) as client:
            training = client.files.create(write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA)))
            job_id = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                                    hyperparameters={"n_epochs": 1}, honed=OPTIONS).id
            log = honed_home / "logs" / "worker.log"
            deadline = time.monotonic() + 60
            while "waiting for the previous worker (pid 4242) to exit" not in log.read_text():
                assert time.monotonic() < deadline, "the worker never got as far as the lock"
                time.sleep(0.1)
            time.sleep(2.0)  # long enough for a worker that did not wait to claim the job
            assert client.fine_tuning.jobs.retrieve(job_id).status == "queued"
            lock.close()  # the previous worker exits
            assert client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=120).status == "succeeded"
        assert (honed_home / "worker.lock").read_text() == str(worker_process(daemon).pid)
    finally:
        lock.close()
        daemon.stop()


def test_a_second_worker_on_one_home_refuses_and_names_the_first(daemon):
    """`honed worker` started by hand beside a running daemon's worker would race it for jobs and cores."""
    first = worker_process(daemon).pid
    deadline = time.monotonic() + 60
    lock = daemon.home / "worker.lock"
    while not lock.is_file() or lock.read_text().strip() != str(first):  # it has taken the home's lock
        assert time.monotonic() < deadline, "the daemon's worker never took its home's lock"
        time.sleep(0.1)
    env = {k: v for k, v in os.environ.items() if k != "HONED_SUPERVISOR_PID"}
    result = subprocess.run([sys.executable, "-m", "honed", "worker"], env={**env, "HONED_HOME": str(daemon.home)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"another honed worker (pid {first}) is running on {daemon.home}" in result.stderr
    assert "Traceback" not in result.stderr


def test_redis_restarted_mid_job_loses_no_job(honed_home, tiny_model, tmp_path):
    """RedisHuey mode. Redis dies under a training job and comes back empty; a job created while it is down is
    stored and answered anyway. Both jobs finish: the store, not Redis, says what is queued."""
    port = free_port()
    redis = start_redis(port)
    daemon = LocalDaemon(honed_home, free_port(), redis_url=f"redis://127.0.0.1:{port}/0").start()
    store = Store(honed_home / "honed.db")
    try:
        with Client(daemon.base_url) as client:
            training = client.files.create(write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA)))

            def create_job() -> str:
                return client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                                      hyperparameters={"n_epochs": 30, "batch_size": 4},
                                                      honed=OPTIONS).id

            running = create_job()
            deadline = time.monotonic() + 120
            while len(step_losses(store, running)) < 3:
                assert time.monotonic() < deadline, "the job did not start on the Redis queue"
                time.sleep(0.05)
            redis.kill()
            redis.wait()
            created_while_down = create_job()
            assert client.fine_tuning.jobs.retrieve(created_while_down).status == "queued"
            assert client.fine_tuning.jobs.retrieve(running).status == "running"
            redis = start_redis(port)
            for job_id in (running, created_while_down):
                job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=180)
                assert job.status == "succeeded", job.error
        steps = [step for _, step, _ in step_losses(store, running)]
        assert steps == list(range(1, 31)), "the running job was interrupted by Redis going away"
    finally:
        daemon.stop()
        redis.kill()
        redis.wait()
        store.close()


def test_a_job_the_worker_keeps_dying_under_fails_with_the_reason_instead_of_restarting_forever(
        daemon, tiny_model, tmp_path):
    """The kernel's out-of-memory killer sends SIGKILL; a job that brings it on would be requeued and kill the
    next worker too. After the second death under the same job, the job fails saying so, and the next job runs."""
    store = Store(daemon.home / "honed.db")
    with Client(daemon.base_url) as client:
        training = client.files.create(write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA, repeat=25)))
        doomed = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                                hyperparameters={"n_epochs": 100, "batch_size": 4}, honed=OPTIONS).id
        last_death = 0
        for death in (1, 2):
            deadline = time.monotonic() + 120
            while not [seq for seq, _, _ in step_losses(store, doomed) if seq > last_death]:
                assert time.monotonic() < deadline, f"the job was not training before death {death}"
                time.sleep(0.05)
            worker = worker_process(daemon)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            while not (noted := [e.seq for e in store.events_of_type(doomed, "warning")
                                 if e.data.get("kind") == "worker_died"][death - 1:]):
                assert time.monotonic() < deadline, f"death {death} was not noted on the job"
                time.sleep(0.05)
            last_death = noted[0]
        job = client.fine_tuning.jobs.wait(doomed, poll=0.5, timeout=60)
        assert job.status == "failed"
        assert job.error.code == "worker_died"
        assert job.error.message.startswith("the worker process was killed by signal 9 2 times while running this "
                                            "job; SIGKILL is most often the system running out of memory")
        assert "QLoRA" in job.error.message and "batch_size" in job.error.message
        after = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                               honed={**OPTIONS, "max_steps": 2})
        assert client.fine_tuning.jobs.wait(after.id, poll=0.5, timeout=120).status == "succeeded"
    store.close()


def test_running_out_of_memory_fails_the_job_with_the_reason_and_what_to_try(honed_home, tiny_model, tmp_path):
    """With the worker's memory capped (HONED_WORKER_MEMORY_MB), a batch far too big for it fails the job at its
    first step with an out-of-memory reason and advice; the worker lives on and the next job trains."""
    daemon = LocalDaemon(honed_home, free_port(), env={"HONED_WORKER_MEMORY_MB": "3000"}).start()
    try:
        with Client(daemon.base_url) as client:
            job = train_on_long_chats(client, tiny_model, tmp_path, rows=32, batch_size=32)
            assert job.status == "failed"
            assert job.error.code == "out_of_memory", job.error
            assert job.error.message.startswith("out of memory (")
            assert "try a smaller batch_size or honed.max_seq_len" in job.error.message
            small = client.files.create(write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA)))
            after = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=small.id,
                                                   hyperparameters={"n_epochs": 1, "batch_size": 4}, honed=OPTIONS)
            after = client.fine_tuning.jobs.wait(after.id, poll=0.5, timeout=120)
            assert after.status == "succeeded", after.error
    finally:
        daemon.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs to be HONED_HOME: a disk that can really fill up."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)], check=True)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_the_job_clearly_and_corrupts_nothing(small_disk, tiny_model, tmp_path):
    """The disk fills while a job trains: the next checkpoint cannot be written. The job fails saying the disk is
    full, its earlier checkpoint is whole, nothing half-written is left, the store passes SQLite's integrity
    check, and once space is freed the daemon trains again."""
    home = small_disk / "home"
    home.mkdir()
    daemon = LocalDaemon(home, free_port()).start()
    store = Store(home / "honed.db")
    filler = small_disk / "filler"
    try:
        with Client(daemon.base_url) as client:
            training = client.files.create(write_jsonl(tmp_path / "secret.jsonl", chat_records(SECRET_QA, repeat=25)))
            job_id = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                                    hyperparameters={"n_epochs": 100, "batch_size": 4},
                                                    honed=OPTIONS).id
            deadline = time.monotonic() + 120
            while not store.checkpoints(job_id):
                assert time.monotonic() < deadline, "no first checkpoint"
                time.sleep(0.05)
            first = home / "jobs" / job_id / "checkpoints" / f"step-{CHECKPOINT_INTERVAL}"
            before = {p.name: p.read_bytes() for p in first.iterdir()}
            checkpoint_bytes = sum(len(b) for b in before.values())
            # leave room for the store's small writes, not for another checkpoint
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            subprocess.run(["fallocate", "-l", str(free - checkpoint_bytes // 2), str(filler)], check=True)

            job = client.fine_tuning.jobs.wait(job_id, poll=0.5, timeout=120)
            assert job.status == "failed"
            assert job.error.code == "disk_full", job.error
            assert job.error.message.startswith("the disk holding HONED_HOME is full")
        assert httpx.get(f"{daemon.base_url}/healthz").status_code == 200
        assert {p.name: p.read_bytes() for p in first.iterdir()} == before
        assert not list((home / "jobs" / job_id / "checkpoints").glob(".*partial"))
        with sqlite3.connect(home / "honed.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

        filler.unlink()
        with Client(daemon.base_url) as client:
            after = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                                   honed={**OPTIONS, "max_steps": 2})
            assert client.fine_tuning.jobs.wait(after.id, poll=0.5, timeout=120).status == "succeeded"
    finally:
        daemon.stop()
        store.close()
