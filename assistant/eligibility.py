"""Eligibility engine for "一件事" bundles: which question next, what an answer means, whether
an earlier answer is being corrected, and the decision with an explanation and a checklist
tailored to the answers. Plain Python (no Rasa): a Rasa form keeps `answers` (a JSON-friendly
dict slot → value, `SKIPPED` for a skipped question) in a slot and calls these functions.

    q = next_question(bundle, answers)            # None when nothing more is needed
    p = parse_answer(q, text)                     # p.ok / p.skipped / p.value / p.message
    answers = apply_answer(bundle, answers, q.slot, p.value)
    c = detect_correction(bundle, answers, text)  # "刚才说错了，是外地户口"
    outcome = evaluate(bundle, answers)           # outcome.to_text() / outcome.to_dict()

`Session` wraps the same functions for one conversation.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Mapping

from assistant.bundles import (
    SKIPPED, Bundle, ChecklistItem, Condition, Question, Rule, find_bundle, load_bundles,  # noqa: F401
)

__all__ = [
    "SKIPPED", "Parsed", "Correction", "Outcome", "Session", "Turn", "find_bundle", "load_bundles",
    "next_question", "question_text", "parse_answer", "parse_number", "parse_yes_no", "parse_choice",
    "apply_answer", "detect_correction", "evaluate", "is_skip", "is_stop", "has_correction_cue",
]

UNCERTAIN = "以窗口/官方告知为准"
SKIP_WORDS = ("跳过", "略过", "不清楚", "不知道", "不确定", "说不清", "说不好", "不好说", "不记得", "记不清",
              "不了解", "不晓得", "没想好", "skip")
STOP_WORDS = ("算了", "不办了", "不想办了", "先不办", "取消", "退出", "结束办理", "不问了", "停止", "不用问了")
# Strong cues say an earlier answer was wrong; weak ones ("应该是") also occur in plain answers,
# so they only count with a clear sign of which question is meant.
STRONG_CUES = ("刚才说错了", "刚刚说错了", "前面说错了", "说错了", "搞错了", "弄错了", "记错了", "打错了", "选错了",
               "答错了", "写错了", "更正一下", "更正", "纠正一下", "纠正", "改一下", "改成", "改为")
CORRECTION_CUES = STRONG_CUES + ("应该是", "其实是", "不对")
YES_WORDS = ("是", "是的", "是啊", "对", "对的", "对啊", "嗯", "嗯嗯", "恩", "要", "要的", "需要", "需要的", "有",
             "有的", "好", "好的", "可以", "行", "会", "会的", "在", "已经", "已", "没错", "不错", "没问题", "当然",
             "肯定", "对头", "交了", "办了", "参加了", "参保了", "满了", "到了", "打算")
NO_WORDS = ("不", "否", "没", "没有", "无", "不要", "不是", "不用", "不需要", "暂时不", "暂时不用", "暂不", "还没",
            "还没有", "尚未", "未", "不会", "不在", "别", "没呢", "还不", "不对", "不打算", "没交", "没办", "不满",
            "没到", "还不到")
EXACT_YES = ("y", "yes", "ok", "okay", "1")
EXACT_NO = ("n", "no", "0")
NEGATIONS = ("不是", "并非", "没有", "非", "不")

_CN_DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "幺": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "仨": 3, "四": 4,
              "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000, "万": 10_000, "萬": 10_000,
             "亿": 100_000_000}
_NUM_CHARS = "0-9." + "".join(_CN_DIGITS) + "".join(_CN_UNITS) + "点"
_NUM_RUN = re.compile(f"[{_NUM_CHARS}]+")


# ---------------------------------------------------------------- text helpers


def _norm(text: str) -> str:
    """NFKC (full-width digits), lower case, no spaces or punctuation; units of area spelled out."""
    text = (text or "").replace("㎡", "平方米").replace("m²", "平方米")
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d)m2\b", "平方米", text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 12,000
    text = re.sub(r"[\s,，。!！?？、;；:：~～…'\"“”‘’()（）\[\]【】「」]+", "", text)
    return re.sub(r"(?<!\d)\.|\.(?!\d)", "", text)  # a full stop, not a decimal point


def _contains_any(text: str, words: tuple[str, ...]) -> str | None:
    norm = _norm(text)
    for word in sorted(words, key=len, reverse=True):
        if word in norm:
            return word
    return None


def is_skip(text: str) -> bool:
    """"跳过", "不清楚", "不知道" …: the user does not know or wants to move on."""
    return _contains_any(text, SKIP_WORDS) is not None


def is_stop(text: str) -> bool:
    """"算了", "不办了", "取消" …: the user wants to leave the form."""
    return _contains_any(text, STOP_WORDS) is not None


def has_correction_cue(text: str) -> bool:
    """"刚才说错了", "应该是", "改成" …: the user corrects an earlier answer."""
    return _contains_any(text, CORRECTION_CUES) is not None


def _strip_cues(text: str) -> str:
    norm = _norm(text)
    for cue in sorted(CORRECTION_CUES, key=len, reverse=True):
        norm = norm.replace(cue, "")
    return norm


# ---------------------------------------------------------------- numbers


def parse_number(text: str) -> int | float | None:
    """The number in a message, in Arabic or Chinese numerals or both: "65", "六十五", "七十岁",
    "两个", "1万2千平方米", "一万二千", "一万二", "0.8万", "两千五", "一百零五", "12,000".
    The longest numeric run wins ("一共八千平" → 8000); None if there is none."""
    norm = _norm(text)
    runs = [r.strip(".点") for r in _NUM_RUN.findall(norm)]
    runs = [r for r in runs if r and any(ch.isdigit() or ch in _CN_DIGITS or ch in "十拾" for ch in r)]
    if not runs:
        return None
    run = max(runs, key=len)  # max keeps the first of equally long runs
    value = _parse_run(run)
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(value, 6)


def _parse_run(run: str) -> float | None:
    # a Chinese decimal: 一点五万, 三点五
    m = re.fullmatch(r"(.+?)点([零〇○一二两三四五六七八九]+)([万萬亿]?)", run)
    if m:
        whole = _parse_run(m.group(1))
        if whole is None:
            return None
        frac = float("0." + "".join(str(_CN_DIGITS[c]) for c in m.group(2)))
        return (whole + frac) * (_CN_UNITS[m.group(3)] if m.group(3) else 1)
    if "点" in run:
        return None
    tokens: list[tuple[str, float]] = []
    for arabic, char in re.findall(r"(\d+(?:\.\d+)?)|(.)", run):
        if arabic:
            tokens.append(("num", float(arabic)))
        elif char in _CN_DIGITS:
            tokens.append(("zero" if _CN_DIGITS[char] == 0 and len(run) > 1 else "cn", _CN_DIGITS[char]))
        elif char in _CN_UNITS:
            tokens.append(("unit", _CN_UNITS[char]))
        else:
            return None
    if not any(kind == "unit" for kind, _ in tokens):
        # digits only: "65", "两", or a digit string such as "二零二四"
        if len(tokens) == 1:
            return tokens[0][1]
        if all(kind in ("cn", "zero") for kind, _ in tokens):
            return float("".join(str(int(v)) for _, v in tokens))
        return None
    total = section = 0.0
    number: float | None = None
    single_digit = after_zero = False
    last_unit = 1
    for kind, value in tokens:
        if kind == "zero":
            after_zero, number = True, None
            continue
        if kind in ("num", "cn"):
            if number is not None:
                return None  # two numbers in a row: "三四千" is a range, not a number
            number, single_digit = value, (kind == "cn" or value.is_integer() and value < 10)
            continue
        if value < 10_000:
            section += (number if number is not None else 1) * value
        else:
            section += number or 0
            if section == 0 and total == 0:
                section = 1  # "万" after nothing
            if value == 100_000_000:
                total = (total + section) * value
            else:
                total += section * value
            section = 0
        last_unit, number, after_zero = int(value), None, False
    tail = number or 0
    if number is not None and single_digit and not after_zero and last_unit >= 100:
        tail = number * last_unit / 10  # colloquial: 两千五 = 2500, 一万二 = 12000
    return total + section + tail


# ---------------------------------------------------------------- answers


@dataclass(frozen=True)
class Parsed:
    """The result of reading one answer: a value, a skip, or a message saying what is expected."""

    ok: bool
    value: Any = None
    skipped: bool = False
    message: str | None = None


def question_text(question: Question) -> str:
    """The prompt as the assistant says it, with the skip hint where skipping is allowed."""
    hint = "（不清楚的话可以说“跳过”）" if question.skippable else ""
    return question.prompt + hint


def expected(question: Question) -> str:
    """What a valid answer looks like, in Chinese, for a re-prompt."""
    if question.type == "yes_no":
        return "请回答“是”或“不是”（也可以说“要/不要”“有/没有”）。"
    if question.type == "choice":
        options = "、".join(f"{i}. {v}" for i, v in enumerate(question.values, 1))
        return f"请从这几项中选一个：{options}（回复序号也可以）。"
    if question.type == "number":
        unit = question.unit
        if question.minimum is not None and question.maximum is not None:
            span = f"，范围 {_fmt(question.minimum)}–{_fmt(question.maximum)}{unit}"
        elif question.minimum is not None:
            span = f"，不小于 {_fmt(question.minimum)}{unit}"
        elif question.maximum is not None:
            span = f"，不大于 {_fmt(question.maximum)}{unit}"
        else:
            span = ""
        return f"请告诉我一个数字{('（单位：' + unit + '）') if unit else ''}{span}，例如“65”或“六十五”、“1.2万”。"
    return "请用一句话简单说明。"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def parse_yes_no(text: str, question: Question | None = None) -> bool | None:
    """Colloquial yes/no: 是的, 对, 嗯, 要, 需要, 有 / 没有, 不要, 不是, 不用, 暂时不, 还没 …
    The longest matching word wins ("不需要" over "需要"), the earliest on a tie."""
    norm = _norm(text)
    if norm in EXACT_YES:
        return True
    if norm in EXACT_NO:
        return False
    words = [(w, True) for w in YES_WORDS] + [(w, False) for w in NO_WORDS]
    if question is not None:  # a question's own words ("松江" for "在青浦吗") come first on a tie
        words = [(_norm(w), True) for w in question.yes_words] + [(_norm(w), False) for w in question.no_words] + words
    best: tuple[int, int, bool] | None = None
    for rank, (word, value) in enumerate(words):
        pos = norm.find(word) if word else -1
        if pos >= 0:
            key = (len(word), -pos)
            if best is None or key > best[:2]:
                best = (key[0], key[1], value)
    return None if best is None else best[2]


def parse_choice(question: Question, text: str, allow_index: bool = True) -> Parsed:
    """A choice by its value or a synonym ("外地户口" → 外省市户籍), or by its number ("2").
    A negated mention ("不是上海户口") picks the other value when there are only two."""
    norm = _norm(text)
    matches: list[tuple[int, int, str]] = []
    for choice in question.choices:
        for word in (choice.value, *choice.synonyms):
            w = _norm(word)
            start = norm.find(w) if w else -1
            while start >= 0:
                matches.append((start, start + len(w), choice.value))
                start = norm.find(w, start + 1)
    kept = [m for m in matches
            if not any(o[0] <= m[0] and m[1] <= o[1] and o[1] - o[0] > m[1] - m[0] for o in matches)]
    positive, negated = [], []
    for start, _, value in sorted(kept):
        (negated if norm[:start].endswith(NEGATIONS) else positive).append(value)
    positive = list(dict.fromkeys(positive))
    negated = [v for v in dict.fromkeys(negated) if v not in positive]
    if len(positive) == 1:
        return Parsed(True, positive[0])
    if len(positive) > 1:
        return Parsed(False, message=f"您提到了{'和'.join(positive)}，请确认是哪一个。{expected(question)}")
    if negated and len(question.choices) == 2:
        other = [v for v in question.values if v not in negated]
        if len(other) == 1:
            return Parsed(True, other[0])
    if allow_index:
        m = re.fullmatch(r"第?([0-9一二两三四五六七八九十]+)(?:个|种|项|类|条)?", norm)
        if m:
            index = parse_number(m.group(1))
            if isinstance(index, int) and 1 <= index <= len(question.choices):
                return Parsed(True, question.values[index - 1])
    return Parsed(False, message=f"没太明白您的选择。{expected(question)}")


def parse_answer(question: Question, text: str) -> Parsed:
    """Read the answer to `question`. Returns Parsed(ok=True, value) — or, when the user skips
    a skippable question, Parsed(ok=True, value=SKIPPED, skipped=True) — or Parsed(ok=False,
    message) saying in Chinese what is expected, for a re-prompt."""
    if not _norm(text):
        return Parsed(False, message=f"没有收到您的回答。{expected(question)}")
    if is_skip(text):
        if question.skippable:
            return Parsed(True, SKIPPED, skipped=True)
        if question.type != "text":
            return Parsed(False, message=f"这一项需要您的回答才能判断，不能跳过。{expected(question)}"
                                         f"如果确实不清楚，可以拨打 12345 咨询。")
    if question.type == "yes_no":
        value = parse_yes_no(text, question)
        return Parsed(True, value) if value is not None else Parsed(False, message=f"没太明白。{expected(question)}")
    if question.type == "choice":
        return parse_choice(question, text)
    if question.type == "number":
        value = parse_number(text)
        if value is None:
            return Parsed(False, message=f"没有听出数字。{expected(question)}")
        low, high = question.minimum, question.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            return Parsed(False, message=f"{_fmt(value)}{question.unit}不在合理范围内。{expected(question)}")
        return Parsed(True, value)
    return Parsed(True, text.strip())


def apply_answer(bundle: Bundle, answers: Mapping[str, Any], slot: str, value: Any) -> dict[str, Any]:
    """A copy of `answers` with `slot` set, and the answers to questions that no longer apply
    (their `ask_if` is now false) removed."""
    bundle.question(slot)  # KeyError for an unknown slot
    out = dict(answers)
    out[slot] = value
    for q in bundle.questions:  # ask_if only refers to earlier questions: one pass settles it
        if q.slot in out and q.ask_if is not None and q.ask_if.check(out) is False:
            del out[q.slot]
    return out


# ---------------------------------------------------------------- next question


def _askable(bundle: Bundle, answers: Mapping[str, Any], q: Question) -> bool:
    return q.slot not in answers and (q.ask_if is None or q.ask_if.check(answers) is not False)


def _decided_rule(bundle: Bundle, answers: Mapping[str, Any]) -> Rule | None:
    """The rule that decides whatever the remaining answers are, or None while one that comes
    first still depends on a question that can be asked."""
    askable = {q.slot for q in bundle.questions if _askable(bundle, answers, q)}
    for rule in bundle.rules:
        result = True if rule.condition is None else rule.condition.check(answers)
        if result:
            return rule
        if result is None and askable.intersection(rule.condition.slots()):
            return None
    return None  # unreachable: the last rule has no condition


def _item_state(bundle: Bundle, item: ChecklistItem, answers: Mapping[str, Any], status: str | None,
                rule_id: str | None) -> bool | None:
    if item.when is not None and item.when.mentions_outcome():
        return item.when.check(answers, status, rule_id)
    if status is not None and status not in bundle.checklist.show_for:
        return False
    return True if item.when is None else item.when.check(answers, status, rule_id)


def _checklist_items(bundle: Bundle):
    c = bundle.checklist
    return (*c.materials, *c.steps, *c.where, *c.online, *c.timeline)


def next_question(bundle: Bundle, answers: Mapping[str, Any]) -> Question | None:
    """The next question to ask, in file order, or None when nothing more is needed.

    Skips questions already answered or skipped and those whose `ask_if` is false. Once the
    outcome is decided whatever the rest of the answers, only questions that still change the
    checklist are asked ("asks only what it needs")."""
    decided = _decided_rule(bundle, answers)
    for q in bundle.questions:
        if not _askable(bundle, answers, q):
            continue
        if decided is None:
            return q
        for item in _checklist_items(bundle):
            if item.when is not None and q.slot in item.when.slots() and \
                    _item_state(bundle, item, answers, decided.outcome, decided.id) is None:
                return q
    return None


# ---------------------------------------------------------------- corrections


@dataclass(frozen=True)
class Correction:
    """An earlier answer the user corrects: which question, the old and the new value."""

    slot: str
    label: str
    old: Any
    new: Any
    message: str


def detect_correction(bundle: Bundle, answers: Mapping[str, Any], text: str,
                      require_cue: bool = True) -> Correction | None:
    """Which earlier answer a message like "刚才说错了，是外地户口" corrects, and to what.

    Looks at the questions already answered (or skipped): a choice synonym in the message,
    a number with the question's unit or keyword ("我是六十二岁"), or a yes/no with the
    question's keyword ("不对，其实要发票"). With no such clue, a plain correction
    ("说错了，是有的", a strong cue) applies to the last answered question; a weak cue
    ("应该是", "其实是", "不对") needs the clue, since it also occurs in ordinary answers.
    `require_cue=False` also accepts a message without a cue, but then only an unambiguous
    choice synonym counts (e.g. "外地户口" said while another question is open). Returns None when nothing fits; `apply_answer` applies it."""
    cue = has_correction_cue(text)
    strong = _contains_any(text, STRONG_CUES) is not None
    if require_cue and not cue:
        return None
    rest = _strip_cues(text) if cue else _norm(text)
    if not rest:
        return None
    answered = [q for q in bundle.questions if q.slot in answers]
    numbers = [q for q in answered if q.type == "number"]
    best: tuple[float, int, Question, Any] | None = None
    for order, q in enumerate(answered):
        named = any(_norm(k) in rest for k in (q.label, *q.keywords) if _norm(k))
        score, value = 0.0, None
        if q.type == "choice":
            parsed = parse_choice(q, rest, allow_index=False)
            if parsed.ok:
                score, value = 3 + named, parsed.value
        elif not cue:
            continue
        elif q.type == "number":
            number = parse_number(rest)
            in_range = number is not None and (q.minimum is None or number >= q.minimum) and \
                (q.maximum is None or number <= q.maximum)
            if in_range and (named or (q.unit and _norm(q.unit) in rest)):
                score, value = 3, number
            elif in_range and strong and len(numbers) == 1:
                score, value = 1, number
        elif q.type == "yes_no" and named:
            flag = parse_yes_no(rest, q)
            if flag is not None:
                score, value = 2, flag
        if score and (best is None or (score, order) > best[:2]):
            best = (score, order, q, value)
    if best is None and strong and answered:
        last = answered[-1]
        parsed = parse_answer(last, rest)
        if parsed.ok and not parsed.skipped:
            best = (0.5, len(answered), last, parsed.value)
    if best is None:
        return None
    q, value = best[2], best[3]
    old = answers.get(q.slot)
    if old == value:
        message = f"「{q.label}」记录的就是「{q.display(value)}」，不用改。"
    else:
        message = f"好的，已把「{q.label}」从「{q.display(old)}」改为「{q.display(value)}」。"
    return Correction(q.slot, q.label, old, value, message)


# ---------------------------------------------------------------- evaluation


@dataclass
class Outcome:
    """The decision for one bundle and set of answers, with its explanation and checklist."""

    bundle_id: str
    bundle_name: str
    status: str  # eligible / not_eligible / other_route
    title: str
    explanation: str
    rule_id: str
    reason: str
    advice: str | None
    cited: list[dict[str, str]]
    caveats: list[str]
    materials: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    where: list[dict[str, Any]]
    online: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    guides: list[dict[str, str]]
    hotline: str = "12345"
    sample: bool = True
    offer: str = ""
    notices: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> bool:
        return self.status == "eligible"

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle_id, "name": self.bundle_name, "status": self.status, "title": self.title,
            "explanation": self.explanation, "rule": self.rule_id, "reason": self.reason, "advice": self.advice,
            "cited": self.cited, "caveats": self.caveats,
            "checklist": {"materials": self.materials, "steps": self.steps, "where": self.where,
                          "online": self.online, "timeline": self.timeline},
            "guides": self.guides, "hotline": self.hotline, "sample": self.sample, "offer": self.offer,
            "notices": self.notices,
        }

    def to_text(self) -> str:
        lines = [f"【{self.bundle_name}】{self.title}", self.explanation]
        lines += [f"提示：{c}" for c in self.caveats]
        sections = [
            ("需要准备的材料", [_material_line(m) for m in self.materials]),
            ("办理步骤", [_item_line(s) for s in self.steps]),
            ("办理地点", [_item_line(s) for s in self.where]),
            ("网上办理入口", [_item_line(s) for s in self.online]),
            ("办理时长", [_item_line(s) for s in self.timeline]),
        ]
        numerals = "一二三四五六七八九十"
        n = 0
        for heading, items in sections:
            if not items:
                continue
            lines.append(f"{numerals[n]}、{heading}")
            numbered = heading in ("需要准备的材料", "办理步骤")
            lines += [f"{i}. {t}" if numbered else f"· {t}" for i, t in enumerate(items, 1)]
            n += 1
        if self.guides:
            lines.append("相关办事指南：" + "；".join(g["title"] for g in self.guides))
        lines += self.notices
        if self.offer:
            lines.append(self.offer)
        return "\n".join(lines)


def _item_line(item: Mapping[str, Any]) -> str:
    return item["text"] + ("（如适用）" if item.get("conditional") else "")


def _material_line(m: Mapping[str, Any]) -> str:
    form = m["form"] + (f"，{m['copies']} 份" if m.get("copies", 1) > 1 else "")
    line = f"{m['name']}（{form}）" + ("（如适用）" if m.get("conditional") else "")
    if m.get("exempt"):
        line += f"【免于提交：{m['exempt_reason']}" + (f"，可用{m['e_license']}" if m.get("e_license") else "") + "】"
    return line + (f"——{m['note']}" if m.get("note") else "")


def _unknown_slots(bundle: Bundle, condition: Condition, answers: Mapping[str, Any]) -> list[str]:
    """Slots of `condition` left open: skipped, or not yet asked though they apply (a question
    whose ask_if is false does not apply and leaves nothing to confirm)."""
    out = []
    for slot in condition.slots():
        q = bundle.question(slot)
        if answers.get(slot) == SKIPPED or (slot not in answers and
                                            (q.ask_if is None or q.ask_if.check(answers) is not False)):
            out.append(slot)
    return out


def evaluate(bundle: Bundle, answers: Mapping[str, Any]) -> Outcome:
    """Decide: the first rule whose condition holds. A rule that cannot be decided because an
    answer is missing or skipped is passed over and reported as a caveat. The explanation cites
    the answers that decided it; the checklist keeps the items whose `when` holds (or may hold:
    marked 如适用)."""
    caveats: list[str] = []
    decided: Rule | None = None
    for rule in bundle.rules:
        result = True if rule.condition is None else rule.condition.check(answers)
        if result:
            decided = rule
            break
        unknown = _unknown_slots(bundle, rule.condition, answers) if result is None else []
        if unknown:
            labels = "、".join(bundle.question(s).label for s in unknown)
            caveats.append(f"「{labels}」未确认，结果仅供参考：如果实际情况是“{rule.reason}”，结果会是"
                           f"“{bundle.outcomes[rule.outcome].title}”，{UNCERTAIN}。")
    assert decided is not None  # the last rule has no condition
    if decided.condition is not None:
        slots = decided.condition.deciding_slots(answers)
    else:  # the fallback: cite every answer the rules looked at
        used = {s for r in bundle.rules if r.condition is not None for s in r.condition.slots()}
        slots = tuple(q.slot for q in bundle.questions if q.slot in used and answers.get(q.slot) not in (None, SKIPPED))
    cited = [{"slot": s, "label": bundle.question(s).label, "answer": bundle.question(s).display(answers.get(s))}
             for s in slots if answers.get(s) not in (None, SKIPPED)]
    cited_text = ("（您的回答：" + "，".join(f"{c['label']}「{c['answer']}」" for c in cited) + "）") if cited else ""
    template = bundle.outcomes[decided.outcome]
    explanation = template.text.format(reason=decided.reason, advice=decided.advice or f"咨询 {bundle.hotline}",
                                       cited=cited_text, name=bundle.name)

    def pick(items: tuple[ChecklistItem, ...], material: bool = False) -> list[dict[str, Any]]:
        out = []
        for item in items:
            state = _item_state(bundle, item, answers, decided.outcome, decided.id)
            if state is False:
                continue
            entry: dict[str, Any] = {"name" if material else "text": item.text, "conditional": state is None}
            if material:
                entry.update(form=item.form, copies=item.copies, exempt=item.exempt,
                             exempt_reason=item.exempt_reason, e_license=item.e_license, note=item.note)
            out.append(entry)
        return out

    c = bundle.checklist
    guides = decided.guides or (bundle.guides if decided.outcome in c.show_for else ())
    online = pick(c.online)
    notices = []
    if bundle.sample:
        notices.append(f"（以上为示例内容，待替换为官方发布；具体要求{UNCERTAIN}。）")
    offer = (f"需要的话，我可以帮您打开网上办理入口开始申请，或为您转接 {bundle.hotline} 市民服务热线。" if online
             else f"如需进一步帮助，我可以为您转接 {bundle.hotline} 市民服务热线。")
    return Outcome(
        bundle_id=bundle.id, bundle_name=bundle.name, status=decided.outcome, title=template.title,
        explanation=explanation, rule_id=decided.id, reason=decided.reason, advice=decided.advice, cited=cited,
        caveats=list(dict.fromkeys(caveats)), materials=pick(c.materials, material=True), steps=pick(c.steps),
        where=pick(c.where), online=online, timeline=pick(c.timeline),
        guides=[{"id": g, "title": bundle.guide_titles.get(g, g)} for g in guides],
        hotline=bundle.hotline, sample=bundle.sample, offer=offer, notices=notices,
    )


# ---------------------------------------------------------------- one conversation


@dataclass
class Turn:
    """What happened on one user message and what to say next.

    kind: asked (start) / answered / skipped / corrected / reprompt / stopped; `done` is True
    when `outcome` is set (no more questions)."""

    kind: str
    message: str
    question: Question | None = None
    outcome: Outcome | None = None
    slot: str | None = None
    value: Any = None

    @property
    def done(self) -> bool:
        return self.outcome is not None


class Session:
    """One bundle conversation over a JSON-friendly `answers` dict (store it in a Rasa slot and
    rebuild the Session each turn). Free questions in the middle are the caller's business:
    answer them by retrieval and call `prompt()` to resume."""

    def __init__(self, bundle: Bundle, answers: Mapping[str, Any] | None = None):
        self.bundle = bundle
        self.answers: dict[str, Any] = dict(answers or {})

    @property
    def current(self) -> Question | None:
        return next_question(self.bundle, self.answers)

    def prompt(self) -> str:
        q = self.current
        return question_text(q) if q else evaluate(self.bundle, self.answers).to_text()

    def start(self) -> Turn:
        intro = f"好的，我们来看看「{self.bundle.name}」。我会问几个问题，帮您判断能不能办、要准备什么。"
        return self._after("asked", intro)

    def handle(self, text: str) -> Turn:
        if is_stop(text):
            return Turn("stopped", f"好的，已停止办理「{self.bundle.name}」。需要时可以随时再来，"
                                   f"也可以拨打 {self.bundle.hotline} 咨询。")
        question = self.current
        if question is None:
            return self._after("answered", "")
        if has_correction_cue(text):  # a weak cue ("应该是") only counts with a clear match
            correction = detect_correction(self.bundle, self.answers, text)
            if correction is not None:
                return self._correct(correction)
            text = _strip_cues(text) or text
        parsed = parse_answer(question, text)
        if parsed.ok:
            self.answers = apply_answer(self.bundle, self.answers, question.slot, parsed.value)
            kind = "skipped" if parsed.skipped else "answered"
            note = f"好的，「{question.label}」先跳过。" if parsed.skipped else ""
            turn = self._after(kind, note)
            turn.slot, turn.value = question.slot, parsed.value
            return turn
        correction = detect_correction(self.bundle, self.answers, text, require_cue=False)
        if correction is not None:
            return self._correct(correction)
        return Turn("reprompt", f"{parsed.message}\n{question_text(question)}", question=question)

    def _correct(self, correction: Correction) -> Turn:
        self.answers = apply_answer(self.bundle, self.answers, correction.slot, correction.new)
        turn = self._after("corrected", correction.message)
        turn.slot, turn.value = correction.slot, correction.new
        return turn

    def _after(self, kind: str, lead: str) -> Turn:
        q = self.current
        if q is not None:
            return Turn(kind, "\n".join(x for x in (lead, question_text(q)) if x), question=q)
        outcome = evaluate(self.bundle, self.answers)
        return Turn(kind, "\n".join(x for x in (lead, outcome.to_text()) if x), outcome=outcome)
