""""一件事" bundles as data: load and validate `knowledge_base/bundles/*.yml`.

A bundle declares the questions to ask, eligibility rules over the answers, outcome texts and
a checklist whose items may depend on the answers. Everything is checked when loaded: an error
is a `KnowledgeError` naming the file and the field (the same class the guide loader uses), so
an administrator adds a bundle by adding a file and learns at once what is wrong with it.

Plain Python, no Rasa: the engine is in `assistant.eligibility`.
"""
from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from index_builder.knowledge import ID_PATTERN, KnowledgeError, parse_material

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDER = ROOT / "knowledge_base" / "bundles"

QUESTION_TYPES = ("yes_no", "choice", "number", "text")
STATUSES = ("eligible", "not_eligible", "other_route")
# An answer the user chose to skip ("跳过", "不清楚"); JSON-friendly so a Rasa slot can hold it.
SKIPPED = "__skipped__"
SLOT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
RULE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
COMPARISONS = ("is", "in", "not_in", "gte", "gt", "lte", "lt")
NUMERIC_TESTS = ("gte", "gt", "lte", "lt")
TEMPLATE_FIELDS = ("reason", "advice", "cited", "name")
DEFAULT_TITLES = {"eligible": "符合条件", "not_eligible": "暂不符合条件", "other_route": "建议换个途径办理"}
DEFAULT_TEXTS = {
    "eligible": "符合条件，因为{reason}{cited}。",
    "not_eligible": "暂不符合：{reason}{cited}，可以{advice}。",
    "other_route": "建议换个途径办理：{reason}{cited}，可以{advice}。",
}
CHECKLIST_SECTIONS = ("materials", "steps", "where", "online", "timeline")
_BOOL_TEXT = {True: "是", False: "否"}


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """One node of a condition tree, evaluated with three-valued logic.

    `kind` is `slot` (a leaf with `tests`, pairs of comparison and value, all of which must
    hold), `all`, `any`, `not`, `outcome` or `rule` (the last two only in checklist `when`).
    A leaf over a slot that is missing or skipped is unknown (None)."""

    kind: str
    slot: str | None = None
    tests: tuple[tuple[str, Any], ...] = ()
    children: tuple["Condition", ...] = ()
    names: tuple[str, ...] = ()  # outcome statuses or rule ids

    def check(self, answers: Mapping[str, Any], status: str | None = None, rule: str | None = None) -> bool | None:
        if self.kind == "slot":
            value = answers.get(self.slot)
            if value is None or value == SKIPPED:
                return None
            return all(_compare(op, value, expected) for op, expected in self.tests)
        if self.kind in ("all", "any"):
            results = [c.check(answers, status, rule) for c in self.children]
            decisive = self.kind == "any"  # any: one True decides; all: one False decides
            if decisive in results:
                return decisive
            return None if None in results else not decisive
        if self.kind == "not":
            inner = self.children[0].check(answers, status, rule)
            return None if inner is None else not inner
        if self.kind == "outcome":
            return None if status is None else status in self.names
        if self.kind == "rule":
            return None if rule is None else rule in self.names
        raise ValueError(self.kind)

    def slots(self) -> tuple[str, ...]:
        out = [self.slot] if self.slot else []
        for c in self.children:
            out.extend(s for s in c.slots() if s not in out)
        return tuple(out)

    def mentions_outcome(self) -> bool:
        return self.kind in ("outcome", "rule") or any(c.mentions_outcome() for c in self.children)

    def deciding_slots(self, answers: Mapping[str, Any]) -> tuple[str, ...]:
        """The slots whose answers make this (true) condition true: every branch of `all`,
        the first true branch of `any`."""
        if self.kind == "slot":
            return (self.slot,)
        if self.kind == "any":
            for c in self.children:
                if c.check(answers):
                    return c.deciding_slots(answers)
            return ()
        if self.kind == "all":
            out: list[str] = []
            for c in self.children:
                out.extend(s for s in c.deciding_slots(answers) if s not in out)
            return tuple(out)
        return self.slots()


