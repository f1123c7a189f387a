"""describe(): every state's icon, tooltip and menu enablement, the countdown, and the notification policy."""

from __future__ import annotations

import pytest

from ava_tray.clock import ManualClock
from ava_tray.ledger import Uplink
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.status import (
    ICON_NAMES,
    NeedsKey,
    NotificationPolicy,
    Snapshot,
    UiState,
    describe,
    format_age,
    uplink_text,
)
from ava_tray.supervisor import Connected, Connecting, Error, Paused, Reconnecting, Stopped, WaitingForNetwork

EXPIRED = SessionEnding(Cause.SESSION_EXPIRED, "Session expired (60-minute limit reached)", 1001)
BAD_KEY = SessionEnding(Cause.FATAL, "The API key was rejected. Replace it in Settings (or run `ava-tray --set-key`).",
                        3000, error_code="invalid_api_key")
NOW = 1000.0


def states() -> dict[str, UiState]:
    return {
        "connecting": Connecting(attempt=1, since=NOW),
        "connected": Connected(attempt=1, since=NOW - 720),
        "speaking": Connected(attempt=1, since=NOW - 720, speaking=True),
        "reconnecting": Reconnecting(ending=EXPIRED, attempt=2, deadline=NOW + 3, delay=3.0),
        "offline": WaitingForNetwork(ending=EXPIRED, attempt=2),
        "error": Error(ending=BAD_KEY, attempt=1),
        "paused": Paused("today's budget of $2.00 is spent"),
        "stopped": Stopped(),
    }


def test_every_state_has_its_own_icon_and_tooltip() -> None:
    rendered = {name: describe(Snapshot(state), NOW) for name, state in states().items()}
    rendered["muted"] = describe(Snapshot(Connected(attempt=1, since=NOW - 60), muted=True), NOW)
    rendered["push_to_talk"] = describe(Snapshot(Connected(attempt=1, since=NOW - 60), push_to_talk=True,
                                                 shortcut="Ctrl+Alt+A"), NOW)
    rendered["hearing"] = describe(Snapshot(Connected(attempt=1, since=NOW - 60), sending=True, voice_gate="on"), NOW)
    assert {name: s.icon_name for name, s in rendered.items()} == {name: name for name in rendered}
    assert set(ICON_NAMES) == set(rendered)
    tooltips = [s.tooltip for s in rendered.values()]
    assert len(set(tooltips)) == len(tooltips)
    assert all(t.startswith("AVA · ") for t in tooltips)


def test_tooltips_read_as_the_issue_says() -> None:
    s = states()
    assert describe(Snapshot(s["connected"]), NOW).tooltip == "AVA · Connected · session 12 min"
    assert (describe(Snapshot(s["reconnecting"]), NOW).tooltip
            == "AVA · Reconnecting in 3 s (attempt #2) · session expired")
    assert describe(Snapshot(s["error"]), NOW).tooltip == "AVA · Error: the API key was rejected"
    assert describe(Snapshot(s["error"]), NOW).detail == BAD_KEY.message
    assert describe(Snapshot(s["speaking"]), NOW).tooltip == "AVA · Speaking · session 12 min"
    assert describe(Snapshot(s["stopped"]), NOW).tooltip == "AVA · Stopped"
    assert describe(Snapshot(Connecting(attempt=3, since=NOW)), NOW).tooltip == "AVA · Connecting… (attempt #3)"
    assert "microphone muted" in describe(Snapshot(s["connected"], muted=True), NOW).tooltip
    assert describe(Snapshot(NeedsKey()), NOW).tooltip == "AVA · Needs an API key"


def test_push_to_talk_shows_whether_the_key_is_held() -> None:
    connected = Connected(attempt=1, since=NOW - 720)
    waiting = describe(Snapshot(connected, push_to_talk=True, shortcut="Ctrl+Alt+A"), NOW)
    assert waiting.icon_name == "push_to_talk"
    assert waiting.tooltip == "AVA · Connected · push-to-talk: hold Ctrl+Alt+A · session 12 min"
    assert "microphone is closed" in waiting.detail
    talking = describe(Snapshot(connected, push_to_talk=True, talking=True, shortcut="Ctrl+Alt+A"), NOW)
    assert talking.icon_name == "connected" and "push-to-talk: talking" in talking.tooltip
    muted = describe(Snapshot(connected, push_to_talk=True, muted=True, shortcut="Ctrl+Alt+A"), NOW)
    assert muted.icon_name == "muted" and "push-to-talk" not in muted.tooltip


