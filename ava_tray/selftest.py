"""`ava-tray --self-test`: a headless check that an install (frozen or not) has what AVA needs.

One line per check and per optional capability (`ava_tray.capabilities`): OK / INFO / WARN / FAIL and a
detail, printed as it finishes; the exit code is 1 if any check failed. Every exception becomes a FAIL line:
no traceback reaches the user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from ava_tray import __version__
from ava_tray.capabilities import PROBES, Capability, CapabilityBroken

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
    """Load the Qt platform plugin (offscreen without a display), then the SVG icons. (How the tray icon reaches
    the desktop is a capability: see `ava_tray.capabilities`.)"""
    wanted = _request_platform()
    import PySide6
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(["ava-tray", "--self-test"])
    assert isinstance(app, QApplication)
    name = app.platformName()
    results = []
    if wanted and name != wanted:
        results.append(CheckResult("FAIL", "qt platform", f"the '{wanted}' platform plugin did not load (Qt fell "
                                   f"back to '{name}'); see Qt's message on stderr"))
    else:
        results.append(CheckResult("OK", "qt platform", f"{name} (Qt {PySide6.__version__})"))
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


def check_session() -> CheckResult:
    """One full session against the embedded simulator, within `SESSION_TIMEOUT_S`."""
    return asyncio.run(_simulated_session())


async def _simulated_session() -> CheckResult:
    from ava_tray.realtime.connection import Keepalive, open_connection
    from ava_tray.realtime.events import (
        SessionConfig,
        audio_codec,
        audio_delta_pcm,
        encode,
        response_create,
        session_update,
    )
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
                deltas, audio_bytes, status = 0, 0, None
                while True:
                    event = await _next_event(websocket)
                    if event["type"] == "response.output_audio.delta":
                        deltas += 1
                        audio_bytes += len(audio_delta_pcm(event))
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
    if not deltas or not audio_bytes:
        raise SelfTestFailure("the response carried no audio")
    if code != 1000:
        raise SelfTestFailure(f"the socket closed with code {code}, not 1000")
    codec, fast = audio_codec()
    return CheckResult("OK" if fast else "WARN", "simulated session",
                       f"created, updated, {deltas} audio deltas ({codec}), completed, closed 1000 in "
                       f"{loop.time() - began:.2f} s")


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


def _capability_check(name: str, probe: Callable[[], Capability]) -> Callable[[], CheckResult]:
    def check() -> CheckResult:
        capability = probe()
        return CheckResult(capability.status, name, capability.detail)

    return check


CHECKS: tuple[tuple[str, Callable[[], CheckResult | list[CheckResult]]], ...] = (
    ("qt platform", check_qt),
    ("text services", check_text_services),
    ("portaudio", check_portaudio),
    ("audio devices", check_devices),
    *((name, _capability_check(name, probe)) for name, probe in PROBES),
    ("simulated session", check_session),
)
"""The basics first, then one line per optional capability (`capabilities.PROBES`), then a whole session."""


def _run(name: str, check: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    """Run one check; any exception becomes a FAIL line with its message."""
    try:
        result = check()
    except (SelfTestFailure, CapabilityBroken) as exc:
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
