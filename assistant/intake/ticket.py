"""Draft a 工单 from a citizen's message: place, time, a short extractive summary, urgency,
type (投诉/举报/求助/建议) and, with a trained model, the category and its 承办单位.

    draft = draft_ticket("盈浦街道XX小区3号楼电梯昨天晚上又坏了，把人关在里面半小时", model)
    draft.to_dict()   # {"type": "投诉", "category": "城乡建设", "categories": [...], "department": ...,
                      #  "place": "盈浦街道XX小区3号楼", "time": "昨天晚上", "summary": ..., "urgency": "一般"}

Places and times are copied as written (placeholders such as "A市", "XX小区" stay). The
summary is made of whole sentences of the message (or a run of clauses of one long sentence),
at most 100 characters. A draft is for a person to check, never filed unseen.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from .data import FALLBACK_CATEGORY, load_departments
from .kind import classify_message

SUMMARY_MAX = 100
TOWNS = ("夏阳街道", "盈浦街道", "香花桥街道", "朱家角镇", "练塘镇", "金泽镇", "赵巷镇", "徐泾镇", "华新镇", "重固镇", "白鹤镇")
# Short forms common enough to mean the town (华新, 白鹤 also name roads and firms: suffix needed).
TOWN_SHORT = {"夏阳": "夏阳街道", "盈浦": "盈浦街道", "香花桥": "香花桥街道", "朱家角": "朱家角镇", "练塘": "练塘镇",
              "金泽": "金泽镇", "赵巷": "赵巷镇", "徐泾": "徐泾镇", "重固": "重固镇"}

# A place name: letters, digits and Chinese characters except function words that start or
# end a phrase ("住在", "我家", "的"), so "我家住在XX路" yields "XX路".
_STOP = "在住于到的是和与从向往把被了我你他她它们这那个就都也还及或对给让说有没很太又再才将要会能可以每天旁边附近去来为以而但并且其该此已想叫由使过一"
_NAME = rf"[^\W_{_STOP}]"
_NUM = r"[0-9０-９一二三四五六七八九十百零〇]+"
# A short form followed by a road suffix is a road (徐泾北路), not the town.
_TOWN_RE = re.compile("|".join(TOWNS) + "|(" + "|".join(sorted(TOWN_SHORT, key=len, reverse=True))
                      + r")(?![^\W\d_]{0,2}(公路|大道|路|街(?!道))|站)")
_TOWN_ANY = re.compile("|".join(sorted(TOWNS + tuple(TOWN_SHORT), key=len, reverse=True)))
_PLACE_RES = (
    # district and placeholders: 青浦区, A市, C2区, G4县, 某某镇, XX街道
    re.compile(r"(上海市)?青浦区|(?<![A-Za-z])[A-Z][0-9]{0,2}(市|区|县|镇|街道|乡)|(XX|xx|ＸＸ|某某|某)(市|区|县|镇|街道|乡)"),
    # roads with 弄/号/楼/室: 公园路123弄5号, 外青松公路, XX路
    re.compile(rf"{_NAME}{{1,8}}?(公路|大道|大街|(?<![线道马出思网电铁走半水])路|街(?!道)|巷)({_NUM}(弄|号|支弄))*({_NUM}(号楼|幢|栋|室))*"),
    # housing estates and buildings: XX小区3号楼, 华新苑, 某某新村
    re.compile(rf"{_NAME}{{1,8}}?(小区|花园|新村|公寓|家园|苑|大厦|广场|商业街)({_NUM}(号楼|幢|栋|号|单元|室|楼))*"),
    # villages with 组/号: XX村3组, 某村
    re.compile(rf"{_NAME}{{1,6}}?村(?!委|民|里|子|干部|口)({_NUM}(组|号))*"),
    # facilities and stations: 区中心医院, 朱家角站, XX工业区
    re.compile(rf"{_NAME}{{2,5}}?(工业园区|工业区|园区|医院|卫生院|小学|中学|幼儿园|学校|菜市场|农贸市场|地铁站|公交站|客运站|(?<=[^\W\d_])站(?![台点长]))"),
)
_NOT_PLACE = re.compile(r"^(学校|医院|小区|社区)$|(农村|乡村|本村|全村|整个村|整村|各村|同村|邻村)$")
_PLACEHOLDER = re.compile(r"^(XX|xx|ＸＸ|某某|某|[A-Z][0-9]{0,2})")

_T_NUM = r"[0-9０-９零一二三四五六七八九十两]"
_TIME_RES = (
    re.compile(rf"([0-9０-９]{{4}}|[0-9０-９]{{2}}(?=年(?!代))|[〇零一二三四五六七八九]{{4}})年({_T_NUM}{{1,2}}月(份)?)?({_T_NUM}{{1,3}}[日号])?"
               rf"|(?<![个多几])(?<![\d-])[0-9０-９一二三四五六七八九十]{{1,2}}月(份)?(?![多龄])({_T_NUM}{{1,3}}[日号])?"),
    re.compile(r"今天|昨天|前天|昨晚|今晚|今早|昨日|今日|前几天|这几天|这两天|最近|近期|近日|近来|上周[一二三四五六日天末]?|本周[一二三四五六日天末]?|"
               r"这周|上个月|这个月|本月|上月|去年|今年|前年|年底|年初|月底|月初|周末|节假日|春节|国庆|暑假|寒假|早高峰|晚高峰|"
               r"高峰(时段|期)?|白天|夜里|夜间|半夜|深夜|凌晨|早上|早晨|上午|中午|下午|傍晚|晚上|每晚|每天|天天|每周[一二三四五六日天末]?|"
               r"每个月|每月|每年|每逢"),
    re.compile(rf"(?<![有好快差慢早晚多少第])(?<!一)(?<!这){_T_NUM}{{1,3}}(点(?![用儿都也点小不没])|时(?![间候]))"
               rf"(半|{_T_NUM}{{1,2}}分)?(钟)?(以后|之后|后|左右|前|以前|多)?"),
    re.compile(rf"(已经|持续|长达|快|近|将近)({_T_NUM}+|[几半])(个)?(多)?(月|年|星期|周|天)(多)?(了|以来)?"
               rf"|({_T_NUM}+|[几半])(个)?多?(月|年|星期|周)(多)?(了|以来|(?=都没|还没|也没|没))"),
)

_URGENT = re.compile(
    r"(燃气|煤气|天然气|液化气)(泄漏|泄露|味)|漏气|着火|起火|失火|火灾|冒烟|爆炸|漏电|触电|电线(裸露|掉落|垂落)|"
    r"坍塌|倒塌|塌陷|塌方|要塌|快塌|塌了|有人受伤|受伤|流血|危险|危及|生命安全|随时可能|被困|困在电梯|困人|溺水|落水|中毒|"
    r"(井盖|窨井盖)(缺|丢|被偷|没了|破)|高空坠物|坠落|砸到|砸伤|快不行了|救命|危房|重大(安全)?隐患|严重(安全)?隐患"
)
_NEGATION = re.compile(r"(没有|没|不|无|未|不存在|并无|排除)$")
_SENTENCE = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]*")
_ENDS = re.compile(r"[。！？!?；;]$")
_CLAUSE = re.compile(r"[^，,、：:]+[，,、：:]*")
_SALUTATION = re.compile(r"^\s*((尊敬的)?[^，。：:！!]{0,6}(领导|局长|厅长|书记|县长|市长|区长|镇长|主任)(们)?(同志)?"
                         r"([：:，,！!]+|(?=您好|你好))\s*)?((你好|您好)[，,！!。：:]*\s*)?")
_SALUTATION_MID = re.compile(r"(?:尊敬的)?[^，。：:！!？?\s的]{0,5}(?:领导|局长|厅长|书记|县长|市长|区长|镇长|主任)(?:们)?(?:同志)?"
                             r"(?:您好|你好)?[：:]")
_THANKS = re.compile(r"^(谢谢|感谢|多谢|麻烦了|辛苦了|此致|敬礼)")


class Ranker(Protocol):  # an IntakeModel, or anything that ranks categories the same way
    def predict(self, text: str, k: int = 3) -> list[tuple[str, float]]: ...
    def is_confident(self, ranked: Sequence[tuple[str, float]]) -> bool: ...


@dataclass
class TicketDraft:
    type: str | None
    category: str | None  # None: the classifier is not confident, the agent chooses
    categories: list[dict[str, Any]]
    department: str
    place: str | None
    time: str | None
    summary: str
    urgency: str  # 紧急 / 一般
    town: str | None = None
    is_question: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "category": self.category, "categories": self.categories,
                "department": self.department, "place": self.place, "time": self.time,
                "summary": self.summary, "urgency": self.urgency}


# ---------------------------------------------------------------- extraction


def _masked(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for s, e in spans:
        chars[s:e] = "，" * (e - s)
    return "".join(chars)


def _chains(spans: list[tuple[int, int]], text: str, joiners: str = "") -> list[str]:
    """Adjacent spans (or separated only by `joiners`) become one phrase, in text order."""
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and (s <= out[-1][1] or all(c in joiners for c in text[out[-1][1]:s])):
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [text[s:e] for s, e in out]


def find_town(text: str) -> str | None:
    """The first of Qingpu's 3 街道 and 8 镇 the message names (full name)."""
    m = _TOWN_ANY.search(text or "")
    return None if not m else TOWN_SHORT.get(m.group(0), m.group(0))


