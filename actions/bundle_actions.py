"""Rasa adapters for 一件事 bundles and 开办企业: one generic form over actions/eligibility.

The engine's state is the `bundle_answers` slot (a JSON dict); every reply during the form
is handed to `Session.handle`, so corrections, skips, re-prompts and "不办了" are the
engine's business. A free question in the middle is answered by retrieval and the current
question is asked again.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from index_builder.normalize import normalize

from assistant.answers import compose
from index_builder.aspects import asked_aspect
from assistant.bundles import Bundle, find_bundle, load_bundles
from assistant.eligibility import Question, Session, Turn, evaluate, question_text

from . import runtime
from .actions import answer_in_context, utter_answer

log = logging.getLogger(__name__)
COMPANY_BUNDLE = "kaiban-qiye"
QUESTION_INTENTS = {"ask_service", "nlu_fallback", "start_bundle", "start_company"}
RESET = ("bundle_id", "bundle_answers", "bundle_outcome", "bundle_reply")


@lru_cache(maxsize=1)
def bundles() -> dict[str, Bundle]:
    return load_bundles()


def _session(tracker: Tracker) -> Session | None:
    bundle = bundles().get(tracker.get_slot("bundle_id") or "")
    return Session(bundle, tracker.get_slot("bundle_answers") or {}) if bundle else None


def _options(q: Question) -> list[dict[str, str]]:
    if q.type == "yes_no":
        labels = ["是", "否"]
    elif q.type == "choice":
        labels = list(q.values)[:6]
    else:
        labels = []
    buttons = [{"title": label, "payload": label} for label in labels]
    if q.skippable:
        buttons.append({"title": "跳过", "payload": "跳过"})
    return buttons


def _lead(turn: Turn, session: Session) -> str:
    """What the engine said before the next question or the outcome (both are said elsewhere)."""
    tail = question_text(turn.question) if turn.question else (turn.outcome.to_text() if turn.outcome else "")
    message = turn.message
    return message[: -len(tail)].strip() if tail and message.endswith(tail) else message.strip()


def _text(tracker: Tracker) -> str:
    """The user's message in Simplified Chinese with full-width characters folded."""
    return normalize(tracker.latest_message.get("text") or "")


def _intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


class ActionStartBundle(Action):
    def name(self) -> str:
        return "action_start_bundle"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        text = _text(tracker)
        if tracker.get_slot("clarify_options"):  # "家里刚添了个娃" answers "您是要办理……还是……？"
            picked = answer_in_context(dispatcher, tracker, kinds=("answer",), modes=("clarified",))
            if picked is not None:
                return [SlotSet("bundle_id", None), *picked]
        bundle = find_bundle(text, bundles())
        if bundle is None and _intent(tracker) == "start_company":
            # "注册个有限公司执照几天能拿到" asks one thing: answer it; "我想开公司" starts the check
            if asked_aspect(text):
                answered = answer_in_context(dispatcher, tracker, text=text)
                if answered is not None:
                    return [SlotSet("bundle_id", None), *answered]
            bundle = bundles()[COMPANY_BUNDLE]
        if bundle is None:
            # "我想办个居住证" sounds like a bundle start but names a service: answer it
            answered = answer_in_context(dispatcher, tracker, text=text)
            if answered is not None:
                return [SlotSet("bundle_id", None), *answered]
            dispatcher.utter_message(
                text="请问您想办理哪一件事？可以选择下面的“一件事”，我会问几个问题，帮您判断能不能办、要准备什么。",
                buttons=[{"title": b.name, "payload": f"我想办{b.name}"} for b in bundles().values()])
            return [SlotSet("bundle_id", None)]
        dispatcher.utter_message(text=_lead(Session(bundle).start(), Session(bundle)))
        return [SlotSet("bundle_id", bundle.id), SlotSet("bundle_answers", {}), SlotSet("bundle_outcome", None)]


class ActionAskBundleReply(Action):
    def name(self) -> str:
        return "action_ask_bundle_reply"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        session = _session(tracker)
        question = session.current if session else None
        if question is None:  # nothing left to ask: the validator ends the form next turn
            return []
        dispatcher.utter_message(text=question_text(question), buttons=_options(question),
                                 json_message={"bundle": session.bundle.id, "slot": question.slot,
                                               "type": question.type, "label": question.label})
        return []


class ValidateBundleForm(FormValidationAction):
    def name(self) -> str:
        return "validate_bundle_form"

    def validate_bundle_reply(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: dict) -> dict[str, Any]:
        if not value:  # called on activation too (slots set since the last message): no reply yet
            return {}
        session = _session(tracker)
        if session is None:
            return {"bundle_reply": "ended", "bundle_outcome": {"status": "stopped"}}
        text = _text(tracker) or str(value)
        turn = session.handle(text)
        # Not an answer, correction, skip or stop, and phrased as a question: a question about
        # something else (a re-prompt leaves the answers as they were).
        if turn.kind == "reprompt" and _intent(tracker) in QUESTION_INTENTS:
            retriever = runtime.retriever()
            if retriever is not None:
                utter_answer(dispatcher, tracker, compose(retriever, retriever.search(text)), buttons=False)
            dispatcher.utter_message(text=f"我们继续「{session.bundle.name}」的问题。")
            return {"bundle_reply": None}
        lead = _lead(turn, session)
        if lead:
            dispatcher.utter_message(text=lead)
        if turn.kind == "stopped":
            return {"bundle_reply": "stopped", "bundle_outcome": {"status": "stopped"}}
        if turn.done:
            return {"bundle_reply": "done", "bundle_answers": session.answers,
                    "bundle_outcome": turn.outcome.to_dict()}
        return {"bundle_reply": None, "bundle_answers": session.answers}


class ActionBundleResult(Action):
    def name(self) -> str:
        return "action_bundle_result"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        outcome = tracker.get_slot("bundle_outcome") or {}
        session = _session(tracker)
        if outcome.get("status") not in (None, "stopped") and session is not None:
            dispatcher.utter_message(text=evaluate(session.bundle, session.answers).to_text(),
                                     buttons=[{"title": "转人工 / 12345", "payload": "/request_human"}],
                                     json_message={"bundle_outcome": outcome})
            log.info("bundle %s decided by rule %s", session.bundle.id, outcome.get("rule"))
        return [SlotSet(slot, None) for slot in RESET]
