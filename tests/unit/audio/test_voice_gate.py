"""The voice gate on real speech (espeak-ng) and generated room noise, with the real Silero detector; its
mechanics (pre-roll, hang-over, push-to-talk, gaps) exactly, with a detector that hears loudness."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt
import pytest
import room_audio as ra  # tests/room_audio.py

from ava_tray.audio.speech_detector import SileroSpeechDetector
from ava_tray.audio.voice_gate import LOUD_WINDOWS_TO_WAKE, BackgroundLevel, GateCounters, VoiceGate, open_threshold_for

BLOCK = 480
"""20 ms at 24 kHz, as the devices deliver."""
MS = ra.RATE // 1000
BYTES_PER_MS = 2 * MS

Span = tuple[int, int]


# -- helpers ------------------------------------------------------------------------------------------------------

def blocks(pcm: bytes, sizes: Iterable[int]) -> Iterator[bytes]:
    """`pcm` cut into blocks of the given sample counts (cycled)."""
    position = 0
    for size in itertools.cycle(sizes):
        if position >= len(pcm):
            return
        yield pcm[position : position + 2 * size]
        position += 2 * size


def run(gate: VoiceGate, pcm: bytes, sizes: Iterable[int] = (BLOCK,)) -> list[bytes]:
    """Feed `pcm` block by block with capture times that follow the audio; return every block's answer."""
    answers = []
    captured = 0
    for block in blocks(pcm, sizes):
        captured += len(block) // 2
        answers.append(gate.process(block, 100.0 + captured / ra.RATE))
    return answers


