"""`honed install`: run honed as a per-user background service, under launchd (macOS) or systemd (Linux).

The service files are templates in launchd/ (one source of truth each: com.honed.daemon.plist, honed.service).
Rendering them with this machine's paths is pure; writing them and calling launchctl or systemctl happen in
`install` and `uninstall` only. Every failure is a ServiceError whose one-line message says what to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

from honed.errors import HonedError

LAUNCHD_LABEL = "com.honed.daemon"
SYSTEMD_UNIT = "honed.service"


class ServiceError(HonedError):
    """The background service could not be set up or removed."""


def templates_dir() -> Path:
    """launchd/ beside the package (a wheel that force-includes it) or at the root of a source checkout."""
    for candidate in (Path(__file__).parent / "launchd", Path(__file__).resolve().parents[2] / "launchd"):
        if candidate.is_dir():
            return candidate
    raise ServiceError("the service templates (launchd/) are missing from this honed installation; reinstall honed")


def honed_executable() -> Path:
    """The `honed` script of the Python running this code (its virtual environment's bin/), else the one on PATH.

    The script beside sys.executable comes first so the service runs the same installation as this command.
    """
    beside = Path(sys.executable).parent / "honed"  # not resolved: a venv's python is a symlink out of the venv
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside.absolute()
    found = shutil.which("honed")
    if found:
        return Path(found).absolute()
    raise ServiceError(f"cannot find the `honed` executable beside {sys.executable} or on PATH; "
                       "install honed with pip first")


@dataclass(frozen=True)
class ServicePaths:
    """Where the service runs from and where its files go."""

    honed_bin: Path
    honed_home: Path
    user_home: Path
    config_home: Path
    """$XDG_CONFIG_HOME, or ~/.config."""

    @classmethod
    def here(cls, honed_home: Path, environ: Mapping[str, str] = os.environ) -> ServicePaths:
        """This machine's paths; HOME and XDG_CONFIG_HOME come from `environ` (a test points them at tmp dirs)."""
        user_home = Path(environ.get("HOME") or Path.home())
        xdg = environ.get("XDG_CONFIG_HOME", "")
        config_home = Path(xdg) if os.path.isabs(xdg) else user_home / ".config"  # the XDG spec ignores relative
        return cls(honed_executable(), honed_home, user_home, config_home)

    @property
    def launchd_plist(self) -> Path:
        return self.user_home / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"

    @property
    def launchd_logs(self) -> Path:
        return self.user_home / "Library" / "Logs" / "honed"

    @property
    def systemd_unit(self) -> Path:
        return self.config_home / "systemd" / "user" / SYSTEMD_UNIT

    def target(self, manager: str) -> Path:
        return self.launchd_plist if manager == "launchd" else self.systemd_unit


# ------------------------------------------------------------------------------------------- rendering


def _fill(template: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        template = template.replace(f"__{name}__", value)
    return template


def _systemd_quoted(value: str) -> str:
    """`value` made safe inside a double-quoted systemd setting: `%` starts a specifier, `\\` and `"` escape."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def render_launchd_plist(paths: ServicePaths) -> str:
    """The LaunchAgent plist (XML text) for these paths."""
    standard = ["/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
    search_path = ":".join(dict.fromkeys([str(paths.honed_bin.parent), *standard]))
    template = (templates_dir() / f"{LAUNCHD_LABEL}.plist").read_text()
    return _fill(template, {"HONED_BIN": xml_escape(str(paths.honed_bin)),
                            "HONED_HOME": xml_escape(str(paths.honed_home)),
                            "LOG_DIR": xml_escape(str(paths.launchd_logs)),
                            "PATH": xml_escape(search_path)})


def render_systemd_unit(paths: ServicePaths) -> str:
    """The systemd user unit for these paths."""
    template = (templates_dir() / SYSTEMD_UNIT).read_text()
    # ExecStart also expands $VARIABLES (Environment= does not), so a literal `$` is doubled there only
    return _fill(template, {"HONED_BIN": _systemd_quoted(str(paths.honed_bin)).replace("$", "$$"),
                            "HONED_HOME": _systemd_quoted(str(paths.honed_home))})


def render(manager: str, paths: ServicePaths) -> str:
    return render_launchd_plist(paths) if manager == "launchd" else render_systemd_unit(paths)


# ------------------------------------------------------------------------------- the service managers


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _why(result: subprocess.CompletedProcess[str]) -> str:
    """The last line a failed command printed: the one that names the problem."""
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {result.returncode}"


def _require(tool: str, manager: str) -> None:
    if shutil.which(tool) is not None:
        return
    other = "--systemd" if manager == "launchd" else "--launchd"
    where = "macOS" if manager == "launchd" else "Linux with systemd"
    raise ServiceError(f"{tool} not found: {manager} services are for {where} (use `honed install {other}`, "
                       f"or --no-start to only write the file)")


def _check_systemd_session() -> None:
    probe = _run("systemctl", "--user", "show-environment")
    if probe.returncode != 0:
        raise ServiceError(f"no systemd user session ({_why(probe)}): log in to a desktop or ssh session, "
                           "or write the unit with --no-start and enable it from one")


def _launchd_domain() -> str:
    return f"gui/{os.getuid()}"


def _start(manager: str, target: Path) -> None:
    if manager == "launchd":
        # A re-install replaces the loaded job; bootout fails harmlessly when none is loaded.
        _run("launchctl", "bootout", f"{_launchd_domain()}/{LAUNCHD_LABEL}")
        loaded = _run("launchctl", "bootstrap", _launchd_domain(), str(target))
        if loaded.returncode != 0 and _run("launchctl", "load", "-w", str(target)).returncode != 0:  # before 10.10
            raise ServiceError(f"launchctl bootstrap {_launchd_domain()} {target} failed: {_why(loaded)}")
        return
    # restart starts the service, or moves a running one onto the new unit after a re-install
    for command in (("daemon-reload",), ("enable", SYSTEMD_UNIT), ("restart", SYSTEMD_UNIT)):
        result = _run("systemctl", "--user", *command)
        if result.returncode != 0:
            raise ServiceError(f"systemctl --user {' '.join(command)} failed: {_why(result)}")


def _stop(manager: str, target: Path) -> None:
    if manager == "launchd":
        if _run("launchctl", "bootout", f"{_launchd_domain()}/{LAUNCHD_LABEL}").returncode != 0:
            _run("launchctl", "unload", "-w", str(target))  # old macOS; not loaded at all is fine too
        return
    _run("systemctl", "--user", "disable", "--now", SYSTEMD_UNIT)  # not enabled at all is fine


# --------------------------------------------------------------------------------------- the commands


def install(manager: str, paths: ServicePaths, *, start: bool = True) -> str:
    """Write the service file (and HONED_HOME, and the launchd log folder); with `start`, load and start it.

    Returns what to tell the user. Raises ServiceError before writing anything when `start` is asked for and the
    service manager is missing or (systemd) has no user session.
    """
    tool = "launchctl" if manager == "launchd" else "systemctl"
    if start:
        _require(tool, manager)
        if manager == "systemd":
            _check_systemd_session()
    target = paths.target(manager)
    text = render(manager, paths)
    target.parent.mkdir(parents=True, exist_ok=True)
    paths.honed_home.mkdir(parents=True, exist_ok=True)  # launchd's WorkingDirectory must exist
    if manager == "launchd":
        paths.launchd_logs.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    if not start:
        return f"Wrote {target} (not started)"
    _start(manager, target)
    if manager == "launchd":
        return (f"Wrote {target} and loaded it as {_launchd_domain()}/{LAUNCHD_LABEL}; "
                f"logs in {paths.launchd_logs}/honed.log")
    return f"Wrote {target} and started {SYSTEMD_UNIT}; logs: journalctl --user -u honed -f"


def uninstall(manager: str, paths: ServicePaths) -> str:
    """Stop and unload the service (when its manager is here) and remove its file; returns what to tell the user."""
    target = paths.target(manager)
    tool = "launchctl" if manager == "launchd" else "systemctl"
    if shutil.which(tool) is not None:
        _stop(manager, target)
    if not target.exists():
        return f"Nothing to remove: {target} does not exist"
    target.unlink()
    if manager == "systemd" and shutil.which(tool) is not None:
        _run("systemctl", "--user", "daemon-reload")
    return f"Removed {target}"
