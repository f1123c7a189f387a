"""The Qt-free core put together: settings → session runner → supervisor, history, tools, optional simulator.

The engine owns AVA's truth (the supervisor's state, mute, the echo state, the history summary) and
publishes it as one immutable `Snapshot` on every change; front ends render what they are handed and
call the engine's commands. Built the same way for the console and the tray by
`ava_tray.bootstrap.build_engine`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ava_tray import paths
from ava_tray.audio import AudioDeviceError, MicBlockHandler, PlaybackCut, VoiceIO
from ava_tray.clock import Clock, SystemClock
from ava_tray.conversation import Transcript
from ava_tray.conversation_log import ConversationLog, LoggedTools
from ava_tray.history import ReconnectHistory, last_cause, reconnects_since, start_of_today
from ava_tray.ledger import LedgerUnavailable, SpendLedger, budget_of, local_day
from ava_tray.metrics import AudioLatency
from ava_tray.pricing import PriceOverrideError, Usage, cost_usd, parse_price_overrides, price_for
from ava_tray.realtime.connection import Keepalive, endpoint_reachable
from ava_tray.realtime.events import SessionConfig
from ava_tray.realtime.models import takes_reasoning
from ava_tray.realtime.providers import ProviderError, provider_for
from ava_tray.session import GateOptions, RealtimeSession, RolloverPolicy, SessionOptions
from ava_tray.settings import Settings
from ava_tray.status import GO_ON, LastInterruption, Snapshot, spend_text
from ava_tray.supervisor import (
    Connected,
    Error,
    Paused,
    ReconnectDelays,
    Stopped,
    Supervisor,
    SupervisorState,
)
from ava_tray.tools.hooks import LogNotifier, Notifier, SettingsFile
from ava_tray.tools.mcp.status import McpStatus
from ava_tray.tools.wiring import ToolBox, build_toolbox

if TYPE_CHECKING:
    from ava_tray.simulator import RealtimeSimulator

logger = logging.getLogger(__name__)

SnapshotListener = Callable[[Snapshot], None]


@dataclass(frozen=True)
class LaunchOptions:
    """How this run was started (the command line), on top of the saved settings; never saved."""

    demo: bool = False
    session_limit: float | None = None
    keepalive: Keepalive = field(default_factory=Keepalive)
    audio_mode: str | None = None
    """`--audio-mode`: overrides the settings' audio mode for this run."""
    rollover_enabled: bool | None = None
    """`--rollover` / `--no-rollover`: overrides whether sessions roll over (the margin stays the settings')."""
    voice_gate: bool | None = None
    """`--voice-gate` / `--no-voice-gate`: overrides whether the microphone is gated."""
    rollover: RolloverPolicy | None = None
    """A whole rollover policy instead of the settings' (tests, benchmarks)."""

    def apply(self, settings: Settings) -> Settings:
        """The settings this run uses: the saved ones with the command line's overrides."""
        changes: dict[str, object] = {}
        if self.audio_mode:
            changes["audio_mode"] = self.audio_mode
        if self.rollover_enabled is not None:
            changes["rollover"] = self.rollover_enabled
        if self.voice_gate is not None:
            changes["voice_gate"] = self.voice_gate
        return replace(settings, **changes) if changes else settings  # type: ignore[arg-type]


def session_config_for(settings: Settings) -> SessionConfig:
    """The session settings a user chose: model (or deployment), voice, reasoning where it is taken, truncation."""
    return SessionConfig(model=settings.model, voice=settings.voice, instructions=settings.instructions,
                         reasoning_effort=settings.reasoning_effort if takes_reasoning(settings.model) else None,
                         retention_ratio=settings.retention_ratio,
                         context_limit_tokens=settings.context_limit_tokens or None)


def rollover_policy_for(settings: Settings) -> RolloverPolicy:
    """When to renew a session before its limit, from the settings."""
    return RolloverPolicy(enabled=settings.rollover, margin=settings.rollover_margin,
                          hard_margin=min(60.0, settings.rollover_margin / 2))


def delays_for(settings: Settings) -> ReconnectDelays:
    """The reconnect delays a user chose (the seed's 3/5/10 s by default)."""
    return ReconnectDelays(session_expired=settings.delay_session_expired,
                           connection_lost=settings.delay_connection_lost, other=settings.delay_other)


