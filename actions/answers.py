"""Compose the assistant's reply from a retrieval result: a short cited answer, or, when
retrieval is unsure, the closest guides and the way to a person. Plain Python: used by the
Rasa actions and by the web copilot alike."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from index_builder.passages import CONTACT, Passage
from index_builder.retriever import Retriever, SearchResult

HOTLINE = "12345"
MAX_SENTENCES = 3
MAX_ITEM_CHARS = 60
FOLLOW_UP_SECTIONS = ("申请材料", "办理流程", "办理方式和地点", "办理时限和收费", "申请条件")
# What a question asks for, by its words: the answer then comes from that section of the
# best guide even when another section of it ranked first.
SECTION_CUES = (
    ("申请材料", ("材料", "带什么", "带啥", "准备什么", "准备啥", "要啥", "证件", "资料")),
    ("办理时限和收费", ("多久", "几天", "多长时间", "收费", "多少钱", "费用", "要钱", "免费")),
    ("办理方式和地点", ("在哪", "哪里办", "哪儿办", "地址", "地点", "网上办", "线上")),
    ("办理流程", ("流程", "步骤", "怎么走", "程序")),
    ("申请条件", ("条件", "符合", "资格", "能不能办", "够不够")),
    ("咨询和投诉", ("电话", "投诉", "咨询")),
)


@dataclass
class Answer:
    text: str
    confident: bool
    answer_id: str
    sources: list[dict[str, Any]]
    buttons: list[dict[str, str]] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        """Machine-readable part for front ends (Rasa json_message)."""
        return {"answer_id": self.answer_id, "confident": self.confident, "sources": self.sources}


def _first_sentences(text: str, limit: int = MAX_ITEM_CHARS) -> str:
    """Whole sentences up to about `limit` characters; one over-long sentence is cut."""
    out = ""
    for sentence in re.split(r"(?<=[。！？；])", text):
        if out and len(out) + len(sentence) > limit:
            break
        out += sentence
    if len(out) > limit * 1.5:
        out = out[:limit].rstrip("，、；,;") + "……"
    return out


def _short_items(text: str) -> list[str]:
    """Passage lines as short sentences: numbering stripped, long items shortened."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\d+\.\s*", "", line.strip())
        if line and not line.startswith("常见说法"):
            out.append(_first_sentences(line))
    return out


def _body(p: Passage) -> str:
    items = _short_items(p.text)
    if p.section.startswith("常见问题"):
        answer = next((i[2:] for i in items if i.startswith("答：")), items[-1] if items else "")
        return answer
    if p.kind == "policy":
        return _first_sentences(p.text.replace("\n", ""), MAX_ITEM_CHARS * 2)
    if p.section == "申请材料":  # names only; details are one tap away in the sources
        items = [i.split("，")[0] + ("（可免于提交）" if "免于提交" in i else "") for i in items]
        more = "等" if len(items) > 4 else ""
        return f"需要准备：{'、'.join(items[:4])}{more}。"
    shown = [i.rstrip("。；") for i in items[:MAX_SENTENCES]]
    more = "等" if len(items) > MAX_SENTENCES else ""
    return "；".join(shown) + f"{more}。"


def _where_and_phone(retriever: Retriever, p: Passage) -> str:
    if p.kind != "guide":
        return ""
    parts = []
    for q in retriever.passages_of(p.doc_id):
        if q.section == "办理方式和地点" and p.section != q.section:
            where = next((l for l in q.text.splitlines() if l.startswith("办理地点")), "")
            if where:
                parts.append(where)
    phone = p.meta.get("consult_phone") or HOTLINE
    if p.section != CONTACT:
        parts.append(f"咨询电话：{phone}")
    return "；".join(parts[:2]) + "。" if parts else ""


def _source(p: Passage, score: float) -> dict[str, Any]:
    return {"doc_id": p.doc_id, "title": p.title, "section": p.section, "citation": p.citation,
            "score": round(score, 4), "meta": {k: v for k, v in p.meta.items() if v is not None}}


def _follow_ups(retriever: Retriever, result: SearchResult, top: Passage) -> list[dict[str, str]]:
    """Other sections of the guide used, then other guides found."""
    buttons = []
    if top.kind == "guide":
        for section in FOLLOW_UP_SECTIONS:
            if section != top.section and any(q.section == section for q in retriever.passages_of(top.doc_id)):
                buttons.append({"title": f"{section}", "payload": f"{top.title}的{section}"})
    for hit in result.top_docs()[1:]:
        other = hit.passage
        if other.kind == "guide":
            buttons.append({"title": f"看看《{other.title}》", "payload": f"{other.title}怎么办理"})
    return buttons[:3]


def asked_section(query: str) -> str | None:
    return next((section for section, cues in SECTION_CUES if any(c in query for c in cues)), None)


def best_passage(retriever: Retriever, result: SearchResult) -> Passage:
    """The top hit, or the section of its guide that the question asks about."""
    top = result.hits[0].passage
    wanted = asked_section(result.query)
    if top.kind == "guide" and wanted and top.section != wanted:
        return next((p for p in retriever.passages_of(top.doc_id) if p.section == wanted), top)
    return top


def compose(retriever: Retriever, result: SearchResult) -> Answer:
    answer_id = uuid.uuid4().hex[:12]
    if result.reason == "empty" or not result.hits:
        return Answer("您好，请用一句话告诉我您想办理的事情，例如\"开个小饭店要准备什么\"。",
                      False, answer_id, [])
    sources = [_source(h.passage, h.score) for h in result.hits[:3]]
    top = result.hits[0].passage
    if not result.confident:
        titles = [f"《{h.passage.title}》" for h in result.top_docs()[:3]]
        phone = top.meta.get("consult_phone") or HOTLINE
        extra = f"，或拨打该事项咨询电话{phone}" if phone != HOTLINE else ""
        text = (f"这个问题我不太确定。和您的问题最接近的是：{'、'.join(titles)}。"
                f"您可以换个说法再问，也可以转人工或拨打市民服务热线{HOTLINE}{extra}。")
        buttons = [{"title": "转人工", "payload": "/request_human"}]
        buttons += [{"title": t, "payload": f"{t.strip('《》')}怎么办理"} for t in titles[:2]]
        return Answer(text, False, answer_id, sources, buttons)
    top = best_passage(retriever, result)
    if top is not result.hits[0].passage:  # the section asked for is the source cited first
        sources = [_source(top, result.hits[0].score)] + [s for s in sources if s["citation"] != top.citation][:2]
    body = _body(top)
    text = f"根据{top.citation}：{body}"
    tail = _where_and_phone(retriever, top)
    if tail:
        text += ("" if body.endswith(("。", "！", "？", "……")) else "。") + tail
    return Answer(text, True, answer_id, sources, _follow_ups(retriever, result, top))
