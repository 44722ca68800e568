"""Query rewriting before retrieval: conversational filler carries no topic.

"请问一下，我想问问开饭店要啥证" is searched as "开饭店要啥证": the greeting and the asking
phrases would otherwise pull the dense vector towards passages that happen to be phrased as
questions, and they are not evidence of any service. Only whole filler phrases at the edges
of a clause are removed, and a query is never rewritten to nothing.
"""
from __future__ import annotations

import re

# Longest first, so "请问一下" goes as one piece rather than leaving "一下".
_FILLER = sorted("""
请问一下 请问下 请问 麻烦问一下 麻烦问下 麻烦问问 麻烦你 想问一下 想问下 想问问 我想问一下 我想问下 我想问问
我想咨询一下 我想咨询下 我想咨询 咨询一下 咨询下 问一下 问下 打扰一下 打扰了 你好 您好 你们好 在吗 在不在
谢谢 谢谢你 谢谢您 多谢
""".split(), key=len, reverse=True)
_EDGE = re.compile(r"^(?:\s|[，,。.！!？?、~～])*(?:" + "|".join(map(re.escape, _FILLER)) + r")(?:\s|[，,。.！!？?、~～：:])*",
                   re.IGNORECASE)
_TAIL = re.compile(r"(?:\s|[，,。.！!？?、~～])*(?:" + "|".join(map(re.escape, _FILLER)) + r")(?:\s|[，,。.！!？?、~～])*$",
                   re.IGNORECASE)


# Phone, ID and bank-card numbers, clear or masked ("138****5678"): personal data, never the
# topic of a question, and tokens no passage holds (they would read as rare unmatched words).
_PERSONAL_NUMBER = re.compile(r"(?<![0-9])[0-9][0-9*＊xX]{5,}[0-9xX](?![0-9])")


def strip_filler(text: str) -> str:
    """The query without personal numbers and without leading or trailing filler phrases
    (repeatedly: "你好，请问一下，…")."""
    out = _PERSONAL_NUMBER.sub(" ", text).strip() or text
    for _ in range(4):
        stripped = _TAIL.sub("", _EDGE.sub("", out))
        if stripped == out:
            break
        out = stripped
    return out if out.strip() else text
