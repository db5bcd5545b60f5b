"""The moves every job runner makes: claim a queued job, end one failed with a readable reason, and keep the queue
and the store agreeing about which jobs wait."""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
import traceback
from pathlib import Path
from typing import IO

from honed.errors import HonedError, IllegalTransition
from honed.jobs.queue import JobQueue
from honed.jobs.store import JobRow, Store

log = logging.getLogger("honed.worker")


def supervisor_gone() -> bool:
    """Whether this worker was started by a `honed serve` that has died (it is then an orphan, about to exit)."""
    supervisor = os.environ.get("HONED_SUPERVISOR_PID", "")
    return supervisor.isdigit() and os.getppid() != int(supervisor)


WORKER_LOCK = "worker.lock"


class WorkerAlreadyRunning(SystemExit):
    """A second worker started on purpose on one HONED_HOME: it would race the first for jobs and cores."""


def hold_worker_lock(home: Path) -> IO[str]:
    """One worker per HONED_HOME: an exclusive lock on HONED_HOME/worker.lock, held while the returned file is
    open (the kernel drops it when the process dies, however it dies).

    A worker started by `honed serve` waits for the lock: after a daemon is killed, its orphaned worker needs up to a
    second to notice and exit, and until then the next daemon's worker must not take a job (the job the orphan was
    running has been requeued; the orphan, seeing that, stops at its step's end). A worker started on its own
    (systemd, launchd, a terminal) has no orphan to wait for, so another holding the lock is a mistake to report."""
    handle = open(home / WORKER_LOCK, "a+")
    waiting = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            if not os.environ.get("HONED_SUPERVISOR_PID"):
                handle.close()
                raise WorkerAlreadyRunning(f"another honed worker (pid {holder}) is running on {home}; stop it "
                                           "first (one worker per HONED_HOME)") from None
            if not waiting:
                log.warning("waiting for the previous worker (pid %s) to exit before taking jobs", holder)
                waiting = True
            time.sleep(0.1)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def claim(store: Store, job_id: str, message: str) -> JobRow | None:
    """queued -> running as a compare-and-set; None when the job is no longer queued (cancelled, paused, or
    claimed by another worker from a duplicated queue message), or when this worker is an orphan: a job it took
    would be left `running` by its exit, after the next daemon had already requeued what it found."""
    if supervisor_gone():
        log.info("not starting %s: this worker's daemon is gone", job_id)
        return None
    try:
        return store.transition(job_id, "running", expect={"queued"}, message=message)
    except IllegalTransition as exc:
        log.info("skipping %s: %s", job_id, exc.message)
        return None


# What CPU, CUDA and MPS allocators say when memory runs out (torch raises a plain RuntimeError on the CPU).
OUT_OF_MEMORY = ("can't allocate memory", "out of memory", "not enough memory", "cannot allocate memory")
MEMORY_ADVICE = ("try a smaller batch_size or honed.max_seq_len (honed.gradient_accumulation keeps the effective "
                 "batch), honed.gradient_checkpointing, or QLoRA (honed.adapter \"qlora\")")


def failure(exc: BaseException, code: str) -> tuple[str, str]:
    """(error code, message) for a job that broke with `exc`: honed's own message, the two failures a person can
    act on (a full disk, memory running out) said with what to do, and the type and text of anything else."""
    if isinstance(exc, HonedError):
        return code, exc.message
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "database or disk is full" in str(exc):
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        return "disk_full", (f"the disk holding HONED_HOME is full{where}: free some space and run the job again "
                             "(checkpoints written before this one are intact)")
    text = str(exc)
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or (
            isinstance(exc, RuntimeError) and any(sign in text.lower() for sign in OUT_OF_MEMORY)):
        return "out_of_memory", f"out of memory ({type(exc).__name__}: {text[:300]}); {MEMORY_ADVICE}"
    return code, f"{type(exc).__name__}: {exc}"


