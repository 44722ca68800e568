"""web/server.py without a browser or the real assistant: proxies, errors, feedback, agent token."""
from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from assistant.stores import Store
from web.server import Config, make_app

TOKEN = "agent-secret"


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


def test_feedback_is_stored_and_validated(tmp_path):
    async def go(c):
        r = await c.post("/api/feedback", json={"answer_id": "ans1", "rating": "bad", "reason": "打我电话13812345678",
                                                "sender": "web-x", "doc_ids": ["gjj-tiqu-zufang"]})
        assert r.status == 200 and (await r.json())["ok"]
        r = await c.post("/api/feedback", json={"answer_id": "ans1", "rating": "meh"})
        assert r.status == 400
        r = await c.post("/api/feedback", json={"rating": "good"})
        assert r.status == 400
    run(go, tmp_path)
    [row] = Store(tmp_path / "a.db").feedback("ans1")
    assert row["rating"] == "bad" and row["doc_ids"] == ["gjj-tiqu-zufang"]
    assert "13812345678" not in row["reason"]  # masked by the store


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
        client = TestClient(TestServer(make_app(Config(store=str(tmp_path / "a.db"), index=str(tmp_path / "x")))))
        await client.start_server()
        try:
            assert (await client.get("/copilot", headers={"Authorization": "Bearer anything"})).status == 401
            assert (await client.get("/api/copilot/handoffs", headers={"Authorization": "Bearer "})).status == 401
        finally:
            await client.close()
    asyncio.run(main())
