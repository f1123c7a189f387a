"""PlaybackBuffer: the speaker queue, without a device."""

from __future__ import annotations

import threading

from ava_tray.audio.playback import PlaybackBuffer


def test_fill_copies_in_order_and_pads_with_silence() -> None:
    buffer = PlaybackBuffer()
    buffer.push("a", b"\x01\x01" * 3)
    buffer.push("b", b"\x02\x02" * 2)
    out = bytearray(b"\xff" * 16)
    assert buffer.fill(out, 16) == 10
    assert bytes(out) == b"\x01" * 6 + b"\x02" * 4 + b"\x00" * 6
    assert buffer.pending_bytes == 0


def test_cut_reports_the_current_item_and_bytes_played() -> None:
    buffer = PlaybackBuffer()
    buffer.push("a", b"\x01" * 100)
    buffer.push("a", b"\x01" * 100)
    buffer.push("b", b"\x02" * 100)
    out = bytearray(60)
    buffer.fill(out, 60)
    buffer.fill(out, 60)
    assert buffer.started_at("a") is not None and buffer.started_at("b") is None
    assert buffer.cut() == ("a", 120)
    assert buffer.pending_bytes == 0
    assert buffer.cut() is None


def test_cut_of_an_item_not_yet_started_reports_zero() -> None:
    buffer = PlaybackBuffer()
    buffer.push("a", b"\x01" * 10)
    out = bytearray(10)
    buffer.fill(out, 10)
    buffer.push("b", b"\x02" * 10)
    assert buffer.cut() == ("b", 0)


def test_nothing_queued_means_silence_and_no_cut() -> None:
    buffer = PlaybackBuffer(max_block_bytes=4)
    out = bytearray(b"\xff" * 10)
    assert buffer.fill(out, 10) == 0
    assert bytes(out) == bytes(10)
    assert buffer.cut() is None


def test_push_and_fill_from_two_threads_lose_nothing() -> None:
    buffer = PlaybackBuffer()
    total = 2000 * 64
    taken = 0

    def consume() -> None:
        nonlocal taken
        out = bytearray(96)
        while taken < total:
            taken += buffer.fill(out, 96)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for _ in range(2000):
        buffer.push("a", b"\x01" * 64)
    consumer.join(timeout=10)
    assert not consumer.is_alive()
    assert taken == total
