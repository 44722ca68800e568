"""Split a Chinese official document into citable sections by the numbering it uses
(第X章 / 第X节 / 第X条, 一、 / （一） / 1. / （1）) and by heading styles.

Each numbering kind has a fixed depth: chapters hold articles, articles hold items, 一、 holds
（一）, which holds 1., which holds （1）. A label is taken as numbering only when it continues
the count of its kind (二 after 一, 第五条 after 第四条) or starts one (一, 1, 第一条), so
"3.5米" or a sentence that happens to start with "第三条规定" does not open a section."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .model import Block

_CN = "零〇一二三四五六七八九十百千两"
CHAPTER, SECTION, ARTICLE, OUTLINE1, OUTLINE2, OUTLINE3, OUTLINE4 = 1, 2, 3, 4, 5, 6, 7
ATTACHMENT = 0.5  # 附件 / 附件1: a new part of the document, above its own chapters
_PATTERNS = [
    (CHAPTER, re.compile(rf"^第([{_CN}\d]+)章")),
    (SECTION, re.compile(rf"^第([{_CN}\d]+)节")),
    (ARTICLE, re.compile(rf"^第([{_CN}\d]+)条")),
    (OUTLINE1, re.compile(r"^([一二三四五六七八九十]+)[、．.]")),
    (OUTLINE2, re.compile(r"^[（(]([一二三四五六七八九十]+)[）)]")),
    (OUTLINE3, re.compile(r"^(\d{1,2})(?:[、．]|\.(?!\d))")),
    (OUTLINE4, re.compile(r"^[（(](\d{1,2})[）)]")),
]
_ATTACHMENT = re.compile(r"^附件\s*([0-9一二三四五六七八九十]*)\s*[:：]?\s*$")
# Only these ranks are what a citation points at; chapters and attachments only frame them.
CITABLE = (ARTICLE, OUTLINE1, OUTLINE2, OUTLINE3, OUTLINE4)
MAX_CHARS = 500  # a section longer than this is split into its children, or into windows
WINDOW, OVERLAP = 400, 80
HEADING_MAX = 40  # a numbered line this short without a full stop is a heading, not a paragraph


@dataclass
class Node:
    rank: float
    label: str = ""  # as displayed in a citation: 第十二条, 三、, （二）, 1.
    key: str = ""  # as matched: 第十二条, 三, （二）, 1
    title: str = ""  # 【施工许可申请】 or a heading's words
    lines: list[tuple[str, int | None]] = field(default_factory=list)  # (text, page)
    children: list["Node"] = field(default_factory=list)

    def all_lines(self) -> list[tuple[str, int | None]]:
        out = list(self.lines)
        for child in self.children:
            out += child.all_lines()
        return out

    def size(self) -> int:
        return sum(len(t) for t, _ in self.all_lines())


@dataclass
class Section:
    labels: tuple[str, ...]  # citable labels from outer to inner, with any 附件 before them
    keys: tuple[str, ...]  # matching keys of the citable labels only (第十二条, 三, （二）)
    path: tuple[str, ...]  # every heading from outer to inner (chapters included), for the index
    text: str
    pages: tuple[int, int] | None
    window: int = 0  # 1, 2, … when a long section was cut into windows

    @property
    def locator(self) -> str:
        """What a citation shows after the title: 第十二条 / 三、（二） / 附件1第三条; for an
        unnumbered document, its nearest heading."""
        if self.keys:
            return "".join(self.labels)
        return next((p for p in reversed(self.path) if p), "")


def cn_number(text: str) -> int | None:
    """12, 十二, 二十三, 一百零五 -> int; None if the text is not a number."""
    if text.isdigit():
        return int(text)
    digits = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
    total, current = 0, 0
    for ch in text:
        if ch in digits:
            current = digits[ch]
        elif ch in "十百千":
            unit = {"十": 10, "百": 100, "千": 1000}[ch]
            total += (current or 1) * unit
            current = 0
        else:
            return None
    return total + current


def _label(line: str) -> tuple[float, int, str, str] | None:
    """(rank, number, display label, rest of the line) of a numbered line."""
    m = _ATTACHMENT.match(line)
    if m:
        return ATTACHMENT, cn_number(m.group(1)) if m.group(1) else 0, f"附件{m.group(1)}", ""
    for rank, pattern in _PATTERNS:
        m = pattern.match(line)
        if m:
            number = cn_number(m.group(1))
            if number is None or number == 0:
                return None
            label = m.group(0)
            if rank == OUTLINE3:
                label = m.group(1) + "."
            elif rank == OUTLINE1:
                label = m.group(1) + "、"
            elif rank in (OUTLINE2, OUTLINE4):
                label = f"（{m.group(1)}）"
            return rank, number, label, line[m.end():].strip()
    return None


def strip_label(text: str) -> str:
    """The text after a leading number and its bracketed title: '第四条（申请条件）申请…' -> '申请…'."""
    numbered = _label(text)
    if numbered is None:
        return text
    rest = numbered[3]
    return re.sub(r"^[【\[（(][^】\]）)]{1,30}[】\]）)]\s*", "", rest)


def _key(rank: float, label: str) -> str:
    return label.rstrip("、.") if rank in (OUTLINE1, OUTLINE3) else label


def _title(rank: float, rest: str) -> str:
    m = re.match(r"^[【\[（(]([^】\]）)]{1,30})[】\]）)]", rest)
    if m:
        return m.group(1)
    if rank in (CHAPTER, SECTION, ATTACHMENT):
        return rest
    if rank == ARTICLE:  # an article's first sentence is its text, not its title
        return ""
    if len(rest) <= HEADING_MAX and not re.search(r"[。；;]$", rest):
        return rest.rstrip("：:")
    return ""


def parse(blocks: list[Block]) -> Node:
    """The document as a tree of numbered nodes; text before the first number is the root's."""
    root = Node(rank=-1)
    stack = [root]
    last: dict[float, int] = {}  # last number seen per rank, under the current parents
    for block in blocks:
        line = block.text.strip()
        numbered = _label(line)
        if numbered is not None:
            rank, number, label, rest = numbered
            expected = last.get(rank, 0) + 1
            if rank != ATTACHMENT and number not in (1, expected):
                numbered = None  # "3.5米…" or a count that does not continue: ordinary text
        if numbered is None and block.heading:
            # an unnumbered styled heading frames what follows (ranks 0.1–0.6, above chapters)
            numbered = (block.heading / 10, 0, line[:30], line)
        if numbered is None:
            stack[-1].lines.append((line, block.page))
            continue
        rank, number, label, rest = numbered
        while stack[-1].rank >= rank:
            stack.pop()
        for r in list(last):
            # articles are counted through the whole text, across chapters; items restart per parent
            if r > rank and not (r == ARTICLE and rank in (CHAPTER, SECTION)):
                del last[r]
        last[rank] = number
        node = Node(rank, label, _key(rank, label), _title(rank, rest))
        node.lines.append((line, block.page))
        stack[-1].children.append(node)
        stack.append(node)
    return root


