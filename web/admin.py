"""The administrators' console (/admin) and its JSON API (/api/admin/…), over assistant/admin.

    GET  /admin                     the console, or its login page
    POST /admin/login               form {name, password} -> HttpOnly session cookie (admin_session)
    POST /admin/logout
    GET  /api/admin/me              {name, role}
    GET  /api/admin/overview        ?since=&until= (ISO days, China time; default the last 30 days),
                                    with its two charts as SVG text (the page shows them as data: images)
    GET  /api/admin/ratings         差评 in the range, ?status=&offset=
    GET  /api/admin/ratings/{id}    one 差评: question, answer, sources, reason, review, audit trail
    POST /api/admin/ratings/{id}/review   {status, note, appeal?, reply?} (role admin)
    GET  /api/admin/gaps            knowledge-gap topics, ?sort=newest|count
    GET  /api/admin/guides?q=       the guides closest to a question
    GET  /api/admin/tickets         工单 counts by category, 承办单位, status and day; the outbox state
    GET  /api/admin/export/{ratings|gaps|tickets}.csv   masked CSV of the range (role admin; audited)

Only the console's session cookie opens these: the agents' token (Bearer or copilot cookie) does
not, and the console's cookie does not open the copilot. Every session check re-reads the
credentials file (assistant/admin/accounts.py).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from aiohttp import web

from assistant.admin import Accounts, Admin, LoginRefused, ReviewError, Reviews
from assistant.admin import gaps, review
from assistant.admin.reports import Reports, ticket_rows, to_csv
from assistant.admin.schema import day_bounds, today

from .charts import stacked_bars
from .guard import dumps, json_error, read_json

if TYPE_CHECKING:
    from .server import WebApp

log = logging.getLogger("web.admin")

COOKIE = "admin_session"
DEFAULT_DAYS = 30
MAX_DAYS = 366
WARM_DAYS = 90  # the gap questions embedded ahead of the page (the default view shows 30 days)
CHARTS = {  # name -> (title, stacked bars, lines over them): (label, overview field, colour)
    "answers": ("每日提问与转人工", (("有把握", "confident", "#2563eb"), ("无把握或未能回答", "unconfident", "#f59e0b")),
                (("转人工", "handoffs", "#9333ea"),)),
    "ratings": ("每日好差评", (("好评", "good", "#16a34a"), ("差评", "bad", "#dc2626"),
                            ("申诉成立", "excluded", "#9ca3af")), ()),
}


def _range(request: web.Request) -> tuple[dt.date, dt.date]:
    """The ?since=&until= days (ValueError with a Chinese message)."""
    try:
        until = dt.date.fromisoformat(request.query["until"]) if request.query.get("until") else today()
        since = (dt.date.fromisoformat(request.query["since"]) if request.query.get("since")
                 else until - dt.timedelta(days=DEFAULT_DAYS - 1))
    except ValueError:
        raise ValueError("日期格式应为 YYYY-MM-DD。") from None
    if until < since:
        raise ValueError("结束日期不能早于开始日期。")
    if (until - since).days >= MAX_DAYS:
        raise ValueError(f"日期范围不能超过{MAX_DAYS}天。")
    return since, until


def _series(days: list[dict[str, Any]], spec) -> list[tuple[str, list[float], str]]:
    return [(label, [d[key] for d in days], colour) for label, key, colour in spec]


class AdminConsole:
    def __init__(self, app: "WebApp"):
        self.app = app
        self._accounts: Accounts | None = None
        self._titles: dict[str, str] = {}
        self._titles_of = None  # the retriever _titles was read from

    async def warm_gaps(self, interval: float) -> None:
        """Embed new gap questions every `interval` seconds in the background, so the knowledge-gap
        page clusters cached vectors instead of waiting for the encoder (runs until cancelled)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gaps.preload)
        while True:
            retriever = self.app.loaded_retriever()
            if retriever is not None:
                now = time.time()
                try:
                    n = await loop.run_in_executor(None, gaps.warm, self.app.store(), retriever,
                                                   now - WARM_DAYS * 86400, now + 86400)
                    if n:
                        log.info("knowledge gaps: %d new questions embedded", n)
                except Exception as exc:  # the page embeds what is missing itself
                    log.warning("knowledge gaps not warmed: %s", type(exc).__name__)
            await asyncio.sleep(interval if retriever is not None else 5.0)

    def routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/admin", self.page)
        r.add_post("/admin/login", self.login)
        r.add_post("/admin/logout", self.logout)
        r.add_get("/api/admin/me", self.api(self._me))
        r.add_get("/api/admin/overview", self.api(self._overview))
        r.add_get("/api/admin/ratings", self.api(self._ratings))
        r.add_get("/api/admin/ratings/{id}", self.api(self._rating))
        r.add_post("/api/admin/ratings/{id}/review", self.api(self._review))
        r.add_get("/api/admin/gaps", self.api(self._gaps))
        r.add_get("/api/admin/guides", self.api(self._guides))
        r.add_get("/api/admin/tickets", self.api(self._tickets))
        r.add_get("/api/admin/export/{kind}.csv", self.export)

    # ------------------------------------------------------------------ sessions

    def accounts(self) -> Accounts:
        if self._accounts is None:
            self._accounts = Accounts(self.app.store())
        return self._accounts

    async def admin(self, request: web.Request) -> Admin | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        return await asyncio.get_running_loop().run_in_executor(None, self.accounts().session, token)

    async def page(self, request: web.Request) -> web.StreamResponse:
        if await self.admin(request):
            return web.FileResponse(self.app.static / "admin.html", headers={"Cache-Control": "no-store"})
        failed = {"1": "用户名或密码不正确，请重试。", "locked": "尝试次数过多，该账号已暂时锁定，请稍后再试。"}
        return self.app.login_page("admin_login.html", 401, failed.get(request.query.get("failed", "")), {})

    async def login(self, request: web.Request) -> web.Response:
        throttled = self.app.login_throttled(request, "admin_login.html", "admin")
        if throttled:
            return throttled
        form = await request.post()
        name, password = str(form.get("name", ""))[:32], str(form.get("password", ""))[:256]
        loop = asyncio.get_running_loop()
        try:
            admin, token = await loop.run_in_executor(None, self.accounts().login, name, password)
        except LoginRefused as exc:
            log.warning("admin login refused%s", " (account locked)" if exc.wait else "")
            raise web.HTTPSeeOther("/admin?failed=" + ("locked" if exc.wait else "1")) from None
        await loop.run_in_executor(None, review.record, self.app.store(), admin.name, "login")
        log.info("admin %s logged in", admin.name)
        resp = web.HTTPSeeOther("/admin")
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure)
        raise resp

    async def logout(self, request: web.Request) -> web.Response:
        admin = await self.admin(request)
        token = request.cookies.get(COOKIE)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.accounts().logout, token)
        if admin:
            await loop.run_in_executor(None, review.record, self.app.store(), admin.name, "logout")
        resp = web.HTTPSeeOther("/admin")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    def api(self, handler: Callable[[web.Request, Admin], Any]):
        """A JSON endpoint for a logged-in administrator; the handler runs in a worker thread."""
        async def endpoint(request: web.Request) -> web.Response:
            admin = await self.admin(request)
            if admin is None:
                return json_error(401, "unauthorized", "请先登录管理后台。")
            body = await read_json(request) if request.method == "POST" else {}
            if isinstance(body, web.Response):
                return body
            try:
                data = await asyncio.get_running_loop().run_in_executor(None, handler, request, admin, body)
            except ReviewError as exc:
                return json_error(409, "review_refused", str(exc))
            except ValueError as exc:
                return json_error(400, "bad_request", str(exc))
            if isinstance(data, web.Response):
                return data
            return web.json_response(data, dumps=dumps)
        return endpoint

    # ------------------------------------------------------------------ views

    def titles(self) -> Callable[[str], str | None]:
        """doc id -> guide title, from the loaded index (ids only until it is loaded)."""
        retriever = self.app.loaded_retriever()
        if retriever is None:
            return lambda doc_id: None
        if self._titles_of is not retriever:
            self._titles = {p.doc_id: p.title for p in retriever.passages}
            self._titles_of = retriever
        return self._titles.get

    def _me(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any]:
        return {"name": admin.name, "role": admin.role, "statuses": list(review.STATUSES),
                "appeals": list(review.APPEALS), "today": today().isoformat()}

    def _overview(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any]:
        since, until = _range(request)
        overview = Reports(self.app.store(), self.titles()).overview(since, until)
        days = overview["days"]
        overview["charts"] = {name: stacked_bars(title, [d["day"][5:] for d in days], _series(days, bars),
                                                 _series(days, lines))
                              for name, (title, bars, lines) in CHARTS.items()}
        return overview

    def _ratings(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any]:
        since, until = _range(request)
        status = request.query.get("status") or None
        if status and status not in review.STATUSES:
            raise ValueError("未知的处理状态。")
        offset = max(0, int(request.query.get("offset", "0") or 0))
        out = Reviews(self.app.store()).listing(*day_bounds(since, until), status=status, offset=offset)
        titles = self.titles()
        for item in out["items"]:
            item["guides"] = [titles(d) or d for d in dict.fromkeys(item["doc_ids"])]
        return out

    def _rating(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any] | web.Response:
        item = Reviews(self.app.store()).item(request.match_info["id"][:64])
        if item is None or item["rating"] != "bad":
            return json_error(404, "not_found", "没有这条差评。")
        titles = self.titles()
        item["guides"] = [{"doc_id": d, "title": titles(d) or d} for d in dict.fromkeys(item["doc_ids"])]
        return item

    def _review(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any]:
        item = Reviews(self.app.store()).change(
            admin, request.match_info["id"][:64], str(body.get("status") or ""), note=str(body.get("note") or ""),
            appeal=body.get("appeal") or None, reply=str(body.get("reply") or "") if body.get("recheck") else "")
        log.info("review of %s -> %s by %s", item["answer_id"], item["status"], admin.name)
        return item

    def _gaps(self, request: web.Request, admin: Admin, body: dict, examples: int | None = gaps.EXAMPLES):
        since, until = _range(request)
        sort = "count" if request.query.get("sort") == "count" else "newest"
        result = gaps.topics(self.app.store(), self.app.loaded_retriever(), *day_bounds(since, until), sort=sort,
                             examples=examples)
        if examples is not None:  # the page shows their number only; the export lists them
            result["older"] = len(result["older"])
        return result

    def _guides(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any]:
        q = request.query.get("q", "").strip()[:500]
        retriever = self.app.loaded_retriever()
        if retriever is None:
            raise ValueError("办事指南索引未就绪，请稍后再试。")
        result = retriever.search(q, k=10)
        return {"query": q, "confidence": round(result.confidence, 4), "confident": result.confident,
                "guides": [{"doc_id": h.passage.doc_id, "title": h.passage.title, "section": h.passage.section,
                            "kind": h.passage.kind, "score": round(h.score, 4)} for h in result.top_docs()[:5]]}

    def _tickets(self, request: web.Request, admin: Admin, body: dict) -> dict[str, Any] | web.Response:
        since, until = _range(request)
        intake = self.app.opened_intake()
        if isinstance(intake, Exception) or intake is None:
            return json_error(503, "tickets_not_ready", "工单服务未就绪，暂时无法统计。", detail=str(intake or ""))
        return {**intake.store.counts(since.isoformat(), until.isoformat()), "outbox": self.app.outbox_state()}

    async def export(self, request: web.Request) -> web.Response:
        admin = await self.admin(request)
        if admin is None:
            return json_error(401, "unauthorized", "请先登录管理后台。")
        if not admin.can_change:
            return json_error(403, "forbidden", "只读账号不能导出数据。")
        kind = request.match_info["kind"]
        try:
            since, until = _range(request)
        except ValueError as exc:
            return json_error(400, "bad_request", str(exc))
        loop = asyncio.get_running_loop()
        if kind == "ratings":
            make = lambda: to_csv(Reports(self.app.store(), self.titles()).ratings_rows(since, until))  # noqa: E731
        elif kind == "gaps":
            make = lambda: to_csv(gaps.rows(self._gaps(request, admin, {}, examples=None)))  # noqa: E731
        elif kind == "tickets":
            intake = self.app.opened_intake()
            if isinstance(intake, Exception) or intake is None:
                return json_error(503, "tickets_not_ready", "工单服务未就绪，暂时无法导出。")
            make = lambda: to_csv(ticket_rows(intake.store.listing(since.isoformat(), until.isoformat())))  # noqa: E731
        else:
            return json_error(404, "no_export", "可导出：ratings、gaps、tickets。")
        data = await loop.run_in_executor(None, make)
        await loop.run_in_executor(None, review.record, self.app.store(), admin.name, "export", kind,
                                   {"since": since.isoformat(), "until": until.isoformat()})
        name = f"{kind}-{since.isoformat()}-{until.isoformat()}.csv"
        return web.Response(body=data, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"',
                                     "Cache-Control": "no-store"})
