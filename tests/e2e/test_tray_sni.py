"""The development app's tray over StatusNotifierItem (KDE, GNOME with AppIndicator, Ubuntu), checked from the
desktop's side of D-Bus: a private session bus with a StatusNotifierWatcher and a notification server
(tests/desktop_bus.py), AVA on the X display of `scripts/with-services.sh`. The installed .deb goes through the
same checks in tests/packaging/test_installed.py.

Run with `bash scripts/with-services.sh .venv/bin/python -m pytest tests/e2e/test_tray_sni.py -q -s`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import tray_sni
from desktop_bus import Desktop, dbus_daemon_available, private_session_bus

pytestmark = [
    pytest.mark.e2e, pytest.mark.x11,
    pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="no DISPLAY: run under `bash scripts/with-services.sh`"),
    pytest.mark.skipif(not dbus_daemon_available(), reason="dbus-daemon and dbus-send are needed"),
]


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    with private_session_bus(tmp_path / "bus") as address:
        desktop = Desktop(address)
        try:
            yield desktop
        finally:
            desktop.close()


def test_tray_over_status_notifier_item(desktop: Desktop, tmp_path: Path) -> None:
    env = tray_sni.isolated_env(dict(os.environ), tmp_path / "home", desktop.address)
    observed = tray_sni.check_demo(tray_sni.dev_command(), env, tmp_path, desktop)
    tray_sni.check_rejected_key(tray_sni.dev_command(), env, tmp_path, desktop, observed)
    print(f"\nregistered after {observed.registered_after_s:.2f} s; tooltips: {observed.tooltips}")
