"""`ava-tray --self-test`: a headless check that an install (frozen or not) has what AVA needs.

One line per check (OK / INFO / WARN / FAIL and a detail), printed as it finishes; the exit code is 1 if
any check failed. Every exception becomes a FAIL line: no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from ava_tray import __version__

logger = logging.getLogger(__name__)

Status = Literal["OK", "INFO", "WARN", "FAIL"]

SESSION_TIMEOUT_S = 10.0
"""The whole simulated session (start, handshake, update, one reply, close) must fit in this."""


@dataclass(frozen=True)
class CheckResult:
    """One line of the report."""

    status: Status
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.detail}"


class SelfTestFailure(Exception):
    """A check found a problem; the message is the report's detail."""


# --- the checks ------------------------------------------------------------------------------------


def _request_platform() -> str:
    """Set QT_QPA_PLATFORM for the check and return the platform wanted ("" for Qt's own default).

    Without a display (Linux) that is offscreen. Otherwise the usual platform, with offscreen as Qt's
    fallback: a platform plugin that cannot load would make Qt abort the process, and we want to report it.
    """
    requested = os.environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux"):
        return requested.split(";")[0]
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = requested or "offscreen"
        return os.environ["QT_QPA_PLATFORM"].split(";")[0]
    wanted = requested.split(";")[0]
    if not wanted:
        wayland = os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE") == "wayland"
        wanted = "wayland" if wayland else "xcb"
    if ";" not in requested:
        os.environ["QT_QPA_PLATFORM"] = f"{wanted};offscreen"
    return wanted


def check_qt() -> list[CheckResult]:
    """Load the Qt platform plugin (offscreen without a display), then the tray host and SVG icons."""
    wanted = _request_platform()
    import PySide6
    from PySide6.QtWidgets import QApplication, QSystemTrayIcon

    app = QApplication.instance() or QApplication(["ava-tray", "--self-test"])
    assert isinstance(app, QApplication)
    name = app.platformName()
    results = []
    if wanted and name != wanted:
        results.append(CheckResult("FAIL", "qt platform", f"the '{wanted}' platform plugin did not load (Qt fell "
                                   f"back to '{name}'); see Qt's message on stderr"))
    else:
        results.append(CheckResult("OK", "qt platform", f"{name} (Qt {PySide6.__version__})"))
    if name == "offscreen":
        results.append(CheckResult("INFO", "system tray", "not checked without a display"))
    elif QSystemTrayIcon.isSystemTrayAvailable():
        results.append(CheckResult("OK", "system tray", "a tray host is running"))
    else:
        results.append(CheckResult("WARN", "system tray", "no tray host on this desktop: AVA's icon will not show"))
    results.append(check_icons())
    return results


def check_icons() -> CheckResult:
    """The state icons are found and Qt's SVG icon engine renders them."""
    from PySide6.QtGui import QIcon

    from ava_tray.ui.icons import resources_dir

    folder = resources_dir()
    svgs = sorted((folder / "icons").glob("*.svg"))
    if not svgs:
        raise SelfTestFailure(f"no icons in {folder / 'icons'}")
    icon = QIcon(str(svgs[0]))
    if icon.pixmap(32, 32).isNull():
        raise SelfTestFailure(f"Qt cannot render {svgs[0].name} (the SVG icon engine plugin is missing)")
    return CheckResult("OK", "icons", f"{len(svgs)} SVG icons in {folder}, rendered")


TIME_ZONE_PROBE = ("Europe/Paris", "Central European")
LEGACY_ENCODINGS = ("windows-1252", "ISO-8859-15", "KOI8-R", "Shift_JIS", "GB18030", "GBK", "Big5", "EUC-KR")


