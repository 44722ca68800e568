"""web/server.py without a browser or the real assistant: proxies, errors, feedback, agent token."""
from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from assistant.intake.store import KEY_ENV, TicketStore
from assistant.stores import Store
from web.server import Config, make_app

TOKEN = "agent-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMPLAINT = "盈浦街道XX小区门口的路灯坏了一个多月了，晚上很黑，老人差点摔倒，希望尽快修"
PHONE = "13957204816"


def fake_rasa() -> web.Application:
    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response([{"text": f"收到：{body['message']}", "recipient_id": body["sender"],
                                   "custom": {"answer_id": "a1", "confident": True, "sources": []}}])
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", hook)
    return app


def run(coro_fn, tmp_path: Path, rasa: bool = True, **cfg):
    async def main():
        rasa_server = TestServer(fake_rasa()) if rasa else None
        if rasa_server:
            await rasa_server.start_server()
        rasa_url = str(rasa_server.make_url("")).rstrip("/") if rasa_server else "http://127.0.0.1:9"
        cfg.setdefault("tickets", str(tmp_path / "tickets.db"))
        cfg.setdefault("intake_model", str(tmp_path / "no-intake-model"))
        config = Config(rasa_url=rasa_url, voice_url="http://127.0.0.1:9", store=str(tmp_path / "a.db"),
                        index=str(tmp_path / "no-index"), token=TOKEN, **cfg)
        client = TestClient(TestServer(make_app(config)))
        await client.start_server()
        try:
            return await coro_fn(client)
        finally:
            await client.close()
            if rasa_server:
                await rasa_server.close()
    return asyncio.run(main())


def test_pages_and_chat_proxy(tmp_path):
    async def go(c):
        for path in ("/chat", "/kiosk", "/static/chat.js", "/static/common.js"):
            r = await c.get(path)
            assert r.status == 200, path
        r = await c.get("/chat")
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        r = await c.post("/api/chat", json={"sender": "s1", "message": "你好"})
        body = await r.json()
        assert r.status == 200 and body["replies"][0]["text"] == "收到：你好"
        r = await c.post("/api/chat", json={"message": "no sender"})
        assert r.status == 400
        r = await c.post("/api/chat", data=b"not json")
        assert r.status == 400
    run(go, tmp_path)


def test_friendly_errors_when_rasa_and_voice_are_down(tmp_path):
    async def go(c):
        r = await c.post("/api/chat", json={"sender": "s1", "message": "社保卡"})
        body = await r.json()
        assert r.status == 503 and "12345" in body["message"] and "12345" in body["replies"][0]["text"]
        r = await c.post("/api/voice", data=b"RIFF....", headers={"Content-Type": "audio/wav"})
        body = await r.json()
        assert r.status == 503 and body["error"] == "voice_unavailable" and "12345" in body["message"]
    run(go, tmp_path, rasa=False)


def test_feedback_is_stored_only_for_an_answer_given_to_that_conversation(tmp_path):
    Store(tmp_path / "a.db").record_answer("ans1", "web-x", "公积金租房怎么提取", ["gjj-tiqu-zufang"], True, at=0.0)

    async def go(c):
        # the client's doc_ids are ignored: the store's record of the answer decides
        r = await c.post("/api/feedback", json={"answer_id": "ans1", "rating": "bad", "reason": "打我电话13812345678",
                                                "sender": "web-x", "doc_ids": ["qy-sheli-dengji"]})
        assert r.status == 200 and (await r.json())["ok"]
        r = await c.post("/api/feedback", json={"answer_id": "ans1", "rating": "good", "sender": "web-x"})
        assert r.status == 200 and (await r.json())["replaced"] is True
        for forged in ({"answer_id": "forged0", "sender": "web-x"}, {"answer_id": "ans1", "sender": "web-y"}):
            r = await c.post("/api/feedback", json={**forged, "rating": "bad"})
            body = await r.json()
            assert r.status == 404 and body["error"] == "unknown_answer" and "本次对话" in body["message"]
        for bad in ({"answer_id": "ans1", "rating": "meh", "sender": "web-x"}, {"rating": "good"},
                    {"answer_id": "ans1", "rating": "good"}):
            assert (await c.post("/api/feedback", json=bad)).status == 400
    run(go, tmp_path)
    store = Store(tmp_path / "a.db")
    [row] = store.ratings()
    assert row["answer_id"] == "ans1" and row["rating"] == "good" and row["doc_ids"] == ["gjj-tiqu-zufang"]
    [first, _] = store.rating_history("ans1")
    assert "13812345678" not in first["reason"]  # masked by the store


