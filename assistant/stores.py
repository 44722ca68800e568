"""Durable stores for 好差评 ratings and hotline handoff summaries (SQLite by default).

Every text is masked before it is written (seed task 18). SQLite runs in WAL mode with a
busy timeout and one short transaction per write, so concurrent writers from threads or
processes wait for each other instead of losing a rating.
"""
from __future__ import annotations

import datetime as dt
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .privacy import mask_pii

RATINGS = ("good", "bad")
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL,
    sender_id TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('good', 'bad')),
    reason TEXT,
    doc_ids TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id);
CREATE TABLE IF NOT EXISTS handoff (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS handoff_sender ON handoff (sender_id, id);
"""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Store:
    """One SQLite file; a fresh connection per call keeps it safe across threads and processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        return db

    def _write(self, sql: str, params: tuple) -> int:
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(sql, params)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(cur.lastrowid)

    # ------------------------------------------------------------- 好差评

    def add_feedback(self, answer_id: str, sender_id: str, rating: str, doc_ids: list[str],
                     reason: str | None = None) -> int:
        if rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, got {rating!r}")
        if not answer_id:
            raise ValueError("answer_id is required")
        return self._write(
            "INSERT INTO feedback (answer_id, sender_id, rating, reason, doc_ids, created_at) VALUES (?,?,?,?,?,?)",
            (answer_id, mask_pii(sender_id), rating, mask_pii(reason) if reason else None,
             json.dumps(list(doc_ids), ensure_ascii=False), _now()))

    def feedback(self, answer_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT answer_id, sender_id, rating, reason, doc_ids, created_at FROM feedback"
        params: tuple = ()
        if answer_id:
            sql, params = sql + " WHERE answer_id = ?", (answer_id,)
        with closing(self._connect()) as db:
            rows = db.execute(sql + " ORDER BY id", params).fetchall()
        keys = ("answer_id", "sender_id", "rating", "reason", "doc_ids", "created_at")
        return [dict(zip(keys, r[:4] + (json.loads(r[4]),) + r[5:])) for r in rows]

    # ------------------------------------------------------------- handoff summaries

    def add_handoff(self, sender_id: str, summary: dict[str, Any]) -> int:
        masked = json.loads(mask_pii(json.dumps(summary, ensure_ascii=False)))
        return self._write("INSERT INTO handoff (sender_id, summary, created_at) VALUES (?,?,?)",
                           (mask_pii(sender_id), json.dumps(masked, ensure_ascii=False), _now()))

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
