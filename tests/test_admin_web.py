"""The console's web layer in process (web/admin.py): its own login, separation from the agents'
token, the review API, the chat's notices, exports and charts. The browser tests (test_web.py)
drive the same pages against the real assistant."""
from __future__ import annotations

import csv
import io
import logging
import time

import pytest

from assistant.admin import Credentials
from assistant.stores import Store
from test_web_server import AUTH, run

PASSWORDS = {"alice": "alice password 1", "bob": "bob password 22", "vera": "viewer password 3"}


@pytest.fixture(autouse=True)
def admins(tmp_path, monkeypatch):
    creds = Credentials(tmp_path / "admins.txt")
    for name, role in (("alice", "admin"), ("bob", "admin"), ("vera", "viewer")):
        creds.add(name, PASSWORDS[name], role)
    monkeypatch.setenv("ASSISTANT_ADMINS", str(creds.path))
    return creds


async def login(c, name: str, password: str | None = None):
    """POST the login form; the client keeps the cookie it gets."""
    return await c.post("/admin/login", data={"name": name, "password": password or PASSWORDS[name]},
                        allow_redirects=False)


def seed(tmp_path) -> Store:
    store = Store(tmp_path / "a.db")
    now = time.time()
    store.record_answer("a1", "web-1", "结婚登记要带什么", ["marriage"], True, "answer", at=now - 600,
                        text="请携带身份证。")
    store.rate("a1", "web-1", "bad", reason="不全", at=now - 500)
    store.record_answer("a2", "web-2", "我家猫丢了怎么办", [], False, "unsure", at=now - 400)
    store.add_handoff("web-2", {"headline": "市民咨询：我家猫丢了怎么办"}, at=now - 300)
    return store


