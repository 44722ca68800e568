"""General sound-alike correction: non-words replaced by a common word that sounds exactly the
same, in transcripts (voice) and in typed questions (retrieval).

Whisper base hears Mandarin syllables well but its language model is weak. The most common
error on the shared clips is a right-sounding but wrong character pair that is no word at all:
偏章 for 篇章, 井德阵 for 景德镇, 孔细 for 孔隙, 停制 for 停滞. People typing with a pinyin
keyboard make the same kind of error: 结昏证, 公积金代款, 营叶执照. This module finds the most
probable reading of each run of Chinese characters in a lattice:
- every character may stay as it is;
- any 2-4 character span that is not a known word may become a dictionary word with the same
  toned pinyin, at a cost per changed character.
The paths are scored with a unigram word model: jieba's dictionary, which jieba already ships,
with 349k words and their frequencies. It is interpolated (weight 0.1) with the word counts of
the knowledge base's own text. Without that, 办 is too rare for a service hall: "办点个人的事"
became "半点个人的事". With it, the change to 半点 is not made, and 一保 and 过护 are read as
医保 and 过户. False changes on the NCP and citizen texts stayed the same.

What keeps it from "correcting" real text:
- A span that is a word already (报到, 压碎) is never replaced by another word. A unigram model
  cannot choose between two real words, so 报到 -> 报道 would be a guess.
- Spans found in the knowledge base's own text are protected. jieba's dictionary predates
  微信, 抗疫 and 随申办, and the service's own terms must survive.
- Each changed character costs ``cost`` nats. The default of 5 was chosen on the shared clips
  against the changes made to correct text that we did not write. At that cost, 1.1 changes
  per 1,000 characters were made on the NCP policy answers and 1.5 on the citizen messages
  (bench/soundalike.py).

Tone-insensitive and fuzzy (en/eng, zh/z) matching were measured too. They fixed no more clip
errors and made two to three times as many false changes, so they are not offered.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Iterable, Optional, Sequence

log = logging.getLogger(__name__)

HAN_RUN = re.compile(r"[\u4e00-\u9fff]+")
MAX_WORD = 4
INDEX_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE_BASE = REPO_ROOT / "knowledge_base"
# knowledge-base folders whose text is the service's own vocabulary (eval/ holds test questions)
PROTECTED_DIRS = ("guides", "bundles", "policies")
DEFAULT_CACHE = REPO_ROOT / "build" / "models" / "soundalike-index.json"


def toned_syllables(text: str) -> list[str]:
    """pypinyin's reading in context, tone digits after each syllable, 5 for the neutral tone."""
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True)


def jieba_dictionary() -> Path:
    import jieba

    return Path(jieba.__path__[0]) / "dict.txt"


def read_frequencies(path: Path) -> dict[str, int]:
    """word -> count from a jieba-format dictionary ("word count [tag]" per line)."""
    freq: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                freq[parts[0]] = freq.get(parts[0], 0) + int(parts[1])
    return freq


def build_sound_index(freq: dict[str, int], min_freq: int) -> dict[str, list[str]]:
    """Toned pinyin ("pian1 zhang1") -> dictionary words of 2-4 Chinese characters read that way,
    at least ``min_freq`` times in the dictionary (rarer entries are mostly noise)."""
    index: dict[str, list[str]] = {}
    for word, count in freq.items():
        if count >= min_freq and 2 <= len(word) <= MAX_WORD and HAN_RUN.fullmatch(word):
            syllables = toned_syllables(word)
            if len(syllables) == len(word):
                index.setdefault(" ".join(syllables), []).append(word)
    return index


def protected_ngrams(texts: Iterable[str]) -> set[str]:
    """Every 2-4 character span of Chinese in ``texts``."""
    out: set[str] = set()
    for text in texts:
        for run in HAN_RUN.findall(text):
            for n in range(2, MAX_WORD + 1):
                out.update(run[i:i + n] for i in range(len(run) - n + 1))
    return out


def word_counts(texts: Iterable[str]) -> dict[str, int]:
    """jieba's words in ``texts`` (punctuation and spaces left out) with their counts."""
    import jieba

    counts: dict[str, int] = {}
    for text in texts:
        for word in jieba.cut(text):
            if word.strip() and any(ch.isalnum() for ch in word):
                counts[word] = counts.get(word, 0) + 1
    return counts


def knowledge_base_texts(root: Path = KNOWLEDGE_BASE) -> list[str]:
    texts = []
    for name in PROTECTED_DIRS:
        folder = root / name
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix in {".yml", ".yaml", ".md", ".txt"}:
                    texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return texts


@dataclass(frozen=True)
class Correction:
    original: str
    replacement: str
    position: int  # index of the first character in the text


