"""Durable stores for the answers given, their 好差评 ratings and hotline handoff summaries
(SQLite by default).

Every text is masked before it is written (seed task 18). SQLite runs in WAL mode with a
busy timeout and one short transaction per write, so concurrent writers from threads or
processes wait for each other instead of losing a rating.

A rating is trusted only as far as the record behind it (task 29: 好差评 feeds assessment):
the action server records every answer it gives (`record_answer`), and `rate` accepts a rating
only for an answer given to the same conversation, takes the rated guides from that record,
keeps one rating per answer (a second replaces the first; `rating_history` keeps both), and
flags, never deletes, what looks like 恶意差评 for review.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .privacy import mask_pii

RATINGS = ("good", "bad")
ANSWER_TEXT_MAX = 2000
BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Suspicion:
    """When a rating is flagged for review as a possible 恶意差评 (flags only; nothing is dropped).

    A kiosk or an office network puts many citizens behind one address, so the per-address
    count is higher than the per-conversation one."""
    window_s: float = 600.0
    bad_per_conversation: int = 5  # 差评 from one conversation within the window
    bad_per_address: int = 20  # 差评 from one client address within the window
    too_fast_s: float = 2.0  # a rating this soon after the answer was shown: not read


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answer (
    answer_id TEXT PRIMARY KEY,
    sender_key TEXT NOT NULL,          -- keyed hash of the conversation id: matches, never reveals
    sender_id TEXT NOT NULL,           -- masked, for display
    question TEXT NOT NULL,            -- masked; '' when the conversation had no question yet
    doc_ids TEXT NOT NULL,             -- the sources shown, in order (JSON)
    confident INTEGER NOT NULL,
    kind TEXT,
    at REAL NOT NULL,
    text TEXT NOT NULL DEFAULT '',     -- the reply shown, masked (what a 差评 is about)
    top_doc TEXT                       -- doc_ids[0], the guide the answer is about (for statistics)
);
CREATE INDEX IF NOT EXISTS answer_sender ON answer (sender_key, at);
CREATE TABLE IF NOT EXISTS rating (
    answer_id TEXT PRIMARY KEY REFERENCES answer (answer_id),
    sender_key TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    client_key TEXT,                   -- keyed hash of the client address, when known
    rating TEXT NOT NULL CHECK (rating IN ('good', 'bad')),
    reason TEXT,
    doc_ids TEXT NOT NULL,
    flags TEXT NOT NULL DEFAULT '[]',
    first_at REAL NOT NULL,
    at REAL NOT NULL,
    top_doc TEXT                       -- doc_ids[0]
);
CREATE INDEX IF NOT EXISTS rating_sender ON rating (sender_key, at);
CREATE INDEX IF NOT EXISTS rating_client ON rating (client_key, at);
CREATE TABLE IF NOT EXISTS rating_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL,
    sender_key TEXT NOT NULL,
    rating TEXT NOT NULL,
    reason TEXT,
    client_key TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rating_history_answer ON rating_history (answer_id, id);
CREATE INDEX IF NOT EXISTS rating_history_sender ON rating_history (sender_key, at);
CREATE INDEX IF NOT EXISTS rating_history_client ON rating_history (client_key, at);
CREATE TABLE IF NOT EXISTS handoff (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sender_key TEXT,                   -- keyed hash of the conversation id (NULL in older rows)
    at REAL                            -- epoch seconds (NULL in older rows)
);
CREATE INDEX IF NOT EXISTS handoff_sender ON handoff (sender_id, id);
"""
# Columns added after the first release: (table, column, declaration, backfill of older rows).
# Older files get them on open.
_TOP_DOC = "UPDATE {table} SET top_doc = json_extract(doc_ids, '$[0]')"
_ADDED = (("answer", "text", "TEXT NOT NULL DEFAULT ''", None), ("answer", "top_doc", "TEXT", _TOP_DOC),
          ("rating", "top_doc", "TEXT", _TOP_DOC), ("handoff", "sender_key", "TEXT", None), ("handoff", "at", "REAL", None))
# The console's figures read these covering indexes only (tens of ms for a month of 100,000 ratings).
_INDEXES_ON_ADDED = ("CREATE INDEX IF NOT EXISTS answer_stats ON answer (at, confident, sender_key, top_doc)",
                     "CREATE INDEX IF NOT EXISTS rating_stats ON rating (first_at, rating, top_doc, answer_id)",
                     "CREATE INDEX IF NOT EXISTS handoff_at ON handoff (at, sender_key)",
                     "CREATE INDEX IF NOT EXISTS handoff_key ON handoff (sender_key, at)")


class RatingRefused(ValueError):
    """The rated answer was not given to this conversation (or does not exist)."""


def _iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.timezone.utc).isoformat(timespec="seconds")


def _add_columns(db: sqlite3.Connection) -> None:
    for table, column, declaration, backfill in _ADDED:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            if backfill:
                db.execute(backfill.format(table=table))
    for sql in _INDEXES_ON_ADDED:
        db.execute(sql)


