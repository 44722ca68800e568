"""Durable store of filed 12345 工单 (SQLite, same style as assistant/stores.py).

    store = TicketStore("data/tickets.db")              # key from ASSISTANT_TICKET_KEY
    t = store.file(draft.to_dict(), sender_id, contact="13812345678", callback=True)
    t["id"], t["status"], t["contact_masked"]           # "QP20261201-000123", "已受理", "138****5678"

Privacy: every text field (summary, place, time, notes …) is stored masked (mask_pii). The
caller's contact number is stored only as AES-256-GCM ciphertext (random 96-bit nonce, the
ticket id as associated data, so a ciphertext cannot be moved to another row) plus a masked
form for pages; `contact(ticket_id)` decrypts it for the delivery to the 12345 system only.
The sender id is stored masked for display and as an HMAC for exact `by_sender` lookups (two
callers whose numbers mask alike never see each other's tickets).

Key: ASSISTANT_TICKET_KEY = base64 of 32 random bytes, e.g.
    python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"
A fingerprint of the key is kept in the file: opening it with another key fails at once.

Ids are "QP" + the date in China time + a per-day sequence ("QP20261201-000123"), drawn inside
the filing transaction (BEGIN IMMEDIATE), so writers in several processes never share one.
Filing also enqueues the ticket for delivery (outbox table, same transaction): see outbox.py.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..privacy import mask_pii
from .outbox import OUTBOX_SCHEMA, enqueue

log = logging.getLogger(__name__)

KEY_ENV = "ASSISTANT_TICKET_KEY"
BUSY_TIMEOUT_S = 30.0
ID_PREFIX = "QP"
CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
FILED = "已受理"
# Usual statuses of a 工单 (the 12345 system may report others; any non-empty text is accepted).
STATUSES = (FILED, "已转办", "办理中", "已办结", "已回访", "已撤销", "已退回")
TEXT_FIELDS = ("type", "category", "department", "place", "time", "summary", "urgency")
UNCATEGORISED = "未分类"
_KEY_HELP = (f"set {KEY_ENV} to the base64 of 32 random bytes, e.g. "
             f"export {KEY_ENV}=$(python -c \"import base64, os; print(base64.b64encode(os.urandom(32)).decode())\")"
             " — keep it in the deployment's secrets; tickets filed with it cannot be decrypted without it")
_PHONE_CHARS = re.compile(r"[\s\-()（）+]")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ticket_seq (day TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ticket (
    id TEXT PRIMARY KEY,
    sender_masked TEXT NOT NULL,
    sender_hash TEXT NOT NULL,
    type TEXT, category TEXT, categories TEXT NOT NULL, department TEXT,
    place TEXT, time TEXT, summary TEXT NOT NULL, urgency TEXT,
    callback INTEGER NOT NULL,
    contact_enc BLOB,             -- nonce (12 bytes) + AES-GCM ciphertext and tag
    contact_masked TEXT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_sender ON ticket (sender_hash, created_at);
CREATE TABLE IF NOT EXISTS ticket_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id TEXT NOT NULL REFERENCES ticket (id),
    status TEXT NOT NULL,
    note TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_history_ticket ON ticket_history (ticket_id, id);
CREATE TABLE IF NOT EXISTS pending_contact (
    sender_hash TEXT PRIMARY KEY,
    contact_enc BLOB NOT NULL,
    contact_masked TEXT NOT NULL,
    at TEXT NOT NULL
);
"""


class TicketKeyError(RuntimeError):
    """The encryption key is missing, malformed, or not the one the file was written with."""


def now_china() -> dt.datetime:
    return dt.datetime.now(CHINA_TZ)


def mask_contact(contact: str) -> str:
    """138****5678 for a mobile; a landline keeps at most its first 3 and last 4 digits."""
    digits = re.sub(r"\D", "", contact)
    if len(digits) == 13 and digits.startswith("86"):  # +86 138 …
        digits = digits[2:]
    if len(digits) >= 11:
        return digits[:3] + "****" + digits[-4:]
    keep = 4 if len(digits) >= 8 else 2
    return "*" * max(4, len(digits) - keep) + digits[-keep:]


