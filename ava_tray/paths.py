"""Where AVA keeps its files (the platform's user data, config and log folders) and how to start it again."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs

APP_NAME = "ava-tray"


def data_dir() -> Path:
    """Reconnect history and other records (e.g. ~/.local/share/ava-tray)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    """Settings (e.g. ~/.config/ava-tray)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def log_dir() -> Path:
    """Log files (e.g. ~/.local/state/ava-tray/log)."""
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def runtime_dir() -> Path:
    """The single-instance lock and socket."""
    return Path(platformdirs.user_runtime_dir(APP_NAME, appauthor=False))


def launch_command(executable: str | None = None, frozen: bool | None = None) -> list[str]:
    """How to start this same AVA: the frozen executable itself, or `python -m ava_tray`."""
    executable = executable or sys.executable
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    return [executable] if frozen else [executable, "-m", "ava_tray"]
