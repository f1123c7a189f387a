"""Long-term memory: facts the user asked AVA to remember, in SQLite (WAL, FTS5) in the user data folder.

A short digest of the most recent facts goes into every session's instructions, so memory is there
after every reconnect and restart; `recall` searches all of them. A corrupt database is set aside
(renamed `.corrupt-<time>`) with a warning and a fresh one is started: nothing is silently lost.
The store is thread-safe (tools run on worker threads, the Memory window on the GUI thread).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ava_tray import paths

logger = logging.getLogger(__name__)

MAX_FACT_CHARS = 1000
DIGEST_FACTS = 20
DIGEST_CHARS = 1500
DIGEST_HEADING = ("\n\nLong-term memory: facts the user asked you to remember in earlier conversations "
                  "(use them when relevant; the recall tool searches all of them):\n")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    learned_at REAL NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS facts_fts USING fts5(
    text, content='facts', content_rowid='id', tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS facts_ai AFTER INSERT ON facts BEGIN
    INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER IF NOT EXISTS facts_ad AFTER DELETE ON facts BEGIN
    INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER IF NOT EXISTS facts_au AFTER UPDATE ON facts BEGIN
    INSERT INTO facts_fts(facts_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO facts_fts(rowid, text) VALUES (new.id, new.text);
END;
"""

_STOPWORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "did", "for", "from",
    "has", "have", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the",
    "their", "them", "they", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who",
    "why", "will", "with", "you", "your", "about", "remember", "recall", "know", "tell"})


class MemoryUnavailable(Exception):
    """The memory database could not be opened or created; the message says what to do."""


class _Corrupt(Exception):
    """The file is not a healthy SQLite database."""


@dataclass(frozen=True)
class Fact:
    """One remembered fact and when it was learned (Unix seconds)."""

    id: int
    text: str
    learned_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "learned_at": self.learned_at,
                "learned_on": time.strftime("%Y-%m-%d %H:%M", time.localtime(self.learned_at))}


def memory_path() -> Path:
    return paths.data_dir() / "memory.sqlite3"


