"""Figures for the overview and the 工单 page, and the CSV exports, over a range of China-time days.

Definitions (what the page and the tests count):
  conversations   distinct conversations (keyed sender hash) with an answer or a hand-off that day
  answers         questions the assistant replied to: answers from the guides (each recorded by the
                  action server, a corrected answer pushed after 整改 included) and questions it
                  declined as out of scope (no guide)
  confident       answers given with confidence; the rest are 无把握 (clarified, offered 转人工,
                  or declined)
  handoffs        hand-offs to a hotline agent (转人工)
  good / bad      ratings by the day they were first given, their current value; a 差评 whose
                  appeal was upheld (复核通过) is counted in `excluded`, not in `bad` (assessment);
                  per guide: the ratings given in the range to answers about that guide
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
from contextlib import closing
from typing import Any, Callable, Iterable

from ..stores import Store
from .review import STATUS_SQL, UPHELD
from .schema import china_time, day_bounds, ensure

DAY_SQL = "CAST(({col} + 28800) / 86400 AS INTEGER)"  # day number in China time (UTC+8, no daylight saving)
FIELDS = ("conversations", "answers", "confident", "unconfident", "handoffs", "good", "bad", "excluded")
_EPOCH = dt.date(1970, 1, 1)


def _days(since: dt.date, until: dt.date) -> list[str]:
    return [(since + dt.timedelta(days=i)).isoformat() for i in range((until - since).days + 1)]


def _day(number: int) -> str:
    return (_EPOCH + dt.timedelta(days=number)).isoformat()


class Reports:
    """Every query reads one covering index (assistant/stores.py: answer_stats, rating_stats,
    handoff_at), and the review table, which holds only the 差评 somebody followed up."""

    def __init__(self, store: Store, titles: Callable[[str], str | None] | None = None):
        self.store = ensure(store)
        self.titles = titles or (lambda doc_id: None)

    def overview(self, since: dt.date, until: dt.date, guides: int = 20) -> dict[str, Any]:
        t0, t1 = day_bounds(since, until)
        per_day = {d: dict.fromkeys(FIELDS, 0) for d in _days(since, until)}
        span = (t0, t1)
        with closing(self.store.connection()) as db:
            for day, n, sure, people in db.execute(
                    f"SELECT {DAY_SQL.format(col='at')}, COUNT(*), SUM(confident), COUNT(DISTINCT sender_key) "
                    "FROM answer WHERE at >= ? AND at < ? GROUP BY 1", span):
                per_day[_day(day)].update(answers=n, confident=sure, unconfident=n - sure, conversations=people)
            for day, n, alone in db.execute(
                    f"SELECT {DAY_SQL.format(col='h.at')}, COUNT(*), COUNT(DISTINCT h.sender_key) FILTER (WHERE NOT "
                    f"EXISTS (SELECT 1 FROM answer a WHERE a.sender_key = h.sender_key AND {DAY_SQL.format(col='a.at')} "
                    f"= {DAY_SQL.format(col='h.at')})) FROM handoff h WHERE h.at >= ? AND h.at < ? GROUP BY 1", span):
                per_day[_day(day)]["handoffs"] = n
                per_day[_day(day)]["conversations"] += alone  # handed off without a question that day
            for day, good, bad, excluded in db.execute(
                    f"SELECT {DAY_SQL.format(col='r.first_at')}, SUM(r.rating = 'good'), "
                    f"SUM(r.rating = 'bad' AND {STATUS_SQL} != ?1), SUM(r.rating = 'bad' AND {STATUS_SQL} = ?1) "
                    "FROM rating r LEFT JOIN review v USING (answer_id) WHERE r.first_at >= ?2 AND r.first_at < ?3 "
                    "GROUP BY 1", (UPHELD, *span)):
                per_day[_day(day)].update(good=good, bad=bad, excluded=excluded)
            totals = {f: sum(d[f] for d in per_day.values()) for f in FIELDS}
            # one conversation over two days counts once
            totals["conversations"] = db.execute(
                "SELECT COUNT(*) FROM (SELECT sender_key FROM answer WHERE at >= ?1 AND at < ?2 UNION "
                "SELECT sender_key FROM handoff WHERE at >= ?1 AND at < ?2 AND sender_key IS NOT NULL)", span).fetchone()[0]
            by_guide = self._by_guide(db, t0, t1, guides) if guides else []
        return {"since": since.isoformat(), "until": until.isoformat(), "totals": totals,
                "days": [{"day": d, **v} for d, v in per_day.items()], "guides": by_guide}

    def _by_guide(self, db, t0: float, t1: float, limit: int) -> list[dict[str, Any]]:
        """Answers per guide shown first (the one the answer is about) and the ratings given in
        the range to answers about it."""
        rows = db.execute("SELECT top_doc, COUNT(*), SUM(confident) FROM answer WHERE at >= ? AND at < ? "
                          "AND top_doc IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT ?", (t0, t1, limit)).fetchall()
        rated = {g: (good, bad) for g, good, bad in db.execute(
            f"SELECT r.top_doc, SUM(r.rating = 'good'), SUM(r.rating = 'bad' AND {STATUS_SQL} != ?1) FROM rating r "
            "LEFT JOIN review v USING (answer_id) WHERE r.first_at >= ?2 AND r.first_at < ?3 GROUP BY 1",
            (UPHELD, t0, t1))}
        return [{"doc_id": g, "title": self.titles(g) or g, "answers": n, "confident": sure or 0,
                 "good": rated.get(g, (0, 0))[0], "bad": rated.get(g, (0, 0))[1]} for g, n, sure in rows]

    # ------------------------------------------------------------------ CSV

    def ratings_rows(self, since: dt.date, until: dt.date) -> Iterable[list[Any]]:
        t0, t1 = day_bounds(since, until)
        yield ["评价时间", "评价", "问题", "回答", "来源", "原因", "标记", "处理状态", "申诉类型", "处理说明", "处理人"]
        with closing(self.store.connection()) as db:
            for row in db.execute(
                    f"SELECT r.first_at, r.rating, a.question, a.text, r.doc_ids, r.reason, r.flags, "
                    f"CASE WHEN r.rating = 'bad' THEN {STATUS_SQL} END, v.appeal, v.note, v.updated_by "
                    "FROM rating r JOIN answer a USING (answer_id) LEFT JOIN review v USING (answer_id) "
                    "WHERE r.first_at >= ? AND r.first_at < ? ORDER BY r.first_at", (t0, t1)):
                at, rating, question, text, doc_ids, reason, flags, *rest = row
                yield [china_time(at), "好评" if rating == "good" else "差评", question, text,
                       "；".join(self.titles(d) or d for d in dict.fromkeys(json.loads(doc_ids))), reason,
                       " ".join(json.loads(flags)), *rest]


def _cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text: formulas (=, +, -, @ …) are quoted away."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(rows: Iterable[list[Any]]) -> bytes:
    """UTF-8 with a BOM, so Excel on a Chinese Windows opens it with the right characters."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


DELIVERY = {"pending": "待投递", "delivered": "已投递", "failed": "投递失败", None: "未入队"}


def ticket_rows(tickets: Iterable[dict[str, Any]]) -> Iterable[list[Any]]:
    """CSV rows of TicketStore.listing(): masked views, as the copilot shows them."""
    yield ["工单编号", "受理时间", "类型", "类别", "承办单位", "状态", "紧急程度", "地点", "诉求摘要", "需要回访",
           "联系电话", "投递状态"]
    for t in tickets:
        yield [t["id"], t["created_at"], t["type"], t["category"], t["department"], t["status"], t["urgency"],
               t["place"], t["summary"], "是" if t["callback"] else "否", t["contact_masked"],
               DELIVERY.get(t["delivery"], t["delivery"])]
