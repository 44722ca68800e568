"""jieba tokenisation with the knowledge base's user dictionary, for BM25."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import jieba

jieba.setLogLevel(logging.WARNING)

# Function words and question fillers carry no topic; dropping them keeps BM25 on content.
STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 嘛 么 是 在 我 你 他 她 它 我们 你们 要 想 会 能 可以 怎么 怎样 如何 什么 啥 哪些 哪里 哪儿 "
    "多少 几 个 一个 和 与 及 或 或者 还是 有 没有 这 那 这个 那个 就 都 也 还 又 请问 请 一下 办 需要 需不需要 "
    "怎么办 咋 咋办 为什么 给 对 把 被 让 到 去 从 得 地 着 过 之 其 等 该 应 应该 将 于 以 按 已 被".split()
)
_KEEP = re.compile(r"[0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff]")


class Tokenizer:
    """A private jieba instance, so each index's dictionary does not leak into another's."""

    def __init__(self, user_terms: list[str] | None = None):
        self._jieba = jieba.Tokenizer()
        self._jieba.initialize()
        for term in user_terms or []:
            self._jieba.add_word(term, freq=20000)

    @classmethod
    def from_file(cls, path: Path) -> "Tokenizer":
        terms = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return cls(terms)

    def tokens(self, text: str) -> list[str]:
        """Search-mode tokens (words plus their sub-words), lower-cased, stopwords dropped."""
        out = []
        for tok in self._jieba.lcut_for_search(text.lower()):
            tok = tok.strip()
            if tok and tok not in STOPWORDS and _KEEP.search(tok):
                out.append(tok)
        return out


def write_user_dictionary(terms: list[str], path: Path) -> None:
    path.write_text("".join(f"{t} 20000 n\n" for t in terms), encoding="utf-8")
