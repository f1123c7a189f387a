"""The queue between `play()` on the event loop and the speaker's callback on PortAudio's thread."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)


class _Piece:
    """A run of one item's PCM and how far the speaker has read into it."""

    __slots__ = ("data", "item_id", "offset")

    def __init__(self, item_id: str, data: bytes) -> None:
        self.item_id = item_id
        self.data = memoryview(data)
        self.offset = 0


class PlaybackBuffer:
    """Thread-safe FIFO of (item id, PCM bytes) pieces, counting the bytes played per item.

    `fill` runs on the audio thread: it only copies under a short lock and never allocates
    beyond small bookkeeping. Everything else runs on the event loop.
    """

    def __init__(self, max_block_bytes: int = 8192) -> None:
        self._lock = threading.Lock()
        self._pieces: collections.deque[_Piece] = collections.deque()
        self._pending = 0
        self._current: str | None = None
        self._current_played = 0
        self._started_at: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._silence = memoryview(bytes(max_block_bytes))

    @property
    def pending_bytes(self) -> int:
        """Bytes queued that the speaker has not taken yet."""
        return self._pending

    def push(self, item_id: str, data: bytes) -> None:
        """Append PCM for `item_id` to the queue."""
        if not data:
            return
        piece = _Piece(item_id, data)
        with self._lock:
            self._pieces.append(piece)
            self._pending += len(data)

    def fill(self, out: Any, nbytes: int) -> int:
        """Copy up to `nbytes` of queued PCM into `out` and pad with silence; return the audio bytes."""
        pos = 0
        with self._lock:
            pieces = self._pieces
            while pos < nbytes and pieces:
                piece = pieces[0]
                take = min(nbytes - pos, len(piece.data) - piece.offset)
                out[pos : pos + take] = piece.data[piece.offset : piece.offset + take]
                if piece.item_id != self._current:
                    self._current = piece.item_id
                    self._current_played = 0
                    self._note_start(piece.item_id)
                self._current_played += take
                piece.offset += take
                pos += take
                self._pending -= take
                if piece.offset == len(piece.data):
                    pieces.popleft()
        audio = pos
        silence = self._silence
        while pos < nbytes:
            take = min(nbytes - pos, len(silence))
            out[pos : pos + take] = silence[:take]
            pos += take
        return audio

    def cut(self) -> tuple[str, int] | None:
        """Drop everything queued; return the item that was playing and its bytes played, if any."""
        with self._lock:
            if not self._pieces:
                self._current = None
                return None
            head = self._pieces[0].item_id
            played = self._current_played if head == self._current else 0
            self._pieces.clear()
            self._pending = 0
            self._current = None
            self._current_played = 0
        return head, played

    def started_at(self, item_id: str) -> float | None:
        """Monotonic time the speaker callback first took audio of `item_id` (recent items only)."""
        with self._lock:
            return self._started_at.get(item_id)

    def _note_start(self, item_id: str) -> None:
        # Called with the lock held; keeps the last 64 items.
        self._started_at[item_id] = time.monotonic()
        if len(self._started_at) > 64:
            self._started_at.popitem(last=False)
