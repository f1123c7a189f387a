"""Start at login: an XDG autostart entry (Linux), the `Run` registry key (Windows), a LaunchAgent (macOS).

Qt-free. The content of each entry is built by a pure function so that the Windows and macOS writers
are tested here too, by generating what they would write.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import plistlib
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from ava_tray.paths import launch_command

logger = logging.getLogger(__name__)

APP_ID = "ava-tray"
LAUNCH_AGENT_LABEL = "io.github.ava-tray"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
RUN_VALUE = "AVA Tray"
AUTOSTART_DELAY_S = 5


class AutostartError(Exception):
    """Start at login could not be changed; the message says why."""


def _desktop_quote(arg: str) -> str:
    """Quote one argument for a .desktop Exec line (the spec's double-quote rules)."""
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`%'):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`").replace("$", "\\$")
    return '"' + escaped.replace("%", "%%") + '"'


def desktop_entry(command: list[str]) -> str:
    """The XDG autostart entry; the delay lets the panel (tray host) come up first."""
    exec_line = " ".join(_desktop_quote(arg) for arg in command)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=AVA Tray\n"
        "Comment=Voice assistant in the system tray\n"
        f"Exec={exec_line}\n"
        "Icon=ava-tray\n"
        "Terminal=false\n"
        "Categories=Utility;AudioVideo;\n"
        "X-GNOME-Autostart-enabled=true\n"
        f"X-GNOME-Autostart-Delay={AUTOSTART_DELAY_S}\n"
        f"X-KDE-autostart-after=panel\n"
    )


def windows_run_value(command: list[str]) -> str:
    """The `Run` key's value: a Windows command line."""
    return subprocess.list2cmdline(command)


def launch_agent_plist(command: list[str]) -> bytes:
    """The macOS LaunchAgent that starts AVA at login."""
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
    })


def linux_entry_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME", "").strip() or str(Path.home() / ".config")
    return Path(config) / "autostart" / f"{APP_ID}.desktop"


def mac_plist_path() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def is_enabled(platform: str | None = None) -> bool:
    """Whether AVA starts at login on this platform."""
    platform = platform or sys.platform
    if platform.startswith("win"):
        return _windows_read() is not None
    if platform == "darwin":
        return mac_plist_path().exists()
    path = linux_entry_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return "Hidden=true" not in text and "X-GNOME-Autostart-enabled=false" not in text


def set_enabled(enabled: bool, command: list[str] | None = None, platform: str | None = None) -> None:
    """Turn start at login on or off; raise AutostartError with a sentence if that fails."""
    platform = platform or sys.platform
    command = command or launch_command()
    try:
        if platform.startswith("win"):
            _windows_write(windows_run_value(command) if enabled else None)
        elif platform == "darwin":
            _write_or_remove(mac_plist_path(), launch_agent_plist(command) if enabled else None)
        else:
            _write_or_remove(linux_entry_path(), desktop_entry(command).encode() if enabled else None)
    except OSError as exc:
        raise AutostartError(f"Could not change start at login: {exc.strerror or exc}.") from None
    logger.info("start at login %s (%s)", "on" if enabled else "off", shlex.join(command))


def _write_or_remove(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def _windows_read() -> str | None:  # pragma: no cover - Windows only
    winreg = _winreg()
    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            value, _ = winreg.QueryValueEx(key, RUN_VALUE)
            return str(value)
    except OSError:
        return None


def _windows_write(value: str | None) -> None:  # pragma: no cover - Windows only
    winreg = _winreg()
    with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
        if value is None:
            with contextlib.suppress(FileNotFoundError):
                winreg.DeleteValue(key, RUN_VALUE)
        else:
            winreg.SetValueEx(key, RUN_VALUE, 0, winreg.REG_SZ, value)


def _winreg() -> Any:  # pragma: no cover - Windows only
    return importlib.import_module("winreg")
