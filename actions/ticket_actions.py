"""Rasa adapters for 12345 诉求 intake: one form over assistant.intake.

action_draft_ticket drafts the 工单 from the message (and answers its question part, if it
has one); ticket_form reads it back and takes the citizen's answer: confirm, cancel, a callback
number (kept encrypted by the channel, never in the tracker), "不用回电", or more details.
"""
from __future__ import annotations

import logging
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from assistant.answers import HOTLINE
from assistant.intake.service import TICKET_ID, Intake, status_text
from index_builder.normalize import normalize

from . import runtime
from .actions import answer_in_context, audience

log = logging.getLogger(__name__)
DOWN = f"抱歉，工单登记暂时不可用。请稍后再试，或直接拨打{HOTLINE}市民服务热线反映。"
PUBLIC = ("type", "category", "categories", "department", "place", "time", "summary", "urgency", "callback",
          "contact_masked", "id")
BUTTONS = [{"title": "确认提交", "payload": "确认提交"}, {"title": "需要回电", "payload": "需要回电"},
           {"title": "算了不投诉了", "payload": "算了不投诉了"}]


def public(draft: dict[str, Any]) -> dict[str, Any]:
    """The part of a draft front ends show (custom.ticket)."""
    return {k: draft.get(k) for k in PUBLIC if k in draft}


def _text(tracker: Tracker) -> str:
    return normalize(tracker.latest_message.get("text") or "")


def _answer_question_part(dispatcher: CollectingDispatcher, tracker: Tracker, text: str) -> list:
    """"……我想投诉；另外我自己也想开个小吃店": answer the question too, when the guides know it."""
    return answer_in_context(dispatcher, tracker, kinds=("answer",), text=Intake.question_part(text)) or []


class ActionDraftTicket(Action):
    def name(self) -> str:
        return "action_draft_ticket"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        intake = runtime.intake()
        if intake is None:
            dispatcher.utter_message(text=DOWN)
            return [SlotSet("ticket_draft", None)]
        text = _text(tracker)
        if tracker.get_slot("clarify_options"):  # "想领点钱 是被公司辞退的" answers "您是要办理……还是……？"
            picked = answer_in_context(dispatcher, tracker, kinds=("answer",), modes=("clarified",))
            if picked is not None:
                return [*picked, SlotSet("ticket_filing", False)]
        context = _answer_question_part(dispatcher, tracker, text) if intake.detect(text).is_question else []
        draft = intake.draft(text)
        log.info("ticket drafted: type=%s category=%s urgency=%s", draft.get("type"), draft.get("category"),
                 draft.get("urgency"))
        if audience(tracker) == "agent":  # the agent files it from the copilot's 工单 card
            dispatcher.utter_message(
                text=f"好的，您反映的情况我已经为您记录：{draft['summary']}。我们会转交{draft['department']}办理，"
                     "请问需要承办单位给您回电吗？", json_message={"ticket": public(draft)})
            return [*context, SlotSet("ticket_filing", False), SlotSet("ticket_draft", None)]
        dispatcher.utter_message(text=Intake.readback(draft), json_message={"ticket": public(draft)})
        return [*context, SlotSet("ticket_filing", True), SlotSet("ticket_draft", draft), SlotSet("ticket_reply", None)]


class ActionAskTicketReply(Action):
    def name(self) -> str:
        return "action_ask_ticket_reply"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        draft = tracker.get_slot("ticket_draft") or {}
        if draft.get("callback") and draft.get("contact_masked"):
            text = f"承办单位会打 {draft['contact_masked']} 回电。内容无误请回复“确认提交”；不想提交了可以说“算了”。"
        else:
            text = ("请核对以上内容：无误请回复“确认提交”；需要承办单位回电的，请留下手机号；"
                    "还有补充可以直接说；不想提交了可以说“算了”。")
        dispatcher.utter_message(text=text, buttons=BUTTONS, json_message={"ticket": public(draft)})
        return []


