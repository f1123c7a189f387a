"""Long-term memory: facts survive a new store on the same file; a corrupt file is set aside, not lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ava_tray import paths
from ava_tray.clock import ManualClock
from ava_tray.memory import DIGEST_HEADING, MemoryStore, MemoryUnavailable, memory_path


def test_lives_in_the_user_data_folder_in_wal_mode() -> None:
    store = MemoryStore()
    assert store.path == memory_path() and store.path.parent == paths.data_dir()
    store.remember("The user's cat is called Miso.")
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"


def test_remember_recall_forget(tmp_path: Path) -> None:
    clock = ManualClock()
    store = MemoryStore(tmp_path / "m.db", clock=clock)
    cat = store.remember("  The user's cat is called   Miso. ")
    clock.advance(10)
    store.remember("The user's wife is called Ana and her birthday is on 3 May.")
    clock.advance(10)
    store.remember("The user prefers tea to coffee.")
    assert cat.text == "The user's cat is called Miso." and cat.learned_at == clock.wall() - 20
    assert store.remember("The user's cat is called Miso.").id == cat.id  # no duplicate
    assert next(f.text for f in store.recall("what is my wife's name?")).startswith("The user's wife")
    assert [f.id for f in store.recall("cats")] == [cat.id]  # prefix match
    assert store.recall("nothing matches zebra") == []
    assert next(f.text for f in store.list_facts()) == "The user prefers tea to coffee."  # newest first
    assert len(store.search("")) == 3 and [f.id for f in store.search("miso")] == [cat.id]
    assert store.forget(cat.id) == cat and store.forget(cat.id) is None
    assert store.recall("Miso") == [] and store.count() == 2


def test_bad_facts_are_refused(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    with pytest.raises(ValueError, match="empty"):
        store.remember("   ")
    with pytest.raises(ValueError, match="too long"):
        store.remember("x" * 2000)


def test_quotes_and_operators_in_queries_are_harmless(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    store.remember('He said "NEAR" AND OR NOT *')
    assert store.recall('"near" OR (NOT') and store.search('*"') == store.list_facts(50)


def test_digest_is_short_recent_and_empty_when_nothing_is_known(tmp_path: Path) -> None:
    clock = ManualClock()
    store = MemoryStore(tmp_path / "m.db", clock=clock)
    assert store.digest() == ""
    for number in range(60):
        clock.advance(1)
        store.remember(f"Fact number {number} " + "padding " * 8)
    digest = store.digest()
    assert digest.startswith(DIGEST_HEADING) and len(digest) <= 1500
    assert "Fact number 59 " in digest and "Fact number 30 " not in digest
    assert digest.count("\n- ") <= 20


def test_facts_survive_a_restart(tmp_path: Path) -> None:
    first = MemoryStore(tmp_path / "m.db")
    fact = first.remember("The user's flat is on the fourth floor.")
    first.close()
    again = MemoryStore(tmp_path / "m.db")
    assert again.recall("which floor") == [fact] and "fourth floor" in again.digest()


def test_a_corrupt_database_is_set_aside_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    path.write_bytes(b"this is not sqlite at all\x00" * 400)
    store = MemoryStore(path)
    assert store.warning and "set aside" in store.warning and store.count() == 0
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not sqlite")
    store.remember("fresh start")
    assert MemoryStore(path).count() == 1


def test_an_unopenable_path_is_an_error_not_a_corruption(tmp_path: Path) -> None:
    folder = tmp_path / "m.db"
    folder.mkdir()
    with pytest.raises(MemoryUnavailable, match="cannot be opened"):
        MemoryStore(folder)
    assert folder.is_dir() and not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]


def test_export(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "m.db")
    store.remember("one")
    store.remember("two")
    count = store.export_to(tmp_path / "out.json")
    data = json.loads((tmp_path / "out.json").read_text())
    assert count == 2 and sorted(f["text"] for f in data["facts"]) == ["one", "two"]
    assert {"id", "text", "learned_at", "learned_on"} <= set(data["facts"][0])
