"""Fitting the ranking model (ranking.RankingModel) on dev questions, and the cross-validation
that reports it honestly. Used by `python -m bench.learn`; nothing here runs while serving.

Folds are grouped by the answer a question expects: two questions with the same answer land
in the same fold, so a fold's answers were never a positive while fitting on the others.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from . import ranking

ADAPTER_L2 = 1e-2  # pulls W towards zero, i.e. towards the encoder as it is
ADAPTER_TEMPERATURE = 0.05
ADAPTER_EPOCHS = 100
ADAPTER_LR = 2e-3
INNER_FOLDS = 3  # nested folds for the re-ranker's candidates (each costs an adapter fit)


def grouped_folds(groups: list[str], k: int = 5, seed: int = 0) -> np.ndarray:
    """A fold number per item; items with the same group share a fold. Deterministic: the
    fold of a group comes from a hash of it, so adding questions does not reshuffle the rest."""
    def fold(g: str) -> int:
        return int(hashlib.sha1(f"{seed}\x1f{g}".encode()).hexdigest(), 16) % k
    return np.array([fold(g) for g in groups], dtype=np.int64)


@dataclass
class AdapterSet:
    """Dev questions of one corpus: raw query vectors, the corpus's passage vectors and, per
    question, the indices of the passages that answer it."""
    queries: np.ndarray  # (n, dim)
    passages: np.ndarray  # (N, dim)
    positives: list[np.ndarray]


def fit_adapter(sets: list[AdapterSet], l2: float = ADAPTER_L2, temperature: float = ADAPTER_TEMPERATURE,
                epochs: int = ADAPTER_EPOCHS, lr: float = ADAPTER_LR, seed: int = 0) -> np.ndarray:
    """W minimising the softmax loss of each question's answer among all passages of its own
    corpus (a question answered by several passages counts them together), plus l2·|W|²."""
    import torch

    torch.manual_seed(seed)
    dim = sets[0].queries.shape[1]
    w = torch.zeros(dim, dim, requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    prepared = []
    for s in sets:
        if not len(s.queries):
            continue
        mask = torch.zeros(len(s.queries), len(s.passages), dtype=torch.bool)
        for i, pos in enumerate(s.positives):
            mask[i, torch.as_tensor(pos, dtype=torch.long)] = True
        prepared.append((torch.as_tensor(s.queries), torch.as_tensor(s.passages), mask))
    for _ in range(epochs):
        loss = l2 * (w ** 2).sum()
        for q, p, mask in prepared:
            qa = q + q @ w
            qa = qa / qa.norm(dim=1, keepdim=True)
            logits = qa @ p.T / temperature
            loss = loss + (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~mask, -1e9), 1)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach().numpy().astype(np.float32)


@dataclass
class Reranker:
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def score(self, features: np.ndarray) -> np.ndarray:
        return ranking.linear(features, self.mean, self.scale, self.weights, self.bias)


def fit_reranker(features: list[np.ndarray], labels: list[np.ndarray], l2: float = 1e-3,
                 epochs: int = 300, lr: float = 0.05) -> Reranker:
    """Listwise: a linear score whose softmax over each question's candidates puts its mass on
    the passages of the right document (every question weighs the same)."""
    import torch

    keep = [i for i, y in enumerate(labels) if y.any()]
    X_all = np.vstack([features[i] for i in keep])
    mean, scale = X_all.mean(0), np.maximum(X_all.std(0), 1e-6)
    width = max(len(features[i]) for i in keep)
    X = np.zeros((len(keep), width, X_all.shape[1]), np.float32)
    valid = np.zeros((len(keep), width), bool)
    pos = np.zeros((len(keep), width), bool)
    for row, i in enumerate(keep):
        n = len(features[i])
        X[row, :n] = (features[i] - mean) / scale
        valid[row, :n] = True
        pos[row, :n] = labels[i].astype(bool)
    X, valid, pos = torch.as_tensor(X), torch.as_tensor(valid), torch.as_tensor(pos)
    w = torch.zeros(X.shape[2], requires_grad=True)
    opt = torch.optim.Adam([w], lr=lr)
    for _ in range(epochs):
        z = X @ w
        loss = (torch.logsumexp(z.masked_fill(~valid, -1e9), 1) - torch.logsumexp(z.masked_fill(~pos, -1e9), 1)).mean()
        loss = loss + l2 * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return Reranker(w.detach().numpy().astype(np.float32), 0.0, mean.astype(np.float32), scale.astype(np.float32))


@dataclass
class Ranker:
    """The served re-ranker: the listwise linear score plus the trees' log-odds. Out of fold on
    the same candidates (recall@1 / @5): guides 0.865 / 0.956 linear, 0.875 / 0.983 trees,
    0.889 / 0.987 both; NCP 0.191 / 0.351, 0.186 / 0.362, 0.200 / 0.353. Trees alone, fitted on
    answerable questions only, were sure of more out-of-scope questions (81% handed off
    against 89% at the same share answered)."""
    linear: Reranker
    trees: ranking.Trees | None

    def scores(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the ranking score, the linear score), as ranking.RankingModel.scores."""
        lin = self.linear.score(features)
        return ranking.with_trees(lin, self.trees, features), lin


