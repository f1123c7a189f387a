"""One AVA per user: a second launch hands over to the running one (which shows its status window).

A QLocalServer named after the user and the config folder is the lock. A stale server left by a crash
does not answer a connection, so it is removed and the new instance listens in its place.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from ava_tray import paths

logger = logging.getLogger(__name__)

SHOW = b"show\n"
CONNECT_TIMEOUT_MS = 500


def server_name() -> str:
    """Per user and per config folder, so isolated test homes do not collide."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "user"
    digest = hashlib.sha1(str(paths.config_dir()).encode()).hexdigest()[:10]
    return f"ava-tray-{user}-{digest}"


def hand_over(name: str | None = None) -> bool:
    """If an AVA already runs, ask it to show itself and return True; False if none answers."""
    socket = QLocalSocket()
    socket.connectToServer(name or server_name())
    if not socket.waitForConnected(CONNECT_TIMEOUT_MS):
        return False
    socket.write(SHOW)
    socket.flush()
    socket.waitForBytesWritten(CONNECT_TIMEOUT_MS)
    socket.disconnectFromServer()
    if socket.state() != QLocalSocket.LocalSocketState.UnconnectedState:
        socket.waitForDisconnected(CONNECT_TIMEOUT_MS)
    return True


class InstanceLock(QObject):
    """Listens for later launches; `on_show` runs when one asks this instance to show itself."""

    def __init__(self, on_show: Callable[[], None], name: str | None = None) -> None:
        super().__init__()
        self.name = name or server_name()
        self._on_show = on_show
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Take the name; a leftover from a crashed instance (nobody answered) is removed first."""
        if self.server.listen(self.name):
            return True
        logger.info("removing a stale single-instance server %s", self.name)
        QLocalServer.removeServer(self.name)
        if self.server.listen(self.name):
            return True
        logger.warning("could not listen on %s: %s", self.name, self.server.errorString())
        return False

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)
            if socket.bytesAvailable():
                self._read(socket)

    def _read(self, socket: QLocalSocket) -> None:
        data = bytes(socket.readAll().data())
        if SHOW.strip() in data:
            logger.info("another launch asked to show the status window")
            self._on_show()

    def close(self) -> None:
        self.server.close()
