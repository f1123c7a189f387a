"""Start at login: the real XDG autostart entry here; the Windows and macOS writers as generated content (fakes)."""

from __future__ import annotations

import plistlib
import sys
from pathlib import Path

from ava_tray.ui import autostart


def test_linux_autostart_entry_is_written_and_removed(isolated_user_dirs: Path) -> None:
    assert not autostart.is_enabled("linux")
    autostart.set_enabled(True, platform="linux")
    entry = isolated_user_dirs / "config" / "autostart" / "ava-tray.desktop"
    assert entry == autostart.linux_entry_path() and entry.is_file()
    text = entry.read_text()
    assert f"Exec={sys.executable} -m ava_tray\n" in text or f'Exec="{sys.executable}" -m ava_tray\n' in text
    assert "X-GNOME-Autostart-Delay=5" in text and "Type=Application" in text
    assert autostart.is_enabled("linux")
    autostart.set_enabled(False, platform="linux")
    assert not entry.exists() and not autostart.is_enabled("linux")


def test_launch_command_frozen_or_not() -> None:
    assert autostart.launch_command("/usr/bin/python3", frozen=False) == ["/usr/bin/python3", "-m", "ava_tray"]
    assert autostart.launch_command("/opt/AVA Tray/ava-tray", frozen=True) == ["/opt/AVA Tray/ava-tray"]
    assert 'Exec="/opt/AVA Tray/ava-tray"\n' in autostart.desktop_entry(["/opt/AVA Tray/ava-tray"])


def test_fake_windows_run_key_value() -> None:
    """Windows cannot run here: check the value the Run key would get."""
    value = autostart.windows_run_value([r"C:\Program Files\AVA Tray\ava-tray.exe"])
    assert value == r'"C:\Program Files\AVA Tray\ava-tray.exe"'
    assert autostart.RUN_KEY == r"Software\Microsoft\Windows\CurrentVersion\Run"
    assert autostart.windows_run_value([r"C:\Python311\python.exe", "-m", "ava_tray"]) == \
        r"C:\Python311\python.exe -m ava_tray"


def test_fake_macos_launch_agent_plist() -> None:
    """macOS cannot run here: check the LaunchAgent plist that would be written."""
    data = plistlib.loads(autostart.launch_agent_plist(["/Applications/AVA Tray.app/Contents/MacOS/ava-tray"]))
    assert data["RunAtLoad"] is True
    assert data["ProgramArguments"] == ["/Applications/AVA Tray.app/Contents/MacOS/ava-tray"]
    assert data["Label"] == autostart.LAUNCH_AGENT_LABEL
    assert autostart.mac_plist_path().parent.parts[-2:] == ("Library", "LaunchAgents")
