"""bot.tracker_store under Rasa's own Python (.venv-rasa): retries of a lost database connection.

The store needs Rasa, which lives in the other virtual environment, so each case runs there as a
small script over an SQLite tracker file; the PostgreSQL restart itself is in test_prod.py.
"""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"
pytestmark = pytest.mark.skipif(not RASA_PY.exists(), reason="needs .venv-rasa (make setup)")

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
    script = tmp_path / "case.py"
    script.write_text(PRELUDE + textwrap.dedent(body), encoding="utf-8")
    out = subprocess.run([str(RASA_PY), str(script), str(tmp_path / "tracker.db")], cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TRACKER_RETRY_S": "3"},
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


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
