"""Running untrusted, model-generated Python against unit tests, for a pass@1 metric.

Follows OpenAI human-eval's `execution.py` (a fresh process per sample, a timeout, resource limits) and the
usual Linux moves: a throwaway directory, rlimits set in the child before exec, namespaces for network,
processes and mounts, and an unprivileged uid so that RLIMIT_NPROC and file permissions apply (root ignores
both). `_plan()` picks the strongest of these the machine allows, once, and every result names it. This
keeps honest mistakes (fork loops, huge allocations, stray writes, network calls) off a single-user machine;
it is not a boundary against a determined attacker: there is no seccomp filter and the kernel is shared.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import msgspec

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID, _CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
# The world-writable places on Debian: a dropped uid could still leave files there, so each gets a tmpfs.
_WORLD_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")
_SANDBOX_DIR = "/tmp/sandbox"  # the program's directory inside its own mount namespace
# A fresh uid per run, far above real accounts: RLIMIT_NPROC then counts this run's processes only, and the
# program owns and can signal nothing else. Not `nobody`: services run as nobody, and here the root
# filesystem even reserves its spare blocks for it.
_UID_BASE, _UID_SPAN = 0x5E000000, 1 << 24
_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}  # no HOME, PYTHONPATH or secrets
_STDERR_TAIL, _DETAIL_CHARS = 4096, 300
_LIMIT_SIGNALS = {"SIGXCPU": "CPU time limit", "SIGXFSZ": "file size limit",
                  "SIGKILL": "CPU time limit or out of memory"}
# Without a network namespace, the next best thing: stop the socket module before the code runs. Code can
# get around it (`_socket`), so results report it as "socket-guard". A subclass, not a function, so that
# `import ssl` (which subclasses socket.socket) still works.
_SOCKET_GUARD = """import socket as _socket
class _NoNetwork(_socket.socket):
    def __init__(self, *args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")
def _no_network(*args, **kwargs):
    raise PermissionError("network access is disabled in the sandbox")
_socket.socket = _NoNetwork
_socket.create_connection = _socket.socketpair = _socket.fromfd = _no_network
del _socket, _NoNetwork, _no_network
"""


class SandboxResult(msgspec.Struct, frozen=True):
    """What one sample did. `passed` is True only when the program ran to the end and exited 0."""

    passed: bool
    status: str  # "passed" | "failed" (an assertion) | "timeout" | "error" (other failures) | "killed" (a signal)
    detail: str  # the last line of the traceback, or why the program was stopped
    duration_s: float
    isolation: str  # how it was kept in, e.g. "netns+pidns+mntns+uid", "userns+netns", "socket-guard"


class _Plan(msgspec.Struct, frozen=True):
    interpreter: str
    isolation: str
    namespaces: int = 0  # entered as root, before dropping the uid
    drop_uid: bool = False
    user_namespace: bool = False  # unprivileged user+network namespace, entered after dropping root
    socket_guard: bool = False


def run_python(code: str, tests: str, *, timeout_s: float = 5.0, memory_mb: int = 512,
               max_processes: int = 16) -> SandboxResult:
    """Run `code` followed by `tests` (plain asserts or a check() call) in a fresh interpreter, isolated.

    Gets a result for anything the code does, never an exception: a sandbox that cannot start is an
    "error" result. Only the standard library is available to the code; stdout is discarded. Linux only.
    The isolation is set up in a preexec_fn, which the subprocess docs call unsafe beside other threads
    (a lock held at fork time can hang the child); the timeout still ends such a run.
    """
    plan = _plan()
    program = (_SOCKET_GUARD if plan.socket_guard else "") + f"{code}\n\n{tests}\n"
    started = time.monotonic()
    try:
        returncode, timed_out, stderr = _execute(plan, program, timeout_s, memory_mb, max_processes)
    except (OSError, subprocess.SubprocessError) as exc:
        status, detail = "error", f"the sandbox could not start: {exc}"
    else:
        status, detail = _verdict(returncode, timed_out, stderr, timeout_s)
    return SandboxResult(status == "passed", status, detail[:_DETAIL_CHARS],
                         round(time.monotonic() - started, 3), plan.isolation)


def pass_at_1(results: list[SandboxResult]) -> float:
    """The share of samples that passed: pass@1 with one sample per problem. Raises ValueError if empty."""
    if not results:
        raise ValueError("no results to score")
    return sum(result.passed for result in results) / len(results)


def syntax_valid(code: str) -> bool:
    """True when `code` compiles, without running it. compile(), not just ast.parse(), so that
    `return` or `break` in the wrong place count as the syntax errors the interpreter will call them."""
    try:
        compile(code, "<sample>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: null bytes
        return False
    return True


def _verdict(returncode: int, timed_out: bool, stderr: str, timeout_s: float) -> tuple[str, str]:
    if timed_out:
        return "timeout", f"still running after {timeout_s:g}s, killed"
    if returncode == 0:
        return "passed", ""
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
        return "killed", f"killed by {name}" + (f" ({_LIMIT_SIGNALS[name]})" if name in _LIMIT_SIGNALS else "")
    lines = [line.strip() for line in stderr.splitlines() if line.strip(" ^~")]  # drop 3.11's caret lines
    last = lines[-1] if lines else f"exit status {returncode}"
    if last == "AssertionError" and len(lines) > 1 and not lines[-2].startswith("File "):
        last = f"AssertionError: {lines[-2]}"  # a bare assert says nothing; its source line does
    return ("failed" if last.startswith("AssertionError") else "error"), last


@functools.cache
def _plan() -> _Plan:
    """The strongest isolation this machine allows, found once per process by running `pass` under each."""
    if os.geteuid() == 0:
        # An interpreter under /root (pyenv) is unreadable once root is dropped; Debian's is not.
        interpreters = list(dict.fromkeys(path for path in (sys.executable, "/usr/bin/python3") if path))
        kinds = [("netns+pidns+mntns+uid", {"namespaces": _CLONE_NEWNET | _CLONE_NEWPID | _CLONE_NEWNS}),
                 ("netns+uid", {"namespaces": _CLONE_NEWNET}),
                 ("uid+userns+netns", {"user_namespace": True}),
                 ("uid+socket-guard", {"socket_guard": True})]
        candidates = [_Plan(interpreter, label, drop_uid=True, **options)
                      for label, options in kinds for interpreter in interpreters]
    else:
        candidates = [_Plan(sys.executable, "userns+netns", user_namespace=True)]
    candidates.append(_Plan(sys.executable, "socket-guard", socket_guard=True))
    for plan in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if _execute(plan, "pass", 10.0, 256, 4)[0] == 0:
                return plan
    return candidates[-1]


def _execute(plan: _Plan, program: str, timeout_s: float, memory_mb: int,
             max_processes: int) -> tuple[int, bool, str]:
    """Run `program` once: (Popen's return code, whether it timed out, the tail of its stderr)."""
    uid = _UID_BASE + secrets.randbelow(_UID_SPAN) if plan.drop_uid else None
    limits = _limits(timeout_s, memory_mb, max_processes)
    workdir = tempfile.mkdtemp(prefix="honed-sandbox-")  # mode 0o700
    try:
        with open(os.path.join(workdir, "main.py"), "w", encoding="utf-8", errors="replace") as file:
            file.write(program)
        if uid is not None:
            os.chown(workdir, uid, uid)
        # stderr goes to a file, not a pipe: no reader to keep up, and RLIMIT_FSIZE bounds what a flood costs.
        with tempfile.TemporaryFile() as stderr:
            process = subprocess.Popen(
                [plan.interpreter, "-I", "-S", "main.py"], cwd=workdir, env=_ENV, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                preexec_fn=functools.partial(_enter_sandbox, plan, limits, uid))
            try:
                finished = _wait_without_reaping(process.pid, timeout_s)
            finally:  # also on KeyboardInterrupt: never leave a sample running
                # The whole process group, fork-bomb children included. Killed before reaping, so the group
                # id cannot have been reused by an unrelated process.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                returncode = process.wait()
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - _STDERR_TAIL))
            return returncode, not finished, stderr.read().decode("utf-8", "replace")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # root may remove the sandbox uid's files


