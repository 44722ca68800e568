"""The console's own tables, kept in the assistant store's SQLite file next to the ratings
they follow up (one file to back up; one transaction can read a rating and write its review)."""
from __future__ import annotations

import datetime as dt
from contextlib import closing
from pathlib import Path

from ..stores import Store

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")

SCHEMA = """
CREATE TABLE IF NOT EXISTS admin_session (
    token_hash TEXT PRIMARY KEY,       -- sha256 of the cookie's token; the token itself is never stored
    user TEXT NOT NULL,
    created_at REAL NOT NULL,
    seen_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_login (
    user TEXT PRIMARY KEY,             -- failed logins of one account, for the back-off
    failures INTEGER NOT NULL,
    locked_until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS review (
    answer_id TEXT PRIMARY KEY REFERENCES rating (answer_id),
    status TEXT NOT NULL,
    appeal TEXT,                       -- 误评 | 恶意差评 while or after an appeal
    appellant TEXT,
    note TEXT,
    reply TEXT,                        -- the corrected answer shown to the citizen again
    updated_by TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_status ON review (status);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_target ON audit (target, id);
CREATE TABLE IF NOT EXISTS notice (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL,           -- the rated answer the notice corrects
    sender_key TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    delivered_at REAL,
    delivered_answer_id TEXT           -- the answer recorded when shown, so it can be rated again
);
CREATE INDEX IF NOT EXISTS notice_sender ON notice (sender_key, delivered_at);
CREATE TABLE IF NOT EXISTS gap_vector (
    text_hash TEXT NOT NULL,
    encoder TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (text_hash, encoder)
);
"""


_ensured: set[str] = set()  # store files whose console tables exist (checked once per process)


def ensure(store: Store) -> Store:
    """The store, with the console's tables created if missing (once per file and process: the
    web server builds its readers per request)."""
    key = str(Path(store.path).resolve())
    if key not in _ensured:
        with closing(store.connection()) as db:
            db.executescript(SCHEMA)
        _ensured.add(key)
    return store


def day_bounds(since: dt.date, until: dt.date) -> tuple[float, float]:
    """Epoch seconds of `since` 00:00 and of the day after `until`, China time (days are local)."""
    if until < since:
        raise ValueError("结束日期不能早于开始日期")
    start = dt.datetime.combine(since, dt.time(), CHINA_TZ)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), CHINA_TZ)
    return start.timestamp(), end.timestamp()


def china_time(at: float | None) -> str | None:
    return None if at is None else dt.datetime.fromtimestamp(at, CHINA_TZ).isoformat(timespec="seconds")


def today() -> dt.date:
    return dt.datetime.now(CHINA_TZ).date()
