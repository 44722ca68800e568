"""Audio input: decode what browsers and phones send (wav, mp3, webm/opus, ogg, m4a, flac) to
16 kHz mono float32 with PyAV (the FFmpeg bindings faster-whisper uses), within limits.

Every refusal is an :class:`AudioError` with a machine code, an HTTP status and a message in
Chinese for the person at the kiosk; the gateway returns them as JSON.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

SAMPLE_RATE = 16_000
# 12 MiB: a minute of 48 kHz stereo 16-bit WAV (11 MiB) fits; compressed formats are far smaller.
MAX_BYTES = 12 * 1024 * 1024
MAX_SECONDS = 60.0

AudioInput = Union[bytes, bytearray, memoryview, str, Path]


class AudioError(ValueError):
    """Audio that cannot be accepted. ``code`` is stable for clients, ``message`` is Chinese."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def to_json(self) -> dict:
        return {"error": self.code, "message": self.message}


def empty_audio() -> AudioError:
    return AudioError("empty_audio", "没有收到录音，请按住说话按钮后再说一遍。", 400)


def too_large(limit: int = MAX_BYTES) -> AudioError:
    size = f"{limit / (1024 * 1024):g} MB" if limit >= 1024 * 1024 else f"{limit // 1024} KB"
    return AudioError("audio_too_large", f"录音文件太大（上限 {size}），请说得简短一些。", 413)


def too_long(limit: float = MAX_SECONDS) -> AudioError:
    return AudioError("audio_too_long", f"录音太长（上限 {int(limit)} 秒），请分几次简短地说。", 413)


def not_audio() -> AudioError:
    return AudioError("not_audio", "收到的文件不是可识别的音频，请使用 wav、mp3、webm、ogg 或 m4a 格式。", 415)


def corrupt_audio() -> AudioError:
    return AudioError("corrupt_audio", "录音文件已损坏或不完整，无法解码，请重新录制。", 422)


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    format: str

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def decode(data: AudioInput, *, max_bytes: int = MAX_BYTES, max_seconds: float = MAX_SECONDS) -> DecodedAudio:
    """Decode a file path or the bytes of an audio file, refusing empty, oversized, non-audio,
    undecodable and over-long input. Decoding stops as soon as ``max_seconds`` is passed, so a
    small but very long compressed file costs no more than a minute of audio."""
    import av  # PyAV, installed with faster-whisper

    if isinstance(data, (str, Path)):
        path = Path(data)
        size = path.stat().st_size
        if size == 0:
            raise empty_audio()
        if size > max_bytes:
            raise too_large(max_bytes)
        source: object = str(path)
    else:
        if len(data) == 0:
            raise empty_audio()
        if len(data) > max_bytes:
            raise too_large(max_bytes)
        source = io.BytesIO(bytes(data))

    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        raise not_audio() from None
    max_samples = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with container:
            if not container.streams.audio:
                raise not_audio()
            stream = container.streams.audio[0]
            fmt = container.format.name if container.format else "unknown"
            if container.duration is not None and container.duration / 1_000_000 > max_seconds + 1.0:
                raise too_long(max_seconds)
            resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            decode_errors = 0
            try:
                packets = container.demux(stream)
                for packet in packets:
                    try:
                        frames = packet.decode()
                    except av.error.InvalidDataError:
                        decode_errors += 1
                        if decode_errors > 20:
                            raise
                        continue
                    for frame in frames:
                        frame.pts = None  # let the resampler ignore timestamp gaps
                        for out in resampler.resample(frame):
                            arr = out.to_ndarray().reshape(-1)
                            chunks.append(arr)
                            total += len(arr)
                    if total > max_samples + SAMPLE_RATE // 2:
                        raise too_long(max_seconds)
                for out in resampler.resample(None):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += len(arr)
            except AudioError:
                raise
            except (av.error.FFmpegError, ValueError) as exc:
                if total == 0:
                    raise corrupt_audio() from exc
                # a broken tail: keep what decoded (a cut-off upload still has its start)
    except AudioError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        if total == 0:
            raise corrupt_audio() from exc
    if total == 0:
        # a header with no samples (e.g. a WAV cut off after 44 bytes) or no decodable frame
        raise empty_audio()
    if total > max_samples + SAMPLE_RATE // 2:
        raise too_long(max_seconds)
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    return DecodedAudio(samples=samples, format=fmt)
