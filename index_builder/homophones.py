"""Homophone correction towards the domain vocabulary.

Whisper base hears the sounds of a service term but may write a homophone ("一窗同" for
一窗通, "赵项镇" for 赵巷镇). A run of Chinese characters whose toneless pinyin (in context, as
pypinyin reads it) equals that of a correction term is replaced by the term.

A neutral-tone character is never turned into a full-tone one: sentence particles (吗, 呢, 吧)
are neutral and never part of a term, and "能参加医保吗" had become "医保码" (ma5 -> ma3).

Only distinctive terms are used (see DomainVocabulary.correction_terms): service names, towns
with their suffix (赵巷镇, 盈浦街道: a bare 徐泾 sounds like 须经), bundle names and guide
titles. Colloquial keywords are left out: on 2,000 ordinary sentences (../shared/eval
questions and answers) they turned 栖息地保护 into 栖息低保户 and 保障防疫 into 保障房疫.
"""
from __future__ import annotations

import re

from pypinyin import Style, lazy_pinyin

from .soundalike import toned_syllables

_HAN = re.compile(r"[\u4e00-\u9fff]+")
TOWNS = ("朱家角", "赵巷", "徐泾", "华新", "白鹤", "练塘", "金泽", "重固")
SUBDISTRICTS = ("盈浦", "夏阳", "香花桥")
# readings pypinyin gets wrong for place names
PRONUNCIATIONS = {"重固": ("chong", "gu")}


def _key(word: str) -> tuple:
    syllables = list(lazy_pinyin(word, style=Style.NORMAL))
    for name, reading in PRONUNCIATIONS.items():
        start = word.find(name)
        if start >= 0:
            syllables[start:start + len(name)] = reading
    return tuple(syllables)


class HomophoneCorrector:
    def __init__(self, terms: list[str], min_len: int = 3):
        extra = [t + "镇" for t in TOWNS] + [t + "街道" for t in SUBDISTRICTS] + ["青浦区"]
        self.by_len: dict[int, dict[tuple, str]] = {}
        self.tones: dict[str, list[str]] = {}
        for t in [*extra, *terms]:
            if len(t) < min_len or not _HAN.fullmatch(t):
                continue
            # first term wins: the list is ordered most important first
            self.by_len.setdefault(len(t), {}).setdefault(_key(t), t)
            self.tones.setdefault(t, toned_syllables(t))
        self.lengths = sorted(self.by_len, reverse=True)

    def correct(self, text: str) -> str:
        return _HAN.sub(lambda m: self._correct_run(m.group(0)), text)

    def _correct_run(self, run: str) -> str:
        if len(run) < 3:
            return run
        tones = toned_syllables(run)
        if len(tones) != len(run):  # not one syllable per character: leave it alone
            return run
        syllables = [t.rstrip("012345") for t in tones]  # Style.NORMAL, without a second pass
        out: list[str] = []
        i = 0
        while i < len(run):
            for n in self.lengths:
                term = self.by_len[n].get(tuple(syllables[i:i + n])) if i + n <= len(run) else None
                if term is not None and not self._turns_neutral(run[i:i + n], tones[i:i + n], term):
                    out.append(term)
                    i += n
                    break
            else:
                out.append(run[i])
                i += 1
        return "".join(out)

    def _turns_neutral(self, span: str, span_tones: list[str], term: str) -> bool:
        """Would replacing ``span`` by ``term`` turn a neutral-tone character (a particle) into
        a full-tone one?"""
        return any(a != b and ta.endswith("5") and not tb.endswith("5")
                   for a, b, ta, tb in zip(span, term, span_tones, self.tones[term]))
