"""The tools AVA offers the model, and how one call is run safely.

A `Tool` is a plain Python function with a name, a one-line description, a JSON schema for its
arguments and whether it changes anything (then the user is asked first). `ToolRegistry` is the
session's `ToolHost`: it declares the tools on every new session and runs each call once, off the
event loop, with a time-out, turning every failure into an error output the model can relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar, overload

from ava_tray.realtime.events import ToolSpec
from ava_tray.threads import run_on_own_thread
from ava_tray.tools.hooks import ConsentAsker, DenyConsent
from ava_tray.tools.schema import ArgumentsInvalid, check_schema, schema_from_signature, validate_arguments

logger = logging.getLogger(__name__)

PLUGIN_GROUP = "ava_tray.tools"
DEFAULT_TIMEOUT = 10.0
CONSENT_TIMEOUT = 60.0
MAX_OUTPUT_CHARS = 16_000
KEPT_OUTPUTS = 1000
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

F = TypeVar("F", bound=Callable[..., Any])


class ToolError(Exception):
    """Raised by a tool to tell the model, in a sentence it can relay, why it could not do it."""


@dataclass(frozen=True)
class Tool:
    """A function the model may call."""

    name: str
    description: str
    function: Callable[..., Any]
    parameters: dict[str, Any]
    changes_something: bool = False
    """True if running it changes anything outside AVA's own memory: the user is asked first."""
    timeout: float | None = None
    """Seconds before the call is abandoned; None means the registry's default."""
    summarize: Callable[[dict[str, Any]], str] | None = field(default=None, compare=False)
    """What a call would do, as a sentence for the consent question."""
    own_schema: bool = False
    """True for a tool that checks its own arguments (an MCP server's): `parameters` may be any JSON Schema
    object and the description any text; the registry only checks that the arguments are an object."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"tool name {self.name!r} must be 1-64 letters, digits, '_' or '-'")
        if self.own_schema:
            if not self.description.strip():
                raise ValueError(f"tool {self.name!r} needs a description")
            if self.parameters.get("type") != "object":
                raise ValueError(f"tool {self.name!r}: the parameters must be an object schema")
            return
        if not self.description.strip() or "\n" in self.description.strip():
            raise ValueError(f"tool {self.name!r} needs a one-line description")
        check_schema(self.parameters, self.name)

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)

    def consent_summary(self, arguments: dict[str, Any]) -> str:
        if self.summarize is not None:
            with contextlib.suppress(Exception):
                return self.summarize(arguments)
        shown = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
        return f"{self.description.rstrip('.')}" + (f" ({shown})" if shown else "")


def make_tool(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    changes_something: bool = False,
    timeout: float | None = None,
    summarize: Callable[[dict[str, Any]], str] | None = None,
) -> Tool:
    """A `Tool` from a function: name and description default to its name and docstring's first line,
    the schema to one derived from its type hints."""
    if description is None:
        doc = inspect.getdoc(function) or ""
        description = doc.strip().splitlines()[0] if doc.strip() else ""
    return Tool(
        name=name or function.__name__,
        description=description,
        function=function,
        parameters=parameters if parameters is not None else schema_from_signature(function),
        changes_something=changes_something,
        timeout=timeout,
        summarize=summarize,
    )


@overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *, name: str | None = None, description: str | None = None, parameters: dict[str, Any] | None = None,
    changes_something: bool = False, timeout: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    function: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: dict[str, Any] | None = None,
    changes_something: bool = False,
    timeout: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorator: `@tool` or `@tool(changes_something=True)` turns a function into a `Tool`."""

    def wrap(target: Callable[..., Any]) -> Tool:
        return make_tool(target, name=name, description=description, parameters=parameters,
                         changes_something=changes_something, timeout=timeout)

    return wrap(function) if function is not None else wrap


def error_output(sentence: str, **extra: Any) -> str:
    """An error output: `{"error": sentence}` (the model relays the sentence)."""
    return json.dumps({"error": sentence, **extra}, ensure_ascii=False)


