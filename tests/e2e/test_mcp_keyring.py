"""mcp.json names secrets instead of holding them: `keyring:ENTRY` in `env` and `headers` is read from the real
Secret Service (gnome-keyring under scripts/with-services.sh) when a server starts, and never reaches AVA's log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from mcp_support import free_port, http_server, output, stdio_entry, write_config

from ava_tray import logs, paths
from ava_tray.keystore import SERVICE
from ava_tray.tools import ToolRegistry
from ava_tray.tools.mcp.host import McpHost
from ava_tray.tools.mcp.status import ServerState

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring),
    reason="no Secret Service: run through `bash scripts/with-services.sh`")]

ENV_SECRET = "env-secret-" + "Vb3k9" * 5
HEADER_SECRET = "Bearer hdr-" + "Pq8w2" * 5
ENTRIES = {"mcp-test-env": ENV_SECRET, "mcp-test-header": HEADER_SECRET}


@pytest.fixture
def keyring_entries() -> Iterator[None]:
    for entry, secret in ENTRIES.items():
        keyring.set_password(SERVICE, entry, secret)
    yield
    for entry in ENTRIES:
        keyring.delete_password(SERVICE, entry)


@pytest.fixture
def ava_log() -> Iterator[Path]:
    """AVA's own logging set-up (the rotating file with the redacting filter), removed afterwards."""
    root = logging.getLogger()
    before = list(root.handlers)
    logs.configure("CRITICAL")
    yield paths.log_dir() / "ava-tray.log"
    for handler in root.handlers[:]:
        if handler not in before:
            root.removeHandler(handler)
            handler.close()


async def test_keyring_entries_reach_the_servers_and_never_the_log(keyring_entries: None, ava_log: Path,
                                                                   tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "mcp.json"
    write_config(config, {
        "local": stdio_entry(env={"AVA_TEST_TOKEN": "keyring:mcp-test-env", "AVA_TEST_CARELESS": "1"},
                             autoApprove=["env"]),
        "remote": {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"Authorization": "keyring:mcp-test-header"},
                   "autoApprove": ["header"]},
        "unset": stdio_entry(env={"AVA_TEST_TOKEN": "keyring:mcp-test-missing"}),
    })
    registry = ToolRegistry()
    host = McpHost(registry, config)
    async with http_server(port), host.running():
        assert output(await registry.call("local__env", '{"name": "AVA_TEST_TOKEN"}', "c1")) == \
            {"result": ENV_SECRET}
        assert output(await registry.call("remote__header", '{"name": "Authorization"}', "c2")) == \
            {"result": HEADER_SECRET}
        unset = next(server for server in host.status().servers if server.name == "unset")
        assert unset.state is ServerState.FAILED
        assert "names the keyring entry 'mcp-test-missing', which does not exist: store it with " \
               "`python -m keyring set ava-tray mcp-test-missing`" in unset.summary()
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = ava_log.read_text(encoding="utf-8")
    assert "[local] using the token [redacted]" in text, "the careless server's line is there, redacted"
    assert "mcp-test-missing" in text
    assert ENV_SECRET not in text and HEADER_SECRET not in text and "hdr-Pq8w2" not in text
