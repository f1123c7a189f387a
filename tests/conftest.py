"""Shared fixtures: every test gets its own config, data and log folders."""

from __future__ import annotations

import itertools
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (the fast lane), spread the integration modules evenly among the unit modules.

    Unit tests keep the CPU busy; integration tests mostly wait for audio played in real time. Collected in
    folder order, each worker's first share is all one kind (measured here, 4 workers on 2 cores: 40-42 s);
    interleaved module by module (so module fixtures are built once per worker), 34-35 s. The order within a
    module is kept.
    """
    if not (hasattr(config, "workerinput") or config.getoption("numprocesses", None)):
        return
    modules = [list(tests) for _, tests in itertools.groupby(items, key=lambda item: item.path)]
    integration = [m for m in modules if "integration" in m[0].path.parts]
    others = [m for m in modules if "integration" not in m[0].path.parts]
    if not integration or not others:
        return
    spread = [((k + 0.5) / len(integration), 0, m) for k, m in enumerate(integration)]
    spread += [((k + 0.5) / len(others), 1, m) for k, m in enumerate(others)]
    spread.sort(key=lambda place: place[:2])
    items[:] = [item for _, _, module in spread for item in module]


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
