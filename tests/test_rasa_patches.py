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
