"""The job queue: Huey carrying job ids only. SqliteHuey in HONED_HOME by default, RedisHuey when configured.

The queue is a doorbell, not the truth: the store holds every job and its status, so a lost or duplicated
message costs nothing (the worker claims a job with a compare-and-set on its status, the daemon re-enqueues
unfinished jobs when it starts, and the worker re-enqueues queued jobs whenever the queue is found empty).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

from honed.config import Settings

QUEUE_NAME = "honed"
log = logging.getLogger("honed.queue")


class JobConsumer(Consumer):
    """huey's consumer, stopping honed's way: SIGTERM (what systemd and launchd send) is as graceful as SIGINT,
    and `before_stop` first tells the running job to stop after its current step, so the worker exits once
    that step is checkpointed instead of killing it mid-step or finishing the whole job."""

    def __init__(self, huey: Huey, before_stop: Callable[[], None], **options) -> None:
        super().__init__(huey, **options)
        self._before_stop = before_stop

    def stop(self, graceful: bool = False) -> None:
        self._before_stop()
        super().stop(graceful=True)


class JobQueue:
    def __init__(self, settings: Settings, run_job: Callable[[str], None] | None = None) -> None:
        if settings.redis_url:
            self.huey: Huey = RedisHuey(QUEUE_NAME, url=settings.redis_url, results=False)
        else:
            self.huey = SqliteHuey(QUEUE_NAME, filename=str(settings.queue_path), results=False)
        # Both processes register the same task (huey names it by module and function); only the worker's
        # has a handler, the API process only enqueues.
        self._handler = run_job

        def run_job_task(job_id: str) -> None:
            if self._handler is None:
                raise RuntimeError("this process only enqueues jobs")
            self._handler(job_id)

        self._task = self.huey.task(retries=0, name="run_job")(run_job_task)
        self.backend = "redis" if settings.redis_url else "sqlite"

    def enqueue(self, job_id: str) -> None:
        """Ring for `job_id`. A queue server that cannot be reached is logged, not raised: the job is stored as
        queued by then, so it is not lost, and the worker's queue keeper rings again once the queue answers."""
        try:
            self._task(job_id)
        except Exception as exc:  # redis.ConnectionError and kin; huey does not wrap them
            log.warning("could not enqueue %s (%s: %s); it runs once the queue is back", job_id,
                        type(exc).__name__, exc)

    def depth(self) -> int:
        return self.huey.pending_count()

    def consumer(self, before_stop: Callable[[], None] = lambda: None) -> JobConsumer:
        """A consumer running one job at a time (training wants every core it can get)."""
        return JobConsumer(self.huey, before_stop, workers=1, worker_type="thread", periodic=False,
                           initial_delay=0.1, max_delay=0.5, check_worker_health=True)
