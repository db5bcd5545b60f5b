"""The two moves every job runner makes: claim a queued job, and end one failed with a readable reason."""

from __future__ import annotations

import logging
import traceback

from honed.errors import HonedError, IllegalTransition
from honed.jobs.store import JobRow, Store

log = logging.getLogger("honed.worker")


def claim(store: Store, job_id: str, message: str) -> JobRow | None:
    """queued -> running as a compare-and-set; None when the job is no longer queued (cancelled, paused, or
    claimed by another worker from a duplicated queue message)."""
    try:
        return store.transition(job_id, "running", expect={"queued"}, message=message)
    except IllegalTransition as exc:
        log.info("skipping %s: %s", job_id, exc.message)
        return None


def fail(store: Store, job_id: str, exc: BaseException, code: str, what: str) -> None:
    """Record why a job broke (its message for honed's errors, type and text otherwise) and end it failed."""
    log.error("%s failed:\n%s", job_id, traceback.format_exc())
    message = exc.message if isinstance(exc, HonedError) else f"{type(exc).__name__}: {exc}"
    try:
        store.transition(job_id, "failed", message=f"{what} failed: {message}",
                         error={"code": code, "message": message, "param": None})
    except IllegalTransition:  # it was cancelled meanwhile: the cancel stands
        pass


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
