"""Durable, idempotent hand-over of filed 工单 to the real 12345 system (transactional outbox).

Filing a ticket (TicketStore.file) inserts its outbox row in the same SQLite transaction, keyed
by the ticket id, so a ticket is never filed without being queued, nor queued twice. Rows are
never deleted: they go pending → delivered, or → failed after `max_attempts` (None: retry
forever; `Outbox.retry` puts a failed row back).

    outbox = Outbox(store, url="https://12345.example.gov.cn/api/tickets", timeout=5)
    worker = OutboxWorker(outbox, interval=2.0); worker.start() … worker.stop()
    outbox.state()   # {"pending": 1, "delivered": 41, "failed": 0, "failed_attempts": 3, …}

Each due row is POSTed as JSON (UTF-8), with headers `Content-Type: application/json` and
`Idempotency-Key: <ticket id>`:

    {"id": "QP20261201-000123",              # ticket id, also the Idempotency-Key
     "created_at": "2026-12-01T09:30:00+08:00",
     "type": "投诉", "category": "城乡建设",   # category null: the classifier was not confident
     "categories": [{"category": "城乡建设", "score": 0.91}, …],
     "department": "青浦区住房和城乡建设管理委员会", "place": "盈浦街道XX小区3号楼",
     "time": "昨天晚上", "summary": "…", "urgency": "紧急" | "一般",   # texts masked (mask_pii)
     "callback": true,                        # the caller asked to be called back
     "contact": "13812345678" | null,         # decrypted: the only place it leaves in clear
     "source": "qingpu-assistant"}

A 2xx answer marks the row delivered. Anything else (other status, redirect, timeout,
connection error) records the last error (masked) and schedules the next attempt with
exponential back-off: 5 s, 10 s, 20 s … capped at 10 min, ±20 % jitter. Without a URL rows
stay pending ("pending: no URL configured").

Delivery is at least once: a worker claims one row at a time with a lease in SQLite (BEGIN
IMMEDIATE), so workers in several threads or processes never POST the same row concurrently;
only a crash between the 2xx answer and its recording (or an answer slower than the lease)
can repeat a POST, which the receiver de-duplicates by Idempotency-Key. Times are epoch seconds.
"""
from __future__ import annotations

import json
import logging
import os
import random
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from contextlib import closing
from typing import TYPE_CHECKING, Any, Callable

from ..privacy import mask_pii

if TYPE_CHECKING:
    from .store import TicketStore

log = logging.getLogger(__name__)

SOURCE = "qingpu-assistant"
NO_URL = "pending: no URL configured"
PAYLOAD_FIELDS = ("type", "category", "categories", "department", "place", "time", "summary", "urgency")
ERROR_MAX = 300

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    ticket_id TEXT PRIMARY KEY REFERENCES ticket (id),
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,   -- failed attempts since the last (re)queue
    next_attempt_at REAL NOT NULL,
    lease_owner TEXT,
    lease_until REAL,
    last_error TEXT,
    last_attempt_at REAL,
    delivered_at REAL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
"""


def enqueue(db: sqlite3.Connection, ticket_id: str, now: float | None = None) -> bool:
    """Queue `ticket_id` inside the caller's transaction; False if it is already queued."""
    now = time.time() if now is None else now
    cur = db.execute("INSERT INTO outbox (ticket_id, next_attempt_at, created_at) VALUES (?, ?, ?) "
                     "ON CONFLICT (ticket_id) DO NOTHING", (ticket_id, now, now))
    return cur.rowcount == 1


def backoff_delay(failures: int, base: float = 5.0, cap: float = 600.0,
                  rand: Callable[[], float] = random.random) -> float:
    """Seconds before the next attempt after `failures` failed ones: base·2^(n-1), ±20 %, ≤ cap."""
    delay = min(cap, base * 2 ** min(max(failures, 1) - 1, 32))
    return min(cap, delay * (0.8 + 0.4 * rand()))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: urllib would re-send a POST as a body-less GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        return None