class Store:
    """One SQLite file; a fresh connection per call keeps it safe across threads and processes."""

    def __init__(self, path: Path | str, suspicion: Suspicion = Suspicion()):
        self.path = Path(path)
        self.suspicion = suspicion
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            _add_columns(db)
            # one secret per store, shared by every process that opens it, for the keyed hashes
            db.execute("INSERT OR IGNORE INTO meta VALUES ('hash_key', ?)", (secrets.token_hex(32),))
            self._hash_key = bytes.fromhex(db.execute("SELECT value FROM meta WHERE key = 'hash_key'").fetchone()[0])
        # An idle connection held open for the store's life. When the last connection to a WAL
        # database closes, SQLite checkpoints the log into the file and deletes it: with a fresh
        # connection per call, every answer recorded alone paid for that (0.7 of its 1.3 ms).
        # Holding one open leaves checkpoints to SQLite's automatic ones; it never opens a
        # transaction, so it blocks no writer or checkpoint.
        self._anchor = self._connect()
        self._anchor.execute("SELECT count(*) FROM meta").fetchall()  # a read opens its hold on the log

    def connection(self) -> sqlite3.Connection:
        """A new connection for reads (close it: `with closing(store.connection()) as db`)."""
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction: writers from other threads and processes wait for it."""
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _write(self, sql: str, params: tuple) -> int:
        with self.transaction() as db:
            return int(db.execute(sql, params).lastrowid)

    def key(self, value: str) -> str:
        """A keyed hash of a conversation id or a client address: equal inputs match, and the
        store never holds the value itself."""
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:24]

    # ------------------------------------------------------------- answers given

    def record_answer(self, answer_id: str, sender_id: str, question: str, doc_ids: list[str],
                      confident: bool, kind: str | None = None, at: float | None = None, text: str = "",
                      db: sqlite3.Connection | None = None) -> None:
        """Keep an answer given (masked); `db`: inside the caller's transaction."""
        if not answer_id:
            raise ValueError("answer_id is required")
        row = (answer_id, self.key(sender_id), mask_pii(sender_id), mask_pii(question or "")[:1000],
               json.dumps(list(doc_ids), ensure_ascii=False), int(bool(confident)), kind,
               time.time() if at is None else at, mask_pii(text or "")[:ANSWER_TEXT_MAX], next(iter(doc_ids), None))
        sql = ("INSERT OR IGNORE INTO answer (answer_id, sender_key, sender_id, question, doc_ids, confident, "
               "kind, at, text, top_doc) VALUES (?,?,?,?,?,?,?,?,?,?)")
        if db is None:
            self._write(sql, row)
        else:
            db.execute(sql, row)

    def answer(self, answer_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT answer_id, sender_id, question, doc_ids, confident, kind, at, text FROM answer "
                             "WHERE answer_id = ?", (answer_id,)).fetchone()
        if row is None:
            return None
        return {"answer_id": row[0], "sender_id": row[1], "question": row[2], "doc_ids": json.loads(row[3]),
                "confident": bool(row[4]), "kind": row[5], "created_at": _iso(row[6]), "text": row[7]}

    # ------------------------------------------------------------- 好差评

    def rate(self, answer_id: str, sender_id: str, rating: str, reason: str | None = None,
             client_key: str | None = None, at: float | None = None) -> dict[str, Any]:
        """Store this conversation's rating of one of its answers; {replaced, flags, doc_ids}.
        RatingRefused when the answer was not given to `sender_id`."""
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, got {rating!r}")
        at = time.time() if at is None else at
        sender_key = self.key(sender_id)
        reason = mask_pii(reason)[:500] if reason else None
        with self.transaction() as db:
            return self._rate(db, answer_id, sender_key, mask_pii(sender_id), rating, reason, client_key, at)

    def _rate(self, db: sqlite3.Connection, answer_id: str, sender_key: str, sender_id: str, rating: str,
              reason: str | None, client_key: str | None, at: float) -> dict[str, Any]:
        row = db.execute("SELECT question, doc_ids, at FROM answer WHERE answer_id = ? AND sender_key = ?",
                         (answer_id, sender_key)).fetchone()
        if row is None:
            raise RatingRefused(answer_id)
        question, doc_ids, answered_at = row
        flags = []
        if not question.strip():
            flags.append("no_question")
        if at - answered_at < self.suspicion.too_fast_s:
            flags.append("too_fast")
        replaced = db.execute("SELECT 1 FROM rating WHERE answer_id = ?", (answer_id,)).fetchone() is not None
        db.execute("INSERT INTO rating (answer_id, sender_key, sender_id, client_key, rating, reason, doc_ids, flags, "
                   "first_at, at, top_doc) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (answer_id) DO UPDATE SET "
                   "rating = excluded.rating, reason = excluded.reason, client_key = excluded.client_key, "
                   "flags = excluded.flags, at = excluded.at",
                   (answer_id, sender_key, sender_id, client_key, rating, reason, doc_ids, json.dumps(flags),
                    at, at, next(iter(json.loads(doc_ids)), None)))
        db.execute("INSERT INTO rating_history (answer_id, sender_key, rating, reason, client_key, at) "
                   "VALUES (?,?,?,?,?,?)", (answer_id, sender_key, rating, reason, client_key, at))
        if rating == "bad":
            self._flag_bursts(db, sender_key, client_key, at)
        flags = json.loads(db.execute("SELECT flags FROM rating WHERE answer_id = ?", (answer_id,)).fetchone()[0])
        return {"replaced": replaced, "flags": flags, "doc_ids": json.loads(doc_ids)}

    def _flag_bursts(self, db: sqlite3.Connection, sender_key: str, client_key: str | None, at: float) -> None:
        """Many 差评 from one conversation or one address within the window (re-ratings of one
        answer count too): flag every current 差评 of theirs in the window."""
        s = self.suspicion
        since = at - s.window_s
        for column, value, limit, flag in (("sender_key", sender_key, s.bad_per_conversation, "many_bad_conversation"),
                                           ("client_key", client_key, s.bad_per_address, "many_bad_address")):
            if value is None:
                continue
            (count,) = db.execute(f"SELECT count(*) FROM rating_history WHERE {column} = ? AND rating = 'bad' "
                                  "AND at >= ?", (value, since)).fetchone()
            if count < limit:
                continue
            rows = db.execute(f"SELECT answer_id, flags FROM rating WHERE {column} = ? AND rating = 'bad' "
                              "AND at >= ?", (value, since)).fetchall()
            for answer_id, flags in rows:
                marked = json.loads(flags)
                if flag not in marked:
                    db.execute("UPDATE rating SET flags = ? WHERE answer_id = ?",
                               (json.dumps(marked + [flag]), answer_id))

    def ratings(self, answer_id: str | None = None, flagged: bool | None = None) -> list[dict[str, Any]]:
        """Current ratings, oldest first; `flagged` keeps only (un)flagged ones."""
        sql = "SELECT answer_id, sender_id, rating, reason, doc_ids, flags, first_at, at FROM rating"
        where, params = [], []
        if answer_id:
            where.append("answer_id = ?")
            params.append(answer_id)
        if flagged is not None:
            where.append("flags != '[]'" if flagged else "flags = '[]'")
        if where:
            sql += " WHERE " + " AND ".join(where)
        with closing(self._connect()) as db:
            rows = db.execute(sql + " ORDER BY first_at, answer_id", params).fetchall()
        return [{"answer_id": a, "sender_id": s, "rating": r, "reason": why, "doc_ids": json.loads(d),
                 "flags": json.loads(f), "created_at": _iso(first), "updated_at": _iso(last)}
                for a, s, r, why, d, f, first, last in rows]

    def rating_history(self, answer_id: str) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT rating, reason, at FROM rating_history WHERE answer_id = ? ORDER BY id",
                              (answer_id,)).fetchall()
        return [{"rating": r, "reason": why, "at": _iso(at)} for r, why, at in rows]

    # ------------------------------------------------------------- handoff summaries

    def add_handoff(self, sender_id: str, summary: dict[str, Any], at: float | None = None) -> int:
        masked = json.loads(mask_pii(json.dumps(summary, ensure_ascii=False)))
        at = time.time() if at is None else at
        return self._write("INSERT INTO handoff (sender_id, summary, created_at, sender_key, at) VALUES (?,?,?,?,?)",
                           (mask_pii(sender_id), json.dumps(masked, ensure_ascii=False), _iso(at),
                            self.key(sender_id), at))

    def latest_handoff(self, sender_id: str) -> dict[str, Any] | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT summary, created_at FROM handoff WHERE sender_id = ? ORDER BY id DESC LIMIT 1",
                             (mask_pii(sender_id),)).fetchone()
        return None if row is None else {**json.loads(row[0]), "created_at": row[1]}

    def recent_handoffs(self, limit: int = 20) -> list[dict[str, Any]]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT sender_id, summary, created_at FROM handoff ORDER BY id DESC LIMIT ?",
                              (limit,)).fetchall()
        return [{"sender_id": s, **json.loads(j), "created_at": c} for s, j, c in rows]


@dataclass
class Turn:
    user: str
    shown: list[str]  # citations shown in the reply


def handoff_summary(turns: list[Turn], slots: dict[str, Any]) -> dict[str, Any]:
    """What a hotline agent needs before picking up: the questions, the guides shown, slots."""
    asked = [t.user for t in turns if t.user.strip()][-5:]
    shown = list(dict.fromkeys(c for t in turns for c in t.shown))[:6]
    filled = {k: v for k, v in slots.items() if v not in (None, "", [])}
    headline = f"市民咨询：{asked[-1][:60]}" if asked else "市民请求人工服务"
    return {"headline": headline, "questions": asked, "guides_shown": shown, "slots": filled}
