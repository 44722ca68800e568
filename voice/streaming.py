"""A call's running transcript from audio that arrives in pieces (the 12345 copilot).

Transcribing fixed 6-second recordings one by one cuts a word spoken across a boundary in two.
Here the audio is decoded in windows that overlap by ``overlap_s``; each window's words carry
times (faster-whisper word timestamps, mapped back through the VAD), and the two windows either
side of a boundary meet in the middle of their overlap: a word belongs to the window in which
its centre lies before that junction. Every word near a junction is at least ``overlap_s / 2``
away from both windows' edges, so both decoded it whole.

    stream = CallStream(transcriber)
    update = stream.feed(samples)   # 16 kHz float32, any length
    update.final                    # text that became final with this piece
    update.text, update.tentative   # everything final so far; the not-yet-final tail
    stream.finish()                 # the rest, at the end of the call
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .audio import SAMPLE_RATE


@dataclass(frozen=True)
class StreamConfig:
    window_s: float = 8.0  # audio per decode; a decode runs every window_s - overlap_s seconds
    overlap_s: float = 2.0
    max_call_s: float = 3600.0


@dataclass
class StreamUpdate:
    final: str  # became final with this piece
    text: str  # all final text of the call
    tentative: str  # the newest window's words after its junction: may still change
    seconds: float  # audio received so far


@dataclass
class _Word:
    text: str
    center: float  # seconds from the start of the call


@dataclass
class CallStream:
    transcriber: object  # voice.Transcriber (anything with transcribe(samples, words=True))
    config: StreamConfig = field(default_factory=StreamConfig)

    def __post_init__(self) -> None:
        self._buffer = np.zeros(0, np.float32)
        self._origin = 0.0  # call time of the buffer's first sample
        self._junction = 0.0  # words centred before this are final
        self._received = 0.0
        self._final: list[str] = []
        self._tentative = ""

    def feed(self, samples: np.ndarray) -> StreamUpdate:
        samples = np.asarray(samples, np.float32).reshape(-1)
        if self._received + len(samples) / SAMPLE_RATE > self.config.max_call_s:
            raise ValueError(f"call longer than {self.config.max_call_s:.0f} s")
        self._received += len(samples) / SAMPLE_RATE
        self._buffer = np.concatenate([self._buffer, samples])
        window = int(self.config.window_s * SAMPLE_RATE)
        new: list[str] = []
        while len(self._buffer) >= window:
            new.append(self._decode(window, last=False))
        return self._update(new)

    def finish(self) -> StreamUpdate:
        """Decode what is left; the stream can take no more audio after this."""
        new = [self._decode(len(self._buffer), last=True)] if len(self._buffer) else []
        self._tentative = ""
        return self._update(new)

    # -- internals ---------------------------------------------------------------------------

    def _decode(self, n: int, last: bool) -> str:
        audio = self._buffer[:n]
        words = self._words(audio)
        end = self._origin + n / SAMPLE_RATE
        junction = end if last else end - self.config.overlap_s / 2
        final = [w.text for w in words if self._junction <= w.center < junction]
        self._tentative = "".join(w.text for w in words if w.center >= junction)
        self._junction = junction
        keep = 0 if last else int(self.config.overlap_s * SAMPLE_RATE)
        step = n - keep
        self._buffer = self._buffer[step:]
        self._origin += step / SAMPLE_RATE
        return self._dedupe("".join(final))

    def _words(self, audio: np.ndarray) -> list[_Word]:
        if len(audio) < SAMPLE_RATE // 10:
            return []
        result = self.transcriber.transcribe(audio, words=True)
        return [_Word(text, self._origin + (start + end) / 2) for text, start, end in result.words]

    def _dedupe(self, text: str) -> str:
        """Drop a head that repeats the tail of what is final (a word whose time estimate fell
        on the other side of the junction in the two windows), two characters or more."""
        text = text.strip()
        tail = "".join(self._final)[-8:]
        for k in range(min(len(tail), len(text)), 1, -1):
            if text.startswith(tail[-k:]):
                return text[k:]
        return text

    def _update(self, new: list[str]) -> StreamUpdate:
        clean = self.transcriber.clean
        final = "".join(clean(t) for t in new if t)
        if final:
            self._final.append(final)
        return StreamUpdate(final=final, text="".join(self._final), tentative=clean(self._tentative),
                            seconds=round(self._received, 3))
