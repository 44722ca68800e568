"""What a turn of a conversation means and how to answer it, given what it was about so far.

A turn is one of:
- an elliptical follow-up ("要多久", "那得带啥"): names no service, answered from the guide in
  context, in the section it asks about;
- a switch ("那社保卡呢"): names another service, answered from that one, carrying over the
  aspect asked before when it asks none;
- a fresh question: answered from retrieval, or met with one clarifying question when the
  best candidates are different guides its words cannot tell apart ("社保卡咋办");
- the answer to a clarifying question (a button, or words that pick one option); anything
  else is taken as a new question.

The context is a small value (`Context`) kept by the caller — Rasa slots, or the copilot's
page — so nothing here holds per-conversation state.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from index_builder.normalize import is_meaningful, normalize
from index_builder.retriever import Hit, Query, Retriever, SearchResult

from .answers import Answer, answer_from, ask_what, clarify, compose, section_menu, section_passage, unsure
from index_builder.aspects import ASPECT_SECTION, DOCUMENT_WORDS, asked_aspect
from .understanding import Names

# Clarify only short questions: a long one says enough for retrieval to decide.
CLARIFY_MAX_CONTENT_CHARS = 10
# ...and only when retrieval scores the options within this much of its best (fused, 0..1)
CLARIFY_SCORE_GAP = 0.2
# ...and a rival scored this close to the named guide still deserves the question
CLARIFY_CLOSE = 0.05
MAX_OPTIONS = 3
# "另外……", "对了，……": what follows is a question of its own, not a follow-up
_NEW_QUESTION = re.compile(r"^\W*(另外|对了|还有个事|还有一个事|再问一个|再问个|换个问题|顺便问)")
_ORDINALS = (("第一", "第1", "前者", "前面", "上面", "头一个"), ("第二", "第2", "后者", "后面", "下面"),
             ("第三", "第3", "最后"))


@dataclass
class Context:
    """What the conversation is about: the guide in context and the aspect last asked, or the
    guides offered by a pending clarifying question."""

    doc_id: str | None = None
    aspect: str | None = None
    options: list[str] = field(default_factory=list)
    pending_aspect: str | None = None

    SLOTS = ("topic_doc", "topic_aspect", "clarify_options", "clarify_aspect")

    def to_slots(self) -> dict[str, Any]:
        return {"topic_doc": self.doc_id, "topic_aspect": self.aspect,
                "clarify_options": list(self.options) or None, "clarify_aspect": self.pending_aspect}

    @classmethod
    def from_slots(cls, get: Callable[[str], Any]) -> "Context":
        options = get("clarify_options") or []
        return cls(get("topic_doc") or None, get("topic_aspect") or None,
                   [str(o) for o in options if o] if isinstance(options, list) else [], get("clarify_aspect") or None)


@dataclass
class Reply:
    answer: Answer
    context: Context


class Dialogue:
    """Decides what each turn means and composes its answer; one per retriever, stateless."""

    def __init__(self, retriever: Retriever):
        self.retriever = retriever
        self.names = Names(retriever)

    # ------------------------------------------------------------------ entry point

    def turn(self, text: str, ctx: Context | None = None, *, choice: str | None = None,
             audience: str = "citizen") -> Reply:
        """`choice`: the doc id of a clarification button (payload), when the turn is one."""
        ctx = self._valid(ctx or Context())
        if choice:
            return self._chosen(choice, ctx, audience)
        text = normalize(text or "")
        if not is_meaningful(text):
            return Reply(ask_what(), ctx)
        aspect = asked_aspect(text)
        content = self.names.content_tokens(text)
        query = self.retriever.prepare(text) if content else None
        if ctx.options:
            picked = self._pick_option(text, content, query, ctx.options)
            if picked:
                return self._answer_doc(picked, text, aspect or ctx.pending_aspect, "clarified", audience)
            if not content:  # "要多久？" while a clarifying question is open: ask it again
                return Reply(self._clarify_answer(ctx.options, ctx.pending_aspect), ctx)
            ctx = Context(ctx.doc_id, ctx.aspect)  # not an answer to it: a new question
        if not content:
            if ctx.doc_id:
                return self._follow_up(ctx.doc_id, text, aspect, audience)
            return Reply(ask_what(aspect), Context())
        result = self.retriever.search(query, k=30)
        if ctx.doc_id and not _NEW_QUESTION.match(text) and not self._names_other(content, ctx.doc_id, text, result):
            return self._follow_up(ctx.doc_id, query, aspect, audience)
        if not ctx.doc_id:
            return self._fresh(text, result, content, aspect, "fresh", audience)
        if aspect is None and self.names.content_chars(text) <= CLARIFY_MAX_CONTENT_CHARS:
            aspect = ctx.aspect  # "那离婚呢" after the materials of 结婚登记
        named = self.names.phrase_docs(text)
        if len(named) == 1:  # "那工规证呢": the service is named whole
            return self._answer_doc(named.pop(), query, aspect, "switch", audience)
        return self._fresh(text, result, content, aspect, "switch", audience)

    # ------------------------------------------------------------------ kinds of turn

    def _follow_up(self, doc_id: str, query: str | Query, aspect: str | None, audience: str) -> Reply:
        if aspect is None:
            text = query if isinstance(query, str) else query.text
            if not self.names.content_tokens(text) and not self._has_words(text):
                return Reply(section_menu(self.retriever, doc_id, self._title(doc_id)), Context(doc_id))
        return self._answer_doc(doc_id, query, aspect, "followup", audience)

    def _answer_doc(self, doc_id: str, query: str | Query, aspect: str | None, mode: str, audience: str) -> Reply:
        """Answer from one known guide: the section the aspect names, else its best passage."""
        passage, score = None, 1.0
        section = ASPECT_SECTION.get(aspect or "")
        if section:
            passage = section_passage(self.retriever, doc_id, section)
        if passage is None:
            hits = self.retriever.search_within(self._in_document_words(doc_id, query, aspect), [doc_id], k=1)
            if hits:
                passage, score = hits[0].passage, hits[0].score
        if passage is None:
            passages = self.retriever.passages_of(doc_id)
            if not passages:
                return Reply(ask_what(aspect), Context())
            passage = passages[0]
        answer = answer_from(self.retriever, passage, score, aspect=aspect, mode=mode, audience=audience)
        return Reply(answer, Context(doc_id, aspect))

    def _in_document_words(self, doc_id: str, query: str | Query, aspect: str | None) -> str | Query:
        """A published document has no 办理时限 section to jump to: search its articles with the
        aspect put the way documents put it."""
        passages = self.retriever.passages_of(doc_id)
        if not aspect or aspect not in DOCUMENT_WORDS or not passages or "heading_path" not in passages[0].meta:
            return query
        text = query if isinstance(query, str) else query.text
        return f"{text} {DOCUMENT_WORDS[aspect]}"

    def _fresh(self, text: str, result: SearchResult, content: list[str], aspect: str | None, mode: str,
               audience: str) -> Reply:
        options = self._ambiguous(text, result, content, mode)
        if options:
            return Reply(self._clarify_answer(options, aspect), Context(options=options, pending_aspect=aspect))
        if result.reason == "empty" or not result.hits:
            return Reply(ask_what(aspect), Context())
        named = self._named_candidate(text, result)
        if named:  # "营业执照怎么办": the guide called 营业执照, not the bundle that includes it
            return self._answer_doc(named, result.query, aspect or asked_aspect(text), mode, audience)
        if not result.confident and not self._named_top(text, content, result):
            return Reply(unsure(result, audience), Context())
        answer = compose(self.retriever, result, aspect, audience, confident=True)
        answer.turn["mode"] = mode
        return Reply(answer, Context(answer.turn.get("doc_id"), aspect or asked_aspect(text)))

    def _chosen(self, doc_id: str, ctx: Context, audience: str) -> Reply:
        """A clarification button, possibly replayed long after (say, after a restart)."""
        if not self.retriever.passages_of(doc_id):
            return Reply(ask_what(), Context())
        aspect = ctx.pending_aspect if doc_id in ctx.options else None
        title = self._title(doc_id)
        return self._answer_doc(doc_id, title, aspect, "clarified", audience)

    # ------------------------------------------------------------------ decisions

    def _names_other(self, content: list[str], doc_id: str, text: str, result: SearchResult) -> bool:
        """Does the message name a service other than the one in context? Either one of that
        service's names occurs in it whole ("那社保卡呢"), or its words fit that service's names
        better and retrieval agrees ("买房的呢" -> 购房提取)."""
        phrased = self.names.phrase_docs(text)
        if phrased:
            return doc_id not in phrased
        top = result.top_docs()
        if top and top[0].passage.doc_id == doc_id:
            return False
        scores = self.names.scores(self.names.name_tokens(content))
        mine = scores.get(doc_id, 0.0)
        rivals = {d for d, s in scores.items() if d != doc_id and s > mine}
        if not (rivals and result.confident and top and top[0].passage.doc_id in rivals):
            return False
        # The guide in hand close behind the top one: a near tie goes to the topic of the
        # conversation, not to a guide whose name shares a word ("一年能取几次" and 小学一年级).
        return not _near_top(top, doc_id)

    def _ambiguous(self, text: str, result: SearchResult, content: list[str], mode: str = "fresh") -> list[str]:
        """Different guides among the best candidates that the message's words fit about
        equally and that retrieval cannot tell apart either."""
        if self.names.content_chars(text) > CLARIFY_MAX_CONTENT_CHARS or not result.hits:
            return []
        names = self.names.name_tokens(content)
        scores = self.names.scores(names)
        if not scores:
            return []
        floor = result.hits[0].score - CLARIFY_SCORE_GAP
        tops = [h.passage.doc_id for h in result.top_docs()[:8] if h.passage.kind == "guide" and h.score >= floor]
        best = max(scores.values())
        best_doc = next((d for d in tops if scores.get(d, 0.0) >= best * 0.999), None)
        if best_doc is None:
            return []  # the guide the words fit best is not among retrieval's best
        tied = [d for d in tops if d == best_doc or self.names.fits_as_well(names, best_doc, d)]
        if len(tied) < 2:
            return []
        # A name said whole settles it when it is one guide's alone: "公积金能贷多少", or in a
        # switch ("那居住证呢") any name of one guide. "社保卡" is in most names of both 社保卡
        # guides, so it does not; nor does one that a rival is sometimes called by too
        # (居民养老金 for 养老金) when retrieval scores that rival as high.
        score = {h.passage.doc_id: h.score for h in result.top_docs()}
        for phrase, docs in self.names.phrases(text).items():
            mine = docs & set(tied)
            if len(mine) != 1:
                continue
            named = next(iter(mine))
            rivals = [d for d in tied if d != named]
            if mode == "switch" or not any(self.names.names_contain(d, phrase) or (
                    self.names.any_name_contains(d, phrase) and score[d] >= score[named] - CLARIFY_CLOSE)
                    for d in rivals):
                return []
        return tied[:MAX_OPTIONS]

    def _named_candidate(self, text: str, result: SearchResult) -> str | None:
        """A guide among retrieval's best that the message calls by one of its names, when the
        top one is not called so: names are what people say, so they outrank the score."""
        named = self.names.phrase_docs(text)
        tops = result.top_docs()
        if len(named) != 1 or not tops or tops[0].passage.doc_id in named:
            return None
        doc = next(iter(named))
        return doc if _near_top(tops, doc) else None

    def _named_top(self, text: str, content: list[str], result: SearchResult) -> bool:
        """Retrieval's best guide is also the one the message names, alone: two independent
        signals agree, so a middling retrieval score still answers."""
        top = result.top_docs()
        if not top or top[0].passage.kind != "guide":
            return False
        doc = top[0].passage.doc_id
        phrased = self.names.phrase_docs(text)
        if phrased:
            return phrased == {doc}
        scores = self.names.scores(self.names.name_tokens(content))
        return bool(scores) and scores.get(doc, 0.0) > 0 and all(
            s < scores[doc] for d, s in scores.items() if d != doc)

    def _pick_option(self, text: str, content: list[str], query: Query | None, options: list[str]) -> str | None:
        """Which offered guide a reply means, or None when it answers something else."""
        for i, words in enumerate(_ORDINALS):
            if i < len(options) and any(w in text for w in words):
                return options[i]
        for d in options:
            title = self._title(d)
            if title and (title in text or (len(text) >= 4 and text in title)):
                return d
        scores = self.names.scores(self.names.name_tokens(content))
        mine = {d: scores.get(d, 0.0) for d in options}
        best = max(mine.values(), default=0.0)
        if best > 0 and list(mine.values()).count(best) == 1:
            top = max(mine, key=mine.get)
            if max(scores.values()) <= best * 1.001:
                return top
        if scores and max(scores.values()) > best:  # names some other service: a new question
            return None
        if query is None:  # no content
            return None
        fresh = self.retriever.search(query, k=5)
        if fresh.confident and fresh.hits and fresh.hits[0].passage.doc_id not in options:
            return None  # retrieval is sure it is about something else
        hits = self.retriever.search_within(query, options, k=1)
        return hits[0].passage.doc_id if hits else None

    # ------------------------------------------------------------------ helpers

    def _clarify_answer(self, options: list[str], aspect: str | None) -> Answer:
        return clarify([(d, self._title(d)) for d in options], aspect)

    def _title(self, doc_id: str) -> str:
        passages = self.retriever.passages_of(doc_id)
        return passages[0].title if passages else ""

    def _valid(self, ctx: Context) -> Context:
        """Context from a store or a client may name guides no longer in the index."""
        known = lambda d: bool(d) and bool(self.retriever.passages_of(d))  # noqa: E731
        aspect = ctx.aspect if ctx.aspect in ASPECT_SECTION else None
        pending = ctx.pending_aspect if ctx.pending_aspect in ASPECT_SECTION else None
        options = [d for d in ctx.options if known(d)]
        return Context(ctx.doc_id if known(ctx.doc_id) else None, aspect, options if len(options) >= 2 else [],
                       pending)

    @staticmethod
    def _has_words(text: str) -> bool:
        """More than filler: a follow-up like "周末能办吗" that retrieval within the guide can use."""
        return len(re.sub(r"[\W_那这个呢啊呀吧嘛吗么的了]", "", text)) >= 3


def _near_top(tops: list[Hit], doc_id: str) -> bool:
    """Is ``doc_id`` among the three best documents, within the clarification gap of the first?"""
    floor = tops[0].score - CLARIFY_SCORE_GAP
    return any(h.passage.doc_id == doc_id and h.score >= floor for h in tops[:3])
