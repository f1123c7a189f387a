"""A global shortcut on Wayland through the XDG desktop portal's GlobalShortcuts interface (dbus-fast, asyncio).

Wayland gives no program the keyboard of others; where the desktop offers the portal (KDE Plasma, GNOME 48 and
later, Hyprland...) AVA asks it to bind the shortcut: `CreateSession`, then `BindShortcuts` with the preferred
trigger (the desktop may show a dialog and choose another), then `Activated` and `Deactivated` signals for
press and release. Each call answers with a Request object whose `Response` signal carries the result.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from ava_tray.hotkey.keys import Chord, ShortcutTaken, ShortcutUnavailable

logger = logging.getLogger(__name__)

PORTAL = "org.freedesktop.portal.Desktop"
PORTAL_PATH = "/org/freedesktop/portal/desktop"
SHORTCUTS = "org.freedesktop.portal.GlobalShortcuts"
REQUEST = "org.freedesktop.portal.Request"
SESSION = "org.freedesktop.portal.Session"
SHORTCUT_ID = "ava-microphone"
RESPONSE_TIMEOUT_S = 120.0
"""BindShortcuts may wait for the user in the desktop's dialog."""
NOT_OFFERED = "not available on this desktop (it offers no GlobalShortcuts portal); use the tray menu"


