"""The bad-input corpus's daemon, its stored things, and the three checks every bad request must pass: a 4xx
in OpenAI's error shape that says what to fix, nothing stored changed, and the daemon still healthy."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hone.local_daemon import LocalDaemon, free_port
from tests.conftest import chat_records, write_jsonl

REQUESTED_STATUSES = frozenset({"cancelled", "paused"})
"""Job states only a request sets (the worker moves jobs on to running, succeeded or failed by itself)."""


def store_snapshot(home: Path) -> dict[str, Any]:
    """Everything a request could have stored or removed, read from the daemon's database and folders: files,
    jobs of every kind (fine-tuning, evals, searches, exports) and whether a request cancelled or paused them,
    preferences, aliases, the blobs under files/ (a leftover `.upload-*` temp file shows here too) and exports/.
    Events and the worker's own status changes are left out: they happen whatever a request does."""
    with closing(sqlite3.connect(f"file:{home / 'honed.db'}?mode=ro", uri=True)) as db:
        files = db.execute("SELECT id, filename, purpose, bytes, sha256, path FROM files ORDER BY id").fetchall()
        jobs = []
        for job_id, created_at, status, spec in db.execute("SELECT id, created_at, status, spec FROM jobs ORDER BY id"):
            spec = json.loads(spec)
            jobs.append((job_id, created_at, status if status in REQUESTED_STATUSES else "worker's",
                         spec.get("model"), spec.get("models"), spec.get("training_file")))
        preferences = db.execute("SELECT id, record FROM preferences ORDER BY id").fetchall()
        aliases = db.execute("SELECT name, target, created_at FROM aliases ORDER BY rowid").fetchall()
    folders = {f"{name}/": sorted(p.name for p in (home / name).iterdir()) if (home / name).is_dir() else []
               for name in ("files", "exports")}
    return {"files": files, "jobs": jobs, "preferences": preferences, "aliases": aliases, **folders}


def assert_error(response: httpx.Response, status: int, *fragments: str, param: Any = ...) -> dict[str, Any]:
    """The response is `status` with OpenAI's error body, exactly its four keys, holding every fragment (and
    naming `param` when given); returns the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["type"] == ("invalid_request_error" if status != 401 else "authentication_error"), error
    assert "internal error" not in error["message"] and len(error["message"]) >= 15, error
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    if param is not ...:
        assert error["param"] == param, error
    return error


def assert_healthy(api: httpx.Client) -> None:
    assert api.get("/healthz").status_code == 200


# -------------------------------------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One bad request and the error it must get. Strings in `path` and `body` may name stored things as
    {file}, {evals_file}, {paused_job}, {cancelled_job}, {model}: filled in from the `stored` fixture."""

    method: str
    path: str
    body: Any = None
    """A JSON value to send as the body, or bytes sent as they are (with content-type application/json)."""
    status: int = 400
    message: str = ""
    """A fragment the error message must hold: the part that says what to fix."""
    param: Any = ...
    """The error's `param` (None included); ... leaves it unchecked."""
    upload: tuple[str, bytes] | None = None
    """A multipart `file` (name, content); `form` holds the other fields."""
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def fill(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every "{name}" string (whole, or inside a path) replaced by the stored thing's id."""
    if isinstance(value, str):
        for name, replacement in ids.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


def send(api: httpx.Client, case: Case, ids: dict[str, str]) -> httpx.Response:
    path, headers = fill(case.path, ids), dict(case.headers)
    if case.upload is not None:
        form = fill({"purpose": "fine-tune", **case.form}, ids)
        return api.request(case.method, path, data=form, files={"file": case.upload}, headers=headers)
    if isinstance(case.body, bytes):
        headers.setdefault("content-type", "application/json")
        return api.request(case.method, path, content=case.body, headers=headers)
    if case.body is not None:
        return api.request(case.method, path, json=fill(case.body, ids), headers=headers)
    return api.request(case.method, path, headers=headers)


def check_refused(api: httpx.Client, stored: dict[str, Any], case: Case) -> dict[str, Any]:
    """Send a bad request; it gets its 4xx, nothing stored changes, and the daemon still answers."""
    before = store_snapshot(stored["home"])
    error = assert_error(send(api, case, stored["ids"]), case.status, case.message, param=case.param)
    assert store_snapshot(stored["home"]) == before
    assert_healthy(api)
    return error


def case_id(case: Case) -> str:
    return f"{case.method} {case.path} {case.status} {case.message[:40]}"


# ------------------------------------------------------------------------------------------ the daemon


@pytest.fixture(scope="package")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDaemon]:
    """One `honed serve` for the whole corpus: every case compares what is stored before and after itself."""
    running = LocalDaemon(tmp_path_factory.mktemp("badinput-home"), free_port()).start()
    yield running
    running.stop()


@pytest.fixture(scope="package")
def api(daemon: LocalDaemon) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=daemon.base_url, timeout=60) as client:
        yield client


def wait_for_status(api: httpx.Client, job_id: str, statuses: set[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in statuses or time.monotonic() > deadline:
            assert job["status"] in statuses, job
            return job
        time.sleep(0.1)


@pytest.fixture(scope="package")
def stored(api: httpx.Client, daemon: LocalDaemon, tiny_model: Path,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Things the bad requests refer to: a training file, an eval-cases file, a one-step job that trains in the
    background (its model is `tuned_model`), a paused job (it holds its file) and a cancelled one."""
    folder = tmp_path_factory.mktemp("badinput-data")
    good = write_jsonl(folder / "good.jsonl", chat_records([("Hi", "Hello"), ("Bye", "Goodbye")]))
    file_id = api.post("/v1/files", data={"purpose": "fine-tune"}, files={"file": good.open("rb")}).json()["id"]
    cases = write_jsonl(folder / "cases.jsonl", [{"prompt": "2+2?", "reference": "4"}])
    evals_id = api.post("/v1/files", data={"purpose": "evals"}, files={"file": cases.open("rb")}).json()["id"]
    body = {"model": str(tiny_model), "training_file": file_id, "hyperparameters": {"n_epochs": 1},
            "honed": {"max_steps": 1, "estimate": False, "lora_rank": 4}}
    # the worker takes the first job at once; the two after it are still queued when paused and cancelled
    tuned, paused, cancelled = (api.post("/v1/fine_tuning/jobs", json=body).json()["id"] for _ in range(3))
    assert api.post(f"/v1/fine_tuning/jobs/{paused}/pause").status_code == 200
    assert api.post(f"/v1/fine_tuning/jobs/{cancelled}/cancel").status_code == 200
    ids = {"file": file_id, "evals_file": evals_id, "tuned_job": tuned, "paused_job": paused,
           "cancelled_job": cancelled, "model": str(tiny_model), "home": str(daemon.home)}
    return {"ids": ids, "home": daemon.home}


@pytest.fixture(scope="package")
def tuned_model(api: httpx.Client, stored: dict[str, Any]) -> str:
    """The fine-tuned model of the stored one-step job, once it has trained (the worker is idle after)."""
    return wait_for_status(api, stored["ids"]["tuned_job"], {"succeeded"}, timeout=120)["fine_tuned_model"]
