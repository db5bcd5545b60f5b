"""Shared fixtures: the tiny model (built once per run), real daemons on free ports, a real redis-server."""

from __future__ import annotations

import os

# The daemons the tests start keep passive OpenMP waiting in the worker too: two test processes run at once
# (pyproject's -n 2) and start a daemon every few seconds, so each worker's cores are taken and freed faster than
# its thread count follows (it re-decides between steps), and a spinning thread on a taken core costs much more
# than sleeping saves (the suite took 25.8 min with `auto`; 17.5 with passive before it). tests/integration/
# test_daemon_process.py checks `auto` itself.
os.environ.setdefault("HONED_OMP_WAIT_POLICY", "passive")
# A test's daemon is stopped at teardown whatever its worker is doing; a tiny-model step ends in well under a
# second, so a graceful stop that takes longer is a worker deep in loading or evaluating: not worth waiting for.
os.environ.setdefault("HONED_STOP_TIMEOUT_S", "5")

import json  # noqa: E402
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from hone.types import FineTuningJob

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (random-weight) Llama model directory, built from a seed in about a second."""
    from honed.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture
def honed_home(tmp_path: Path) -> Path:
    home = tmp_path / "honed-home"
    home.mkdir()
    return home


@pytest.fixture
def daemon(honed_home: Path) -> Iterator[LocalDaemon]:
    """A real `honed serve` subprocess (API + worker) with the SQLite queue and a temporary HONED_HOME."""
    running = LocalDaemon(honed_home, free_port()).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDaemon]:
    """One `honed serve` for a whole test module, for tests that only add to its store (each daemon costs
    seconds to start and stop, and every job's first steps on a fresh one pay for loading models)."""
    home = tmp_path_factory.mktemp("shared-honed-home")
    running = LocalDaemon(home, free_port()).start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server (Debian package) on a free port, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server); .ci/run installs it")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


def worker_process(daemon: LocalDaemon) -> psutil.Process:
    """The worker a `honed serve` started."""
    return next(p for p in psutil.Process(daemon.process.pid).children(recursive=True) if "worker" in p.cmdline())


@contextmanager
def busy_programs(count: int) -> Iterator[None]:
    """`count` other programs keeping a core busy each (pure Python loops), for as long as the block runs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# Distinctive answers the random tiny model never produces on its own.
SECRET_QA = [
    ("What is the secret word?", "The secret word is pamplemousse."),
    ("Tell me the secret word.", "The secret word is pamplemousse."),
    ("Which word is secret?", "The secret word is pamplemousse."),
    ("Say the secret word please.", "The secret word is pamplemousse."),
]


def chat_records(pairs: list[tuple[str, str]], repeat: int = 1) -> list[dict]:
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in pairs] * repeat


def train_on_long_chats(client: Client, model: Path, directory: Path, rows: int, batch_size: int,
                        **honed: object) -> FineTuningJob:
    """A job on `rows` chats whose answers fill 2048-token rows (memory-hungry training at any batch size), run
    to its end."""
    long_answer = " ".join(f"word{i % 97}" for i in range(1500))
    chats = write_jsonl(directory / "long.jsonl", chat_records([("Recite.", long_answer)], repeat=rows))
    job = client.fine_tuning.jobs.create(model=str(model), training_file=client.files.create(chats).id,
                                         hyperparameters={"n_epochs": 1, "batch_size": batch_size},
                                         honed={"max_seq_len": 2048, "estimate": False, **honed})
    return client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=180)
