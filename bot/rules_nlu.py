"""Two rule-based NLU components after the intent classifier, from the plain-Python core.

ServiceQuestionClassifier: a message that asks about an aspect of a service ("工本费多少",
"窗口在哪", "有什么要求": assistant.aspects) is a service question (ask_service), whatever short
intent the classifier guessed for it (greet, rate_good, request_human … were seen), unless it asks for a
person or rates an answer in so many words; and greet, 转人工, ratings, bot challenge and 工单
status need a word of their own.

IntakeIntentClassifier: recognises a citizen's 诉求 (complaint, report, request for help,
suggestion) and a 工单 number, after the classifier: the intent becomes `report_issue` or
`ticket_status`. The decision is assistant.intake.kind's (rules and lexicons measured on
real messages), so long, emotional messages that the classifier has never seen the like of still reach
the 工单 flow. Short replies the classifier is sure of (affirm, deny, ratings, 转人工, bundle starts)
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

from index_builder.aspects import asked_aspect
from assistant.intake.kind import EXPLICIT, classify_message
from assistant.intake.kind import TICKET_ID

REPORT, STATUS = "report_issue", "ticket_status"
# intents that a short message keeps even when it sounds like a complaint
KEEP_WHEN_SHORT = {"affirm", "deny", "rate_good", "rate_bad", "request_human", "start_bundle", "start_company",
                   "thanks", "goodbye", STATUS}
SHORT = 30
# a letter this long that describes a problem is a 诉求 even when it asks something (then the
# question is answered too); 81 of the 573 real 诉求 of the dev file ask a question, 8 of them short
LONG = 80


def _set(message: Message, name: str) -> None:
    ranking = [r for r in message.get(INTENT_RANKING_KEY) or [] if r.get("name") != name]
    message.set(INTENT, {"name": name, "confidence": 1.0}, add_to_output=True)
    message.set(INTENT_RANKING_KEY, [{"name": name, "confidence": 1.0}, *ranking], add_to_output=True)


# The classifier's guesses that an aspect question overrides, and words that keep them
OVERRIDABLE = {"greet", "goodbye", "thanks", "bot_challenge", "out_of_scope", "affirm", "deny", "rate_good",
               "rate_bad", "request_human", "nlu_fallback", "inform"}
_KEEP = re.compile(r"人工|真人|客服|转接|坐席|好评|差评|满意|评价|点赞|谢谢|再见|拜拜|你好|您好|机器人")


class _Rules(GraphComponent):
    """Rules over the classifier's output: nothing to train, nothing to store."""

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> GraphComponent:
        return cls()

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


# Intents that need their own words: the classifier, trained on few short examples, also
# gives them to follow-ups it has never seen ("入园前要体检吗" -> greet, "能一块儿寄过来吗" -> request_human,
# "上户口用的" -> rate_bad). Without such a word the message is a service question. Every NLU
# example of these intents contains one (tests/test_rules_nlu.py checks that).
EVIDENCE = {
    "greet": r"你好|您好|你們好|你们好|大家好|在吗|在不在|早|上午好|下午好|晚上好|哈喽|hello|hi|嗨|打扰|有人吗|喂",
    "request_human": r"人工|真人|客服|工作人员|坐席|转接|找个|找人|接线员|专人|人来|活人|负责人|电话|热线|12345|human",
    "rate_good": r"好评|满意|谢谢|好|不错|有用|赞|棒|👍|清楚|明白|解决|帮助|帮到|厉害|准确|五星|给力|可以|到位",
    "rate_bad": r"差|不满意|没用|用都没有|答非所问|不准|不对|错|垃圾|一星|👎|看不懂|不清楚|没回答|等于没说|什么|乱|笼统|"
                r"过时|太长|不是我要|没帮助|慢|打不通|复杂|含糊|没人接|評",
    "ticket_status": r"工单|投诉|反映|诉求|举报|进度|处理|结果|回复|编号|受理|报的|查询",
    "start_company": r"(开|注册|成立|办|设立|创办|新开|想开|弄)[^，。？]{0,6}(公司|企业|店|个体|执照|工作室|厂)|一窗通|开办企业|"
                     r"开公司|创业|办个?执照|start",
    "bot_challenge": r"机器|機器|真人|AI|ai|人工智能|你是|是人|真的人|智能|程序|自动|chatbot|电脑",
    # "走了" only as the speaker leaving: "我外婆上礼拜走了" is a death in the family, not goodbye
    "goodbye": r"再见|再会|拜拜|^拜[!！。~～]*$|bye|88|回头见|回见|下次|改天|先这样|就这些|不聊|下线|告辞|晚安|结束|"
               r"没事了|(^|我|先)走了",
}
_EVIDENCE = {intent: re.compile(pattern, re.I) for intent, pattern in EVIDENCE.items()}


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class ServiceQuestionClassifier(_Rules):
    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            intent = (message.get(INTENT) or {}).get("name")
            if not text or text.startswith("/"):
                continue
            unsupported = intent in _EVIDENCE and not _EVIDENCE[intent].search(text)
            if unsupported or (intent in OVERRIDABLE and not _KEEP.search(text) and asked_aspect(text)):
                _set(message, "ask_service")
        return messages


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class IntakeIntentClassifier(_Rules):
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
            # naming it (投诉, 举报, 反映, 建议, 求助 …) settles it; otherwise a short question that
            # only sounds aggrieved ("有问题找谁") and a short reply the classifier is sure of keep their
            # intent. ("小区门口的路灯坏了一个月" is short and a 诉求: the 工单 action first checks
            # whether it answers an open clarifying question.)
            named = any(re.search(pattern, text) for pattern in EXPLICIT.values())
            if not named and len(text) < LONG and (kind.is_question or (
                    len(text) < SHORT and (intent in KEEP_WHEN_SHORT or asked_aspect(text)))):
                continue
            _set(message, REPORT)
        return messages
