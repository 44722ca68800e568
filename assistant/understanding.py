"""Reading a citizen's message: which of its words are content rather than aspect cues and
conversational filler, and which guides those words name (titles and keywords). Plain Python
over the retriever's passages and tokenizer; the aspect vocabulary is in `aspects`."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

from index_builder.normalize import normalize
from index_builder.retriever import Retriever

from index_builder.aspects import ASPECTS

# Conversational filler: multi-character phrases are removed as substrings before tokenising,
# single characters only as whole tokens (so 个体户 keeps its 个).
_FILLER = re.compile(
    "请问一下|请问|我想问问|我想问一下|我想问下|想问一下|想问问|想问下|问一下|问下|麻烦问下|麻烦问一下|麻烦您|麻烦|"
    "你好|您好|谢谢|好的|那么|那个|这个|对了|另外|还有|还想问|顺便问下|顺便|然后|的话|如果|是不是|是否|有没有|"
    "一般|大概|具体|一共|总共|现在|目前|需要|可以|能不能|能否|会不会|要不要|什么|怎么|怎样|如何|哪些|多少|"
    "办理|手续|自己|本人|亲自|一下|知道|清楚|告诉")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
_FILLER_CHARS = frozenset("那这呢啊呀吧嘛哦噢喔哈啦咯嗯么吗不没了的啥咋办弄搞要想我你您他她们下个些去跑做给让把用能会得都还再也就又和跟")
# Tokens too general to name a service even though some guide's keywords contain them.
GENERIC = frozenset(
    "办理 申请 登记 手续 办证 证明 材料 资料 证件 条件 流程 时间 多久 地方 地址 电话 费用 服务 事项 业务 问题 情况 "
    "时候 东西 人员 本人 个人 自己 家里 家人 上海 青浦 本市 外地 窗口 中心 网上 线上 app 一件 一件事 怎么 多少 "
    "领取 办好 办完 办下来 拿到 需要 可以 现在 已经 还有 之前 以后 怎么办 怎样 如何 一下 一次 全部 什么 哪里 哪个".split())


# A guide "is called" by a phrase when at least this share of its names contain it.
NAMED_SHARE = 1 / 3


def _strip(text: str) -> str:
    out = text
    for _, _, cues in ASPECTS:
        for cue in cues:
            out = out.replace(cue, " ")
    return _FILLER.sub(" ", out)


@dataclass
class Names:
    """What each guide is called (title pieces and keywords), tokenised, with a weight per
    token that favours rare, long tokens: 社保卡 names two guides, 挂失 one."""

    retriever: Retriever

    @cached_property
    def _table(self) -> tuple[dict[str, set[str]], dict[str, str], dict[str, set[str]]]:
        token_docs: dict[str, set[str]] = {}
        phrase_docs: dict[str, set[str]] = {}
        titles: dict[str, str] = {}
        for p in self.retriever.passages:
            if p.kind != "guide" or p.doc_id in titles:
                continue
            titles[p.doc_id] = p.title
            names = [p.title, short_title(p.title), *(p.meta.get("keywords") or [])]
            for name in names:
                if len(name) >= 2 and name not in GENERIC:
                    phrase_docs.setdefault(normalize(name).lower(), set()).add(p.doc_id)
                for tok in self.retriever.tokenizer.tokens(name):
                    if len(tok) >= 2 and tok not in GENERIC:
                        token_docs.setdefault(tok, set()).add(p.doc_id)
        return token_docs, titles, phrase_docs

    def phrases(self, text: str) -> dict[str, set[str]]:
        """The guides' names (title or keyword) that occur in the text whole, longest only,
        each with the guides it names."""
        low = normalize(text).lower()
        found = [ph for ph in self._table[2] if ph in low]
        return {ph: self._table[2][ph] for ph in found if not any(ph != o and ph in o for o in found)}

    @cached_property
    def _names_list(self) -> dict[str, list[str]]:
        """Each guide's short title and keywords: what people call it (a title's bracketed
        gloss, such as 一窗通's list of parts, is not a name)."""
        out: dict[str, list[str]] = {}
        for p in self.retriever.passages:
            if p.kind == "guide" and p.doc_id not in out:
                out[p.doc_id] = [normalize(n).lower() for n in (short_title(p.title), *(p.meta.get("keywords") or []))]
        return out

    def any_name_contains(self, doc_id: str, phrase: str) -> bool:
        return any(phrase in n for n in self._names_list.get(doc_id, []))

    def names_contain(self, doc_id: str, phrase: str) -> bool:
        """Is the guide, too, mostly called by names with the phrase in them? 社保卡 is in
        most names of 社保卡挂失和补换 (社保卡丢了, 补办社保卡 …); 居住证 only in a few of
        居住证积分's, which is about 积分."""
        names = self._names_list.get(doc_id, [])
        return bool(names) and sum(phrase in n for n in names) >= len(names) * NAMED_SHARE

    def phrase_docs(self, text: str) -> set[str]:
        return {d for docs in self.phrases(text).values() for d in docs}

    @property
    def titles(self) -> dict[str, str]:
        return self._table[1]

    def content_tokens(self, text: str) -> list[str]:
        """Tokens left once aspect cues and filler are gone: none for "那要多久呢？"."""
        rest = _strip(text)
        toks = self.retriever.tokenizer.tokens(rest) if _PUNCT.sub("", rest) else []
        return [t for t in dict.fromkeys(toks) if t not in _FILLER_CHARS and t not in GENERIC]

    @staticmethod
    def content_chars(text: str) -> int:
        """How many characters of the message are content (not cues, filler, punctuation)."""
        rest = _PUNCT.sub("", _strip(text))
        return sum(ch not in _FILLER_CHARS for ch in rest)

    def name_tokens(self, tokens: list[str]) -> list[str]:
        """The content tokens that some guide's names contain."""
        return [t for t in tokens if t in self._table[0]]

    def fits_as_well(self, tokens: list[str], best: str, other: str) -> bool:
        """Do the message's name tokens fit `other` as well as `best`? Every token only `best`
        has must be made of characters `other`'s tokens cover (规划许可证 vs 规划 + 许可: a
        segmentation artefact); a token of its own (租房, 丢了) tells them apart."""
        token_docs = self._table[0]
        covered = {ch for t in tokens if other in token_docs.get(t, ()) for ch in t}
        return all(set(t) <= covered for t in tokens
                   if best in token_docs.get(t, ()) and other not in token_docs.get(t, ()))

    def scores(self, tokens: list[str]) -> dict[str, float]:
        """doc_id -> weight of the message tokens found in that guide's names."""
        token_docs = self._table[0]
        n = max(len(self.titles), 1)
        out: dict[str, float] = {}
        for tok in tokens:
            docs = token_docs.get(tok, ())
            weight = len(tok) * math.log(1 + n / max(len(docs), 1))
            for d in docs:
                out[d] = out.get(d, 0.0) + weight
        return out


def short_title(title: str) -> str:
    """A guide title without its bracketed gloss, for buttons: 社会保障卡挂失和补换."""
    return re.split(r"[（(]", title, maxsplit=1)[0].strip() or title