def default_voice_io_factory(settings: Settings) -> Callable[[], VoiceIO]:
    """Real audio through sounddevice, on the devices chosen in Settings."""
    from ava_tray.audio.devices import SoundDeviceVoiceIO
    from ava_tray.audio.echo import EchoMemory

    memory = EchoMemory()  # what echo cancellation learnt of the room outlives a reconnect

    def make() -> VoiceIO:
        return SoundDeviceVoiceIO(input_device=settings.input_device or None,
                                  output_device=settings.output_device or None, audio_mode=settings.audio_mode,
                                  echo_memory=memory)

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
        settings_file: SettingsFile | None = None,
        ledger: SpendLedger | None = None,
    ) -> None:
        self.settings = settings
        """The saved settings (what Settings shows); `effective_settings` adds the command line."""
        self.launch = launch or LaunchOptions()
        self._api_key = api_key
        self.clock = clock or SystemClock()
        self.history = history if history is not None else ReconnectHistory(paths.data_dir() / "history.jsonl")
        self.latency = AudioLatency()
        self._custom_voice_io = voice_io_factory
        effective = self.effective_settings
        self.transcript = Transcript(enabled=settings.carry_conversation, budget_chars=settings.conversation_budget)
        self.conversation_log = ConversationLog(save_dir=paths.data_dir() / "conversation",
                                                saving=settings.save_transcript, wall=self.clock.wall)
        """The conversation as the user reads it (the conversation window); it saves it when asked to."""
        self.simulator: RealtimeSimulator | None = None
        self._url = settings.realtime_url
        self._started_wall = self.clock.wall()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._listeners: list[SnapshotListener] = []
        self._settings_file = settings_file
        self.ledger = ledger if ledger is not None else _open_ledger(self.launch.demo, self.clock)
        """What AVA has cost, by day and model (the demo's simulated replies cost nothing: kept in memory)."""
        self._warned_on: str | None = None
        self._pause_pending: str | None = None
        # Tools, long-term memory and reminders (ava_tray/tools/wiring.py), declared in every session.
        self.toolbox: ToolBox = build_toolbox(
            settings=lambda: self.settings, apply_settings=lambda new: self.replace_settings(new, self._api_key),
            clock=self.clock, status=lambda: self.snapshot, mute=self.set_muted, settings_file=settings_file)
        self.toolbox.reminders.announcer = self
        self.toolbox.reminders.notifier = LogNotifier()
        self.session = RealtimeSession(self._session_options(), self._voice_io_factory_for(effective),
                                       clock=self.clock, latency=self.latency, transcript=self.transcript,
                                       tools=LoggedTools(self.toolbox.registry, self.conversation_log),
                                       on_usage=self._used, on_uplink=self._uplink)
        """The one session runner of this engine; new settings are swapped into it, never a second one."""
        self.supervisor = Supervisor(self.session.run, delays=delays_for(effective), clock=self.clock,
                                     history=self.history, reachability=self._reachable)
        self._snapshot = self._summarised(Snapshot(state=self.supervisor.state, started_at=self.clock.monotonic()))
        self.supervisor.subscribe(self._on_state)
        if self.toolbox.mcp is not None:
            self.toolbox.mcp.subscribe(self._tools_changed)
        self.supervisor.subscribe_transcript(self.conversation_log.heard)
        self._check_budget()

    # -- the status --------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The whole status now."""
        return self._snapshot

    def subscribe(self, listener: SnapshotListener) -> Callable[[], None]:
        """Call `listener` with every new snapshot (on the event loop); returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _summarised(self, snapshot: Snapshot) -> Snapshot:
        records = self.history.records
        last = last_cause(records)
        return replace(snapshot, attempt=self.supervisor.attempt,
                       reconnects_today=reconnects_since(records, start_of_today(self.clock.wall())),
                       last_interruption=LastInterruption(last.cause, last.message, last.at) if last else None,
                       spend_today=self.ledger.cost_today(), spend_month=self.ledger.cost_this_month(),
                       budget_usd=self.settings.daily_budget, sent_today=self.ledger.uplink_today())

    def _publish(self, snapshot: Snapshot) -> None:
        if snapshot == self._snapshot:
            return
        self._snapshot = snapshot
        for listener in list(self._listeners):
            try:
                listener(snapshot)
            except Exception:
                logger.exception("a status listener failed")

    def _on_state(self, state: SupervisorState) -> None:
        self.conversation_log.on_state(state)
        self._publish(self._summarised(replace(self._snapshot, state=state)))
        if self._pause_pending is not None and not (isinstance(state, Connected) and state.speaking):
            reason, self._pause_pending = self._pause_pending, None
            self._pause(reason)

    @property
    def notifier(self) -> Notifier:
        """Where AVA's notices go (reminders, the budget): the console's lines or the tray's notifications."""
        return self.toolbox.reminders.notifier

    @notifier.setter
    def notifier(self, notifier: Notifier) -> None:
        self.toolbox.reminders.notifier = notifier

    # -- spend and the daily budget -------------------------------------------------------------------

    def _used(self, model: str, usage: Usage) -> None:
        """A response (or a transcription) reported its usage: record its cost, then check the budget."""
        try:
            overrides = parse_price_overrides(self.settings.prices)
        except PriceOverrideError:
            overrides = {}
        price = price_for(model, overrides)
        if price is None and not (usage.transcription_seconds or usage.transcription_tokens_in):
            logger.info("no price is known for %s: its cost counts as $0 (set one under Settings → Cost)", model)
        self.ledger.record(model, usage, cost_usd(usage, price), session=f"{self._started_wall:.0f}-"
                           f"{self.supervisor.attempt}")
        self._check_budget()

    def _check_budget(self) -> None:
        """Publish the spend; at 80 % of the daily budget say so once, at 100 % pause (after AVA's reply)."""
        budget = budget_of(self.ledger, self.settings.daily_budget)
        today = local_day(self.clock.wall())
        self._publish(self._summarised(self._snapshot))
        if budget.warn and self._warned_on != today and not budget.spent_all:
            self._warned_on = today
            self.notifier.notify("AVA's budget", f"{spend_text(budget.spent_usd)} of today's "
                                 f"{spend_text(budget.limit_usd)} is spent: AVA pauses at the budget.")
        state = self.supervisor.state
        if budget.paused and not isinstance(state, (Paused, Stopped)):
            reason = f"today's budget of {spend_text(budget.limit_usd)} is spent"
            if isinstance(state, Connected) and state.speaking:
                self._pause_pending = reason  # let AVA finish the sentence it is saying
            else:
                self._pause(reason)
        elif isinstance(state, Paused) and not budget.paused:
            logger.info("the budget allows sessions again: resuming")
            self.supervisor.resume()

    def _pause(self, reason: str) -> None:
        self.supervisor.pause(reason)
        self.notifier.notify("AVA paused", f"AVA paused: {reason}. It goes on tomorrow, or now if you choose "
                             f"“{GO_ON}”.")

    async def _resume_each_day(self) -> None:
        """Just after local midnight a new day's budget starts: check it (a pause lifts by itself)."""
        while True:
            now = self.clock.wall()
            tomorrow = dt.datetime.fromtimestamp(now).date() + dt.timedelta(days=1)
            midnight = dt.datetime.combine(tomorrow, dt.time()).timestamp()
            await self.clock.sleep_until(self.clock.monotonic() + max(1.0, midnight - now + 1.0))
            self._check_budget()

    def go_on_today(self) -> None:
        """Go on past today's budget (the user chose to): sessions open again until tomorrow."""
        self.ledger.go_on_today()
        self._pause_pending = None
        self._check_budget()

    def use_model(self, model: str) -> None:
        """Switch to `model` (the one offered for a refused model), keep it in the settings, reconnect now."""
        if self._settings_file is not None:
            try:
                self._settings_file.save(replace(self._settings_file.load_saved(), model=model))
            except (OSError, ValueError) as exc:
                logger.warning("the model %s could not be saved: %s", model, exc)
        logger.info("switching to the model %s", model)
        self.replace_settings(replace(self.settings, model=model), self._api_key)
        self.restart_now()

    def take_status_action(self) -> None:
        """The one step out of the current state that `describe()` offers (`TrayStatus.action`)."""
        state = self._snapshot.state
        if isinstance(state, Error) and state.ending.use_model:
            self.use_model(state.ending.use_model)
        elif isinstance(state, Paused):
            self.go_on_today()

    def _tools_changed(self, status: McpStatus) -> None:
        self._publish(replace(self._snapshot, tool_lines=tuple(status.lines())))

    # -- mute: one owner, changed on the event loop --------------------------------------------------

    @property
    def muted(self) -> bool:
        """The microphone is muted: no audio goes to the server."""
        return self._snapshot.muted

    @muted.setter
    def muted(self, value: bool) -> None:
        self.set_muted(value)

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute; from another thread (a tool's) the change is made on the event loop."""
        self._on_loop(self._apply_mute, muted)

    def set_push_to_talk(self, enabled: bool, shortcut: str = "") -> None:
        """Push-to-talk on or off: with it the microphone opens only while `shortcut` is held."""
        self._on_loop(self._apply_push_to_talk, enabled, shortcut)

    def hold_to_talk(self, held: bool) -> None:
        """The push-to-talk shortcut went down (True) or up; nothing while push-to-talk is off."""
        self._on_loop(self._apply_hold, held)

    def _on_loop(self, change: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread and not loop.is_closed():
            loop.call_soon_threadsafe(change, *args)
        else:
            change(*args)

    def _apply_mute(self, muted: bool) -> None:
        if muted != self._snapshot.muted:
            logger.info("microphone %s", "muted" if muted else "unmuted")
        self._publish(replace(self._snapshot, muted=muted))
        self._apply_microphone()

    def _apply_push_to_talk(self, enabled: bool, shortcut: str) -> None:
        if enabled != self._snapshot.push_to_talk:
            logger.info("push-to-talk %s", f"on ({shortcut})" if enabled else "off")
        self._publish(replace(self._snapshot, push_to_talk=enabled, talking=False, shortcut=shortcut))
        self._apply_microphone()

    def _apply_hold(self, held: bool) -> None:
        if not self._snapshot.push_to_talk or held == self._snapshot.talking:
            return
        logger.info("push-to-talk %s", "held: microphone open" if held else "released: microphone closed")
        self._publish(replace(self._snapshot, talking=held))
        self._apply_microphone()

    def _apply_microphone(self) -> None:
        """Whether microphone audio goes to the server: not when muted, nor in push-to-talk while not held (the
        conversation holds its voice gate open while the key is held; without a gate it mutes)."""
        snapshot = self._snapshot
        self.session.muted = snapshot.muted
        self.session.push_to_talk = snapshot.push_to_talk
        self.session.key_held = snapshot.talking

    # -- audio ---------------------------------------------------------------------------------------

    def _voice_io_factory_for(self, settings: Settings) -> Callable[[], VoiceIO]:
        make = self._custom_voice_io or default_voice_io_factory(settings)
        return lambda: _ReportedVoiceIO(make(), self._audio_opened, self.conversation_log.barged_in)

    def _audio_opened(self, echo_state: str | None) -> None:
        snapshot = replace(self._snapshot, voice_gate=self.session.gate_state)
        self._publish(replace(snapshot, echo=echo_state) if echo_state is not None else snapshot)

    def _uplink(self, sending: bool, sent_bytes: int) -> None:
        """Microphone audio started or stopped leaving the machine; `sent_bytes` went since the last report."""
        opened = sending and not self._snapshot.sending
        if sent_bytes or opened:
            self.ledger.add_uplink(sent_bytes, openings=int(opened))
        self._publish(replace(self._snapshot, sending=sending, sent_today=self.ledger.uplink_today()))

    # -- running -------------------------------------------------------------------------------------

    def announce(self, text: str) -> bool:
        """Say `text` through whichever session is live now (reminders); False when none is."""
        return self.session.announce(text)

    async def _reachable(self) -> bool:
        return await endpoint_reachable(self._url)

    @property
    def effective_settings(self) -> Settings:
        """The settings in use: the saved ones with the command line's overrides."""
        return self.launch.apply(self.settings)

    def _session_options(self) -> SessionOptions:
        effective = self.effective_settings
        rollover = self.launch.rollover or rollover_policy_for(effective)
        try:
            provider = provider_for(self._url, effective.provider)
        except ProviderError as exc:  # AVA_PROVIDER says something AVA does not know: recognise it from the URL
            logger.warning("%s", exc)
            provider = provider_for(self._url, effective.provider, env={})
        return SessionOptions(url=self._url, api_key=self._api_key, config=session_config_for(effective),
                              keepalive=self.launch.keepalive, rollover=rollover, provider=provider,
                              gate=GateOptions(enabled=effective.voice_gate, sensitivity=effective.gate_sensitivity))

    async def run(self) -> None:
        """Start the demo simulator if asked, then supervise sessions until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
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
        daily = asyncio.create_task(self._resume_each_day(), name="ava-budget-day")
        try:
            async with self.toolbox.running():
                await self.supervisor.run()
        finally:
            daily.cancel()
            await asyncio.gather(daily, return_exceptions=True)
            if simulator is not None:
                await simulator.stop()

    def stop(self) -> None:
        """End AVA: no reconnect, everything closed (the supervisor's one cleanup path)."""
        self.supervisor.stop()

    def restart_now(self) -> None:
        """Skip the countdown (or leave Error) and open a fresh session now."""
        self.supervisor.restart_now()

    def network_changed(self, online: bool) -> None:
        """The OS says the network went down or came back."""
        self.supervisor.network_changed(online)

    def replace_settings(self, settings: Settings, api_key: str | None) -> None:
        """Use new settings and key from the next session on (e.g. after Settings → Save)."""
        self.settings = settings
        self._api_key = api_key
        if not self.launch.demo:
            self._url = settings.realtime_url
        self.transcript.enabled = settings.carry_conversation
        self.transcript.budget_chars = settings.conversation_budget
        self.conversation_log.set_saving(settings.save_transcript)
        # The running conversation keeps its owner: mute, announcements and the next session (a rollover
        # included) all see the new options through the same RealtimeSession.
        effective = self.effective_settings
        self.session.options = self._session_options()
        self.session.voice_io_factory = self._voice_io_factory_for(effective)
        self.supervisor.delays = delays_for(effective)
        self._check_budget()  # a budget raised (or set) in Settings applies at once


def _open_ledger(demo: bool, clock: Clock) -> SpendLedger:
    if demo:
        return SpendLedger(None, clock=clock)
    try:
        return SpendLedger(paths.data_dir() / "spend.sqlite3", clock=clock)
    except LedgerUnavailable as exc:
        logger.warning("%s Spend is counted only until AVA quits.", exc)
        return SpendLedger(None, clock=clock)


class _ReportedVoiceIO:
    """A `VoiceIO` that tells the engine how its audio front end was set up once it opened (echo state), and
    when a barge-in cut AVA short."""

    def __init__(self, inner: VoiceIO, opened: Callable[[str | None], None], cut: Callable[[int], None]) -> None:
        self.inner = inner
        self._opened = opened
        self._cut = cut
        self.play: Callable[[str, bytes], None] = inner.play
        """The inner `play` itself: nothing added on the path to the speaker."""

    async def open(self, on_mic_block: MicBlockHandler) -> None:
        await self.inner.open(on_mic_block)
        front = getattr(self.inner, "echo", None)
        self._opened(getattr(front, "state", None))

    def interrupt(self) -> PlaybackCut | None:
        cut = self.inner.interrupt()
        if cut is not None and cut.item_id:
            self._cut(cut.played_ms)  # a barge-in cut AVA's turn: the conversation log marks it
        return cut

    def set_active(self, active: bool) -> None:
        self.inner.set_active(active)

    def wake_on_sound(self, level: float | None) -> None:
        self.inner.wake_on_sound(level)

    def echo_resemblance(self, heard: bytes, ended_at: float) -> float:
        return self.inner.echo_resemblance(heard, ended_at)

    @property
    def is_playing(self) -> bool:
        return self.inner.is_playing

    @property
    def failure(self) -> AudioDeviceError | None:
        return self.inner.failure

    async def close(self) -> None:
        await self.inner.close()