def test_copilot_needs_the_agent_token(tmp_path):
    async def go(c):
        for path in ("/copilot", "/api/copilot/guides?q=社保卡", "/api/copilot/handoffs"):
            assert (await c.get(path)).status == 401, path
            assert (await c.get(path, headers={"Authorization": "Bearer wrong"})).status == 401, path
        r = await c.get("/copilot")
        assert 'name="token"' in await r.text()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = await c.get("/copilot", headers=auth)
        assert r.status == 200 and "坐席助手" in await r.text()
        r = await c.get("/api/copilot/handoffs", headers=auth)
        assert r.status == 200 and (await r.json())["handoffs"] == []
        r = await c.get("/api/copilot/guides?q=社保卡", headers=auth)
        assert r.status == 503 and (await r.json())["error"] == "index_not_ready"
        # the login form sets an HttpOnly cookie that then opens the page
        r = await c.post("/copilot/login", data={"token": "wrong"}, allow_redirects=False)
        assert r.status == 303 and "failed" in r.headers["Location"]
        r = await c.post("/copilot/login", data={"token": TOKEN}, allow_redirects=False)
        assert r.status == 303 and "HttpOnly" in r.headers["Set-Cookie"]
        assert (await c.get("/copilot")).status == 200
    run(go, tmp_path)


def test_copilot_disabled_without_configured_token(tmp_path):
    async def main():
        cfg = Config(store=str(tmp_path / "a.db"), index=str(tmp_path / "x"), tickets=str(tmp_path / "t.db"))
        client = TestClient(TestServer(make_app(cfg)))
        await client.start_server()
        try:
            assert (await client.get("/copilot", headers={"Authorization": "Bearer anything"})).status == 401
            assert (await client.get("/api/copilot/handoffs", headers={"Authorization": "Bearer "})).status == 401
        finally:
            await client.close()
    asyncio.run(main())


# ---------------------------------------------------------------- 工单 from the copilot


@pytest.fixture(scope="module")
def intake_model(tmp_path_factory) -> str:
    """The category classifier trained on knowledge_base/intake/examples.tsv (about 3 s)."""
    from assistant.intake.classifier import IntakeModel
    from assistant.intake.data import EXAMPLES_FILE, read_tickets

    out = tmp_path_factory.mktemp("intake-model")
    IntakeModel.train(read_tickets(EXAMPLES_FILE), source=EXAMPLES_FILE).save(out)
    return str(out)


def _ticket(summary: str = "路灯坏了一个多月，晚上很黑，请尽快修复。", **extra) -> dict:
    draft = {"type": "投诉", "category": "城乡建设", "categories": [{"category": "城乡建设", "score": 0.9}],
             "department": "青浦区建设管理委员会", "place": "盈浦街道XX小区", "time": "一个多月", "summary": summary,
             "urgency": "一般"}
    return {"draft": draft, "contact": "", "callback": False, "sender": "copilot-test", **extra}


