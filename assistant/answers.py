"""Compose the assistant's reply: a short cited answer that leads with the fact asked for, a
clarifying question, or, when retrieval is unsure, the closest guides and the way to a
person. Plain Python: used by the Rasa actions and by the web copilot alike.

`audience` is "citizen" (the chat, the kiosk) or "agent" (the 12345 copilot: the reply is
what the agent says to the caller, who is already on the hotline)."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from index_builder.passages import BASIS, CHANNELS, CONTACT, MATERIALS, PROCESS, TIME_FEE, Passage
from index_builder.retriever import Retriever, SearchResult

from index_builder.documents.metadata import DocumentMeta, expiry
from index_builder.documents.structure import strip_label
from index_builder.aspects import ASPECT_LABEL, ASPECT_SECTION, SECTION_ASPECT, asked_aspect
from .understanding import short_title

HOTLINE = "12345"
MAX_SENTENCES = 3
MAX_ITEM_CHARS = 60
FOLLOW_UP_SECTIONS = ("申请材料", "办理流程", "办理方式和地点", "办理时限和收费", "申请条件")
CHOOSE_INTENT = "choose_guide"
CHOICE_ENTITY = "guide_choice"


@dataclass
class Answer:
    text: str
    confident: bool
    answer_id: str
    sources: list[dict[str, Any]]
    buttons: list[dict[str, str]] = field(default_factory=list)
    # what the turn was: kind (answer | unsure | clarify | ask), mode (fresh | followup |
    # switch | clarified), doc_id and section answered from, options offered
    turn: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """Machine-readable part for front ends (Rasa json_message)."""
        return {"answer_id": self.answer_id, "confident": self.confident, "sources": self.sources,
                "turn": self.turn}


def _new_id() -> str:
    return uuid.uuid4().hex[:12]


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


def _line(text: str, prefix: str) -> str:
    return next((l.strip() for l in text.splitlines() if l.strip().startswith(prefix)), "")


def _aspect_body(p: Passage, aspect: str | None) -> str | None:
    """The fact asked for first, for the sections that hold several facts."""
    if p.section == TIME_FEE:
        fee = _line(p.text, "收费标准")
        times = [l for l in p.text.splitlines() if l.strip() and not l.startswith("收费标准")]
        parts = [fee, *times] if aspect == "fee" else [*times, fee]
        return "；".join(x.rstrip("。；") for x in parts if x) + "。"
    if p.section == CHANNELS:
        ways, where, entrance = _line(p.text, "办理方式"), _line(p.text, "办理地点"), _line(p.text, "网上办理入口")
        if aspect == "online":
            online = entrance or ("网上" in ways or "线上" in ways or "一网通办" in ways)
            if online:
                lead = "可以网上办理。" + (f"{entrance.rstrip('。')}。" if entrance else "")
                return lead + (f"也可以现场办理，{_first_sentences(where, 80).rstrip('。')}。" if where else "")
            return f"目前不能全程网上办理，需要现场办理。{_first_sentences(where, 80).rstrip('。')}。"
        parts = [where, ways, entrance] if aspect in (None, "where") else [ways, where, entrance]
        return "；".join(_first_sentences(x, 80).rstrip("。；") for x in parts if x) + "。"
    return None


def _body(p: Passage, aspect: str | None = None) -> str:
    led = _aspect_body(p, aspect) if p.kind == "guide" else None
    if led:
        return led
    items = _short_items(p.text)
    if p.section.startswith("常见问题"):
        return next((i[2:] for i in items if i.startswith("答：")), items[-1] if items else "")
    if p.kind == "policy":
        return _first_sentences(_without_heading(p).replace("\n", ""), MAX_ITEM_CHARS * 2)
    if p.section == MATERIALS:  # names only; details are one tap away in the sources
        items = [i.split("，")[0] + ("（可免于提交）" if "免于提交" in i else "") for i in items]
        more = "等" if len(items) > 4 else ""
        return f"需要准备：{'、'.join(items[:4])}{more}。"
    shown = [i.rstrip("。；") for i in items[:MAX_SENTENCES]]
    more = "等" if len(items) > MAX_SENTENCES else ""
    return "；".join(shown) + f"{more}。"


def validity_note(p: Passage) -> str:
    """For an answer from a published document: that it has expired or was replaced, or
    which earlier document it replaced. Judged today, since validity runs out with time."""
    m = p.meta
    if p.kind != "policy" or not any(m.get(k) for k in ("status", "valid_until", "replaces", "superseded_by")):
        return ""
    expired = expiry(DocumentMeta(status=m.get("status"), valid_until=m.get("valid_until")))
    newer = m.get("superseded_by")
    if expired or newer:
        note = f"请注意：{expired or '该文件已有新版本'}"
        if newer:
            note += f"，已被{m.get('superseded_by_title') or newer}替代"
        return note + "，请以现行规定为准。"
    if m.get("replaces"):
        return f"本文件替代了{m['replaces']}。"
    return ""


def _without_heading(p: Passage) -> str:
    """A document section's words without the number and heading the citation already shows."""
    if "heading_path" not in p.meta:
        return p.text
    def bare(text: str) -> str:
        return re.sub(r"[\s（）()【】]", "", text)

    headings = {bare(h) for h in p.meta["heading_path"]}
    lines = [l for l in p.text.splitlines() if l.strip()]
    while len(lines) > 1 and bare(lines[0]) in headings:
        lines = lines[1:]  # 第三章 总则 / 第四条（申请条件）: headings, not the answer
    return strip_label("\n".join(lines))


