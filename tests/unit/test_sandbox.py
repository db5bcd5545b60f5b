"""The sandbox for model-generated code: each test makes the code really do the bad thing, then checks it
was stopped and left nothing behind on the host."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from honed.evaluation import sandbox
from honed.evaluation.sandbox import SandboxResult, pass_at_1, run_python, syntax_valid

ISOLATIONS = {"netns+pidns+mntns+uid", "netns+uid", "uid+userns+netns", "uid+socket-guard", "userns+netns",
              "socket-guard"}
TRY_WRITE = """
def try_write(path):
    try:
        with open(path, "w") as file:
            file.write("x")
    except OSError:
        return False
    return True
"""


@pytest.fixture(scope="module")
def isolation() -> str:
    return sandbox._plan().isolation


@pytest.fixture
def uid_dropped(isolation: str) -> None:
    # As root without a uid of its own, RLIMIT_NPROC and file permissions do not apply: the test would
    # do real harm instead of showing the sandbox stops it.
    if os.geteuid() == 0 and "uid" not in isolation:
        pytest.skip(f"isolation here is {isolation!r}: root cannot drop its uid, so this is not contained")


def _pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _sandboxed_pids() -> list[int]:
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        if cmdline.endswith(b"\0-I\0-S\0main.py\0"):
            found.append(pid)
    return found


def _wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_correct_code_passes(isolation: str):
    result = run_python("def add(a, b):\n    return a + b", "assert add(1, 2) == 3\nassert add(-1, 1) == 0")
    assert (result.passed, result.status, result.detail) == (True, "passed", "")
    assert result.isolation == isolation and 0 < result.duration_s < 5


def test_wrong_code_fails_with_the_failing_assertion_in_the_detail():
    result = run_python("def add(a, b):\n    return a - b",
                        "def check(candidate):\n    assert candidate(1, 2) == 3\n\ncheck(add)")
    assert (result.passed, result.status) == (False, "failed")
    assert result.detail == "AssertionError: assert candidate(1, 2) == 3"


def test_a_syntax_error_is_an_error_and_not_a_pass():
    result = run_python("def add(a, b) return a + b", "assert add(1, 2) == 3")
    assert (result.passed, result.status) == (False, "error")
    assert result.detail.startswith("SyntaxError")


def test_an_infinite_loop_is_stopped_by_the_timeout():
    started = time.monotonic()
    result = run_python("while True:\n    pass", "", timeout_s=1.0)
    assert time.monotonic() - started < 3.0
    assert (result.passed, result.status) == (False, "timeout")
    assert _wait_until(lambda: not _sandboxed_pids()), f"left behind: {_sandboxed_pids()}"


def test_a_program_that_kills_itself_is_killed_not_passed():
    # Guards the pid namespace layout: were the program pid 1 there, the kernel would drop this signal.
    result = run_python("import signal\nsignal.raise_signal(signal.SIGTERM)", "")
    assert (result.passed, result.status, result.detail) == (False, "killed", "killed by SIGTERM")


def test_a_fork_bomb_is_contained_and_leaves_no_process_behind(uid_dropped):
    before = len(_pids())
    started = time.monotonic()
    result = run_python("import os\nwhile True:\n    os.fork()", "", timeout_s=3.0, max_processes=8)
    assert time.monotonic() - started < 6.0
    assert not result.passed and result.status in {"error", "timeout", "killed"}
    assert _wait_until(lambda: not _sandboxed_pids()), f"left behind: {_sandboxed_pids()}"
    assert _wait_until(lambda: len(_pids()) <= before + 5), f"{before} processes before, {len(_pids())} after"


def test_a_background_process_that_leaves_the_process_group_is_killed_too(isolation: str):
    if "pidns" not in isolation:
        pytest.skip(f"isolation here is {isolation!r}: only a pid namespace catches setsid() escapees")
    code = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)"
    result = run_python(code, "", timeout_s=3.0)
    assert result.passed, result.detail
    assert _wait_until(lambda: not _sandboxed_pids()), f"left behind: {_sandboxed_pids()}"


@pytest.mark.parametrize("how", ["best available", "user namespace", "socket guard"])
def test_a_connection_to_a_listener_on_the_host_fails_inside_the_sandbox(how, monkeypatch):
    if how != "best available":  # the fallbacks a machine without root or netns would get
        interpreter = sandbox._plan().interpreter
        root = os.geteuid() == 0
        monkeypatch.setattr(sandbox, "_plan", lambda: {
            "user namespace": sandbox._Plan(interpreter if root else sys.executable,
                                            "uid+userns+netns" if root else "userns+netns",
                                            drop_uid=root, user_namespace=True),
            "socket guard": sandbox._Plan(sys.executable, "socket-guard", socket_guard=True)}[how])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        socket.create_connection(("127.0.0.1", port), timeout=1).close()  # from here it is reachable
        listener.accept()[0].close()
        code = ("import socket\ndef connect():\n    try:\n"
                f"        socket.create_connection(('127.0.0.1', {port}), timeout=1).close()\n"
                "    except OSError:\n        return False\n    return True")
        result = run_python(code, "assert connect() is False")
        if result.detail.startswith("the sandbox could not start"):
            pytest.skip(f"{how} is not available here: {result.detail}")
        assert result.passed, result.detail
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nothing reached the listener
            listener.accept()


def test_writing_outside_its_directory_fails_and_leaves_no_file(tmp_path: Path, uid_dropped):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    targets = [private / "written-by-sandbox", Path("/etc/honed-sandbox-test")]
    tests = "".join(f"assert not try_write({str(target)!r}), {str(target)!r}\n" for target in targets)
    try:
        result = run_python(TRY_WRITE, tests + "assert try_write('its-own-file.txt')")
        assert result.passed, result.detail
        assert not any(target.exists() for target in targets)
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_files_it_leaves_in_tmp_never_reach_the_host(isolation: str):
    if "mntns" not in isolation:
        pytest.skip(f"isolation here is {isolation!r}: without a mount namespace /tmp is shared")
    leak = Path("/tmp") / f"honed-sandbox-leak-{secrets.token_hex(4)}"
    try:
        result = run_python(TRY_WRITE, f"assert try_write({str(leak)!r})\nassert open({str(leak)!r}).read() == 'x'")
        assert result.passed, result.detail
        assert not leak.exists()
    finally:
        leak.unlink(missing_ok=True)


def test_a_memory_hog_gets_a_memory_error_and_the_next_sample_runs_normally():
    started = time.monotonic()
    result = run_python("data = bytearray(2 * 1024 ** 3)\ndata[::4096] = b'x' * len(data[::4096])", "",
                        memory_mb=256)
    assert (result.passed, result.status, result.detail) == (False, "error", "MemoryError")
    assert time.monotonic() - started < 5.0
    assert run_python("x = 1", "assert x == 1").passed


def test_the_code_cannot_kill_a_process_outside_the_sandbox(uid_dropped):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        code = (f"import os, signal\ndef attack():\n    try:\n        os.kill({victim.pid}, signal.SIGKILL)\n"
                "    except OSError:\n        return False\n    return True")
        result = run_python(code, "assert attack() is False")
        assert result.passed, result.detail
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_a_flood_on_stderr_is_cut_off_and_the_detail_stays_short():
    result = run_python("import sys\nsys.stderr.write('x' * (64 << 20))", "")
    assert not result.passed and len(result.detail) <= 300


def test_the_isolation_used_is_reported(isolation: str):
    assert isolation in ISOLATIONS
    if os.geteuid() == 0:  # root can always drop to a uid of its own; a regression would lose NPROC
        assert "uid" in isolation
    assert run_python("pass", "").isolation == isolation


def test_pass_at_1_is_the_share_of_passed_samples():
    results = [SandboxResult(passed, "passed" if passed else "failed", "", 0.1, "socket-guard")
               for passed in (True, False, True, True)]
    assert pass_at_1(results) == 0.75
    with pytest.raises(ValueError, match="no results"):
        pass_at_1([])


def test_syntax_valid_checks_without_running():
    assert syntax_valid("def f():\n    return 1")
    assert not syntax_valid("def f() return 1")
    assert not syntax_valid("return 1")  # ast.parse accepts this; the interpreter does not
    assert not syntax_valid("x = 1\0")
    assert syntax_valid("import os\nos._exit(3)")  # would end this process if it were run
