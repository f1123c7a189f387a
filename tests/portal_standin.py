"""A STAND-IN for the XDG desktop portal's GlobalShortcuts interface on a D-Bus session bus, for tests.

No real GlobalShortcuts portal runs headless (it lives in KDE's, GNOME's or Hyprland's portal backend and needs
their compositor), so this plays its part by the published interface: it owns `org.freedesktop.portal.Desktop`,
answers `CreateSession` and `BindShortcuts` with Request objects whose `Response` signal follows the reply, and
emits `Activated` / `Deactivated` when the test "presses" a shortcut. Its loop runs on a thread of its own, so
synchronous tests can use it too. `offer=False` leaves the interface out (a desktop without the portal);
`answer` picks the response a `BindShortcuts` gets (0 bound, 1 cancelled by the user, 2 refused).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

from dbus_fast import BusType, Message, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusDict, DBusObjectPath, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
T = TypeVar("T")


class _Request(ServiceInterface):
    """org.freedesktop.portal.Request: one call's answer, sent as the Response signal."""

    def __init__(self) -> None:
        super().__init__("org.freedesktop.portal.Request")

    @dbus_method()
    def Close(self):
        pass

    @dbus_signal()
    def Response(self, code: int, results: dict[str, Variant]) -> Annotated[tuple[int, dict[str, Variant]],
                                                                            DBusSignature("ua{sv}")]:
        return (code, results)


class _Session(ServiceInterface):
    """org.freedesktop.portal.Session: closed by the client when it lets the shortcut go."""

    def __init__(self, portal: StandInPortal, path: str) -> None:
        super().__init__("org.freedesktop.portal.Session")
        self._portal = portal
        self._path = path

    @dbus_method()
    def Close(self):
        self._portal.sessions.pop(self._path, None)


class _GlobalShortcuts(ServiceInterface):
    def __init__(self, portal: StandInPortal) -> None:
        super().__init__("org.freedesktop.portal.GlobalShortcuts")
        self._portal = portal

    @dbus_property(access=PropertyAccess.READ)
    def version(self) -> DBusUInt32:
        return 1

    @dbus_method()
    def CreateSession(self, options: DBusDict) -> DBusObjectPath:
        portal = self._portal
        token = str(options["session_handle_token"].value)
        session = f"{PORTAL_PATH}/session/standin/{token}"
        portal.bus.export(session, _Session(portal, session))
        portal.sessions[session] = {}
        return portal.respond(str(options["handle_token"].value), 0, {"session_handle": Variant("s", session)})

    @dbus_method()
    def BindShortcuts(self, session_handle: DBusObjectPath, shortcuts: Annotated[list[Any],
                      DBusSignature("a(sa{sv})")], parent_window: DBusStr, options: DBusDict) -> DBusObjectPath:
        portal = self._portal
        token = str(options["handle_token"].value)
        if portal.answer != 0:
            return portal.respond(token, portal.answer, {})
        bound = []
        for shortcut_id, properties in shortcuts:
            trigger = str(properties["preferred_trigger"].value) if "preferred_trigger" in properties else ""
            portal.sessions.setdefault(session_handle, {})[shortcut_id] = trigger
            bound.append([shortcut_id, {"description": properties.get("description", Variant("s", "")),
                                        "trigger_description": Variant("s", trigger.replace("+", " + "))}])
        return portal.respond(token, 0, {"shortcuts": Variant("a(sa{sv})", bound)})

    @dbus_signal()
    def Activated(self, session: str, shortcut: str, timestamp: int) -> Annotated[
            tuple[str, str, int, dict[str, Variant]], DBusSignature("osta{sv}")]:
        return (session, shortcut, timestamp, {})

    @dbus_signal()
    def Deactivated(self, session: str, shortcut: str, timestamp: int) -> Annotated[
            tuple[str, str, int, dict[str, Variant]], DBusSignature("osta{sv}")]:
        return (session, shortcut, timestamp, {})


class StandInPortal:
    """The portal's GlobalShortcuts on the bus at `address` (a stand-in: see the module's docstring)."""

    def __init__(self, address: str, *, offer: bool = True, answer: int = 0) -> None:
        self.address = address
        self.offer = offer
        self.answer = answer
        self.sessions: dict[str, dict[str, str]] = {}
        self._caller = ""
        """Open sessions: their shortcuts and the trigger each was bound to."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="portal-standin", daemon=True)
        self._thread.start()
        self.bus: MessageBus = self._run(self._connect())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _connect(self) -> MessageBus:
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        bus.add_message_handler(self._note_caller)
        self._shortcuts = _GlobalShortcuts(self)
        if self.offer:
            bus.export(PORTAL_PATH, self._shortcuts)
        await bus.request_name(PORTAL)
        return bus

    def _note_caller(self, message: Message) -> None:
        """Seen before the method runs: who calls (a Request's path is made from the caller's name)."""
        if message.path == PORTAL_PATH and message.sender:
            self._caller = message.sender

    def respond(self, token: str, code: int, results: dict[str, Variant]) -> str:
        """A Request object for this call at the path the spec gives it; its Response follows the reply."""
        path = f"{PORTAL_PATH}/request/{self._caller.lstrip(':').replace('.', '_')}/{token}"
        request = _Request()
        self.bus.export(path, request)
        self._loop.call_soon(request.Response, code, results)
        return path

    def bindings(self) -> dict[str, str]:
        """Every bound shortcut id → its trigger, over all open sessions."""
        return self._run(self._bindings())

    async def _bindings(self) -> dict[str, str]:
        return {shortcut: trigger for shortcuts in self.sessions.values() for shortcut, trigger in shortcuts.items()}

    def press(self, shortcut_id: str) -> None:
        """The user pressed the shortcut: Activated for every session that bound it."""
        self._run(self._emit("Activated", shortcut_id))

    def release(self, shortcut_id: str) -> None:
        """The user let it go: Deactivated."""
        self._run(self._emit("Deactivated", shortcut_id))

    async def _emit(self, member: str, shortcut_id: str) -> None:
        stamp = int(time.monotonic() * 1000)
        for session, shortcuts in self.sessions.items():
            if shortcut_id in shortcuts:
                getattr(self._shortcuts, member)(session, shortcut_id, stamp)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self.bus.disconnect)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
