"""Split knowledge-base documents into field-aware passages that know what they cite."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from .documents import Document
from .documents.metadata import cited_title
from .documents.structure import sections as document_sections
from .knowledge import FaqRow, Guide, KnowledgeBase, Material, PolicySection

# Section names, as a citation shows them: 《title》section.
OVERVIEW, CONDITIONS, MATERIALS, PROCESS, CHANNELS, TIME_FEE, BASIS, CONTACT, FAQ = (
    "事项概述", "申请条件", "申请材料", "办理流程", "办理方式和地点", "办理时限和收费", "设定依据",
    "咨询和投诉", "常见问题",
)


@dataclass
class Passage:
    doc_id: str
    title: str  # guide or document title, for citations
    section: str
    text: str  # what is indexed and shown
    kind: str  # guide | policy | faq
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Content hash: an unchanged passage keeps its key, so its vector can be reused."""
        raw = "\x1f".join((self.doc_id, self.title, self.section, self.text))
        return hashlib.sha1(raw.encode("utf-8")).hexdigest()

    @property
    def citation(self) -> str:
        if self.kind == "faq" and self.title == self.doc_id and self.meta.get("source"):
            # an answer-only FAQ row: name its table and row id, not a bare id as a title
            stem = self.meta["source"].replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
            return f"《{stem}》{self.section}（{self.doc_id}）"
        return f"《{self.title}》{self.section}" + _document_note(self.meta)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _document_note(meta: dict[str, Any]) -> str:
    """（第5页，沪住建规范〔2023〕2号，2023-05）: where in a published document, and which one."""
    parts = []
    pages = meta.get("pages")
    if pages:
        parts.append(f"第{pages[0]}页" if pages[0] == pages[1] else f"第{pages[0]}–{pages[1]}页")
    parts += [meta[k] for k in ("doc_number", "date") if meta.get(k)]
    return f"（{'，'.join(parts)}）" if parts else ""


def material_line(m: Material) -> str:
    parts = [m.name, f"{m.form}{m.copies}份" if m.form != "电子" else "电子材料"]
    if m.exempt:
        parts.append(f"免于提交（{m.exempt_reason}" + (f"：{m.e_license}）" if m.e_license else "）"))
    if m.note:
        parts.append(m.note)
    return "，".join(parts)


def _numbered(items: tuple[str, ...] | list[str]) -> str:
    return "\n".join(f"{i}. {item}" for i, item in enumerate(items, 1))


def guide_passages(g: Guide) -> list[Passage]:
    """One passage per guide part, so an answer cites exactly the part it used."""
    meta = {"category": g.category, "department": g.department, "consult_phone": g.consult_phone}
    time_text = "；".join(f"{'法定时限' if k == 'legal' else '承诺时限'}：{v}" for k, v in g.time_limit.items())
    where = "办理地点：" + "；".join(g.locations)
    if g.online_entrance:
        where += f"\n网上办理入口：{g.online_entrance}"
    sections = [
        (OVERVIEW, f"{g.scope}\n办理机构：{g.department}；服务对象：{'、'.join(g.audience)}。"
                   f"\n常见说法：{'、'.join(g.keywords)}"),
        (CONDITIONS, _numbered(g.conditions)),
        (MATERIALS, _numbered([material_line(m) for m in g.materials])),
        (PROCESS, _numbered(g.process)),
        (CHANNELS, f"办理方式：{'、'.join(g.channels)}\n{where}"),
        (TIME_FEE, f"{time_text}\n收费标准：{g.fee}"),
        (BASIS, "；".join(g.basis)),
        (CONTACT, f"咨询电话：{g.consult_phone}；投诉电话：{g.complaint_phone}"),
    ]
    out = [Passage(g.id, g.title, s, t, "guide", dict(meta)) for s, t in sections]
    out[0].meta["keywords"] = list(g.keywords)  # what people call the service: names it in a follow-up
    for i, (q, a) in enumerate(g.faq, 1):
        out.append(Passage(g.id, g.title, f"{FAQ}{i}", f"问：{q}\n答：{a}", "guide", dict(meta)))
    return out