class PortalShortcut:
    """One shortcut bound through the portal on the session bus; `on_press`/`on_release` run on the loop."""

    name = "XDG desktop portal"

    def __init__(self, bus_address: str | None = None, description: str = "Mute or talk to AVA") -> None:
        self._address = bus_address
        self.description = description
        self._bus: Any = None
        self._session: str | None = None
        self._waiting: dict[str, asyncio.Future[tuple[int, dict[str, Any]]]] = {}
        self._unclaimed: dict[str, tuple[int, dict[str, Any]]] = {}
        """Responses on paths nobody waits for yet (an older portal's own path, answered before its reply)."""
        self._on_press: Callable[[], None] = lambda: None
        self._on_release: Callable[[], None] = lambda: None

    async def bind(self, chord: Chord, on_press: Callable[[], None], on_release: Callable[[], None]) -> str:
        """Bind `chord` (as the preferred trigger); returns how it is held. Raises ShortcutTaken or
        ShortcutUnavailable."""
        from dbus_fast import BusType, Message, MessageType, Variant
        from dbus_fast.aio import MessageBus

        try:
            bus = (MessageBus(bus_address=self._address) if self._address
                   else MessageBus(bus_type=BusType.SESSION))
            await bus.connect()
        except Exception as exc:
            raise ShortcutUnavailable(f"no session bus to reach the desktop portal ({exc}): use the tray menu") \
                from exc
        self._bus = bus
        self._on_press, self._on_release = on_press, on_release
        try:
            version = await self._call(Message(destination=PORTAL, path=PORTAL_PATH,
                                               interface="org.freedesktop.DBus.Properties", member="Get",
                                               signature="ss", body=[SHORTCUTS, "version"]))
            if version.message_type == MessageType.ERROR:
                raise ShortcutUnavailable(NOT_OFFERED)
            logger.info("the desktop offers the GlobalShortcuts portal, version %s", version.body[0].value)
            bus.add_message_handler(self._on_message)
            await self._add_match(f"type='signal',sender='{PORTAL}',interface='{REQUEST}',member='Response'")
            await self._add_match(f"type='signal',sender='{PORTAL}',interface='{SHORTCUTS}'")
            code, results = await self._request(
                "CreateSession", "a{sv}", [{"handle_token": Variant("s", _token()),
                                             "session_handle_token": Variant("s", _token())}])
            if code != 0 or "session_handle" not in results:
                raise ShortcutUnavailable(f"the desktop portal refused a shortcut session (response {code}): "
                                          "use the tray menu")
            self._session = str(results["session_handle"].value)
            shortcut = [SHORTCUT_ID, {"description": Variant("s", self.description),
                                      "preferred_trigger": Variant("s", chord.portal_trigger)}]
            code, results = await self._request(
                "BindShortcuts", "oa(sa{sv})sa{sv}", [self._session, [shortcut], "",
                                                      {"handle_token": Variant("s", _token())}])
        except BaseException:
            await self.close()
            raise
        if code == 1:
            await self.close()
            raise ShortcutUnavailable("the desktop's shortcut dialog was cancelled: bind it again from Settings, or "
                                      "use the tray menu")
        if code != 0:
            await self.close()
            raise ShortcutTaken(f"the desktop did not bind {chord} (response {code}): choose another shortcut in "
                                "Settings or in the desktop's shortcut settings")
        bound = {str(item[0]): item[1] for item in results["shortcuts"].value} if "shortcuts" in results else {}
        if SHORTCUT_ID not in bound:
            await self.close()
            raise ShortcutTaken(f"the desktop bound no key for {chord} (it may be taken): choose one in the "
                                "desktop's shortcut settings")
        trigger = bound[SHORTCUT_ID].get("trigger_description")
        described = str(trigger.value) if trigger is not None and trigger.value else str(chord)
        logger.info("global shortcut bound by the desktop portal: %s", described)
        return f"{described} (desktop portal)"

    async def _call(self, message: Any) -> Any:
        return await self._bus.call(message)

    async def _add_match(self, rule: str) -> None:
        from dbus_fast import Message

        await self._call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                 interface="org.freedesktop.DBus", member="AddMatch", signature="s", body=[rule]))

    async def _request(self, member: str, signature: str, body: list[Any]) -> tuple[int, dict[str, Any]]:
        """Call `member`, then wait for its Request's Response: (response code, results)."""
        from dbus_fast import Message, MessageType

        options = body[-1]
        sender = str(self._bus.unique_name).lstrip(":").replace(".", "_")
        expected = f"{PORTAL_PATH}/request/{sender}/{options['handle_token'].value}"
        future: asyncio.Future[tuple[int, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._waiting[expected] = future
        try:
            reply = await self._call(Message(destination=PORTAL, path=PORTAL_PATH, interface=SHORTCUTS,
                                             member=member, signature=signature, body=body))
            if reply.message_type == MessageType.ERROR:
                raise ShortcutUnavailable(f"the desktop portal refused {member}: {reply.body[0] if reply.body else ''}"
                                          f" ({reply.error_name}): use the tray menu")
            handle = str(reply.body[0])
            if handle != expected:  # portals before version 0.9 chose the path themselves
                self._waiting[handle] = self._waiting.pop(expected)
                if handle in self._unclaimed:
                    future.set_result(self._unclaimed.pop(handle))
            async with asyncio.timeout(RESPONSE_TIMEOUT_S):
                return await future
        except TimeoutError:
            raise ShortcutUnavailable(f"the desktop portal did not answer {member}: use the tray menu") from None
        finally:
            for path, waiting in list(self._waiting.items()):
                if waiting is future:
                    del self._waiting[path]

    def _on_message(self, message: Any) -> None:
        from dbus_fast import MessageType

        if message.message_type != MessageType.SIGNAL:
            return
        if message.interface == REQUEST and message.member == "Response":
            code, results = message.body
            future = self._waiting.get(message.path)
            if future is None:
                self._unclaimed[message.path] = (int(code), dict(results))
            elif not future.done():
                future.set_result((int(code), dict(results)))
        elif message.interface == SHORTCUTS and message.member in ("Activated", "Deactivated"):
            session, shortcut = str(message.body[0]), str(message.body[1])
            if session != self._session or shortcut != SHORTCUT_ID:
                return
            (self._on_press if message.member == "Activated" else self._on_release)()

    async def close(self) -> None:
        """Close the portal session and the bus connection; idempotent."""
        bus, self._bus = self._bus, None
        session, self._session = self._session, None
        if bus is None:
            return
        if session is not None:
            from dbus_fast import Message

            try:
                await bus.call(Message(destination=PORTAL, path=session, interface=SESSION, member="Close"))
            except Exception as exc:
                logger.debug("closing the portal session: %s", exc)
        bus.disconnect()


def _token() -> str:
    return "ava_" + secrets.token_hex(6)
