"""Shared fixtures: every test gets its own config, data and log folders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the platform's user folders at a temporary place so no test touches real settings."""
    home = tmp_path / "user"
    for name, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state"),
                      ("XDG_CACHE_HOME", "cache")):
        folder = home / sub
        folder.mkdir(parents=True)
        monkeypatch.setenv(name, str(folder))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AVA_REALTIME_URL", raising=False)
    yield home


def pytest_report_header(config: pytest.Config) -> str:
    services = "yes" if os.environ.get("AVA_SERVICES") else "no (run through scripts/with-services.sh)"
    return f"AVA services (X tray, PulseAudio, Secret Service): {services}"


@pytest.fixture
def voice_io_factory() -> object:
    """Real audio: PortAudio through the PulseAudio null sinks that scripts/with-services.sh starts."""
    import pulse  # tests/pulse.py

    if not pulse.pulse_available():
        pytest.skip("no PulseAudio: run through `bash scripts/with-services.sh`")
    from ava_tray.audio.devices import SoundDeviceVoiceIO

    return SoundDeviceVoiceIO
