"""Fit the ranking model (query adapter, re-ranker, confidence) on dev data, report it out of
fold, and write it to index_builder/models/<encoder>/.

Dev data only: the guide questions (knowledge_base/eval/questions.tsv) over the bundled
index with the out-of-scope questions (out_of_scope.txt, out_of_scope_near.txt); the same
index's questions told as situations (questions_situations.tsv) with out-of-scope ones told
the same way (out_of_scope_situations.txt); the 1,000 NCP dev questions over the whole
4,677-answer NCP corpus; the policy questions (bench/data/policy_questions.tsv) over the 40
Shanghai documents served beside the bundled base, so that the fit sees questions a policy
document answers and not only guide questions. 5 folds grouped by expected answer (for the
policy questions: by document): every figure
printed for "oof" comes from a model that never saw that question nor its answer as a
positive. questions_citizen.tsv is never fitted on; it is scored by the final model only.

    python -m bench.learn [--folds 5] [--no-write]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index_builder import learning, ranking
from index_builder.evaluate import first_hit_rank, load_queries, metrics
from index_builder.retriever import Query, Retriever

from .corpora import (GUIDES_HELDOUT, GUIDES_QUERIES, NCP_QUERIES, OUT_OF_SCOPE, OUT_OF_SCOPE_SITUATIONS,
                      POLICY_QUESTIONS, SITUATIONS, guide_index, ncp_index, out_of_scope, policy_index,
                      policy_questions)
from .policies import locator_keys, passage_matches

ROOT = Path(__file__).resolve().parent.parent
ADAPTER_SETS = ("guides", "situations", "ncp", "policies")  # the adapter learns from every set's questions
# the confidence and its threshold are fitted on the assistant's own corpus, asked both ways
CONFIDENCE_SETS = ("guides", "situations")
CACHE = ROOT / "build" / "bench" / "cache"


@dataclass
class DevSet:
    name: str
    retriever: Retriever
    queries: list[Query]  # prepared with raw vectors
    expected: list[frozenset[str]]  # empty: out of scope
    # the passages that answer each question, where that is finer than its whole document
    # (the article of a policy); None: every passage of an expected document
    answering: list[frozenset[int] | None] | None = None

    def groups(self) -> list[str]:
        """What folds are grouped by: the expected answer (each out-of-scope question alone)."""
        return ["|".join(sorted(e)) if e else f"oos:{q.text}" for q, e in zip(self.queries, self.expected)]

    def fine(self, i: int) -> frozenset[int] | None:
        return self.answering[i] if self.answering else None

    def positives(self, i: int) -> np.ndarray:
        fine = self.fine(i)
        return np.array(sorted(fine) if fine else [j for d in self.expected[i] for j in self.retriever._by_doc.get(d, [])],
                        dtype=np.int64)

    def labels(self, i: int, ids: np.ndarray) -> np.ndarray:
        fine = self.fine(i)
        if fine:
            return np.array([j in fine for j in ids.tolist()], dtype=np.int64)
        return np.array([self.retriever.passages[j].doc_id in self.expected[i] for j in ids], dtype=np.int64)


def prepared(r: Retriever, texts: list[str], tag: str) -> list[Query]:
    """Queries as the retriever prepares them; raw vectors cached by text and encoder."""
    CACHE.mkdir(parents=True, exist_ok=True)
    # the query path is part of the key: corrected questions are embedded differently
    key = hashlib.sha1(("\x1f".join(texts) + r.encoder.version + f"|correction={r.query_correction}").encode()
                       ).hexdigest()[:16]
    path = CACHE / f"{tag}-{key}.npy"
    base = [r.prepare(t, embed=False) for t in texts]
    if path.exists():
        vecs = np.load(path)
    else:
        vecs = np.vstack([r.prepare(t).vector if q.tokens or q.text else np.zeros(r.encoder.dim, np.float32)
                          for t, q in zip(texts, base)])
        np.save(path, vecs)
    return [Query(q.text, q.truncated, q.tokens, v) for q, v in zip(base, vecs)]


def dev_sets() -> tuple[DevSet, ...]:
    kb = Retriever(guide_index(), model=None)
    ncp = Retriever(ncp_index(), model=None)
    out = []
    for name, questions, oos_paths in (("guides", GUIDES_QUERIES, OUT_OF_SCOPE),
                                       ("situations", SITUATIONS, (OUT_OF_SCOPE_SITUATIONS,))):
        qs, oos = load_queries(questions), out_of_scope(oos_paths)
        out.append(DevSet(name, kb, prepared(kb, [q.query for q in qs] + oos, name),
                          [q.expected for q in qs] + [frozenset()] * len(oos)))
    nq = load_queries(NCP_QUERIES)
    out.append(DevSet("ncp", ncp, prepared(ncp, [q.query for q in nq], "ncp"), [q.expected for q in nq]))
    # Without these every positive in the fit is a guide or an FAQ row, and questions told as
    # situations learned to prefer a guide over the policy document that answers them.
    policies = Retriever(policy_index(), model=None)
    pq = policy_questions()
    out.append(DevSet("policies", policies, prepared(policies, [q["question"] for q in pq], "policies"),
                      [frozenset([q["doc_id"]]) for q in pq], [answering(policies, q) for q in pq]))
    return tuple(out)


def answering(r: Retriever, question: dict[str, str]) -> frozenset[int] | None:
    """The passages of a policy question's document that hold its article or heading (a
    document's passages are not all answers, as a guide's are); None when none is found."""
    keys = locator_keys(question["locator"])
    found = frozenset(j for j in r._by_doc.get(question["doc_id"], []) if passage_matches(r.passages[j].meta, keys))
    return found or None


def candidates(s: DevSet, adapter: np.ndarray | None, which: np.ndarray | None = None) -> dict:
    """Per question (all, or those in `which`): (candidate ids, features, labels, dense)."""
    out = {}
    for i in (range(len(s.queries)) if which is None else which.tolist()):
        q = s.queries[i]
        ids, d, b = s.retriever.gather(q.tokens, ranking.adapt(q.vector, adapter))
        if len(ids):
            feats = s.retriever.candidates(q, ids, d, b).features
            out[i] = (ids, feats, s.labels(i, ids), d)
    return out


def ranked(s: DevSet, i: int, cand, scores: np.ndarray, judged: np.ndarray | None = None
           ) -> tuple[int | None, np.ndarray, bool]:
    """Rank of the expected doc, the confidence features (read from `judged`, the served
    model's linear score, else from `scores`), whether the top passage is right (from its
    document; for a policy question, from its article)."""
    ids, _, labels, d = cand
    order = np.argsort(-scores, kind="stable")
    docs = [s.retriever.passages[ids[j]].doc_id for j in order]
    conf = s.retriever.confidence_features(s.queries[i], ids, scores if judged is None else judged, d, order,
                                           "hybrid")
    return (first_hit_rank(docs, s.expected[i]) if s.expected[i] else None), conf, bool(labels[order[0]])


def passage_rank(s: DevSet, i: int, ids: np.ndarray, scores: np.ndarray) -> int | None:
    """Rank of the first passage that answers question i (its article), for sets that know it."""
    fine = s.fine(i)
    if not fine:
        return None
    hits = [n for n, j in enumerate(np.argsort(-scores, kind="stable"), 1) if int(ids[j]) in fine]
    return hits[0] if hits else None


def fit_adapter_on(sets: tuple[DevSet, ...], rows: dict[str, np.ndarray]) -> np.ndarray:
    """The adapter fitted on the given questions of each set (out-of-scope ones carry no answer)."""
    return learning.fit_adapter([learning.AdapterSet(
        np.vstack([s.queries[i].vector for i in rows[s.name] if s.expected[i]]),
        s.retriever.faiss.reconstruct_n(0, s.retriever.faiss.ntotal),
        [s.positives(i) for i in rows[s.name] if s.expected[i]]) for s in sets if s.name in ADAPTER_SETS])


def oof_candidates(sets, rows: dict[str, np.ndarray], folds: dict[str, np.ndarray],
                   k: int = learning.INNER_FOLDS) -> dict:
    """Candidates of the questions in `rows`, each made with an adapter that never saw it:
    the re-ranker is then fitted on dense scores as reliable as those it meets when serving."""
    out = {s.name: {} for s in sets}
    for g in range(k):
        fit_rows = {s.name: rows[s.name][folds[s.name][rows[s.name]] != g] for s in sets}
        adapter = fit_adapter_on(sets, fit_rows)
        for s in sets:
            out[s.name].update(candidates(s, adapter, rows[s.name][folds[s.name][rows[s.name]] == g]))
    return out


def fit_stage2(sets, cands: dict, rows: dict[str, np.ndarray]):
    """Re-ranker on the answerable questions of `rows`; confidence on the guide set's rows
    (out-of-scope included): the threshold the assistant serves is for its own corpus."""
    tr = [(s, i) for s in sets for i in rows[s.name] if s.expected[i] and i in cands[s.name]]
    reranker = learning.fit_ranker([cands[s.name][i][1] for s, i in tr], [cands[s.name][i][2] for s, i in tr])
    conf_x, conf_y = [], []
    for s in sets:
        if s.name not in CONFIDENCE_SETS:
            continue
        for i in rows[s.name]:
            if i in cands[s.name]:
                _, x, right = ranked(s, i, cands[s.name][i], *reranker.scores(cands[s.name][i][1]))
                conf_x.append(x)
                conf_y.append(right and bool(s.expected[i]))
    return reranker, learning.fit_confidence(np.array(conf_x), np.array(conf_y))


def cross_validate(sets: tuple[DevSet, ...], k: int) -> tuple[dict, dict]:
    folds = {s.name: learning.grouped_folds(s.groups(), k) for s in sets}
    oof = {s.name: {"rank": [None] * len(s.queries), "conf": np.zeros(len(s.queries)),
                    "right": np.zeros(len(s.queries), bool), "adapter_rank": [None] * len(s.queries),
                    "passage_rank": [None] * len(s.queries)} for s in sets}
    outer: dict[str, dict] = {s.name: {} for s in sets}  # each question's candidates from the adapter of its fold
    for f in range(k):
        train = {s.name: np.where(folds[s.name] != f)[0] for s in sets}
        test = {s.name: np.where(folds[s.name] == f)[0] for s in sets}
        inner_folds = {s.name: learning.grouped_folds(s.groups(), learning.INNER_FOLDS, seed=f + 1) for s in sets}
        inner = oof_candidates(sets, train, inner_folds)
        reranker, conf = fit_stage2(sets, inner, train)
        adapter = fit_adapter_on(sets, train)
        for s in sets:
            cands = candidates(s, adapter, test[s.name])
            outer[s.name].update(cands)
            for i, c in cands.items():
                scores = reranker.scores(c[1])
                rank, x, right = ranked(s, i, c, *scores)
                o = oof[s.name]
                o["passage_rank"][i] = passage_rank(s, i, c[0], scores[0])
                o["rank"][i], o["right"][i] = rank, right and bool(s.expected[i])
                o["conf"][i] = ranking.probability(conf[0], conf[1], x)
                o["adapter_rank"][i] = ranked(s, i, c, c[3])[0] if s.expected[i] else None
        print(json.dumps({"fold": f, "done": True}), file=sys.stderr, flush=True)
    return oof, outer


def fit_final(sets: tuple[DevSet, ...], outer: dict, threshold: float, meta: dict):
    """The adapter on every dev question; the re-ranker and confidence on the candidates the
    cross-validation made, each with an adapter that had not seen that question."""
    everything = {s.name: np.arange(len(s.queries)) for s in sets}
    reranker, conf = fit_stage2(sets, outer, everything)
    adapter = fit_adapter_on(sets, everything)
    enc = sets[0].retriever.encoder
    return learning.model_from(reranker, conf, threshold, adapter, enc.name, enc.version, meta)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--precision", type=float, default=0.9, help="answered questions right at least this often")
    ap.add_argument("--answered", type=float, default=0.85, help="answer at least this share of answerable questions")
    ap.add_argument("--no-write", action="store_true", help="report only; leave index_builder/models as it is")
    args = ap.parse_args()
    sets = dev_sets()
    oof, outer = cross_validate(sets, args.folds)
    fitted = [s for s in sets if s.name in CONFIDENCE_SETS]
    conf = np.concatenate([oof[s.name]["conf"] for s in fitted])
    right = np.concatenate([oof[s.name]["right"] for s in fitted])
    answerable = np.array([bool(e) for s in fitted for e in s.expected])
    threshold = learning.choose_threshold(conf, right, answerable, args.answered, args.precision)
    report = {"folds": args.folds, "threshold": threshold, "cores": os.cpu_count()}
    for s in sets:
        o = oof[s.name]
        ans = np.array([bool(e) for e in s.expected])
        ranks = [r for r, a in zip(o["rank"], ans) if a]
        report[s.name] = {"oof_hybrid+rerank": metrics(ranks, []),
                          "oof_dense+adapter": metrics([r for r, a in zip(o["adapter_rank"], ans) if a], []),
                          "oof_confidence": learning.confidence_table(o["conf"], o["right"], ans, threshold)}
        if s.answering:  # the article, not only the document
            report[s.name]["oof_passage"] = metrics([r for r, a in zip(o["passage_rank"], ans) if a], [])
        for m in report[s.name].values():
            for key in ("p50_ms", "p95_ms"):
                m.pop(key, None)
    report["confidence_sets"] = {"sets": list(CONFIDENCE_SETS),
                                 "oof": learning.confidence_table(conf, right, answerable, threshold),
                                 "curve": [learning.confidence_table(conf, right, answerable, t)
                                           for t in (0.3, 0.4, 0.5, 0.6, 0.7)]}
    np.savez(CACHE / "oof.npz", **{f"{n}_{k}": np.asarray(v, dtype=float if k != "right" else bool)
                                   for n, o in oof.items() for k, v in o.items() if k in ("conf", "right")})
    print(json.dumps(report, ensure_ascii=False))
    if not args.no_write:
        meta = {"fitted": dt.date.today().isoformat(), "fitted_by": "python -m bench.learn",
                "dev_data": [str(GUIDES_QUERIES.relative_to(ROOT)), str(SITUATIONS.relative_to(ROOT)),
                             "../shared/eval/ncp_dev_queries.tsv", str(POLICY_QUESTIONS.relative_to(ROOT)),
                             *[str(p.relative_to(ROOT)) for p in (*OUT_OF_SCOPE, OUT_OF_SCOPE_SITUATIONS)]],
                "held_out_never_fitted": str(GUIDES_HELDOUT.relative_to(ROOT)),
                "oof": {k: v for k, v in report.items() if k in (*ADAPTER_SETS, "confidence_sets")},
                "adapter": {"l2": learning.ADAPTER_L2, "temperature": learning.ADAPTER_TEMPERATURE,
                            "epochs": learning.ADAPTER_EPOCHS},
                "reranker": {"kind": "linear (listwise) + boosted trees (sklearn HistGradientBoostingClassifier)",
                             **learning.TREES}}
        folder = fit_final(sets, outer, threshold, meta).save()
        print(json.dumps({"written": str(folder.relative_to(ROOT))}))


if __name__ == "__main__":
    main()
