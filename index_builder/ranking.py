"""The learned parts of retrieval, all fitted on dev data by `python -m bench.learn`:

- a query adapter: q' = normalise(q + q·W), a linear correction of the encoder's query vector
  towards the passages that answer it (the passages are left as the encoder made them, so an
  index never has to be rebuilt when the adapter is refitted);
- a re-ranker over features a CPU computes in microseconds per candidate (dense and BM25
  scores normalised per query, how much of the query's rare vocabulary a passage holds, title
  and keyword match, whether the passage is the
  section the question asks for, whether it has the shape of the answer asked for (a date, an
  amount, a phone number …: answer_types), length). Its score is a linear one fitted listwise
  plus a boosted tree ensemble's log-odds, the trees stored as arrays and walked with numpy;
- the confidence: a logistic function of the re-ranked top answer, deciding between answering
  and handing off, with its threshold in configuration (ASSISTANT_CONFIDENCE_THRESHOLD).

A model belongs to one encoder (its vectors are what the adapter corrects); an index built
with another encoder falls back to plain fusion (`fuse`).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import answer_types

# hybrid: the assistant's ranking (fusion, then the fitted re-ranker when there is a model for
# the encoder); fusion: the unlearned z-score fusion alone; dense and bm25: one side alone.
MODES = ("hybrid", "fusion", "dense", "bm25")
MODELS_DIR = Path(__file__).resolve().parent / "models"
FEATURES = ("dense", "dense_z", "bm25_z", "bm25_n", "coverage", "rare_coverage", "title_match",
            "section_cue", "log_len", "is_faq", "is_policy", *(f"type_{name}" for name in answer_types.NAMES))
CONF_FEATURES = ("top_score", "margin", "top_dense", "top_coverage")
THRESHOLD_ENV = "ASSISTANT_CONFIDENCE_THRESHOLD"


def zscore(x: np.ndarray) -> np.ndarray:
    """Scores relative to this query's candidates: fusion then needs no per-corpus weight,
    whatever the scale of one corpus's BM25 or the spread of its dense similarities."""
    if len(x) < 2:
        return np.zeros_like(x)
    return (x - x.mean()) / max(float(x.std()), 1e-6)


def fuse(dense: np.ndarray, bm25: np.ndarray, dense_weight: float = 0.6) -> np.ndarray:
    """Unlearned hybrid: z-scored dense and BM25 over the candidate set, mixed."""
    return dense_weight * zscore(dense) + (1 - dense_weight) * zscore(bm25)


def linear(features: np.ndarray, mean: np.ndarray, scale: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """The re-ranker's score: a linear function of standardised features."""
    return ((features - mean) / scale) @ weights + bias


def probability(weights: np.ndarray, bias: float, x: np.ndarray) -> float:
    """The confidence: a logistic function of the top answer's features."""
    z = float(np.dot(weights, x) + bias)
    return 1 / (1 + math.exp(-max(min(z, 50.0), -50.0)))


def adapt(q: np.ndarray, adapter: np.ndarray | None) -> np.ndarray:
    """The query adapter: q' = normalise(q + q·W); q itself without one."""
    if adapter is None:
        return q
    out = q + q @ adapter
    return (out / max(float(np.linalg.norm(out)), 1e-12)).astype(np.float32)


@dataclass
class Candidates:
    """What the re-ranker sees of one query: candidate passage indices and their features."""
    ids: np.ndarray
    features: np.ndarray  # (len(ids), len(FEATURES))

    def column(self, name: str) -> np.ndarray:
        return self.features[:, FEATURES.index(name)]


def candidate_features(dense: np.ndarray, bm25: np.ndarray, coverage: np.ndarray, rare: np.ndarray,
                       title: np.ndarray, cue: np.ndarray, length: np.ndarray, kinds: list[str],
                       types: np.ndarray) -> np.ndarray:
    """FEATURES, a row per candidate; `types`: (n, len(answer_types.NAMES)) answer_types.match."""
    bmax = float(bm25.max()) if len(bm25) else 0.0
    cols = [dense, zscore(dense), zscore(bm25), bm25 / bmax if bmax > 0 else bm25, coverage, rare, title,
            cue, np.log1p(length), np.array([k == "faq" for k in kinds], np.float32),
            np.array([k == "policy" for k in kinds], np.float32)]
    base = np.stack([np.asarray(c, np.float32) for c in cols], axis=1)
    n = len(base)
    return np.hstack([base, np.asarray(types, np.float32).reshape(n, len(answer_types.NAMES))])


def with_trees(linear_scores: np.ndarray, trees: "Trees | None", features: np.ndarray) -> np.ndarray:
    """The re-ranker's score: the linear score, plus the trees' log-odds when there are trees."""
    return linear_scores + trees.score(features) if trees is not None else linear_scores


@dataclass
class Trees:
    """A boosted tree ensemble (fitted by sklearn's HistGradientBoostingClassifier, see
    learning.fit_trees) as flat node arrays, scored with numpy: serving needs no pickle and no
    matching sklearn version. The score is the ensemble's log-odds."""
    roots: np.ndarray  # (n_trees,) index of each tree's first node
    feature: np.ndarray  # (n_nodes,) the feature a split node tests
    threshold: np.ndarray  # go left when feature <= threshold
    left: np.ndarray
    right: np.ndarray
    missing_left: np.ndarray  # where a NaN goes
    leaf: np.ndarray
    value: np.ndarray  # a leaf's contribution (learning rate applied)
    baseline: float

    FIELDS = ("roots", "feature", "threshold", "left", "right", "missing_left", "leaf", "value")

    def __post_init__(self) -> None:
        # Leaves point at themselves, so every tree takes the same number of steps and a step
        # needs no mask; a tree's depth bounds the steps.
        idx = np.arange(len(self.leaf))
        self._left = np.where(self.leaf, idx, self.left)
        self._right = np.where(self.leaf, idx, self.right)
        self._threshold = np.where(self.leaf, np.inf, self.threshold)
        self._feature = np.where(self.leaf, 0, self.feature)
        depth = np.zeros(len(idx), np.int64)
        for i in idx:  # parents come before their children in sklearn's node order
            if not self.leaf[i]:
                depth[self.left[i]] = depth[self.right[i]] = depth[i] + 1
        self._depth = int(depth.max()) if len(depth) else 0

    def score(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float64)
        n, width = x.shape
        missing = bool(np.isnan(x).any())  # NaN goes where sklearn sent missing values
        flat = x.ravel()
        offset = (np.arange(n) * width)[None, :]
        node = np.repeat(self.roots[:, None], n, axis=1)  # (trees, rows): every tree walked at once
        for _ in range(self._depth):
            v = flat[offset + self._feature[node]]
            go_left = v <= self._threshold[node]
            if missing:
                go_left = np.where(np.isnan(v), self.missing_left[node], go_left)
            node = np.where(go_left, self._left[node], self._right[node])
        return self.baseline + self.value[node].sum(axis=0)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, baseline=np.array([self.baseline]), **{k: getattr(self, k) for k in self.FIELDS})

    @classmethod
    def load(cls, path: Path) -> "Trees":
        with np.load(path) as z:
            return cls(**{k: z[k] for k in cls.FIELDS}, baseline=float(z["baseline"][0]))


