"""bot.rasa_patches: the action server's reply is still validated, with a validator built once."""
from __future__ import annotations

import pytest

import rasa_venv

pytestmark = pytest.mark.skipif(not rasa_venv.RASA_PY.exists(), reason="needs .venv-rasa (make setup)")


def test_the_compiled_validator_accepts_and_rejects_what_rasas_own_does(tmp_path):
    out = rasa_venv.run(tmp_path / "case.py", '''
import jsonschema
from rasa.core.actions.action import RemoteAction
from bot import rasa_patches

replies = [
    {"events": [{"event": "slot", "name": "topic", "value": "g1"}], "responses": [{"text": "好的"}]},
    {"events": [], "responses": []},
    {"events": [{"event": "no-such-event"}], "responses": []},
    {"events": "not a list", "responses": []},
    {"events": [], "responses": ["not an object"]},
]
def verdicts(check):
    out = []
    for reply in replies:
        try:
            out.append(check(reply))
        except jsonschema.ValidationError as e:
            out.append("invalid" + (" (hint)" if "Failed to validate Action server" in e.message else ""))
    return out
action = RemoteAction("action_x", None)
before = verdicts(action._validate_action_result)
rasa_patches.install()
after = verdicts(action._validate_action_result)
print(before)
print(after)
''')
    before, after = out.splitlines()
    assert before == after == "[True, True, 'invalid (hint)', 'invalid (hint)', 'invalid (hint)']"


def test_the_event_table_resolves_every_name_as_rasas_walk_does(tmp_path):
    out = rasa_venv.run(tmp_path / "events.py", '''
import rasa.shared.utils.common
from rasa.shared.core.events import Event, UserUttered, ActionExecuted, deserialise_events
from bot import rasa_patches

names = sorted({c.type_name for c in rasa.shared.utils.common.all_subclasses(Event)})
def outcome(name, default=None):
    try:
        cls = Event.resolve_by_type(name, default)
        return cls.__name__ if cls else None
    except ValueError as e:
        return "error: " + str(e)
cases = [(n, None) for n in names] + [("no-such-event", None), ("no-such-event", UserUttered), ("topic", None)]
before = [outcome(*c) for c in cases]
rasa_patches.install()
after = [outcome(*c) for c in cases]
assert before == after, [(c, b, a) for c, b, a in zip(cases, before, after) if b != a]

walks = []
walk = rasa.shared.utils.common.all_subclasses
rasa.shared.utils.common.all_subclasses = lambda cls: walks.append(cls) or walk(cls)
for _ in range(100):
    Event.resolve_by_type("user")
assert walks == [], len(walks)  # a table lookup, not a walk per event

class LateEvent(ActionExecuted):  # imported after the table was built
    type_name = "late_event"
assert Event.resolve_by_type("late_event") is LateEvent
events = deserialise_events([{"event": "user", "text": "要多久", "parse_data": {}},
                             {"event": "action", "name": "action_answer_guide"},
                             {"event": "slot", "name": "topic", "value": "g1"}])
print(len(names), [type(e).__name__ for e in events])
''')
    count, kinds = out.split(" ", 1)
    assert int(count) > 20
    assert kinds == "['UserUttered', 'ActionExecuted', 'SlotSet']"