def _limits(timeout_s: float, memory_mb: int, max_processes: int) -> list[tuple[int, int, int]]:
    cpu_s = math.ceil(timeout_s) + 1  # the wall clock normally stops it first; this catches a stuck kill
    wanted = [(resource.RLIMIT_AS, memory_mb << 20, memory_mb << 20), (resource.RLIMIT_CPU, cpu_s, cpu_s + 1),
              (resource.RLIMIT_NPROC, max_processes, max_processes), (resource.RLIMIT_FSIZE, 16 << 20, 16 << 20),
              (resource.RLIMIT_NOFILE, 64, 64), (resource.RLIMIT_CORE, 0, 0)]
    capped = []
    for which, soft, hard in wanted:  # never above the current hard limit: raising it needs CAP_SYS_RESOURCE
        ceiling = resource.getrlimit(which)[1]
        capped.append((which, *(value if ceiling == resource.RLIM_INFINITY else min(value, ceiling)
                                for value in (soft, hard))))
    return capped


def _wait_without_reaping(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _enter_sandbox(plan: _Plan, limits: list[tuple[int, int, int]], uid: int | None) -> None:
    """preexec_fn: runs in the child between fork and exec, in order: namespaces, uid, limits."""
    if plan.namespaces:
        _unshare(plan.namespaces)  # needs root, so before the uid drop
        if plan.namespaces & _CLONE_NEWPID:
            _enter_pid_namespace()
        if plan.namespaces & _CLONE_NEWNS:
            _private_filesystem(uid)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if plan.user_namespace:
        _unshare(_CLONE_NEWUSER | _CLONE_NEWNET)
    for which, soft, hard in limits:  # last: RLIMIT_AS could starve the steps above in a big parent
        resource.setrlimit(which, (soft, hard))


def _enter_pid_namespace() -> None:
    # CLONE_NEWPID applies to children only, so fork twice: the first child is pid 1 of the new namespace,
    # the second goes on to exec the program. Not the program as pid 1: pid 1 ignores signals it sends
    # itself, so os.abort() or raise_signal(SIGTERM) would not end it. When pid 1 exits, the kernel kills
    # and reaps all that is left in the namespace, setsid() escapees and orphans too.
    status_read, status_write = os.pipe()  # non-inheritable: the program loses both ends at exec
    init = os.fork()
    if init:  # outside: stay only to hand the program's exit status on to Popen
        _close_all_but(status_read)
        reported = os.read(status_read, 32)
        status = int(reported) if reported else os.waitpid(init, 0)[1]
        if reported:
            os.waitpid(init, 0)
        if os.WIFSIGNALED(status):
            with contextlib.suppress(OSError, ValueError):
                signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
            os.kill(os.getpid(), os.WTERMSIG(status))
        os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)
    program = os.fork()
    if program == 0:
        return
    _close_all_but(status_write)
    while True:  # pid 1: reap whatever is orphaned to us until the program itself ends
        pid, status = os.waitpid(-1, 0)
        if pid == program:
            os.write(status_write, str(status).encode())
            os._exit(0)


