"""Where the speech is: Silero VAD spans, grouped into decoding windows of at most 15 s.

Whisper decodes 30 s at a time, but base ends long windows early now and then (the transcriber
measures it). Audio up to the 60 s limit is cut at the pauses VAD finds
(never inside speech unless one person talks for more than ``max_window_s`` without a pause),
and each window is decoded on its own. A window is the concatenation of its speech spans, as
faster-whisper's own ``vad_filter`` does; ``Window.to_source`` maps its time axis back to the
audio's, so word times of a streamed call stay on the call's clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .audio import SAMPLE_RATE


@dataclass(frozen=True)
class Span:
    start: int  # first sample
    end: int  # one past the last sample

    @property
    def samples(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Window:
    spans: tuple[Span, ...]

    @property
    def start(self) -> int:
        return self.spans[0].start

    @property
    def end(self) -> int:
        return self.spans[-1].end

    @property
    def speech_samples(self) -> int:
        return sum(s.samples for s in self.spans)

    @property
    def seconds(self) -> float:
        return self.speech_samples / SAMPLE_RATE

    def audio(self, samples: np.ndarray) -> np.ndarray:
        if len(self.spans) == 1:
            return samples[self.start:self.end]
        return np.concatenate([samples[s.start:s.end] for s in self.spans])

    def to_source(self, seconds: float) -> float:
        """A time in the window's audio -> the same instant in the source audio (seconds)."""
        at = seconds * SAMPLE_RATE
        for span in self.spans:
            if at <= span.samples:
                return (span.start + at) / SAMPLE_RATE
            at -= span.samples
        return self.end / SAMPLE_RATE


def speech_spans(samples: np.ndarray, *, min_silence_ms: int = 1000, pad_ms: int = 600,
                 max_span_s: float = 15.0, threshold: float = 0.5) -> list[Span]:
    """Silero VAD (shipped inside faster-whisper) over 16 kHz samples; padded speech spans."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms,
                      speech_pad_ms=pad_ms, max_speech_duration_s=max_span_s)
    spans = [Span(int(t["start"]), int(t["end"])) for t in get_speech_timestamps(samples, opts)]
    return _merge_overlaps(spans)


def _merge_overlaps(spans: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for s in sorted(spans, key=lambda s: s.start):
        if out and s.start <= out[-1].end:
            out[-1] = Span(out[-1].start, max(out[-1].end, s.end))
        else:
            out.append(s)
    return out


def group_windows(spans: Sequence[Span], max_window_s: float = 15.0) -> list[Window]:
    """Consecutive spans in windows of at most ``max_window_s`` of speech; a new window starts at
    the pause before the span that would overflow it (spans themselves are already bounded)."""
    limit = int(max_window_s * SAMPLE_RATE)
    windows: list[list[Span]] = []
    for span in spans:
        if windows and sum(s.samples for s in windows[-1]) + span.samples <= limit:
            windows[-1].append(span)
        else:
            windows.append([span])
    return [Window(tuple(w)) for w in windows]


def whole_windows(samples: np.ndarray, max_window_s: float = 15.0) -> list[Window]:
    """All of the audio, cut at its quietest moments into windows of at most ``max_window_s``."""
    spans = _halve(samples, Span(0, len(samples)), int(max_window_s * SAMPLE_RATE))
    return [Window((s,)) for s in spans]


def loud_seconds(samples: np.ndarray, frame: int = 480) -> float:
    """Seconds of 30 ms frames well above the recording's own floor (its quietest tenth, x4) and
    above -40 dBFS: sound that changes, as speech does. Steady noise or hum has none."""
    power = _frame_power(samples, frame)
    if not len(power):
        return 0.0
    rms = np.sqrt(power)
    threshold = max(4 * float(np.percentile(rms, 10)), 10 ** (-40 / 20))
    return float((rms > threshold).sum()) * frame / SAMPLE_RATE


def vad_missed_speech(samples: np.ndarray, spans: Sequence[Span], min_loud_s: float = 2.0) -> bool:
    """Silero VAD hears less than half of the loud, changing sound: it misses that voice (seen
    on a child reading aloud: 3 s of 20 kept). On the 46 recordings tried, VAD keeps at least
    1.15 times the loud seconds for every other one; quiet recordings have few loud seconds,
    so the rule leaves them to VAD."""
    loud = loud_seconds(samples)
    return loud >= min_loud_s and sum(s.samples for s in spans) / SAMPLE_RATE < 0.5 * loud


def split_for_redecode(audio: np.ndarray, *, max_piece_s: float = 10.0) -> list[Span]:
    """Shorter pieces of one window, for a second, deterministic decode of a window whose first
    decode failed: at its shorter pauses (VAD with 250 ms silences), and a piece still longer
    than ``max_piece_s`` at its quietest 100 ms near the middle. Returns spans of ``audio``."""
    spans = speech_spans(audio, min_silence_ms=250, pad_ms=150, max_span_s=max_piece_s) or \
        [Span(0, len(audio))]
    pieces: list[Span] = []
    for span in spans:
        pieces.extend(_halve(audio, span, int(max_piece_s * SAMPLE_RATE)))
    if len(pieces) == 1 and pieces[0].samples > 4 * SAMPLE_RATE:
        pieces = _halve(audio, pieces[0], pieces[0].samples - 1)  # one piece is no new decode
    return pieces


def _halve(audio: np.ndarray, span: Span, limit: int) -> list[Span]:
    if span.samples <= limit:
        return [span]
    cut = quietest_point(audio[span.start:span.end]) + span.start
    return _halve(audio, Span(span.start, cut), limit) + _halve(audio, Span(cut, span.end), limit)


def quietest_point(audio: np.ndarray, frame: int = SAMPLE_RATE // 10) -> int:
    """Sample index of the quietest 100 ms frame in the middle half of ``audio``."""
    energy = _frame_power(audio, frame)
    n = len(energy)
    if n < 4:
        return len(audio) // 2
    lo, hi = n // 4, max(n // 4 + 1, (3 * n) // 4)
    best = lo + int(np.argmin(energy[lo:hi]))
    return best * frame + frame // 2


def _frame_power(audio: np.ndarray, frame: int) -> np.ndarray:
    """Mean square of each whole frame of ``audio``."""
    n = len(audio) // frame
    return np.square(audio[: n * frame].astype(np.float64)).reshape(n, frame).mean(axis=1)