def test_ticket_endpoints_need_the_agent_token(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv("ASSISTANT_DEV", raising=False)

    async def go(c):
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            assert (await c.post("/api/copilot/ticket/draft", json={"text": COMPLAINT}, headers=headers)).status == 401
            assert (await c.post("/api/copilot/ticket", json=_ticket(), headers=headers)).status == 401
            assert (await c.get("/api/copilot/ticket/QP20261201-000001", headers=headers)).status == 401
            r = await c.get("/api/copilot/ticket-meta", headers=headers)
            assert r.status == 401 and (await r.json())["error"] == "unauthorized"
        # no ASSISTANT_TICKET_KEY and no dev mode: the store stays closed, the copilot says so
        r = await c.post("/api/copilot/ticket/draft", json={"text": COMPLAINT}, headers=AUTH)
        body = await r.json()
        assert r.status == 503 and body["error"] == "tickets_not_ready" and "工单" in body["message"]
        assert (await c.get("/healthz")).status == 200
    run(go, tmp_path)
    assert not (tmp_path / "tickets.db").exists()


def test_ticket_draft_of_a_complaint_and_the_form_lists(tmp_path, intake_model, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)  # Config(allow_ephemeral_key=True): a random key

    async def go(c):
        r = await c.post("/api/copilot/ticket/draft", json={"text": COMPLAINT}, headers=AUTH)
        assert r.status == 200
        body = await r.json()
        assert body["kind"] == {"is_complaint": True, "type": "投诉", "is_question": False}
        d = body["draft"]
        assert d["category"] == "城乡建设" and d["categories"][0]["category"] == "城乡建设"
        assert 1 <= len(d["categories"]) <= 3 and all(0 <= c["score"] <= 1 for c in d["categories"])
        assert "盈浦街道XX小区" in d["place"] and "盈浦街道" in d["department"]
        assert d["summary"] and len(d["summary"]) <= 100 and "路灯" in d["summary"]
        # the whole call so far, several sentences and a number said aloud: still ≤ 100, masked
        call = "\n".join([COMPLAINT, "我是住在那边的居民，我电话" + PHONE + "。",
                          "之前打过物业电话，物业说不归他们管，让我找街道，街道又说要等统一维修，一直没人来处理。",
                          "现在天黑得早，小区里好多老人晚上出来散步，真的很危险。"])
        body = await (await c.post("/api/copilot/ticket/draft", json={"text": call}, headers=AUTH)).json()
        assert len(body["draft"]["summary"]) <= 100 and PHONE not in str(body)
        assert (await c.post("/api/copilot/ticket/draft", json={"text": "  "}, headers=AUTH)).status == 400
        assert (await c.post("/api/copilot/ticket/draft", data=b"nope", headers=AUTH)).status == 400
        r = await c.post("/api/copilot/ticket/draft", json={"text": "社保卡丢了怎么补办？"}, headers=AUTH)
        assert (await r.json())["kind"]["is_complaint"] is False

        meta = await (await c.get("/api/copilot/ticket-meta", headers=AUTH)).json()
        assert meta["types"] == ["投诉", "举报", "求助", "建议"] and meta["urgencies"] == ["一般", "紧急"]
        cats = {c["name"]: c for c in meta["categories"]}
        assert "其他" in cats and cats["城乡建设"]["department"] in meta["departments"]
    run(go, tmp_path, intake_model=intake_model, allow_ephemeral_key=True)


def test_filing_encrypts_the_contact_and_reports_the_status(tmp_path, monkeypatch, caplog):
    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv(KEY_ENV, key)
    caplog.set_level(logging.DEBUG)

    async def go(c):
        r = await c.post("/api/copilot/ticket", headers=AUTH,
                         json=_ticket("市民反映小区门口路灯坏了一个多月，夜间无照明，老人险些摔倒。", contact=PHONE, callback=True))
        assert r.status == 200, await r.text()
        t = (await r.json())["ticket"]
        assert re.fullmatch(r"QP\d{8}-\d{6}", t["id"]) and t["status"] == "已受理"
        assert t["contact_masked"] == "139****4816" and t["callback"] is True and PHONE not in str(t)
        r = await c.get(f"/api/copilot/ticket/{t['id'].lower()}", headers=AUTH)
        body = await r.json()
        assert r.status == 200 and body["ticket"]["id"] == t["id"] and body["ticket"]["summary"].startswith("市民反映")
        assert body["delivery"] == "pending: no URL configured"
        assert (await c.get("/api/copilot/ticket/QP20000101-999999", headers=AUTH)).status == 404
        assert (await c.get("/api/copilot/ticket/12345", headers=AUTH)).status == 400
        return t["id"]
    ticket_id = run(go, tmp_path)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("tickets.db"))
    for form in (PHONE, "57204816", "1395720"):
        assert form.encode() not in raw
    with sqlite3.connect(tmp_path / "tickets.db") as db:
        enc, masked, summary = db.execute("SELECT contact_enc, contact_masked, summary FROM ticket").fetchone()
    assert enc and masked == "139****4816" and summary.startswith("市民反映")
    assert TicketStore(tmp_path / "tickets.db").contact(ticket_id) == PHONE  # encrypted, not dropped
    assert PHONE not in caplog.text and "57204816" not in caplog.text


