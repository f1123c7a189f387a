"""The console's session log, line by line (no display, no audio)."""

from __future__ import annotations

import io

from ava_tray.console import SessionLog
from ava_tray.realtime.ending import Cause, SessionEnding
from ava_tray.supervisor import Reconnecting

LOST = SessionEnding(Cause.CONNECTION_LOST, "Connection lost: the server refused the connection")


def test_the_restart_delay_reads_like_the_seed_and_a_backed_off_one_is_rounded() -> None:
    out = io.StringIO()
    log = SessionLog(out)
    log.on_state(Reconnecting(ending=LOST, attempt=2, deadline=5.0, delay=5.0))
    log.on_state(Reconnecting(ending=LOST, attempt=3, deadline=8.5, delay=8.51083))
    restarts = [line.split("] ", 1)[1] for line in out.getvalue().splitlines() if "Auto-restarting" in line]
    assert restarts == ["🔄 Auto-restarting AVA in 5 seconds...", "🔄 Auto-restarting AVA in 8.5 seconds..."]