def _compare(op: str, value: Any, expected: Any) -> bool:
    if op == "is":
        return value == expected
    if op == "in":
        return value in expected
    if op == "not_in":
        return value not in expected
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    return {"gte": value >= expected, "gt": value > expected, "lte": value <= expected, "lt": value < expected}[op]


# ---------------------------------------------------------------- bundle parts


@dataclass(frozen=True)
class Choice:
    value: str
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Question:
    slot: str
    label: str
    prompt: str
    type: str
    choices: tuple[Choice, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    skippable: bool = False
    ask_if: Condition | None = None
    keywords: tuple[str, ...] = ()  # words that name this question in a correction ("发票", "户口")
    yes_words: tuple[str, ...] = ()
    no_words: tuple[str, ...] = ()

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(c.value for c in self.choices)

    def display(self, value: Any) -> str:
        """An answer as a person reads it: 是/否, "65 岁", the choice itself, or 未确认."""
        if value is None or value == SKIPPED:
            return "未确认"
        if self.type == "yes_no":
            return _BOOL_TEXT.get(value, str(value))
        if self.type == "number":
            number = int(value) if float(value).is_integer() else value
            return f"{number}{(' ' + self.unit) if self.unit else ''}"
        return str(value)


@dataclass(frozen=True)
class Rule:
    id: str
    outcome: str
    reason: str
    condition: Condition | None = None  # None: the fallback, always true
    advice: str | None = None
    guides: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutcomeText:
    status: str
    title: str
    text: str  # template over {reason}, {advice}, {cited}, {name}


@dataclass(frozen=True)
class ChecklistItem:
    text: str  # step/place/entrance/time text, or the material's name
    when: Condition | None = None
    # materials only
    form: str | None = None
    copies: int = 1
    exempt: bool = False
    exempt_reason: str | None = None
    e_license: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Checklist:
    materials: tuple[ChecklistItem, ...] = ()
    steps: tuple[ChecklistItem, ...] = ()
    where: tuple[ChecklistItem, ...] = ()
    online: tuple[ChecklistItem, ...] = ()
    timeline: tuple[ChecklistItem, ...] = ()
    show_for: tuple[str, ...] = ("eligible",)


@dataclass(frozen=True)
class Bundle:
    id: str
    name: str
    synonyms: tuple[str, ...]
    summary: str
    guides: tuple[str, ...]
    questions: tuple[Question, ...]
    rules: tuple[Rule, ...]
    outcomes: dict[str, OutcomeText]
    checklist: Checklist
    source: str
    sample: bool
    path: str
    hotline: str = "12345"
    guide_titles: dict[str, str] = field(default_factory=dict)

    def question(self, slot: str) -> Question:
        for q in self.questions:
            if q.slot == slot:
                return q
        raise KeyError(slot)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


# ---------------------------------------------------------------- parsing


class _Parser:
    """Validates one bundle file; every error names the file and the dotted field path."""

    def __init__(self, path: Path, guide_ids: set[str] | None):
        self.path, self.guide_ids = path, guide_ids
        self.questions: dict[str, Question] = {}
        self.declared: set[str] = set()  # every slot in the file, to tell "later" from "unknown"
        self.rule_ids: set[str] = set()

    def err(self, name: str, problem: str) -> KnowledgeError:
        return KnowledgeError(self.path, name, problem)

    # -- primitives
    def text(self, data: Mapping, key: str, where: str, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise self.err(where + key, "is required and must be non-empty text")
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise self.err(where + key, f"must be text, got {type(value).__name__}")
        return value.strip()

    def texts(self, data: Mapping, key: str, where: str, minimum: int = 0) -> tuple[str, ...]:
        value = data.get(key)
        if value is None:
            value = []
        if not isinstance(value, list):
            raise self.err(where + key, "must be a list")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str) or not item.strip():
                raise self.err(f"{where}{key}[{i}]", "must be non-empty text")
            out.append(item.strip())
        if len(out) < minimum:
            raise self.err(where + key, f"needs at least {minimum} item(s)")
        return tuple(out)

    def boolean(self, data: Mapping, key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.err(where + key, "must be true or false")
        return value

    def mapping(self, value: Any, where: str, what: str) -> Mapping:
        if not isinstance(value, dict):
            raise self.err(where, f"must be a mapping ({what})")
        return value

    def known_keys(self, data: Mapping, allowed: Iterable[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                raise self.err(f"{where}{key}", f"is not a known field (expected one of {', '.join(allowed)})")

    def guide(self, value: str, where: str) -> str:
        if self.guide_ids is not None and value not in self.guide_ids:
            raise self.err(where, f"unknown guide id '{value}' (no knowledge_base/guides/{value}.yml)")
        return value

    # -- conditions
    def condition(self, raw: Any, where: str, *, allow_outcome: bool = False,
                  available: Mapping[str, Question] | None = None) -> Condition:
        """`available`: the slots this condition may name (all questions by default)."""
        slots = self.questions if available is None else available
        data = self.mapping(raw, where, "a condition such as {slot: hukou, in: [本市户籍]}, {all: [...]}, {any: [...]}")
        keys = set(data)
        for combinator in ("all", "any"):
            if combinator in keys:
                if keys != {combinator}:
                    raise self.err(where, f"'{combinator}' must stand alone in its mapping")
                items = data[combinator]
                if not isinstance(items, list) or not items:
                    raise self.err(f"{where}.{combinator}", "must be a non-empty list of conditions")
                children = tuple(self.condition(c, f"{where}.{combinator}[{i}]", allow_outcome=allow_outcome,
                                                available=available) for i, c in enumerate(items))
                return Condition(combinator, children=children)
        if "not" in keys:
            if keys != {"not"}:
                raise self.err(where, "'not' must stand alone in its mapping")
            return Condition("not", children=(self.condition(data["not"], f"{where}.not",
                                                            allow_outcome=allow_outcome, available=available),))
        for kind in ("outcome", "rule"):
            if kind in keys:
                if not allow_outcome:
                    raise self.err(f"{where}.{kind}", f"'{kind}' can only be used in a checklist item's 'when'")
                if keys != {kind}:
                    raise self.err(where, f"'{kind}' must stand alone in its mapping")
                names = data[kind] if isinstance(data[kind], list) else [data[kind]]
                for i, name in enumerate(names):
                    known = STATUSES if kind == "outcome" else self.rule_ids
                    if name not in known:
                        raise self.err(f"{where}.{kind}",
                                       f"unknown {kind} '{name}' (known: {', '.join(sorted(known))})")
                return Condition(kind, names=tuple(names))
        if "slot" not in keys:
            raise self.err(where, "needs 'slot' (or 'all', 'any', 'not')")
        slot = data["slot"]
        if slot not in slots:
            if slot in self.declared:
                raise self.err(f"{where}.slot", f"'{slot}' is asked later; 'ask_if' may only use earlier questions")
            declared = ", ".join(sorted(self.declared)) or "none"
            raise self.err(f"{where}.slot", f"unknown slot '{slot}' (declared: {declared})")
        question = slots[slot]
        tests = []
        for op in keys - {"slot"}:
            if op not in COMPARISONS:
                raise self.err(f"{where}.{op}", f"unknown comparison (expected one of {', '.join(COMPARISONS)})")
            tests.append((op, self.condition_value(question, op, data[op], f"{where}.{op}")))
        if not tests:
            raise self.err(where, f"needs a comparison ({', '.join(COMPARISONS)})")
        return Condition("slot", slot=slot, tests=tuple(sorted(tests)))

    def condition_value(self, q: Question, op: str, value: Any, where: str) -> Any:
        if op in NUMERIC_TESTS:
            if q.type != "number":
                raise self.err(where, f"'{op}' needs a number question; '{q.slot}' is {q.type}")
            if not _is_number(value):
                raise self.err(where, "must be a number")
            return value
        if op in ("in", "not_in"):
            if not isinstance(value, list) or not value:
                raise self.err(where, "must be a non-empty list")
            return tuple(self.single_value(q, v, f"{where}[{i}]") for i, v in enumerate(value))
        return self.single_value(q, value, where)

    def single_value(self, q: Question, value: Any, where: str) -> Any:
        if q.type == "yes_no" and not isinstance(value, bool):
            raise self.err(where, f"'{q.slot}' is yes_no: use true or false, not '{value}'")
        if q.type == "choice" and value not in q.values:
            raise self.err(where, f"'{value}' is not a declared value of '{q.slot}' ({', '.join(q.values)})")
        if q.type == "number" and not _is_number(value):
            raise self.err(where, f"'{q.slot}' is a number: '{value}' is not a number")
        if q.type == "text" and not isinstance(value, str):
            raise self.err(where, "must be text")
        return value

    # -- questions
    def question(self, raw: Any, i: int) -> Question:
        where = f"questions[{i}]."
        data = self.mapping(raw, f"questions[{i}]", "slot, label, prompt, type")
        self.known_keys(data, ("slot", "label", "prompt", "type", "values", "validation", "unit", "skippable",
                               "ask_if", "keywords", "yes_words", "no_words"), where)
        slot = self.text(data, "slot", where)
        if not SLOT_PATTERN.match(slot):
            raise self.err(where + "slot", f"'{slot}' must be lower-case letters, digits and '_'")
        if slot in self.questions:
            raise self.err(where + "slot", f"'{slot}' is declared twice")
        qtype = self.text(data, "type", where)
        if qtype not in QUESTION_TYPES:
            raise self.err(where + "type", f"'{qtype}' is not one of {', '.join(QUESTION_TYPES)}")
        choices: list[Choice] = []
        if qtype == "choice":
            values = data.get("values")
            if not isinstance(values, dict) or len(values) < 2:
                raise self.err(where + "values", "a choice question needs a mapping of ≥ 2 values to their synonyms")
            seen: dict[str, str] = {}
            for value, synonyms in values.items():
                if not isinstance(value, str) or not value.strip():
                    raise self.err(where + "values", f"value '{value}' must be non-empty text")
                syn = self.texts(values, value, where + "values.")
                for word in (value, *syn):
                    if word in seen and seen[word] != value:
                        raise self.err(f"{where}values.{value}", f"'{word}' is also a synonym of '{seen[word]}'")
                    seen[word] = value
                choices.append(Choice(value.strip(), syn))
        elif "values" in data:
            raise self.err(where + "values", "only choice questions have values")
        minimum = maximum = None
        validation = data.get("validation")
        if validation is not None:
            if qtype != "number":
                raise self.err(where + "validation", "only number questions have min/max validation")
            validation = self.mapping(validation, where + "validation", "min and/or max")
            self.known_keys(validation, ("min", "max"), where + "validation.")
            for key in ("min", "max"):
                if key in validation and not _is_number(validation[key]):
                    raise self.err(f"{where}validation.{key}", "must be a number")
            minimum, maximum = validation.get("min"), validation.get("max")
            if minimum is not None and maximum is not None and minimum > maximum:
                raise self.err(where + "validation", "min is greater than max")
        ask_if = None
        if data.get("ask_if") is not None:
            ask_if = self.condition(data["ask_if"], where + "ask_if", available=dict(self.questions))
        q = Question(
            slot=slot, label=self.text(data, "label", where), prompt=self.text(data, "prompt", where), type=qtype,
            choices=tuple(choices), minimum=minimum, maximum=maximum,
            unit=self.text(data, "unit", where, required=False) or "",
            skippable=self.boolean(data, "skippable", where, False), ask_if=ask_if,
            keywords=self.texts(data, "keywords", where),
            yes_words=self.texts(data, "yes_words", where), no_words=self.texts(data, "no_words", where),
        )
        if (q.yes_words or q.no_words) and qtype != "yes_no":
            raise self.err(where + ("yes_words" if q.yes_words else "no_words"), "only yes_no questions take these")
        self.questions[slot] = q
        return q

    # -- rules
    def rule(self, raw: Any, i: int, last: bool) -> Rule:
        where = f"rules[{i}]."
        data = self.mapping(raw, f"rules[{i}]", "id, if, outcome, reason")
        self.known_keys(data, ("id", "if", "outcome", "reason", "advice", "guides"), where)
        rule_id = self.text(data, "id", where)
        if not RULE_ID_PATTERN.match(rule_id):
            raise self.err(where + "id", f"'{rule_id}' must be lower-case letters, digits, '-' and '_'")
        if rule_id in self.rule_ids:
            raise self.err(where + "id", f"'{rule_id}' is used twice")
        outcome = self.text(data, "outcome", where)
        if outcome not in STATUSES:
            raise self.err(where + "outcome", f"'{outcome}' is not one of {', '.join(STATUSES)}")
        condition = None
        if data.get("if") is not None:
            condition = self.condition(data["if"], where + "if")
        elif last is False:
            raise self.err(where + "if", "is required except on the last rule (the fallback)")
        if last and condition is not None:
            raise self.err(where + "if", "the last rule is the fallback and must have no 'if'")
        advice = self.text(data, "advice", where, required=outcome != "eligible")
        guides = tuple(self.guide(g, f"{where}guides[{j}]") for j, g in enumerate(self.texts(data, "guides", where)))
        self.rule_ids.add(rule_id)
        return Rule(rule_id, outcome, self.text(data, "reason", where).rstrip("。；;，,"), condition,
                    advice.rstrip("。") if advice else None, guides)

    # -- outcomes and checklist
    def outcomes(self, raw: Any) -> dict[str, OutcomeText]:
        data = self.mapping(raw or {}, "outcomes", "status → {title, text}")
        out = {}
        for status in data:
            if status not in STATUSES:
                raise self.err(f"outcomes.{status}", f"is not one of {', '.join(STATUSES)}")
        for status in STATUSES:
            entry = self.mapping(data.get(status) or {}, f"outcomes.{status}", "title and text")
            self.known_keys(entry, ("title", "text"), f"outcomes.{status}.")
            text = self.text(entry, "text", f"outcomes.{status}.", required=False) or DEFAULT_TEXTS[status]
            try:
                fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            except ValueError as exc:
                raise self.err(f"outcomes.{status}.text", f"is not a valid template: {exc}") from exc
            unknown = fields - set(TEMPLATE_FIELDS)
            if unknown:
                raise self.err(f"outcomes.{status}.text", f"unknown placeholder(s) {', '.join(sorted(unknown))} "
                                                          f"(known: {', '.join(TEMPLATE_FIELDS)})")
            title = self.text(entry, "title", f"outcomes.{status}.", required=False) or DEFAULT_TITLES[status]
            out[status] = OutcomeText(status, title, text)
        return out

    def checklist(self, raw: Any) -> Checklist:
        data = self.mapping(raw, "checklist", "materials, steps, where, online, timeline")
        self.known_keys(data, (*CHECKLIST_SECTIONS, "show_for"), "checklist.")
        show_for = self.texts(data, "show_for", "checklist.") or ("eligible",)
        for i, status in enumerate(show_for):
            if status not in STATUSES:
                raise self.err(f"checklist.show_for[{i}]", f"'{status}' is not one of {', '.join(STATUSES)}")
        sections = {}
        for section in CHECKLIST_SECTIONS:
            items = data.get(section)
            if items is None:
                items = []
            if isinstance(items, str):
                items = [items]
            if not isinstance(items, list):
                raise self.err(f"checklist.{section}", "must be a list")
            sections[section] = tuple(self.item(section, item, f"checklist.{section}[{i}]")
                                      for i, item in enumerate(items))
        for section in ("materials", "steps"):
            if not sections[section]:
                raise self.err(f"checklist.{section}", "needs at least 1 item")
        return Checklist(show_for=show_for, **sections)

    def item(self, section: str, raw: Any, where: str) -> ChecklistItem:
        if isinstance(raw, str) and section != "materials":
            if not raw.strip():
                raise self.err(where, "must be non-empty text")
            return ChecklistItem(raw.strip())
        data = self.mapping(raw, where, "name and form" if section == "materials" else "text and when")
        when = None
        if data.get("when") is not None:
            when = self.condition(data["when"], where + ".when", allow_outcome=True)
        if section != "materials":
            self.known_keys(data, ("text", "when"), where + ".")
            return ChecklistItem(self.text(data, "text", where + "."), when)
        self.known_keys(data, ("name", "form", "copies", "exempt", "exempt_reason", "e_license", "note", "when"),
                        where + ".")
        m = parse_material(self.path, where + ".", {k: v for k, v in data.items() if k != "when"})
        return ChecklistItem(m.name, when, form=m.form, copies=m.copies, exempt=m.exempt,
                             exempt_reason=m.exempt_reason, e_license=m.e_license, note=m.note)

    # -- whole file
    def bundle(self, data: Any, guide_titles: dict[str, str]) -> Bundle:
        if not isinstance(data, dict):
            raise self.err("(file)", "must be a YAML mapping of bundle fields")
        self.known_keys(data, ("id", "name", "synonyms", "summary", "guides", "questions", "rules", "outcomes",
                               "checklist", "source", "sample", "hotline", "last_reviewed"), "")
        bundle_id = self.text(data, "id", "")
        if not ID_PATTERN.match(bundle_id):
            raise self.err("id", f"'{bundle_id}' must be lower-case letters, digits and '-'")
        if bundle_id != self.path.stem:
            raise self.err("id", f"'{bundle_id}' must equal the file name '{self.path.stem}'")
        guides = tuple(self.guide(g, f"guides[{i}]") for i, g in enumerate(self.texts(data, "guides", "", minimum=1)))
        raw_questions = data.get("questions")
        if not isinstance(raw_questions, list) or not raw_questions:
            raise self.err("questions", "needs at least 1 question")
        self.declared = {q["slot"] for q in raw_questions if isinstance(q, dict) and isinstance(q.get("slot"), str)}
        questions = tuple(self.question(q, i) for i, q in enumerate(raw_questions))
        raw_rules = data.get("rules")
        if not isinstance(raw_rules, list) or not raw_rules:
            raise self.err("rules", "needs at least 1 rule (the last one, without 'if', is the fallback)")
        rules = tuple(self.rule(r, i, i == len(raw_rules) - 1) for i, r in enumerate(raw_rules))
        return Bundle(
            id=bundle_id, name=self.text(data, "name", ""), synonyms=self.texts(data, "synonyms", "", minimum=1),
            summary=self.text(data, "summary", "", required=False) or "", guides=guides, questions=questions,
            rules=rules, outcomes=self.outcomes(data.get("outcomes")), checklist=self.checklist(data.get("checklist")),
            source=self.text(data, "source", ""),
            sample=self.boolean(data, "sample", "", None),  # type: ignore[arg-type]  # None: required
            path=str(self.path), hotline=self.text(data, "hotline", "", required=False) or "12345",
            guide_titles={g: guide_titles.get(g, g) for g in {*guides, *(g for r in rules for g in r.guides)}},
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------- loading


def guide_titles(guides_dir: Path | str) -> dict[str, str]:
    """id → title of every guide file, read from its `title:` line (no full YAML parse)."""
    out = {}
    for path in sorted(Path(guides_dir).glob("*.y*ml")):
        match = re.search(r"^title:\s*(.+?)\s*$", path.read_text(encoding="utf-8"), re.M)
        out[path.stem] = match.group(1).strip("'\"") if match else path.stem
    return out


def parse_bundle(path: Path | str, data: Any, guides: Mapping[str, str] | Iterable[str] | None = None) -> Bundle:
    """Validate one bundle's YAML data. `guides`: known guide ids (or id → title); None skips that check."""
    path = Path(path)
    titles = dict(guides) if isinstance(guides, Mapping) else {g: g for g in guides} if guides is not None else {}
    return _Parser(path, set(titles) if guides is not None else None).bundle(data, titles)


def load_bundle(path: Path | str, guides: Mapping[str, str] | Iterable[str] | None = None) -> Bundle:
    path = Path(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise KnowledgeError(path, "(file)", f"is not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise KnowledgeError(path, "(file)", "is not UTF-8 text") from exc
    return parse_bundle(path, data, guides)


def load_bundles(folder: Path | str = DEFAULT_FOLDER, guides_dir: Path | str | None = None) -> dict[str, Bundle]:
    """Every `*.yml` bundle in `folder`, validated, as id → Bundle. Guide ids are checked against
    `guides_dir` (default: the `guides` folder next to `folder`). A name or synonym claimed by two
    bundles is an error, so `find_bundle` is never ambiguous."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KnowledgeError(folder, "(folder)", "does not exist")
    titles = guide_titles(guides_dir if guides_dir is not None else folder.parent / "guides")
    bundles: dict[str, Bundle] = {}
    claimed: dict[str, str] = {}
    for path in sorted(folder.glob("*.yml")) + sorted(folder.glob("*.yaml")):
        bundle = load_bundle(path, titles)
        if bundle.id in bundles:
            raise KnowledgeError(path, "id", f"'{bundle.id}' is also used by {bundles[bundle.id].path}")
        for i, word in enumerate((bundle.name, *bundle.synonyms)):
            key = _norm(word)
            if key in claimed and claimed[key] != bundle.id:
                field_name = "name" if i == 0 else f"synonyms[{i - 1}]"
                raise KnowledgeError(path, field_name, f"'{word}' is also used by bundle '{claimed[key]}'")
            claimed[key] = bundle.id
        bundles[bundle.id] = bundle
    if not bundles:
        raise KnowledgeError(folder, "(folder)", "holds no *.yml bundles")
    return bundles


@lru_cache(maxsize=4)
def _default_bundles(folder: str) -> dict[str, Bundle]:
    return load_bundles(folder)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[\s\"'“”‘’「」『』《》]", "", text)


def find_bundle(text: str, bundles: Mapping[str, Bundle] | Iterable[Bundle] | None = None) -> Bundle | None:
    """The bundle a user message names (by name, synonym or id), longest match first; None if none."""
    if bundles is None:
        bundles = _default_bundles(str(DEFAULT_FOLDER))
    items = list(bundles.values()) if isinstance(bundles, Mapping) else list(bundles)
    message = _norm(text or "")
    best: tuple[int, int, Bundle] | None = None
    for bundle in items:
        for word in (bundle.name, *bundle.synonyms, bundle.id):
            key = _norm(word)
            pos = message.find(key) if key else -1
            if pos >= 0 and (best is None or (len(key), -pos) > best[:2]):
                best = (len(key), -pos, bundle)
    return best[2] if best else None


if __name__ == "__main__":  # python -m assistant.bundles [folder]: validate and summarise
    import sys

    try:
        found = load_bundles(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_FOLDER)
    except KnowledgeError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        sys.exit(1)
    for b in found.values():
        print(f"{b.id}: {len(b.questions)} questions, {len(b.rules)} rules, {len(b.guides)} guides")
    print(f"{len(found)} bundles OK")
