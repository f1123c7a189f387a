"""The Qt-free core put together: settings → session runner → supervisor, history, optional simulator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ava_tray import paths
from ava_tray.audio import VoiceIO
from ava_tray.clock import Clock, SystemClock
from ava_tray.conversation import Transcript
from ava_tray.history import ReconnectHistory
from ava_tray.metrics import AudioLatency
from ava_tray.realtime.connection import Keepalive, endpoint_reachable
from ava_tray.session import RealtimeSession, RolloverPolicy, SessionOptions
from ava_tray.settings import Settings
from ava_tray.supervisor import Supervisor
from ava_tray.tools.wiring import ToolBox, engine_toolbox

if TYPE_CHECKING:
    from ava_tray.simulator import RealtimeSimulator

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchOptions:
    """How this run was started (command line), on top of the saved settings."""

    demo: bool = False
    session_limit: float | None = None
    keepalive: Keepalive = field(default_factory=Keepalive)
    rollover: RolloverPolicy | None = None
    """Overrides the settings' rollover policy (tests, benchmarks, `--no-rollover`)."""


def default_voice_io_factory(settings: Settings) -> Callable[[], VoiceIO]:
    """Real audio through sounddevice, on the devices chosen in Settings."""
    from ava_tray.audio.devices import SoundDeviceVoiceIO

    def make() -> VoiceIO:
        return SoundDeviceVoiceIO(input_device=settings.input_device or None,
                                  output_device=settings.output_device or None, audio_mode=settings.audio_mode)

    return make


class AvaEngine:
    """Runs AVA until stopped: the supervisor over real sessions (and the demo simulator if asked)."""

    def __init__(
        self,
        settings: Settings,
        api_key: str | None,
        *,
        launch: LaunchOptions | None = None,
        voice_io_factory: Callable[[], VoiceIO] | None = None,
        history: ReconnectHistory | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.launch = launch or LaunchOptions()
        self._api_key = api_key
        self.clock = clock or SystemClock()
        self.history = history if history is not None else ReconnectHistory(paths.data_dir() / "history.jsonl")
        self.latency = AudioLatency()
        self._custom_voice_io = voice_io_factory is not None
        saved = paths.data_dir() / "transcript.jsonl" if settings.save_transcript else None
        self.transcript = Transcript(enabled=settings.carry_conversation,
                                     budget_chars=settings.conversation_budget, save_to=saved)
        self.simulator: RealtimeSimulator | None = None
        self.mute_listeners: list[Callable[[bool], object]] = []
        """Called with the new value whenever `muted` is set, from the setter's thread (the mute tool runs on
        a thread of its own)."""
        self._url = settings.realtime_url
        # Tools, long-term memory and reminders (ava_tray/tools/wiring.py), declared in every session.
        self.toolbox: ToolBox = engine_toolbox(self, lambda new: self.replace_settings(new, self._api_key))
        self.toolbox.reminders.announcer = self
        self.session = RealtimeSession(self._session_options(), voice_io_factory or default_voice_io_factory(settings),
                                       clock=self.clock, latency=self.latency, transcript=self.transcript,
                                       tools=self.toolbox.registry)
        """The one session runner of this engine; new settings are swapped into it, never a second one."""
        self.supervisor = Supervisor(self.session.run, delays=settings.delays(), clock=self.clock,
                                     history=self.history, reachability=self._reachable)

    def announce(self, text: str) -> bool:
        """Say `text` through whichever session is live now (reminders); False when none is."""
        return self.session.announce(text)

    async def _reachable(self) -> bool:
        return await endpoint_reachable(self._url)

    @property
    def muted(self) -> bool:
        """The microphone is muted: no audio goes to the server."""
        return self.session.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.session.muted = value
        for listener in list(self.mute_listeners):
            listener(value)

    def _session_options(self) -> SessionOptions:
        rollover = self.launch.rollover or self.settings.rollover_policy()
        return SessionOptions(url=self._url, api_key=self._api_key, config=self.settings.session_config(),
                              keepalive=self.launch.keepalive, rollover=rollover)

    async def run(self) -> None:
        """Start the demo simulator if asked, then supervise sessions until `stop()`."""
        simulator = None
        if self.launch.demo:
            from ava_tray.simulator import RealtimeSimulator  # demo only: not loaded on a normal start

            limit = self.launch.session_limit if self.launch.session_limit is not None else 3600.0
            simulator = RealtimeSimulator(session_limit=limit, record_audio=False)
            await simulator.start()
            self.simulator = simulator
            logger.info("demo: embedded simulator at %s", simulator.url)
            self._url = simulator.url
            self.session.options = self._session_options()
        try:
            async with self.toolbox.running():
                await self.supervisor.run()
        finally:
            if simulator is not None:
                await simulator.stop()

    def stop(self) -> None:
        """End AVA: no reconnect, everything closed (the supervisor's one cleanup path)."""
        self.supervisor.stop()

    def replace_settings(self, settings: Settings, api_key: str | None) -> None:
        """Use new settings and key from the next session on (e.g. after Settings → Save)."""
        self.settings = settings
        self._api_key = api_key
        if not self.launch.demo:
            self._url = settings.realtime_url
        self.transcript.enabled = settings.carry_conversation
        self.transcript.budget_chars = settings.conversation_budget
        # The running conversation keeps its owner: mute, announcements and the next session (a rollover
        # included) all see the new options through the same RealtimeSession.
        self.session.options = self._session_options()
        if not self._custom_voice_io:
            self.session.voice_io_factory = default_voice_io_factory(settings)
        self.supervisor.delays = settings.delays()
