"""Rasa's SQL tracker store, made to ride out a database restart.

Rasa wraps every tracker store in a FailSafeTrackerStore: a read that fails returns "no
tracker", so the turn starts a new conversation, and a write that fails goes to process memory,
where the other replicas never see it. Both lose history. With PostgreSQL restarting, the
pooled connections are dead and the first queries fail even after the server is back.

This store retries a read or a write that failed for want of a connection (SQLAlchemy then
drops the pool's dead connections, so the next try opens a new one), with backoff, for up to
TRACKER_RETRY_S seconds (default 8: inside the channel's 20 s limit for the whole turn, with the
reads and the write of one turn). A write is safe to retry: it appends only the events the
database does not hold yet.
It also skips one query per write (see STORED), and reads and writes through SQLAlchemy Core
with statements built once, not through the ORM: a read of an 11-event session took 1.8 ms
with Rasa's ORM query and takes 0.9 ms (same rows, same order).

    tracker_store:
      type: bot.tracker_store.ResilientSQLTrackerStore
      dialect: "postgresql"   # the rest as for Rasa's `type: SQL`
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from typing import Any, Callable, Iterable, Optional, Text, TypeVar

import sqlalchemy as sa
import sqlalchemy.exc
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import SessionStarted
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from rasa.shared.core.trackers import DialogueStateTracker

log = logging.getLogger(__name__)
T = TypeVar("T")
# Events of the current session this tracker was read with. A turn reads and writes its tracker
# under the conversation's lock, so no other replica appends in between, and the write can skip
# Rasa's count query (8% of a replica's time under load). Kept on the tracker object of one turn,
# never across turns or processes.
STORED = "_events_in_store"
# connection lost, refused, or the server shutting down; not a bad query
RETRIED = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def retry_budget() -> float:
    return float(os.environ.get("TRACKER_RETRY_S", "8"))


async def with_retries(what: str, call: Callable[[], T], budget_s: float) -> T:
    """call() until it does not raise a connection error, sleeping 0.1, 0.2, 0.4 … 1 s between
    tries, for at most budget_s seconds; then the last error is raised."""
    deadline = time.monotonic() + budget_s
    pause = 0.1
    while True:
        try:
            return call()
        except RETRIED as exc:
            if time.monotonic() + pause > deadline:
                log.error("tracker store: %s failed for %.0f s, giving up: %s", what, budget_s, type(exc).__name__)
                raise
            log.warning("tracker store: %s failed (%s); retrying in %.1f s", what, type(exc).__name__, pause)
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)


def _write_ahead_log(engine: sa.engine.Engine) -> None:
    """SQLite in WAL mode (kept in the file): a commit appends to the log with one sync, where
    the default rollback journal creates, syncs and deletes a journal file for every commit, on
    the event loop of the one Rasa process; and reads no longer wait for a write."""
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")


class ResilientSQLTrackerStore(SQLTrackerStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_s = retry_budget()
        self._session_query = self._current_session_statement()
        if self.engine.dialect.name == "sqlite":  # the single process (`make run`): see _write_ahead_log
            _write_ahead_log(self.engine)

    def _current_session_statement(self) -> sa.sql.Select:
        """Rasa's `_event_query` for the latest session, as one Core statement: the events from
        the last `session_started` on, or all of them when there is none, in id order."""
        table = self.SQLEvent.__table__
        start = (sa.select(sa.func.max(table.c.timestamp))
                 .where(table.c.sender_id == sa.bindparam("sender"),
                        table.c.type_name == SessionStarted.type_name)
                 .scalar_subquery())
        return (sa.select(table.c.data)
                .where(table.c.sender_id == sa.bindparam("sender"),
                       sa.or_(table.c.timestamp >= start, start.is_(None)))
                .order_by(table.c.id))

    async def keys(self) -> Iterable[Text]:
        return await with_retries("keys", self._keys, self.retry_s)

    def _keys(self) -> list:
        with self.session_scope() as session:
            return [sender_id for (sender_id,) in session.query(self.SQLEvent.sender_id).distinct().all()]

    async def _retrieve(self, sender_id: Text, fetch_events_from_all_sessions: bool) -> Optional[DialogueStateTracker]:
        return await with_retries("read", lambda: self._read(sender_id, fetch_events_from_all_sessions), self.retry_s)

    def _read(self, sender_id: Text, all_sessions: bool) -> Optional[DialogueStateTracker]:
        if all_sessions:  # the HTTP API's export of a whole conversation: rare, Rasa's own query
            with self.session_scope() as session:
                rows = self._event_query(session, sender_id, fetch_events_from_all_sessions=True).all()
                events = [json.loads(row.data) for row in rows]
        else:
            with self.engine.connect() as conn:
                events = [json.loads(data) for (data,) in conn.execute(self._session_query, {"sender": sender_id})]
        if not (self.domain and events):
            return None
        tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
        if not all_sessions:
            setattr(tracker, STORED, len(events))
        return tracker

    async def save(self, tracker: DialogueStateTracker) -> None:
        await self.stream_events(tracker)  # once: a retried write must not publish twice
        tries = 0

        def write() -> None:
            nonlocal tries
            if tries:  # the failed try may have committed before the connection broke: count again
                setattr(tracker, STORED, None)
            tries += 1
            self._write(tracker)

        await with_retries("write", write, self.retry_s)

    def _write(self, tracker: DialogueStateTracker) -> None:
        """Append the events the database does not hold yet, in one transaction."""
        known = getattr(tracker, STORED, None)
        if known is None or known > len(tracker.events):
            with self.session_scope() as session:  # Rasa's way: count them in the database
                rows = self._rows(tracker, self._additional_events(session, tracker))
        else:
            rows = self._rows(tracker, itertools.islice(tracker.events, known, None))
        if rows:  # one multi-row INSERT, in order (ids keep the events' order), not the ORM's flush
            with self.engine.begin() as conn:
                conn.execute(self.SQLEvent.__table__.insert(), rows)
        setattr(tracker, STORED, None)  # a second save of the same tracker counts again

    @staticmethod
    def _rows(tracker: DialogueStateTracker, events: Iterable[Any]) -> list[dict[str, Any]]:
        rows = []
        for event in events:
            data = event.as_dict()
            rows.append({"sender_id": tracker.sender_id, "type_name": event.type_name,
                         "timestamp": data.get("timestamp"),
                         "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                         "action_name": data.get("name"), "data": json.dumps(data)})
        return rows