class ValidateTicketForm(FormValidationAction):
    def name(self) -> str:
        return "validate_ticket_form"

    def validate_ticket_reply(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                              domain: dict) -> dict[str, Any]:
        if not value:
            return {}
        intake = runtime.intake()
        draft = dict(tracker.get_slot("ticket_draft") or {})
        if intake is None or not draft:
            dispatcher.utter_message(text=DOWN)
            return {"ticket_reply": "cancelled"}
        text = _text(tracker) or str(value)
        meaning = Intake.understand(text)
        if meaning.kind == "cancel":
            dispatcher.utter_message(text="好的，这次不提交工单。如果之后还想反映，随时告诉我。")
            return {"ticket_reply": "cancelled", "ticket_draft": None}
        if meaning.kind == "contact":
            draft.update(callback=True, contact_masked=meaning.contact_masked)
            dispatcher.utter_message(text=Intake.readback(draft))
            return {"ticket_reply": None, "ticket_draft": draft}
        if meaning.kind == "no_callback":
            draft.update(callback=False, contact_masked=None)
            return {"ticket_reply": None, "ticket_draft": draft}
        if meaning.kind == "callback":
            if intake.store.recall_contact(tracker.sender_id):
                draft.update(callback=True)
                return {"ticket_reply": None, "ticket_draft": draft}
            dispatcher.utter_message(text="好的，请留下您的手机号，方便承办单位回电。")
            draft.update(callback=True)
            return {"ticket_reply": None, "ticket_draft": draft}
        if meaning.kind == "confirm":
            return self._file(dispatcher, tracker, intake, draft)
        if intake.detect(text).is_question and not intake.detect(text).is_complaint:
            _answer_question_part(dispatcher, tracker, text)  # its context is not kept inside the form
            dispatcher.utter_message(text="我们继续刚才的工单。")
            return {"ticket_reply": None}
        draft = Intake.add_details(draft, text, intake)  # more details: draft again from all of it
        dispatcher.utter_message(text="已补充。" + Intake.readback(draft))
        return {"ticket_reply": None, "ticket_draft": draft}

    @staticmethod
    def _file(dispatcher: CollectingDispatcher, tracker: Tracker, intake: Intake, draft: dict) -> dict[str, Any]:
        try:
            ticket = intake.file(draft, tracker.sender_id)
        except ValueError as exc:
            dispatcher.utter_message(text=f"{exc}。")
            return {"ticket_reply": None}
        except Exception:
            log.exception("ticket not filed")
            dispatcher.utter_message(text=DOWN)
            return {"ticket_reply": "cancelled"}
        callback = "，承办单位会按您留的号码回电" if ticket.get("callback") else ""
        if audience(tracker) == "agent":
            text = f"我已经为您登记了工单，编号 {ticket['id']}，转交{ticket['department']}办理{callback}。"
        else:
            text = (f"已为您提交工单，编号 {ticket['id']}。我们会转交{ticket['department']}办理{callback}；"
                    "一般会在规定时限内答复，您可以随时说“我的工单办得怎么样了”并提供编号查询进度。")
        dispatcher.utter_message(text=text, json_message={"ticket": public({**draft, **ticket})})
        log.info("ticket filed: %s", ticket["id"])
        return {"ticket_reply": "filed", "ticket_draft": None}


class ActionTicketDone(Action):
    def name(self) -> str:
        return "action_ticket_done"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        return [SlotSet("ticket_draft", None), SlotSet("ticket_reply", None), SlotSet("requested_slot", None),
                SlotSet("ticket_filing", False)]


class ActionTicketStatus(Action):
    def name(self) -> str:
        return "action_ticket_status"

    def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict) -> list:
        intake = runtime.intake()
        if intake is None:
            dispatcher.utter_message(text=DOWN)
            return []
        match = TICKET_ID.search(tracker.latest_message.get("text") or "")
        if match:
            ticket = intake.status(match.group(0))
            dispatcher.utter_message(text=status_text(ticket, match.group(0).upper()),
                                     json_message={"ticket": public(ticket)} if ticket else None)
            return []
        mine = intake.store.by_sender(tracker.sender_id, limit=3)
        if mine:
            dispatcher.utter_message(text="\n".join(status_text(t, t["id"]) for t in mine))
            return []
        dispatcher.utter_message(text="请告诉我工单编号（以 QP 开头，例如 QP20261201-000123），我帮您查询办理进度。")
        return []