def encode_output(result: Any) -> str:
    """A tool's return value as the JSON text the model reads."""
    if isinstance(result, dict):
        payload = result
    elif result is None:
        payload = {"ok": True}
    else:
        payload = {"result": result}
    text = json.dumps(payload, ensure_ascii=False, default=str)
    if len(text) > MAX_OUTPUT_CHARS:
        text = json.dumps({"result": text[:MAX_OUTPUT_CHARS], "truncated": True}, ensure_ascii=False)
    return text


def parse_allowed(text: str) -> frozenset[str]:
    """Tool names from the comma-separated `Settings.allowed_tools`."""
    return frozenset(part.strip() for part in text.split(",") if part.strip())


class ToolRegistry:
    """The tools of this AVA; implements the session's `ToolHost`."""

    def __init__(
        self,
        tools: Iterable[Tool] = (),
        *,
        consent: ConsentAsker | None = None,
        allowed: Callable[[], Collection[str]] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        consent_timeout: float = CONSENT_TIMEOUT,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self.consent: ConsentAsker = consent or DenyConsent()
        self._allowed = allowed or frozenset
        self.default_timeout = default_timeout
        self.consent_timeout = consent_timeout
        self._instruction_sources: list[Callable[[], str]] = []
        self._outputs: OrderedDict[str, str] = OrderedDict()
        self._started: set[str] = set()
        self._running: dict[str, asyncio.Task[str]] = {}
        self._version = 0
        self._change_listeners: list[Callable[[int], None]] = []
        for item in tools:
            self.register(item)

    # -- the tools -----------------------------------------------------------------------------

    def register(self, item: Tool) -> None:
        """Add a tool; a second tool with the same name is refused (ValueError)."""
        self.update(add=[item])

    def unregister(self, name: str) -> None:
        """Remove a tool (declared from the next session on); an unknown name is ignored."""
        self.update(remove=[name])

    def update(self, *, remove: Iterable[str] = (), add: Iterable[Tool] = ()) -> bool:
        """Remove and add tools as one change (one new `version`); True if the tool set changed.

        An added tool whose name is taken (and not removed here) is refused with ValueError, and nothing changes.
        """
        tools = dict(self._tools)
        for name in remove:
            tools.pop(name, None)
        for item in add:
            if item.name in tools:
                raise ValueError(f"a tool named {item.name!r} is already registered")
            tools[item.name] = item
        if tools == self._tools and list(tools) == list(self._tools):
            return False
        self._tools = tools
        self._version += 1
        for listener in list(self._change_listeners):
            try:
                listener(self._version)
            except Exception:
                logger.exception("a tool-change listener failed")
        return True

    @property
    def version(self) -> int:
        """Goes up by one with every change of the tool set: a session configured at an older version
        declares an outdated set (`specs()` gives the current one)."""
        return self._version

    def subscribe(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call `listener(version)` after every change of the tool set; returns a function that unsubscribes."""
        self._change_listeners.append(listener)
        return lambda: self._change_listeners.remove(listener)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def add_instructions(self, source: Callable[[], str]) -> None:
        """Append `source()` to every new session's instructions (e.g. the memory digest)."""
        self._instruction_sources.append(source)

    def load_plugins(self, group: str = PLUGIN_GROUP) -> list[str]:
        """Register third-party tools from the entry-point group; a broken plugin is skipped with a warning."""
        added: list[str] = []
        for point in entry_points(group=group):
            try:
                found = _tools_from(point.load())
            except Exception as exc:
                logger.warning("skipped the tool plugin %r (%s): %s", point.name, point.value, exc)
                continue
            for item in found:
                try:
                    self.register(item)
                except ValueError as exc:
                    logger.warning("skipped a tool of plugin %r: %s", point.name, exc)
                    continue
                added.append(item.name)
        if added:
            logger.info("tool plugins added: %s", ", ".join(added))
        return added

    # -- ToolHost ------------------------------------------------------------------------------

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(item.spec() for item in self._tools.values())

    def instructions_suffix(self) -> str:
        parts = []
        for source in self._instruction_sources:
            try:
                text = source()
            except Exception:
                logger.exception("an instructions source failed")
                continue
            if text:
                parts.append(text)
        return "".join(parts)

    async def call(self, name: str, arguments: str, call_id: str) -> str:
        """Run a call once; a repeated call id gets the first output again. Never raises."""
        if call_id in self._outputs:
            logger.info("call %s (%s) was already run: returning its output again", call_id, name)
            return self._outputs[call_id]
        running = self._running.get(call_id)
        if running is None:
            if call_id in self._started:
                return error_output(f"The call to {name} was already run; its output is no longer kept.")
            self._started.add(call_id)
            running = asyncio.ensure_future(self._run_once(name, arguments, call_id))
            self._running[call_id] = running
        # Shielded: if the session ends mid-call the call still finishes once and its output is kept.
        return await asyncio.shield(running)

    async def aclose(self) -> None:
        """Cancel calls still running (AVA is quitting)."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_once(self, name: str, arguments: str, call_id: str) -> str:
        try:
            output = await self._run(name, arguments)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # a bug here must still give the model an answer
            logger.exception("running %s failed", name)
            output = error_output(f"The tool {name} failed unexpectedly ({type(exc).__name__}).")
        finally:
            self._running.pop(call_id, None)
        self._outputs[call_id] = output
        while len(self._outputs) > KEPT_OUTPUTS:
            self._outputs.popitem(last=False)
        return output

    async def _run(self, name: str, arguments: str) -> str:
        item = self._tools.get(name)
        if item is None:
            return error_output(f"There is no tool named {name!r}.")
        try:
            decoded = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return error_output(f"The arguments for {name} were not valid JSON.")
        try:
            if item.own_schema:
                if not isinstance(decoded, dict):
                    raise ArgumentsInvalid("the arguments must be a JSON object")
                kwargs = decoded
            else:
                kwargs = validate_arguments(item.parameters, decoded)
        except ArgumentsInvalid as exc:
            return error_output(f"The arguments for {name} were not valid: {exc}.")
        if item.changes_something and name not in self._allowed():
            summary = item.consent_summary(kwargs)
            if not await self._ask(name, summary):
                logger.info("the user did not allow %s: nothing was done", name)
                return error_output(f"The user did not allow this ({summary}), so nothing was done.",
                                    declined=True)
        timeout = item.timeout if item.timeout is not None else self.default_timeout
        logger.info("running tool %s", name)
        try:
            async with asyncio.timeout(timeout) as deadline:
                if inspect.iscoroutinefunction(item.function):
                    result = await item.function(**kwargs)
                else:
                    result = await run_in_daemon_thread(item.function, kwargs, name)
        except ToolError as exc:
            return error_output(str(exc))
        except TimeoutError as exc:
            if deadline.expired():
                logger.warning("tool %s did not finish within %g s", name, timeout)
                return error_output(f"The tool {name} did not finish within {timeout:g} seconds, so it was "
                                    "abandoned.")
            return _failure(name, exc)
        except Exception as exc:
            return _failure(name, exc)
        return encode_output(result)

    async def _ask(self, name: str, summary: str) -> bool:
        try:
            async with asyncio.timeout(self.consent_timeout):
                return bool(await self.consent.ask(name, summary))
        except TimeoutError:
            logger.info("no answer to the consent question for %s", name)
        except Exception:
            logger.exception("asking for consent failed")
        return False


def _failure(name: str, exc: Exception) -> str:
    logger.warning("tool %s failed: %s: %s", name, type(exc).__name__, exc, exc_info=exc)
    detail = str(exc).strip()[:200] or type(exc).__name__
    return error_output(f"The tool {name} failed: {detail}.")


def _tools_from(loaded: Any) -> list[Tool]:
    """The tools an entry point gives: a Tool, or a callable returning a Tool or an iterable of Tools."""
    if isinstance(loaded, Tool):
        return [loaded]
    if not callable(loaded):
        raise TypeError("the entry point is neither a tool nor a callable returning tools")
    result = loaded()
    if isinstance(result, Tool):
        return [result]
    items = list(result)
    for item in items:
        if not isinstance(item, Tool):
            raise TypeError(f"the plugin returned {type(item).__name__}, not a Tool")
    return items


async def run_in_daemon_thread(function: Callable[..., Any], kwargs: dict[str, Any], name: str) -> Any:
    """Run a blocking tool on its own daemon thread; one that outlives its time-out is abandoned."""
    return await run_on_own_thread(lambda: function(**kwargs), name=f"ava-tool-{name}")
