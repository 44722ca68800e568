"""Document metadata: title, 文号, issuer, date, URL and validity, from a front-matter block,
a sidecar file (<name>.meta.yml or .meta.json), the file's own properties, or the text itself
(the 文号 and 落款 date printed in it, "有效期至…" in its closing article)."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import yaml

from .model import DocumentMeta
from .structure import cn_number

# Keys as they appear in front matter and sidecars, English or Chinese.
KEYS = {
    "title": "title", "标题": "title", "名称": "title",
    "doc_number": "doc_number", "文号": "doc_number", "文件编号": "doc_number", "发文字号": "doc_number",
    "issuer": "issuer", "发布单位": "issuer", "发布机构": "issuer", "发文机关": "issuer",
    "date": "date", "发布日期": "date", "成文日期": "date", "印发日期": "date",
    "url": "url", "官方链接": "url", "链接": "url",
    "status": "status", "状态": "status", "效力": "status", "时效性": "status", "有效性": "status",
    "valid_until": "valid_until", "有效期至": "valid_until", "失效日期": "valid_until", "废止日期": "valid_until",
    "replaces": "replaces", "替代": "replaces", "代替": "replaces",
}
EXPIRED_STATUS = ("失效", "已失效", "废止", "已废止", "宣布失效", "停止执行")
DOC_NUMBER = re.compile(r"[\u4e00-\u9fa5]{1,16}[〔\[［【(（]\s*(\d{4})\s*[〕\]］】)）]\s*第?\s*(\d{1,4})\s*号")
CN_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
# "本办法自2024年10月1日起施行，有效期至2029年6月30日" / "…起实施，有效期5年"
VALID_UNTIL = re.compile(r"(?:施行|实施|执行)[^。]{0,30}?有效期(?:至|到)\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
VALID_YEARS = re.compile(r"自\s*(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日\s*起(?:施行|实施|执行)[，,]?\s*"
                         r"有效期(?:为)?\s*([0-9一二三四五六七八九十]+)\s*年")


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Leading metadata blocks ('---' fenced, or 'key: value' lines closed by '---'), merged:
    the first block to give a field wins. Returns (fields by canonical key, the rest)."""
    fields: dict[str, str] = {}
    rest = text.lstrip("\ufeff")
    while True:
        body = rest.lstrip()
        lines = body.splitlines()
        if not lines:
            break
        start = 1 if lines[0].strip() == "---" else 0
        end = next((i for i in range(start, min(len(lines), 60)) if lines[i].strip() == "---"), None)
        block = lines[start:end] if end is not None else []
        pairs = [re.match(r"^\s*([^:：\s][^:：]{0,20})\s*[:：]\s*(.*)$", l) for l in block if l.strip()]
        if end is None or not block or not all(pairs):
            break
        for m in pairs:
            key = KEYS.get(m.group(1).strip())
            value = m.group(2).strip().strip("\"'")
            if key and value and value not in ("-", "—", "无") and key not in fields:
                fields[key] = value
        rest = "\n".join(lines[end + 1:])
    return fields, rest


def read_sidecar(path: Path) -> dict[str, str]:
    """<name>.meta.yml / .meta.yaml / .meta.json beside the document."""
    for suffix in (".meta.yml", ".meta.yaml", ".meta.json"):
        side = path.with_name(path.stem + suffix)
        if side.exists():
            raw = side.read_text(encoding="utf-8")
            data = json.loads(raw) if suffix.endswith("json") else yaml.safe_load(raw)
            if not isinstance(data, dict):
                raise ValueError(f"{side}: must be a mapping of metadata fields")
            return {KEYS[k]: str(v).strip() for k, v in data.items() if k in KEYS and v not in (None, "", "-")}
    return {}


def clean_doc_number(value: str | None) -> str | None:
    """'沪住建规范〔2023〕2号 (metadata: -; …)' -> '沪住建规范〔2023〕2号'."""
    if not value:
        return None
    m = DOC_NUMBER.search(value)
    return re.sub(r"\s+", "", m.group(0)) if m else value.strip()


def iso_date(value: str | None) -> str | None:
    """'2023年3月21日', '2023-3-21', '2023-05' -> ISO (year-month kept as such)."""
    if not value:
        return None
    m = CN_DATE.search(value)
    if m:
        return f"{int(m.group(1)):04d}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    m = re.match(r"^\s*(\d{4})[-/.年](\d{1,2})(?:[-/.月](\d{1,2}))?", value)
    if not m:
        return None
    y, mo, d = m.group(1), int(m.group(2)), m.group(3)
    return f"{y}-{mo:02d}-{int(d):02d}" if d else f"{y}-{mo:02d}"