@dataclass
class RankingModel:
    encoder: str
    encoder_version: str
    weights: np.ndarray  # re-ranker, over standardised FEATURES
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    conf_weights: np.ndarray  # confidence, over CONF_FEATURES
    conf_bias: float
    threshold: float
    adapter: np.ndarray | None = None  # (dim, dim)
    meta: dict = field(default_factory=dict)
    trees: Trees | None = None  # added to the linear score

    def adapt(self, q: np.ndarray) -> np.ndarray:
        return adapt(q, self.adapter)

    def scores(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ranking score, the linear score the confidence reads), the linear one computed once."""
        lin = self.linear_score(features)
        return with_trees(lin, self.trees, features), lin

    def linear_score(self, features: np.ndarray) -> np.ndarray:
        """What the confidence reads (its top score and margin): the trees order the candidates,
        but their log-odds, fitted on answerable questions only, are over-sure of short
        fragments that share a word with a passage ("一年多少钱" -> a 一年级 FAQ)."""
        return linear(features, self.mean, self.scale, self.weights, self.bias)

    def confidence(self, conf_features: np.ndarray) -> float:
        return probability(self.conf_weights, self.conf_bias, conf_features)

    # ----------------------------------------------------------------- files

    def save(self, folder: Path | None = None) -> Path:
        folder = folder or MODELS_DIR / self.encoder
        folder.mkdir(parents=True, exist_ok=True)
        def short(x: np.ndarray) -> list[float]:
            return [round(float(v), 6) for v in np.ravel(x)]
        data = {"encoder": self.encoder, "encoder_version": self.encoder_version, "features": list(FEATURES),
                "weights": short(self.weights), "bias": round(self.bias, 6),
                "mean": short(self.mean), "scale": short(self.scale),
                "conf_features": list(CONF_FEATURES), "conf_weights": short(self.conf_weights),
                "conf_bias": round(self.conf_bias, 6), "threshold": round(self.threshold, 4),
                "adapter": "adapter.npy" if self.adapter is not None else None,
                "trees": "trees.npz" if self.trees is not None else None, "meta": self.meta}
        (folder / "ranking.json").write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        if self.adapter is not None:
            np.save(folder / "adapter.npy", self.adapter.astype(np.float16))  # half the size; error < 1e-3
        if self.trees is not None:
            self.trees.save(folder / "trees.npz")
        return folder

    @classmethod
    def load(cls, folder: Path) -> "RankingModel":
        data = json.loads((folder / "ranking.json").read_text(encoding="utf-8"))
        if data["features"] != list(FEATURES) or data["conf_features"] != list(CONF_FEATURES):
            raise ValueError(f"{folder}: fitted for other features; refit with python -m bench.learn")
        adapter = np.load(folder / data["adapter"]).astype(np.float32) if data.get("adapter") else None
        arr = lambda k: np.asarray(data[k], dtype=np.float32)  # noqa: E731
        trees = Trees.load(folder / data["trees"]) if data.get("trees") else None
        return cls(data["encoder"], data["encoder_version"], arr("weights"), float(data["bias"]), arr("mean"),
                   arr("scale"), arr("conf_weights"), float(data["conf_bias"]), float(data["threshold"]),
                   adapter, data.get("meta", {}), trees)


def load_for(encoder_name: str, encoder_version: str) -> RankingModel | None:
    """The fitted model for this encoder, or None (plain fusion) when there is none, when it
    was fitted for another version of the encoder, or when ASSISTANT_RANKING=off."""
    if os.environ.get("ASSISTANT_RANKING", "").lower() in ("off", "0", "false"):
        return None
    folder = MODELS_DIR / encoder_name
    if not (folder / "ranking.json").exists():
        return None
    model = RankingModel.load(folder)
    return model if model.encoder_version == encoder_version else None


def threshold(model: RankingModel | None, default: float) -> float:
    """The answer/hand-off threshold: ASSISTANT_CONFIDENCE_THRESHOLD, else the fitted one."""
    raw = os.environ.get(THRESHOLD_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{THRESHOLD_ENV} must be a number between 0 and 1, not {raw!r}") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{THRESHOLD_ENV} must be between 0 and 1, not {value}")
        return value
    return model.threshold if model is not None else default
