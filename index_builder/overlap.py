"""How much of a question's wording a passage repeats, by character n-grams: word-free, so it
holds where jieba splits a question and a passage differently (延期办理 / 延期 办理), and it
sees the order of characters, which BM25 over words does not."""
from __future__ import annotations

import re

_KEEP = re.compile(r"[\u4e00-\u9fff0-9A-Za-z]+")


def bare(text: str) -> str:
    """Hanzi, digits and Latin letters only: punctuation and spaces break no n-gram."""
    return "".join(_KEEP.findall(text))


def grams(text: str, n: int) -> set[str]:
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def gram_coverage(question: str, passage: str, passage_bigrams: int) -> tuple[float, float, float]:
    """(share of the question's distinct bigrams in the passage, the same for trigrams, share of
    the passage's distinct bigrams that are the question's). Both texts already `bare`;
    `passage_bigrams` is len(grams(passage, 2)), computed once per passage."""
    q2, q3 = grams(question, 2), grams(question, 3)
    hit2 = sum(g in passage for g in q2)
    hit3 = sum(g in passage for g in q3)
    return (hit2 / len(q2) if q2 else 0.0, hit3 / len(q3) if q3 else 0.0,
            hit2 / passage_bigrams if passage_bigrams else 0.0)
