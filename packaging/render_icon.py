"""Render the app's SVG icon to a raster file (PNG, ICO or ICNS by extension) with Qt's own SVG renderer.

    python packaging/render_icon.py resources/ava-tray.svg OUT.png [SIZE]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer


def render(svg: str, out: str, size: int) -> bool:
    """Draw `svg` at `size` x `size` pixels on a transparent image and save it to `out`."""
    renderer = QSvgRenderer(svg)
    if not renderer.isValid():
        print(f"render_icon: cannot read {svg}", file=sys.stderr)
        return False
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(out):
        print(f"render_icon: Qt cannot write {out}", file=sys.stderr)
        return False
    return True


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    app = QGuiApplication.instance() or QGuiApplication(["render_icon"])
    ok = render(argv[0], argv[1], int(argv[2]) if len(argv) == 3 else 256)
    del app
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