def load_key(value: str | None = None) -> bytes:
    """The 32-byte key from `value` or ASSISTANT_TICKET_KEY; TicketKeyError saying how to set it."""
    raw = (value if value is not None else os.environ.get(KEY_ENV, "")).strip()
    if not raw:
        raise TicketKeyError(f"{KEY_ENV} is not set: contacts of 工单 are encrypted at rest; {_KEY_HELP}")
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise TicketKeyError(f"{KEY_ENV} is not valid base64; {_KEY_HELP}") from None
    if len(key) != 32:
        raise TicketKeyError(f"{KEY_ENV} decodes to {len(key)} bytes, expected 32; {_KEY_HELP}")
    return key


class TicketStore:
    """Filed 工单 in one SQLite file; a fresh connection per call (threads and processes)."""

    def __init__(self, path: Path | str, *, key: bytes | None = None, allow_ephemeral_key: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ephemeral = False
        if key is None:
            try:
                key = load_key()
            except TicketKeyError:
                if not allow_ephemeral_key:
                    raise
                key, ephemeral = AESGCM.generate_key(bit_length=256), True
                log.warning("%s is not set: using a random in-memory key; contacts of the 工单 filed now "
                            "cannot be decrypted after a restart (tests and development only)", KEY_ENV)
        if len(key) != 32:
            raise TicketKeyError(f"the ticket key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._sender_key = hmac.new(key, b"sender-lookup", hashlib.sha256).digest()
        fingerprint = hmac.new(key, b"key-check", hashlib.sha256).hexdigest()[:16]
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA + OUTBOX_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('key_fingerprint', ?)", (fingerprint,))
            stored = db.execute("SELECT value FROM meta WHERE name = 'key_fingerprint'").fetchone()[0]
        if stored != fingerprint:
            if not ephemeral:
                raise TicketKeyError(f"{self.path} was written with another {KEY_ENV}: its contacts cannot be "
                                     "decrypted with this key (set the key the file was created with)")
            log.warning("%s was written with another key: old contacts cannot be decrypted", self.path)

    # ------------------------------------------------------------- plumbing

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        db.row_factory = sqlite3.Row
        return db

    def transaction(self) -> "_Tx":
        """`with store.transaction() as db:` one BEGIN IMMEDIATE … COMMIT (ROLLBACK on error)."""
        return _Tx(self)

    def _sender_hash(self, sender_id: str) -> str:
        return hmac.new(self._sender_key, sender_id.encode(), hashlib.sha256).hexdigest()

    def _encrypt(self, ticket_id: str, contact: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, contact.encode(), ticket_id.encode())

    # ------------------------------------------------------------- filing

    def file(self, draft: dict[str, Any], sender_id: str, contact: str | None, callback: bool) -> dict[str, Any]:
        """Store a filed 工单 (status 已受理), enqueue its delivery, return the masked view."""
        contact = (contact or "").strip() or None
        if contact is not None and not (7 <= len(_PHONE_CHARS.sub("", contact)) <= 15
                                        and _PHONE_CHARS.sub("", contact).isdigit()):
            raise ValueError("联系电话格式不正确，请填写手机号或固定电话")
        if callback and contact is None:
            raise ValueError("需要回访时请留下联系电话")
        if not str(draft.get("summary") or "").strip():
            raise ValueError("工单内容不能为空")

        def clean(value: Any) -> str | None:  # masked, and the contact as written never in clear
            if value is None:
                return None
            text = mask_pii(str(value))
            for form in {contact, _PHONE_CHARS.sub("", contact)} if contact else ():
                text = text.replace(form, mask_contact(contact))
            return text

        fields = {f: clean(draft.get(f)) for f in TEXT_FIELDS}
        categories = [{"category": clean(c.get("category")), "score": round(float(c.get("score", 0.0)), 4)}
                      for c in draft.get("categories") or []]
        now = now_china()
        created = now.isoformat(timespec="seconds")
        with self.transaction() as db:
            day = now.strftime("%Y%m%d")
            seq = db.execute("INSERT INTO ticket_seq (day, last) VALUES (?, 1) ON CONFLICT (day) "
                             "DO UPDATE SET last = last + 1 RETURNING last", (day,)).fetchone()[0]
            ticket_id = f"{ID_PREFIX}{day}-{seq:06d}"
            db.execute(
                "INSERT INTO ticket (id, sender_masked, sender_hash, type, category, categories, department, place,"
                " time, summary, urgency, callback, contact_enc, contact_masked, status, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (ticket_id, mask_pii(sender_id), self._sender_hash(sender_id), fields["type"], fields["category"],
                 json.dumps(categories, ensure_ascii=False), fields["department"], fields["place"], fields["time"],
                 fields["summary"], fields["urgency"], int(bool(callback)),
                 self._encrypt(ticket_id, contact) if contact else None,
                 mask_contact(contact) if contact else None, FILED, created, created))
            db.execute("INSERT INTO ticket_history (ticket_id, status, note, actor, at) VALUES (?,?,?,?,?)",
                       (ticket_id, FILED, "市民通过智能助手提交", "assistant", created))
            enqueue(db, ticket_id)
        return self.get(ticket_id)

    # ------------------------------------------------------------- reading

    @staticmethod
    def _view(row: sqlite3.Row) -> dict[str, Any]:
        return {"id": row["id"], "created_at": row["created_at"], "updated_at": row["updated_at"],
                "status": row["status"], "sender_id": row["sender_masked"],
                **{f: row[f] for f in TEXT_FIELDS}, "categories": json.loads(row["categories"]),
                "callback": bool(row["callback"]), "contact_masked": row["contact_masked"]}

    def get(self, ticket_id: str) -> dict[str, Any] | None:
        """The masked view (never the clear contact) with its status history, or None."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM ticket WHERE id = ?", (ticket_id,)).fetchone()
            if row is None:
                return None
            history = db.execute("SELECT status, note, actor, at FROM ticket_history WHERE ticket_id = ? "
                                 "ORDER BY id", (ticket_id,)).fetchall()
        return {**self._view(row), "history": [dict(h) for h in history]}

    def by_sender(self, sender_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """A sender's 工单, newest first (masked views, without history)."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM ticket WHERE sender_hash = ? ORDER BY created_at DESC, id DESC "
                              "LIMIT ?", (self._sender_hash(sender_id), limit)).fetchall()
        return [self._view(r) for r in rows]

    def contact(self, ticket_id: str) -> str | None:
        """The clear contact number, for the delivery payload only. KeyError: no such ticket."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT contact_enc FROM ticket WHERE id = ?", (ticket_id,)).fetchone()
        if row is None:
            raise KeyError(ticket_id)
        if row[0] is None:
            return None
        blob = bytes(row[0])
        try:
            return self._aead.decrypt(blob[:12], blob[12:], ticket_id.encode()).decode()
        except InvalidTag:
            raise TicketKeyError(f"the contact of {ticket_id} cannot be decrypted: wrong {KEY_ENV} "
                                 "(or the row was altered)") from None

    # ------------------------------------------------------------- a caller's number, before filing

    def remember_contact(self, sender_id: str, contact: str) -> str:
        """Keep the number a caller typed (encrypted, by sender) until the 工单 is filed: the
        channel calls this before masking the message, so the tracker never holds it in clear.
        Returns the masked form the conversation sees."""
        sender_hash = self._sender_hash(sender_id)
        nonce = os.urandom(12)
        blob = nonce + self._aead.encrypt(nonce, contact.encode(), sender_hash.encode())
        masked = mask_contact(contact)
        with self.transaction() as db:
            db.execute("INSERT INTO pending_contact (sender_hash, contact_enc, contact_masked, at) VALUES (?,?,?,?) "
                       "ON CONFLICT (sender_hash) DO UPDATE SET contact_enc = excluded.contact_enc, "
                       "contact_masked = excluded.contact_masked, at = excluded.at",
                       (sender_hash, blob, masked, now_china().isoformat(timespec="seconds")))
        return masked

    def recall_contact(self, sender_id: str) -> str | None:
        """The number remembered for this conversation, in clear (for filing only), or None."""
        sender_hash = self._sender_hash(sender_id)
        with closing(self._connect()) as db:
            row = db.execute("SELECT contact_enc FROM pending_contact WHERE sender_hash = ?", (sender_hash,)).fetchone()
        if row is None:
            return None
        blob = bytes(row[0])
        try:
            return self._aead.decrypt(blob[:12], blob[12:], sender_hash.encode()).decode()
        except InvalidTag:
            return None

    def counts(self, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """Totals by category, department, status and China-time day, for 工单 filed on days
        [since, until] (ISO dates, both optional), for statistics pages."""
        where, params = self._days(since, until)
        out: dict[str, Any] = {}
        with closing(self._connect()) as db:
            out["total"] = db.execute(f"SELECT COUNT(*) FROM ticket {where}", params).fetchone()[0]
            for column in ("category", "department", "status"):
                rows = db.execute(f"SELECT COALESCE({column}, ?), COUNT(*) FROM ticket {where} GROUP BY 1 "
                                  "ORDER BY 2 DESC, 1", (UNCATEGORISED, *params)).fetchall()
                out[f"by_{column}"] = {k: n for k, n in rows}
            out["by_day"] = dict(db.execute(f"SELECT substr(created_at, 1, 10), COUNT(*) FROM ticket {where} "
                                            "GROUP BY 1 ORDER BY 1", params).fetchall())
        return out

    def listing(self, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
        """Masked views with their delivery state, oldest first, filed on days [since, until]."""
        where, params = self._days(since, until)
        with closing(self._connect()) as db:
            rows = db.execute(f"SELECT *, (SELECT state FROM outbox WHERE ticket_id = ticket.id) AS delivery "
                              f"FROM ticket {where} ORDER BY created_at, id", params).fetchall()
        return [{**self._view(r), "delivery": r["delivery"]} for r in rows]

    @staticmethod
    def _days(since: str | None, until: str | None) -> tuple[str, tuple[str, ...]]:
        """A WHERE clause on created_at (ISO text in China time, so days compare as text)."""
        clauses, params = [], []
        if since:
            clauses.append("created_at >= ?")
            params.append(dt.date.fromisoformat(since).isoformat())
        if until:
            clauses.append("created_at < ?")
            params.append((dt.date.fromisoformat(until) + dt.timedelta(days=1)).isoformat())
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", tuple(params)

    # ------------------------------------------------------------- status

    def set_status(self, ticket_id: str, status: str, note: str | None = None, actor: str = "system") -> dict[str, Any]:
        """Change the status and record who/when/what in the history. KeyError: no such ticket."""
        status = (status or "").strip()
        if not status or len(status) > 20:
            raise ValueError(f"status must be 1–20 characters, e.g. one of {STATUSES}")
        at = now_china().isoformat(timespec="seconds")
        with self.transaction() as db:
            if db.execute("UPDATE ticket SET status = ?, updated_at = ? WHERE id = ?",
                          (status, at, ticket_id)).rowcount == 0:
                raise KeyError(ticket_id)
            db.execute("INSERT INTO ticket_history (ticket_id, status, note, actor, at) VALUES (?,?,?,?,?)",
                       (ticket_id, status, mask_pii(note) if note else None, mask_pii(actor), at))
        return self.get(ticket_id)


class _Tx:
    def __init__(self, store: TicketStore):
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.db = self.store._connect()
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.db.close()