def _where_and_phone(retriever: Retriever, p: Passage, audience: str) -> str:
    if p.kind != "guide":
        return ""
    parts = []
    if p.section not in (CHANNELS, CONTACT):
        q = next((q for q in retriever.passages_of(p.doc_id) if q.section == CHANNELS), None)
        where = _line(q.text, "办理地点") if q else ""
        if where:
            parts.append(_first_sentences(where, 80).rstrip("。"))
    phone = p.meta.get("consult_phone") or HOTLINE
    if p.section != CONTACT and not (audience == "agent" and phone == HOTLINE):
        parts.append(f"咨询电话：{phone}")
    return "；".join(parts[:2]) + "。" if parts else ""


def _source(p: Passage, score: float) -> dict[str, Any]:
    return {"doc_id": p.doc_id, "title": p.title, "section": p.section, "citation": p.citation,
            "score": round(score, 4), "meta": {k: v for k, v in p.meta.items() if v is not None and k != "keywords"}}


def _follow_ups(retriever: Retriever, top: Passage, others: list[Passage]) -> list[dict[str, str]]:
    """Other sections of the guide used, then other guides found."""
    buttons = []
    if top.kind == "guide":
        for section in FOLLOW_UP_SECTIONS:
            if section != top.section and any(q.section == section for q in retriever.passages_of(top.doc_id)):
                buttons.append({"title": section, "payload": f"{top.title}的{section}"})
    for other in others:
        if other.kind == "guide" and other.doc_id != top.doc_id:
            buttons.append({"title": f"看看《{other.title}》", "payload": f"{other.title}怎么办理"})
    return buttons[:3]


def asked_section(query: str) -> str | None:
    aspect = asked_aspect(query)
    return ASPECT_SECTION.get(aspect) if aspect else None


def section_passage(retriever: Retriever, doc_id: str, section: str) -> Passage | None:
    return next((p for p in retriever.passages_of(doc_id) if p.section == section), None)


def best_passage(retriever: Retriever, result: SearchResult, aspect: str | None = None) -> Passage:
    """The top hit, or the section of its guide that the question asks about. A question that
    asks nothing in particular ("营业执照怎么办") is not answered with phones or legal basis."""
    top = result.hits[0].passage
    wanted = ASPECT_SECTION.get(aspect or asked_aspect(result.query) or "")
    if top.kind != "guide":
        return top
    if wanted and top.section != wanted:
        return section_passage(retriever, top.doc_id, wanted) or top
    if not wanted and top.section in (CONTACT, BASIS):
        same = [h.passage for h in result.hits if h.passage.doc_id == top.doc_id
                and h.passage.section not in (CONTACT, BASIS)]
        return same[0] if same else section_passage(retriever, top.doc_id, PROCESS) or top
    return top


def answer_from(retriever: Retriever, p: Passage, score: float, *, aspect: str | None = None,
                mode: str = "fresh", others: list[Passage] | None = None, extra_sources: list[dict] | None = None,
                audience: str = "citizen") -> Answer:
    """A confident answer from one passage: the fact asked for, then where and whom to call."""
    body = _body(p, aspect)
    text = f"根据{p.citation}：{body}"
    for more in (validity_note(p), _where_and_phone(retriever, p, audience)):
        if more:
            text += ("" if text.endswith(("。", "！", "？", "……")) else "。") + more
    if audience == "agent":
        text = "您好，" + text
    sources = [_source(p, score)] + [s for s in (extra_sources or []) if s["citation"] != p.citation][:2]
    turn = {"kind": "answer", "mode": mode, "doc_id": p.doc_id, "section": p.section,
            "aspect": aspect or SECTION_ASPECT.get(p.section)}
    return Answer(text, True, _new_id(), sources, _follow_ups(retriever, p, others or []), turn)


