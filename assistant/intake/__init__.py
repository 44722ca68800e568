"""Intake of citizen 诉求 (投诉, 举报, 求助, 建议) for the Qingpu 12345 hotline, in plain Python.

    kind.classify_message(text)        诉求 or 咨询 (or both), and the type
    classifier.IntakeModel             first-level category with scores (scikit-learn)
    ticket.draft_ticket(text, model)   a 工单 draft: type, category, 承办单位, place, time, summary, urgency
    data                               knowledge_base/intake/: categories, departments (sample), examples

Train and evaluate: `python -m assistant.intake train|eval` (see `assistant/intake/__main__.py`).

Measured (2020 TipDM message-board data, ../shared/eval; trained on its 2,577-row train file):
dev (600) accuracy 0.912, macro-F1 0.904; about 4 ms a prediction on 2 cores. `kind` recognises
95.5 % of the dev messages as 诉求 and flags none of the 93 questions of
knowledge_base/intake/service_questions.txt. `IntakeModel` is imported lazily (scikit-learn
loads in about a second), so `kind` and `ticket` stay cheap to import.
"""
from __future__ import annotations

from typing import Any

from .kind import MessageKind, classify_message
from .ticket import TicketDraft, draft_ticket, extract_place, extract_time, summarize, urgency

__all__ = ["MessageKind", "classify_message", "TicketDraft", "draft_ticket", "extract_place", "extract_time",
           "summarize", "urgency", "IntakeModel", "IntakeModelError"]


def __getattr__(name: str) -> Any:
    if name in ("IntakeModel", "IntakeModelError"):
        from . import classifier

        return getattr(classifier, name)
    raise AttributeError(name)