def sections(blocks: list[Block], max_chars: int = MAX_CHARS) -> list[Section]:
    """Citable sections in reading order: a node that fits in max_chars is one section with
    its children; a longer one gives its own text and then each child; a long leaf is cut
    into overlapping windows of whole sentences."""
    out: list[Section] = []
    _emit(parse(blocks), [], out, max_chars)
    return out


def _emit(node: Node, parents: list[Node], out: list[Section], max_chars: int) -> None:
    """A citable node (an article, an outline item) is one section with its children when it
    fits; chapters, attachments and headings always split, so every article is cited by
    its own number."""
    chain = parents + [node] if node.rank >= 0 else parents
    if node.rank in CITABLE and (node.size() <= max_chars or not node.children):
        _add(chain, node.all_lines(), out, max_chars)
        return
    own = [l for l in node.lines if l[0]]
    if own and (not node.children or node.rank in CITABLE or sum(len(t) for t, _ in own) > len(own[0][0])):
        _add(chain, own, out, max_chars)  # a bare chapter heading is context, not a section
    for child in node.children:
        _emit(child, chain, out, max_chars)


def _add(chain: list[Node], lines: list[tuple[str, int | None]], out: list[Section], max_chars: int) -> None:
    # a numbered 附件 is part of the address (附件1第三条); a sole 附件 is the regulation itself
    labels = tuple(n.label for n in chain if n.rank in CITABLE or (n.rank == ATTACHMENT and n.label != "附件"))
    keys = tuple(n.key for n in chain if n.rank in CITABLE)
    path = tuple(x for x in (_heading(n) for n in chain) if x)
    pages = [p for _, p in lines if p is not None]
    text = _join([t for t, _ in lines])
    pieces = _windows(text, max_chars) if len(text) > max_chars else [text]
    for i, piece in enumerate(pieces, 1 if len(pieces) > 1 else 0):
        span = _pages_of(piece, lines) if pages else None
        out.append(Section(labels, keys, path, piece, span, i))


def _heading(n: Node) -> str:
    if n.rank < 1:
        return n.title
    sep = "" if n.label.endswith(("、", ".", "）")) or not n.title else " "
    return f"{n.label}{sep}{n.title}"


def _join(lines: list[str]) -> str:
    """Lines as paragraphs; a line that a PDF wrapped mid-sentence joins the one before."""
    out: list[str] = []
    for line in lines:
        if out and not re.search(r"[。！？；：:;!?）)】」”]$", out[-1]) and not _label(line) \
                and re.match(r"[\u4e00-\u9fff，、（“]", line) and len(out[-1]) >= 20:
            out[-1] += line
        else:
            out.append(line)
    return "\n".join(out)


def _windows(text: str, size: int = WINDOW, overlap: int = OVERLAP) -> list[str]:
    sentences = [s for s in re.split(r"(?<=[。！？；\n])", text) if s.strip()]
    out, current = [], ""
    for s in sentences:
        if current and len(current) + len(s) > size:
            out.append(current.strip())
            tail = current[-overlap:]
            cut = max(tail.rfind("。"), tail.rfind("；"), tail.rfind("\n"))
            current = tail[cut + 1:] if cut >= 0 else ""
        current += s
    if current.strip():
        out.append(current.strip())
    return out


def _pages_of(piece: str, lines: list[tuple[str, int | None]]) -> tuple[int, int] | None:
    found = [p for t, p in lines if p is not None and t[:12] and t[:12] in piece]
    if not found:
        found = [p for _, p in lines if p is not None]
    return (min(found), max(found)) if found else None
