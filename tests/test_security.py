"""Attacks on the running stack (Rasa, the action server, the web server on spare ports), each
asserting its defence: forged and foreign ratings, client-chosen guides, rating and chat floods,
markup and SQL-like strings in every stored field. The in-process attacks (login brute force,
oversized and malformed bodies, cross-site POSTs, path traversal) are in test_web_server.py.

Runs when ASSISTANT_MODEL names a trained model (`make test` sets it).
"""
from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import free_port
from test_assistant_e2e import INDEX, ROOT, _wait, assistant, say  # noqa: F401 - assistant is a fixture

CHAT_LIMIT = 5  # per conversation per minute in this web server (ASSISTANT_LIMIT_CHAT); the default is 30
FEEDBACK_LIMIT = 20  # the default per conversation per minute


@pytest.fixture(scope="module")
def stack(assistant):
    tmp, port = assistant["tmp"], free_port()
    env = dict(os.environ, ASSISTANT_STORE=str(tmp / "assistant.db"), ASSISTANT_INDEX=str(INDEX), ASSISTANT_DEV="1",
               ASSISTANT_TICKETS=str(tmp / "tickets.db"), ASSISTANT_LIMIT_CHAT=f"{CHAT_LIMIT}/60",
               COPILOT_TOKEN="security-test-token")
    web = subprocess.Popen([sys.executable, "-m", "web", "--port", str(port), "--rasa-url", assistant["url"],
                            "--voice-url", "http://127.0.0.1:9"], cwd=ROOT, env=env,
                           stdout=open(tmp / "web-security.out", "ab"), stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", web, 60)
        yield {**assistant, "web": f"http://127.0.0.1:{port}"}
    finally:
        web.terminate()
        web.wait(timeout=20)


def post(stack, path: str, body: dict, address: str | None = None) -> tuple[int, dict, float]:
    """(status, JSON body, seconds); `address` poses as a client behind the load balancer."""
    headers = {"Content-Type": "application/json", **({"X-Forwarded-For": address} if address else {})}
    req = urllib.request.Request(stack["web"] + path, json.dumps(body).encode(), headers)
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read()), time.perf_counter() - start
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), time.perf_counter() - start


def ask(stack, sender: str, text: str, address: str | None = None) -> dict:
    status, body, _ = post(stack, "/api/chat", {"sender": sender, "message": text}, address)
    assert status == 200, body
    return next(r["custom"] for r in body["replies"] if (r.get("custom") or {}).get("answer_id"))


def test_forged_ratings_are_never_stored(stack):
    store = stack["store"]
    before = len(store.ratings())
    statuses = []
    for i in range(300):  # half from one client, half rotating conversations and addresses
        sender, address = ("forger", "10.66.0.1") if i % 2 else (f"forger{i}", f"10.66.{i // 250}.{i % 250 + 2}")
        status, body, _ = post(stack, "/api/feedback", {"answer_id": f"forged{i}", "rating": "bad", "sender": sender,
                                                        "doc_ids": ["qy-sheli-dengji"]}, address)
        statuses.append(status)
        assert status in (404, 429) and "message" in body
    assert statuses.count(404) >= 150 + FEEDBACK_LIMIT and len(store.ratings()) == before


def test_a_real_rating_counts_against_the_guides_shown_not_the_clients(stack):
    answer = ask(stack, "sec-real", "公积金租房怎么提取")
    status, body, _ = post(stack, "/api/feedback", {"answer_id": answer["answer_id"], "rating": "bad", "sender": "sec-real",
                                                    "reason": "没说清楚", "doc_ids": ["qy-sheli-dengji"]})
    assert status == 200 and body["ok"]
    [row] = stack["store"].ratings(answer["answer_id"])
    assert row["doc_ids"] == [s["doc_id"] for s in answer["sources"]] and "qy-sheli-dengji" not in row["doc_ids"]
    # another conversation cannot rate it, even knowing its id
    status, body, _ = post(stack, "/api/feedback", {"answer_id": answer["answer_id"], "rating": "good",
                                                    "sender": "sec-other"})
    assert status == 404 and stack["store"].ratings(answer["answer_id"])[0]["rating"] == "bad"


