"""Mandarin transcription with Whisper base through faster-whisper (CTranslate2, int8 on CPU).

    from voice import Transcriber
    t = Transcriber()                      # loads the model once per process
    result = t.transcribe("question.wav")  # or bytes of wav/mp3/webm/ogg/m4a, or 16 kHz float32
    result.text                            # Simplified Chinese, cleaned; "" for silence

The same audio always gives the same transcript: nothing is sampled at random. In order:
* Silero VAD finds the speech; it is grouped into windows of at most 15 s, cut at pauses
  (voice/segmenting.py), so audio up to the 60 s limit is decoded window by window;
* each window is decoded at temperature 0 with language zh and a Simplified Chinese prompt,
  and checked: a loop (too many characters per second, a high gzip ratio, a phrase repeated
  back to back), speech skipped, a subtitle credit, an echo of the prompt, or no speech; when
  VAD misses most of the loud sound, the whole audio is decoded instead. A window that fails is
  re-decoded in fixed ways before anything is dropped (voice/decoding.py);
* OpenCC t2s, repeated phrases collapsed, the text bounded to ``max_chars_per_second``;
* non-words replaced by a common word of the same sound (偏章 -> 篇章, index_builder/soundalike.py),
  then homophones of domain terms corrected (一窗同 -> 一窗通, index_builder/homophones.py).
``Transcript.events`` records every re-decode, collapse, drop and trim, by filter.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np

from . import audio as audio_mod
from .model import default_model_dir, ensure_model
from .decoding import DecodeSettings, Event, WindowDecoder, join_segments
from .segmenting import Window, group_windows, loud_seconds, speech_spans, vad_missed_speech, whole_windows
from .text import (
    bound_length,
    collapse_repeats,
    normalize_for_retrieval,
    strip_prompt_echo,
    tidy_punctuation,
    to_simplified,
)
from index_builder.vocabulary import DomainVocabulary, load_vocabulary

log = logging.getLogger("voice")

# Simplified Chinese with punctuation: Whisper continues in the script and style of its prompt.
# Naming service terms in the prompt ("……关于营业执照、公积金和一窗通。") cost 0.027 CER on the
# shared clips (0.193 -> 0.220, bench/voice.py), so the domain vocabulary is applied after
# decoding by homophone correction (index_builder/homophones.py), and optionally as hotwords.
DEFAULT_PROMPT = "以下是普通话的句子。"


@dataclass(frozen=True)
class TranscriberConfig:
    model_dir: Optional[Path] = None  # default: $VOICE_MODEL_DIR or build/models/whisper-base
    device: str = "cpu"
    compute_type: str = "int8"
    cpu_threads: int = 0  # 0: all cores
    # CTranslate2 workers: concurrent transcribe() calls run in parallel. Measured on 2 cores
    # (5 s clip): 1 worker x 2 threads 1.11 s alone, 6 concurrent 6.8 s; 2 x 1: 1.46 s, 4.6 s;
    # 2 x 2: 1.06 s alone, 4.9 s for 6: one worker per core, each may use every core when alone.
    num_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    language: str = "zh"
    beam_size: int = 5
    initial_prompt: Optional[str] = DEFAULT_PROMPT
    # Hotwords measurably hurt general dictation with Whisper base (bench/voice.py: CER 0.193 ->
    # 0.202 with 3 terms, 0.24 with 120 characters of terms; unclear audio gets the list echoed),
    # so by default the vocabulary works through homophone correction; True passes it as hotwords.
    use_hotwords: bool = False
    hotwords_max_chars: int = 60
    vad_filter: bool = True
    vad_parameters: dict = field(default_factory=lambda: {"speech_pad_ms": 600, "min_silence_duration_ms": 1000})
    # speech per decoding window. Whisper sees 30 s, but base ends long windows early now and
    # then; five clips (47 s) in a row: CER 0.172 with 28 s or 20 s windows (after re-decoding
    # what was skipped), 0.141 with 15 s; clips of 3-28 s alone: the same CER either way
    max_window_s: float = 15.0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 10  # no 10-token run twice in a window: cuts long loops, CER unchanged
    # gzip ratio of a window's text: read Mandarin is 0.8-1.5, but fast talk that repeats its
    # phrases reaches 2.1 (a 11 s clip of someone describing moves: "再直接拉到……之后"). Loops
    # are caught by their back-to-back repeats (decoding.WindowDecoder.loop_problem); the
    # ratio is the last resort, at Whisper's own 2.4.
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    redecode_penalty: float = 1.3  # repetition penalty of the first re-decode of a failing window
    # Mandarin is 4-7 characters a second, the fastest real talk seen 11.4 (it was trimmed at
    # 10); a loop runs to Whisper's 448 tokens, far beyond 15
    max_chars_per_second: float = 15.0
    max_bytes: int = audio_mod.MAX_BYTES
    max_seconds: float = audio_mod.MAX_SECONDS
    correct_homophones: bool = True
    # non-words replaced by a same-sounding common word (偏章 -> 篇章; index_builder/soundalike.py):
    # shared clips CER 0.193 -> 0.174; cost per changed character in nats (higher changes less)
    correct_soundalikes: bool = True
    soundalike_cost: float = 5.0


@dataclass
class Transcript:
    text: str  # Simplified, cleaned: what the person said
    query: str  # text normalised for retrieval (fillers dropped, spoken digit runs as digits)
    raw_text: str  # the decoder's output before clean-up
    duration: float  # seconds of audio
    speech_duration: float  # seconds the VAD kept
    events: list = field(default_factory=list)  # voice.decoding.Event as dicts: every filter's action
    windows: int = 0  # decoding windows (VAD speech grouped up to max_window_s)
    words: list = field(default_factory=list)  # [(text, start s, end s)] when asked for
    timings: dict = field(default_factory=dict)  # decode_ms, transcribe_ms

    def to_json(self) -> dict:
        return asdict(self)


_MODELS: dict[tuple, object] = {}
_MODELS_LOCK = threading.Lock()


def load_model(config: TranscriberConfig):
    """The WhisperModel for this config, loaded once per process (shared by every Transcriber)."""
    from faster_whisper import WhisperModel

    model_dir = Path(config.model_dir) if config.model_dir else default_model_dir()
    threads = config.cpu_threads or os.cpu_count() or 1
    key = (str(model_dir.resolve()), config.device, config.compute_type, threads, config.num_workers)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            ensure_model(model_dir, log=log.info)
            t0 = time.perf_counter()
            model = WhisperModel(
                str(model_dir), device=config.device, compute_type=config.compute_type,
                cpu_threads=threads, num_workers=config.num_workers, local_files_only=True,
            )
            log.info("voice: loaded %s in %.1f s", model_dir, time.perf_counter() - t0)
            _MODELS[key] = model
        return model


class Transcriber:
    """Loads the model once; ``transcribe`` is thread-safe (CTranslate2 releases the GIL)."""

    def __init__(self, config: TranscriberConfig | None = None, *, vocabulary: DomainVocabulary | None = None,
                 model=None, **overrides):
        """``model``: an object with faster-whisper's ``transcribe`` (tests); default: the
        WhisperModel for ``config``, loaded once per process."""
        config = config or TranscriberConfig()
        if overrides:
            config = replace(config, **overrides)
        self.config = config
        self.vocabulary = vocabulary if vocabulary is not None else load_vocabulary()
        self.hotwords = self.vocabulary.hotwords(config.hotwords_max_chars) if config.use_hotwords else None
        self._soundalike = None
        if config.correct_soundalikes:
            from index_builder.soundalike import default_corrector

            self._soundalike = default_corrector(cost=config.soundalike_cost)
        self._corrector = None
        if config.correct_homophones:
            from index_builder.homophones import HomophoneCorrector

            self._corrector = HomophoneCorrector(self.vocabulary.correction_terms())
        self.model = model if model is not None else load_model(config)
        self.decoder = WindowDecoder(self.model, DecodeSettings(
            language=config.language, beam_size=config.beam_size, initial_prompt=config.initial_prompt,
            hotwords=self.hotwords, repetition_penalty=config.repetition_penalty,
            no_repeat_ngram_size=config.no_repeat_ngram_size,
            compression_ratio_threshold=config.compression_ratio_threshold,
            max_chars_per_second=config.max_chars_per_second, no_speech_threshold=config.no_speech_threshold,
            log_prob_threshold=config.log_prob_threshold, redecode_penalty=config.redecode_penalty))

    # -- public ------------------------------------------------------------------------------

    def transcribe(self, source: Union[audio_mod.AudioInput, np.ndarray], *, words: bool = False) -> Transcript:
        """Transcribe a path, the bytes of an audio file, or 16 kHz mono float32 samples; with
        ``words``, ``Transcript.words`` holds each word's time (streamed calls stitch on it).
        Raises :class:`voice.audio.AudioError` for input that is not acceptable audio."""
        t0 = time.perf_counter()
        if isinstance(source, np.ndarray):
            samples = source.astype(np.float32, copy=False).reshape(-1)
            if samples.size == 0:
                raise audio_mod.empty_audio()
            if samples.size > (self.config.max_seconds + 0.5) * audio_mod.SAMPLE_RATE:
                raise audio_mod.too_long(self.config.max_seconds)
        else:
            samples = audio_mod.decode(source, max_bytes=self.config.max_bytes,
                                       max_seconds=self.config.max_seconds).samples
        t1 = time.perf_counter()
        result = self._transcribe_samples(samples, words)
        t2 = time.perf_counter()
        result.timings = {"decode_ms": round((t1 - t0) * 1000, 1), "transcribe_ms": round((t2 - t1) * 1000, 1)}
        return result

    def warm_up(self) -> None:
        """Throw-away work so the first real request does not pay for loading the VAD model
        and for CTranslate2's first-call allocations (in every worker): about 1 s."""
        from concurrent.futures import ThreadPoolExecutor

        noise = np.random.default_rng(0).normal(0, 0.01, audio_mod.SAMPLE_RATE).astype(np.float32)

        def one(_):
            segments, _info = self.model.transcribe(noise, language=self.config.language,
                                                    beam_size=self.config.beam_size, vad_filter=False,
                                                    temperature=0.0, initial_prompt=self.config.initial_prompt)
            for _seg in segments:
                pass

        if self.config.vad_filter:
            from faster_whisper.vad import get_speech_timestamps

            get_speech_timestamps(noise)
        workers = max(1, int(self.config.num_workers))
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(workers)))

    # -- internals ---------------------------------------------------------------------------

    def _transcribe_samples(self, samples: np.ndarray, words: bool = False) -> Transcript:
        duration = len(samples) / audio_mod.SAMPLE_RATE
        windows, missed = self.plan(samples)
        results = [self.decoder.decode(samples, w, words=words) for w in windows]
        events = ([missed] if missed else []) + [e for r in results for e in r.events]
        segments = [seg for r in results for seg in r.segments]
        speech = sum(w.seconds for w in windows)
        text = self.clean(join_segments([seg.text for seg in segments]), speech, events)
        for e in events:
            e.log()
        return Transcript(
            text=text, query=normalize_for_retrieval(text), raw_text="".join(seg.text for seg in segments),
            duration=round(duration, 3), speech_duration=round(speech, 3),
            events=[asdict(e) for e in events], windows=len(windows),
            words=[(w.text, round(float(w.start), 3), round(float(w.end), 3)) for seg in segments for w in seg.words],
        )

    def plan(self, samples: np.ndarray) -> tuple[list[Window], Event | None]:
        """Decoding windows: VAD speech grouped up to ``max_window_s``, or all of the audio when
        VAD is off or missed most of the loud sound (then with an Event saying so)."""
        c = self.config
        if not c.vad_filter:
            return whole_windows(samples, c.max_window_s), None
        vad = dict(c.vad_parameters)
        spans = speech_spans(samples, min_silence_ms=int(vad.get("min_silence_duration_ms", 1000)),
                             pad_ms=int(vad.get("speech_pad_ms", 600)), max_span_s=c.max_window_s,
                             threshold=float(vad.get("threshold", 0.5)))
        if vad_missed_speech(samples, spans):
            kept = sum(s.samples for s in spans) / audio_mod.SAMPLE_RATE
            return whole_windows(samples, c.max_window_s), Event(
                "vad", "overruled", 0.0, len(samples) / audio_mod.SAMPLE_RATE, 0, 0,
                detail=f"VAD kept {kept:.1f} s of {loud_seconds(samples):.1f} s of loud sound")
        return group_windows(spans, c.max_window_s), None

    def clean(self, text: str, speech_seconds: float | None = None, events: list[Event] | None = None) -> str:
        """Script, punctuation, echoes, the length bound (when the seconds are known) and
        homophones, on joined text; a trim is added to ``events``."""
        c = self.config
        text = tidy_punctuation(to_simplified(text))
        text = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])", "，", text)
        text = re.sub(r"\s*([，。？！、；：])\s*", r"\1", text).strip()
        text = collapse_repeats(text)
        text = strip_prompt_echo(text, c.initial_prompt or "")
        text = self._strip_echo(text)
        bounded = text if speech_seconds is None else bound_length(text, speech_seconds, c.max_chars_per_second)
        if bounded != text and events is not None:
            events.append(Event("length", "trimmed", 0.0, speech_seconds, len(text), len(bounded)))
            text = bounded
        if self._soundalike is not None:
            text, changes = self._soundalike.correct_with_changes(text)
            if changes:  # how many, never which: transcripts may hold personal data
                log.info("voice soundalike: %d spans corrected", len(changes))
        if self._corrector is not None:
            text = self._corrector.correct(text)
        return text

    def _strip_echo(self, text: str) -> str:
        """Remove runs of three or more vocabulary terms in the order the prompt lists them
        ("朱家角 赵巷 徐泾 华新"): the decoder copying its prompt, not speech."""
        terms = self.vocabulary.terms()[:200]
        if not text or len(terms) < 3:
            return text
        sep = r"[\s，,、。]*"
        for i in range(len(terms) - 2):
            run = sep.join(re.escape(t) for t in terms[i:i + 3])
            if re.search(run, text):
                # extend to the longest following run
                j = i + 3
                while j < len(terms) and re.search(sep.join(re.escape(t) for t in terms[i:j + 1]), text):
                    j += 1
                text = re.sub(sep.join(re.escape(t) for t in terms[i:j]), "", text)
        return text.strip(" ，,、")
