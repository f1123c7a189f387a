"""AVA's built-in tools: time, reminders, memory, calculator, clipboard, opening addresses, status,
microphone mute and voice. None runs a shell command; those that change something ask first."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import webbrowser
import zoneinfo
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from ava_tray.clock import Clock, SystemClock
from ava_tray.memory import MemoryStore
from ava_tray.settings import VOICES
from ava_tray.tools.calculator import CalculationError
from ava_tray.tools.calculator import calculate as evaluate
from ava_tray.tools.hooks import MicMute, StatusSource, VoiceSetting
from ava_tray.tools.registry import Tool, ToolError, make_tool, run_in_daemon_thread
from ava_tray.tools.reminders import ReminderScheduler

logger = logging.getLogger(__name__)

MAX_CLIPBOARD_CHARS = 4000
MAX_REMINDER_DELAY = 366 * 24 * 3600
CONSOLE_NO_CLIPBOARD = "The clipboard is not available in console mode."
_RISKY_SUFFIXES = frozenset({".exe", ".bat", ".cmd", ".com", ".ps1", ".vbs", ".js", ".jse", ".wsf", ".msi",
                             ".lnk", ".scr", ".pif", ".cpl", ".desktop", ".sh", ".command", ".app", ".jar"})

UrlOpener = Callable[[str], Awaitable[bool]]


def builtin_tools(
    *,
    memory: MemoryStore,
    reminders: ReminderScheduler,
    status: StatusSource | None = None,
    mic: MicMute | None = None,
    voice: VoiceSetting | None = None,
    open_url: UrlOpener | None = None,
    clock: Clock | None = None,
) -> list[Tool]:
    """The built-in tools bound to AVA's parts; a tool whose part is missing is left out."""
    clock = clock or SystemClock()
    opener = open_url or open_with_default_application

    def get_time(
        time_zone: Annotated[str | None, "IANA time zone such as Europe/Paris; the user's own if omitted"] = None,
    ) -> dict[str, Any]:
        """The current date and time, here or in another time zone."""
        if time_zone:
            try:
                zone: dt.tzinfo = zoneinfo.ZoneInfo(time_zone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise ToolError(f"{time_zone!r} is not a time zone I know; use an IANA name such as "
                                "Europe/Paris or America/New_York.") from exc
            now = dt.datetime.fromtimestamp(clock.wall(), zone)
        else:
            now = dt.datetime.fromtimestamp(clock.wall()).astimezone()
        return {"date": now.strftime("%A %d %B %Y"), "time": now.strftime("%H:%M"), "iso": now.isoformat(
            timespec="seconds"), "time_zone": time_zone or now.tzname() or "local"}

    def set_reminder(
        text: Annotated[str, "what to remind the user of"],
        delay_seconds: Annotated[int | None, "remind after this many seconds"] = None,
        at: Annotated[str | None, "or at this local time: HH:MM (next occurrence) or YYYY-MM-DDTHH:MM"] = None,
    ) -> dict[str, Any]:
        """Set a timer or reminder; AVA says and shows it once when it is due, even after a restart."""
        now = clock.wall()
        if (delay_seconds is None) == (at is None):
            raise ToolError("Give either delay_seconds or at (a local time), not both or neither.")
        if delay_seconds is not None:
            if not 0 < delay_seconds <= MAX_REMINDER_DELAY:
                raise ToolError("delay_seconds must be between 1 second and one year.")
            due = now + delay_seconds
        else:
            assert at is not None
            due = _parse_local_time(at, now)
        try:
            reminder = reminders.add(text, due)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc
        return {**reminder.to_json(), "in_seconds": round(due - now)}

    def list_reminders() -> dict[str, Any]:
        """The reminders that have not fired yet."""
        return {"reminders": [reminder.to_json() for reminder in reminders.pending()]}

    def cancel_reminder(reminder_id: Annotated[int, "the id from set_reminder or list_reminders"]) -> dict[str, Any]:
        """Cancel a reminder that has not fired yet."""
        reminder = reminders.cancel(reminder_id)
        if reminder is None:
            raise ToolError(f"There is no pending reminder with id {reminder_id}.")
        return {"cancelled": reminder.to_json()}

    def remember(fact: Annotated[str, "the fact, as a short self-contained sentence"]) -> dict[str, Any]:
        """Remember a fact about the user for future conversations (when asked to remember something)."""
        try:
            stored = memory.remember(fact)
        except ValueError as exc:
            raise ToolError(str(exc)) from exc
        return {"remembered": stored.to_json()}

    def recall(
        query: Annotated[str, "what to look for, in a few words"],
        limit: Annotated[int, "at most this many facts"] = 5,
    ) -> dict[str, Any]:
        """Search long-term memory for facts the user asked AVA to remember."""
        facts = memory.recall(query, max(1, min(limit, 20)))
        return {"facts": [fact.to_json() for fact in facts], "count": len(facts)}

    def forget(fact_id: Annotated[int, "the id of the fact (from recall)"]) -> dict[str, Any]:
        """Forget one remembered fact for good."""
        fact = memory.forget(fact_id)
        if fact is None:
            raise ToolError(f"There is no remembered fact with id {fact_id}.")
        return {"forgotten": fact.to_json()}

    def forget_summary(arguments: dict[str, Any]) -> str:
        fact = memory.get(int(arguments.get("fact_id", -1)))
        return f"forget “{fact.text}”" if fact else f"forget fact {arguments.get('fact_id')}"

    def calculate(
        expression: Annotated[str, "arithmetic such as 2 * (3 + 4) ** 2 or sqrt(2) / 3"],
    ) -> dict[str, Any]:
        """Calculate an arithmetic expression exactly (use this instead of mental arithmetic)."""
        try:
            return {"expression": expression, "result": evaluate(expression)}
        except CalculationError as exc:
            raise ToolError(str(exc)) from exc

    async def read_clipboard() -> dict[str, Any]:
        """Read the text on the clipboard."""
        clipboard = _qt_clipboard()
        text = clipboard.text()
        return {"text": text[:MAX_CLIPBOARD_CHARS], "truncated": len(text) > MAX_CLIPBOARD_CHARS,
                "empty": not text}

    async def write_clipboard(text: Annotated[str, "the text to put on the clipboard"]) -> dict[str, Any]:
        """Put text on the clipboard."""
        _qt_clipboard().setText(text)
        return {"copied_characters": len(text)}

    async def open_address(
        address: Annotated[str, "an http(s) web address, or a file's path or file:// address"],
    ) -> dict[str, Any]:
        """Open a web address or a file with the user's default application."""
        url = address_to_url(address)
        if not await opener(url):
            raise ToolError(f"No application could open {url}.")
        return {"opened": url}

    tools = [
        make_tool(get_time),
        make_tool(set_reminder),
        make_tool(list_reminders),
        make_tool(cancel_reminder),
        make_tool(remember),
        make_tool(recall),
        make_tool(forget, changes_something=True, summarize=forget_summary),
        make_tool(calculate),
        make_tool(read_clipboard),
        make_tool(write_clipboard, changes_something=True,
                  summarize=lambda a: f"put {len(a.get('text', ''))} characters on the clipboard: "
                                      f"“{_clip(a.get('text', ''))}”"),
        make_tool(open_address, changes_something=True, timeout=15.0,
                  summarize=lambda a: f"open {a.get('address', '')!s}"),
    ]

    if status is not None:
        source = status

        def ava_status() -> dict[str, Any]:
            """AVA's own status: uptime, reconnects today and why it last went quiet."""
            return status_report(source, clock)

        tools.append(make_tool(ava_status))

    if mic is not None:
        switch = mic

        def mute_microphone(muted: Annotated[bool, "true to mute, false to unmute"] = True) -> dict[str, Any]:
            """Mute (or unmute) the microphone: AVA stops hearing the user until unmuted."""
            switch.muted = muted
            note = ("AVA no longer hears the user; they can unmute from the tray menu or the console."
                    if muted else "AVA hears the user again.")
            return {"muted": muted, "note": note}

        tools.append(make_tool(mute_microphone, changes_something=True,
                               summarize=lambda a: "mute the microphone" if a.get("muted", True)
                               else "unmute the microphone"))

    if voice is not None:
        chooser = voice

        def change_voice(voice: str) -> dict[str, Any]:
            """Change AVA's voice; it is used from the next session on and kept in the settings."""
            try:
                chooser.change_voice(voice)
            except ValueError as exc:
                raise ToolError(str(exc)) from exc
            return {"voice": voice, "note": "The new voice is used from the next session on."}

        voice_schema = {"type": "object", "additionalProperties": False, "required": ["voice"], "properties": {
            "voice": {"type": "string", "enum": list(VOICES), "description": "the new voice"}}}
        tools.append(make_tool(change_voice, parameters=voice_schema, changes_something=True,
                               summarize=lambda a: f"change AVA's voice to {a.get('voice')}"))
    return tools


def status_report(source: StatusSource, clock: Clock) -> dict[str, Any]:
    """The status as the model reads it, with a sentence for "why did you go quiet?"."""
    report = source.status()
    result: dict[str, Any] = {
        "state": report.state,
        "uptime": _duration(report.uptime_s),
        "uptime_seconds": round(report.uptime_s),
        "reconnects_today": report.reconnects_today,
        "microphone_muted": report.muted,
        "spend_today_usd": round(report.spend_today_usd, 2),
        "spend_this_month_usd": round(report.spend_month_usd, 2),
    }
    if report.daily_budget_usd > 0:
        result["daily_budget_usd"] = round(report.daily_budget_usd, 2)
    if report.last_cause is not None:
        ago = clock.wall() - (report.last_cause_at or clock.wall())
        result["last_interruption"] = {"cause": report.last_cause, "message": report.last_cause_message,
                                       "ago": _duration(ago)}
        result["explanation"] = (f"AVA last went quiet {_duration(ago)} ago: {report.last_cause_message}")
    else:
        result["explanation"] = "AVA has not been interrupted since it started keeping records."
    if report.muted:
        result["explanation"] += " The microphone is muted, so AVA cannot hear the user."
    return result


def address_to_url(address: str) -> str:
    """An http(s) or file URL for `address`; raise ToolError for anything else (or a risky file)."""
    address = address.strip()
    parsed = urlsplit(address)
    scheme = parsed.scheme.lower()
    if scheme in ("http", "https"):
        if not parsed.netloc:
            raise ToolError(f"{address!r} is not a complete web address.")
        return address
    if scheme == "file":
        return _file_url(Path(url2pathname(parsed.path)))
    if not scheme or (len(scheme) == 1 and sys.platform == "win32"):  # a path, maybe with a drive letter
        path = Path(address).expanduser()
        if path.is_absolute():
            return _file_url(path)
        if "." in address and " " not in address and "/" not in address.split(".")[0]:
            return "https://" + address  # "example.com"
        raise ToolError("Give a full web address or the absolute path of a file.")
    raise ToolError(f"Only web (http, https) and file addresses can be opened, not {scheme}: addresses.")


def _file_url(path: Path) -> str:
    if not path.exists():
        raise ToolError(f"There is no file or folder at {path}.")
    if path.is_file() and (path.suffix.lower() in _RISKY_SUFFIXES or
                           (sys.platform != "win32" and os.access(path, os.X_OK))):
        raise ToolError(f"{path.name} is a program or script; AVA does not run programs.")
    return path.resolve().as_uri()


async def open_with_default_application(url: str) -> bool:
    """Open `url` with Qt's desktop services when the tray runs, else with `webbrowser`."""
    if _qt_gui_running():
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        return bool(QDesktopServices.openUrl(QUrl(url)))
    return bool(await run_in_daemon_thread(webbrowser.open, {"url": url}, "open-address"))


def _qt_gui_running() -> bool:
    if "PySide6.QtGui" not in sys.modules:
        return False
    from PySide6.QtGui import QGuiApplication

    return isinstance(QGuiApplication.instance(), QGuiApplication)


def _qt_clipboard() -> Any:
    """The Qt clipboard (on the GUI thread, which is the event loop's under qasync)."""
    if not _qt_gui_running():
        raise ToolError(CONSOLE_NO_CLIPBOARD)
    from PySide6.QtGui import QGuiApplication

    clipboard = QGuiApplication.clipboard()
    if clipboard is None:
        raise ToolError(CONSOLE_NO_CLIPBOARD)
    return clipboard


def _parse_local_time(text: str, now: float) -> float:
    """Unix seconds for `HH:MM` (the next occurrence) or an ISO date-time (local unless it has an offset)."""
    current = dt.datetime.fromtimestamp(now).astimezone()
    try:
        if len(text.strip()) <= 8 and ":" in text:
            clock_time = dt.time.fromisoformat(text.strip())
            due = dt.datetime.combine(current.date(), clock_time).astimezone()
            if due.timestamp() <= now:
                due = dt.datetime.combine(current.date() + dt.timedelta(days=1), clock_time).astimezone()
        else:
            due = dt.datetime.fromisoformat(text.strip())
            if due.tzinfo is None:
                due = due.astimezone()
    except ValueError as exc:
        raise ToolError(f"{text!r} is not a time I can read; use HH:MM or YYYY-MM-DDTHH:MM.") from exc
    if due.timestamp() <= now:
        raise ToolError(f"{text} is in the past.")
    if due.timestamp() - now > MAX_REMINDER_DELAY:
        raise ToolError("Reminders can be set at most one year ahead.")
    return due.timestamp()


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

