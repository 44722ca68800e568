"""Rasa custom actions. Thin adapters over the plain-Python core in assistant/: the dialogue
(context, clarification, answers), the stores and privacy."""
from __future__ import annotations

import logging
import uuid
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from . import runtime
from assistant.answers import CHOICE_ENTITY, CHOOSE_INTENT, HOTLINE, Answer
from assistant.dialogue import Context
from assistant.privacy import mask_pii
from assistant.stores import RatingRefused, Turn, handoff_summary

log = logging.getLogger(__name__)
OFFERED = "handoff_offered"
# conversation bookkeeping an agent's handoff summary does not need (topic_doc stays: the guide)
INTERNAL_SLOTS = ("topic_aspect", "clarify_options", "clarify_aspect", "ticket_draft", "ticket_reply", "ticket_filing")
INDEX_DOWN = (f"抱歉，办事指南检索暂时不可用，请稍后再试，或拨打市民服务热线{HOTLINE}，"
              "由人工为您解答。")


def _clear_offer(tracker: Tracker) -> list:
    """A pending 'shall I get you a person?' offer ends once the conversation moves on."""
    return [SlotSet(OFFERED, False)] if tracker.get_slot(OFFERED) else []


def _answers_shown(tracker: Tracker) -> list[dict[str, Any]]:
    """The json payloads of the assistant's answers in this conversation, oldest first."""
    out = []
    for event in tracker.events:
        if event.get("event") == "bot":
            custom = (event.get("data") or {}).get("custom") or {}
            if custom.get("answer_id"):
                out.append(custom)
    return out


def _question(tracker: Tracker) -> str:
    """The citizen's last typed message (a button's /payload is not a question)."""
    for event in reversed(tracker.events):
        if event.get("event") == "user" and not (event.get("text") or "").startswith("/"):
            return event.get("text") or ""
    return ""


def utter_answer(dispatcher: CollectingDispatcher, tracker: Tracker, answer: Answer, buttons: bool = True) -> None:
    """Send an answer and record it in the store: a 好差评 is accepted only for a recorded
    answer, and counts against the sources recorded here."""
    dispatcher.utter_message(text=answer.text, buttons=answer.buttons if buttons else [],
                             json_message=answer.payload())
    try:
        runtime.store().record_answer(answer.answer_id, tracker.sender_id, _question(tracker),
                                      [s["doc_id"] for s in answer.sources], answer.confident, answer.turn.get("kind"),
                                      text=answer.text)
    except Exception as exc:  # the reply still goes out; only its rating will be refused
        log.error("answer %s not recorded: %s", answer.answer_id, type(exc).__name__)


def record_declined(tracker: Tracker, text: str) -> None:
    """Keep a question the assistant declined as out of scope (no guide, no confidence): the
    console counts it and groups such questions into knowledge gaps. Not rateable (no id shown)."""
    try:
        runtime.store().record_answer(f"oos-{uuid.uuid4().hex[:16]}", tracker.sender_id, _question(tracker), [],
                                      False, "out_of_scope", text=text)
    except Exception as exc:
        log.error("declined question not recorded: %s", type(exc).__name__)


def _response_text(domain: dict, response: str) -> str:
    variants = (domain.get("responses") or {}).get(response) or [{}]
    return str(variants[0].get("text") or "")


def _metadata(tracker: Tracker) -> dict[str, Any]:
    """The latest message's REST metadata (what bot/channels.py lets through)."""
    metadata = tracker.latest_message.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _client(tracker: Tracker) -> str | None:
    """The web server's keyed hash of the client address, when there is one."""
    return _metadata(tracker).get("client")


def audience(tracker: Tracker) -> str:
    """The copilot marks its messages as coming from a 12345 agent."""
    return "agent" if _metadata(tracker).get("audience") == "agent" else "citizen"


def _choice(tracker: Tracker) -> str | None:
    """The guide picked with a clarifying question's button, if this turn is one."""
    message = tracker.latest_message
    if (message.get("intent") or {}).get("name") != CHOOSE_INTENT:
        return None
    return next((str(e.get("value")) for e in message.get("entities") or []
                 if e.get("entity") == CHOICE_ENTITY and e.get("value")), None)


class ActionAnswerGuide(Action):
    def name(self) -> str:
        return "action_answer_guide"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        dialogue = runtime.dialogue()
        if dialogue is None:
            dispatcher.utter_message(text=INDEX_DOWN)
            return _clear_offer(tracker)
        choice = _choice(tracker)
        text = "" if choice else tracker.latest_message.get("text") or ""
        reply = dialogue.turn(text, Context.from_slots(tracker.get_slot), choice=choice, audience=audience(tracker))
        answer = reply.answer
        utter_answer(dispatcher, tracker, answer)
        log.info("answer %s %s/%s doc=%s section=%s", answer.answer_id, answer.turn.get("kind"),
                 answer.turn.get("mode"), answer.turn.get("doc_id"), answer.turn.get("section"))
        return [SlotSet(k, v) for k, v in reply.context.to_slots().items()] + _clear_offer(tracker)