def test_filing_refusals_are_400_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.setenv("ASSISTANT_DEV", "1")  # development mode: a random key too

    async def go(c):
        async def refused(body: dict) -> str:
            r = await c.post("/api/copilot/ticket", json=body, headers=AUTH)
            assert r.status == 400, await r.text()
            return (await r.json())["message"]
        assert await refused(_ticket(callback=True)) == "需要回访时请留下联系电话"
        assert "联系电话格式不正确" in await refused(_ticket(contact="138-abc", callback=True))
        assert await refused(_ticket(summary="  ")) == "工单内容不能为空"
        assert "100" in await refused(_ticket(summary="很" * 101))
        assert "诉求类型" in await refused({**_ticket(), "draft": {**_ticket()["draft"], "type": "表扬"}})
        assert "类别" in await refused({**_ticket(), "draft": {**_ticket()["draft"], "category": "天气"}})
        assert "缺少工单内容" in await refused({"contact": PHONE})
    run(go, tmp_path)
    with sqlite3.connect(tmp_path / "tickets.db") as db:
        assert db.execute("SELECT COUNT(*) FROM ticket").fetchone()[0] == 0


def test_filed_ticket_is_delivered_by_the_outbox_worker(tmp_path):
    seen: list[tuple[str, dict]] = []

    async def receiver(request: web.Request) -> web.Response:
        seen.append((request.headers["Idempotency-Key"], await request.json()))
        return web.json_response({"ok": True})

    async def main():
        stand_in = web.Application()
        stand_in.router.add_post("/tickets", receiver)
        server = TestServer(stand_in)
        await server.start_server()
        cfg = Config(store=str(tmp_path / "a.db"), index=str(tmp_path / "x"), token=TOKEN, allow_ephemeral_key=True,
                     tickets=str(tmp_path / "tickets.db"), intake_model=str(tmp_path / "none"),
                     ticket_url=str(server.make_url("/tickets")), outbox_interval=0.2)
        client = TestClient(TestServer(make_app(cfg)))
        await client.start_server()
        try:
            r = await client.post("/api/copilot/ticket", json=_ticket(contact=PHONE, callback=True), headers=AUTH)
            ticket_id = (await r.json())["ticket"]["id"]
            deadline = time.monotonic() + 15
            while not seen and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # the worker records the 2xx answer
            body = await (await client.get(f"/api/copilot/ticket/{ticket_id}", headers=AUTH)).json()
            return ticket_id, body["delivery"]
        finally:
            await client.close()  # stops the worker
            await server.close()
    ticket_id, delivery = asyncio.run(main())
    [(key, payload)] = seen
    assert key == ticket_id and payload["id"] == ticket_id and delivery == "delivered"
    assert payload["contact"] == PHONE and payload["callback"] is True  # only the 12345 system sees it in clear