def extract_place(text: str, limit: int = 3) -> str | None:
    """Where it happens, as written: 街镇, roads with 弄/号, 小区, 村, facilities; up to
    `limit` phrases joined with "、"."""
    text = text or ""
    spans = [m.span() for m in _TOWN_RE.finditer(text)]
    work = _masked(text, spans)
    for pattern in _PLACE_RES:
        found = []
        for m in pattern.finditer(work):
            s, e = m.span()
            while s < e and work[s] in _STOP:  # a lazy name may still start on a function word
                s += 1
            phrase = text[s:e]
            core = re.sub(r"[0-9０-９].*$", "", phrase)
            if _NOT_PLACE.match(core) or (len(core) < 3 and not _PLACEHOLDER.match(core) and pattern is not _PLACE_RES[0]):
                continue
            found.append((s, e))
        spans += found
        work = _masked(work, found)
    chains = list(dict.fromkeys(_chains(spans, text)))
    chains = [c for c in chains if not any(c != o and c in o for o in chains)]  # "B6县" inside "B市B6县"
    return "、".join(chains[:limit]) or None


def extract_time(text: str, limit: int = 2) -> str | None:
    """When, if stated: dates (2024年3月), days and parts of the day (昨天晚上), clock times
    (10点后), frequency (每天) and how long it has lasted (已经两个月了); up to `limit` phrases."""
    text = text or ""
    spans: list[tuple[int, int]] = []
    for pattern in _TIME_RES:
        spans += [m.span() for m in pattern.finditer(text) if not any(s < m.end() and m.start() < e for s, e in spans)]
    phrases = _chains(spans, text, joiners="的")
    return "，".join(dict.fromkeys(phrases[:limit])) or None


