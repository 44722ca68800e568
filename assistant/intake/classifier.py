"""First-level category of a citizen 诉求: TF-IDF over jieba words (with word bigrams) and
character 1–3-grams, a linear SVM with balanced class weights, and a softmax over its decision
values whose temperature is fitted on cross-validated decisions, so scores behave like
probabilities (they sum to 1 over all categories).

    model = IntakeModel.train(read_tickets("tickets.tsv"), source="tickets.tsv")
    model.save("build/models/intake")
    model = IntakeModel.load("build/models/intake")
    model.predict("楼下烧烤店油烟太大")   # [("环境保护", 0.83), ("商贸旅游", 0.05), ...]
    model.is_confident(scores)            # below `confident` the agent chooses the category

Only the first `MAX_CHARS` characters are featurised: the subject and first sentences carry the
category, and it keeps a prediction at a few milliseconds. A saved model is a pickle (joblib):
load only models you built yourself.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from scipy.optimize import minimize_scalar
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.svm import LinearSVC

from .data import file_sha256

FORMAT = 1
MAX_CHARS = 400
DEFAULT_CONFIDENT = 0.6
MODEL_FILE, MANIFEST_FILE = "model.joblib", "manifest.json"
BUILD_HINT = "python -m assistant.intake train --out {dir}"
_PUNCT = re.compile(r"[\W_]+")
_jieba = None
_jieba_lock = threading.Lock()


class IntakeModelError(RuntimeError):
    """A model folder is missing, incomplete or unreadable; the message names it and the fix."""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        super().__init__(f"{path}: {problem}; build it with: {BUILD_HINT.format(dir=path)}")


def _tokenizer():
    """A private jieba instance, so dictionaries other modules add do not change our tokens."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import logging

                import jieba

                jieba.setLogLevel(logging.WARNING)
                tok = jieba.Tokenizer()
                tok.initialize()
                _jieba = tok
    return _jieba


