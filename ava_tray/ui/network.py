"""The OS's view of the network (QNetworkInformation), fed to the supervisor as events."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtNetwork import QNetworkInformation

logger = logging.getLogger(__name__)


def is_online(reachability: QNetworkInformation.Reachability) -> bool:
    """Only a definite "disconnected" counts as offline; unknown never pauses AVA."""
    return reachability != QNetworkInformation.Reachability.Disconnected


def watch_network(on_change: Callable[[bool], None]) -> bool:
    """Call `on_change(online)` whenever reachability changes; False when the OS has no backend.

    Without a backend (no NetworkManager, for instance) AVA relies on connection failures and its
    reachability probe instead.
    """
    if not QNetworkInformation.loadBackendByFeatures(QNetworkInformation.Feature.Reachability):
        logger.info("no network information backend: relying on connection failures")
        return False
    info = QNetworkInformation.instance()
    logger.info("network information from the %s backend", info.backendName())
    info.reachabilityChanged.connect(lambda reachability: on_change(is_online(reachability)))
    on_change(is_online(info.reachability()))
    return True
