"""Console AVA end to end on real parts: PortAudio through PulseAudio null sinks, the key in the real
Secret Service, the simulator on loopback with a 5 s session limit, the `ava-tray` process itself."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pulse
import pytest

from ava_tray import keystore
from ava_tray.simulator import RealtimeSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not pulse.pulse_available(), reason="no PulseAudio: run "
                                                  "through `bash scripts/with-services.sh`")]

KEY = "sk-test-e2e-" + "Qm7rT2" * 6


def secret_service() -> bool:
    return not isinstance(keyring.get_keyring(), keyring.backends.fail.Keyring)


class ConsoleAva:
    """`python -m ava_tray --console` as a user runs it, its output collected as it comes."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.args = args
        self.env = env
        self.out = ""
        self.err = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ava_tray", "--console", *self.args, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert self.proc.stdout and self.proc.stderr
        self._readers = [asyncio.create_task(self._pump(self.proc.stdout, "out")),
                         asyncio.create_task(self._pump(self.proc.stderr, "err"))]

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        while line := await stream.readline():
            setattr(self, name, getattr(self, name) + line.decode("utf-8", "replace"))

    async def wait_output(self, text: str, count: int = 1, timeout: float = 15.0) -> None:
        await pulse.wait_until(lambda: self.out.count(text) >= count, timeout=timeout,
                               what=f"{text!r} x{count} in the console output:\n{self.out}\n{self.err}")

    async def finish(self, timeout: float = 5.0) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def app_streams() -> int:
    """How many playback and capture streams Python clients hold open in PulseAudio right now."""
    found = 0
    for kind in ("sink-inputs", "source-outputs"):
        listing = subprocess.run(["pactl", "list", kind], capture_output=True, text=True, timeout=10).stdout
        found += sum(1 for block in listing.split("\n\n") if "python" in block.lower() or "portaudio" in block.lower()
                     or "ALSA plug-in" in block)
    return found


@pytest.fixture
async def simulator() -> AsyncIterator[RealtimeSimulator]:
    async with RealtimeSimulator(api_key=KEY, session_limit=5.0) as sim:
        yield sim


@pytest.fixture
def spoken_wav(tmp_path: Path) -> Path:
    """A real spoken phrase from espeak-ng ("Hello AVA, what time is it?")."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is missing: run scripts/bootstrap.sh")
    wav = tmp_path / "hello.wav"
    subprocess.run(["espeak-ng", "-s", "190", "-a", "180", "-w", str(wav), "Hello AVA"], check=True, timeout=30)
    return wav


def app_env(simulator: RealtimeSimulator) -> dict[str, str]:
    env = dict(os.environ)
    env["AVA_REALTIME_URL"] = simulator.url
    env.pop("OPENAI_API_KEY", None)
    return env


@pytest.mark.skipif(not secret_service(), reason="no Secret Service: run through `bash scripts/with-services.sh`")
async def test_three_sessions_each_answer_and_each_expiry_restarts_after_3_s(
        simulator: RealtimeSimulator, spoken_wav: Path, isolated_user_dirs: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ava_tray", "--set-key"], input=KEY, text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    ava = ConsoleAva("--no-rollover", env=app_env(simulator))
    try:
        async with pulse.monitor_speaker() as speaker:
            await ava.start()
            for number in range(3):
                await ava.wait_output("✅ Connected to Realtime API", count=number + 1)
                session = simulator.sessions[number]
                assert session.authorization == f"Bearer {KEY}", "the key from the Secret Service was used"
                assert len(session.session_updates) == 1
                heard_from = speaker.position
                player = await asyncio.create_subprocess_exec("paplay", "--device=virtmic", str(spoken_wav))
                await pulse.wait_until(lambda s=session: s.replies_sent >= 1, timeout=5,  # type: ignore[misc]
                                       what=f"a reply in session {number + 1}")
                await speaker.wait_for_sound(200, since=heard_from, timeout=5)
                await player.wait()
                await simulator.wait_for(lambda s=session: not s.open, timeout=6)  # type: ignore[misc]
            await ava.wait_output("🔄 Reconnecting to AVA (attempt #3)")
            await simulator.wait_for(lambda: len(simulator.sessions) >= 4 and
                                     bool(simulator.sessions[3].session_updates), timeout=8)
        gaps = [later.opened_at - earlier.closed_at  # type: ignore[operator]
                for earlier, later in zip(simulator.sessions, simulator.sessions[1:4], strict=False)]
        assert all(2.5 <= gap <= 3.5 for gap in gaps), gaps
        assert ava.out.count("⏰ Session expired (5-second limit reached)") >= 3
        assert ava.out.count("🔄 Auto-restarting AVA in 3 seconds...") >= 3
        assert "AVA STANDALONE - REALTIME VOICE MODE" in ava.out
        assert ava.proc is not None
        ava.proc.send_signal(signal.SIGINT)
        assert await ava.finish(timeout=2.0) == 0
        sessions_at_exit = len(simulator.sessions)
        with pytest.raises(TimeoutError):
            await simulator.wait_for(lambda: len(simulator.sessions) > sessions_at_exit, timeout=1.0)
    finally:
        await ava.kill()
        keystore.forget_key()
    everything = ava.out + ava.err
    for path in isolated_user_dirs.rglob("*"):
        if path.is_file():
            everything += path.read_text("utf-8", "replace")
    assert KEY not in everything, "the key leaked into the output or a file the app wrote"
    assert "Traceback" not in ava.err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_exits_0_within_2_s_with_streams_closed_and_no_reconnect(
        simulator: RealtimeSimulator, signum: int) -> None:
    env = app_env(simulator)
    env["OPENAI_API_KEY"] = KEY
    ava = ConsoleAva(env=env)
    try:
        await ava.start()
        await ava.wait_output("✅ Connected to Realtime API")
        await pulse.wait_until(lambda: app_streams() >= 2, timeout=5, what="AVA's two audio streams in PulseAudio")
        assert ava.proc is not None
        started = time.monotonic()
        ava.proc.send_signal(signum)
        assert await ava.finish(timeout=2.0) == 0
        assert time.monotonic() - started < 2.0
        assert not simulator.open_sessions
        assert len(simulator.sessions) == 1, "no reconnect after the signal"
        assert simulator.sessions[0].close_code == 1000
        await pulse.wait_until(lambda: app_streams() == 0, timeout=3, what="AVA's audio streams to close")
        assert "👋 AVA stopped" in ava.out
        assert KEY not in ava.out + ava.err
    finally:
        await ava.kill()
