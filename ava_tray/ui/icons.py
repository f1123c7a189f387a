"""The state icons: SVG sources in `resources/icons`, a light and a dark variant, built once and cached."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

from ava_tray.status import ICON_NAMES

logger = logging.getLogger(__name__)

PIXMAP_SIZES = (16, 20, 22, 24, 32, 40, 48, 64, 96, 128, 256)


def resources_dir() -> Path:
    """Where the icons and the .desktop file are: `AVA_TRAY_RESOURCES`, a frozen bundle, or the source tree."""
    candidates = []
    if os.environ.get("AVA_TRAY_RESOURCES"):
        candidates.append(Path(os.environ["AVA_TRAY_RESOURCES"]))
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "resources")
    candidates.append(Path(__file__).resolve().parents[2] / "resources")
    candidates.append(Path(sys.prefix) / "share" / "ava-tray" / "resources")
    for candidate in candidates:
        if (candidate / "icons").is_dir():
            return candidate
    return candidates[-1]


def prefers_dark() -> bool:
    """True when the desktop uses a dark scheme (style hints, else the palette's window lightness)."""
    app = QGuiApplication.instance()
    if not isinstance(app, QGuiApplication):
        return False
    scheme = QGuiApplication.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return QGuiApplication.palette().window().color().lightness() < 128


class StateIcons:
    """One QIcon per state and variant, rendered from SVG on first use and then kept."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or resources_dir() / "icons"
        self._cache: dict[tuple[str, bool], QIcon] = {}
        self.builds = 0

    def path(self, name: str, dark: bool) -> Path:
        return self.directory / f"{name}-{'dark' if dark else 'light'}.svg"

    def icon(self, name: str, dark: bool) -> QIcon:
        """The icon for `name` in its dark-palette or light-palette variant."""
        if name not in ICON_NAMES:
            raise KeyError(f"no icon named {name!r}")
        key = (name, dark)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._build(name, dark)
            self._cache[key] = cached
        return cached

    def _build(self, name: str, dark: bool) -> QIcon:
        self.builds += 1
        path = self.path(name, dark)
        renderer = QSvgRenderer(str(path))
        if not renderer.isValid():
            logger.warning("icon %s is missing or not valid SVG", path)
            return QIcon()
        # The SVG icon engine renders at any size; pixmaps at the usual tray sizes make the small ones
        # exact even where a tray host asks only for pixmaps.
        icon = QIcon(str(path))
        for size in PIXMAP_SIZES:
            icon.addPixmap(_render(renderer, size))
        return icon


def _render(renderer: QSvgRenderer, size: int) -> QPixmap:
    pixmap = QPixmap(QSize(size, size))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return pixmap


def app_icon() -> QIcon:
    """The application's own icon (windows, the .desktop entry)."""
    return QIcon(str(resources_dir() / "ava-tray.svg"))