def _close_all_but(fd: int) -> None:
    # Popen's error pipe among them: Popen() returns when every copy is closed, so only the program may keep
    # it until exec, or Popen() would wait for the program to end and the timeout would never start.
    os.closerange(3, fd)
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))


def _private_filesystem(uid: int | None) -> None:
    # Root, inside the new mount and pid namespaces; nothing mounted here is seen by the host.
    with open("main.py", "rb") as file:  # the cwd is still the host's work dir
        program = file.read()
    _mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE)  # or mounts below would propagate to the host
    _mount(b"proc", b"/proc", b"proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)  # only the sandbox's processes
    for path in _WORLD_WRITABLE:  # small and private; they vanish with the namespace
        if os.path.isdir(path):
            _mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=64m,mode=1777")
    os.mkdir(_SANDBOX_DIR, 0o700)
    if uid is not None:
        os.chown(_SANDBOX_DIR, uid, uid)
    with open(os.path.join(_SANDBOX_DIR, "main.py"), "wb") as file:
        file.write(program)
    os.chdir(_SANDBOX_DIR)


_libc = ctypes.CDLL(None, use_errno=True)


def _unshare(flags: int) -> None:
    if hasattr(os, "unshare"):  # Python 3.12+
        os.unshare(flags)
    else:
        _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source: bytes, target: bytes, fstype: bytes | None, flags: int, data: bytes | None = None) -> None:
    _check(_libc.mount(source, target, fstype, ctypes.c_ulong(flags), data), f"mount {target.decode()}")


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")
