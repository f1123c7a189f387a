"""The desktop's side of the tray protocols on a private D-Bus session bus, for end-to-end tests.

KDE, GNOME with the AppIndicator extension and Ubuntu show tray icons through StatusNotifierItem: the panel
owns `org.kde.StatusNotifierWatcher` (with a host registered) and reads each item's properties and its
`com.canonical.dbusmenu` menu over D-Bus; notifications go to `org.freedesktop.Notifications`. `Desktop`
plays that part with dbus-fast on an asyncio loop in a thread of its own, so tests stay synchronous and
wait with `waits.poll_until`. It is the desktop, not a stand-in for AVA: AVA runs unchanged against it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from dbus_fast import BusType, Message, MessageType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusDict, DBusInt32, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, dbus_method, dbus_property, dbus_signal
from waits import poll_until

WATCHER = "org.kde.StatusNotifierWatcher"
ITEM_INTERFACE = "org.kde.StatusNotifierItem"
NOTIFICATIONS = "org.freedesktop.Notifications"
MENU_INTERFACE = "com.canonical.dbusmenu"
CALL_TIMEOUT_S = 10.0

T = TypeVar("T")


def dbus_daemon_available() -> bool:
    return all(shutil.which(tool) for tool in ("dbus-daemon", "dbus-send"))


def keyring_daemon_available() -> bool:
    return shutil.which("gnome-keyring-daemon") is not None


@contextmanager
def private_session_bus(folder: Path, *, keyring: bool = False) -> Iterator[str]:
    """A `dbus-daemon --session` of our own (socket in `folder`), with an unlocked gnome-keyring (Secret
    Service) on it if asked; yields the bus address and stops both afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen[str]] = []
    try:
        daemon = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
                                   f"--address=unix:dir={folder}"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        started.append(daemon)
        assert daemon.stdout is not None
        address = daemon.stdout.readline().strip()
        assert address.startswith("unix:"), f"dbus-daemon printed {address!r}"
        if keyring:
            started.append(_start_keyring(address, folder / "keyring-home"))
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start_keyring(address: str, home: Path) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address, HOME=str(home))
    daemon = subprocess.Popen(["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    assert daemon.stdin is not None
    daemon.stdin.write("pw")
    daemon.stdin.close()

    def secrets_owned() -> bool:
        if daemon.poll() is not None:
            raise AssertionError(f"gnome-keyring-daemon exited ({daemon.returncode})")
        reply = subprocess.run(["dbus-send", "--session", "--dest=org.freedesktop.DBus", "--print-reply",
                                "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                                "string:org.freedesktop.secrets"], env=env, capture_output=True, text=True)
        return "boolean true" in reply.stdout

    poll_until(secrets_owned, 15, "gnome-keyring-daemon to own org.freedesktop.secrets")
    return daemon


@dataclass(frozen=True)
class Notification:
    app_name: str
    summary: str
    body: str


class _Watcher(ServiceInterface):
    """org.kde.StatusNotifierWatcher, with a host (the panel) registered.

    Members are named as on D-Bus; dbus-fast reads a return annotation as the reply's signature, so methods
    that reply with nothing have none.
    """

    def __init__(self, desktop: Desktop) -> None:
        super().__init__(WATCHER)
        self._desktop = desktop

    @dbus_method()
    def RegisterStatusNotifierItem(self, service: DBusStr):
        self._desktop._item_registered(service)
        self.StatusNotifierItemRegistered(service)

    @dbus_method()
    def RegisterStatusNotifierHost(self, service: DBusStr):
        pass

    @dbus_property(access=PropertyAccess.READ)
    def RegisteredStatusNotifierItems(self) -> Annotated[list[str], DBusSignature("as")]:
        return [item.service for item in self._desktop.items]

    @dbus_property(access=PropertyAccess.READ)
    def IsStatusNotifierHostRegistered(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ProtocolVersion(self) -> DBusInt32:
        return 0

    @dbus_signal()
    def StatusNotifierItemRegistered(self, service: str) -> DBusStr:
        return service

    @dbus_signal()
    def StatusNotifierHostRegistered(self):
        return None


class _NotificationServer(ServiceInterface):
    """org.freedesktop.Notifications: keeps what it is asked to show."""

    def __init__(self, desktop: Desktop) -> None:
        super().__init__(NOTIFICATIONS)
        self._desktop = desktop
        self._next_id = 0

    @dbus_method()
    def Notify(self, app_name: DBusStr, replaces_id: DBusUInt32, app_icon: DBusStr,
               summary: DBusStr, body: DBusStr, actions: Annotated[list[str], DBusSignature("as")],
               hints: DBusDict, expire_timeout: DBusInt32) -> DBusUInt32:
        self._desktop.notifications.append(Notification(app_name, summary, body))
        self._next_id += 1
        return self._next_id

    @dbus_method()
    def GetCapabilities(self) -> Annotated[list[str], DBusSignature("as")]:
        return ["body"]

    @dbus_method()
    def GetServerInformation(self) -> Annotated[tuple[str, str, str, str], DBusSignature("ssss")]:
        return ("test-desktop", "ava-tray tests", "1.0", "1.2")

    @dbus_method()
    def CloseNotification(self, notification_id: DBusUInt32):
        pass


@dataclass(frozen=True)
class Item:
    """A registered StatusNotifierItem: the bus name serving it and its object path."""

    service: str
    bus_name: str
    path: str


@dataclass(frozen=True)
class MenuEntry:
    id: int
    label: str
    enabled: bool
    visible: bool
    separator: bool


class Desktop:
    """The panel (a StatusNotifierWatcher with a host) and a notification server on the bus at `address`."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.items: list[Item] = []
        self.notifications: list[Notification] = []
        self._last_sender = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="desktop-bus", daemon=True)
        self._thread.start()
        self._bus: MessageBus = self._run(self._connect())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT_S)

    async def _connect(self) -> MessageBus:
        bus = await MessageBus(bus_address=self.address, bus_type=BusType.SESSION).connect()
        bus.add_message_handler(self._note_sender)
        bus.export("/StatusNotifierWatcher", _Watcher(self))
        bus.export("/org/freedesktop/Notifications", _NotificationServer(self))
        await bus.request_name(WATCHER)
        await bus.request_name(NOTIFICATIONS)
        return bus

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._bus.disconnect)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- the panel's side ----------------------------------------------------------------------

    def _note_sender(self, message: Message) -> None:
        """Seen before the watcher answers: who calls RegisterStatusNotifierItem (for path-style items)."""
        if message.member == "RegisterStatusNotifierItem" and message.interface == WATCHER:
            self._last_sender = message.sender or ""

    def _item_registered(self, service: str) -> None:
        if service.startswith("/"):  # some apps register an object path on their own connection
            self.items.append(Item(service, self._last_sender, service))
        else:
            self.items.append(Item(service, service, "/StatusNotifierItem"))

    async def _call(self, destination: str, path: str, interface: str, member: str, signature: str = "",
                    body: list[Any] | None = None) -> list[Any]:
        reply = await self._bus.call(Message(destination=destination, path=path, interface=interface,
                                             member=member, signature=signature, body=body or []))
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{interface}.{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    def item_property(self, item: Item, name: str) -> Any:
        """A property of the item (Variant values unwrapped)."""
        body = self._run(self._call(item.bus_name, item.path, "org.freedesktop.DBus.Properties", "Get", "ss",
                                    [ITEM_INTERFACE, name]))
        value = body[0]
        return value.value if isinstance(value, Variant) else value

    def tooltip(self, item: Item) -> str:
        """The tooltip as a panel shows it: ToolTip's title (and its description, when there is one)."""
        _icon_name, _pixmaps, title, description = self.item_property(item, "ToolTip")
        return f"{title} {description}".strip()

    def icon(self, item: Item) -> tuple[str, bytes]:
        """(IconName, the largest IconPixmap's ARGB bytes): what the panel draws."""
        name = self.item_property(item, "IconName")
        pixmaps = self.item_property(item, "IconPixmap")
        largest = max(pixmaps, key=lambda p: p[0] * p[1], default=(0, 0, b""))
        return name, bytes(largest[2])

    def menu(self, item: Item) -> list[MenuEntry]:
        """The item's exported menu, top level, through com.canonical.dbusmenu GetLayout."""
        path = self.item_property(item, "Menu")
        _revision, layout = self._run(self._call(item.bus_name, path, MENU_INTERFACE, "GetLayout", "iias",
                                                 [0, -1, []]))
        entries = []
        for child in layout[2]:
            entry_id, props, _children = child.value if isinstance(child, Variant) else child
            value = {key: v.value for key, v in props.items()}
            entries.append(MenuEntry(entry_id, str(value.get("label", "")).replace("&", ""),
                                     bool(value.get("enabled", True)), bool(value.get("visible", True)),
                                     value.get("type") == "separator"))
        return entries

    def click(self, item: Item, entry: MenuEntry) -> None:
        """Click a menu entry as the panel does: Event(id, "clicked", data, timestamp)."""
        path = self.item_property(item, "Menu")
        self._run(self._call(item.bus_name, path, MENU_INTERFACE, "Event", "isvu",
                             [entry.id, "clicked", Variant("i", 0), 0]))


def session_env(base: dict[str, str], address: str) -> dict[str, str]:
    """`base` with the private bus as the session bus (and no Qt platform forced: the app needs the display)."""
    env = {k: v for k, v in base.items() if k != "QT_QPA_PLATFORM"}
    env["DBUS_SESSION_BUS_ADDRESS"] = address
    return env
