"""Mandarin transcription with Whisper base through faster-whisper (CTranslate2, int8 on CPU).

    from voice import Transcriber
    t = Transcriber()                      # loads the model once per process
    result = t.transcribe("question.wav")  # or bytes of wav/mp3/webm/ogg/m4a, or 16 kHz float32
    result.text                            # Simplified Chinese, cleaned; "" for silence

Guards, in decoding order:
* language fixed to zh, an initial prompt in Simplified Chinese, OpenCC t2s on the output;
* Silero VAD (vad_filter) so silence and noise reach the decoder as little as possible;
* decoder limits against loops: repetition_penalty, no_repeat_ngram_size,
  compression_ratio_threshold (with temperature fallback);
* segments dropped when they are known hallucinations ("字幕由……提供"), an echo of the prompt or
  hotwords, or have a high no-speech probability with a low log-probability;
* the text is bounded to ``max_chars_per_second`` of audio, repeated phrases collapsed first;
* homophones of domain terms corrected (一窗同 -> 一窗通, voice/homophones.py).
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
from .text import (
    bound_length,
    collapse_repeats,
    echoes_prompt,
    is_hallucination,
    normalize_for_retrieval,
    strip_prompt_echo,
    tidy_punctuation,
    to_simplified,
)
from .vocabulary import DomainVocabulary, load_vocabulary

log = logging.getLogger("voice")

# Simplified Chinese with punctuation: Whisper continues in the script and style of its prompt.
# Naming service terms in the prompt ("……关于营业执照、公积金和一窗通。") cost 0.027 CER on the
# shared clips (0.193 -> 0.220, bench/voice.py), so the domain vocabulary is applied after
# decoding by homophone correction (voice/homophones.py), and optionally as hotwords.
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
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 10  # no 10-token run twice in a window: cuts long loops, CER unchanged
    # gzip ratio of the segment text: normal Mandarin is 0.8-1.3, a loop like "冠冠冠冠…" 1.7+;
    # Whisper's 2.4 is calibrated for English and lets Chinese loops through
    compression_ratio_threshold: float = 1.6
    log_prob_threshold: float = -1.0
    no_speech_threshold: float = 0.6
    temperature: tuple = (0.0, 0.2, 0.4, 0.6)
    condition_on_previous_text: bool = False  # no carry-over of a looping segment into the next
    max_chars_per_second: float = 10.0  # fast Mandarin is about 6; beyond 10 it is a loop
    max_bytes: int = audio_mod.MAX_BYTES
    max_seconds: float = audio_mod.MAX_SECONDS
    correct_homophones: bool = True


@dataclass
class Transcript:
    text: str  # Simplified, cleaned: what the person said
    query: str  # text normalised for retrieval (fillers dropped, spoken digit runs as digits)
    raw_text: str  # the decoder's output before clean-up
    duration: float  # seconds of audio
    speech_duration: float  # seconds the VAD kept
    dropped: list = field(default_factory=list)  # [(reason, segment text)]
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
        self._corrector = None
        if config.correct_homophones:
            from .homophones import HomophoneCorrector

            self._corrector = HomophoneCorrector(self.vocabulary.correction_terms())
        self.model = model if model is not None else load_model(config)

    # -- public ------------------------------------------------------------------------------

    def transcribe(self, source: Union[audio_mod.AudioInput, np.ndarray]) -> Transcript:
        """Transcribe a path, the bytes of an audio file, or 16 kHz mono float32 samples.
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
        result = self._transcribe_samples(samples)
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

    def _transcribe_samples(self, samples: np.ndarray) -> Transcript:
        c = self.config
        duration = len(samples) / audio_mod.SAMPLE_RATE
        segments, info = self.model.transcribe(
            samples,
            language=c.language,
            beam_size=c.beam_size,
            initial_prompt=c.initial_prompt,
            hotwords=self.hotwords,
            vad_filter=c.vad_filter,
            vad_parameters=dict(c.vad_parameters) if c.vad_filter else None,
            repetition_penalty=c.repetition_penalty,
            no_repeat_ngram_size=c.no_repeat_ngram_size,
            compression_ratio_threshold=c.compression_ratio_threshold,
            log_prob_threshold=c.log_prob_threshold,
            no_speech_threshold=c.no_speech_threshold,
            temperature=list(c.temperature),
            condition_on_previous_text=c.condition_on_previous_text,
        )
        kept: list[str] = []
        raw: list[str] = []
        dropped: list[tuple[str, str]] = []
        for seg in segments:
            text = seg.text.strip()
            raw.append(text)
            if not text:
                continue
            reason = self._drop_reason(seg, text)
            if reason:
                dropped.append((reason, text))
                continue
            kept.append(to_simplified(text))
        text = tidy_punctuation(self._join(kept))
        text = collapse_repeats(text)
        text = strip_prompt_echo(text, c.initial_prompt or "")
        text = self._strip_echo(text)
        text = bound_length(text, duration, c.max_chars_per_second)
        if self._corrector is not None:
            text = self._corrector.correct(text)
        if text and is_hallucination(text):
            dropped.append(("hallucination", text))
            text = ""
        speech = getattr(info, "duration_after_vad", None) or duration
        return Transcript(
            text=text, query=normalize_for_retrieval(text), raw_text="".join(raw),
            duration=round(duration, 3), speech_duration=round(float(speech), 3), dropped=dropped,
        )

    def _drop_reason(self, seg, text: str) -> str | None:
        if is_hallucination(text):
            return "hallucination"
        if self.config.initial_prompt and echoes_prompt(text, self.config.initial_prompt):
            return "prompt_echo"
        if seg.no_speech_prob > self.config.no_speech_threshold and seg.avg_logprob < self.config.log_prob_threshold:
            return "no_speech"
        return None

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

    @staticmethod
    def _join(parts: list[str]) -> str:
        out = ""
        for p in parts:
            if out and not re.search(r"[。！？，,.!?、]$", out):
                out += "，"
            out += p
        # Whisper puts ASCII spaces between clauses in Chinese: make them commas
        out = re.sub(r"(?<=[\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])", "，", out)
        return out.strip()
