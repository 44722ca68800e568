"""One decoding window -> checked text, re-decoded deterministically when a check fails.

Whisper's own fallback re-samples a failing segment at a higher temperature: random, so the
same recording can come out right once and as a loop the next time. Here every decode is
beam search at temperature 0, and each window's decode is checked: a loop (more characters than
anyone says in the time, a phrase repeated back to back, a high gzip ratio), speech skipped
(seconds of the window outside every segment: Whisper sometimes ends a window early), a subtitle
credit, an echo of the prompt, or no speech. A window that fails is decoded again in fixed ways:

1. ``penalty``: the same audio with a repetition penalty (against loops) and without the
   prompt (against echoes and subtitle credits);
2. ``split``: the audio cut at its shorter pauses into pieces of at most 10 s, each decoded
   alone (a loop rarely survives a shorter context).

The first attempt that passes every check is kept. When none does, a loop is kept collapsed
(speech is not thrown away for repeating), and segments that are still a hallucination, an echo
of the prompt or no speech are dropped. Every re-decode, collapse and drop is an ``Event``
(logged by reason and size, never by text: transcripts may hold personal data).
"""
from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .audio import SAMPLE_RATE
from .segmenting import Span, Window, split_for_redecode
from .text import collapse_repeats, echoes_prompt, is_hallucination

log = logging.getLogger("voice")

LOOP = "loop"
HALLUCINATION = "hallucination"
PROMPT_ECHO = "prompt_echo"
NO_SPEECH = "no_speech"
SKIPPED = "skipped"  # the decoder ended early and left seconds of the window's speech out


@dataclass(frozen=True)
class DecodeSettings:
    language: str = "zh"
    beam_size: int = 5
    initial_prompt: Optional[str] = None
    hotwords: Optional[str] = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 10
    # checks
    compression_ratio_threshold: float = 2.4  # gzip ratio: read Mandarin 0.8-1.5, fast repetitive talk 2.1
    max_chars_per_second: float = 15.0  # Mandarin 4-7, the fastest real talk seen 11.4
    min_loop_chars: int = 4  # a repeat collapse that removes fewer is people saying 对对对
    # VAD leaves at most about 2 s of silence in a window (pauses under 1 s plus 2 x 600 ms of
    # padding), so more than 3 s of a window outside every decoded segment is speech left out
    max_uncovered_s: float = 3.0
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    redecode_penalty: float = 1.3


@dataclass
class Word:
    text: str
    start: float  # seconds in the source audio
    end: float


@dataclass
class Segment:
    text: str
    start: float  # seconds in the source audio
    end: float
    avg_logprob: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)
    in_window: tuple[float, float] = (0.0, 0.0)  # start and end in the window's audio


@dataclass
class Event:
    filter: str  # LOOP, SKIPPED, HALLUCINATION, PROMPT_ECHO, NO_SPEECH; "length", "vad" (transcriber)
    # "redecoded" (a re-decode passed), "collapsed" (a loop no re-decode fixed), "dropped",
    # "kept" (no re-decode passed; the best attempt is kept), "trimmed", "overruled" (VAD)
    action: str
    start: float
    end: float
    chars_before: int
    chars_after: int
    attempt: str = ""  # the re-decode that fixed it
    detail: str = ""

    def log(self) -> None:
        log.info("voice filter %s: %s %.1f-%.1f s, %d -> %d chars%s%s", self.filter, self.action,
                 self.start, self.end, self.chars_before, self.chars_after,
                 f" ({self.attempt})" if self.attempt else "", f"; {self.detail}" if self.detail else "")


@dataclass
class WindowResult:
    segments: list[Segment]
    events: list[Event]

    @property
    def text(self) -> str:
        return join_segments([s.text for s in self.segments])


def join_segments(parts: list[str]) -> str:
    out = ""
    for p in parts:
        p = p.strip()
        if not p:
            continue
        if out and out[-1] not in "。！？，,.!?、；;":
            out += "，"
        out += p
    return out


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0