class Outbox:
    def __init__(self, store: "TicketStore", url: str | None, timeout: float = 5, max_attempts: int | None = None,
                 *, backoff: float = 5.0, max_backoff: float = 600.0, lease: float | None = None):
        self.store, self.url = store, (url or "").strip() or None
        self.timeout, self.max_attempts = timeout, max_attempts
        self.backoff, self.max_backoff = backoff, max_backoff
        self.lease = lease if lease is not None else timeout + 30.0  # longer than any one POST
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._opener = urllib.request.build_opener(_NoRedirect())
        self._warned = False

    # ------------------------------------------------------------- queue

    def enqueue(self, ticket_id: str) -> bool:
        """Queue an existing ticket again (idempotent: False when a row is there already)."""
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM ticket WHERE id = ?", (ticket_id,)).fetchone() is None:
                raise KeyError(ticket_id)
            return enqueue(db, ticket_id)

    def retry(self, ticket_id: str) -> bool:
        """Put a failed row back in the queue, due now (admin action). False if not failed."""
        with self.store.transaction() as db:
            return db.execute("UPDATE outbox SET state = 'pending', failures = 0, next_attempt_at = ? "
                              "WHERE ticket_id = ? AND state = 'failed'", (time.time(), ticket_id)).rowcount == 1

    def payload(self, ticket_id: str) -> dict[str, Any]:
        """The JSON body sent for `ticket_id` (see the module docstring)."""
        ticket = self.store.get(ticket_id)
        if ticket is None:
            raise KeyError(ticket_id)
        return {"id": ticket["id"], "created_at": ticket["created_at"], **{f: ticket[f] for f in PAYLOAD_FIELDS},
                "callback": ticket["callback"], "contact": self.store.contact(ticket_id), "source": SOURCE}

    # ------------------------------------------------------------- delivery

    def deliver_due(self, now: float | None = None, limit: int = 100, stop: threading.Event | None = None) -> int:
        """POST every due row (at most `limit`); return how many were delivered. `now` (epoch
        seconds) is for tests: it stands for the clock in due times, leases and back-off."""
        if self.url is None:
            if not self._warned:
                log.warning("12345 delivery URL is not configured: filed 工单 stay pending")
                self._warned = True
            return 0
        delivered = 0
        for _ in range(limit):
            if stop is not None and stop.is_set():
                break
            t = time.time() if now is None else now
            claimed = self._claim(t)
            if claimed is None:
                break
            ticket_id, failures = claimed
            try:
                error = self._post(ticket_id)
            except Exception as exc:  # a payload that cannot be built (key, missing ticket): retried later
                error = f"{type(exc).__name__}: {exc}"
            self._finish(ticket_id, time.time() if now is None else now, failures, error)
            delivered += error is None
        return delivered

    def _claim(self, now: float) -> tuple[str, int] | None:
        with self.store.transaction() as db:
            row = db.execute("SELECT ticket_id, failures FROM outbox WHERE state = 'pending' AND next_attempt_at <= ? "
                             "AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at LIMIT 1",
                             (now, now)).fetchone()
            if row is not None:
                db.execute("UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE ticket_id = ?",
                           (self.owner, now + self.lease, row[0]))
        return None if row is None else (row[0], int(row[1]))

    def _post(self, ticket_id: str) -> str | None:
        """None on a 2xx answer, else the error text."""
        body = json.dumps(self.payload(ticket_id), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "Idempotency-Key": ticket_id})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                return None if 200 <= response.status < 300 else f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            detail = exc.read(200).decode("utf-8", "replace").strip() if exc.fp else ""
            return f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
        except urllib.error.URLError as exc:
            return f"URLError: {exc.reason}"
        except (OSError, ValueError) as exc:  # timeouts, resets, bad status lines
            return f"{type(exc).__name__}: {exc}"

    def _finish(self, ticket_id: str, now: float, failures: int, error: str | None) -> None:
        with self.store.transaction() as db:
            if error is None:  # a fact, whoever holds the lease now
                db.execute("UPDATE outbox SET state = 'delivered', delivered_at = ?, last_attempt_at = ?, "
                           "attempts = attempts + 1, lease_owner = NULL, lease_until = NULL WHERE ticket_id = ?",
                           (now, now, ticket_id))
                return
            failures += 1
            gave_up = self.max_attempts is not None and failures >= self.max_attempts
            db.execute("UPDATE outbox SET state = ?, attempts = attempts + 1, failures = ?, last_error = ?, "
                       "last_attempt_at = ?, next_attempt_at = ?, lease_owner = NULL, lease_until = NULL "
                       "WHERE ticket_id = ? AND state = 'pending' AND lease_owner = ?",
                       ("failed" if gave_up else "pending", failures, mask_pii(error)[:ERROR_MAX], now,
                        now + backoff_delay(failures, self.backoff, self.max_backoff), ticket_id, self.owner))
        log.warning("delivery of %s failed (attempt %d): %s", ticket_id, failures, mask_pii(error)[:ERROR_MAX])

    # ------------------------------------------------------------- admin

    def row(self, ticket_id: str) -> dict[str, Any] | None:
        """One row: state ("pending", "delivered", "failed", or NO_URL), attempts, errors, times."""
        with closing(self.store._connect()) as db:
            row = db.execute("SELECT * FROM outbox WHERE ticket_id = ?", (ticket_id,)).fetchone()
        if row is None:
            return None
        out = dict(row)
        if out["state"] == "pending" and self.url is None:
            out["state"] = NO_URL
        return out

    def state(self, now: float | None = None) -> dict[str, Any]:
        """Counts for an admin page: pending (and due now), delivered, failed, failed attempts."""
        now = time.time() if now is None else now
        with closing(self.store._connect()) as db:
            counts = dict(db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
            due, oldest = db.execute("SELECT COUNT(CASE WHEN next_attempt_at <= ? THEN 1 END), MIN(created_at) "
                                     "FROM outbox WHERE state = 'pending'", (now,)).fetchone()
            failed_attempts = db.execute("SELECT COALESCE(SUM(attempts - (state = 'delivered')), 0) "
                                         "FROM outbox").fetchone()[0]
            last = db.execute("SELECT last_error FROM outbox WHERE state != 'delivered' AND last_error IS NOT NULL "
                              "ORDER BY last_attempt_at DESC LIMIT 1").fetchone()
        return {"status": NO_URL if self.url is None else "delivering", "url_configured": self.url is not None,
                "pending": counts.get("pending", 0), "due": due, "delivered": counts.get("delivered", 0),
                "failed": counts.get("failed", 0), "failed_attempts": failed_attempts,
                "oldest_pending_at": oldest, "last_error": last[0] if last else None}


class OutboxWorker:
    """Runs `outbox.deliver_due()` every `interval` seconds in a daemon thread. Several workers
    (threads or processes) may share one SQLite file: leases keep them off each other's rows."""

    def __init__(self, outbox: Outbox, interval: float = 2.0):
        self.outbox, self.interval = outbox, interval
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "OutboxWorker":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="ticket-outbox", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Deliver now (e.g. right after filing) instead of at the next tick."""
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current POST (at most `timeout` of the outbox plus a little)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.outbox.timeout + 5)

    def __enter__(self) -> "OutboxWorker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.outbox.deliver_due(stop=self._stop)
            except Exception:  # e.g. the database is locked for longer than the busy timeout
                log.exception("outbox delivery round failed")
            self._wake.wait(self.interval)
            self._wake.clear()