def test_console_login_is_its_own(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    async def go(c):
        r = await c.get("/admin")
        assert r.status == 401 and "管理后台" in await r.text()
        for headers in (AUTH, {"Cookie": "copilot_token=agent-secret"}):  # the agents' token opens nothing here
            assert (await c.get("/api/admin/overview", headers=headers)).status == 401
            assert (await c.get("/api/admin/export/ratings.csv", headers=headers)).status == 401
        r = await login(c, "alice", "wrong password")
        assert r.status == 303 and r.headers["Location"] == "/admin?failed=1" and "admin_session" not in r.cookies
        assert "用户名或密码不正确" in await (await c.get("/admin?failed=1")).text()
        r = await login(c, "alice")
        assert r.status == 303 and r.headers["Location"] == "/admin"
        cookie = r.cookies["admin_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        me = await (await c.get("/api/admin/me")).json()
        assert me["name"] == "alice" and me["role"] == "admin"
        assert (await c.get("/admin")).status == 200
        # the console's cookie does not open the copilot
        assert (await c.get("/copilot")).status == 401
        assert (await c.get("/api/copilot/handoffs")).status == 401
        await c.post("/admin/logout", allow_redirects=False)
        c.session.cookie_jar.update_cookies({"admin_session": cookie.value})  # a copied cookie after logout
        assert (await c.get("/api/admin/me")).status == 401
    run(go, tmp_path)
    logged = caplog.text
    assert all(p not in logged for p in PASSWORDS.values()) and "wrong password" not in logged


def test_locked_account_is_told_to_wait(tmp_path):
    async def go(c):
        for _ in range(3):
            await login(c, "bob", "nope nope nope")
        r = await login(c, "bob")  # right password, but locked for now
        assert r.headers["Location"] == "/admin?failed=locked"
        assert "暂时锁定" in await (await c.get("/admin?failed=locked")).text()
    run(go, tmp_path)


def test_review_through_the_api_and_the_corrected_answer_in_the_chat(tmp_path):
    seed(tmp_path)

    async def go(c):
        await login(c, "vera")
        r = await c.post("/api/admin/ratings/a1/review", json={"status": "整改中", "note": "x"})
        assert r.status == 409 and "只读" in (await r.json())["message"]
        assert (await c.get("/api/admin/export/ratings.csv")).status == 403
        await login(c, "alice")
        listing = await (await c.get("/api/admin/ratings")).json()
        assert [i["answer_id"] for i in listing["items"]] == ["a1"] and listing["by_status"]["待整改"] == 1
        r = await c.post("/api/admin/ratings/a1/review", json={"status": "已整改"})
        assert r.status == 409 and "处理说明" in (await r.json())["message"]
        r = await c.post("/api/admin/ratings/a1/review", json={"status": "整改中", "note": "联系指南编辑"})
        assert r.status == 200 and (await r.json())["status"] == "整改中"
        r = await c.post("/api/admin/ratings/a1/review", json={"status": "已整改", "note": "指南已补充", "recheck": True,
                                                                "reply": "结婚登记需双方身份证和户口簿。"})
        item = await r.json()
        assert [a["user"] for a in item["audit"]] == ["alice", "alice"] and item["notices"][0]["delivered_at"] is None
        assert (await c.get("/api/admin/ratings/nope")).status == 404
        # the citizen comes back: the corrected answer is shown once, and can be rated
        r = await c.post("/api/notices", json={"sender": "web-1"})
        [reply] = (await r.json())["replies"]
        assert "结婚登记需双方身份证和户口簿" in reply["text"] and reply["custom"]["notice"]
        r = await c.post("/api/feedback", json={"answer_id": reply["custom"]["answer_id"], "rating": "good",
                                                "sender": "web-1"})
        assert r.status == 200
        assert (await (await c.post("/api/notices", json={"sender": "web-1"})).json())["replies"] == []
        assert (await (await c.post("/api/notices", json={"sender": "web-2"})).json())["replies"] == []
        assert (await c.post("/api/notices", json={})).status == 400
    run(go, tmp_path)


def test_overview_charts_gaps_and_exports(tmp_path):
    seed(tmp_path)

    async def go(c):
        await login(c, "alice")
        o = await (await c.get("/api/admin/overview")).json()
        assert o["totals"]["answers"] == 2 and o["totals"]["handoffs"] == 1 and o["totals"]["bad"] == 1
        assert o["totals"]["conversations"] == 2 and len(o["days"]) == 30
        assert (await c.get("/api/admin/overview?since=2026-13-01")).status == 400
        assert (await c.get("/api/admin/overview?since=2020-01-01&until=2026-01-01")).status == 400
        assert set(o["charts"]) == {"answers", "ratings"} and all(v.startswith("<svg") for v in o["charts"].values())
        assert "<script" not in "".join(o["charts"].values())
        g = await (await c.get("/api/admin/gaps")).json()
        assert not g["clustered"] and {t["label"] for t in g["topics"]} == {"结婚登记要带什么", "我家猫丢了怎么办"}
        r = await c.get("/api/admin/export/ratings.csv")
        assert r.status == 200 and r.headers["Content-Disposition"].startswith("attachment")
        rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
        assert len(rows) == 2 and rows[1][2] == "结婚登记要带什么"
        rows = list(csv.reader(io.StringIO((await (await c.get("/api/admin/export/gaps.csv")).read()).decode("utf-8-sig"))))
        assert len(rows) == 3
        assert (await c.get("/api/admin/export/other.csv")).status == 404
    run(go, tmp_path)
    trail = Store(tmp_path / "a.db").connection().execute("SELECT action, target FROM audit ORDER BY id").fetchall()
    assert ("export", "ratings") in trail and ("export", "gaps") in trail and ("login", None) in trail


def test_console_logins_are_limited_per_address(tmp_path):
    async def go(c):
        for i in range(10):  # different names: the per-account lock is not what stops these
            assert (await login(c, f"guess{i}", "nope nope nope")).status == 303
        r = await login(c, "alice")
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1 and "尝试次数过多" in await r.text()
    run(go, tmp_path)