def normalize(text: str) -> str:
    """NFKC (full-width letters and digits), lower case, single spaces, the first MAX_CHARS."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return re.sub(r"\s+", " ", text).strip()[:MAX_CHARS]


def word_features(text: str) -> list[str]:
    """jieba words without punctuation, plus adjacent-word bigrams (module level: picklable)."""
    words = [w for w in _tokenizer().lcut(text) if not _PUNCT.fullmatch(w)]
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


@dataclass
class IntakeModel:
    words: TfidfVectorizer
    chars: TfidfVectorizer
    svm: LinearSVC
    temperature: float
    confident: float = DEFAULT_CONFIDENT
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.svm.classes_)

    # ------------------------------------------------------------ training

    @classmethod
    def train(cls, rows: Iterable[tuple[str, str]], *, source: Path | str | Sequence[Path | str] | None = None,
              confident: float = DEFAULT_CONFIDENT, C: float = 0.5) -> "IntakeModel":
        """Train on (text, category) rows; `source` (the file or files they came from) is recorded
        in the manifest with its SHA-256, so a model can be traced to its data."""
        rows = [(str(t), str(c)) for t, c in rows]
        labels = np.array([c for _, c in rows])
        cats, counts = np.unique(labels, return_counts=True)
        if len(cats) < 2:
            raise ValueError("training needs at least two categories")
        texts = [normalize(t) for t, _ in rows]
        min_df = 2 if len(rows) >= 1000 else 1  # a small table: every n-gram counts
        words = TfidfVectorizer(analyzer=word_features, min_df=min_df, sublinear_tf=True, max_features=100_000)
        chars = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=min_df, sublinear_tf=True,
                                max_features=150_000)
        X = sp.hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
        svm = LinearSVC(C=C, class_weight="balanced", random_state=0).fit(X, labels)
        temperature = _fit_temperature(X, labels, svm, C, int(counts.min()))
        manifest = {
            "format": FORMAT, "n": len(rows), "categories": [str(c) for c in cats],
            "counts": {str(c): int(k) for c, k in zip(cats, counts)},
            "trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "source": [{"path": str(p), "sha256": file_sha256(p)} for p in _paths(source)],
            "features": {"max_chars": MAX_CHARS, "words": len(words.vocabulary_), "chars": len(chars.vocabulary_)},
            "temperature": round(temperature, 5), "confident": confident, "sklearn": sklearn.__version__,
        }
        return cls(words, chars, svm, temperature, confident, manifest)

    # ------------------------------------------------------------ prediction

    def scores(self, text: str) -> np.ndarray:
        """Probability-like scores over `categories` (sum 1)."""
        norm = normalize(text)
        x = sp.hstack([self.words.transform([norm]), self.chars.transform([norm])]).tocsr()
        return _softmax(self.svm.decision_function(x).reshape(1, -1)[0], self.temperature, len(self.categories))

    def predict(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        """The top `k` categories with their scores, best first (the scores sum to at most 1)."""
        s = self.scores(text)
        order = np.argsort(-s)[:k]
        return [(self.categories[i], round(float(s[i]), 4)) for i in order]

    def is_confident(self, ranked: Sequence[tuple[str, float]]) -> bool:
        return bool(ranked) and ranked[0][1] >= self.confident

    # ------------------------------------------------------------ persistence

    def save(self, folder: Path | str) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        joblib.dump({"format": FORMAT, "words": self.words, "chars": self.chars, "svm": self.svm,
                     "temperature": self.temperature}, folder / MODEL_FILE)
        manifest = dict(self.manifest, confident=self.confident, model_sha256=file_sha256(folder / MODEL_FILE))
        (folder / MANIFEST_FILE).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        self.manifest = manifest
        return folder

    @classmethod
    def load(cls, folder: Path | str) -> "IntakeModel":
        folder = Path(folder)
        model_path, manifest_path = folder / MODEL_FILE, folder / MANIFEST_FILE
        for p in (manifest_path, model_path):
            if not p.is_file():
                raise IntakeModelError(folder, f"no intake model ({p.name} is missing)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntakeModelError(folder, f"{MANIFEST_FILE} is unreadable ({exc})") from None
        if manifest.get("format") != FORMAT:
            raise IntakeModelError(folder, f"model format {manifest.get('format')!r}, expected {FORMAT}")
        if manifest.get("model_sha256") and manifest["model_sha256"] != file_sha256(model_path):
            raise IntakeModelError(folder, f"{MODEL_FILE} does not match its manifest (corrupt or replaced)")
        try:
            blob = joblib.load(model_path)
            model = cls(blob["words"], blob["chars"], blob["svm"], float(blob["temperature"]),
                        float(manifest.get("confident", DEFAULT_CONFIDENT)), manifest)
        except Exception as exc:  # any unpickling failure is the same problem for the caller
            raise IntakeModelError(folder, f"{MODEL_FILE} is unreadable ({type(exc).__name__}: {exc})") from None
        if list(model.categories) != list(manifest.get("categories", [])):
            raise IntakeModelError(folder, "the model's categories differ from its manifest")
        return model


def _paths(source: Path | str | Sequence[Path | str] | None) -> list[Path]:
    if source is None:
        return []
    return [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]


def _softmax(decision: np.ndarray, temperature: float, n_classes: int) -> np.ndarray:
    if n_classes == 2:  # a binary SVM gives one decision value for the second class
        decision = np.array([-decision[0], decision[0]]) / 2
    z = decision / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def _fit_temperature(X: sp.csr_matrix, labels: np.ndarray, svm: LinearSVC, C: float, smallest: int) -> float:
    """The softmax temperature minimising the log loss of cross-validated decision values."""
    folds = min(3, smallest)
    if folds < 2:
        return 0.2  # a category with one example: no held-out decisions, a typical value
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    D = cross_val_predict(LinearSVC(C=C, class_weight="balanced", random_state=0), X, labels, cv=cv, method="decision_function")
    if D.ndim == 1:
        D = np.stack([-D, D], axis=1) / 2
    truth = np.searchsorted(svm.classes_, labels)

    def nll(t: float) -> float:
        z = D / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(truth)), truth].mean())

    return float(minimize_scalar(nll, bounds=(0.02, 5.0), method="bounded").x)