def fit_ranker(features: list[np.ndarray], labels: list[np.ndarray]) -> Ranker:
    return Ranker(fit_reranker(features, labels), fit_trees(features, labels))


# Chosen out of fold among four settings (100-300 trees, 7-31 leaves), measured with the
# features then under test: this one was best or tied on both sets. No early stopping: its
# validation split is random, and a refit must be repeatable.
TREES = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 50}


def fit_trees(features: list[np.ndarray], labels: list[np.ndarray], **params) -> ranking.Trees:
    """Boosted trees on each candidate's "is it the right document": they can learn what a
    linear score cannot (a shape match matters only when the question asks for that shape;
    BM25 counts only when the dense score is close). Pointwise, so the same candidates the
    linear re-ranker sees; scored in numpy (ranking.Trees)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    keep = [i for i, y in enumerate(labels) if y.any()]
    x = np.vstack([features[i] for i in keep]).astype(np.float64)
    y = np.concatenate([labels[i] for i in keep])
    model = HistGradientBoostingClassifier(early_stopping=False, random_state=0, **{**TREES, **params}).fit(x, y)
    return export_trees(model)


def export_trees(model) -> ranking.Trees:
    """The fitted sklearn ensemble as flat arrays, node indices made global."""
    nodes = [p[0].nodes for p in model._predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise ValueError("categorical splits are not exported")
    offsets = np.cumsum([0] + [len(n) for n in nodes[:-1]])
    cat = np.concatenate
    return ranking.Trees(
        roots=offsets.astype(np.int64),
        feature=cat([n["feature_idx"] for n in nodes]).astype(np.int64),
        threshold=cat([n["num_threshold"] for n in nodes]).astype(np.float64),
        left=cat([n["left"].astype(np.int64) + o for n, o in zip(nodes, offsets)]),
        right=cat([n["right"].astype(np.int64) + o for n, o in zip(nodes, offsets)]),
        missing_left=cat([n["missing_go_to_left"] for n in nodes]).astype(bool),
        leaf=cat([n["is_leaf"] for n in nodes]).astype(bool),
        value=cat([n["value"] for n in nodes]).astype(np.float64),
        baseline=float(np.ravel(model._baseline_prediction)[0]))


def fit_confidence(features: np.ndarray, right: np.ndarray, C: float = 1.0) -> tuple[np.ndarray, float]:
    """Logistic regression of "the top document is right" (out-of-scope questions: never)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=2000).fit(features, right.astype(int))
    return model.coef_[0].astype(np.float32), float(model.intercept_[0])


def confidence_table(conf: np.ndarray, right: np.ndarray, answerable: np.ndarray, threshold: float) -> dict:
    """At one threshold: share of answerable questions answered, share of answered ones whose
    top document is right, share of out-of-scope questions handed off."""
    answered = conf >= threshold
    a, oos = answerable, ~answerable
    return {"threshold": round(threshold, 3),
            "answered": round(float(answered[a].mean()), 3) if a.any() else None,
            "right_when_answered": round(float(right[answered & a].mean()), 3) if (answered & a).any() else None,
            "oos_handed_off": round(float((~answered[oos]).mean()), 3) if oos.any() else None}


def choose_threshold(conf: np.ndarray, right: np.ndarray, answerable: np.ndarray,
                     answered_min: float = 0.85, precision: float = 0.9) -> float:
    """The highest threshold (the most out-of-scope questions handed off) at which at least
    `answered_min` of the answerable questions are still answered and at least `precision` of
    those answered have the right top document. When no threshold meets both: the lowest at
    which `precision` holds."""
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    ok = []
    for t in grid:
        answered = (conf >= t) & answerable
        if answered.any() and answered.sum() >= answered_min * answerable.sum() and right[answered].mean() >= precision:
            ok.append(float(t))
    if ok:
        return max(ok)
    for t in grid:
        answered = (conf >= t) & answerable
        if answered.any() and right[answered].mean() >= precision:
            return float(t)
    return 0.95


def model_from(reranker: "Ranker", conf: tuple[np.ndarray, float], threshold: float,
               adapter: np.ndarray | None, encoder: str, encoder_version: str, meta: dict) -> ranking.RankingModel:
    lin = reranker.linear
    return ranking.RankingModel(encoder, encoder_version, lin.weights, lin.bias, lin.mean, lin.scale,
                                conf[0], conf[1], threshold, adapter, meta, reranker.trees)
