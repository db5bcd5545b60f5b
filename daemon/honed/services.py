"""The daemon's long-lived parts, built once at startup and shared by every request handler."""

from __future__ import annotations

from dataclasses import dataclass

from honed.config import UPLOAD_TEMP_PREFIX, Settings
from honed.jobs.queue import JobQueue
from honed.jobs.store import JobRow, Store
from honed.models.catalog import ModelCatalog
from honed.serving.registry import ModelRegistry


@dataclass
class Services:
    settings: Settings
    store: Store
    queue: JobQueue
    catalog: ModelCatalog
    registry: ModelRegistry

    @classmethod
    def start(cls, settings: Settings) -> "Services":
        settings.ensure_dirs()
        # An upload spool left here was cut off by a killed API process (one API serves a HONED_HOME); no row names it.
        for partial in settings.files_dir.glob(f"{UPLOAD_TEMP_PREFIX}*"):
            partial.unlink(missing_ok=True)
        store = Store(settings.db_path)
        return cls(settings, store, JobQueue(settings), ModelCatalog(settings.models_dir),
                   ModelRegistry(settings, store))

    def file_bytes(self, file_id: str) -> bytes:
        """The content of an uploaded file (NotFound for an unknown id)."""
        return (self.settings.home / self.store.get_file(file_id).path).read_bytes()

    def submit(self, job_id: str, spec: dict, created: str, queued: str) -> JobRow:
        """Store a validated job, mark it queued and ring the queue: how every kind of job starts."""
        row = self.store.create_job(job_id, spec, message=created, queued=queued)
        self.queue.enqueue(job_id)
        return row

    def requeue_unfinished(self) -> list[str]:
        """Put jobs a dead worker left behind back on the queue; they resume from their last checkpoint.

        Queued jobs are enqueued again too (the queue may be a fresh Redis): a duplicate message is harmless,
        because the worker claims a job only while it is still queued.
        """
        requeued = []
        for job in self.store.list_jobs(limit=10_000, statuses={"running", "queued"}):
            if job.status == "running":
                self.store.transition(job.id, "queued", expect={"running"},
                                      message="Requeued: the daemon restarted while this job was running")
            self.queue.enqueue(job.id)
            requeued.append(job.id)
        return requeued