def urgency(text: str) -> str:
    """紧急 for a safety hazard or ongoing danger (燃气泄漏, 着火, 漏电, 塌, 有人受伤, 危险 …), else 一般."""
    for m in _URGENT.finditer(text or ""):
        if not _NEGATION.search(text[max(0, m.start() - 3):m.start()]):
            return "紧急"
    return "一般"


def _sentences(text: str) -> list[str]:
    """Sentences as written; a salutation inside the text ("…污染环境尊敬的K市环保局领导：我是…",
    a subject line joined to the letter) also ends one."""
    out = []
    for piece in _SALUTATION_MID.split(text):
        out += [m.group(0) for m in _SENTENCE.finditer(piece or "") if m.group(0).strip()]
    return out


def _sentence_score(sentence: str, first: bool) -> float:
    """Signs of a 诉求 (capped, so a long sentence does not win by length alone), danger, a
    place, and the first sentence (often the subject line); concise sentences preferred."""
    body = sentence.strip()
    if _THANKS.match(body) or len(re.sub(r"[\W_]", "", body)) < 4:
        return -1.0
    score = min(classify_message(body).score, 4) + 2 * (urgency(body) == "紧急")
    score += 0.5 * bool(extract_place(body)) + (3 if len(body) <= 50 else 1) * first  # a subject line
    return score - 0.03 * max(0, len(body) - 50)


