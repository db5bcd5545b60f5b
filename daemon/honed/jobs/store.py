"""The store: files, jobs, events and checkpoints in one SQLite database (WAL).

It is the only writer of job status (`transition`), and every status change is also an event, written in the
same transaction, so the event stream can never disagree with the job row. Every path stored here is relative
to HONED_HOME, so the home can move (or sit on a shared filesystem) without rewriting rows.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from honed.errors import IllegalTransition, NotFound

# Which status may follow which. `running -> queued` is the requeue of a job whose worker died;
# `paused -> queued` is resume.
LEGAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "validating_files": frozenset({"queued", "failed", "cancelled"}),
    "queued": frozenset({"running", "failed", "cancelled", "paused"}),
    "running": frozenset({"succeeded", "failed", "cancelled", "paused", "queued"}),
    "paused": frozenset({"queued", "cancelled", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    examples INTEGER NOT NULL DEFAULT 0,
    format TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    spec TEXT NOT NULL,
    fine_tuned_model TEXT UNIQUE,
    trained_tokens INTEGER,
    error TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    estimated_finish INTEGER,
    result TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    type TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    path TEXT NOT NULL,
    metrics TEXT NOT NULL,
    UNIQUE (job_id, step)
);
CREATE TABLE IF NOT EXISTS eval_results (
    seq INTEGER NOT NULL,
    job_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    suite TEXT NOT NULL,
    model TEXT,
    step INTEGER,
    metric TEXT NOT NULL,
    value REAL,
    low REAL,
    high REAL,
    PRIMARY KEY (seq, metric)
);
CREATE INDEX IF NOT EXISTS eval_results_by_job ON eval_results (job_id, seq);
CREATE TABLE IF NOT EXISTS preferences (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS aliases_by_name ON aliases (name);
"""


class FileRow(msgspec.Struct, frozen=True):
    id: str
    filename: str
    purpose: str
    bytes: int
    sha256: str
    path: str
    created_at: int
    examples: int
    format: dict[str, Any] | None = None
    """How the file is read (a DataFormat, resolved at upload); None: OpenAI chat JSONL."""


class JobRow(msgspec.Struct, frozen=True):
    id: str
    created_at: int
    status: str
    spec: dict[str, Any]
    fine_tuned_model: str | None
    trained_tokens: int | None
    error: dict[str, Any] | None
    started_at: int | None
    finished_at: int | None
    estimated_finish: int | None
    result: dict[str, Any] | None


class EventRow(msgspec.Struct, frozen=True):
    seq: int
    job_id: str
    created_at: float
    type: str
    level: str
    message: str
    data: dict[str, Any] | None


class EvalResultRow(msgspec.Struct, frozen=True):
    """One metric of one evaluation: a job's baseline/validation/final measurement or an eval run's model."""

    job_id: str
    phase: str
    suite: str
    metric: str
    value: float | None
    low: float | None = None
    high: float | None = None
    model: str | None = None
    step: int | None = None
    seq: int = 0
    """The seq of the event that announced it (filled in by the store)."""


class AliasRow(msgspec.Struct, frozen=True):
    name: str
    target: str
    """The model the alias serves now."""
    created_at: int
    history: list[str]
    """Earlier targets, most recent first: where a rollback goes."""


class CheckpointRow(msgspec.Struct, frozen=True):
    id: str
    job_id: str
    step: int
    created_at: int
    path: str
    metrics: dict[str, Any]


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _file(row: sqlite3.Row) -> FileRow:
    return FileRow(**{**dict(row), "format": _loads(row["format"])})


