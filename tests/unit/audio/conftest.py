"""The stand-in PortAudio for the device layer's tests without devices."""

from __future__ import annotations

import pytest
from portaudio_stand_in import StandInPortAudio

from ava_tray.audio import devices as audio_devices


@pytest.fixture
def portaudio(monkeypatch: pytest.MonkeyPatch) -> StandInPortAudio:
    """`SoundDeviceVoiceIO` opens its streams on a `StandInPortAudio`."""
    stand_in = StandInPortAudio()
    monkeypatch.setattr(audio_devices, "_import_sounddevice", lambda: stand_in)
    return stand_in