def fail(store: Store, job_id: str, exc: BaseException, code: str, what: str) -> None:
    """Record why a job broke (see failure) and end it failed."""
    log.error("%s failed:\n%s", job_id, traceback.format_exc())
    code, message = failure(exc, code)
    try:
        store.transition(job_id, "failed", message=f"{what} failed: {message}",
                         error={"code": code, "message": message, "param": None})
    except IllegalTransition:  # it was cancelled meanwhile: the cancel stands
        pass


WORKER_DEATHS_ALLOWED = 2
"""A job the worker process died under this many times fails instead of being requeued again: a job that gets the
worker killed (the kernel's out-of-memory killer sends SIGKILL) would otherwise restart it forever."""


def worker_died(store: Store, returncode: int) -> list[str]:
    """Note on each running job that the worker died under it; fail those it has now died under
    WORKER_DEATHS_ALLOWED times (the supervisor then requeues the others). Returns the failed jobs' ids."""
    how = f"killed by signal {-returncode}" if returncode < 0 else f"exited with status {returncode}"
    failed = []
    for job in store.list_jobs(limit=10_000, statuses={"running"}):
        store.append_event(job.id, "warning", f"The worker process {how} while running this job",
                           {"kind": "worker_died", "returncode": returncode}, "warn")
        deaths = sum(1 for e in store.events_of_type(job.id, "warning") if (e.data or {}).get("kind") == "worker_died")
        if deaths < WORKER_DEATHS_ALLOWED:
            continue
        likely = "; SIGKILL is most often the system running out of memory" if returncode == -9 else ""
        message = (f"the worker process was {how} {deaths} times while running this job{likely}. If memory is "
                   f"the cause, {MEMORY_ADVICE}")
        try:
            store.transition(job.id, "failed", expect={"running"}, message=f"Job failed: {message}",
                             error={"code": "worker_died", "message": message, "param": None})
            failed.append(job.id)
        except IllegalTransition:
            pass
    return failed


def requeue_running(store: Store) -> set[str]:
    """Put running jobs back to queued (one worker per store runs them all), so each training loop sees its job
    is no longer running before its next step, checkpoints the step it finished, and returns. Their ids."""
    requeued = set()
    for job in store.list_jobs(limit=10_000, statuses={"running"}):
        try:
            store.transition(job.id, "queued", expect={"running"},
                             message="Daemon shutting down: the job stops after its current step")
            requeued.add(job.id)
        except IllegalTransition:  # it ended or was paused meanwhile
            pass
    return requeued


def announce_shutdown(store: Store, job_ids: set[str]) -> None:
    """Say where each stopped job will resume."""
    for job_id in sorted(job_ids):
        checkpoints = store.checkpoints(job_id)
        step = checkpoints[0].step if checkpoints else None
        where = f"checkpoint at step {step}" if step is not None else "no checkpoint yet"
        store.append_event(job_id, "log", f"Daemon shutting down: {where}; the job resumes when honed starts again",
                           {"reason": "shutdown", "step": step})


def enqueue_lost(store: Store, queue: JobQueue) -> list[str]:
    """Enqueue again the jobs the store says are queued when the queue holds no message at all: a Redis that
    restarted without its data (or a queue file that was removed) lost them. The store is the truth; a message
    too many is harmless, since a job is claimed only while it is queued."""
    if queue.depth():
        return []
    lost = [job.id for job in reversed(store.list_jobs(limit=10_000, statuses={"queued"}))]
    for job_id in lost:
        queue.enqueue(job_id)
    return lost


def keep_queue(store: Store, queue: JobQueue, stopping: threading.Event, every: float = 5.0) -> None:
    """A thread that runs enqueue_lost every `every` seconds until `stopping` is set (a stopping worker's job is
    queued on purpose, for the next start); a queue that cannot be reached is tried again next time."""

    def keep() -> None:
        while not stopping.wait(every):
            try:
                lost = enqueue_lost(store, queue)
            except Exception as exc:  # the queue's server is down: the next round tries again
                log.warning("cannot check the job queue (%s: %s)", type(exc).__name__, exc)
                continue
            if lost:
                log.warning("the queue had lost %d queued job(s); enqueued again: %s", len(lost), ", ".join(lost))

    threading.Thread(target=keep, name="queue-keeper", daemon=True).start()
