"""The evidence words the rule-based NLU components ask of the classifier's short intents cover every
NLU example of those intents (else the guard would undo the training data). Reads the rules
from bot/rules_nlu.py's source: that module imports Rasa, which this environment lacks."""
import ast
import re
from pathlib import Path

import yaml

from index_builder.normalize import to_simplified

ROOT = Path(__file__).resolve().parent.parent


def _evidence() -> dict[str, str]:
    tree = ast.parse((ROOT / "bot" / "rules_nlu.py").read_text(encoding="utf-8"))
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "EVIDENCE")
    return ast.literal_eval(node.value)


def _examples() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in (ROOT / "bot" / "data" / "nlu").glob("*.yml"):
        for item in yaml.safe_load(path.read_text(encoding="utf-8")).get("nlu", []):
            if "intent" in item:
                out.setdefault(item["intent"], []).extend(
                    line[2:].strip() for line in item["examples"].splitlines() if line.startswith("- "))
    return out


def test_every_example_of_a_guarded_intent_has_its_evidence():
    examples = _examples()
    for intent, pattern in _evidence().items():
        assert examples.get(intent) or intent == "ticket_status", intent
        # the channel turns Traditional characters into Simplified before NLU
        missing = [e for e in examples.get(intent, []) if not re.search(pattern, to_simplified(e), re.I)]
        assert not missing, (intent, missing)


def test_follow_ups_seen_misread_have_no_evidence():
    evidence = _evidence()
    for intent, text in (("greet", "入园前要体检吗"), ("request_human", "能一块儿寄过来吗"), ("rate_bad", "上户口用的"),
                         ("ticket_status", "还有个事，我外公去世了，他的户口怎么注销"),
                         ("goodbye", "我外婆上礼拜走了"), ("goodbye", "老人走了以后户口怎么办")):
        assert not re.search(evidence[intent], text, re.I), (intent, text)