def test_the_tray_says_when_audio_leaves_the_machine() -> None:
    connected = states()["connected"]
    idle = describe(Snapshot(connected, voice_gate="on"), NOW)
    assert idle.tooltip == "AVA · Connected · session 12 min" and "nothing leaves this computer" in idle.detail
    hearing = describe(Snapshot(connected, sending=True, voice_gate="on"), NOW)
    assert hearing.tooltip == "AVA · Connected · hearing you · session 12 min" and hearing.icon_name == "hearing"
    streaming = describe(Snapshot(connected, sending=True, voice_gate="off (streaming continuously)"), NOW)
    assert streaming.tooltip == "AVA · Connected · microphone streaming · session 12 min"
    assert "voice gate off" in streaming.detail
    muted = describe(Snapshot(connected, sending=True, muted=True, voice_gate="on"), NOW)
    assert muted.icon_name == "muted" and "hearing you" not in muted.tooltip
    talking_over = describe(Snapshot(states()["speaking"], sending=True, voice_gate="on"), NOW)
    assert talking_over.icon_name == "speaking" and "hearing you" in talking_over.tooltip


def test_what_was_sent_reads_in_bytes_and_seconds_of_audio() -> None:
    assert uplink_text(Uplink(0, 0)) == "nothing"
    assert uplink_text(Uplink(48_000 * 3, 1)) == "144 kB (3 s of audio, 1 time)"
    assert uplink_text(Uplink(48_000 * 125, 14)) == "6.0 MB (2 min of audio, 14 times)"


def test_countdown_reads_3_2_1_from_the_deadline() -> None:
    clock = ManualClock(start=NOW)
    state = Reconnecting(ending=EXPIRED, attempt=2, deadline=clock.monotonic() + 3, delay=3.0)
    seen = []
    for _ in range(3):
        status = describe(Snapshot(state), clock.monotonic())
        seen.append(status.tooltip.split(" (")[0])
        assert status.next_change_in == pytest.approx(1.0)
        clock.advance(1)
    assert seen == ["AVA · Reconnecting in 3 s", "AVA · Reconnecting in 2 s", "AVA · Reconnecting in 1 s"]
    assert describe(Snapshot(state), clock.monotonic()).tooltip.startswith("AVA · Reconnecting now")
    assert describe(Snapshot(state), clock.monotonic()).next_change_in is None


def test_countdown_rounds_up_and_wakes_at_the_next_whole_second() -> None:
    state = Reconnecting(ending=EXPIRED, attempt=2, deadline=NOW + 4.6, delay=4.6)
    status = describe(Snapshot(state), NOW)
    assert "in 5 s" in status.tooltip
    assert status.next_change_in == pytest.approx(0.6)


@pytest.mark.parametrize("name", ["connecting", "offline", "error", "stopped"])
def test_nothing_counts_down_outside_reconnecting_and_connected(name: str) -> None:
    assert describe(Snapshot(states()[name]), NOW).next_change_in is None


def test_session_age_changes_once_a_minute() -> None:
    status = describe(Snapshot(Connected(attempt=1, since=NOW - 725)), NOW)
    assert status.next_change_in == pytest.approx(55.0)
    assert format_age(30) == "<1 min" and format_age(3900) == "1 h 05 min"


def test_menu_enablement() -> None:
    for name, state in states().items():
        status = describe(Snapshot(state), NOW)
        assert status.can_restart == (name not in ("stopped", "paused")), name
        assert status.can_mute == (name not in ("stopped", "paused")), name
    assert not describe(Snapshot(NeedsKey()), NOW).can_restart


def test_notifications_on_error_once_and_on_recovery_after_a_long_outage() -> None:
    policy = NotificationPolicy()
    s = states()
    assert policy.on_state(s["connecting"], 0) is None
    assert policy.on_state(s["connected"], 1) is None  # the first connection is not a recovery
    assert policy.on_state(s["reconnecting"], 100) is None  # routine expiry: quiet
    assert policy.on_state(Connecting(attempt=2, since=103), 103) is None
    assert policy.on_state(s["connected"], 104) is None  # 4 s outage: quiet
    policy.on_state(Reconnecting(ending=EXPIRED, attempt=3, deadline=300, delay=5), 200)
    notice = policy.on_state(s["error"], 201)
    assert notice is not None and notice.critical and "API key was rejected" in notice.message
    assert policy.on_state(s["error"], 202) is None
    back = policy.on_state(s["connected"], 290)
    assert back is not None and back.title == "AVA is back" and "1 min" in back.message


def test_availability_never_rounds_an_outage_up_to_100() -> None:
    from ava_tray.ui.history_format import format_share

    assert format_share(100.0) == "100"
    assert format_share(100 * (1 - 3 / 86_400)) == "99.997"  # three seconds away in a day
    assert format_share(99.7) == "99.7"
    assert format_share(99.999999) == "99.9999"
