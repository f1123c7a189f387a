"""Tools, memory and reminders put together for the engine; the engine seen through the tools' hooks as
callables (its snapshot, its mute), so the tools never import the engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ava_tray import paths
from ava_tray.clock import Clock
from ava_tray.memory import MemoryStore, MemoryUnavailable
from ava_tray.settings import VOICES, Settings
from ava_tray.status import Snapshot, state_words
from ava_tray.tools.builtin import builtin_tools
from ava_tray.tools.hooks import SettingsFile, StatusReport
from ava_tray.tools.mcp.config import FILE_NAME as MCP_FILE_NAME
from ava_tray.tools.mcp.host import McpHost
from ava_tray.tools.registry import ToolRegistry, parse_allowed
from ava_tray.tools.reminders import ReminderScheduler

logger = logging.getLogger(__name__)


class SnapshotStatus:
    """`StatusSource` over the engine's published snapshot (the same words the tray shows)."""

    def __init__(self, snapshot: Callable[[], Snapshot], clock: Clock) -> None:
        self._snapshot = snapshot
        self._clock = clock

    def status(self) -> StatusReport:
        snapshot = self._snapshot()
        last = snapshot.last_interruption
        return StatusReport(
            state=state_words(snapshot.state),
            uptime_s=self._clock.monotonic() - snapshot.started_at,
            reconnects_today=snapshot.reconnects_today,
            last_cause=last.cause if last else None,
            last_cause_message=last.message if last else None,
            last_cause_at=last.at if last else None,
            muted=snapshot.muted,
            spend_today_usd=snapshot.spend_today,
            spend_month_usd=snapshot.spend_month,
            daily_budget_usd=snapshot.budget_usd,
        )


class MuteSwitch:
    """`MicMute` over the engine's one mute (its setter runs the change on the event loop)."""

    def __init__(self, current: Callable[[], bool], set_muted: Callable[[bool], None]) -> None:
        self._current = current
        self._set = set_muted

    @property
    def muted(self) -> bool:
        return self._current()

    @muted.setter
    def muted(self, value: bool) -> None:
        self._set(value)


class SavedVoice:
    """`VoiceSetting`: saves the voice in the settings file and hands the engine the new settings."""

    def __init__(self, current: Callable[[], Settings], apply: Callable[[Settings], None],
                 store: SettingsFile | None = None) -> None:
        self._current = current
        self._apply = apply
        self._given_store = store

    @property
    def _store(self) -> SettingsFile:
        if self._given_store is None:  # the settings file (QSettings) loads Qt only when a voice is saved
            from ava_tray.settings_store import SettingsStore

            self._given_store = SettingsStore()
        return self._given_store

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
    """The engine's tool parts: the registry (the sessions' ToolHost), memory, reminders and the MCP host."""

    registry: ToolRegistry
    memory: MemoryStore
    reminders: ReminderScheduler
    mcp: McpHost | None = None
    """The MCP servers of mcp.json; they run as long as `running()` does, across every session."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Fire reminders and run the MCP servers while AVA runs; on exit stop them and any tool call still
        running."""
        scheduler = asyncio.create_task(self.reminders.run(), name="ava-reminders")
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self.mcp is not None:
                    await stack.enter_async_context(self.mcp.running())
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
    status: Callable[[], Snapshot] | None = None,
    mute: Callable[[bool], None] | None = None,
    settings_file: SettingsFile | None = None,
    memory_path: Path | None = None,
    load_plugins: bool = True,
    mcp_config: Path | None = None,
    use_mcp: bool = True,
) -> ToolBox:
    """Memory (or a temporary one if the file cannot be used), reminders, built-ins, plugins and the MCP
    servers of `mcp_config` (by default mcp.json in AVA's config folder; started by `ToolBox.running()`)."""
    try:
        memory = MemoryStore(memory_path, clock=clock)
    except MemoryUnavailable as exc:
        logger.warning("%s Memory is kept only until AVA quits.", exc)
        memory = MemoryStore(Path(":memory:"), clock=clock)
    reminders = ReminderScheduler(memory, clock=clock)
    registry = ToolRegistry(allowed=lambda: parse_allowed(settings().allowed_tools))
    source = SnapshotStatus(status, clock) if status is not None else None
    mic = MuteSwitch(lambda: status().muted if status is not None else False, mute) if mute is not None else None
    for item in builtin_tools(memory=memory, reminders=reminders, status=source, mic=mic,
                              voice=SavedVoice(settings, apply_settings, settings_file), clock=clock):
        registry.register(item)
    if load_plugins:
        registry.load_plugins()
    registry.add_instructions(memory.digest)
    host = McpHost(registry, mcp_config or paths.config_dir() / MCP_FILE_NAME) if use_mcp else None
    return ToolBox(registry, memory, reminders, host)
