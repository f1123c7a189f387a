"""QNetworkInformation feeds the supervisor: only a definite "disconnected" pauses AVA."""

from __future__ import annotations

from PySide6.QtNetwork import QNetworkInformation

from ava_tray.ui.network import is_online, watch_network

R = QNetworkInformation.Reachability


def test_only_disconnected_counts_as_offline() -> None:
    assert not is_online(R.Disconnected)
    assert all(is_online(r) for r in (R.Online, R.Site, R.Local, R.Unknown))


def test_watching_reports_the_current_state_or_says_there_is_no_backend(qapp: object) -> None:
    seen: list[bool] = []
    if watch_network(seen.append):
        assert len(seen) == 1  # the current reachability, at once
    else:
        assert seen == []  # no backend here: AVA relies on connection failures and its probe