class MemoryStore:
    """Remember, recall, forget, list, search, delete and export facts."""

    def __init__(self, path: Path | None = None, *, clock: Any = None) -> None:
        self.path = path or memory_path()
        self.warning: str | None = None
        self._wall = clock.wall if clock is not None else time.time
        self._lock = threading.RLock()
        self._db = self._open()

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except _Corrupt as exc:
            aside = self._set_aside(exc)
            self.warning = (f"The memory database {self.path} was damaged ({exc}) and was set aside as "
                            f"{aside.name}; AVA starts with an empty memory. The old file can still be "
                            "inspected or recovered.")
            logger.warning("%s", self.warning)
            try:
                return self._connect()
            except sqlite3.Error as again:
                raise MemoryUnavailable(f"The memory database {self.path} cannot be created: {again}") from again
        except (sqlite3.Error, OSError) as exc:
            raise MemoryUnavailable(f"The memory database {self.path} cannot be opened: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Corrupt(f"integrity check failed: {check}")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            db.close()
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise _Corrupt(str(exc)) from exc
            raise
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self, cause: Exception) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                try:
                    os.replace(source, Path(f"{aside}{suffix}"))
                except OSError as exc:
                    raise MemoryUnavailable(f"The damaged memory database {self.path} could not be set aside: {exc}"
                                      ) from cause
        return aside

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One locked write transaction on the database (facts, reminders), rolled back on any error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of one read on the shared connection (facts, reminders)."""
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def create_tables(self, schema: str) -> None:
        """Run a schema script (`CREATE ... IF NOT EXISTS`) on the shared database, e.g. the reminders table."""
        with self._lock:
            self._db.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- facts ---------------------------------------------------------------------------------

    def remember(self, text: str) -> Fact:
        """Store a fact (an identical one already stored is returned instead of a duplicate)."""
        text = " ".join(text.split())
        if not text:
            raise ValueError("There is nothing to remember: the fact is empty.")
        if len(text) > MAX_FACT_CHARS:
            raise ValueError(f"That is too long to remember (at most {MAX_FACT_CHARS} characters).")
        with self.transaction() as db:
            row = db.execute("SELECT id, text, learned_at FROM facts WHERE text = ?", (text,)).fetchone()
            if row is not None:
                return _fact(row)
            learned_at = self._wall()
            cursor = db.execute("INSERT INTO facts(text, learned_at) VALUES (?, ?)", (text, learned_at))
            fact_id = cursor.lastrowid
        assert fact_id is not None
        logger.info("remembered fact %d", fact_id)
        return Fact(fact_id, text, learned_at)

    def get(self, fact_id: int) -> Fact | None:
        rows = self.query("SELECT id, text, learned_at FROM facts WHERE id = ?", (fact_id,))
        return _fact(rows[0]) if rows else None

    def list_facts(self, limit: int | None = None, offset: int = 0) -> list[Fact]:
        """Facts, newest first."""
        rows = self.query("SELECT id, text, learned_at FROM facts ORDER BY learned_at DESC, id DESC "
                           "LIMIT ? OFFSET ?", (-1 if limit is None else limit, offset))
        return [_fact(row) for row in rows]

    def count(self) -> int:
        return int(self.query("SELECT count(*) FROM facts")[0][0])

    def search(self, query: str, limit: int = 50) -> list[Fact]:
        """Facts matching any word of `query` (prefixes too), best match first; all facts for an empty query."""
        return self._match(query, limit, ignored=frozenset())

    def recall(self, query: str, limit: int = 5) -> list[Fact]:
        """The facts most relevant to a question (common words are ignored)."""
        return self._match(query, limit, ignored=_STOPWORDS)

    def _match(self, query: str, limit: int, ignored: frozenset[str]) -> list[Fact]:
        words = [word for word in re.findall(r"\w+", query.lower()) if word not in ignored]
        if not words:
            return self.list_facts(limit)
        expression = " OR ".join('"' + word.replace('"', "") + '"*' for word in words)
        try:
            rows = self.query(
                "SELECT f.id, f.text, f.learned_at FROM facts_fts JOIN facts f ON f.id = facts_fts.rowid "
                "WHERE facts_fts MATCH ? ORDER BY bm25(facts_fts), f.learned_at DESC LIMIT ?",
                (expression, limit))
        except sqlite3.OperationalError as exc:
            logger.warning("memory search %r failed: %s", expression, exc)
            return []
        return [_fact(row) for row in rows]

    def forget(self, fact_id: int) -> Fact | None:
        """Delete one fact; returns it, or None if there was no such fact."""
        with self.transaction() as db:
            row = db.execute("SELECT id, text, learned_at FROM facts WHERE id = ?", (fact_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM facts WHERE id = ?", (fact_id,))
        logger.info("forgot fact %d", fact_id)
        return _fact(row)

    def export_to(self, path: Path) -> int:
        """Every fact as JSON (a backup, or for another tool), written to `path` atomically; returns how many."""
        facts = self.list_facts()
        text = json.dumps({"exported_at": self._wall(), "facts": [fact.to_json() for fact in facts]},
                          ensure_ascii=False, indent=2)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
        return len(facts)

    def digest(self, max_facts: int = DIGEST_FACTS, max_chars: int = DIGEST_CHARS) -> str:
        """The most recent facts as an instructions suffix, within `max_chars`; empty when nothing is known."""
        lines: list[str] = []
        used = len(DIGEST_HEADING)
        for fact in self.list_facts(max_facts):
            line = f"- {time.strftime('%Y-%m-%d', time.localtime(fact.learned_at))}: {fact.text}\n"
            if used + len(line) > max_chars:
                break
            lines.append(line)
            used += len(line)
        return DIGEST_HEADING + "".join(lines) if lines else ""


def _fact(row: sqlite3.Row) -> Fact:
    return Fact(int(row["id"]), str(row["text"]), float(row["learned_at"]))
