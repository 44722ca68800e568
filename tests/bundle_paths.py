"""Conversations through the 一件事 forms, derived from the bundles and the engine's branch
cases (tests/test_eligibility.CASES): used by the live REST tests (every rule of every bundle
through Rasa) and to write tests/conversations/test_bundles.yml for `rasa test`:

    python tests/bundle_paths.py   # rewrites tests/conversations/test_bundles.yml
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.bundles import SKIPPED, Bundle, load_bundles  # noqa: E402
from assistant.eligibility import Question, apply_answer, evaluate, next_question  # noqa: E402
from test_eligibility import CASES  # noqa: E402

FREE_QUESTIONS = ["社保卡丢了怎么补办", "居住证在哪里办", "公积金租房能取吗", "结婚登记要带什么",
                  "营业执照办下来要多久", "在外地住院能报销吗", "港澳通行证怎么续签", "敬老卡怎么申请"]


@dataclass
class Reply:
    text: str
    intent: str


def answer_text(q: Question, value) -> Reply:
    if value is SKIPPED or value == SKIPPED:
        return Reply("跳过", "inform")
    if q.type == "yes_no":
        return Reply("是的", "affirm") if value else Reply("没有", "deny")
    if q.type == "number":
        unit = getattr(q, "unit", None) or ""
        return Reply(f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}", "inform")
    return Reply(str(value), "inform")


def replies_for(bundle: Bundle, answers: dict) -> list[tuple[str, Reply]]:
    """The (slot, reply) sequence the form will ask for, answering from `answers`."""
    given: dict = {}
    out = []
    while (q := next_question(bundle, given)) is not None:
        if q.slot not in answers:
            raise ValueError(f"{bundle.id}: case does not answer {q.slot}")
        out.append((q.slot, answer_text(q, answers[q.slot])))
        given = apply_answer(bundle, given, q.slot, answers[q.slot])
    return out


def cases(bundle_id: str) -> list[tuple[str, dict]]:
    """Complete branch cases (rule id, answers) that the form can walk from start to end."""
    out = []
    for rule, answers, partial in CASES[bundle_id]:
        if partial or not answers:
            continue
        try:
            replies_for(load_bundles()[bundle_id], answers)
        except ValueError:
            continue
        out.append((rule, answers))
    return out


def pick(bundle: Bundle, status: str) -> tuple[str, dict] | None:
    return next(((r, a) for r, a in cases(bundle.id)
                 if evaluate(bundle, a).status == status and SKIPPED not in a.values()), None)


def start_text(bundle: Bundle) -> str:
    return f"{bundle.name.replace(chr(34), '')}，帮我看看能不能办"


def wrong_first_answer(bundle: Bundle, answers: dict) -> Reply | None:
    """A valid but wrong first answer that keeps the form going, to be corrected next."""
    q = next_question(bundle, {})
    candidates = []
    if q.type == "choice":
        candidates = [v for v in q.values if v != answers[q.slot]]
    elif q.type == "yes_no":
        candidates = [not answers[q.slot]]
    elif q.type == "number":
        candidates = [answers[q.slot] + 3]
    for value in candidates:
        if next_question(bundle, apply_answer(bundle, {}, q.slot, value)) is not None:
            return answer_text(q, value)
    return None


def stories() -> list[dict]:
    out = []
    for i, bundle in enumerate(load_bundles().values()):
        eligible = pick(bundle, "eligible")
        other = pick(bundle, "not_eligible") or pick(bundle, "other_route")
        paths = []
        if eligible:
            paths.append(("eligible", [r for _, r in replies_for(bundle, eligible[1])]))
        if other:
            paths.append(("not eligible or another route", [r for _, r in replies_for(bundle, other[1])]))
        if eligible:
            full = [r for _, r in replies_for(bundle, eligible[1])]
            wrong = wrong_first_answer(bundle, eligible[1])
            if wrong:
                paths.append(("correction", [wrong, Reply(f"刚才说错了，应该是{full[0].text}", "inform")] + full[1:]))
            free = Reply(FREE_QUESTIONS[i % len(FREE_QUESTIONS)], "ask_service")
            paths.append(("free question in the middle", full[:1] + [free] + full[1:]))
            paths.append(("cancel", full[:1] + [Reply("不办了", "deny")]) if len(full) > 1 else ("cancel", [Reply("不办了", "deny")]))
        for name, replies in paths:
            steps = [{"user": start_text(bundle), "intent": "start_bundle"}, {"action": "action_start_bundle"},
                     {"slot_was_set": [{"bundle_id": bundle.id}]}, {"action": "bundle_form"},
                     {"active_loop": "bundle_form"}, {"slot_was_set": [{"requested_slot": "bundle_reply"}]}]
            for reply in replies:
                steps += [{"user": reply.text, "intent": reply.intent}, {"action": "bundle_form"}]
            steps += [{"active_loop": None}, {"slot_was_set": [{"requested_slot": None}]},
                      {"action": "action_bundle_result"}, {"slot_was_set": [{"bundle_id": None}]},
                      {"user": "谢谢你", "intent": "thanks"}, {"action": "utter_thanks"}]
            out.append({"story": f"{bundle.id}: {name}", "steps": steps})
    return out


def write(path: Path) -> int:
    import yaml

    data = stories()
    header = "# Written by `python tests/bundle_paths.py` from the bundles and their branch cases.\n"
    path.write_text(header + yaml.safe_dump({"version": "3.1", "stories": data}, allow_unicode=True,
                                            sort_keys=False, width=200), encoding="utf-8")
    return len(data)


if __name__ == "__main__":
    print(write(Path(__file__).resolve().parent / "conversations" / "test_bundles.yml"), "stories")
