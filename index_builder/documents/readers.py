"""Readers for real document formats, each from a maintained library. A reader returns the
document's blocks in reading order plus whatever metadata the file itself carries; it raises
DocumentRefused when a file holds no readable text (a scanned PDF, a broken file)."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Callable

from .model import Block, DocumentRefused

Reader = Callable[[Path], tuple[list[Block], dict[str, str]]]
# A PDF page with fewer characters than this on average has no real text layer (a scan).
MIN_CHARS_PER_PAGE = 20
_PAGE_NUMBER = re.compile(r"^[-—–\s]*(第\s*\d+\s*页(\s*[/／共]\s*\d+\s*页?)?|\d+\s*/\s*\d+|\d{1,3})[-—–\s]*$")


def _lines(text: str, **where) -> list[Block]:
    return [Block(line.strip(), **where) for line in text.splitlines() if line.strip()]


# PDF fonts often map common characters to look-alike code points: 第⼀条 (KANGXI RADICAL ONE),
# 建筑⼯程. NFKC of just those ranges gives the ordinary characters; NFKC of everything would
# also turn full-width punctuation （，：） into ASCII.
_COMPAT = re.compile("[\u2e80-\u2fdf\uf900-\ufaff]")


def ordinary_characters(text: str) -> str:
    import unicodedata

    return _COMPAT.sub(lambda m: unicodedata.normalize("NFKC", m.group(0)), text)


# ---------------------------------------------------------------- PDF


def read_pdf(path: Path) -> tuple[list[Block], dict[str, str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentRefused(path, "PDF 已加密，无法读取文字")
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentRefused:
        raise
    except (PdfReadError, OSError, ValueError, KeyError) as exc:
        raise DocumentRefused(path, f"PDF 文件已损坏或无法解析（{type(exc).__name__}）") from exc
    chars = sum(len(re.sub(r"\s", "", p)) for p in pages)
    if not pages or chars < MIN_CHARS_PER_PAGE * len(pages):
        raise DocumentRefused(path, f"PDF 没有文字层（共 {len(pages)} 页，可读文字 {chars} 字），"
                                    "可能是扫描件：请先做文字识别（OCR）或提供带文字的版本")
    blocks = []
    for number, text in enumerate(pages, 1):
        blocks += [b for b in _lines(ordinary_characters(text), page=number) if not _PAGE_NUMBER.match(b.text)]
    info = reader.metadata or {}
    meta = {"title": str(info.get("/Title") or "").strip()}
    return blocks, {k: v for k, v in meta.items() if v}


# ---------------------------------------------------------------- Word


_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.I)


def read_docx(path: Path) -> tuple[list[Block], dict[str, str]]:
    """Paragraphs with their heading levels and tables row by row, in body order. Run text
    only: field codes (w:instrText, e.g. FORMTEXT, MERGEFIELD) are not text and are skipped."""
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises zipfile, KeyError or its own errors
        raise DocumentRefused(path, f"不是有效的 Word（.docx）文件（{type(exc).__name__}）") from exc
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if not text:
                continue
            style = (item.style.name if item.style is not None else "") or ""
            m = _HEADING_STYLE.match(style.strip())
            level = int(m.group(1)) if m else (1 if style.strip().lower() == "title" else None)
            blocks.append(Block(text, heading=level))
        elif isinstance(item, Table):
            blocks += _table_rows(item)
    if not blocks:
        raise DocumentRefused(path, "Word 文件中没有文字")
    title = (document.core_properties.title or "").strip()
    return blocks, ({"title": title} if title else {})


def _table_rows(table) -> list[Block]:
    out = []
    for row in table.rows:
        cells = []
        for cell in row.cells:  # merged cells repeat: keep each text once per row
            text = " ".join(cell.text.split())
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            out.append(Block("｜".join(cells)))
    return out


# ---------------------------------------------------------------- HTML

_DROP_TAGS = ("script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe",
              "button", "select", "svg", "template")
_NOISE = re.compile(r"nav|menu|breadcrumb|crumb|footer|header|sidebar|share|topbar|toolbar|banner|"
                    r"related|recommend|copyright|login|search|skip", re.I)
_CONTENT = re.compile(r"^(content|article|main|zoom|ivs_content|article_content|TRS_Editor|Custom_UnionStyle)$|"
                      r"(^|[-_])(content|article|zoom|detail|text)([-_]|$)", re.I)
_BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "tr", "pre", "blockquote", "dd", "dt", "td", "div")
# Chinese government portals put the document's facts in <meta> tags.
_META_TAGS = {"ArticleTitle": "title", "PubDate": "date", "ContentSource": "issuer", "ColumnName": None}


def read_html(path: Path) -> tuple[list[Block], dict[str, str]]:
    from bs4 import BeautifulSoup

    raw = path.read_bytes()
    soup = BeautifulSoup(raw, "lxml")
    meta: dict[str, str] = {}
    for tag in soup.find_all("meta"):
        key = _META_TAGS.get(str(tag.get("name") or ""))
        if key and tag.get("content"):
            meta.setdefault(key, str(tag["content"]).strip())
    if soup.title and soup.title.string and "title" not in meta:
        meta["title"] = soup.title.string.strip()
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": re.compile("navigation|banner|contentinfo", re.I)}):
        tag.decompose()
    for tag in list(soup.find_all(True)):
        if getattr(tag, "decomposed", False) or tag.attrs is None:
            continue  # inside a part already dropped
        names = " ".join([str(tag.get("id") or ""), *(tag.get("class") or [])])
        if names and _NOISE.search(names) and not _CONTENT.search(names):
            tag.decompose()
    main = _main_content(soup)
    if main is None:
        raise DocumentRefused(path, "网页中没有找到正文")
    blocks = _html_blocks(main)
    if not blocks:
        raise DocumentRefused(path, "网页中没有找到正文")
    return blocks, meta


def _main_content(soup):
    for candidate in (soup.find("main"), soup.find("article"),
                      soup.find(attrs={"id": _CONTENT}), soup.find(attrs={"class": _CONTENT})):
        if candidate is not None and len(candidate.get_text(strip=True)) >= 20:
            return candidate
    body = soup.body or soup
    # the element holding most of the page's paragraph text
    best, best_len = body, 0
    for tag in body.find_all(("div", "section", "td")):
        length = sum(len(p.get_text(strip=True)) for p in tag.find_all("p", recursive=False))
        if length > best_len:
            best, best_len = tag, length
    return best if best_len else body


def _html_blocks(main) -> list[Block]:
    out: list[Block] = []
    for tag in main.find_all(_BLOCKS):
        if tag.name == "td" or (tag.name != "tr" and tag.find(_BLOCKS)):
            continue  # cells are read with their row; containers through their children
        if tag.name == "tr":
            cells = [" ".join(c.get_text(" ").split()) for c in tag.find_all(("td", "th"))]
            text = "｜".join(c for c in cells if c)
            if text:
                out.append(Block(text))
            continue
        level = int(tag.name[1]) if re.fullmatch(r"h[1-6]", tag.name) else None
        for line in tag.get_text("\n").splitlines():
            line = " ".join(line.split())
            if line:
                out.append(Block(line, heading=level))
    if not out:  # a page of bare text
        out = _lines(main.get_text("\n"))
    return out


# ---------------------------------------------------------------- spreadsheets


def read_xlsx(path: Path) -> tuple[list[Block], dict[str, str]]:
    """Every sheet's rows; the first non-empty row of a sheet is its header, shown as
    'column：value' in each row's block text (tables.py decides FAQ or list)."""
    import openpyxl

    try:
        book = openpyxl.load_workbook(str(path), read_only=True, data_only=True)
    except Exception as exc:
        raise DocumentRefused(path, f"不是有效的 Excel（.xlsx）文件（{type(exc).__name__}）") from exc
    blocks: list[Block] = []
    try:
        for sheet in book.worksheets:
            rows = [["" if v is None else str(v).strip() for v in row] for row in sheet.iter_rows(values_only=True)]
            blocks += table_blocks(rows, sheet.title)
    finally:
        book.close()
    if not blocks:
        raise DocumentRefused(path, "表格中没有数据行")
    return blocks, {}