def sent_spans(pcm: bytes, answers: list[bytes]) -> list[Span]:
    """Where, in samples, each piece the gate sent sits in the input; asserts it is the input, unaltered and in
    order (the inputs carry a noise floor, so any 32 bytes of them are unique)."""
    spans: list[Span] = []
    cursor = 0
    for out in answers:
        if not out:
            continue
        at = pcm.find(out[:32], cursor)
        assert at >= 0 and at % 2 == 0, "the gate sent audio that is not the microphone's, or out of order"
        assert pcm[at : at + len(out)] == out, "the gate altered the audio it sent"
        if spans and spans[-1][1] == at // 2:
            spans[-1] = (spans[-1][0], (at + len(out)) // 2)
        else:
            spans.append((at // 2, (at + len(out)) // 2))
        cursor = at + len(out)
    return spans


def sent_frames(spans: list[Span], n_frames: int) -> npt.NDArray[np.bool_]:
    """Per 10 ms frame: was all of it sent."""
    sent = np.zeros(n_frames * ra.FRAME, dtype=bool)
    for start, end in spans:
        sent[start:end] = True
    return np.asarray(sent.reshape(-1, ra.FRAME).all(axis=1))


def share_of_speech_sent(scene: ra.Scene, spans: list[Span], utterance: Span) -> float:
    first, end = utterance
    sent = sent_frames(spans, scene.speech.size)[first:end]
    speech = scene.speech[first:end]
    return float((sent & speech).sum() / speech.sum())


def span_around(spans: list[Span], frame: int) -> Span:
    """The sent span that holds this 10 ms frame's first sample."""
    sample = frame * ra.FRAME
    return next(span for span in spans if span[0] <= sample < span[1])


# -- real speech and noise ------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def detector() -> SileroSpeechDetector:
    return SileroSpeechDetector()


@pytest.fixture(scope="session")
def espeak() -> None:
    reason = ra.espeak_missing_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def sentence(espeak: None) -> ra.Scene:
    """One request with a pause at its comma, 2 s into a 6 s recording of a quiet room."""
    voice = ra.speak("Hey Ava, what is the weather going to be like tomorrow morning?", "en-us", 160)
    floor = ra.shaped_noise(8.0, None, np.random.default_rng(1)) * ra.dbfs(-70)
    return ra.scene([voice], [2.0, 2.0], floor, speech_rms_dbfs=-26)


@pytest.fixture(scope="session")
def conversation(espeak: None) -> ra.Scene:
    """Requests in four voices at three speeds, quiet to normal, over a fan and a keyboard."""
    rng = np.random.default_rng(2)
    voices = [ra.speak(text, voice, speed) for text, voice, speed in
              zip(ra.SENTENCES, itertools.cycle(ra.VOICES), itertools.cycle(ra.SPEEDS), strict=False)]
    gaps = [1.5, 2.0, 2.5, 1.6, 3.0, 1.8, 2.2, 1.7, 2.0]
    total = sum(gaps) + sum(v.size for v in voices) / ra.RATE + 1
    return ra.scene(voices, gaps, ra.room_noise(total, rng, fan_dbfs=-50, keys_peak_dbfs=-20),
                    speech_rms_dbfs=-30)


@pytest.fixture(scope="session")
def split_sentence(espeak: None) -> tuple[ra.Samples, ra.Samples]:
    """A request said in two breaths."""
    return (ra.speak("Set a timer", "en-gb", 160), ra.speak("for twelve minutes, please.", "en-gb", 160))


def fan_and_keyboard_minute() -> bytes:
    return ra.to_pcm(ra.room_noise(60.0, np.random.default_rng(3), fan_dbfs=-45, keys_peak_dbfs=-15))


class CountingDetector:
    """The real detector, counting the windows it is asked about."""

    def __init__(self, inner: SileroSpeechDetector) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self.window = inner.window
        self.calls = 0

    def speech_probability(self, samples: npt.NDArray[np.float32]) -> float:
        self.calls += 1
        return self.inner.speech_probability(samples)

    def reset(self) -> None:
        self.inner.reset()


@pytest.mark.parametrize("sizes", [(480,), (1200,), (2400,), (160, 1111, 333, 2400, 57)],
                         ids=["20ms", "50ms", "100ms", "irregular"])
def test_a_spoken_sentence_passes_whole_with_its_first_syllable(
        detector: SileroSpeechDetector, sentence: ra.Scene, sizes: tuple[int, ...]) -> None:
    gate = VoiceGate(detector)
    spans = sent_spans(sentence.pcm, run(gate, sentence.pcm, sizes))
    utterance = sentence.utterances[0]
    assert share_of_speech_sent(sentence, spans, utterance) >= 0.995
    start, _ = span_around(spans, utterance[0])
    assert utterance[0] * ra.FRAME - start >= 300 * MS, "less than the server's 300 ms prefix before the voice"
    assert gate.counters.openings == 1
    assert not gate.is_open


def test_without_pre_roll_the_first_syllable_is_clipped(detector: SileroSpeechDetector, sentence: ra.Scene) -> None:
    """A control for the test above: it measures something a gate can get wrong."""
    gate = VoiceGate(detector, pre_roll_ms=0)
    spans = sent_spans(sentence.pcm, run(gate, sentence.pcm))
    first_voice = sentence.utterances[0][0] * ra.FRAME
    assert spans[0][0] > first_voice


def test_every_request_in_several_voices_over_room_noise_passes_in_one_opening(
        detector: SileroSpeechDetector, conversation: ra.Scene) -> None:
    gate = VoiceGate(detector)
    spans = sent_spans(conversation.pcm, run(gate, conversation.pcm))
    shares = [share_of_speech_sent(conversation, spans, u) for u in conversation.utterances]
    assert min(shares) >= 0.995, shares
    assert gate.counters.openings == len(conversation.utterances)
    assert len(spans) == len(conversation.utterances)


def test_the_hang_over_keeps_a_short_pause_inside_the_request(
        detector: SileroSpeechDetector, split_sentence: tuple[ra.Samples, ra.Samples]) -> None:
    floor = ra.shaped_noise(10.0, None, np.random.default_rng(4)) * ra.dbfs(-70)
    scene = ra.scene(list(split_sentence), [1.0, 0.45, 1.5], floor)
    gate = VoiceGate(detector)
    spans = sent_spans(scene.pcm, run(gate, scene.pcm))
    assert gate.counters.openings == 1
    assert len(spans) == 1
    for utterance in scene.utterances:
        assert share_of_speech_sent(scene, spans, utterance) >= 0.995
    # After the last voice the server gets more than its 500 ms of silence, so its VAD ends the turn.
    last_voice = int(np.flatnonzero(scene.speech)[-1] + 1) * ra.FRAME
    assert 550 * MS <= spans[0][1] - last_voice <= 1000 * MS


def test_a_short_hang_over_splits_the_request(
        detector: SileroSpeechDetector, split_sentence: tuple[ra.Samples, ra.Samples]) -> None:
    """A control for the test above."""
    floor = ra.shaped_noise(10.0, None, np.random.default_rng(4)) * ra.dbfs(-70)
    scene = ra.scene(list(split_sentence), [1.0, 0.45, 1.5], floor)
    gate = VoiceGate(detector, hang_over_ms=100, pre_roll_ms=100)
    run(gate, scene.pcm)
    assert gate.counters.openings >= 2


@pytest.mark.parametrize("level_dbfs", [None, -70.0], ids=["digital-silence", "microphone-hiss"])
def test_a_silent_minute_sends_nothing_and_never_wakes_the_model(
        detector: SileroSpeechDetector, level_dbfs: float | None) -> None:
    minute = np.zeros(60 * ra.RATE)
    if level_dbfs is not None:
        minute = ra.shaped_noise(60.0, None, np.random.default_rng(5)) * ra.dbfs(level_dbfs)
    counting = CountingDetector(detector)
    gate = VoiceGate(counting)
    answers = run(gate, ra.to_pcm(minute))
    assert sum(map(len, answers)) == gate.counters.bytes_sent == 0
    assert gate.counters.bytes_withheld == 60 * ra.RATE * 2
    assert counting.calls == 0


def test_a_minute_of_fan_and_keyboard_sends_almost_nothing(detector: SileroSpeechDetector) -> None:
    gate = VoiceGate(detector)
    answers = run(gate, fan_and_keyboard_minute())
    assert sum(map(len, answers)) <= 300 * BYTES_PER_MS
    assert gate.counters.openings <= 1


def test_a_steady_fan_does_not_keep_the_model_running(detector: SileroSpeechDetector) -> None:
    counting = CountingDetector(detector)
    gate = VoiceGate(counting)
    answers = run(gate, ra.to_pcm(ra.fan_noise(60.0, -40, np.random.default_rng(6))))
    assert not any(answers)
    windows = 60 * ra.RATE // 768
    assert counting.calls < windows * 0.05, f"the model ran on {counting.calls} of {windows} windows"


def test_the_gate_off_passes_everything_unchanged(detector: SileroSpeechDetector) -> None:
    pcm = fan_and_keyboard_minute()[: 10 * ra.RATE * 2]
    gate = VoiceGate(detector, enabled=False)
    pieces = list(blocks(pcm, (480, 1200, 77)))
    answers = [gate.process(block, float(i)) for i, block in enumerate(pieces)]
    assert answers == pieces
    assert gate.is_open
    assert gate.counters.bytes_sent == len(pcm) and gate.counters.bytes_withheld == 0


# -- mechanics, with a detector that hears loudness -----------------------------------------------------------------

class LoudnessDetector:
    """Speech probability = the window's peak over `full_level` (int16 units), capped at 1."""

    sample_rate = 16_000
    window = 512

    def __init__(self, full_level: float = 8000.0) -> None:
        self.full_level = full_level

    def speech_probability(self, samples: npt.NDArray[np.float32]) -> float:
        return min(1.0, float(np.max(np.abs(samples))) * 32768 / self.full_level)

    def reset(self) -> None:
        pass


WINDOW = 768
"""The gate's analysis window at 24 kHz for a 512-sample, 16 kHz detector."""


def hiss(seconds: float, seed: int = 7) -> ra.Samples:
    return ra.shaped_noise(seconds, None, np.random.default_rng(seed)) * ra.dbfs(-70)


def with_tone(background: ra.Samples, start: int, end: int, amplitude: float = 8000.0) -> bytes:
    """`background` with a 300 Hz tone from sample `start` to `end`."""
    x = background.copy()
    t = np.arange(end - start) / ra.RATE
    x[start:end] += amplitude * np.sin(2 * np.pi * 300 * t)
    return ra.to_pcm(x)


def test_pre_roll_and_hang_over_are_exact_in_samples() -> None:
    tone_start, tone_end = 40 * WINDOW, 60 * WINDOW  # window-aligned, so the loud windows are exact
    pcm = with_tone(hiss(4.0), tone_start, tone_end)
    gate = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    spans = sent_spans(pcm, run(gate, pcm))
    assert spans == [(tone_start - 300 * MS, tone_end + 700 * MS)]
    assert gate.counters.bytes_sent == (tone_end - tone_start + 1000 * MS) * 2
    assert gate.counters.bytes_sent + gate.counters.bytes_withheld == len(pcm)


def test_the_pre_roll_is_what_the_stream_holds_when_speech_starts_at_once() -> None:
    pcm = with_tone(hiss(3.0), 0, 20 * WINDOW)
    gate = VoiceGate(LoudnessDetector())
    spans = sent_spans(pcm, run(gate, pcm))
    assert spans[0][0] == 0


def test_is_open_and_the_last_speech_time_follow_the_voice() -> None:
    pcm = with_tone(hiss(4.0), 40 * WINDOW, 60 * WINDOW)
    gate = VoiceGate(LoudnessDetector())
    states = []
    for i, block in enumerate(blocks(pcm, (BLOCK,))):
        gate.process(block, float(i))
        states.append(gate.is_open)
    opened = states.index(True)
    closed = states.index(False, opened)
    assert opened * BLOCK <= 40 * WINDOW + LOUD_WINDOWS_TO_WAKE * WINDOW + BLOCK
    assert (closed - opened) * BLOCK >= (20 * WINDOW) + 600 * MS
    assert gate.last_speech_at is not None and gate.last_speech_at < closed


def test_push_to_talk_holds_the_gate_open_then_the_hang_over_follows() -> None:
    pcm = ra.to_pcm(hiss(4.0))
    gate = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    answers = []
    for i, block in enumerate(blocks(pcm, (BLOCK,))):
        gate.forced_open = 50 <= i < 100  # pressed from 1.0 s to 2.0 s
        answers.append(gate.process(block, float(i) / 50))
    spans = sent_spans(pcm, answers)
    assert spans == [(50 * BLOCK - 300 * MS, 100 * BLOCK + 700 * MS)]
    assert gate.counters.openings == 1


def test_sensitivity_sets_how_sure_the_detector_must_be() -> None:
    assert open_threshold_for(0.5) == pytest.approx(0.5)
    assert open_threshold_for(0.0) > open_threshold_for(0.5) > open_threshold_for(1.0) > 0
    with pytest.raises(ValueError, match="sensitivity"):
        open_threshold_for(1.5)
    pcm = with_tone(hiss(3.0), 30 * WINDOW, 50 * WINDOW, amplitude=3300)  # probability about 0.4
    strict, eager = VoiceGate(LoudnessDetector()), VoiceGate(LoudnessDetector(), sensitivity=0.8)
    assert not any(run(strict, pcm))
    assert any(run(eager, pcm))
    strict.sensitivity = 0.8
    strict.reset()
    assert any(run(strict, pcm))


def test_a_gap_in_the_stream_drops_the_audio_from_before_it() -> None:
    gate = VoiceGate(LoudnessDetector(), pre_roll_ms=300)
    before = ra.to_pcm(hiss(1.0, seed=8))
    for i, block in enumerate(blocks(before, (BLOCK,))):
        gate.process(block, 10.0 + i / 50)
    after = with_tone(hiss(1.0, seed=9), 0, 10 * WINDOW)
    answers = [gate.process(block, 20.0 + i / 50) for i, block in enumerate(blocks(after, (BLOCK,)))]
    sent = b"".join(answers)
    assert sent.startswith(after[:BLOCK * 2]), "audio from before the gap was sent as pre-roll"


def test_reset_forgets_held_audio_and_closes() -> None:
    pcm = with_tone(hiss(2.0), 20 * WINDOW, 40 * WINDOW)
    gate = VoiceGate(LoudnessDetector())
    run(gate, pcm[: 30 * WINDOW * 2])
    assert gate.is_open
    gate.reset()
    assert not gate.is_open
    assert not any(run(gate, ra.to_pcm(hiss(1.0, seed=10))))


def test_turning_the_gate_off_and_on_again_starts_closed() -> None:
    gate = VoiceGate(LoudnessDetector())
    run(gate, with_tone(hiss(1.0), 0, 10 * WINDOW))
    gate.enabled = False
    assert gate.process(b"\x01\x00" * BLOCK, 0.0) == b"\x01\x00" * BLOCK
    gate.enabled = True
    assert not gate.is_open
    assert gate.process(b"\x01\x00" * BLOCK, 0.02) == b""


def test_a_block_of_half_a_sample_is_refused() -> None:
    gate = VoiceGate(LoudnessDetector())
    with pytest.raises(ValueError, match="even length"):
        gate.process(b"\x00\x00\x00", 0.0)
    assert gate.counters == GateCounters(bytes_sent=0, bytes_withheld=0, openings=0)


def test_a_detector_window_that_is_no_whole_number_of_samples_at_24_khz_is_refused() -> None:
    class Odd(LoudnessDetector):
        window = 511

    with pytest.raises(ValueError, match="whole number"):
        VoiceGate(Odd())


def test_the_background_level_is_the_quietest_window_of_the_last_segments() -> None:
    background = BackgroundLevel(windows_per_segment=2)
    background.add(50.0)
    assert background.level == 0.0  # not known yet: anything may be speech
    for level in (10.0, 40.0, 30.0):
        background.add(level)
    assert background.level == 10.0
    for level in (60.0, 70.0, 80.0, 90.0):
        background.add(level)
    assert background.level == 30.0  # the segment holding 10 has been forgotten


def test_while_ava_speaks_a_short_burst_does_not_open_the_gate_and_a_voice_does() -> None:
    """A burst of AVA's own voice slipping past echo cancellation (two windows) stays out; a user talking over AVA
    opens the gate after three windows in a row, the pre-roll counted from the first."""
    burst = with_tone(hiss(3.0), 40 * WINDOW, 42 * WINDOW)
    guarded = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    guarded.ava_speaking = True
    assert not any(run(guarded, burst))
    unguarded = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    assert any(run(unguarded, burst)), "a control: the same burst opens the gate when AVA is silent"

    tone_start = 40 * WINDOW
    voice = with_tone(hiss(4.0), tone_start, 60 * WINDOW)
    guarded.reset()
    spans = sent_spans(voice, run(guarded, voice))
    assert spans[0][0] == tone_start - 300 * MS
    assert guarded.counters.openings == 1


class PlayedLike:
    """Stands in for the devices' `echo_resemblance` (measured for real in test_own_voice.py): says `resemblance`
    for every question, and keeps the questions."""

    def __init__(self, resemblance: float) -> None:
        self.resemblance = resemblance
        self.asked: list[tuple[bytes, float]] = []

    def __call__(self, heard: bytes, ended_at: float) -> float:
        self.asked.append((heard, ended_at))
        return self.resemblance


def test_while_ava_speaks_a_voice_that_follows_what_the_speaker_played_keeps_the_gate_shut() -> None:
    """AVA's own voice slipping past echo cancellation for as long as it likes: nothing is sent. A voice that does
    not follow what was played opens the gate, its pre-roll from the run's first window."""
    tone_start = 40 * WINDOW
    voice = with_tone(hiss(4.0), tone_start, 80 * WINDOW)
    shut = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    shut.ava_speaking = True
    shut.echo_resemblance = avas = PlayedLike(0.95)
    assert not any(run(shut, voice))
    assert shut.counters.openings == 0 and shut.own_voice_refusals >= 30
    heard, ended_at = avas.asked[0]
    end = round((ended_at - 100.0) * ra.RATE)
    assert end % WINDOW == 0 and tone_start < end <= tone_start + 4 * WINDOW, "asked at the window that would open"
    assert heard == voice[(end - 300 * MS) * 2 : end * 2], "about the 300 ms of audio up to that window"

    opened = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    opened.ava_speaking = True
    opened.echo_resemblance = users = PlayedLike(0.3)
    spans = sent_spans(voice, run(opened, voice))
    assert spans[0][0] == tone_start - 300 * MS and opened.counters.openings == 1
    assert len(users.asked) == 1, "asked once, at the window that opened the gate (no later than without asking)"
    assert opened.own_voice_refusals == 0


def test_with_ava_silent_the_speaker_is_not_asked_about() -> None:
    voice = with_tone(hiss(3.0), 40 * WINDOW, 60 * WINDOW)
    gate = VoiceGate(LoudnessDetector())
    gate.echo_resemblance = asked = PlayedLike(0.95)
    assert any(run(gate, voice))
    assert not asked.asked


class FirstWindowsDetector(LoudnessDetector):
    """Hears speech in the first `windows` loud windows after a reset, then never again (a voice whose tail the model
    no longer calls speech)."""

    def __init__(self, windows: int) -> None:
        super().__init__()
        self.windows = windows
        self.heard = 0

    def speech_probability(self, samples: npt.NDArray[np.float32]) -> float:
        if super().speech_probability(samples) < 0.5 or self.heard >= self.windows:
            return 0.0
        self.heard += 1
        return 1.0

    def reset(self) -> None:
        self.heard = 0


def test_the_hang_over_waits_for_a_voice_to_stop_sounding_not_for_the_model_to_stop_calling_it_speech() -> None:
    tone_start, tone_end = 40 * WINDOW, 70 * WINDOW  # the model calls only its first 160 ms speech
    pcm = with_tone(hiss(5.0), tone_start, tone_end)
    gate = VoiceGate(FirstWindowsDetector(5), pre_roll_ms=300, hang_over_ms=700)
    spans = sent_spans(pcm, run(gate, pcm))
    assert spans == [(tone_start - 300 * MS, tone_end + 700 * MS)], "the server would never hear the turn end"


def test_typing_after_a_request_does_not_hold_the_gate_open() -> None:
    x = hiss(6.0)
    t = np.arange(10 * WINDOW) / ra.RATE
    x[40 * WINDOW : 50 * WINDOW] += 8000 * np.sin(2 * np.pi * 300 * t)  # the request
    for key in range(52, 150, 4):  # a key every 128 ms from 60 ms after it, each loud for two windows
        x[key * WINDOW : (key + 2) * WINDOW] += 6000 * np.sign(np.sin(2 * np.pi * 2000 * t[: 2 * WINDOW]))
    pcm = ra.to_pcm(x)
    gate = VoiceGate(FirstWindowsDetector(10), pre_roll_ms=300, hang_over_ms=700)
    spans = sent_spans(pcm, run(gate, pcm))
    assert spans == [(40 * WINDOW - 300 * MS, 50 * WINDOW + 700 * MS)]


def test_in_push_to_talk_only_the_key_opens_the_gate_and_the_detector_rests() -> None:
    class Asked(LoudnessDetector):
        calls = 0

        def speech_probability(self, samples: npt.NDArray[np.float32]) -> float:
            Asked.calls += 1
            return super().speech_probability(samples)

    pcm = with_tone(hiss(4.0), 20 * WINDOW, 100 * WINDOW)  # someone talks the whole time
    gate = VoiceGate(Asked(), pre_roll_ms=300, hang_over_ms=700)
    gate.push_to_talk = True
    answers = []
    for i, block in enumerate(blocks(pcm, (BLOCK,))):
        gate.forced_open = 100 <= i < 120  # the key held from 2.0 s to 2.4 s
        answers.append(gate.process(block, float(i) / 50))
    assert sent_spans(pcm, answers) == [(100 * BLOCK - 300 * MS, 120 * BLOCK + 700 * MS)]
    assert Asked.calls == 0


class CountingLoudnessDetector(LoudnessDetector):
    """A `LoudnessDetector` that counts the windows it was asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def speech_probability(self, samples: npt.NDArray[np.float32]) -> float:
        self.calls += 1
        return super().speech_probability(samples)


def test_an_open_gate_lets_a_block_out_before_judging_it_and_sends_the_same_audio() -> None:
    """Open and inside the hang-over, a block goes at once (no model run before the send); `settle` judges it
    after, and what is sent is exactly what judging first would send."""
    pcm = with_tone(hiss(4.0), 40 * WINDOW, 60 * WINDOW)
    settled_gate, lazy_gate = VoiceGate(CountingLoudnessDetector()), VoiceGate(CountingLoudnessDetector())
    settled, lazy, unjudged_sends = [], [], 0
    captured = 0
    for block in blocks(pcm, (BLOCK,)):
        captured += len(block) // 2
        at = 100.0 + captured / ra.RATE
        detector = settled_gate._detector
        assert isinstance(detector, CountingLoudnessDetector)
        before = detector.calls
        was_open = settled_gate.is_open
        settled.append(settled_gate.process(block, at))
        if was_open and settled[-1] and detector.calls == before:
            unjudged_sends += 1
        settled_gate.settle()
        lazy.append(lazy_gate.process(block, at))  # never settled by the caller: `process` judges it first
    assert unjudged_sends >= 10, "an open gate still ran the model before letting the block out"
    assert settled == lazy
    assert sent_spans(pcm, settled) == [(40 * WINDOW - 500 * MS, 60 * WINDOW + 700 * MS)]



def run_with_turn_end(gate: VoiceGate, pcm: bytes, ended_at: int) -> list[bytes]:
    """`run`, with the server's end of the user's turn arriving with the block that holds sample `ended_at`."""
    answers, position = [], 0
    for i, block in enumerate(blocks(pcm, (BLOCK,))):
        answers.append(gate.process(block, float(i) / 50))
        position += BLOCK
        if position - BLOCK < ended_at <= position:
            gate.end_hang_over()
    return answers


def test_when_the_server_ends_the_turn_the_rest_of_the_hang_over_is_not_sent() -> None:
    """What follows a request (typing, a chair) never reaches a server VAD that could take it for a new turn."""
    tone_start, tone_end = 40 * WINDOW, 60 * WINDOW
    pcm = with_tone(hiss(4.0), tone_start, tone_end)
    gate = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    ended_at = tone_end + 520 * MS
    spans = sent_spans(pcm, run_with_turn_end(gate, pcm, ended_at))
    assert spans[0][0] == tone_start - 300 * MS
    assert spans[-1][1] <= ended_at + BLOCK, "the hang-over went on after the server had ended the turn"
    assert gate.counters.openings == 1 and not gate.is_open


def test_a_voice_that_goes_on_after_the_server_ended_the_turn_is_sent_whole_in_the_same_opening() -> None:
    tone_start, pause_start, pause_end, tone_end = 40 * WINDOW, 60 * WINDOW, 60 * WINDOW + 600 * MS, 100 * WINDOW
    background = hiss(5.0)
    first = np.frombuffer(with_tone(background, tone_start, pause_start), dtype="<i2").astype(np.float64)
    pcm = with_tone(first, pause_end, tone_end)
    gate = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)
    spans = sent_spans(pcm, run_with_turn_end(gate, pcm, pause_start + 520 * MS))
    assert spans == [(tone_start - 300 * MS, tone_end + 700 * MS)], "the voice after the pause lost audio"
    assert gate.counters.openings == 1
    talking = VoiceGate(LoudnessDetector(), pre_roll_ms=300, hang_over_ms=700)  # the server ends a turn mid-voice
    assert sent_spans(pcm, run_with_turn_end(talking, pcm, pause_start - 10 * MS)) == spans
    push = VoiceGate(LoudnessDetector())
    push.forced_open = True
    run(push, ra.to_pcm(hiss(0.5)))
    push.end_hang_over()
    push.forced_open = False
    assert push.process(ra.to_pcm(hiss(0.1)), 99.0), "a push-to-talk turn lost its hang-over to the server's VAD"