class Store:
    """SQLite-backed store. Safe to share between threads (one connection per thread) and processes (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._conn().executescript(SCHEMA)  # executescript manages its own transaction
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a home's database was created (SQLite's CREATE IF NOT EXISTS keeps old tables)."""
        db = self._conn()
        columns = {row["name"] for row in db.execute("PRAGMA table_info(files)")}
        if "format" not in columns:
            try:
                db.execute("ALTER TABLE files ADD COLUMN format TEXT")
            except sqlite3.OperationalError:  # another process added it first
                pass

    # ------------------------------------------------------------------------------------ plumbing

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: concurrent writers (API and worker processes) serialise here."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --------------------------------------------------------------------------------------- files

    def add_file(self, row: FileRow) -> FileRow:
        with self._write() as db:
            db.execute(
                "INSERT INTO files (id, filename, purpose, bytes, sha256, path, created_at, examples, format)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.filename, row.purpose, row.bytes, row.sha256, row.path, row.created_at, row.examples,
                 _dumps(row.format)),
            )
        return row

    def get_file(self, file_id: str) -> FileRow:
        found = self._conn().execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if found is None:
            raise NotFound(f"No file with id '{file_id}'. List uploaded files with GET /v1/files.", param="file_id")
        return _file(found)

    def find_file(self, sha256: str, filename: str, purpose: str) -> FileRow | None:
        """The earliest stored file with exactly this content, name and purpose (to reuse, not store twice)."""
        found = self._conn().execute(
            "SELECT * FROM files WHERE sha256 = ? AND filename = ? AND purpose = ? ORDER BY rowid LIMIT 1",
            (sha256, filename, purpose)).fetchone()
        return None if found is None else _file(found)

    def list_files(self, purpose: str | None = None) -> list[FileRow]:
        query, args = "SELECT * FROM files", ()
        if purpose:
            query, args = query + " WHERE purpose = ?", (purpose,)
        rows = self._conn().execute(query + " ORDER BY rowid DESC", args).fetchall()
        return [_file(r) for r in rows]

    def delete_file(self, file_id: str) -> tuple[FileRow, bool]:
        """Remove the file's row; returns it and whether its content blob is now unreferenced."""
        with self._write() as db:
            found = db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
            if found is None:
                raise NotFound(f"No file with id '{file_id}'.", param="file_id")
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            others = db.execute("SELECT COUNT(*) FROM files WHERE sha256 = ?", (found["sha256"],)).fetchone()[0]
        return _file(found), others == 0

    # ---------------------------------------------------------------------------------------- jobs

    def create_job(self, job_id: str, spec: dict[str, Any], status: str = "validating_files",
                   message: str | None = None, queued: str | None = None) -> JobRow:
        """Store a new job. With `queued` (that event's message) it is stored already queued, in the same
        transaction: a process killed in between would otherwise leave a job that is listed but never runs."""
        now = int(time.time())
        with self._write() as db:
            db.execute(
                "INSERT INTO jobs (id, created_at, status, spec) VALUES (?, ?, ?, ?)",
                (job_id, now, "queued" if queued is not None else status, _dumps(spec)),
            )
            self._append_event(db, job_id, "status", "info", message or f"Created fine-tuning job: {job_id}",
                               {"status": status})
            if queued is not None:
                self._append_event(db, job_id, "status", "info", queued, {"status": "queued", "previous": status})
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRow:
        found = self._conn().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if found is None:
            raise NotFound(
                f"No fine-tuning job with id '{job_id}'. List jobs with GET /v1/fine_tuning/jobs.", param="job_id"
            )
        return self._job(found)

    @staticmethod
    def _job(row: sqlite3.Row) -> JobRow:
        values = dict(row)
        for key in ("spec", "error", "result"):
            values[key] = _loads(values[key])
        return JobRow(**values)

    def list_jobs(self, *, after: str | None = None, limit: int = 20, statuses: set[str] | None = None,
                  prefix: str | None = None) -> list[JobRow]:
        """Newest first; `after` is a job id (the cursor OpenAI's pagination uses); `prefix` picks a kind
        of job by its id ("ftjob-" fine-tuning, "eval-" evaluation)."""
        clauses, args = [], []
        if prefix is not None:
            clauses.append("id LIKE ?")
            args.append(prefix.replace("%", "") + "%")
        if after is not None:
            self.get_job(after)  # a clear 404 for an unknown cursor
            clauses.append("rowid < (SELECT rowid FROM jobs WHERE id = ?)")
            args.append(after)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            args += sorted(statuses)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._conn().execute(
            f"SELECT * FROM jobs{where} ORDER BY rowid DESC LIMIT ?", (*args, limit)
        ).fetchall()
        return [self._job(r) for r in rows]

    def transition(
        self,
        job_id: str,
        to: str,
        *,
        expect: set[str] | None = None,
        message: str | None = None,
        **fields: Any,
    ) -> JobRow:
        """Move a job to status `to`, checking the job model allows it; the one place a status changes.

        `expect` narrows the allowed current statuses (a compare-and-set: the worker claims a job with
        `expect={"queued"}` so two workers never run the same job). `fields` sets other columns in the same
        transaction. Raises IllegalTransition when the move is not allowed.
        """
        with self._write() as db:
            found = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if found is None:
                raise NotFound(f"No fine-tuning job with id '{job_id}'.", param="job_id")
            current = found["status"]
            if to not in LEGAL_TRANSITIONS[current] or (expect is not None and current not in expect):
                raise IllegalTransition(f"Job {job_id} is {current}; it cannot become {to}.", code="invalid_state")
            now = int(time.time())
            updates: dict[str, Any] = {"status": to}
            if to == "running":
                updates["started_at"] = now
            if to in ("succeeded", "failed", "cancelled"):
                updates["finished_at"] = now
            for key, value in fields.items():
                updates[key] = _dumps(value) if key in ("error", "result", "spec") else value
            assignments = ", ".join(f"{key} = ?" for key in updates)
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*updates.values(), job_id))
            level = "error" if to == "failed" else "info"
            text = message or f"Job {to}"
            self._append_event(db, job_id, "status", level, text, {"status": to, "previous": current})
        return self.get_job(job_id)

    def job_counts(self) -> dict[tuple[str, str], int]:
        """(kind, status) -> how many jobs; kind is the id's prefix ("ftjob", "eval")."""
        rows = self._conn().execute(
            "SELECT substr(id, 1, instr(id, '-') - 1) AS kind, status, count(*) AS n FROM jobs GROUP BY kind, status"
        ).fetchall()
        return {(r["kind"], r["status"]): r["n"] for r in rows}

    def active_or_recent_jobs(self, finished_since: float) -> list[JobRow]:
        """Unfinished jobs, and jobs that finished at or after `finished_since` (a UNIX time)."""
        rows = self._conn().execute(
            "SELECT * FROM jobs WHERE finished_at IS NULL OR finished_at >= ? ORDER BY created_at", (finished_since,)
        ).fetchall()
        return [self._job(r) for r in rows]

    def finished_durations(self) -> list[tuple[str, float]]:
        """(status, seconds from start to finish) of every finished job that started."""
        rows = self._conn().execute(
            "SELECT status, finished_at - started_at AS seconds FROM jobs"
            " WHERE finished_at IS NOT NULL AND started_at IS NOT NULL").fetchall()
        return [(r["status"], float(r["seconds"])) for r in rows]

    def events_of_type(self, job_id: str, type_: str) -> list[EventRow]:
        rows = self._conn().execute(
            "SELECT * FROM events WHERE job_id = ? AND type = ? ORDER BY seq", (job_id, type_)).fetchall()
        return [EventRow(**{**dict(r), "data": _loads(r["data"])}) for r in rows]

    def latest_event(self, job_id: str, type_: str) -> EventRow | None:
        row = self._conn().execute(
            "SELECT * FROM events WHERE job_id = ? AND type = ? ORDER BY seq DESC LIMIT 1", (job_id, type_)
        ).fetchone()
        return None if row is None else EventRow(**{**dict(row), "data": _loads(row["data"])})

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Set progress columns (trained_tokens, estimated_finish); never status."""
        if "status" in fields:
            raise ValueError("status changes go through transition()")
        assignments = ", ".join(f"{key} = ?" for key in fields)
        values = [_dumps(v) if k in ("error", "result", "spec") else v for k, v in fields.items()]
        with self._write() as db:
            db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values, job_id))

    def job_for_model(self, fine_tuned_model: str) -> JobRow | None:
        found = self._conn().execute("SELECT * FROM jobs WHERE fine_tuned_model = ?", (fine_tuned_model,)).fetchone()
        return None if found is None else self._job(found)

    def jobs_using_file(self, file_id: str, statuses: set[str]) -> list[str]:
        rows = self._conn().execute(
            f"SELECT id, spec FROM jobs WHERE status IN ({','.join('?' * len(statuses))})", sorted(statuses)
        ).fetchall()
        specs = [(r["id"], json.loads(r["spec"])) for r in rows]
        return [job_id for job_id, spec in specs
                if file_id in (spec.get("training_file"), spec.get("validation_file"))]

    # -------------------------------------------------------------------------------------- events

    @staticmethod
    def _append_event(
        db: sqlite3.Connection, job_id: str, type_: str, level: str, message: str, data: dict[str, Any] | None
    ) -> int:
        cursor = db.execute(
            "INSERT INTO events (job_id, created_at, type, level, message, data) VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, time.time(), type_, level, message, _dumps(data)),
        )
        return int(cursor.lastrowid)

    def append_event(
        self, job_id: str, type_: str, message: str, data: dict[str, Any] | None = None, level: str = "info"
    ) -> int:
        """Append one event; returns its seq (global, increasing: the SSE id)."""
        with self._write() as db:
            return self._append_event(db, job_id, type_, level, message, data)

    def events(self, job_id: str | None = None, *, after_seq: int = 0, limit: int = 1000) -> list[EventRow]:
        """Events in seq order, oldest first, after `after_seq`."""
        if job_id is None:
            rows = self._conn().execute(
                "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        else:
            rows = self._conn().execute(
                "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?", (job_id, after_seq, limit)
            ).fetchall()
        return [EventRow(**{**dict(r), "data": _loads(r["data"])}) for r in rows]

    def events_newest_first(self, job_id: str, *, before_seq: int | None = None, limit: int = 20) -> list[EventRow]:
        args: tuple[Any, ...] = (job_id, before_seq if before_seq is not None else 2**62, limit)
        rows = self._conn().execute(
            "SELECT * FROM events WHERE job_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?", args
        ).fetchall()
        return [EventRow(**{**dict(r), "data": _loads(r["data"])}) for r in rows]

    # --------------------------------------------------------------------------------- checkpoints

    def add_checkpoint(self, row: CheckpointRow) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (id, job_id, step, created_at, path, metrics)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (row.id, row.job_id, row.step, row.created_at, row.path, _dumps(row.metrics)),
            )
            self._append_event(
                db, row.job_id, "checkpoint", "info", f"Checkpoint saved at step {row.step}",
                {"step": row.step, "checkpoint": row.id, "path": row.path, **row.metrics},
            )

    def add_eval_results(self, job_id: str, message: str, data: dict[str, Any],
                         results: list[EvalResultRow]) -> int:
        """Store an evaluation's metrics as rows and announce them as one `eval` event, in one transaction
        (so a reader of either never sees the other missing). Returns the event's seq."""
        with self._write() as db:
            seq = self._append_event(db, job_id, "eval", "info", message, data)
            db.executemany(
                "INSERT INTO eval_results (seq, job_id, phase, suite, model, step, metric, value, low, high)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(seq, job_id, r.phase, r.suite, r.model, r.step, r.metric, r.value, r.low, r.high)
                 for r in results])
        return seq

    def eval_results(self, job_id: str | None = None) -> list[EvalResultRow]:
        """Stored metrics, oldest first; all jobs' when job_id is None."""
        if job_id is None:
            rows = self._conn().execute("SELECT * FROM eval_results ORDER BY seq, metric").fetchall()
        else:
            rows = self._conn().execute(
                "SELECT * FROM eval_results WHERE job_id = ? ORDER BY seq, metric", (job_id,)).fetchall()
        return [EvalResultRow(**dict(r)) for r in rows]

    def add_preference(self, preference_id: str, created_at: int, record: dict[str, Any]) -> None:
        with self._write() as db:
            db.execute("INSERT INTO preferences (id, created_at, record) VALUES (?, ?, ?)",
                       (preference_id, created_at, _dumps(record)))

    def preferences(self) -> list[tuple[str, int, dict[str, Any]]]:
        """(id, created_at, record) of every stored preference, oldest first."""
        rows = self._conn().execute("SELECT * FROM preferences ORDER BY rowid").fetchall()
        return [(r["id"], r["created_at"], _loads(r["record"])) for r in rows]

    # ------------------------------------------------------------------------------------ aliases
    # An alias's history is its rows in insertion order; the last is what it serves. Pointing it elsewhere adds
    # a row, rolling back removes the last one, so every earlier deployment stays one step away.

    def point_alias(self, name: str, target: str) -> AliasRow:
        with self._write() as db:
            db.execute("INSERT INTO aliases (name, target, created_at) VALUES (?, ?, ?)",
                       (name, target, int(time.time())))
        return self.get_alias(name)  # type: ignore[return-value]

    def get_alias(self, name: str) -> AliasRow | None:
        rows = self._conn().execute("SELECT target, created_at FROM aliases WHERE name = ? ORDER BY rowid DESC",
                                    (name,)).fetchall()
        if not rows:
            return None
        return AliasRow(name=name, target=rows[0]["target"], created_at=rows[0]["created_at"],
                        history=[r["target"] for r in rows[1:]])

    def aliases(self) -> list[AliasRow]:
        names = [r["name"] for r in self._conn().execute("SELECT DISTINCT name FROM aliases ORDER BY name")]
        return [row for row in map(self.get_alias, names) if row is not None]

    def roll_back_alias(self, name: str) -> AliasRow:
        """Point the alias back at its previous target. NotFound without one; the alias is kept either way."""
        with self._write() as db:
            rows = db.execute("SELECT rowid FROM aliases WHERE name = ? ORDER BY rowid DESC LIMIT 2",
                              (name,)).fetchall()
            if len(rows) < 2:
                raise NotFound(f"The alias '{name}' has no earlier model to roll back to"
                               if rows else f"No alias '{name}'. GET /v1/aliases lists them.", param="name")
            db.execute("DELETE FROM aliases WHERE rowid = ?", (rows[0]["rowid"],))
        return self.get_alias(name)  # type: ignore[return-value]

    def delete_alias(self, name: str) -> None:
        with self._write() as db:
            if db.execute("DELETE FROM aliases WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"No alias '{name}'. GET /v1/aliases lists them.", param="name")

    def checkpoints(self, job_id: str) -> list[CheckpointRow]:
        rows = self._conn().execute(
            "SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC", (job_id,)
        ).fetchall()
        return [CheckpointRow(**{**dict(r), "metrics": json.loads(r["metrics"])}) for r in rows]