def from_text(text: str) -> dict[str, str]:
    """What the document states about itself: its 文号 (first one in the opening part), its
    落款 date (a date alone on a line), and how long it is valid."""
    out: dict[str, str] = {}
    head = text[:3000]
    m = DOC_NUMBER.search(head)
    if m:
        out["doc_number"] = re.sub(r"\s+", "", m.group(0))
    for line in head.splitlines():
        line = line.strip()
        if CN_DATE.fullmatch(line):
            out["date"] = line
            break
    m = VALID_UNTIL.search(text)
    if m:
        out["valid_until"] = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    else:
        m = VALID_YEARS.search(text)
        years = cn_number(m.group(4)) if m else None
        if m and years:
            start = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            try:
                end = start.replace(year=start.year + years) - dt.timedelta(days=1)
            except ValueError:  # 29 February
                end = start.replace(year=start.year + years, day=28)
            out["valid_until"] = end.isoformat()
    return out


def build_meta(*layers: dict[str, str], fallback_title: str) -> DocumentMeta:
    """Merge metadata layers, most trusted first (front matter or sidecar, then the file's
    properties, then what the text says)."""
    merged: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.items():
            if value and key not in merged:
                merged[key] = value
    return DocumentMeta(
        title=merged.get("title") or fallback_title,
        doc_number=clean_doc_number(merged.get("doc_number")),
        issuer=merged.get("issuer"),
        date=iso_date(merged.get("date")) or merged.get("date"),
        url=merged.get("url"),
        status=merged.get("status"),
        valid_until=iso_date(merged.get("valid_until")),
        replaces=merged.get("replaces"),
    )


def expiry(meta: DocumentMeta, today: dt.date | None = None) -> str | None:
    """Why the document no longer applies ('已失效', '有效期至2026-10-30，已过期'), or None."""
    if meta.status and any(meta.status.startswith(s) for s in EXPIRED_STATUS):
        return f"该文件已{meta.status.lstrip('已')}" if not meta.status.startswith("宣布") else f"该文件已{meta.status}"
    if meta.valid_until and len(meta.valid_until) == 10:
        today = today or dt.date.today()
        if dt.date.fromisoformat(meta.valid_until) < today:
            return f"该文件有效期至{_cn_date(meta.valid_until)}，已过有效期"
    return None


def _cn_date(iso: str) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{y}年{m}月{d}日"


# '关于印发《X》的通知' -> 'X': a notice that publishes a regulation is cited by the regulation's name.
_PUBLISHES = re.compile(r"(?:关于)?(?:修订印发|印发|转发|修订|发布|公布)(?:修改后的|修订后的|新修订的)?[^《]*《(.+)》(?:的)?通知$")
_PUBLISHES_BARE = re.compile(r"(?:关于(?:印发|转发|发布)(?:修改后的|修订后的)?|转发.{1,20}?关于)(.+?)的通知$")


def cited_title(title: str) -> str:
    m = _PUBLISHES.search(title) or _PUBLISHES_BARE.search(title)
    return m.group(1).strip() if m else title.strip()


def same_work(title: str) -> str:
    """A key under which successive versions of one regulation meet: the cited title without
    version words or years."""
    key = cited_title(title)
    key = re.sub(r"[（(](?:试行|暂行|修订|\d{4}年?(?:修订|版)?)[）)]", "", key)
    return re.sub(r"\s|修订后的|修改后的|新修订的|\d{4}年?", "", key)


# Field labels of the information table that government portals print above a document
# (索取号 … 内容描述), each followed by its value on the next line.
PORTAL_LABELS = ("索取号", "载体类型", "发布机构", "文件编号", "记录形式", "公开类别", "关键词", "内容描述",
                 "主题分类", "信息索引号", "主题词", "发文机关", "发文字号", "成文日期", "发布日期", "生效日期",
                 "废止日期", "有效性", "公开方式", "公开范围", "信息来源", "体裁分类")


def portal_fields(lines: list[str]) -> tuple[set[int], dict[str, str]]:
    """Indices of the portal's label and value lines among the first lines of a text, and
    the metadata they give. Only a run of at least three labels counts as such a table."""
    drop: set[int] = set()
    found: dict[str, str] = {}
    labels = [i for i, line in enumerate(lines[:80]) if line.strip() in PORTAL_LABELS]
    if len(labels) < 3:
        return drop, found
    for i in labels:
        drop.add(i)
        nxt = i + 1
        if nxt < len(lines) and lines[nxt].strip() not in PORTAL_LABELS:
            drop.add(nxt)
            key = KEYS.get(lines[i].strip())
            if key and lines[nxt].strip():
                found.setdefault(key, lines[nxt].strip())
    return drop, found