def check_text_services() -> CheckResult:
    """What Qt takes from ICU on Linux (the bundle carries a trimmed ICU data library): collation,
    time-zone names and legacy encodings. Elsewhere Qt uses the OS for these; collation is still checked.
    """
    from PySide6.QtCore import QCollator, QLocale, QStringDecoder, QTimeZone

    english = QLocale("en_US")
    if QCollator(english).compare("résumé", "rf") >= 0:  # code-point order would put "é" after "f"
        raise SelfTestFailure("collation data missing: QCollator sorts 'résumé' after 'rf'")
    if not sys.platform.startswith("linux"):
        return CheckResult("OK", "text services", "collation (the OS's)")
    zone_id, expected = TIME_ZONE_PROBE
    name = QTimeZone(zone_id.encode()).displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName,
                                                   english)
    if expected not in name:
        raise SelfTestFailure(f"time-zone names missing: {zone_id} is called {name!r}")
    missing = [encoding for encoding in LEGACY_ENCODINGS if not QStringDecoder(encoding).isValid()]
    if missing:
        raise SelfTestFailure(f"encodings missing: {', '.join(missing)}")
    return CheckResult("OK", "text services",
                       f"collation, time-zone names ({name}), {len(LEGACY_ENCODINGS)} legacy encodings")


def check_keyring() -> CheckResult:
    """The keyring backend; the fail backend is a warning (AVA then needs OPENAI_API_KEY)."""
    from ava_tray import keystore

    name = keystore.backend_name()
    if name.startswith("keyring.backends.fail."):
        try:
            keystore.stored_key()
        except keystore.KeyStoreError as exc:
            return CheckResult("WARN", "keyring", f"{name}: {exc}")
    return CheckResult("OK", "keyring", name)


def check_portaudio() -> CheckResult:
    """PortAudio loads, and from where (in a frozen build: the bundled copy)."""
    try:
        import sounddevice  # noqa: F401  # loads PortAudio
    except (OSError, ImportError) as exc:
        raise SelfTestFailure(f"PortAudio cannot be loaded ({exc}): AVA has no microphone or speaker") from None
    from ava_tray.audio.devices import portaudio_info

    return CheckResult("OK", "portaudio", portaudio_info())


def check_devices() -> CheckResult:
    """The microphones and speakers PortAudio sees; none is a warning (a server may be down)."""
    from ava_tray.audio.devices import list_devices

    inputs, outputs = list_devices()
    detail = f"{len(inputs)} input, {len(outputs)} output"
    if not inputs or not outputs:
        return CheckResult("WARN", "audio devices", f"{detail}: AVA needs a microphone and a speaker")
    return CheckResult("OK", "audio devices", f"{detail} (e.g. {inputs[0]!r} / {outputs[0]!r})")


def check_echo_cancellation() -> CheckResult:
    """Load WebRTC's audio processing module (bundled with `livekit`) and cancel a synthetic echo with it.

    Unavailable is a warning, not a failure: AVA then runs half-duplex (the microphone is muted while it
    speaks), which works but cannot be interrupted.
    """
    from ava_tray.audio import echo

    problem = echo.load_error()
    if problem is not None:
        return CheckResult("WARN", "echo cancellation", f"{echo.STATE_UNAVAILABLE} (the audio processing "
                           f"library did not load: {problem})")
    began = time.perf_counter()
    removed = echo.measure_echo_removal()
    took = time.perf_counter() - began
    if removed < 20.0:
        raise SelfTestFailure(f"the echo canceller removed only {removed:.1f} dB of a synthetic echo")
    return CheckResult("OK", "echo cancellation", f"active: {removed:.0f} dB of a synthetic 60 ms echo removed "
                       f"(4 s of audio processed in {took * 1000:.0f} ms)")


def check_session() -> CheckResult:
    """One full session against the embedded simulator, within `SESSION_TIMEOUT_S`."""
    return asyncio.run(_simulated_session())