def read_csv(path: Path) -> tuple[list[Block], dict[str, str]]:
    text = _decode(path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    rows = [[c.strip() for c in row] for row in csv.reader(io.StringIO(text), dialect)]
    blocks = table_blocks(rows, None)
    if not blocks:
        raise DocumentRefused(path, "表格中没有数据行")
    return blocks, {}


HEADER_SEP = "\x1f"


def table_blocks(rows: list[list[str]], sheet: str | None) -> list[Block]:
    """Header row first (as a heading block whose cells are joined by HEADER_SEP), then one
    block per data row, numbered from 1."""
    rows = [r for r in rows if any(c for c in r)]
    if len(rows) < 2:
        return []
    header = [h or f"列{i + 1}" for i, h in enumerate(rows[0])]
    out = [Block(HEADER_SEP.join(header), heading=0, sheet=sheet)]
    for n, row in enumerate(rows[1:], 1):
        cells = {header[i]: c for i, c in enumerate(row[:len(header)]) if c}
        if cells:
            out.append(Block("；".join(f"{k}：{v}" for k, v in cells.items()), row=n, sheet=sheet,
                             cells=tuple(cells.items())))
    return out


# ---------------------------------------------------------------- Markdown and plain text

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|`)")


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):  # Windows-made Chinese text files are often GBK
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentRefused(path, "文字编码无法识别（需要 UTF-8 或 GBK）")


def read_text(path: Path) -> tuple[list[Block], dict[str, str]]:
    """Plain text or Markdown; its front-matter blocks are its metadata."""
    from .metadata import split_front_matter

    front, body = split_front_matter(_decode(path))
    return read_body(body, markdown=path.suffix.lower() in (".md", ".markdown")), front


def read_body(text: str, markdown: bool) -> list[Block]:
    blocks: list[Block] = []
    seen_heading = False
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if markdown:
            if line.startswith(">") and not seen_heading:
                continue  # a note before the text (e.g. where it was extracted from), not content
            m = _MD_HEADING.match(line)
            if m:
                seen_heading = True
                blocks.append(Block(_md_inline(m.group(2)), heading=len(m.group(1))))
                continue
            if re.fullmatch(r"\|?[\s:|-]+\|?", line):
                continue  # a table's rule line
            if line.startswith("|"):
                line = "｜".join(c.strip() for c in line.strip("|").split("|") if c.strip())
            line = _md_inline(re.sub(r"^(?:[-*+]\s+|>\s*)", "", line))
        if line:
            blocks.append(Block(line))
    return blocks


def _md_inline(text: str) -> str:
    return _MD_EMPHASIS.sub("", _MD_LINK.sub(r"\1", text)).strip()


READERS: dict[str, Reader] = {
    ".pdf": read_pdf, ".docx": read_docx, ".html": read_html, ".htm": read_html, ".xlsx": read_xlsx,
    ".csv": read_csv, ".md": read_text, ".markdown": read_text, ".txt": read_text,
}
REFUSED_SUFFIXES = {".doc": "旧版 Word（.doc）格式不支持：请另存为 .docx",
                    ".xls": "旧版 Excel（.xls）格式不支持：请另存为 .xlsx",
                    ".wps": "WPS 格式不支持：请另存为 .docx 或 PDF"}
