"""Follow-up of 差评 (seed task 29: 差评整改和反馈, 申诉复核), with an audit trail.

    待整改 ─→ 整改中 ─→ 已整改 (a note; optionally a corrected reply shown to the citizen again)
       └──────┴──→ 申诉中 (误评 | 恶意差评, with the grounds) ─→ 复核通过 (left out of assessment)
                                                            └→ 驳回 ─→ 整改中 / 已整改

A 差评 with no review row is 待整改. A 复核 is decided by another administrator than the one who
appealed. Every change, as every login and export, is one row of `audit` (who, when, what); the
page deletes nothing. Notes and replies are masked like every other stored text.
"""
from __future__ import annotations

import json
import time
from contextlib import closing
from typing import Any, Callable

from ..privacy import mask_pii
from ..stores import Store
from .accounts import Admin
from .schema import china_time, ensure

PENDING, WORKING, DONE = "待整改", "整改中", "已整改"
APPEALED, UPHELD, REJECTED = "申诉中", "复核通过", "驳回"
STATUSES = (PENDING, WORKING, DONE, APPEALED, UPHELD, REJECTED)
APPEALS = ("误评", "恶意差评")
NEXT: dict[str, tuple[str, ...]] = {
    PENDING: (WORKING, DONE, APPEALED),
    WORKING: (DONE, APPEALED),
    DONE: (WORKING,),
    APPEALED: (UPHELD, REJECTED),
    REJECTED: (WORKING, DONE),
    UPHELD: (),
}
NOTE_MAX, REPLY_MAX = 500, 1500
# the current status of a rating, for SQL over `rating r LEFT JOIN review v`
STATUS_SQL = f"COALESCE(v.status, '{PENDING}')"


class ReviewError(ValueError):
    """A change the workflow does not allow; the message is Chinese, for the page."""


def audit(db, user: str, action: str, target: str | None, detail: dict[str, Any] | None = None,
          at: float | None = None) -> None:
    db.execute("INSERT INTO audit (at, user, action, target, detail) VALUES (?,?,?,?,?)",
               (time.time() if at is None else at, user, action, target,
                json.dumps(detail or {}, ensure_ascii=False)))


def record(store: Store, user: str, action: str, target: str | None = None,
           detail: dict[str, Any] | None = None) -> None:
    """One audit row in its own transaction (logins, exports)."""
    with ensure(store).transaction() as db:
        audit(db, user, action, target, detail)


