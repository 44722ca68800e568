"""One entry point for 诉求 intake, used by the Rasa actions, the web copilot and the channel:
recognise a 诉求, draft its 工单, read the draft back, understand the caller's answer to it
(confirm, cancel, a callback number, more details, a question), file it, look up its status.

The classifier model is the one in build/models/intake/ (`make intake-model`, trained last);
without one the draft has no category and says so (the agent or the citizen's confirmation
still files it, routed to the hotline office for manual routing).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..privacy import mask_pii
from .kind import ASKING, SERVICE_QUESTION, TICKET_ID, MessageKind, _norm, classify_message
from .store import TicketStore, mask_contact
from .ticket import draft_ticket

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = Path(os.environ.get("ASSISTANT_INTAKE_MODEL", ROOT / "build" / "models" / "intake"))
STORE_PATH = Path(os.environ.get("ASSISTANT_TICKETS", ROOT / "build" / "data" / "tickets.db"))
# a mobile number as masked by the channel (138****5678) or a landline as written
MASKED_PHONE = re.compile(r"1[3-9]\d\*{4}\d{4}")
_CONFIRM = re.compile(r"^(确认|提交|确定|对的?|是的?|没错|可以|好的?|行|嗯|就这样|没问题|帮我提交|提交吧|确认提交)")
_CANCEL = re.compile(r"算了|不投诉了|不举报了|不反映了|不提交|取消|不报了|撤销|不办了")
# a bare "不用了" answers "需要回电吗": cancelling a report on a guess would lose it
_NO_CALLBACK = re.compile(r"不(用|需要)(回电|回访|联系|打电话)|不要回电|别打电话|不用打|^(不用了?|不需要了?|不要了?)[。！!]?$")
_CALLBACK = re.compile(r"(需要|要|请)(回电|回访|联系我|打电话给我|给我回电)|回电话给我|联系我")


@dataclass
class ReplyMeaning:
    kind: str  # confirm | cancel | contact | no_callback | callback | more
    contact_masked: str | None = None


class Intake:
    """Stateless over its model and store: the draft travels in the conversation (a slot)."""

    def __init__(self, store: TicketStore, model: Any | None = None):
        self.store = store
        self.model = model

    @classmethod
    def open(cls, store_path: Path | str = STORE_PATH, model_dir: Path | str = MODEL_DIR,
             allow_ephemeral_key: bool = False) -> "Intake":
        model = None
        try:
            from .classifier import IntakeModel

            model = IntakeModel.load(model_dir)
        except Exception as exc:  # IntakeModelError, or scikit-learn missing: drafts without category
            log.warning("intake model not loaded (%s); 工单 drafts will have no category", exc)
        return cls(TicketStore(store_path, allow_ephemeral_key=allow_ephemeral_key), model)

    @staticmethod
    def question_part(text: str) -> str:
        """The clauses of a mixed message that ask about a service ("另外我自己也想开个小吃店，
        要办什么证"), so the guide answer is not steered by the complaint's words."""
        clauses = [c for c in re.split(r"(?<=[。！？!?；;])", text or "") if c.strip()]
        asking = [c for c in clauses if ASKING.search(_norm(c)) or SERVICE_QUESTION.search(_norm(c))]
        return "".join(asking) or text

    @staticmethod
    def detect(text: str) -> MessageKind:
        return classify_message(text or "")

    def draft(self, text: str) -> dict[str, Any]:
        """A 工单 draft from the caller's words (masked; no contact in it)."""
        masked = mask_pii(text or "")[:2000]
        d = draft_ticket(masked, self.model)
        return {**d.to_dict(), "town": d.town, "is_question": d.is_question, "notes": d.notes,
                "callback": False, "contact_masked": None, "source_text": masked}

    @staticmethod
    def add_details(draft: dict[str, Any], text: str, intake: "Intake") -> dict[str, Any]:
        """More words from the caller: re-draft from everything said, keep the callback choice."""
        combined = f"{draft.get('source_text') or draft.get('summary') or ''}。{text}"
        new = intake.draft(combined)
        new.update(callback=draft.get("callback", False), contact_masked=draft.get("contact_masked"))
        return new

    @staticmethod
    def readback(draft: dict[str, Any]) -> str:
        """Two or three lines a citizen can check."""
        category = draft.get("category") or "待人工分类"
        lines = [f"我帮您整理了一份{draft.get('type') or '诉求'}工单：{draft.get('summary')}",
                 f"类别：{category}；承办单位：{draft.get('department')}"
                 + (f"；地点：{draft['place']}" if draft.get("place") else "")
                 + (f"；时间：{draft['time']}" if draft.get("time") else "")
                 + ("；紧急" if draft.get("urgency") == "紧急" else "")]
        if draft.get("contact_masked"):
            lines.append(f"回电号码：{draft['contact_masked']}")
        return "\n".join(lines)

    @staticmethod
    def understand(text: str) -> ReplyMeaning:
        """What the caller's answer to the read-back means."""
        t = (text or "").strip()
        phone = MASKED_PHONE.search(t)
        if phone:
            return ReplyMeaning("contact", phone.group(0))
        if _CANCEL.search(t) and not _CONFIRM.match(t.replace("算了", "")):
            return ReplyMeaning("cancel")
        if _NO_CALLBACK.search(t):
            return ReplyMeaning("no_callback")
        if _CALLBACK.search(t):
            return ReplyMeaning("callback")
        if _CONFIRM.match(t) and len(t) <= 12:
            return ReplyMeaning("confirm")
        return ReplyMeaning("more")

    def file(self, draft: dict[str, Any], sender_id: str) -> dict[str, Any]:
        """File the confirmed draft; the callback number is the one this conversation left."""
        contact = self.store.recall_contact(sender_id) if draft.get("callback") else None
        if draft.get("callback") and not contact:
            raise ValueError("需要回访时请留下联系电话")
        return self.store.file(draft, sender_id, contact, bool(draft.get("callback")))

    def status(self, ticket_id: str) -> dict[str, Any] | None:
        return self.store.get(ticket_id.upper())

    def remember_contact(self, sender_id: str, contact: str) -> str:
        return self.store.remember_contact(sender_id, contact)


def status_text(ticket: dict[str, Any] | None, ticket_id: str) -> str:
    if ticket is None:
        return f"没有找到编号为 {ticket_id} 的工单，请核对编号，或拨打12345查询。"
    return (f"工单 {ticket['id']}（{ticket.get('type') or '诉求'}，{ticket.get('category') or '待分类'}）"
            f"当前状态：{ticket['status']}，承办单位：{ticket.get('department')}，最近更新：{ticket['updated_at'][:16].replace('T', ' ')}。")


__all__ = ["Intake", "ReplyMeaning", "TICKET_ID", "MASKED_PHONE", "status_text", "mask_contact"]