def summarize(text: str, limit: int = SUMMARY_MAX) -> str:
    """The sentences that carry the complaint, in their order, at most `limit` characters.
    Each sentence is copied from the message (a leading salutation "尊敬的领导：" dropped)."""
    text = (text or "").strip()
    if not text:
        return ""
    units = []
    for i, s in enumerate(_sentences(text)):
        s = s[_SALUTATION.match(s).end():].strip().lstrip("：:，,、；; ")
        if s:
            units.append((i, s, _sentence_score(s, i == 0)))
    if not units:
        return text[:limit]
    ranked = sorted(units, key=lambda u: -u[2])
    best = ranked[0]
    if len(best[1]) > limit:  # one long sentence: its best-scoring run of clauses
        return _clause_window(best[1], limit)
    chosen, total = [best], len(best[1])
    for u in ranked[1:]:
        if u[2] > 0 and total + len(u[1]) + 1 <= limit:  # +1: a full stop may join it
            chosen.append(u)
            total += len(u[1]) + 1
    parts = [s for _, s, _ in sorted(chosen)]
    # a sentence without its own end (a subject line) gets a full stop when another follows
    return "".join(p if i == len(parts) - 1 or _ENDS.search(p) else p + "。" for i, p in enumerate(parts))


def _clause_window(sentence: str, limit: int) -> str:
    clauses = [m.group(0) for m in _CLAUSE.finditer(sentence)]
    best, best_score = "", float("-inf")
    for i in range(len(clauses)):
        window = ""
        for c in clauses[i:]:
            if len(window) + len(c) > limit:
                break
            window += c
        if not window:
            continue
        score = classify_message(window).score - 0.5 * i / len(clauses)
        if score > best_score:
            best, best_score = window, score
    return (best or sentence[:limit]).rstrip("，,、：:")


# ---------------------------------------------------------------- the draft


def draft_ticket(text: str, model: Ranker | None = None) -> TicketDraft:
    """A 工单 draft. Without a model, or when the model is not confident, `category` is None and
    the department is the hotline office's manual routing (the agent chooses)."""
    departments = load_departments()
    kind = classify_message(text)
    ranked = model.predict(text, k=3) if model is not None else []
    confident = model is not None and model.is_confident(ranked)
    category = ranked[0][0] if confident and ranked[0][0] in departments else None
    town = find_town(text)
    notes = [] if confident else ["未加载分类模型，请人工选择类别" if model is None else "分类置信度不足，请人工选择类别"]
    if not kind.is_complaint:
        notes.append("未识别出诉求，可能是咨询")
    dept = departments[category] if category else departments[FALLBACK_CATEGORY]
    return TicketDraft(
        type=kind.type, category=category,
        categories=[{"category": c, "score": s} for c, s in ranked],
        department=dept.for_town(town), place=extract_place(text), time=extract_time(text),
        summary=summarize(text), urgency=urgency(text), town=town, is_question=kind.is_question, notes=notes)
