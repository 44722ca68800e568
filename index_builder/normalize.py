"""Input normalisation shared by indexing and querying."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Queries longer than this are cut: no real question is longer, and a 10,000-character
# paste must not cost seconds of tokenising and embedding.
MAX_QUERY_CHARS = 512

_SPACES = re.compile(r"\s+")
# Letters, digits or CJK ideographs: a query without any carries no meaning to search for.
_MEANINGFUL = re.compile(r"[0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def normalize(text: str) -> str:
    """Traditional to Simplified, full-width to half-width (NFKC), whitespace folded."""
    text = unicodedata.normalize("NFKC", text or "")
    text = to_simplified(text)
    return _SPACES.sub(" ", text).strip()


def normalize_query(text: str, limit: int = MAX_QUERY_CHARS) -> tuple[str, bool]:
    """Normalise a user query and cut it at `limit` characters; returns (query, truncated)."""
    text = normalize(text)
    if len(text) > limit:
        return text[:limit], True
    return text, False


def is_meaningful(text: str) -> bool:
    """False for empty, punctuation-only or emoji-only input."""
    return bool(_MEANINGFUL.search(text or ""))
