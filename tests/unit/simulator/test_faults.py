"""What `inject` leaves for later: the fault schedule as data, without a server."""

from __future__ import annotations

import pytest

from ava_tray.simulator.faults import CLOSING_FAULTS, HANDSHAKE_REFUSALS, ODD_FRAMES, Fault, FaultSchedule


def test_every_fault_is_described_once() -> None:
    kinds = [set(CLOSING_FAULTS), set(ODD_FRAMES), set(HANDSHAKE_REFUSALS),
             {Fault.DROP, Fault.HALF_OPEN, Fault.EXPIRE_NOW}]
    assert set().union(*kinds) == set(Fault) and sum(map(len, kinds)) == len(Fault)
    assert all(fault.ends_session for fault in CLOSING_FAULTS)
    assert not any(fault.ends_session or fault.at_handshake for fault in ODD_FRAMES)


def test_handshake_faults_refuse_the_next_handshakes_in_order() -> None:
    schedule = FaultSchedule()
    schedule.stage(Fault.HTTP_500, 2, hit_open_sessions=False)
    schedule.stage(Fault.HTTP_401, 1, hit_open_sessions=False)
    assert [schedule.next_handshake() for _ in range(4)] == [Fault.HTTP_500, Fault.HTTP_500, Fault.HTTP_401, None]
    assert schedule.for_new_session() == []


def test_an_ending_fault_hits_the_following_sessions_one_each() -> None:
    schedule = FaultSchedule()
    schedule.stage(Fault.CLOSE_1011, 3, hit_open_sessions=True)  # one of three used on the open sessions
    schedule.stage(Fault.DROP, 1, hit_open_sessions=False)
    assert schedule.for_new_session() == [(Fault.CLOSE_1011, 1)]
    assert schedule.for_new_session() == [(Fault.CLOSE_1011, 1)]
    assert schedule.for_new_session() == [(Fault.DROP, 1)]
    assert schedule.for_new_session() == []


def test_odd_frames_go_all_to_the_next_session_unless_an_open_one_took_them() -> None:
    schedule = FaultSchedule()
    schedule.stage(Fault.UNKNOWN_EVENT, 2, hit_open_sessions=True)
    assert schedule.for_new_session() == []
    schedule.stage(Fault.MALFORMED_JSON, 3, hit_open_sessions=False)
    schedule.stage(Fault.EXPIRE_NOW, 1, hit_open_sessions=False)
    assert schedule.for_new_session() == [(Fault.MALFORMED_JSON, 3), (Fault.EXPIRE_NOW, 1)]
    assert schedule.for_new_session() == []


def test_a_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FaultSchedule().stage(Fault.DROP, 0, hit_open_sessions=False)
