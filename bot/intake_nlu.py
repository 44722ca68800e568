"""An NLU component that recognises a citizen's 诉求 (complaint, report, request for help,
suggestion) and a 工单 number, after DIET: the intent becomes `report_issue` or
`ticket_status`. The decision is assistant.intake.kind's (rules and lexicons measured on
real messages), so long, emotional messages that DIET has never seen the like of still reach
the 工单 flow. Short replies DIET is sure of (affirm, deny, ratings, 转人工, bundle starts)
keep their intent: "不行" is an answer, not a complaint.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from assistant.intake.kind import EXPLICIT, classify_message
from assistant.intake.kind import TICKET_ID

REPORT, STATUS = "report_issue", "ticket_status"
# intents that a short message keeps even when it sounds like a complaint
KEEP_WHEN_SHORT = {"affirm", "deny", "rate_good", "rate_bad", "request_human", "start_bundle", "start_company",
                   "thanks", "goodbye", STATUS}
SHORT = 30


def _set(message: Message, name: str) -> None:
    ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != name]
    message.set(INTENT, {"name": name, "confidence": 1.0}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [{"name": name, "confidence": 1.0}, *ranking], add_to_output=True)


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class IntakeIntentClassifier(GraphComponent):
    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "IntakeIntentClassifier":
        return cls()

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if not text or text.startswith("/"):
                continue
            intent = (message.get(INTENT) or {}).get("name")
            if TICKET_ID.search(text):
                _set(message, STATUS)
                continue
            kind = classify_message(text)
            if not kind.is_complaint:
                continue
            # naming it (投诉, 举报, 反映, 建议, 求助 …) settles it; otherwise a question that only
            # sounds aggrieved ("有问题找谁", "单位开不了证明……要多久") and a short reply DIET is
            # sure of keep their intent
            named = any(re.search(pattern, text) for pattern in EXPLICIT.values())
            if not named and (kind.is_question or (intent in KEEP_WHEN_SHORT and len(text) < SHORT)):
                continue
            _set(message, REPORT)
        return messages
