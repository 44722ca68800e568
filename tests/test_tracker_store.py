"""bot.tracker_store under Rasa's own Python (.venv-rasa): retries of a lost database connection.

The store needs Rasa, which lives in the other virtual environment, so each case runs there as a
small script over an SQLite tracker file; the PostgreSQL restart itself is in test_prod.py.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import rasa_venv

pytestmark = pytest.mark.skipif(not rasa_venv.RASA_PY.exists(), reason="needs .venv-rasa (make setup)")

PRELUDE = textwrap.dedent('''
    import asyncio, sys
    import sqlalchemy.exc
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered, ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker
    from bot.tracker_store import ResilientSQLTrackerStore, with_retries

    def store(db):
        return ResilientSQLTrackerStore(domain=Domain.empty(), dialect="sqlite", db=db)

    def failing(real, times):
        """real(), after raising a lost-connection error `times` times."""
        left = [times]
        def call(*a, **k):
            if left[0] > 0:
                left[0] -= 1
                raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
            return real(*a, **k)
        return call

    def tracker(sender, *texts):
        t = DialogueStateTracker(sender, [])
        for text in texts:
            t.update(UserUttered(text))
            t.update(ActionExecuted("action_listen"))
        return t
''')


def run_in_rasa(tmp_path: Path, body: str) -> str:
    return rasa_venv.run(tmp_path / "case.py", PRELUDE + textwrap.dedent(body), str(tmp_path / "tracker.db"),
                         TRACKER_RETRY_S="3")


def test_a_write_and_a_read_that_lose_the_connection_are_retried_and_nothing_is_doubled(tmp_path):
    out = run_in_rasa(tmp_path, '''
        s = store(sys.argv[1])
        asyncio.run(s.save(tracker("a", "开个小饭店要准备什么")))
        s._write = failing(s._write, 2)  # the next write fails twice, then goes through
        asyncio.run(s.save(tracker("a", "开个小饭店要准备什么", "那要多久")))
        s._read = failing(s._read, 3)
        got = asyncio.run(s.retrieve("a"))
        print([e.text for e in got.events if isinstance(e, UserUttered)])
    ''')
    assert out.strip() == "['开个小饭店要准备什么', '那要多久']"


def test_past_the_budget_the_error_is_raised_not_swallowed(tmp_path):
    out = run_in_rasa(tmp_path, '''
        s = store(sys.argv[1])
        s._read = failing(s._read, 10_000)
        try:
            asyncio.run(s.retrieve("a"))
        except sqlalchemy.exc.OperationalError:
            print("raised")
    ''')
    assert out.strip() == "raised"


def test_other_database_errors_are_not_retried(tmp_path):
    out = run_in_rasa(tmp_path, '''
        calls = []
        def bad():
            calls.append(1)
            raise sqlalchemy.exc.ProgrammingError("SELECT nope", {}, Exception("no such column"))
        try:
            asyncio.run(with_retries("read", bad, 3))
        except sqlalchemy.exc.ProgrammingError:
            print(len(calls))
    ''')
    assert out.strip() == "1"


def test_two_replicas_taking_turns_store_every_event_once_and_in_order(tmp_path):
    # each write appends after the events its own read saw (no count query); the other replica's
    # turns in between must neither be doubled nor skipped
    out = run_in_rasa(tmp_path, '''
        replicas = [store(sys.argv[1]), store(sys.argv[1])]
        asyncio.run(replicas[0].save(tracker("c", "t0")))
        for n in range(1, 6):
            s = replicas[n % 2]
            t = asyncio.run(s.retrieve("c"))
            t.update(UserUttered(f"t{n}"))
            t.update(ActionExecuted("action_listen"))
            asyncio.run(s.save(t))
        print([e.text for e in asyncio.run(replicas[0].retrieve("c")).events if isinstance(e, UserUttered)])
    ''')
    assert out.strip() == "['t0', 't1', 't2', 't3', 't4', 't5']"


def test_a_write_retried_after_a_commit_whose_answer_was_lost_is_not_doubled(tmp_path):
    out = run_in_rasa(tmp_path, '''
        s = store(sys.argv[1])
        asyncio.run(s.save(tracker("d", "first")))
        t = asyncio.run(s.retrieve("d"))
        t.update(UserUttered("second"))
        real = s._write
        broken = [True]
        def commit_then_break(tr):  # the database committed, the client saw the connection drop
            known = getattr(tr, "_events_in_store", None)
            real(tr)
            if broken:
                broken.pop()
                setattr(tr, "_events_in_store", known)
                raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("connection reset"))
        s._write = commit_then_break
        asyncio.run(s.save(t))
        print([e.text for e in asyncio.run(s.retrieve("d")).events if isinstance(e, UserUttered)])
    ''')
    assert out.strip() == "['first', 'second']"


def test_the_core_read_returns_what_rasas_orm_query_returns(tmp_path):
    # the latest session only (from its session_started on), in order; all events of a
    # conversation that never started a session; nothing for an unknown sender
    out = run_in_rasa(tmp_path, '''
        from rasa.core.tracker_store import SQLTrackerStore
        from rasa.shared.core.events import SessionStarted, SlotSet
        import time
        s = store(sys.argv[1])
        t = tracker("m", "old 1", "old 2")
        for i, e in enumerate([ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen"),
                               UserUttered("new 1"), SlotSet("topic_doc", "x"), UserUttered("new 2")]):
            e.timestamp = time.time() + 1 + i / 1000
            t.update(e)
        asyncio.run(s.save(t))
        asyncio.run(s.save(tracker("n", "only 1", "only 2")))
        rasa = SQLTrackerStore(domain=Domain.empty(), dialect="sqlite", db=sys.argv[1])
        for sender in ("m", "n", "nobody"):
            ours, theirs = asyncio.run(s.retrieve(sender)), asyncio.run(rasa.retrieve(sender))
            if theirs is None:
                print(sender, ours is None)
                continue
            same = [e.as_dict() for e in ours.events] == [e.as_dict() for e in theirs.events]
            print(sender, same, [e.text for e in ours.events if isinstance(e, UserUttered)])
    ''')
    assert out.strip().splitlines() == ["m True ['new 1', 'new 2']", "n True ['only 1', 'only 2']", "nobody True"]


def test_an_sqlite_tracker_file_is_put_in_write_ahead_log_mode_and_read_back_by_another_store(tmp_path):
    out = run_in_rasa(tmp_path, '''
        import sqlite3
        s = store(sys.argv[1])
        asyncio.run(s.save(tracker("a", "开个小饭店要准备什么", "那要多久")))
        mode = sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode").fetchone()[0]
        got = asyncio.run(store(sys.argv[1]).retrieve("a"))  # another process's store, same file
        print(mode, [e.text for e in got.events if isinstance(e, UserUttered)])
    ''')
    assert out == "wal ['开个小饭店要准备什么', '那要多久']"