def test_a_rating_typed_before_any_question_is_not_stored(stack):
    before = len(stack["store"].ratings())
    say(stack, "sec-no-question", "差评")
    assert len(stack["store"].ratings()) == before


def test_rating_flood_is_throttled_while_another_client_rates(stack):
    answer = ask(stack, "sec-flood-rater", "结婚登记要带什么材料", "10.55.0.1")
    flood = [post(stack, "/api/feedback", {"answer_id": answer["answer_id"], "rating": "bad",
                                           "sender": "sec-flood-rater"}, "10.55.0.1") for _ in range(60)]
    codes = [s for s, _, _ in flood]
    assert codes[:FEEDBACK_LIMIT] == [200] * FEEDBACK_LIMIT and set(codes[FEEDBACK_LIMIT + 1:]) == {429}
    assert [h["rating"] for h in stack["store"].rating_history(answer["answer_id"])] == ["bad"] * codes.count(200)
    other = ask(stack, "sec-calm-rater", "结婚登记要带什么材料", "10.55.0.2")
    status, _, _ = post(stack, "/api/feedback", {"answer_id": other["answer_id"], "rating": "good",
                                                 "sender": "sec-calm-rater"}, "10.55.0.2")
    assert status == 200
    [row] = stack["store"].ratings(answer["answer_id"])
    assert "many_bad_conversation" in row["flags"]  # repeated 差评 of one conversation, marked for review


def test_chat_flood_is_throttled_while_a_second_client_is_served(stack):
    def flood(i):
        return post(stack, "/api/chat", {"sender": "sec-chat-flood", "message": f"你好{i}"}, "10.44.0.1")

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flood, i) for i in range(40)]
        time.sleep(0.2)
        calm = [post(stack, "/api/chat", {"sender": "sec-chat-calm", "message": "你好"}, "10.44.0.2") for _ in range(3)]
        results = [f.result() for f in futures]
    codes = [s for s, _, _ in results]
    assert codes.count(200) == CHAT_LIMIT and codes.count(429) == 40 - CHAT_LIMIT
    assert all(s == 200 and body["replies"] for s, body, _ in calm)
    refused = [t for s, _, t in results if s == 429]
    print(f"flood: {codes.count(429)} refused, median {statistics.median(refused) * 1000:.0f} ms; "
          f"second client median {statistics.median(t for _, _, t in calm) * 1000:.0f} ms")


def test_markup_and_sql_in_every_stored_field_are_kept_as_text(stack):
    sender = "sec-sql'; DROP TABLE rating;--"
    text = "<script>alert(1)</script>' OR '1'='1'; DROP TABLE answer;-- 居住证怎么办"
    answer = ask(stack, sender, text)
    recorded = stack["store"].answer(answer["answer_id"])
    assert "<script" not in recorded["question"] and "居住证" in recorded["question"]  # markup dropped by the channel
    reason = "<img src=x onerror=alert(1)> 1' OR '1'='1; DELETE FROM rating;--"
    status, _, _ = post(stack, "/api/feedback", {"answer_id": answer["answer_id"], "rating": "bad", "sender": sender,
                                                 "reason": reason})
    assert status == 200
    [row] = stack["store"].ratings(answer["answer_id"])
    assert row["reason"] == reason and row["sender_id"] == sender  # stored verbatim, as data
    with sqlite3.connect(stack["tmp"] / "assistant.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"answer", "rating", "rating_history", "handoff"} <= tables and len(stack["store"].ratings()) > 1


def test_no_page_builds_html_from_data():
    """Every page renders text through textContent (common.js el()); none parses strings as HTML."""
    for js in (ROOT / "web" / "static").glob("*.js"):
        source = js.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{js.name} uses {sink}"
