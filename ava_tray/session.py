"""A Realtime conversation: one or (during a handover) two server sessions sharing the audio devices.

`RealtimeSession.run` serves a conversation until its server session ends on its own, and returns a
`SessionEnding` saying why; the supervisor decides what comes next. Before the server's limit it rolls
over *make before break*: a second session is opened, configured and given the conversation so far,
the microphone switches to it in one step (blocks captured meanwhile are held and go to the new
session), and the old one closes with 1000 once its reply is done. Cleanup is one idempotent path that
every exit takes: audio streams closed, tasks cancelled and awaited, sockets closed.

The microphone reaches the server through the conversation's voice gate (`ava_tray/audio/voice_gate.py`):
one gate per conversation, so per opening of the microphone. It sits here, after the device layer's echo
front end (so AVA's own voice, cancelled there, does not open it) and before the blocks are routed to a
server session: a handover moves the microphone, not the gate, so an utterance in progress is never cut, and
a new conversation (a reconnect, other devices) starts with a fresh one. Here too are mute, which closes it,
and the protocol's state, which with the gate says when the devices may idle (`VoiceIO.set_active`).

The parts, each named for what it is: `_Conversation` (the audio devices and the server sessions of one
supervisor run: handover, barge-in, tools), `_ServerSession` (one socket: it opens, configures and pumps;
what the server's events mean is decided by its socket-free `ServerSessionProtocol`, in
`realtime/protocol.py`) and the `Transcript` (`conversation.py`) that every new server session is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, assert_never

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ava_tray.audio import AudioDeviceError, VoiceIO
from ava_tray.audio.voice_gate import SpeechDetector, VoiceGate
from ava_tray.clock import Clock, SystemClock
from ava_tray.conversation import Transcript
from ava_tray.metrics import AudioLatency
from ava_tray.pricing import Usage
from ava_tray.realtime import events
from ava_tray.realtime.connection import Keepalive, open_connection
from ava_tray.realtime.ending import Cause, SessionAborted, SessionEnding, classify_ending
from ava_tray.realtime.protocol import (
    BargeIn,
    Configure,
    Fatal,
    Heard,
    Intent,
    PlayAudio,
    Ready,
    RenewSession,
    ResponseFinished,
    ResponseStarted,
    RunTool,
    ServerError,
    ServerSessionProtocol,
    TurnEnded,
    Used,
)
from ava_tray.realtime.providers import SESSION_LIMIT_S, Provider, recognise, session_url
from ava_tray.supervisor import SessionContext
from ava_tray.threads import run_on_own_thread

logger = logging.getLogger(__name__)

SESSION_READY_TIMEOUT = 10.0
WATCH_INTERVAL = 0.1
"""While a turn is under way (AVA speaking, a reply or the user's speech in progress), how often the conversation
checks playback, the devices and the rollover window."""
IDLE_WATCH_INTERVAL = 0.5
"""The same while nobody speaks: nothing it checks then needs a tenth of a second, and in the tray every wake-up of
the loop goes through Qt (qasync), which cost a quarter of the idle tray's CPU (measured with py-spy)."""
UPLINK_REPORT_S = 10.0
"""While audio is leaving the machine, how often the bytes sent so far are reported (at most)."""
PRE_ROLL_MARGIN_MS = 200
"""The gate's pre-roll is the server's `prefix_padding_ms` and this: the detector hears a voice 60-150 ms after it
begins (measured), and the server must still get its padding before the first syllable."""
HANG_OVER_MARGIN_MS = 200
"""The gate stays open this much longer than the server's `silence_duration_ms`, so the server ends the turn."""
CLOSING_SILENCE_MARGIN_MS = 200
"""When the gate closes while the server still hears the user, it is sent its `silence_duration_ms` of silence and
this much more, so its VAD ends the turn."""
ECHO_GUARD_TAIL_S = 1.0
"""After AVA's playback has drained, its voice may still come back this long (devices, room): the gate keeps
asking for a longer run of speech before it opens (`VoiceGate.ava_speaking`)."""


class ToolHost(Protocol):
    """The tools (and memory digest) every new session is configured with, and how a call is run."""

    def specs(self) -> tuple[events.ToolSpec, ...]:
        """The tools to declare in `session.update`."""
        ...

    def instructions_suffix(self) -> str:
        """Text appended to the instructions (e.g. a digest of long-term memory); may be empty."""
        ...

    async def call(self, name: str, arguments: str, call_id: str) -> str:
        """Run one tool call and return its output for the model; never raises."""
        ...

    @property
    def version(self) -> int:
        """Goes up with every change of the tool set (a session declares the new set at its next pause)."""
        ...


@dataclass(frozen=True)
class RolloverPolicy:
    """When to hand a conversation over to a fresh session before the server's limit."""

    enabled: bool = True
    margin: float = 300.0
    """Start looking for a turn boundary this long before `expires_at`."""
    hard_margin: float = 60.0
    """Hand over at this point even mid-turn."""
    retry_after: float = 5.0
    """A failed handover is tried again after this long (until the server ends the session)."""

    def window(self, created_at: float, expires_at: float) -> tuple[float, float]:
        """Wall times (soft, hard) of the handover window; a short session gets a proportionally small one."""
        length = max(0.0, expires_at - created_at)
        margin = min(self.margin, length / 4)
        hard = min(self.hard_margin, margin / 2)
        return expires_at - margin, expires_at - hard


@dataclass(frozen=True)
class GateOptions:
    """The local voice gate between the microphone and the socket."""

    enabled: bool = True
    """False: the microphone streams continuously, as without a gate."""
    sensitivity: float = 0.5
    """0 (only clear speech opens it) to 1 (anything voice-like does)."""


@dataclass(frozen=True)
class SessionOptions:
    """Everything a session needs that does not change between sessions."""

    url: str
    api_key: str | None
    config: events.SessionConfig
    keepalive: Keepalive = field(default_factory=Keepalive)
    rollover: RolloverPolicy = field(default_factory=RolloverPolicy)
    provider: Provider | None = None
    """Who serves `url` (the key's header, where the model goes, the session limit); None: from the URL."""
    gate: GateOptions = field(default_factory=GateOptions)

    @property
    def served_by(self) -> Provider:
        return self.provider or recognise(self.url)

    @property
    def session_url(self) -> str:
        """The URL with the model (or Azure deployment) where the provider takes it."""
        return session_url(self.url, self.served_by, self.config.model)


UsageListener = Callable[[str, Usage], None]
"""Called with the model (or deployment) and what one response or transcription used."""
UplinkListener = Callable[[bool, int], None]
"""Called when microphone audio starts or stops leaving the machine (`sending`), and every `UPLINK_REPORT_S`
while it does, with the bytes (24 kHz PCM16) sent since the last call."""
GATE_OFF = "off (streaming continuously)"


def _silero() -> SpeechDetector:
    from ava_tray.audio.speech_detector import SileroSpeechDetector

    return SileroSpeechDetector()


class RealtimeSession:
    """Serves conversations; `run` is the supervisor's `SessionRunner`."""

    def __init__(
        self,
        options: SessionOptions,
        voice_io_factory: Callable[[], VoiceIO],
        *,
        clock: Clock | None = None,
        latency: AudioLatency | None = None,
        tools: ToolHost | None = None,
        transcript: Transcript | None = None,
        on_usage: UsageListener | None = None,
        on_uplink: UplinkListener | None = None,
        speech_detector: Callable[[], SpeechDetector] = _silero,
    ) -> None:
        """`speech_detector` makes the voice gate's detector (once, on a helper thread: loading it takes time)."""
        self.options = options
        self.on_usage = on_usage
        self.on_uplink = on_uplink
        self._make_detector = speech_detector
        self._detector: SpeechDetector | None = None
        self.gate_state: str | None = None
        """"on", "off (streaming continuously)" or "unavailable: <why>", once a conversation has begun."""
        self.voice_io_factory = voice_io_factory
        self.clock = clock or SystemClock()
        self.latency = latency or AudioLatency()
        self.tools = tools
        self.transcript = transcript if transcript is not None else Transcript()
        self.muted = False
        self.push_to_talk = False
        """Push-to-talk mode: the microphone is heard only while `key_held`."""
        self.key_held = False
        self.handovers = 0
        self._current: _Conversation | None = None

    async def run(self, context: SessionContext) -> SessionEnding:
        """Open, configure and serve one conversation; return why its server session ended."""
        conversation = _Conversation(self, context)
        self._current = conversation
        try:
            return await conversation.serve()
        finally:
            self._current = None

    async def new_gate(self) -> VoiceGate | None:
        """A voice gate for a conversation as the options say (None: the microphone streams continuously)."""
        options = self.options.gate
        if not options.enabled:
            self.gate_state = GATE_OFF
            return None
        if self._detector is None:
            from ava_tray.audio.speech_detector import SpeechDetectorUnavailable

            try:
                self._detector = await run_on_own_thread(self._make_detector, name="ava-speech-detector", join=True)
            except SpeechDetectorUnavailable as exc:
                logger.warning("%s", exc)
                self.gate_state = f"unavailable: {exc}"
                return None
        config = self.options.config
        self.gate_state = "on"
        return VoiceGate(self._detector, sensitivity=options.sensitivity,
                         pre_roll_ms=config.vad_prefix_padding_ms + PRE_ROLL_MARGIN_MS,
                         hang_over_ms=config.vad_silence_duration_ms + HANG_OVER_MARGIN_MS)

    @property
    def sending(self) -> bool:
        """Microphone audio is leaving the machine now."""
        return self._current is not None and self._current.sending

    def announce(self, text: str) -> bool:
        """Have AVA say `text` now (e.g. a reminder that came due); False when no session is up."""
        conversation = self._current
        active = conversation.active if conversation is not None else None
        if active is None or not active.protocol.is_open:
            return False
        active.say(text)
        return True


ConversationIntent = PlayAudio | BargeIn | TurnEnded | RunTool | Heard
"""What a server session's events ask of the conversation (the rest its own socket carries out)."""


class _Conversation:
    """The audio devices and the server session(s) of one supervisor run."""

    def __init__(self, owner: RealtimeSession, context: SessionContext) -> None:
        self.owner = owner
        self.context = context
        self.voice: VoiceIO | None = None
        self.active: _ServerSession | None = None
        """The server session the microphone goes to."""
        self.held: list[tuple[bytes, float]] | None = None
        """Microphone blocks captured while a handover waits for the new session (None when none is)."""
        self.server_sessions: list[_ServerSession] = []
        self.retiring: list[asyncio.Task[None]] = []
        self.item_sessions: dict[str, _ServerSession] = {}
        """The server session that streamed each assistant item: a barge-in truncates the item there."""
        self.cut_items: set[str] = set()
        self.tool_tasks: list[asyncio.Task[None]] = []
        self.speaking = False
        self.handed_at: float | None = None
        """When the last audio delta was handed to the speaker (None: it was not played), for latency figures."""
        self.closed = False
        self.renew_requested = False
        """The active server session failed in a way that sticks to it: hand over now, whatever the clock."""
        self.gate: VoiceGate | None = None
        """This conversation's voice gate (None: the microphone streams continuously)."""
        self.sending = False
        """Microphone audio is leaving the machine now."""
        self._unreported_bytes = 0
        self._reported_at = 0.0
        self._devices_active: bool | None = None
        self._echo_guard_until = 0.0
        """Monotonic time (the microphone's clock) until which AVA's voice may come back, after it stopped."""

    def renew(self, source: _ServerSession, code: str) -> None:
        """`source` broke for good (`server_error`): open a fresh session rather than retry in this one."""
        if source is self.active:
            logger.warning("the server reported %s: renewing the session (the conversation is carried over)", code)
            self.renew_requested = True

    async def serve(self) -> SessionEnding:
        try:
            server_session = self._open_server_session()
            ended = await server_session.wait_ready()
            if ended is not None:
                return ended
            self.gate = await self.owner.new_gate()
            try:
                self.voice = self.owner.voice_io_factory()
                if self.gate is not None:
                    self.gate.echo_resemblance = self.voice.echo_resemblance
                await self.voice.open(self._on_mic_block)
            except AudioDeviceError as exc:
                return SessionEnding(Cause.OTHER, str(exc))
            self.active = server_session
            self._update_devices()
            self.context.ready(server_session.protocol.expires_at)
            return await self._watch()
        finally:
            await self.cleanup()

    def _open_server_session(self) -> _ServerSession:
        server_session = _ServerSession(self)
        self.server_sessions.append(server_session)
        return server_session

    async def _watch(self) -> SessionEnding:
        """Until the active session ends: track speaking, audio failures and the rollover window."""
        policy = self.owner.options.rollover
        clock = self.owner.clock
        next_try = 0.0
        while True:
            active = self.active
            assert active is not None and self.voice is not None
            await asyncio.wait({active.main}, timeout=self._watch_interval())
            if active.main.done():
                return active.main.result()
            if self.voice.failure is not None:
                logger.warning("audio failed: %s", self.voice.failure)
                return SessionEnding(Cause.OTHER, str(self.voice.failure))
            if self.speaking and not self.voice.is_playing:
                self._set_speaking(False)
            self._update_devices()
            tools = self.owner.tools
            if (tools is not None and active.tools_version != tools.version and active.protocol.is_open
                    and self._at_turn_boundary(active)):
                active.declare_tools(tools)
            if self.renew_requested and clock.monotonic() >= next_try:
                self.renew_requested = False
                if not await self._hand_over(active):
                    self.renew_requested = True
                    next_try = clock.monotonic() + policy.retry_after
                continue
            expires_at = active.protocol.expires_at
            if not policy.enabled or expires_at is None or clock.monotonic() < next_try:
                continue
            soft, hard = policy.window(active.protocol.created_at, expires_at)
            now = clock.wall()
            due = now >= hard or (now >= soft and self._at_turn_boundary(active))
            if due and not await self._hand_over(active):
                next_try = clock.monotonic() + policy.retry_after

    def _watch_interval(self) -> float:
        return WATCH_INTERVAL if self._busy() or self.renew_requested else IDLE_WATCH_INTERVAL

    def _at_turn_boundary(self, server_session: _ServerSession) -> bool:
        """No reply or tool call in progress, the user not speaking, playback drained."""
        assert self.voice is not None
        protocol = server_session.protocol
        return not (protocol.response_active or protocol.user_speaking or self.voice.is_playing
                    or self.busy_with_tools or (self.gate is not None and self.gate.is_open))

    async def _hand_over(self, old: _ServerSession) -> bool:
        """Make before break: the new session is ready before the microphone moves to it."""
        logger.info("rolling over to a fresh session (old one expires at %s)", old.protocol.expires_at)
        self.held = []
        new = self._open_server_session()
        ended = await new.wait_ready()
        held, self.held = self.held, None
        if ended is not None:
            logger.warning("rollover failed (%s); keeping the current session", ended.message)
            self.server_sessions.remove(new)
            for pcm, captured_at in held:
                old.send_mic(pcm, captured_at)
            return False
        for pcm, captured_at in held:
            new.send_mic(pcm, captured_at)
        self.active = new
        self.owner.handovers += 1
        self.context.rolled_over(new.protocol.expires_at)
        self.retiring.append(asyncio.create_task(self._retire(old), name="ava-session-retire"))
        return True

    async def _retire(self, old: _ServerSession) -> None:
        """Let the old session finish the reply it is streaming (never past its limit), then close it."""
        expires_at = old.protocol.expires_at
        if old.protocol.response_active and expires_at is not None:
            remaining = expires_at - self.owner.clock.wall() - 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, remaining)):
                    await old.response_finished()
        await old.close("rolled over to a fresh session")
        with contextlib.suppress(ValueError):
            self.server_sessions.remove(old)

    def carry_out(self, source: _ServerSession, intent: ConversationIntent) -> None:
        """Act on what server session `source` said: play, barge in, run a tool, note a transcript."""
        match intent:
            case PlayAudio(item_id=item_id, pcm=pcm):
                self._play(source, item_id, pcm)
            case BargeIn():
                self._barge_in(source)
            case TurnEnded():
                if self.gate is not None and source is self.active:
                    self.gate.end_hang_over()
            case RunTool():
                self._start_tool(source, intent)
            case Heard(role=role, text=text):
                self.owner.transcript.add(role, text)
                self.context.transcript(role, text)
            case _:
                assert_never(intent)

    # -- audio both ways -----------------------------------------------------------------------

    def _on_mic_block(self, pcm: bytes, captured_at: float) -> None:
        """On the loop: one microphone block through the gate; what it lets out goes to the active session
        (held during a handover)."""
        if self.closed:
            return
        gate, owner = self.gate, self.owner
        if owner.muted or (gate is None and owner.push_to_talk and not owner.key_held):
            if self.sending:
                if gate is not None:
                    gate.reset()  # unmuted, it starts afresh: nothing from before the mute as pre-roll
                self._report_uplink(False, captured_at)
            return
        if gate is not None:
            gate.ava_speaking = self.speaking or captured_at < self._echo_guard_until
            # Push-to-talk through the gate: the key held opens it (with its pre-roll, so a first syllable spoken as
            # the key goes down is kept) and its hang-over lets the server end the turn after the key is let go.
            gate.push_to_talk = owner.push_to_talk
            gate.forced_open = owner.push_to_talk and owner.key_held
            pcm = gate.process(pcm, captured_at)
            if self.voice is not None:
                self.voice.wake_on_sound(gate.wake_level)
        if pcm:
            if self.held is not None:
                self.held.append((pcm, captured_at))
                self._unreported_bytes += len(pcm)
            elif self.active is not None:
                self.active.send_mic(pcm, captured_at)
                self._unreported_bytes += len(pcm)
        if gate is not None and gate.unjudged:
            # `process` let the block out unjudged (the gate open): judge it after the send pump has run.
            asyncio.get_running_loop().call_soon(gate.settle)
        sending = gate is None or gate.is_open
        if sending != self.sending:
            if not sending:
                self._end_the_users_turn(captured_at)
            self._report_uplink(sending, captured_at)
            self._update_devices()
        elif self._unreported_bytes and captured_at - self._reported_at >= UPLINK_REPORT_S:
            self._report_uplink(sending, captured_at)

    def _end_the_users_turn(self, captured_at: float) -> None:
        """The gate closed while the server still hears the user speaking (its VAD took what followed the voice, a
        fan say, for more speech): send the silence it waits for, so the turn ends and AVA answers."""
        active = self.active
        if active is None or self.held is not None or not active.protocol.user_speaking:
            return
        milliseconds = self.owner.options.config.vad_silence_duration_ms + CLOSING_SILENCE_MARGIN_MS
        silence = bytes(events.SAMPLE_RATE * milliseconds // 1000 * events.BYTES_PER_SAMPLE)
        logger.debug("voice gate closed while the server hears the user: sending %d ms of silence", milliseconds)
        active.send_mic(silence, captured_at)
        self._unreported_bytes += len(silence)

    def _report_uplink(self, sending: bool, now: float) -> None:
        self.sending = sending
        sent, self._unreported_bytes = self._unreported_bytes, 0
        self._reported_at = now
        if self.owner.on_uplink is not None:
            # A loop step later, once the send pump has sent what this block let out: the listener adds to the day's
            # totals on disk (about a millisecond), which must not hold up the audio of a gate that just opened.
            asyncio.get_running_loop().call_soon(self.owner.on_uplink, sending, sent)

    def _busy(self) -> bool:
        """The user heard, AVA speaking or about to (a reply under way, the user's speech in progress)."""
        active = self.active
        return self.sending or self.speaking or (active is not None and (
            active.protocol.response_active or active.protocol.user_speaking))

    def _update_devices(self) -> None:
        """Tell the devices whether the conversation is active: the user heard, AVA speaking or about to."""
        voice = self.voice
        if voice is None:
            return
        busy = self._busy()
        if busy != self._devices_active:
            self._devices_active = busy
            voice.set_active(busy)

    def _play(self, source: _ServerSession, item_id: str, pcm: bytes) -> None:
        self.handed_at = None
        if self.voice is None or item_id in self.cut_items:
            return
        self.item_sessions[item_id] = source
        self.voice.play(item_id, pcm)
        self.handed_at = time.monotonic()
        self._set_speaking(True)

    def _barge_in(self, source: _ServerSession) -> None:
        """The user started speaking: silence AVA at once and tell the server what was heard."""
        if self.voice is None or source is not self.active:
            return
        cut = self.voice.interrupt()
        self._set_speaking(False)
        if cut is None or not cut.item_id:
            return
        self.cut_items.add(cut.item_id)
        logger.info("barge-in: cut %s after %d ms", cut.item_id, cut.played_ms)
        self.item_sessions.get(cut.item_id, source).truncate(cut.item_id, cut.played_ms)

    def _set_speaking(self, active: bool) -> None:
        if active != self.speaking:
            self.speaking = active
            if not active:
                self._echo_guard_until = time.monotonic() + ECHO_GUARD_TAIL_S
            self._update_devices()  # AVA speaking: every microphone block at once, for a quick barge-in
            self.context.speaking(active)

    # -- tools ---------------------------------------------------------------------------------

    def _start_tool(self, caller: _ServerSession, call: RunTool) -> None:
        """Run a tool for the conversation, not for one session: its answer survives a handover."""
        tools = self.owner.tools
        if tools is None:
            logger.warning("ignored a function call %r: no tool host", call.name)
            return
        self.tool_tasks.append(asyncio.create_task(self._run_tool(caller, tools, call), name=f"ava-tool-{call.name}"))

    @property
    def busy_with_tools(self) -> bool:
        return any(not task.done() for task in self.tool_tasks)

    async def _run_tool(self, caller: _ServerSession, tools: ToolHost, call: RunTool) -> None:
        output = await tools.call(call.name, call.arguments, call.call_id)
        self.owner.transcript.add("tool", f"{call.name}({call.arguments}) -> {output}")
        target = self.active if self.active is not None else caller
        # A call from a session since handed over is re-created in the new one before its output.
        target.answer_tool(call, output, recreate_call=target is not caller)

    async def cleanup(self) -> None:
        """Close every session and the audio; safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        for task in self.retiring + self.tool_tasks:
            task.cancel()
        await asyncio.gather(*self.retiring, *self.tool_tasks, return_exceptions=True)
        await asyncio.gather(*(s.close("client closing") for s in self.server_sessions), return_exceptions=True)
        if self.voice is not None:
            try:
                await self.voice.close()
            except Exception as exc:  # closing must never stop the rest of the cleanup
                logger.warning("closing audio failed: %s", exc)
        if self.speaking:
            self._set_speaking(False)
        if self.sending or self._unreported_bytes:
            self._report_uplink(False, self.owner.clock.monotonic())


class _ServerSession:
    """One server session's socket: open, configure, then pump both ways.

    Server events go through `protocol`, which says what they mean; this class carries the intents out
    (or hands them to the conversation) and sends what the protocol queued. Client events for a session
    that is not open (closing, or closed by a fatal error) are dropped.
    """

    def __init__(self, conversation: _Conversation) -> None:
        self.conversation = conversation
        self.owner = conversation.owner
        options = self.owner.options
        self.protocol = ServerSessionProtocol(self.owner.clock.wall, known_limit=SESSION_LIMIT_S[options.served_by])
        self.model = options.config.model
        """The model (or Azure deployment) this server session was opened for."""
        self.tools_version = -1
        """The tool set's version this session declared (`ToolHost.version`)."""
        self.ws: ClientConnection | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._outgoing = asyncio.Event()
        """Set when the protocol has queued client events for the send pump."""
        self.pumps: list[asyncio.Task[None]] = []
        self.fatal_close: asyncio.Task[None] | None = None
        self.main: asyncio.Task[SessionEnding] = asyncio.create_task(self._main(), name="ava-session")

    async def wait_ready(self) -> SessionEnding | None:
        """None once configured; else how the session ended before it was ready."""
        waiting: set[asyncio.Future[Any]] = {self.ready, self.main}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if self.ready.done():
            return None
        return self.main.result()

    async def response_finished(self) -> None:
        await self._response_idle.wait()

    async def _main(self) -> SessionEnding:
        error_codes = self.protocol.error_codes
        try:
            options = self.owner.options
            self.ws = await open_connection(options.session_url, options.api_key, options.keepalive,
                                            provider=options.served_by)
            async with asyncio.timeout(SESSION_READY_TIMEOUT):
                await self._configure()
            self.pumps = [asyncio.create_task(self._receive(), name="ava-session-receive"),
                          asyncio.create_task(self._send(), name="ava-session-send")]
            done, _ = await asyncio.wait(self.pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None:
                    raise error
            return classify_ending(close_code=self.ws.close_code, close_reason=self.ws.close_reason or "",
                                   error_codes=error_codes, model=self.model)
        except ConnectionClosed as exc:
            return classify_ending(exception=exc, error_codes=error_codes, model=self.model)
        except SessionAborted as exc:
            return exc.ending
        except TimeoutError:
            if self.ws is None:
                return SessionEnding(Cause.CONNECTION_LOST, "Connection lost: the server did not answer in time",
                                     unreachable=True)
            return SessionEnding(Cause.CONNECTION_LOST, "Connection lost: the server did not start a session in time")
        except Exception as exc:
            ws = self.ws
            return classify_ending(exception=exc, error_codes=error_codes, model=self.model,
                                   close_code=ws.close_code if ws else None,
                                   close_reason=(ws.close_reason or "") if ws else "")
        finally:
            await self._stop_pumps()
            self.protocol.connection_closed()

    async def _configure(self) -> None:
        """`session.created` → `session.update` (+ the conversation so far) → wait for `session.updated`."""
        assert self.ws is not None
        while not self.protocol.is_open:
            event = self._parse(await self.ws.recv())
            if event is not None:
                self._carry_out(self.protocol.receive(event))
            for message in self.protocol.data_to_send():
                await self.ws.send(message.text)

    def declare_tools(self, tools: ToolHost) -> None:
        """The tool set changed since this session was configured: declare the new one now."""
        logger.info("the tools changed: declaring %d in the open session", len(tools.specs()))
        self.tools_version = tools.version
        self.protocol.update_tools(self.owner.options.config.tools + tools.specs())
        self._outgoing.set()

    def _session_config(self) -> events.SessionConfig:
        config = self.owner.options.config
        tools = self.owner.tools
        if tools is None:
            return config
        self.tools_version = tools.version
        return replace(config, tools=config.tools + tools.specs(),
                       instructions=config.instructions + tools.instructions_suffix())

    def _carry_out(self, intents: list[Intent], received_at: float | None = None) -> None:
        """Act on the protocol's intents: this socket's own, and the conversation's through `carry_out`."""
        for intent in intents:
            match intent:
                case PlayAudio():  # first: most events are audio, on the path to the speaker
                    self.conversation.carry_out(self, intent)
                    handed_at = self.conversation.handed_at
                    if received_at is not None and handed_at is not None:
                        self.owner.latency.socket_to_device.add((handed_at - received_at) * 1000.0)
                case Configure():
                    self.protocol.configure(self._session_config(), self.owner.transcript.replay_item())
                case Ready():
                    if not self.ready.done():
                        self.ready.set_result(None)
                case ResponseStarted():
                    self._response_idle.clear()
                case ResponseFinished():
                    self._response_idle.set()
                case ServerError(code=code, message=message):
                    logger.warning("server error %s: %s", code, message)
                case Fatal():
                    if self.ws is not None:
                        self.fatal_close = asyncio.create_task(self.ws.close(), name="ava-session-close-fatal")
                case BargeIn() | TurnEnded() | RunTool() | Heard():
                    self.conversation.carry_out(self, intent)
                case Used(usage=usage):
                    if self.owner.on_usage is not None:
                        self.owner.on_usage(self.model, usage)
                case RenewSession(code=code):
                    self.conversation.renew(self, code)
                case _:
                    assert_never(intent)

    # -- sending -------------------------------------------------------------------------------

    def send_mic(self, pcm: bytes, captured_at: float) -> None:
        if self.protocol.is_open:
            self.protocol.send_audio(pcm, captured_at)
            self._outgoing.set()

    def truncate(self, item_id: str, heard_ms: int) -> None:
        if self.protocol.is_open:
            self.protocol.truncate(item_id, heard_ms)
            self._outgoing.set()

    def answer_tool(self, call: RunTool, output: str, *, recreate_call: bool) -> None:
        if self.protocol.is_open:
            self.protocol.answer_tool(call, output, recreate_call=recreate_call)
            self._outgoing.set()

    def say(self, text: str) -> None:
        if self.protocol.is_open:
            self.protocol.say(text)
            self._outgoing.set()

    async def _send(self) -> None:
        """The send pump: what the protocol queued, in order; microphone blocks timed for the latency figures."""
        assert self.ws is not None
        latency = self.owner.latency
        while True:
            await self._outgoing.wait()
            self._outgoing.clear()
            for message in self.protocol.data_to_send():
                await self.ws.send(message.text)
                if message.captured_at is not None:
                    latency.mic_to_socket.add((time.monotonic() - message.captured_at) * 1000.0)

    # -- receiving -----------------------------------------------------------------------------

    async def _receive(self) -> None:
        """The receive pump: every server event through the protocol, its intents carried out."""
        assert self.ws is not None
        async for message in self.ws:
            received_at = time.monotonic()
            event = self._parse(message)
            if event is not None:
                self._carry_out(self.protocol.receive(event), received_at)

    @staticmethod
    def _parse(message: str | bytes) -> dict[str, Any] | None:
        try:
            return events.decode(message)
        except events.MalformedServerEvent as exc:
            logger.warning("ignored a malformed server event: %s", exc)
            return None

    # -- ending --------------------------------------------------------------------------------

    async def _stop_pumps(self) -> None:
        tasks = [t for t in [*self.pumps, self.fatal_close] if t is not None and t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(1000, "client closing")

    async def close(self, reason: str) -> None:
        """Close this session with 1000 and wait until all of its tasks are done; idempotent."""
        self.protocol.close()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close(1000, reason)
        if not self.main.done():
            self.main.cancel()
        await asyncio.wait({self.main})
        self._response_idle.set()
