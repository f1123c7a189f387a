"""The voice gate's speech detector loads its runtime with one OpenMP thread, and leaves the environment as it was.

Each case runs in a fresh interpreter: the OpenMP library reads its limit once, when it loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, os, numpy as np
from ava_tray.audio.speech_detector import SileroSpeechDetector
before = len(os.listdir("/proc/self/task"))
detector = SileroSpeechDetector()
window = (np.random.default_rng(1).standard_normal(512) * 0.1).astype(np.float32)
for _ in range(20):
    detector.speech_probability(window)
print(json.dumps({"threads_added": len(os.listdir("/proc/self/task")) - before,
                  "limit_after": os.environ.get("OMP_THREAD_LIMIT")}))
"""


def probe(env_limit: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    if env_limit is not None:
        env["OMP_THREAD_LIMIT"] = env_limit
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_the_detector_runs_on_the_calling_thread_and_the_environment_is_left_alone() -> None:
    # Before the fix ggml ran every 32 ms window on four OpenMP threads: 17x slower on two cores.
    assert probe(None) == {"threads_added": pytest.approx(0, abs=1), "limit_after": None}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_a_limit_the_user_set_is_kept() -> None:
    assert probe("3")["limit_after"] == "3"