def _bare_len(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


class WindowDecoder:
    """Decodes windows with a faster-whisper model (or anything with its ``transcribe``)."""

    def __init__(self, model, settings: DecodeSettings,
                 splitter: Callable[[np.ndarray], list[Span]] = split_for_redecode):
        self.model = model
        self.s = settings
        self.splitter = splitter

    # -- checks ----------------------------------------------------------------------------

    def loop_problem(self, text: str, seconds: float) -> bool:
        n = _bare_len(text)
        if n == 0:
            return False
        if n > self.s.max_chars_per_second * max(seconds, 1.0):
            return True
        if n >= 12 and compression_ratio(text) > self.s.compression_ratio_threshold:
            return True
        return _bare_len(text) - _bare_len(collapse_repeats(text)) >= self.s.min_loop_chars

    def segment_problem(self, seg: Segment) -> Optional[str]:
        if is_hallucination(seg.text):
            return HALLUCINATION
        prompt = self.s.initial_prompt  # its text is no speech, whether a decode was prompted or not
        if prompt and echoes_prompt(seg.text, prompt):
            return PROMPT_ECHO
        if seg.no_speech_prob > self.s.no_speech_threshold and seg.avg_logprob < self.s.log_prob_threshold:
            return NO_SPEECH
        return None

    def skipped(self, segs: list[Segment], seconds: float) -> bool:
        """Whisper ends a long window early now and then (seen on 20-28 s windows of several
        speakers): the rest of the window's speech is then missing from the text."""
        covered = 0.0
        for start, end in sorted(s.in_window for s in segs):
            if start - covered > self.s.max_uncovered_s:
                return True
            covered = max(covered, end)
        return seconds - covered > self.s.max_uncovered_s

    def problems(self, segs: list[Segment], seconds: float) -> list[str]:
        found = [p for p in (self.segment_problem(s) for s in segs) if p]
        if self.loop_problem(join_segments([s.text for s in segs]), seconds):
            found.append(LOOP)
        if self.skipped(segs, seconds):
            found.append(SKIPPED)
        return found

    # -- decoding --------------------------------------------------------------------------

    def run(self, audio: np.ndarray, *, offset: Callable[[float], float], prompt: Optional[str],
            penalty: float, words: bool, base: float = 0.0) -> list[Segment]:
        """Segments of one decode; ``offset`` maps a time in ``audio`` to the source, ``base``
        is where ``audio`` starts in its window."""
        s = self.s
        segments, _info = self.model.transcribe(
            audio, language=s.language, beam_size=s.beam_size, initial_prompt=prompt,
            hotwords=s.hotwords, vad_filter=False, repetition_penalty=penalty,
            no_repeat_ngram_size=s.no_repeat_ngram_size, temperature=0.0,
            compression_ratio_threshold=None, log_prob_threshold=None, no_speech_threshold=None,
            condition_on_previous_text=False, word_timestamps=words,
        )
        out = []
        for seg in segments:
            text = seg.text.strip()
            if not text:
                continue
            ws = [Word(w.word, offset(w.start), offset(w.end)) for w in (getattr(seg, "words", None) or [])]
            start, end = float(seg.start), float(seg.end)
            out.append(Segment(text, offset(start), offset(end), float(seg.avg_logprob), float(seg.no_speech_prob),
                               ws, (base + start, base + end)))
        return out

    def decode(self, samples: np.ndarray, window: Window, *, words: bool = False) -> WindowResult:
        audio = window.audio(samples)
        seconds = len(audio) / SAMPLE_RATE
        first = self.run(audio, offset=window.to_source, prompt=self.s.initial_prompt,
                         penalty=self.s.repetition_penalty, words=words)
        found = self.problems(first, seconds)
        if not found:
            return WindowResult(first, [])
        attempts = [("penalty", lambda: self.run(audio, offset=window.to_source, prompt=None,
                                                  penalty=self.s.redecode_penalty, words=words)),
                    ("split", lambda: self._split_decode(audio, window, words))]
        tried = [("first", first)]
        for name, attempt in attempts:
            segs = attempt()
            tried.append((name, segs))
            if not self.problems(segs, seconds):
                events = [self._event(p, "redecoded", window, first, segs, name) for p in dict.fromkeys(found)]
                return WindowResult(segs, events)
        return self._settle(tried, window, seconds, found)

    def _split_decode(self, audio: np.ndarray, window: Window, words: bool) -> list[Segment]:
        out: list[Segment] = []
        for piece in self.splitter(audio):
            base = piece.start / SAMPLE_RATE
            out.extend(self.run(audio[piece.start:piece.end], offset=lambda t, b=base: window.to_source(b + t),
                                prompt=self.s.initial_prompt, penalty=self.s.repetition_penalty, words=words,
                                base=base))
        return out

    def _settle(self, tried: list[tuple[str, list[Segment]]], window: Window, seconds: float,
                found: list[str]) -> WindowResult:
        """No attempt passed: keep the least loopy one, its loop collapsed, minus bad segments."""
        def badness(item):
            _name, segs = item
            text = join_segments([s.text for s in segs])
            kept = sum(1 for s in segs if not self.segment_problem(s))
            return (self.loop_problem(text, seconds), self.skipped(segs, seconds), -kept,
                    _bare_len(text) - _bare_len(collapse_repeats(text)))

        name, segs = min(tried, key=badness)
        events: list[Event] = []
        kept: list[Segment] = []
        for seg in segs:
            problem = self.segment_problem(seg)
            if problem:
                events.append(Event(problem, "dropped", seg.start, seg.end, _bare_len(seg.text), 0, name))
            else:
                kept.append(seg)
        if self.loop_problem(join_segments([s.text for s in kept]), seconds):
            before = sum(_bare_len(s.text) for s in kept)
            for seg in kept:
                seg.text = collapse_repeats(seg.text, max_repeats=1)
            events.append(Event(LOOP, "collapsed", window.start / SAMPLE_RATE, window.end / SAMPLE_RATE,
                                before, sum(_bare_len(s.text) for s in kept), name))
        for p in dict.fromkeys(found):  # e.g. skipped speech no attempt brought back
            if p not in {e.filter for e in events}:
                events.append(self._event(p, "kept", window, tried[0][1], kept, name))
        return WindowResult(kept, events)

    @staticmethod
    def _event(problem: str, action: str, window: Window, before: list[Segment], after: list[Segment],
               attempt: str) -> Event:
        return Event(problem, action, window.start / SAMPLE_RATE, window.end / SAMPLE_RATE,
                     sum(_bare_len(s.text) for s in before), sum(_bare_len(s.text) for s in after), attempt)
