"""ToolRegistry: every call gives the model an output, once per call id, within its time-out."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import pytest

from ava_tray.tools import Tool, ToolError, ToolRegistry, make_tool, tool
from ava_tray.tools.fakes import FakeConsent


def add(a: int, b: Annotated[int, "the second number"] = 1) -> int:
    """Add two numbers."""
    return a + b


def output(text: str) -> dict[str, Any]:
    decoded = json.loads(text)
    assert isinstance(decoded, dict)
    return decoded


def test_spec_from_a_plain_function() -> None:
    item = make_tool(add)
    spec = item.spec().to_json()
    assert spec["type"] == "function" and spec["name"] == "add" and spec["description"] == "Add two numbers."
    assert spec["parameters"]["required"] == ["a"]
    assert not item.changes_something


def test_decorator_and_bad_definitions() -> None:
    @tool(changes_something=True)
    def shout(text: str) -> str:
        """Shout."""
        return text.upper()

    assert isinstance(shout, Tool) and shout.changes_something
    with pytest.raises(ValueError, match="one-line description"):
        make_tool(lambda: None, name="nodoc")
    with pytest.raises(ValueError, match="letters, digits"):
        make_tool(add, name="has space")
    registry = ToolRegistry([make_tool(add)])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(make_tool(add))


async def test_a_call_returns_json_output() -> None:
    registry = ToolRegistry([make_tool(add)])
    assert output(await registry.call("add", '{"a": 2, "b": 3}', "c1")) == {"result": 5}
    assert output(await registry.call("add", "", "c2"))["error"].startswith("The arguments for add were not valid")


async def test_async_tools_are_awaited_and_sync_ones_run_off_the_loop() -> None:
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    def blocking() -> str:
        """Runs on a worker thread."""
        seen["sync"] = threading.get_ident()
        return "ok"

    async def native() -> str:
        """Runs on the loop."""
        seen["async"] = threading.get_ident()
        return "ok"

    registry = ToolRegistry([make_tool(blocking), make_tool(native)])
    await registry.call("blocking", "{}", "1")
    await registry.call("native", "{}", "2")
    assert seen["sync"] != loop_thread and seen["async"] == loop_thread


@pytest.mark.parametrize(("name", "arguments", "sentence"), [
    ("add", "{not json", "not valid JSON"),
    ("add", '{"a": "two"}', "'a' must be a number"),
    ("add", '{"a": 1, "c": 2}', "unexpected argument 'c'"),
    ("add", "[1]", "must be a JSON object"),
    ("nope", "{}", "There is no tool named 'nope'"),
    ("broken", "{}", "The tool broken failed: disk on fire"),
    ("polite", "{}", "I cannot do that today"),
])
async def test_failures_become_error_outputs(name: str, arguments: str, sentence: str) -> None:
    def broken() -> None:
        """Raises."""
        raise RuntimeError("disk on fire")

    async def polite() -> None:
        """Refuses."""
        raise ToolError("I cannot do that today.")

    registry = ToolRegistry([make_tool(add), make_tool(broken), make_tool(polite)])
    result = output(await registry.call(name, arguments, "x"))
    assert sentence in result["error"]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_hanging_tool_is_abandoned_at_its_timeout(kind: str) -> None:
    release = threading.Event()

    def hang_sync() -> None:
        """Hangs."""
        release.wait(30)

    async def hang_async() -> None:
        """Hangs."""
        await asyncio.sleep(30)

    registry = ToolRegistry([make_tool(hang_sync if kind == "sync" else hang_async, name="hang", timeout=0.3)])
    started = time.monotonic()
    result = output(await registry.call("hang", "{}", "h"))
    assert time.monotonic() - started < 2.0
    assert "did not finish within 0.3 seconds" in result["error"]
    release.set()


async def test_a_call_id_runs_once_and_repeats_get_the_same_output() -> None:
    runs: list[int] = []
    gate = asyncio.Event()

    async def count() -> int:
        """Counts runs."""
        runs.append(1)
        await gate.wait()
        return len(runs)

    registry = ToolRegistry([make_tool(count)])
    first = asyncio.create_task(registry.call("count", "{}", "same"))
    second = asyncio.create_task(registry.call("count", "{}", "same"))
    await asyncio.sleep(0)
    gate.set()
    assert await first == await second == '{"result": 1}'
    assert await registry.call("count", "{}", "same") == '{"result": 1}'
    assert await registry.call("count", "{}", "other") == '{"result": 2}'
    assert len(runs) == 2


async def test_a_cancelled_caller_does_not_cancel_the_call() -> None:
    """The session may end mid-call; the tool still finishes once and its output is kept."""
    gate = asyncio.Event()
    runs: list[int] = []

    async def slow() -> str:
        """Slow."""
        runs.append(1)
        await gate.wait()
        return "done"

    registry = ToolRegistry([make_tool(slow)])
    caller = asyncio.create_task(registry.call("slow", "{}", "k"))
    await asyncio.sleep(0)
    caller.cancel()
    gate.set()
    assert await registry.call("slow", "{}", "k") == '{"result": "done"}'
    assert runs == [1]


async def test_side_effects_need_consent() -> None:
    done: list[str] = []

    def launch(target: str) -> str:
        """Launch something."""
        done.append(target)
        return "launched"

    consent = FakeConsent(answer=False)
    allowed: set[str] = set()
    registry = ToolRegistry([make_tool(launch, changes_something=True)], consent=consent, allowed=lambda: allowed)
    result = output(await registry.call("launch", '{"target": "moon"}', "1"))
    assert done == [] and result["declined"] is True and "did not allow" in result["error"]
    assert consent.questions == [("launch", "Launch something (target='moon')")]

    consent.answer = True
    assert output(await registry.call("launch", '{"target": "moon"}', "2")) == {"result": "launched"}
    allowed.add("launch")
    consent.answer = False
    assert output(await registry.call("launch", '{"target": "mars"}', "3")) == {"result": "launched"}
    assert done == ["moon", "mars"] and len(consent.questions) == 2


async def test_an_unanswered_or_failing_consent_question_is_a_no() -> None:
    class Silent:
        async def ask(self, tool: str, summary: str) -> bool:
            await asyncio.sleep(30)
            return True

    class Broken:
        async def ask(self, tool: str, summary: str) -> bool:
            raise RuntimeError("no display")

    registry = ToolRegistry([make_tool(add, changes_something=True)], consent=Silent(), consent_timeout=0.2)
    assert output(await registry.call("add", '{"a": 1}', "1"))["declined"] is True
    registry.consent = Broken()
    assert output(await registry.call("add", '{"a": 1}', "2"))["declined"] is True


async def test_instructions_suffix_joins_sources_and_survives_a_failing_one() -> None:
    registry = ToolRegistry()
    registry.add_instructions(lambda: "\nA")
    registry.add_instructions(lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    registry.add_instructions(lambda: "\nB")
    assert registry.instructions_suffix() == "\nA\nB"


async def test_long_outputs_are_truncated() -> None:
    def big() -> str:
        """Big."""
        return "x" * 100_000

    result = output(await ToolRegistry([make_tool(big)]).call("big", "{}", "1"))
    assert result["truncated"] is True and len(result["result"]) <= 16_000


def write_plugin(root: Path, module: str, body: str, entries: dict[str, str]) -> None:
    (root / f"{module}.py").write_text(body)
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[ava_tray.tools]\n{lines}")


async def test_plugins_from_entry_points_and_broken_ones_are_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    write_plugin(tmp_path, "ava_plugin_good", '''
from ava_tray.tools import make_tool

def echo(text: str) -> str:
    """Say it back."""
    return text

def weather(city: str) -> str:
    """Weather."""
    return "sunny in " + city

def tools():
    return [make_tool(echo), make_tool(weather)]

single = make_tool(echo, name="echo_single")
''', {"good": "ava_plugin_good:tools", "single": "ava_plugin_good:single"})
    write_plugin(tmp_path, "ava_plugin_bad", '''
def tools():
    raise RuntimeError("plugin is broken")

def wrong():
    return ["not a tool"]
''', {"bad": "ava_plugin_bad:tools", "wrong": "ava_plugin_bad:wrong", "missing": "ava_plugin_nowhere:tools"})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = ToolRegistry()
    with caplog.at_level(logging.WARNING):
        added = registry.load_plugins()
    assert sorted(added) == ["echo", "echo_single", "weather"]
    assert output(await registry.call("weather", '{"city": "Oslo"}', "1")) == {"result": "sunny in Oslo"}
    skipped = " ".join(record.getMessage() for record in caplog.records)
    assert "'bad'" in skipped and "'wrong'" in skipped and "'missing'" in skipped
