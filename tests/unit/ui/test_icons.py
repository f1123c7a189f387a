"""The state icons: an SVG per state in both variants, distinct even in monochrome, built once."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtGui import QImage
from PySide6.QtSvg import QSvgRenderer

from ava_tray.status import ICON_NAMES
from ava_tray.ui.icons import StateIcons, resources_dir

DISCS = {"connected", "hearing", "speaking", "muted", "reconnecting", "push_to_talk"}


@pytest.mark.parametrize("variant", ["light", "dark"])
@pytest.mark.parametrize("name", ICON_NAMES)
def test_every_state_has_a_valid_svg(name: str, variant: str) -> None:
    path = resources_dir() / "icons" / f"{name}-{variant}.svg"
    assert path.is_file()
    assert QSvgRenderer(str(path)).isValid()


def test_the_app_icon_and_desktop_file_exist() -> None:
    assert QSvgRenderer(str(resources_dir() / "ava-tray.svg")).isValid()
    desktop = (resources_dir() / "ava-tray.desktop").read_text()
    assert "Exec=ava-tray" in desktop and "Icon=ava-tray" in desktop


@pytest.mark.parametrize("dark", [False, True])
def test_icons_differ_in_shape_not_only_colour(qapp: object, dark: bool) -> None:
    icons = StateIcons()
    shapes = {}
    for name in ICON_NAMES:
        image = icons.icon(name, dark).pixmap(22, 22).toImage().convertToFormat(QImage.Format.Format_ARGB32)
        # Monochrome: only where the icon is opaque, whatever the colour.
        shapes[name] = [image.pixelColor(x, y).alpha() > 128 for y in range(22) for x in range(22)]
    for a, b in itertools.combinations(ICON_NAMES, 2):
        if {a, b} <= DISCS:
            continue  # the same disc: told apart by the glyph inside, checked below
        differing = sum(x != y for x, y in zip(shapes[a], shapes[b], strict=True))
        assert differing >= 20, f"{a} and {b} have nearly the same silhouette ({differing} px differ)"


@pytest.mark.parametrize("dark", [False, True])
def test_disc_icons_differ_in_their_glyph_in_grey(qapp: object, dark: bool) -> None:
    icons = StateIcons()
    greys = {}
    for name in sorted(DISCS):
        image = icons.icon(name, dark).pixmap(22, 22).toImage().convertToFormat(QImage.Format.Format_ARGB32)
        # The glyph: pixels that contrast with the disc (grey level, so colour alone does not count).
        edge = image.pixelColor(11, 2).lightness()
        greys[name] = [abs(image.pixelColor(x, y).lightness() - edge) > 60 for y in range(22) for x in range(22)]
    for a, b in itertools.combinations(greys, 2):
        differing = sum(x != y for x, y in zip(greys[a], greys[b], strict=True))
        assert differing >= 15, f"{a} and {b} glyphs are too alike ({differing} px differ)"


def test_icons_are_built_once_and_cached(qapp: object) -> None:
    icons = StateIcons()
    first = icons.icon("connected", False)
    for _ in range(50):
        icons.icon("connected", False)
    assert icons.builds == 1
    assert icons.icon("connected", False).cacheKey() == first.cacheKey()
    icons.icon("connected", True)
    assert icons.builds == 2


def test_icons_render_at_any_size(qapp: object) -> None:
    icon = StateIcons().icon("error", False)
    for size in (16, 22, 37, 64, 200):
        pixmap = icon.pixmap(size, size)
        assert pixmap.width() == size and not pixmap.isNull()


def test_light_and_dark_variants_differ(qapp: object) -> None:
    icons = StateIcons()
    for name in ICON_NAMES:
        light = icons.icon(name, False).pixmap(22, 22).toImage()
        dark = icons.icon(name, True).pixmap(22, 22).toImage()
        assert light != dark, name