def policy_passage(p: PolicySection) -> Passage:
    if p.task_no is None:
        section = p.title
    else:
        section = f"第{p.task_no}项 {p.title}" + (f"（牵头单位：{p.lead}）" if p.lead else "")
    meta = {"task_no": p.task_no, "task_title": p.title, "lead": p.lead}
    return Passage(p.doc_id, p.document, section, p.text, "policy", meta)


def faq_passage(row: FaqRow) -> Passage:
    text = f"问：{row.question}\n答：{row.answer}" if row.question else row.answer
    return Passage(row.doc_id, row.question or row.doc_id, "问答", text, "faq", {"source": row.source})


DOCUMENT_META = ("doc_number", "issuer", "date", "url", "status", "valid_until", "replaces", "superseded_by",
                 "superseded_by_title")


def document_passages(doc: Document) -> list[Passage]:
    """One passage per citable section of a published document (an article, an outline item,
    a window of a long one), or per few rows of a table. Metadata travels with each, so a
    citation names the 文号 and an answer can say the document has expired."""
    title = cited_title(doc.meta.title)
    base = {k: getattr(doc.meta, k) for k in DOCUMENT_META if getattr(doc.meta, k)}
    base.update(format=doc.format, source=doc.path, document=doc.meta.title)
    if doc.layout == "table":
        return _table_passages(doc, title, base)
    out = []
    notice = "印发通知" if title != doc.meta.title.strip() else "正文"
    for s in document_sections(doc.blocks):
        meta = dict(base, heading_path=list(s.path), keys=list(s.keys))
        if s.pages:
            meta["pages"] = list(s.pages)
        if s.window:
            meta["window"] = s.window
        section = s.locator if s.keys or s.locator not in ("", doc.meta.title, title) else notice
        out.append(Passage(doc.doc_id, title, section, s.text, "policy", meta))
    return out


TABLE_ROWS = 8


def _table_passages(doc: Document, title: str, base: dict[str, Any]) -> list[Passage]:
    """A list (materials, fees, offices) in runs of rows; the header travels with each run."""
    out = []
    rows = [b for b in doc.blocks if b.row]
    for start in range(0, len(rows), TABLE_ROWS):
        run = rows[start: start + TABLE_ROWS]
        sheet = run[0].sheet if run[0].sheet and run[0].sheet not in ("Sheet", "Sheet1", "工作表1") else ""
        section = f"{sheet}第{run[0].row}–{run[-1].row}行" if len(run) > 1 else f"{sheet}第{run[0].row}行"
        out.append(Passage(doc.doc_id, title, section, "\n".join(b.text for b in run), "policy",
                           dict(base, rows=[run[0].row, run[-1].row], sheet=run[0].sheet)))
    return out


def split(kb: KnowledgeBase) -> list[Passage]:
    out: list[Passage] = []
    for g in kb.guides:
        out.extend(guide_passages(g))
    out.extend(policy_passage(p) for p in kb.policies)
    out.extend(faq_passage(r) for r in kb.faqs)
    for doc in kb.documents:
        out.extend(document_passages(doc))
    return out


def index_text(p: Passage) -> str:
    """What the indexes see: the title travels with every section, so 'materials for X' matches."""
    if p.kind == "faq":
        return p.text
    path = p.meta.get("heading_path")
    if path:  # a document's section: its chapter and heading words belong to it
        return f"{p.title} {' '.join(path)}\n{p.text}"
    return f"{p.title} {p.section}\n{p.text}"


def user_dictionary_terms(kb: KnowledgeBase) -> list[str]:
    """Guide titles and key terms, so jieba keeps '营业执照' or '一窗通' in one piece."""
    terms: set[str] = set()
    for g in kb.guides:
        for raw in (g.title, *g.keywords):
            for piece in _split_title(raw):
                if 2 <= len(piece) <= 12:
                    terms.add(piece)
        for m in g.materials:
            if m.e_license and len(m.e_license) <= 12:
                terms.add(m.e_license)
    return sorted(terms)


def _split_title(title: str) -> list[str]:
    for ch in "（）()“”\"、，,：:；;《》":
        title = title.replace(ch, " ")
    return [t for t in title.split() if t]
