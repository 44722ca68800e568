"""Voice gateway (aiohttp): audio in, transcript and the assistant's replies out.

    POST /api/voice   audio as multipart/form-data (field "audio", optional field "sender") or as
                      the raw request body (?sender=... in the query); wav, mp3, webm/opus, ogg,
                      m4a, flac. Transcribes, forwards the text to Rasa's REST webhook
                      ({rasa_url}/webhooks/rest/webhook, {"sender", "message"}) and returns
                      {"sender", "transcript", "query", "replies", "timings", "audio"}.
    POST /api/voice/stream?call=ID[&end=1]
                      a call's audio in pieces, as raw 16-bit little-endian PCM, 16 kHz mono (at
                      most 10 s a piece); returns the running transcript {"call", "final" (new
                      final text), "text" (all final text), "tentative", "seconds"}. Windows
                      overlap and are stitched on word times (voice/streaming.py); end=1 decodes
                      the rest and forgets the call. A call idle for 5 minutes is forgotten.
    GET  /healthz     {"status", "model_loaded", "rasa": {"url", "reachable"}, "queue": {...}}

Errors are JSON {"error": <code>, "message": <Chinese text>} with a 4xx/5xx status:
    400 empty_audio, missing_audio   413 audio_too_large (> max_bytes), audio_too_long (> 60 s)
    415 not_audio                    422 corrupt_audio, no_speech (silence: nothing transcribed)
    502 assistant_error, 503 assistant_unavailable (both still carry the transcript)
    503 busy (with Retry-After) when every worker is busy and the waiting queue is full.

Transcription runs in a thread pool sized to the cores (CTranslate2 releases the GIL), so the
event loop never blocks. Transcripts are not logged (they may hold personal data).
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

import aiohttp
from aiohttp import web

import numpy as np

from .audio import MAX_BYTES, SAMPLE_RATE, AudioError, empty_audio, too_large
from .streaming import CallStream, StreamConfig, StreamUpdate
from .transcriber import Transcriber, TranscriberConfig, Transcript

log = logging.getLogger("voice.gateway")

HOTLINE = "12345"
MSG_UNAVAILABLE = f"抱歉，智能助手暂时无法回复。您的话已识别，请稍后再试，或拨打{HOTLINE}市民服务热线咨询。"
MSG_ASSISTANT_ERROR = f"抱歉，智能助手这次没能给出回复，请稍后再试，或拨打{HOTLINE}市民服务热线咨询。"
MSG_BUSY = "现在使用的人较多，请稍等几秒再说一遍。"
MSG_NO_SPEECH = "没有听清您说的话，请靠近话筒再说一遍。"
MSG_MISSING = '没有找到录音：请把音频放在表单字段 "audio" 中，或直接作为请求体发送。'
MSG_STREAMS_FULL = "同时转写的通话已达上限，请稍后再试。"
MSG_BAD_PIECE = "通话音频格式不正确：需要 16 kHz 单声道 16 位 PCM，每段不超过 10 秒。"
MAX_SENDER_LEN = 128
MAX_PIECE_BYTES = 10 * SAMPLE_RATE * 2


@dataclass
class GatewayConfig:
    rasa_url: str = "http://localhost:5005"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    max_queue: int = 4  # requests waiting for a worker beyond those running
    max_bytes: int = MAX_BYTES
    rasa_timeout: float = 15.0
    health_timeout: float = 2.0
    cors_origin: Optional[str] = None  # e.g. "*" or "https://kiosk.example" for browser clients
    max_streams: int = 8  # calls transcribed at the same time
    stream_idle_s: float = 300.0
    stream: StreamConfig = field(default_factory=StreamConfig)


class QueueFull(Exception):
    def __init__(self, retry_after: int):
        super().__init__(f"busy, retry after {retry_after} s")
        self.retry_after = retry_after


class TranscriptionPool:
    """A thread pool with a bound on running + waiting jobs."""

    def __init__(self, transcriber: Transcriber, workers: int, max_queue: int):
        self.transcriber = transcriber
        self.workers = max(1, workers)
        self.capacity = self.workers + max(0, max_queue)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="whisper")
        self.in_flight = 0
        self.avg_job_s = 1.5  # running estimate, for Retry-After

    def retry_after(self) -> int:
        return max(1, math.ceil(self.avg_job_s * self.in_flight / self.workers))

    async def transcribe(self, data: bytes) -> tuple[Transcript, float]:
        """Returns the transcript and the seconds spent waiting for a worker."""
        return await self.run(lambda: self.transcriber.transcribe(data))

    async def run(self, work):
        """``work()`` on a worker thread; returns its result and the seconds spent waiting."""
        if self.in_flight >= self.capacity:
            raise QueueFull(self.retry_after())
        self.in_flight += 1
        queued = time.perf_counter()
        started: list[float] = []

        def job():
            started.append(time.perf_counter())
            return work()

        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self.executor, job)
            took = time.perf_counter() - started[0]
            self.avg_job_s = 0.8 * self.avg_job_s + 0.2 * took
            return result, started[0] - queued
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _error(status: int, code: str, message: str, headers: dict | None = None, **extra) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status, headers=headers,
                             dumps=_dumps)


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)


async def _read_raw(request: web.Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in request.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > limit:
            raise too_large(limit)
    return bytes(buf)


class VoiceGateway:
    def __init__(self, config: GatewayConfig, transcriber: Transcriber | None = None,
                 transcriber_config: TranscriberConfig | None = None):
        self.config = config
        self.transcriber = transcriber
        self.transcriber_config = transcriber_config
        self.pool: TranscriptionPool | None = None
        self.session: aiohttp.ClientSession | None = None
        self.streams: dict[str, tuple[CallStream, asyncio.Lock, float]] = {}

    # -- app ---------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        middlewares = [self._cors] if self.config.cors_origin else []
        # the body is streamed with our own limit; client_max_size only guards request.read()
        app = web.Application(client_max_size=self.config.max_bytes + 64 * 1024, middlewares=middlewares)
        app.router.add_post("/api/voice", self.handle_voice)
        app.router.add_post("/api/voice/stream", self.handle_stream)
        app.router.add_get("/healthz", self.handle_health)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app: web.Application) -> None:
        if self.transcriber is None:
            loop = asyncio.get_running_loop()
            self.transcriber = await loop.run_in_executor(
                None, lambda: Transcriber(self.transcriber_config or TranscriberConfig()))
            await loop.run_in_executor(None, self.transcriber.warm_up)
        self.pool = TranscriptionPool(self.transcriber, self.config.workers, self.config.max_queue)
        self.session = aiohttp.ClientSession()

    async def _cleanup(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()
        if self.pool is not None:
            self.pool.shutdown()

    @web.middleware
    async def _cors(self, request: web.Request, handler):
        if request.method == "OPTIONS":
            resp = web.Response(status=204)
        else:
            resp = await handler(request)
        resp.headers["Access-Control-Allow-Origin"] = self.config.cors_origin
        resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        resp.headers["Access-Control-Allow-Headers"] = "Content-Type"
        return resp

    # -- handlers ----------------------------------------------------------------------------

    async def handle_voice(self, request: web.Request) -> web.Response:
        t0 = time.perf_counter()
        limit = self.config.max_bytes
        if request.content_length is not None and request.content_length > limit + 64 * 1024:
            return _error(413, "audio_too_large", too_large(limit).message)
        sender = request.query.get("sender")
        try:
            if request.content_type.startswith("multipart/"):
                data, form_sender = await self._read_multipart(request, limit)
                sender = form_sender or sender
            elif request.content_type == "application/x-www-form-urlencoded":
                data = None  # a form without a file: no audio can be in it
            else:
                data = await _read_raw(request, limit)
        except AudioError as exc:
            return _error(exc.status, exc.code, exc.message)
        except (ValueError, aiohttp.ClientPayloadError, asyncio.IncompleteReadError):
            return _error(400, "bad_request", "请求格式不正确，无法读取录音。")
        if data is None:
            return _error(400, "missing_audio", MSG_MISSING)
        if not data:
            exc = empty_audio()
            return _error(exc.status, exc.code, exc.message)
        sender = (sender or "").strip()[:MAX_SENDER_LEN] or f"voice-{uuid.uuid4().hex[:12]}"
        t_read = time.perf_counter()

        try:
            result, queued_s = await self.pool.transcribe(data)
        except QueueFull as exc:
            return _error(503, "busy", MSG_BUSY, headers={"Retry-After": str(exc.retry_after)},
                          retry_after=exc.retry_after)
        except AudioError as exc:
            return _error(exc.status, exc.code, exc.message)
        t_asr = time.perf_counter()
        timings = {
            "receive_ms": _ms(t_read - t0),
            "queue_ms": _ms(queued_s),
            **result.timings,
        }
        body = {
            "sender": sender,
            "transcript": result.text,
            "query": result.query,
            "replies": [],
            "timings": timings,
            "audio": {"duration_s": result.duration, "speech_s": result.speech_duration},
        }
        if not result.text:
            timings["total_ms"] = _ms(time.perf_counter() - t0)
            return web.json_response({"error": "no_speech", "message": MSG_NO_SPEECH, **body}, status=422,
                                     dumps=_dumps)

        # ?audience=agent: the 12345 copilot (the web server passes it only for signed-in agents)
        agent = request.query.get("audience") == "agent"
        status, replies, error = await self._ask_rasa(sender, result.query or result.text, agent)
        t_rasa = time.perf_counter()
        timings["rasa_ms"] = _ms(t_rasa - t_asr)
        timings["total_ms"] = _ms(t_rasa - t0)
        body["replies"] = replies
        if error:
            code, message = error
            return web.json_response({"error": code, "message": message, **body}, status=status, dumps=_dumps)
        log.info("voice turn: %.1f s audio, asr %.0f ms, rasa %.0f ms", result.duration,
                 timings.get("transcribe_ms", 0), timings["rasa_ms"])
        return web.json_response(body, dumps=_dumps)

    async def handle_stream(self, request: web.Request) -> web.Response:
        call = (request.query.get("call") or "").strip()[:MAX_SENDER_LEN]
        if not call:
            return _error(400, "missing_call", "缺少通话编号（call）。")
        try:
            data = await _read_raw(request, MAX_PIECE_BYTES)
        except AudioError:
            return _error(413, "piece_too_large", MSG_BAD_PIECE)
        if len(data) % 2:
            return _error(400, "bad_piece", MSG_BAD_PIECE)
        entry = self._stream(call)
        if entry is None:
            return _error(503, "streams_full", MSG_STREAMS_FULL, headers={"Retry-After": "10"})
        stream, lock, _ = entry
        samples = np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
        end = request.query.get("end") in ("1", "true")
        async with lock:  # pieces of one call in order
            try:
                update, _queued = await self.pool.run(lambda: self._feed(stream, samples, end))
            except QueueFull as exc:
                return _error(503, "busy", MSG_BUSY, headers={"Retry-After": str(exc.retry_after)},
                              retry_after=exc.retry_after)
            except ValueError as exc:  # longer than a call may be
                self.streams.pop(call, None)
                return _error(413, "call_too_long", f"通话录音过长：{exc}")
        if end:
            self.streams.pop(call, None)
        else:
            self.streams[call] = (stream, lock, time.monotonic())
        return web.json_response({"call": call, "final": update.final, "text": update.text,
                                  "tentative": update.tentative, "seconds": update.seconds}, dumps=_dumps)

    @staticmethod
    def _feed(stream: CallStream, samples: np.ndarray, end: bool) -> StreamUpdate:
        update = stream.feed(samples)
        if not end:
            return update
        last = stream.finish()
        return StreamUpdate(final=update.final + last.final, text=last.text, tentative="", seconds=last.seconds)

    def _stream(self, call: str) -> tuple[CallStream, asyncio.Lock, float] | None:
        """The call's stream, a new one, or None when too many calls are open."""
        now = time.monotonic()
        for key, (_s, lock, used) in list(self.streams.items()):
            if now - used > self.config.stream_idle_s and not lock.locked():
                del self.streams[key]
        if call in self.streams:
            return self.streams[call]
        if len(self.streams) >= self.config.max_streams:
            return None
        entry = (CallStream(self.transcriber, self.config.stream), asyncio.Lock(), now)
        self.streams[call] = entry
        return entry

    async def handle_health(self, request: web.Request) -> web.Response:
        reachable, detail = await self._rasa_reachable()
        model_loaded = self.transcriber is not None and getattr(self.transcriber, "model", None) is not None
        pool = self.pool
        body = {
            "status": "ok" if model_loaded and reachable else "degraded",
            "model_loaded": model_loaded,
            "rasa": {"url": self.config.rasa_url, "reachable": reachable, "detail": detail},
            "queue": {"in_flight": pool.in_flight if pool else 0, "capacity": pool.capacity if pool else 0,
                      "workers": pool.workers if pool else 0},
        }
        return web.json_response(body, status=200 if model_loaded else 503)

    # -- helpers -----------------------------------------------------------------------------

    async def _read_multipart(self, request: web.Request, limit: int) -> tuple[bytes | None, str | None]:
        reader = await request.multipart()
        data: bytes | None = None
        sender: str | None = None
        while True:
            part = await reader.next()
            if part is None:
                break
            if part.name == "audio" and data is None:
                buf = bytearray()
                while True:
                    chunk = await part.read_chunk(64 * 1024)
                    if not chunk:
                        break
                    buf += chunk
                    if len(buf) > limit:
                        raise too_large(limit)
                data = bytes(buf)
            elif part.name == "sender":
                raw = await part.read_chunk(MAX_SENDER_LEN * 4)
                sender = raw.decode("utf-8", "replace").strip()
                await part.release()
            else:
                await part.release()
        return data, sender

    async def _ask_rasa(self, sender: str, message: str,
                        agent: bool = False) -> tuple[int, list, tuple[str, str] | None]:
        url = self.config.rasa_url.rstrip("/") + "/webhooks/rest/webhook"
        payload: dict = {"sender": sender, "message": message}
        if agent:
            payload["metadata"] = {"audience": "agent"}
        try:
            async with self.session.post(url, json=payload,
                                         timeout=aiohttp.ClientTimeout(total=self.config.rasa_timeout)) as resp:
                if resp.status >= 400:
                    log.warning("rasa answered HTTP %s", resp.status)
                    return 502, [], ("assistant_error", MSG_ASSISTANT_ERROR)
                replies = await resp.json(content_type=None)
        except (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError) as exc:
            log.warning("rasa unreachable at %s: %s", url, type(exc).__name__)
            return 503, [], ("assistant_unavailable", MSG_UNAVAILABLE)
        except (aiohttp.ContentTypeError, ValueError):
            return 502, [], ("assistant_error", MSG_ASSISTANT_ERROR)
        if not isinstance(replies, list):
            return 502, [], ("assistant_error", MSG_ASSISTANT_ERROR)
        return 200, replies, None

    async def _rasa_reachable(self) -> tuple[bool, str]:
        try:
            async with self.session.get(self.config.rasa_url.rstrip("/") + "/",
                                        timeout=aiohttp.ClientTimeout(total=self.config.health_timeout)) as resp:
                return resp.status < 500, f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return False, type(exc).__name__


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def make_app(config: GatewayConfig | None = None, transcriber: Transcriber | None = None,
             transcriber_config: TranscriberConfig | None = None) -> web.Application:
    """The gateway's aiohttp application; the model is loaded at startup unless given."""
    return VoiceGateway(config or GatewayConfig(), transcriber, transcriber_config).make_app()


def serve(host: str, port: int, config: GatewayConfig, transcriber_config: TranscriberConfig | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(make_app(config, transcriber_config=transcriber_config), host=host, port=port,
                access_log=None)