class ActionAudienceReply(Action):
    """A fixed response for goodbye, "are you a bot", out-of-scope, and a bare yes or no, in the
    copilot's version (utter_X_agent) when the message comes from a 12345 agent. Out-of-scope
    and yes/no first ask the conversation core: with a guide in context, "收钱不" (classified
    deny) or "有问题找谁" (classified out_of_scope) is a follow-up it can answer."""

    RESPONSES = {"goodbye": "utter_goodbye", "bot_challenge": "utter_iamabot", "out_of_scope": "utter_out_of_scope",
                 "affirm": "utter_affirm", "deny": "utter_deny"}
    CONTEXTUAL = {"out_of_scope", "affirm", "deny"}
    # "不够的话能再加点商贷吗" was classified goodbye: a longer message may still be a follow-up
    CONTEXTUAL_IF_LONG = {"goodbye", "bot_challenge"}
    LONG = 8

    def name(self) -> str:
        return "action_audience_reply"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        text = tracker.latest_message.get("text") or ""
        if intent in self.CONTEXTUAL or (intent in self.CONTEXTUAL_IF_LONG and len(text) > self.LONG):
            answered = answer_in_context(dispatcher, tracker)
            if answered is not None:
                return answered
        response = self.RESPONSES.get(intent, "utter_out_of_scope")
        if audience(tracker) == "agent" and f"{response}_agent" in (domain.get("responses") or {}):
            response += "_agent"
        dispatcher.utter_message(response=response)
        if response.startswith("utter_out_of_scope"):
            record_declined(tracker, _response_text(domain, response))
        return []


def answer_in_context(dispatcher: CollectingDispatcher, tracker: Tracker, kinds: tuple = ("answer", "clarify"),
                      modes: tuple | None = None, text: str | None = None) -> list | None:
    """Let the conversation core answer a message another intent claimed (or `text`, a part of
    it), when it has a cited answer or a clarifying question for it (optionally only in the
    given modes); the events to return, or None."""
    dialogue = runtime.dialogue()
    text = tracker.latest_message.get("text") or "" if text is None else text
    if dialogue is None or not text or text.startswith("/"):
        return None
    reply = dialogue.turn(text, Context.from_slots(tracker.get_slot), audience=audience(tracker))
    turn = reply.answer.turn
    if turn.get("kind") not in kinds or (modes and turn.get("mode") not in modes):
        return None
    utter_answer(dispatcher, tracker, reply.answer)
    return [SlotSet(k, v) for k, v in reply.context.to_slots().items()] + _clear_offer(tracker)


class ActionFeedback(Action):
    def name(self) -> str:
        return "action_feedback"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        rating = "good" if intent == "rate_good" else "bad"
        shown = _answers_shown(tracker)
        if not shown:
            dispatcher.utter_message(text="谢谢您的评价！请先问我一个问题，再对回答进行评价。")
            return [SlotSet(OFFERED, True)] if rating == "bad" else []
        reason = (tracker.latest_message.get("text") or "").strip()
        try:  # the store takes the rated guides from its own record of the answer
            runtime.store().rate(shown[-1]["answer_id"], tracker.sender_id, rating, reason or None,
                                 client_key=_client(tracker))
        except RatingRefused:
            log.warning("rating of unrecorded answer %s refused", shown[-1]["answer_id"])
            dispatcher.utter_message(text=f"抱歉，这条回答的记录没有找到，评价没有保存。如需帮助请拨打{HOTLINE}。")
            return [SlotSet(OFFERED, True)] if rating == "bad" else []
        if rating == "good":
            dispatcher.utter_message(text="谢谢您的好评！还有其他要办的事吗？")
            return []
        dispatcher.utter_message(text=f"抱歉没能帮上忙，您的意见已记录，我们会改进。需要为您转人工吗？"
                                      f"（也可以直接拨打{HOTLINE}）",
                                 buttons=[{"title": "转人工", "payload": "/affirm"},
                                          {"title": "不用了", "payload": "/deny"}])
        return [SlotSet(OFFERED, True)]


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        turns: list[Turn] = []
        for event in tracker.events:
            if event.get("event") == "user":
                turns.append(Turn(event.get("text") or "", []))
            elif event.get("event") == "bot" and turns:
                custom = (event.get("data") or {}).get("custom") or {}
                turns[-1].shown.extend(s["citation"] for s in custom.get("sources", [])[:1])
        slots = {k: v for k, v in tracker.current_slot_values().items()
                 if k not in ("requested_slot", "session_started_metadata", OFFERED, *INTERNAL_SLOTS)}
        asked = [t for t in turns if not t.user.startswith("/")]
        summary = handoff_summary(asked, slots)
        runtime.store().add_handoff(tracker.sender_id, summary)
        log.info("handoff stored for %s", mask_pii(tracker.sender_id))
        dispatcher.utter_message(
            text=f"好的，已为您转人工服务，并把您的问题整理给了工作人员。您也可以直接拨打市民服务热线{HOTLINE}。",
            json_message={"handoff": summary})
        return _clear_offer(tracker)


class ActionDeclineHandoff(Action):
    def name(self) -> str:
        return "action_decline_handoff"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        dispatcher.utter_message(text="好的。如果还有其他问题，随时问我。")
        return [SlotSet(OFFERED, False)]
