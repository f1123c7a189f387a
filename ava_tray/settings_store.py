"""Reading and writing `Settings` in an INI file through QSettings (QtCore only: no display needed).

The console and the tray read the same file. A corrupt or unreadable file falls back to the defaults
with a warning, and is set aside rather than overwritten. The environment's `AVA_REALTIME_URL` applies
to this run only and is never saved.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings

from ava_tray import paths
from ava_tray.settings import Settings

logger = logging.getLogger(__name__)


def settings_path() -> Path:
    return paths.config_dir() / "settings.ini"


class SettingsStore:
    """Loads and saves `Settings` in an INI file through QSettings."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or settings_path()
        self.warning: str | None = None

    def _qsettings(self) -> QSettings:
        return QSettings(str(self.path), QSettings.Format.IniFormat)

    def load(self) -> Settings:
        """The saved settings (defaults for anything missing or invalid), with env overrides applied."""
        settings = self._load_file()
        url = os.environ.get("AVA_REALTIME_URL", "").strip()
        if url:
            settings = replace(settings, realtime_url=url)
        return settings

    def load_saved(self) -> Settings:
        """The settings as saved in the file, without this run's environment overrides."""
        return self._load_file()

    def _load_file(self) -> Settings:
        if not self.path.exists():
            return Settings()
        if not os.access(self.path, os.R_OK):
            return self._fallback("it cannot be read (permission denied)", set_aside=False)
        store = self._qsettings()
        if store.status() != QSettings.Status.NoError:
            return self._fallback("it is not a valid settings file")
        values: dict[str, Any] = {}
        defaults = Settings()
        bad: list[str] = []
        for field in fields(Settings):
            if not store.contains(field.name):
                continue
            raw = store.value(field.name)
            try:
                values[field.name] = _coerce(raw, type(getattr(defaults, field.name)))
            except (TypeError, ValueError):
                bad.append(field.name)
        settings = replace(defaults, **values)
        problems = settings.problems()
        if bad or problems:
            self.warning = ("Some settings were invalid and were reset to their defaults: "
                            + ", ".join(bad + problems))
            logger.warning("%s", self.warning)
            for name in bad:
                values.pop(name, None)
            settings = replace(defaults, **values)
            if settings.problems():
                settings = defaults
        return settings

    def _fallback(self, why: str, *, set_aside: bool = True) -> Settings:
        self.warning = f"The settings file {self.path} was ignored because {why}; using the defaults."
        if set_aside:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(self.path, aside)
                self.warning += f" The old file was kept as {aside.name}."
            except OSError:
                pass
        logger.warning("%s", self.warning)
        return Settings()

    def save(self, settings: Settings) -> None:
        """Write every field; raise ValueError naming the problems if the values are invalid."""
        problems = settings.problems()
        if problems:
            raise ValueError(" ".join(problems))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        store = self._qsettings()
        for name, value in asdict(settings).items():
            store.setValue(name, value)
        store.sync()
        if store.status() != QSettings.Status.NoError:
            raise OSError(f"Could not write the settings to {self.path}.")


def _coerce(raw: Any, kind: type) -> Any:
    """QSettings gives INI values back as strings; turn them into the field's type."""
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise ValueError(f"not a boolean: {raw!r}")
    if kind is float:
        value = float(raw)
        if value != value:  # NaN
            raise ValueError("not a number")
        return value
    if kind is str:
        if not isinstance(raw, str):
            raise TypeError("not text")
        return raw
    return kind(raw)
