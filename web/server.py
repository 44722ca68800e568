"""aiohttp server for the three front ends; plain static HTML/CSS/JS, no build step.

    GET  /chat, /kiosk             public pages
    GET  /copilot                  12345 agents only (COPILOT_TOKEN: Bearer header or login cookie)
    POST /copilot/login            form {token} -> HttpOnly cookie
    POST /api/chat                 {sender, message, audience?} -> Rasa REST webhook replies
                                   (audience "agent": the copilot's suggested reply; token only)
    POST /api/voice                audio (multipart or raw body) -> voice gateway
    POST /api/voice/stream         a call's 16 kHz PCM pieces -> running transcript (agents only)
    POST /api/feedback             {answer_id, rating: good|bad, reason?, sender} -> Store.rate: only for an
                                   answer the assistant gave to that sender; the rated guides come from
                                   the store's record of the answer, never from the client
    GET  /api/copilot/guides?q=&doc=  best guides with key fields; doc: the guide the call is
                                   about (from the reply's custom.turn), shown first (token)
    GET  /api/copilot/handoffs     recent handoff summaries (token)
    POST /api/copilot/ticket/draft {text}: the caller's words so far -> {kind, draft} of a 工单 (token)
    POST /api/copilot/ticket       {draft, contact, callback, sender} -> {ticket} masked view; 400 with
                                   the reason when the store refuses it (token)
    GET  /api/copilot/ticket/{id}  a filed 工单's masked view and delivery state (token)
    GET  /api/copilot/ticket-meta  types, categories (with their 承办单位), urgencies for the form (token)
    POST /api/notices              {sender} -> corrected answers of rectified 差评 for this conversation
                                   (shown once, recorded as new answers so they can be rated again)
    /admin, /api/admin/…           the administrators' console (web/admin.py; its own login)

Filed 工单 go to an encrypted TicketStore (assistant/intake); an OutboxWorker started with the app
delivers them to ASSISTANT_TICKET_URL (without it they stay pending). Contacts are never logged.

Errors are JSON {"error": code, "message": Chinese text}; when Rasa or the voice gateway is down
the message points to the 12345 hotline. Public endpoints and the login are rate-limited per
conversation and per client address (429 with Retry-After), JSON bodies are bounded, and
POSTs from other sites' pages are refused (web/guard.py).
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from assistant.admin import Reviews
from assistant.intake import data as intake_data
from assistant.intake.kind import TYPES
from assistant.intake.outbox import Outbox, OutboxWorker
from assistant.intake.service import MODEL_DIR, STORE_PATH, TICKET_ID, Intake
from assistant.intake.ticket import SUMMARY_MAX
from assistant.stores import RatingRefused

from .admin import AdminConsole
from .guard import Guard, GuardConfig, dumps, json_error, read_json, too_many

log = logging.getLogger("web")

STATIC = Path(__file__).resolve().parent / "static"
HOTLINE = "12345"
MSG_DOWN = f"系统暂时繁忙，智能助手暂时无法回复。请稍后再试，或拨打{HOTLINE}市民服务热线。"
MSG_VOICE_DOWN = f"语音服务暂时不可用，请改用文字输入，或拨打{HOTLINE}市民服务热线。"
MAX_MESSAGE = 1000
MAX_CALL = 4000  # the caller's sentences of one call, joined, for a 工单 draft
COOKIE = "copilot_token"
GUIDE_FIELDS = {  # passage section -> field name for the copilot
    "事项概述": "overview", "申请条件": "conditions", "申请材料": "materials", "办理方式和地点": "where",
    "办理时限和收费": "time_fee", "咨询和投诉": "phone",
}
URGENCIES = ("一般", "紧急")
DRAFT_TEXT = {"type": 8, "category": 32, "department": 100, "place": 200, "time": 100, "urgency": 8}  # max chars


@dataclass
class Config:
    rasa_url: str = "http://127.0.0.1:5005"
    voice_url: str = "http://127.0.0.1:8090"
    store: str = "build/data/assistant.db"
    index: str = "build/indexes/kb"
    token: str | None = None
    rasa_timeout: float = 30.0
    voice_timeout: float = 120.0
    # the action server's defaults (ASSISTANT_TICKETS, ASSISTANT_INTAKE_MODEL, else build/data/tickets.db and
    # build/models/intake in the repository): one store, whose outbox this server delivers
    tickets: str = str(STORE_PATH)
    intake_model: str = str(MODEL_DIR)
    ticket_url: str | None = field(default_factory=lambda: os.environ.get("ASSISTANT_TICKET_URL") or None)
    # a random in-memory ticket key when ASSISTANT_TICKET_KEY is unset (tests, development; also ASSISTANT_DEV=1)
    allow_ephemeral_key: bool = False
    outbox_interval: float = 2.0
    guard: GuardConfig = field(default_factory=GuardConfig)
    voice_pending: int = 4  # transcriptions running or queued; more get "busy" (Whisper is the costliest call)
    gap_warm_interval: float = 300.0  # seconds between background embeddings of new gap questions (0: off)


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        resp = await handler(request)
    except web.HTTPException as exc:
        if request.path.startswith("/api/") and exc.status >= 400:
            resp = json_error(exc.status, "http_error", exc.reason)
        else:
            raise
    resp.headers.setdefault("Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    return resp


class WebApp:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.session: aiohttp.ClientSession | None = None
        self._store = None
        self._retriever = None
        self._retriever_task: asyncio.Future | None = None
        self._intake: Intake | Exception | None = None  # an exception: why it did not open
        self._intake_task: asyncio.Future | None = None
        self._outbox: Outbox | None = None
        self._worker: OutboxWorker | None = None
        self.guard = Guard(cfg.guard)
        self._voice_pending = 0
        self.static = STATIC
        self._warmer: asyncio.Task | None = None
        self.admin = AdminConsole(self)

    # ------------------------------------------------------------------ plumbing

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=12 * 1024 * 1024, middlewares=[security_headers, self.same_site])
        r = app.router
        r.add_get("/", self.root)
        r.add_get("/chat", self.chat_page)
        r.add_get("/kiosk", self.kiosk_page)
        r.add_get("/copilot", self.copilot_page)
        r.add_post("/copilot/login", self.copilot_login)
        r.add_post("/copilot/logout", self.copilot_logout)
        r.add_post("/api/chat", self.chat)
        r.add_post("/api/voice", self.voice)
        r.add_post("/api/voice/stream", self.voice_stream)
        r.add_post("/api/feedback", self.feedback)
        r.add_get("/api/copilot/guides", self.guides)
        r.add_get("/api/copilot/handoffs", self.handoffs)
        r.add_post("/api/copilot/ticket/draft", self.ticket_draft)
        r.add_post("/api/copilot/ticket", self.ticket_file)
        r.add_get("/api/copilot/ticket-meta", self.ticket_meta)
        r.add_get("/api/copilot/ticket/{id}", self.ticket_status)
        r.add_post("/api/notices", self.notices)
        self.admin.routes(r)
        r.add_get("/healthz", self.health)
        r.add_static("/static/", STATIC, show_index=False)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    @web.middleware
    async def same_site(self, request: web.Request, handler):
        if request.method not in ("GET", "HEAD", "OPTIONS") and self.guard.cross_site(request):
            log.warning("cross-site %s %s refused", request.method, request.path)
            return json_error(403, "cross_site", "拒绝来自其他网站的请求，请在本站页面中操作。")
        return await handler(request)

    async def _startup(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession()
        # load the index in the background so the first copilot query does not wait for it
        loop = asyncio.get_running_loop()
        self._retriever_task = loop.run_in_executor(None, self._load_retriever)
        # the 工单 store (and its outbox worker) and the intake classifier, also in the background
        self._intake_task = loop.run_in_executor(None, self._open_intake)
        if self.cfg.gap_warm_interval > 0:
            self._warmer = asyncio.create_task(self.admin.warm_gaps(self.cfg.gap_warm_interval))

    async def _cleanup(self, app: web.Application) -> None:
        if self._warmer is not None:
            self._warmer.cancel()
        if self._intake_task is not None:
            await asyncio.wait([self._intake_task])  # a worker started late would outlive the app
        if self._worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._worker.stop)
        if self.session is not None:
            await self.session.close()

    def _load_retriever(self):
        from index_builder.retriever import Retriever

        try:
            self._retriever = Retriever(self.cfg.index)
        except Exception as exc:  # IndexNotReady or a broken folder: the copilot says so
            log.warning("copilot index not loaded: %s", exc)
            self._retriever = exc
        return self._retriever

    def _open_intake(self) -> Intake | Exception:
        ephemeral = self.cfg.allow_ephemeral_key or os.environ.get("ASSISTANT_DEV") == "1"
        try:
            intake = Intake.open(self.cfg.tickets, self.cfg.intake_model, allow_ephemeral_key=ephemeral)
        except Exception as exc:  # TicketKeyError (no or wrong key), an unwritable folder: 503 on use
            log.warning("工单 store not opened: %s", exc)
            self._intake = exc
            return exc
        self._outbox = Outbox(intake.store, self.cfg.ticket_url)
        self._worker = OutboxWorker(self._outbox, self.cfg.outbox_interval).start()
        intake.draft("小区路灯坏了")  # warm up (the tokenizer loads on first use), so the first call waits less
        self._intake = intake
        return intake

    def loaded_retriever(self):
        """The index if it is loaded (refreshed after a rebuild), else None; for worker threads."""
        retriever = self._retriever
        if retriever is None or isinstance(retriever, Exception):
            return None
        if retriever.stale():
            retriever = self._retriever = retriever.refreshed()
        return retriever

    def opened_intake(self) -> Intake | Exception | None:
        return self._intake

    def outbox_state(self) -> dict[str, Any] | None:
        return self._outbox.state() if self._outbox is not None else None

    async def intake(self) -> Intake | web.Response:
        """The opened Intake, or a 503 response saying why there is none."""
        intake = self._intake if self._intake is not None else await self._intake_task
        if isinstance(intake, Exception):
            return json_error(503, "tickets_not_ready", "工单服务未就绪，暂时无法生成或提交工单，请联系系统管理员。",
                          detail=str(intake))
        return intake

    def store(self):
        if self._store is None:
            from assistant.stores import Store

            self._store = Store(self.cfg.store)
        return self._store

    def authorized(self, request: web.Request) -> bool:
        token = self.cfg.token
        if not token:
            return False
        given = request.headers.get("Authorization", "")
        given = given[7:] if given.startswith("Bearer ") else request.cookies.get(COOKIE, "")
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    # ------------------------------------------------------------------ pages

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/chat")

    async def chat_page(self, request: web.Request) -> web.StreamResponse:
        return _page("chat.html")

    async def kiosk_page(self, request: web.Request) -> web.StreamResponse:
        return _page("kiosk.html")

    async def copilot_page(self, request: web.Request) -> web.StreamResponse:
        if self.authorized(request):
            return _page("copilot.html")
        return self.login_page("login.html", 401, "口令不正确，请重试。" if request.query.get("failed") else None,
                               {"WWW-Authenticate": 'Bearer realm="copilot"'})

    def login_throttled(self, request: web.Request, page: str, who: str) -> web.Response | None:
        """The 429 login page when this address went over the login limit (copilot and console
        logins count together); every attempt counts, so guessing is slow whatever the answers."""
        wait = self.guard.limited("login", self.guard.address(request))
        if not wait:
            return None
        log.warning("%s login throttled", who)
        seconds = max(1, round(wait))
        return self.login_page(page, 429, f"尝试次数过多，请{seconds}秒后再试。", {"Retry-After": str(seconds)})

    @staticmethod
    def login_page(name: str, status: int, problem: str | None, headers: dict[str, str]) -> web.Response:
        html = (STATIC / name).read_text(encoding="utf-8")
        if problem:
            html = html.replace("<!--failed-->", f'<p class="err">{problem}</p>')
        return web.Response(status=status, text=html, content_type="text/html", charset="utf-8",
                            headers={**headers, "Cache-Control": "no-store"})

    async def copilot_login(self, request: web.Request) -> web.Response:
        throttled = self.login_throttled(request, "login.html", "copilot")
        if throttled:
            return throttled
        form = await request.post()
        token = str(form.get("token", ""))
        if not self.cfg.token or not hmac.compare_digest(token.encode(), self.cfg.token.encode()):
            raise web.HTTPSeeOther("/copilot?failed=1")
        resp = web.HTTPSeeOther("/copilot")
        resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        raise resp

    async def copilot_logout(self, request: web.Request) -> web.Response:
        resp = web.HTTPSeeOther("/copilot")
        resp.del_cookie(COOKIE, path="/")
        raise resp

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "index_loaded": self._retriever is not None
                                  and not isinstance(self._retriever, Exception),
                                  "tickets_ready": self._intake is not None and not isinstance(self._intake, Exception)})

    # ------------------------------------------------------------------ chat / voice proxies

    def throttled(self, endpoint: str, address: str | None, sender: str | None = None,
                  agent: bool = False) -> web.Response | None:
        """A 429 when this client went over `endpoint`'s limit. An authenticated agent has no
        per-address limit (a call centre is one address) but keeps the per-conversation one."""
        wait = self.guard.limited(endpoint, None if agent else address, sender)
        if not wait:
            return None
        log.warning("%s throttled", endpoint)
        return too_many(wait, **({"replies": [{"text": "您发送得太快了，请稍后再试。"}]} if endpoint == "chat" else {}))

    async def chat(self, request: web.Request) -> web.Response:
        address, agent = self.guard.address(request), self.authorized(request)
        throttled = self.throttled("chat", address, agent=agent)
        if throttled:
            return throttled
        body = await read_json(request)
        if isinstance(body, web.Response):
            return body
        sender = str(body.get("sender") or "").strip()[:128]
        message = str(body.get("message") or "")[:MAX_MESSAGE]
        if not sender:
            return json_error(400, "missing_sender", "缺少会话编号（sender）。")
        throttled = self.throttled("chat", None, sender)
        if throttled:
            return throttled
        # the keyed hash of the address goes with the message, so a 差评 typed in the chat can be
        # reviewed per address like one clicked
        metadata: dict[str, Any] = {"client": self.store().key(address)}
        if body.get("audience") == "agent":
            if not agent:
                return json_error(401, "unauthorized", "需要坐席口令。")
            metadata["audience"] = "agent"
        payload = {"sender": sender, "message": message, "metadata": metadata}
        try:
            async with self.session.post(f"{self.cfg.rasa_url}/webhooks/rest/webhook", json=payload,
                                         timeout=aiohttp.ClientTimeout(total=self.cfg.rasa_timeout)) as resp:
                if resp.status != 200:
                    log.warning("rasa answered HTTP %s", resp.status)
                    return json_error(502, "assistant_error", MSG_DOWN, replies=[{"text": MSG_DOWN}])
                replies = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("rasa unreachable: %s", type(exc).__name__)
            return json_error(503, "assistant_unavailable", MSG_DOWN, replies=[{"text": MSG_DOWN}])
        return web.json_response({"sender": sender, "replies": replies or []}, dumps=dumps)

    async def voice(self, request: web.Request) -> web.Response:
        sender = request.query.get("sender", "").strip()[:128] or None
        agent = request.query.get("audience") == "agent" and self.authorized(request)
        throttled = self.throttled("voice", self.guard.address(request), sender, agent=agent)
        if throttled:
            return throttled
        if self._voice_pending >= self.cfg.voice_pending:
            log.warning("voice busy: %d transcriptions pending", self._voice_pending)
            return json_error(503, "voice_busy", f"语音服务繁忙，请稍后再试或改用文字输入，也可拨打{HOTLINE}。",
                              headers={"Retry-After": "5"})
        self._voice_pending += 1
        try:
            return await self._voice(request, sender, agent)
        finally:
            self._voice_pending -= 1

    async def _voice(self, request: web.Request, sender: str | None, agent: bool) -> web.Response:
        data = await request.read()
        url = f"{self.cfg.voice_url}/api/voice"
        query = {"sender": sender} if sender else {}
        if agent:
            query["audience"] = "agent"
        if query:
            url += "?" + urlencode(query)
        return await self._forward_voice(url, data, request.headers.get("Content-Type", "application/octet-stream"))

    async def voice_stream(self, request: web.Request) -> web.Response:
        """A call's audio pieces to the voice gateway's running transcript: agents only."""
        if not self.authorized(request):
            return json_error(401, "unauthorized", "需要坐席口令。")
        query = {k: request.query[k][:128] for k in ("call", "end") if k in request.query}
        data = await request.read()
        return await self._forward_voice(f"{self.cfg.voice_url}/api/voice/stream?{urlencode(query)}", data,
                                         "application/octet-stream")

    async def _forward_voice(self, url: str, data: bytes, content_type: str) -> web.Response:
        try:
            async with self.session.post(url, data=data, headers={"Content-Type": content_type},
                                         timeout=aiohttp.ClientTimeout(total=self.cfg.voice_timeout)) as resp:
                text = await resp.text()
                try:
                    payload = json.loads(text)
                except ValueError:
                    return json_error(502, "voice_error", MSG_VOICE_DOWN)
                return web.json_response(payload, status=resp.status, dumps=dumps)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("voice gateway unreachable: %s", type(exc).__name__)
            return json_error(503, "voice_unavailable", MSG_VOICE_DOWN)

    # ------------------------------------------------------------------ 好差评

    async def _limited_json(self, request: web.Request, endpoint: str) -> tuple[str, dict[str, Any]] | web.Response:
        """(client address, JSON body) of a public POST within `endpoint`'s per-address limit,
        or the 429 / 400 / 413 response."""
        address = self.guard.address(request)
        throttled = self.throttled(endpoint, address)
        if throttled:
            return throttled
        body = await read_json(request)
        return body if isinstance(body, web.Response) else (address, body)

    async def feedback(self, request: web.Request) -> web.Response:
        got = await self._limited_json(request, "feedback")
        if isinstance(got, web.Response):
            return got
        address, body = got
        rating = body.get("rating")
        answer_id = str(body.get("answer_id") or "")[:64]
        sender = str(body.get("sender") or "").strip()[:128]
        reason = str(body.get("reason") or "")[:500] or None
        if rating not in ("good", "bad") or not answer_id or not sender:
            return json_error(400, "bad_feedback", "评价需要 answer_id、sender 和 rating（good 或 bad）。")
        throttled = self.throttled("feedback", None, sender)
        if throttled:
            return throttled
        store = self.store()
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                None, lambda: store.rate(answer_id, sender, rating, reason, client_key=store.key(address)))
        except RatingRefused:
            log.warning("rating of an answer not given to this conversation refused")
            return json_error(404, "unknown_answer", "只能评价本次对话中助手给出的回答：这条回答不存在，或不属于本次对话。")
        except Exception as exc:  # no traceback: it could quote the reason being written
            log.error("feedback not stored: %s", type(exc).__name__)
            return json_error(500, "store_error", f"评价暂时没有保存成功，请稍后再试，或拨打{HOTLINE}。")
        message = "已更新您的评价，感谢！" if result["replaced"] else "感谢您的评价！"
        return web.json_response({"ok": True, "replaced": result["replaced"], "message": message}, dumps=dumps)

    async def notices(self, request: web.Request) -> web.Response:
        """Corrected answers (已整改 with a reply) for this conversation, as chat replies."""
        got = await self._limited_json(request, "feedback")
        if isinstance(got, web.Response):
            return got
        sender = str(got[1].get("sender") or "").strip()[:128]
        if not sender:
            return json_error(400, "missing_sender", "缺少会话编号（sender）。")
        throttled = self.throttled("feedback", None, sender)
        if throttled:
            return throttled
        try:
            shown = await asyncio.get_running_loop().run_in_executor(
                None, lambda: Reviews(self.store()).deliver(sender, lambda: secrets.token_hex(8)))
        except Exception as exc:  # the chat opens anyway; the notice waits for the next visit
            log.error("notices not read: %s", type(exc).__name__)
            return web.json_response({"replies": []})
        titles = self.admin.titles()
        replies = [{"text": f"您之前咨询的“{n['question'][:60]}”，我们已核实并更新答复：\n{n['text']}",
                    "custom": {"answer_id": n["answer_id"], "notice": True,
                               "sources": [{"doc_id": d, "title": titles(d) or d,
                                            "citation": f"《{titles(d) or d}》"} for d in list(dict.fromkeys(n["doc_ids"]))[:3]]}}
                   for n in shown]
        return web.json_response({"replies": replies}, dumps=dumps)

    # ------------------------------------------------------------------ copilot APIs

    async def guides(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return json_error(401, "unauthorized", "需要坐席口令。")
        q = request.query.get("q", "").strip()[:MAX_MESSAGE]
        doc = request.query.get("doc", "").strip()[:128] or None
        if not q:
            return web.json_response({"query": "", "guides": []})
        retriever = self._retriever if self._retriever is not None else await self._retriever_task
        if isinstance(retriever, Exception):
            return json_error(503, "index_not_ready", f"办事指南索引未就绪：{retriever}")
        loop = asyncio.get_running_loop()
        if retriever.stale():  # a document was added and the index rebuilt
            retriever = self._retriever = await loop.run_in_executor(None, retriever.refreshed)
        data = await loop.run_in_executor(None, lambda: self._guides(retriever, q, doc))
        return web.json_response(data, dumps=dumps)

    @staticmethod
    def _guides(retriever, q: str, doc: str | None = None, limit: int = 3) -> dict[str, Any]:
        result = retriever.search(q, k=10)
        hits = result.top_docs()
        in_context = bool(doc) and bool(retriever.passages_of(doc))
        if in_context:  # the call's topic first, as the suggested reply uses it
            own = retriever.search_within(q, [doc], k=1) or []
            hits = own + [h for h in hits if h.passage.doc_id != doc]
        guides = []
        for hit in hits[:limit]:
            p = hit.passage
            item: dict[str, Any] = {"doc_id": p.doc_id, "title": p.title, "kind": p.kind,
                                    "score": round(hit.score, 4), "matched": p.section,
                                    "department": p.meta.get("department") or p.meta.get("lead"),
                                    "phone": p.meta.get("consult_phone") or HOTLINE}
            if p.kind == "guide":
                for q_ in retriever.passages_of(p.doc_id):
                    key = GUIDE_FIELDS.get(q_.section)
                    if key == "phone":
                        item["contact"] = q_.text
                    elif key:
                        item[key] = q_.text
            else:
                item["overview"] = p.text
            guides.append(item)
        return {"query": result.query, "confidence": round(result.confidence, 4),
                "confident": result.confident or in_context, "topic": doc if in_context else None, "guides": guides}

    async def handoffs(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return json_error(401, "unauthorized", "需要坐席口令。")
        try:
            limit = max(1, min(50, int(request.query.get("limit", "10"))))
        except ValueError:
            limit = 10
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, lambda: self.store().recent_handoffs(limit))
        return web.json_response({"handoffs": rows}, dumps=dumps)

    # ------------------------------------------------------------------ 工单 (copilot)

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if not self.authorized(request):
            return json_error(401, "unauthorized", "需要坐席口令。")
        return await read_json(request)

    async def ticket_draft(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        text = str(body.get("text") or "").strip()[:MAX_CALL]
        if not text:
            return json_error(400, "empty_text", "没有来电内容，无法生成工单草稿。")
        intake = await self.intake()
        if isinstance(intake, web.Response):
            return intake
        kind, draft = await asyncio.get_running_loop().run_in_executor(
            None, lambda: (intake.detect(text), intake.draft(text)))
        return web.json_response({"kind": kind.to_dict(), "draft": draft}, dumps=dumps)

    async def ticket_file(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        draft = _clean_draft(body.get("draft"))
        if isinstance(draft, str):
            return json_error(400, "bad_ticket", draft)
        contact = str(body.get("contact") or "").strip()[:32] or None
        callback = body.get("callback") is True
        sender = str(body.get("sender") or "").strip()[:128] or "copilot"
        intake = await self.intake()
        if isinstance(intake, web.Response):
            return intake
        try:
            ticket = await asyncio.get_running_loop().run_in_executor(
                None, lambda: intake.store.file(draft, sender, contact, callback))
        except ValueError as exc:  # the store's own checks: Chinese text for the agent
            return json_error(400, "bad_ticket", str(exc))
        except Exception as exc:  # no traceback: it could quote the row being written
            log.error("工单 not filed: %s", type(exc).__name__)
            return json_error(500, "ticket_error", f"工单暂时没有提交成功，请稍后再试，或按{HOTLINE}人工流程登记。")
        log.info("工单 %s filed from the copilot (callback=%s)", ticket["id"], callback)
        if self._worker is not None:
            self._worker.wake()
        return web.json_response({"ticket": ticket}, dumps=dumps)

    async def ticket_status(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return json_error(401, "unauthorized", "需要坐席口令。")
        ticket_id = request.match_info["id"].strip().upper()
        if not TICKET_ID.fullmatch(ticket_id):
            return json_error(400, "bad_ticket_id", "工单编号格式不正确（例如 QP20261201-000123）。")
        intake = await self.intake()
        if isinstance(intake, web.Response):
            return intake
        loop = asyncio.get_running_loop()
        ticket = await loop.run_in_executor(None, intake.status, ticket_id)
        if ticket is None:
            return json_error(404, "ticket_not_found", f"没有找到编号为 {ticket_id} 的工单。")
        row = await loop.run_in_executor(None, self._outbox.row, ticket_id)
        return web.json_response({"ticket": ticket, "delivery": row and row["state"]}, dumps=dumps)

    async def ticket_meta(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return json_error(401, "unauthorized", "需要坐席口令。")
        departments = intake_data.load_departments()
        categories = [{"name": c.name, "description": c.description, "department": departments[c.name].primary,
                       "local": departments[c.name].local} for c in intake_data.load_categories()]
        units = dict.fromkeys(u for d in departments.values() for u in (d.primary, *d.others))
        return web.json_response({"types": list(TYPES), "urgencies": list(URGENCIES), "categories": categories,
                                  "departments": list(units), "summary_max": SUMMARY_MAX}, dumps=dumps)


def _clean_draft(raw: Any) -> dict[str, Any] | str:
    """The fields of an agent-edited draft the store keeps, or the Chinese reason it is refused."""
    if not isinstance(raw, dict):
        return "缺少工单内容（draft）。"
    draft: dict[str, Any] = {k: (str(raw.get(k) or "").strip()[:n] or None) for k, n in DRAFT_TEXT.items()}
    draft["summary"] = str(raw.get("summary") or "").strip()
    if len(draft["summary"]) > SUMMARY_MAX:
        return f"诉求摘要不能超过{SUMMARY_MAX}字。"
    if draft["type"] not in TYPES:
        return f"诉求类型须为{'、'.join(TYPES)}之一。"
    if draft["category"] is not None and draft["category"] not in intake_data.category_names():
        return "类别不在工单类别列表中。"
    if draft["urgency"] not in URGENCIES:
        return "紧急程度须为“一般”或“紧急”。"
    categories = raw.get("categories") if isinstance(raw.get("categories"), list) else []
    draft["categories"] = [{"category": str(c["category"])[:32], "score": float(c["score"])} for c in categories[:5]
                           if isinstance(c, dict) and isinstance(c.get("category"), str)
                           and isinstance(c.get("score"), (int, float))]
    return draft


def make_app(cfg: Config) -> web.Application:
    return WebApp(cfg).make_app()