class SoundAlikeCorrector:
    """Thread-safe after construction (read-only tables)."""

    def __init__(self, freq: dict[str, int], sound_index: dict[str, list[str]],
                 protected: Sequence[AbstractSet[str]] = (), cost: float = 5.0,
                 domain: Optional[dict[str, int]] = None, domain_weight: float = 0.1):
        """``protected``: sets of spans never replaced (several, so an index's terms are added to
        the knowledge base's without copying them). ``domain``: word counts of the service's own
        text, interpolated with ``freq`` at ``domain_weight``, so the words of a service hall
        (办, 医保) are as likely as they are there."""
        if cost <= 0:
            raise ValueError("cost must be positive: at 0 every sound-alike word would replace the text")
        if not 0 <= domain_weight < 1:
            raise ValueError("domain_weight must be in [0, 1)")
        self.freq = freq
        self.index = sound_index
        self.protected = tuple(protected)
        self.cost = cost
        self.domain = domain or {}
        self.domain_weight = domain_weight if self.domain else 0.0
        self.total = max(1, sum(freq.values()))
        self.domain_total = max(1, sum(self.domain.values()))

    def correct(self, text: str) -> str:
        return self.correct_with_changes(text)[0]

    def correct_with_changes(self, text: str) -> tuple[str, list[Correction]]:
        changes: list[Correction] = []

        def fix(m: re.Match) -> str:
            fixed, found = self._correct_run(m.group(0))
            changes.extend(Correction(o, r, m.start() + at) for o, r, at in found)
            return fixed

        return HAN_RUN.sub(fix, text), changes

    def _logp(self, word: str) -> float:
        general = (self.freq.get(word) or 1) / self.total  # an unknown word counts once
        if not self.domain_weight:
            return math.log(general)
        local = self.domain.get(word, 0) / self.domain_total
        return math.log((1 - self.domain_weight) * general + self.domain_weight * local)

    def _candidates(self, run: str, syllables: list[str], i: int, j: int) -> list[tuple[str, float]]:
        span = run[i:j]
        known = span in self.freq
        out = [(span, self._logp(span))] if j == i + 1 or known else []
        if j - i >= 2 and not known and not any(span in p for p in self.protected):
            for word in self.index.get(" ".join(syllables[i:j]), ()):
                changed = sum(a != b for a, b in zip(word, span))
                out.append((word, self._logp(word) - self.cost * changed))
        return out

    def _correct_run(self, run: str) -> tuple[str, list[tuple[str, str, int]]]:
        """Best path through the lattice of ``run`` (Viterbi over spans of 1-4 characters)."""
        if len(run) < 2:
            return run, []
        syllables = toned_syllables(run)
        if len(syllables) != len(run):  # not one syllable per character: leave it alone
            return run, []
        n = len(run)
        best: list[tuple[float, Optional[tuple[int, str]]]] = [(-math.inf, None)] * (n + 1)
        best[0] = (0.0, None)
        for i in range(n):
            if best[i][0] == -math.inf:
                continue
            for j in range(i + 1, min(n, i + MAX_WORD) + 1):
                for word, score in self._candidates(run, syllables, i, j):
                    if best[i][0] + score > best[j][0]:
                        best[j] = (best[i][0] + score, (i, word))
        pieces, j = [], n
        while j > 0:
            i, word = best[j][1]
            pieces.append((i, j, word))
            j = i
        pieces.reverse()
        found = [(run[i:j], w, i) for i, j, w in pieces if w != run[i:j]]
        return "".join(w for _i, _j, w in pieces), found


def _cache_key(dictionary: Path, min_freq: int) -> str:
    import pypinyin

    h = hashlib.sha256(dictionary.read_bytes())
    h.update(f"{pypinyin.__version__}|{min_freq}|{INDEX_VERSION}".encode())
    return h.hexdigest()


def load_sound_index(freq: dict[str, int], dictionary: Path, min_freq: int,
                     cache: Optional[Path]) -> dict[str, list[str]]:
    """The pinyin index, from ``cache`` when it was built from this dictionary, pypinyin and
    ``min_freq`` (building it reads 120k words' pinyin: about 4 s); else built and written."""
    key = _cache_key(dictionary, min_freq)
    if cache is not None and cache.is_file():
        try:
            stored = json.loads(cache.read_text(encoding="utf-8"))
            if stored.get("key") == key:
                return stored["index"]
        except (OSError, ValueError, KeyError):
            log.warning("sound-alike index cache %s unreadable; rebuilding", cache)
    index = build_sound_index(freq, min_freq)
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"key": key, "index": index}, ensure_ascii=False), encoding="utf-8")
            tmp.replace(cache)  # atomic: processes starting together never read half a file
        except OSError as e:
            log.warning("could not cache the sound-alike index (%s)", e.__class__.__name__)
    return index


_DEFAULT: dict[tuple, SoundAlikeCorrector] = {}
_DEFAULT_LOCK = threading.Lock()


def default_corrector(cost: float = 5.0, min_freq: int = 5, cache: Optional[Path] = DEFAULT_CACHE,
                      knowledge_base: Path = KNOWLEDGE_BASE) -> SoundAlikeCorrector:
    """One corrector per settings and process: jieba's dictionary with the knowledge base's word
    counts, and the knowledge base's text protected."""
    key = (cost, min_freq, str(cache), str(knowledge_base))
    with _DEFAULT_LOCK:
        corrector = _DEFAULT.get(key)
        if corrector is None:
            dictionary = jieba_dictionary()
            freq = read_frequencies(dictionary)
            index = load_sound_index(freq, dictionary, min_freq, cache)
            texts = knowledge_base_texts(knowledge_base)
            corrector = _DEFAULT[key] = SoundAlikeCorrector(freq, index, [protected_ngrams(texts)], cost,
                                                            domain=word_counts(texts))
        return corrector


def for_vocabulary(terms: Iterable[str], cost: float = 5.0) -> SoundAlikeCorrector:
    """The default corrector with ``terms`` protected too: an index's own words (its BM25
    vocabulary), so a corpus's names and newer words are never "corrected" in a question."""
    base = default_corrector(cost=cost)
    # every span of a term: the index holds 卫健委 whole, and its 卫健 must not become 卫建
    extra = protected_ngrams(t for t in terms if HAN_RUN.fullmatch(t))
    return SoundAlikeCorrector(base.freq, base.index, [*base.protected, extra], cost,
                               domain=base.domain, domain_weight=base.domain_weight)
