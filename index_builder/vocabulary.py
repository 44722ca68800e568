"""Domain vocabulary for decoding: Qingpu place names, service bundles, guide titles and keywords.

Whisper base knows "营业执照" and "公积金" but easily writes homophones for rarer service terms
("一窗通" -> "一窗同") and place names ("赵巷" -> "赵项"). A short list of the terms people say at
a Qingpu service hall is passed to the decoder as ``hotwords`` (faster-whisper places them in
the previous-text slot of the prompt). The list is kept short: every prompt token costs
decoding time, and a long list makes the model more likely to echo it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
GUIDES_DIR = REPO_ROOT / "knowledge_base" / "guides"
BUNDLES_DIR = REPO_ROOT / "knowledge_base" / "bundles"

PLACE_NAMES = ("青浦", "朱家角", "赵巷", "徐泾", "华新", "白鹤", "练塘", "金泽", "重固", "香花桥", "盈浦", "夏阳")
SERVICE_TERMS = ("一网通办", "一窗通", "随申办", "营业执照", "公积金", "社保卡", "居住证", "户口", "12345")

# Terms that make up a bundle name ("出生一件事", "开办企业一窗通") in the guides.
_BUNDLE_RE = re.compile(r"([\u4e00-\u9fff]{2,4})[\"“”]?(一件事|一窗通)")
_FUNCTION_CHARS = set("的在可和等及或与是了到")
# Strip bracketed qualifiers from guide titles: "残疾人证办理（新办、换领）" -> "残疾人证办理".
_BRACKETS_RE = re.compile(r"[（(【\[].*?[）)】\]]")


@dataclass(frozen=True)
class DomainVocabulary:
    places: tuple[str, ...] = PLACE_NAMES
    services: tuple[str, ...] = SERVICE_TERMS
    bundles: tuple[str, ...] = ()
    titles: tuple[str, ...] = ()
    keywords: tuple[str, ...] = field(default=(), repr=False)

    def terms(self) -> list[str]:
        """All terms, most important first, without duplicates."""
        seen: dict[str, None] = {}
        for group in (self.services, self.places, self.bundles, self.titles, self.keywords):
            for t in group:
                t = t.strip()
                if t and t not in seen:
                    seen[t] = None
        return list(seen)

    def correction_terms(self) -> list[str]:
        """Distinctive terms for homophone correction: service names, places, bundle names and
        guide titles; not the colloquial keywords (common words share their sounds)."""
        seen: dict[str, None] = {}
        for group in (self.services, self.places, self.bundles, self.titles):
            for t in group:
                seen.setdefault(t.strip(), None)
        return [t for t in seen if t]

    def hotwords(self, max_chars: int = 120) -> str:
        """Space-separated terms up to ``max_chars`` characters (a budget on prompt tokens)."""
        out: list[str] = []
        used = 0
        for t in self.terms():
            if used + len(t) + 1 > max_chars:
                break
            out.append(t)
            used += len(t) + 1
        return " ".join(out)


def _load_yaml_dir(folder: Path | str | None) -> list[dict]:
    if folder is None or not Path(folder).is_dir():
        return []
    docs = []
    for path in sorted(Path(folder).glob("*.yml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def load_vocabulary(guides_dir: Path | str | None = GUIDES_DIR,
                    bundles_dir: Path | str | None = BUNDLES_DIR) -> DomainVocabulary:
    """Vocabulary from the knowledge base: the 一件事 bundles (knowledge_base/bundles: names and
    synonyms), the guides (titles, keywords, bundle names in their text), plus the fixed place
    names and service terms. Missing folders give the fixed terms only."""
    guides = _load_yaml_dir(guides_dir)
    bundles: dict[str, None] = {}
    for b in _load_yaml_dir(bundles_dir):
        name = re.sub(r"[\"“”'‘’]", "", str(b.get("name") or "")).strip()
        if 2 <= len(name) <= 12:
            bundles[name] = None
        for syn in b.get("synonyms") or []:
            syn = str(syn).strip()
            if 2 <= len(syn) <= 8:
                bundles[syn] = None
    titles: dict[str, None] = {}
    keywords: dict[str, None] = {}
    for g in guides:
        text = " ".join(str(g.get(k, "")) for k in ("title", "scope", "online_entrance"))
        for head, tail in _BUNDLE_RE.findall(text):
            if not _FUNCTION_CHARS & set(head):
                bundles[head + tail] = None
        title = _BRACKETS_RE.sub("", str(g.get("title") or "")).strip()
        if 2 <= len(title) <= 10:
            titles[title] = None
        for kw in g.get("keywords") or []:
            kw = str(kw).strip()
            if 2 <= len(kw) <= 6:
                keywords[kw] = None
    return DomainVocabulary(bundles=tuple(bundles), titles=tuple(titles), keywords=tuple(keywords))
