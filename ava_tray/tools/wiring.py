"""Tools, memory and reminders put together for the engine, and the engine seen through the tools' hooks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ava_tray.clock import Clock
from ava_tray.history import last_cause, reconnects_since, start_of_today
from ava_tray.memory import MemoryStore, MemoryUnavailable
from ava_tray.settings import VOICES, Settings, SettingsStore
from ava_tray.supervisor import Connected, Connecting, Error, Reconnecting, Stopped, WaitingForNetwork
from ava_tray.tools.builtin import builtin_tools
from ava_tray.tools.hooks import MicMute, StatusReport
from ava_tray.tools.registry import ToolRegistry, parse_allowed
from ava_tray.tools.reminders import ReminderScheduler

if TYPE_CHECKING:
    from ava_tray.engine import AvaEngine

logger = logging.getLogger(__name__)


class EngineStatus:
    """`StatusSource` over the engine: supervisor state, reconnect history and mute."""

    def __init__(self, engine: AvaEngine) -> None:
        self._engine = engine
        self._started = engine.clock.monotonic()

    def status(self) -> StatusReport:
        engine = self._engine
        records = engine.history.records
        now = engine.clock.wall()
        last = last_cause(records)
        return StatusReport(
            state=describe_state(engine),
            uptime_s=engine.clock.monotonic() - self._started,
            reconnects_today=reconnects_since(records, start_of_today(now)),
            last_cause=last.cause if last else None,
            last_cause_message=last.message if last else None,
            last_cause_at=last.at if last else None,
            muted=bool(getattr(engine, "muted", False)),
        )


def describe_state(engine: AvaEngine) -> str:
    state = engine.supervisor.state
    if isinstance(state, Connected):
        return "connected, speaking" if state.speaking else "connected"
    if isinstance(state, Connecting):
        return "connecting"
    if isinstance(state, Reconnecting):
        return f"reconnecting after: {state.ending.message}"
    if isinstance(state, WaitingForNetwork):
        return "waiting for the network"
    if isinstance(state, Error):
        return f"stopped by an error: {state.reason}"
    assert isinstance(state, Stopped)
    return "stopped"


class SavedVoice:
    """`VoiceSetting`: saves the voice in the settings file and hands the engine the new settings."""

    def __init__(self, current: Callable[[], Settings], apply: Callable[[Settings], None],
                 store: SettingsStore | None = None) -> None:
        self._current = current
        self._apply = apply
        self._store = store or SettingsStore()

    def change_voice(self, voice: str) -> None:
        if voice not in VOICES:
            raise ValueError(f"Unknown voice {voice!r}: choose one of {', '.join(VOICES)}.")
        try:  # only the voice changes in the file: no environment override (AVA_REALTIME_URL) is saved
            self._store.save(replace(self._store.load_saved(), voice=voice))
        except (OSError, ValueError) as exc:
            raise ValueError(f"The voice could not be saved: {exc}") from exc
        self._apply(replace(self._current(), voice=voice))


@dataclass
class ToolBox:
    """The engine's tool parts: the registry (the sessions' ToolHost), memory and reminders."""

    registry: ToolRegistry
    memory: MemoryStore
    reminders: ReminderScheduler

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Fire reminders while AVA runs; on exit stop them and any tool call still running."""
        scheduler = asyncio.create_task(self.reminders.run(), name="ava-reminders")
        try:
            yield
        finally:
            scheduler.cancel()
            await asyncio.gather(scheduler, return_exceptions=True)
            await self.registry.aclose()


def build_toolbox(
    *,
    settings: Callable[[], Settings],
    apply_settings: Callable[[Settings], None],
    clock: Clock,
    status: EngineStatus | None = None,
    mic: MicMute | None = None,
    memory_path: Path | None = None,
    load_plugins: bool = True,
) -> ToolBox:
    """Memory (or a temporary one if the file cannot be used), reminders, built-ins and plugins."""
    try:
        memory = MemoryStore(memory_path, clock=clock)
    except MemoryUnavailable as exc:
        logger.warning("%s Memory is kept only until AVA quits.", exc)
        memory = MemoryStore(Path(":memory:"), clock=clock)
    reminders = ReminderScheduler(memory, clock=clock)
    registry = ToolRegistry(allowed=lambda: parse_allowed(settings().allowed_tools))
    for item in builtin_tools(memory=memory, reminders=reminders, status=status, mic=mic,
                              voice=SavedVoice(settings, apply_settings), clock=clock):
        registry.register(item)
    if load_plugins:
        registry.load_plugins()
    registry.add_instructions(memory.digest)
    return ToolBox(registry, memory, reminders)


def engine_toolbox(engine: AvaEngine, apply_settings: Callable[[Settings], None]) -> ToolBox:
    """The toolbox for an engine: its settings, clock, status and mute switch."""
    return build_toolbox(settings=lambda: engine.settings, apply_settings=apply_settings, clock=engine.clock,
                         status=EngineStatus(engine), mic=engine)