class Reviews:
    def __init__(self, store: Store):
        self.store = ensure(store)

    def change(self, admin: Admin, answer_id: str, status: str, note: str = "", appeal: str | None = None,
               reply: str = "", now: float | None = None) -> dict[str, Any]:
        """Move one 差评 to `status`; ReviewError saying why not. Returns the item."""
        if not admin.can_change:
            raise ReviewError("只读账号不能修改处理状态。")
        now = time.time() if now is None else now
        note = mask_pii(note.strip())[:NOTE_MAX]
        reply = mask_pii(reply.strip())[:REPLY_MAX]
        with self.store.transaction() as db:
            row = db.execute(f"SELECT r.rating, r.sender_key, {STATUS_SQL}, v.appellant, v.appeal FROM rating r "
                             "LEFT JOIN review v USING (answer_id) WHERE r.answer_id = ?", (answer_id,)).fetchone()
            if row is None or row[0] != "bad":
                raise ReviewError("没有这条差评（可能已被市民改为好评）。")
            _, sender_key, current, appellant, appeal_kind = row
            self._check(admin, current, status, note, appeal, appellant)
            if status == APPEALED:
                appellant, appeal_kind = admin.name, appeal
            db.execute("INSERT INTO review (answer_id, status, appeal, appellant, note, reply, updated_by, updated_at) "
                       "VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (answer_id) DO UPDATE SET status = excluded.status, "
                       "appeal = excluded.appeal, appellant = excluded.appellant, note = excluded.note, "
                       "reply = COALESCE(NULLIF(excluded.reply, ''), review.reply), updated_by = excluded.updated_by, "
                       "updated_at = excluded.updated_at",
                       (answer_id, status, appeal_kind, appellant, note, reply, admin.name, now))
            if status == DONE and reply:  # 反馈: the citizen sees the corrected answer on their next visit
                db.execute("INSERT INTO notice (answer_id, sender_key, text, created_at) VALUES (?,?,?,?)",
                           (answer_id, sender_key, reply, now))
            audit(db, admin.name, "review", answer_id,
                  {"from": current, "to": status, "note": note, **({"appeal": appeal} if status == APPEALED else {}),
                   **({"reply": reply} if reply else {})}, at=now)
        return self.item(answer_id)

    @staticmethod
    def _check(admin: Admin, current: str, status: str, note: str, appeal: str | None,
               appellant: str | None) -> None:
        if status not in STATUSES:
            raise ReviewError(f"状态须为{'、'.join(STATUSES)}之一。")
        if status not in NEXT[current]:
            allowed = "、".join(NEXT[current]) or "无（已结束）"
            raise ReviewError(f"“{current}”只能改为：{allowed}。")
        if status in (DONE, APPEALED, UPHELD, REJECTED) and not note:
            raise ReviewError(f"改为“{status}”需要填写处理说明。")
        if status == APPEALED and appeal not in APPEALS:
            raise ReviewError(f"申诉类型须为{'或'.join(APPEALS)}。")
        if status in (UPHELD, REJECTED) and appellant == admin.name:
            raise ReviewError("申诉须由提出申诉以外的管理员复核。")

    def listing(self, since: float, until: float, status: str | None = None, limit: int = 50,
             offset: int = 0) -> dict[str, Any]:
        """差评 rated in [since, until), newest first, with their status; {total, by_status, items}."""
        where, params = "r.rating = 'bad' AND r.first_at >= ? AND r.first_at < ?", [since, until]
        with closing(self.store.connection()) as db:
            by_status = dict(db.execute(f"SELECT {STATUS_SQL}, COUNT(*) FROM rating r LEFT JOIN review v "
                                        f"USING (answer_id) WHERE {where} GROUP BY 1", params).fetchall())
            if status:
                where += f" AND {STATUS_SQL} = ?"
                params.append(status)
            rows = db.execute(
                f"SELECT r.answer_id, r.first_at, a.question, r.reason, r.doc_ids, r.flags, {STATUS_SQL}, v.appeal "
                f"FROM rating r JOIN answer a USING (answer_id) LEFT JOIN review v USING (answer_id) WHERE {where} "
                "ORDER BY r.first_at DESC, r.answer_id LIMIT ? OFFSET ?", params + [limit, offset]).fetchall()
        total = by_status.get(status, 0) if status else sum(by_status.values())
        return {"total": total, "by_status": {s: by_status.get(s, 0) for s in STATUSES},
                "items": [{"answer_id": a, "rated_at": china_time(t), "question": q, "reason": why,
                           "doc_ids": json.loads(d), "flags": json.loads(f), "status": st, "appeal": ap}
                          for a, t, q, why, d, f, st, ap in rows]}

    def item(self, answer_id: str) -> dict[str, Any] | None:
        """One 差评 with its question, answer, sources, reason, review and audit trail."""
        with closing(self.store.connection()) as db:
            row = db.execute(
                f"SELECT r.answer_id, r.rating, r.reason, r.doc_ids, r.flags, r.first_at, r.at, a.question, a.text, "
                f"a.confident, a.kind, a.at, {STATUS_SQL}, v.appeal, v.note, v.reply, v.updated_by, v.updated_at "
                "FROM rating r JOIN answer a USING (answer_id) LEFT JOIN review v USING (answer_id) "
                "WHERE r.answer_id = ?", (answer_id,)).fetchone()
            if row is None:
                return None
            trail = db.execute("SELECT at, user, action, detail FROM audit WHERE target = ? ORDER BY id",
                               (answer_id,)).fetchall()
            history = db.execute("SELECT rating, reason, at FROM rating_history WHERE answer_id = ? ORDER BY id",
                                 (answer_id,)).fetchall()
            notices = db.execute("SELECT created_at, delivered_at FROM notice WHERE answer_id = ? ORDER BY id",
                                 (answer_id,)).fetchall()
        (aid, rating, reason, doc_ids, flags, first_at, at, question, text, confident, kind, answered_at,
         status, appeal, note, reply, by, updated_at) = row
        return {"answer_id": aid, "rating": rating, "reason": reason, "doc_ids": json.loads(doc_ids),
                "flags": json.loads(flags), "rated_at": china_time(first_at), "updated_at": china_time(at),
                "question": question, "answer": text, "confident": bool(confident), "kind": kind,
                "answered_at": china_time(answered_at), "status": status, "appeal": appeal, "note": note,
                "reply": reply, "reviewed_by": by, "reviewed_at": china_time(updated_at),
                "next": list(NEXT[status]),
                "history": [{"rating": r, "reason": why, "at": china_time(t)} for r, why, t in history],
                "audit": [{"at": china_time(t), "user": u, "action": act, **json.loads(d)} for t, u, act, d in trail],
                "notices": [{"created_at": china_time(c), "delivered_at": china_time(d)} for c, d in notices]}

    def deliver(self, sender_id: str, new_id: Callable[[], str], now: float | None = None) -> list[dict[str, Any]]:
        """The corrected answers waiting for this conversation, each recorded as a new answer (so
        it can be rated again) and marked shown, in one transaction: two open tabs show each once."""
        now = time.time() if now is None else now
        shown = []
        with self.store.transaction() as db:
            rows = db.execute("SELECT n.id, n.text, a.question, a.doc_ids FROM notice n JOIN answer a USING (answer_id) "
                              "WHERE n.sender_key = ? AND n.delivered_at IS NULL ORDER BY n.id LIMIT 10",
                              (self.store.key(sender_id),)).fetchall()
            for notice_id, text, question, doc_ids in rows:
                answer_id = new_id()
                self.store.record_answer(answer_id, sender_id, question, json.loads(doc_ids), True, "recheck",
                                         at=now, text=text, db=db)
                db.execute("UPDATE notice SET delivered_at = ?, delivered_answer_id = ? WHERE id = ?",
                           (now, answer_id, notice_id))
                shown.append({"answer_id": answer_id, "question": question, "text": text,
                              "doc_ids": json.loads(doc_ids)})
        return shown