def unsure(result: SearchResult, audience: str = "citizen") -> Answer:
    sources = [_source(h.passage, h.score) for h in result.hits[:3]]
    tops = result.top_docs()[:3]
    titles = _distinct_titles([h.passage for h in tops])
    if audience == "agent":
        text = (f"这个问题没有找到有把握的办事指南，最接近的是：{'、'.join(titles)}。"
                "建议先向来电人确认具体要办理的事项，或按规定转交相关部门。")
        buttons = []
    else:
        phone = tops[0].passage.meta.get("consult_phone") or HOTLINE if tops else HOTLINE
        extra = f"，或拨打该事项咨询电话{phone}" if phone != HOTLINE else ""
        text = (f"这个问题我不太确定。和您的问题最接近的是：{'、'.join(titles)}。"
                f"您可以换个说法再问，也可以转人工或拨打市民服务热线{HOTLINE}{extra}。")
        buttons = [{"title": "转人工", "payload": "/request_human"}]
    buttons += [{"title": t, "payload": f"{h.passage.title}怎么办理"} for t, h in zip(titles[:2], tops)]
    return Answer(text, False, _new_id(), sources, buttons, {"kind": "unsure", "mode": "fresh"})


def _distinct_titles(passages: list[Passage]) -> list[str]:
    """《title》 per document; two versions of one regulation are told apart by their 文号."""
    names = [f"《{p.title}》" for p in passages]
    twice = {n for n in names if names.count(n) > 1}
    for i, p in enumerate(passages):
        if names[i] in twice and (p.meta.get("doc_number") or p.meta.get("date")):
            names[i] += f"（{p.meta.get('doc_number') or p.meta.get('date')}）"
    return names


def ask_what(aspect: str | None = None) -> Answer:
    """Too little to go on and nothing said before: ask what the person wants to do."""
    if aspect:
        text = (f"请问您想了解哪一项业务的{ASPECT_LABEL[aspect]}？请告诉我要办的事情，"
                f"例如\"营业执照{_EXAMPLE[aspect]}\"。")
    else:
        text = "您好，请用一句话告诉我您想办理的事情，例如\"开个小饭店要准备什么\"。"
    return Answer(text, False, _new_id(), [], [], {"kind": "ask", "mode": "fresh", "aspect": aspect})


_EXAMPLE = {"online": "能在网上办吗", "fee": "收费吗", "time": "要多久", "where": "在哪里办", "phone": "打什么电话",
            "basis": "依据什么规定", "conditions": "要什么条件", "process": "怎么办理", "materials": "要带什么材料",
            "overview": "怎么办"}


def section_menu(retriever: Retriever, doc_id: str, title: str) -> Answer:
    """A follow-up that says nothing specific ("那个呢"): offer the parts of the guide in context."""
    buttons = [{"title": s, "payload": f"{title}的{s}"} for s in FOLLOW_UP_SECTIONS
               if section_passage(retriever, doc_id, s)]
    return Answer(f"您想了解《{title}》的哪方面？可以问申请材料、办理时限、办理地点、收费或流程。",
                  False, _new_id(), [], buttons[:5], {"kind": "ask", "mode": "followup", "doc_id": doc_id})


def clarify(options: list[tuple[str, str]], aspect: str | None = None) -> Answer:
    """One short question with a button per guide: (doc_id, title) pairs, best first."""
    shorts = [short_title(t) for _, t in options]
    labels = shorts if len(set(shorts)) == len(shorts) else [t for _, t in options]  # 提取（租房）/（购房）
    names = [f"《{label}》" for label in labels]
    asked = "、".join(names[:-1]) + f"还是{names[-1]}"
    what = f"的{ASPECT_LABEL[aspect]}" if aspect and aspect != "overview" else ""
    buttons = [{"title": label, "payload": f'/{CHOOSE_INTENT}{{"{CHOICE_ENTITY}": "{d}"}}'}
               for (d, _), label in zip(options, labels)]
    return Answer(f"您是要办理{asked}？我好告诉您对应{what or '的办理方法'}。", False, _new_id(), [], buttons,
                  {"kind": "clarify", "mode": "fresh", "options": [d for d, _ in options], "aspect": aspect})


def compose(retriever: Retriever, result: SearchResult, aspect: str | None = None,
            audience: str = "citizen", confident: bool | None = None) -> Answer:
    """A reply from one search result, without conversation context. `confident` overrides
    retrieval's own confidence (the dialogue has other evidence)."""
    if result.reason == "empty" or not result.hits:
        return ask_what()
    if not (result.confident if confident is None else confident):
        return unsure(result, audience)
    top = best_passage(retriever, result, aspect)
    sources = [_source(h.passage, h.score) for h in result.hits[:3]]
    others = [h.passage for h in result.top_docs()[1:]]
    return answer_from(retriever, top, result.hits[0].score, aspect=aspect or asked_aspect(result.query),
                       others=others, extra_sources=sources, audience=audience)