def test_a_flooding_client_is_throttled_while_another_is_served(tmp_path):
    from web.guard import GuardConfig

    guard = GuardConfig.from_env({"ASSISTANT_LIMIT_CHAT": "5/60", "ASSISTANT_LIMIT_CHAT_ADDRESS": "12/60"})

    async def go(c):
        codes = [(await c.post("/api/chat", json={"sender": "flood", "message": "你好"})).status for _ in range(7)]
        assert codes == [200] * 5 + [429] * 2
        r = await c.post("/api/chat", json={"sender": "flood", "message": "你好"})
        body = await r.json()
        assert int(r.headers["Retry-After"]) >= 1 and "12345" in body["message"] and body["replies"]
        assert (await c.post("/api/chat", json={"sender": "other", "message": "你好"})).status == 200
        # rotating conversation ids from one address: the per-address limit (12/60) stops them
        codes = [(await c.post("/api/chat", json={"sender": f"rot{i}", "message": "hi"},
                               headers={"X-Forwarded-For": "10.9.9.9"})).status for i in range(14)]
        assert codes == [200] * 12 + [429] * 2
        r = await c.post("/api/chat", json={"sender": "elsewhere", "message": "hi"},
                         headers={"X-Forwarded-For": "10.9.9.10"})
        assert r.status == 200
    run(go, tmp_path, guard=guard)


def test_login_attempts_are_limited_per_address(tmp_path):
    async def go(c):
        xff = {"X-Forwarded-For": "10.7.7.7"}
        codes = [(await c.post("/copilot/login", data={"token": f"guess{i}"}, headers=xff,
                               allow_redirects=False)).status for i in range(11)]
        assert codes == [303] * 10 + [429]
        r = await c.post("/copilot/login", data={"token": TOKEN}, headers=xff, allow_redirects=False)
        assert r.status == 429 and "Retry-After" in r.headers and "尝试次数过多" in await r.text()
        r = await c.post("/copilot/login", data={"token": TOKEN}, headers={"X-Forwarded-For": "10.7.7.8"},
                         allow_redirects=False)
        assert r.status == 303 and "copilot_token" in r.cookies
        cookie = r.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    run(go, tmp_path)


def test_bodies_are_bounded_and_malformed_json_refused(tmp_path):
    async def go(c):
        r = await c.post("/api/chat", data=b'{"sender": "s", "message": "' + b"x" * 70_000 + b'"}',
                         headers={"Content-Type": "application/json"})
        assert r.status == 413 and "过大" in (await r.json())["message"]
        for raw in (b"[" * 50_000, b'"just a string"', b"\xff\xfe", b'{"sender": "s", "message": '):
            r = await c.post("/api/feedback", data=raw)
            assert r.status == 400 and (await r.json())["error"] == "bad_request", raw[:10]
        r = await c.post("/api/voice", data=b"\0" * (13 * 1024 * 1024), headers={"Content-Type": "audio/wav"})
        assert r.status == 413 and (await r.json())["error"] == "http_error"
    run(go, tmp_path)


def test_cross_site_posts_are_refused(tmp_path):
    async def go(c):
        evil = {"Origin": "https://evil.example"}
        assert (await c.post("/copilot/login", data={"token": TOKEN}, headers=evil, allow_redirects=False)).status == 403
        r = await c.post("/api/copilot/ticket/draft", json={"text": COMPLAINT}, headers={**AUTH, **evil})
        assert r.status == 403 and (await r.json())["error"] == "cross_site"
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}):
            r = await c.post("/api/chat", json={"sender": "s", "message": "你好"}, headers=headers)
            assert r.status == 403
        # our pages send no referrer, so the browser's own form POST says Origin: null
        r = await c.post("/copilot/login", data={"token": TOKEN}, allow_redirects=False,
                         headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
        assert r.status == 303
        r = await c.post("/api/chat", json={"sender": "s", "message": "你好"},
                         headers={"Origin": str(c.make_url("")).rstrip("/")})
        assert r.status == 200  # the page's own origin
    run(go, tmp_path)


def test_static_files_do_not_escape_their_folder(tmp_path):
    async def go(c):
        for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                     "/static/%2e%2e%2f%2e%2e%2fMakefile", "/static//etc/passwd", "/static/", "/static/.."):
            # encoded=True: the path goes out as written, not normalised by the client
            r = await c.session.get(URL(str(c.make_url("")).rstrip("/") + path, encoded=True))
            text = await r.text()
            assert r.status in (403, 404), path
            assert "aiohttp server" not in text and "root:" not in text, path
    run(go, tmp_path)
