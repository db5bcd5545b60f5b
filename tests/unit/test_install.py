"""`honed install`: the rendered launchd plist and systemd unit are valid, and installing fails in one clear line
where the service manager is missing. Everything goes to tmp dirs; the real ~ and service managers stay untouched."""

from __future__ import annotations

import plistlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from honed.cli import main
from honed.install import ServicePaths, honed_executable, render_launchd_plist, render_systemd_unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def paths(tmp_path: Path) -> ServicePaths:
    # a HONED_HOME with characters that need escaping in XML (&) and in systemd settings (%, space)
    return ServicePaths.here(tmp_path / "state & 100% home",
                             environ={"HOME": str(tmp_path / "user"), "XDG_CONFIG_HOME": str(tmp_path / "config")})


@pytest.fixture
def sandbox_env(tmp_path: Path) -> dict[str, str]:
    """HOME, XDG_CONFIG_HOME and HONED_HOME in tmp, and a PATH with neither launchctl nor systemctl on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    return {"HOME": str(tmp_path / "user"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "HONED_HOME": str(tmp_path / "honed-home"), "PATH": str(empty)}


def test_paths_follow_home_and_xdg_config_home(paths, tmp_path):
    assert paths.honed_bin == honed_executable() and paths.honed_bin.is_file()
    assert paths.launchd_plist == tmp_path / "user/Library/LaunchAgents/com.honed.daemon.plist"
    assert paths.launchd_logs == tmp_path / "user/Library/Logs/honed"
    assert paths.systemd_unit == tmp_path / "config/systemd/user/honed.service"
    relative_xdg = ServicePaths.here(tmp_path, environ={"HOME": str(tmp_path / "user"), "XDG_CONFIG_HOME": "cfg"})
    assert relative_xdg.systemd_unit == tmp_path / "user/.config/systemd/user/honed.service"


def test_the_shipped_plist_template_is_itself_a_valid_plist():
    template = plistlib.loads((ROOT / "launchd/com.honed.daemon.plist").read_bytes())
    assert template["Label"] == "com.honed.daemon"
    assert template["ProgramArguments"] == ["__HONED_BIN__", "serve"]


def test_the_launchd_plist_is_a_valid_background_launch_agent(paths):
    text = render_launchd_plist(paths)
    assert not re.search(r"__[A-Z_]+__", text), "a placeholder was left unfilled"
    agent = plistlib.loads(text.encode())
    assert plistlib.loads(plistlib.dumps(agent)) == agent

    # what launchd requires, and what makes it a low-priority agent that survives crashes
    assert agent["Label"] == "com.honed.daemon"
    assert agent["ProgramArguments"] == [str(paths.honed_bin), "serve"]
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}
    assert agent["ProcessType"] == "Background"
    assert agent["LowPriorityIO"] is True
    assert agent["Nice"] == 10
    assert agent["ExitTimeOut"] >= 60  # time to finish a step and write a checkpoint before SIGKILL
    assert agent["ThrottleInterval"] > 0

    assert agent["EnvironmentVariables"]["HONED_HOME"] == str(paths.honed_home)
    assert agent["EnvironmentVariables"]["PATH"].split(":")[0] == str(paths.honed_bin.parent)
    assert agent["WorkingDirectory"] == str(paths.honed_home)
    assert agent["StandardOutPath"] == str(paths.launchd_logs / "honed.log")
    assert agent["StandardErrorPath"] == str(paths.launchd_logs / "honed.log")


def test_the_systemd_unit_passes_systemd_analyze_verify(paths, tmp_path):
    unit = paths.systemd_unit
    unit.parent.mkdir(parents=True)
    unit.write_text(render_systemd_unit(paths))
    runtime = tmp_path / "runtime"  # --user verify wants a runtime dir; no user session is needed
    runtime.mkdir(mode=0o700)
    verify = shutil.which("systemd-analyze") or pytest.fail("systemd-analyze is missing (apt-get install systemd)")
    result = subprocess.run([verify, "--user", "verify", str(unit)], capture_output=True, text=True,
                            env={"XDG_RUNTIME_DIR": str(runtime), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # not even a warning (an unknown key only warns)


def test_the_systemd_unit_runs_honed_serve_at_low_priority_and_stops_gracefully(paths):
    unit = render_systemd_unit(paths)
    settings = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert settings["ExecStart"] == f'"{paths.honed_bin}" serve'
    assert settings["Environment"] == f'"HONED_HOME={str(paths.honed_home).replace("%", "%%")}"'
    assert settings["Type"] in ("simple", "exec")
    assert settings["Restart"] == "on-failure"
    assert (settings["Nice"], settings["IOSchedulingClass"], settings["CPUSchedulingPolicy"]) == ("10", "idle",
                                                                                                  "batch")
    assert (settings["KillSignal"], settings["KillMode"]) == ("SIGTERM", "mixed")
    assert int(settings["TimeoutStopSec"]) >= 60
    assert settings["WantedBy"] == "default.target"


def test_install_print_shows_the_unit_and_writes_nothing(sandbox_env, tmp_path):
    result = CliRunner().invoke(main, ["install", "--systemd", "--print"], env=sandbox_env)
    assert result.exit_code == 0, result.output
    assert "[Service]" in result.output and f'ExecStart="{honed_executable()}" serve' in result.output
    assert f"HONED_HOME={sandbox_env['HONED_HOME']}" in result.output
    assert not (tmp_path / "config").exists() and not (tmp_path / "honed-home").exists()


def test_launchd_without_launchctl_fails_in_one_clear_line_and_writes_nothing(sandbox_env, tmp_path):
    result = CliRunner().invoke(main, ["install", "--launchd"], env=sandbox_env)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: launchctl not found"), result.output
    assert not (tmp_path / "user").exists()


def test_systemd_without_systemctl_fails_in_one_clear_line(sandbox_env):
    result = CliRunner().invoke(main, ["install", "--systemd"], env=sandbox_env)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: systemctl not found"), result.output


def test_no_start_writes_the_plist_and_log_folder_and_uninstall_removes_it(sandbox_env, tmp_path):
    runner = CliRunner()
    plist = tmp_path / "user/Library/LaunchAgents/com.honed.daemon.plist"
    result = runner.invoke(main, ["install", "--launchd", "--no-start"], env=sandbox_env)
    assert result.exit_code == 0, result.output
    assert plistlib.loads(plist.read_bytes())["EnvironmentVariables"]["HONED_HOME"] == sandbox_env["HONED_HOME"]
    assert (tmp_path / "user/Library/Logs/honed").is_dir() and (tmp_path / "honed-home").is_dir()

    removed = runner.invoke(main, ["uninstall", "--launchd"], env=sandbox_env)
    assert removed.exit_code == 0, removed.output
    assert not plist.exists()
    again = runner.invoke(main, ["uninstall", "--launchd"], env=sandbox_env)
    assert again.exit_code == 0 and "Nothing to remove" in again.output


def test_no_start_writes_the_systemd_unit_under_xdg_config_home(sandbox_env, tmp_path):
    result = CliRunner().invoke(main, ["install", "--systemd", "--no-start"], env=sandbox_env)
    assert result.exit_code == 0, result.output
    unit = tmp_path / "config/systemd/user/honed.service"
    assert f'ExecStart="{honed_executable()}" serve' in unit.read_text()