async def _simulated_session() -> CheckResult:
    from ava_tray.realtime.connection import Keepalive, open_connection
    from ava_tray.realtime.events import SessionConfig, encode, response_create, session_update
    from ava_tray.simulator import RealtimeSimulator

    loop = asyncio.get_running_loop()
    began = loop.time()
    simulator = RealtimeSimulator(session_limit=60.0, reply_seconds=0.3)
    try:
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            await simulator.start()
            websocket = await open_connection(simulator.url, None, Keepalive(open_timeout=SESSION_TIMEOUT_S))
            try:
                await _expect(websocket, "session.created")
                await websocket.send(encode(session_update(SessionConfig())))
                await _expect(websocket, "session.updated")
                await websocket.send(encode(response_create()))
                deltas, status = 0, None
                while True:
                    event = await _next_event(websocket)
                    if event["type"] == "response.output_audio.delta":
                        deltas += 1
                    elif event["type"] == "response.done":
                        status = event.get("response", {}).get("status")
                        break
            finally:
                await websocket.close(1000)
            code = websocket.close_code
    except TimeoutError:
        raise SelfTestFailure(f"no complete session within {SESSION_TIMEOUT_S:.0f} s") from None
    finally:
        await simulator.stop()
    if status != "completed":
        raise SelfTestFailure(f"the response ended with status {status!r}, not 'completed'")
    if not deltas:
        raise SelfTestFailure("the response carried no audio")
    if code != 1000:
        raise SelfTestFailure(f"the socket closed with code {code}, not 1000")
    return CheckResult("OK", "simulated session", f"created, updated, {deltas} audio deltas, completed, closed "
                       f"1000 in {loop.time() - began:.2f} s")


async def _next_event(websocket: Any) -> dict[str, Any]:
    from ava_tray.realtime.events import decode, error_message

    event = decode(await websocket.recv())
    if event["type"] == "error":
        raise SelfTestFailure(f"the server sent an error: {error_message(event)}")
    return event


async def _expect(websocket: Any, type_: str) -> dict[str, Any]:
    """Read events until one of `type_` arrives (other events are skipped)."""
    while True:
        event = await _next_event(websocket)
        if event["type"] == type_:
            return event


# --- running ---------------------------------------------------------------------------------------


CHECKS: tuple[tuple[str, Callable[[], CheckResult | list[CheckResult]]], ...] = (
    ("qt platform", check_qt),
    ("text services", check_text_services),
    ("keyring", check_keyring),
    ("portaudio", check_portaudio),
    ("audio devices", check_devices),
    ("echo cancellation", check_echo_cancellation),
    ("simulated session", check_session),
)


def _run(name: str, check: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    """Run one check; any exception becomes a FAIL line with its message."""
    try:
        result = check()
    except SelfTestFailure as exc:
        return [CheckResult("FAIL", name, str(exc))]
    except Exception as exc:
        logger.debug("self-test check %s raised", name, exc_info=True)
        return [CheckResult("FAIL", name, f"{type(exc).__name__}: {_one_line(str(exc))}")]
    return result if isinstance(result, list) else [result]


def _one_line(message: str) -> str:
    """A report line from any message: the last line of a long one says what went wrong (numpy's do)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _where() -> str:
    frozen = getattr(sys, "frozen", False)
    kind = f"frozen at {getattr(sys, '_MEIPASS', sys.executable)}" if frozen else f"from source, {sys.executable}"
    return f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, {kind}"


def run_self_test(out: TextIO | None = None) -> int:
    """Run every check and print the report; 0 if none failed, 1 otherwise."""
    stream = out or sys.stdout
    print(f"AVA Tray {__version__} self-test ({_where()})", file=stream, flush=True)
    counts: dict[Status, int] = {"OK": 0, "INFO": 0, "WARN": 0, "FAIL": 0}
    for name, check in CHECKS:
        for result in _run(name, check):
            counts[result.status] += 1
            print(result.line(), file=stream, flush=True)
    verdict = "FAILED" if counts["FAIL"] else "passed"
    print(f"self-test {verdict}: {counts['OK']} ok, {counts['WARN']} warning(s), {counts['FAIL']} failure(s)",
          file=stream, flush=True)
    return 1 if counts["FAIL"] else 0
