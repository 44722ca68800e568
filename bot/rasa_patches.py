"""Measured changes to what Rasa 3.6 does on every turn; installed when the channels load.

- The action server's reply is checked against Rasa's schema with a validator compiled once.
  Rasa calls `jsonschema.validate`, which checks the schema itself (a large one: every event
  type) before every reply: 11% of a replica's time under load (py-spy; README, production
  profile). The reply is still validated, with the same schema and the same error.
- An event's class is looked up by its type name in a table, not by walking every subclass of
  `Event` (with an `inspect.isabstract` check on each) for every event read from the store:
  that walk was 20% of a replica's time at 20 users, and it grows with the conversation
  (every turn reads the whole session). A name not in the table falls back to Rasa's own walk,
  and the table is rebuilt then, so classes imported later are found as before.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Optional, Text, Type

import rasa.shared.utils.common
from jsonschema import ValidationError
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event

_resolve_by_walk = Event.resolve_by_type
_event_classes: Dict[Text, Type[Event]] = {}


@lru_cache(maxsize=1)
def _action_reply_validator() -> Any:
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)  # once, not per reply
    return cls(schema)


def _validate_action_result(self: RemoteAction, result: Dict[str, Any]) -> bool:
    try:
        _action_reply_validator().validate(result)
    except ValidationError as error:
        error.message += (". Failed to validate Action server response from API, make sure your response "
                          "from the Action endpoint is valid.")
        raise
    return True


def _event_table() -> Dict[Text, Type[Event]]:
    """Type name -> the class Rasa's walk returns for it: the first in `all_subclasses` order."""
    table: Dict[Text, Type[Event]] = {}
    for cls in rasa.shared.utils.common.all_subclasses(Event):
        table.setdefault(cls.type_name, cls)
    return table


def _resolve_by_type(type_name: Text, default: Optional[Type[Event]] = None) -> Optional[Type[Event]]:
    cls = _event_classes.get(type_name)
    if cls is not None:
        return cls
    _event_classes.clear()
    _event_classes.update(_event_table())  # a class imported since the table was built
    return _event_classes.get(type_name) or _resolve_by_walk(type_name, default)


def install() -> None:
    RemoteAction._validate_action_result = _validate_action_result
    Event.resolve_by_type = staticmethod(_resolve_by_type)
