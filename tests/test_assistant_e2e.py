"""The whole assistant over HTTP: the trained Rasa model, the action server and the stores.

Runs when ASSISTANT_MODEL names a trained model (`make test` trains one and sets it); the
services start on spare ports with their own tracker database, store and logs.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assistant.stores import Store
from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("ASSISTANT_MODEL")
INDEX = ROOT / "build" / "indexes" / "kb"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
PII = ("310229199001011234", "13812345678", "6217000010001234567")



def _get(url: str, timeout: float = 5) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _wait(url: str, proc: subprocess.Popen, seconds: int) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {seconds} s")


def start_action_server(tmp: Path, index: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, ASSISTANT_INDEX=str(index), ASSISTANT_STORE=str(tmp / "assistant.db"),
               ASSISTANT_TICKETS=str(tmp / "tickets.db"))
    log = open(tmp / "actions.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "actions.server", "--port", str(port),
                             "--log-file", str(tmp / "actions.log")], cwd=ROOT, env=env, stdout=log, stderr=log)
    _wait(f"http://127.0.0.1:{port}/health", proc, 90)
    return proc


@pytest.fixture(scope="module")
def assistant(tmp_path_factory):
    if not MODEL:
        pytest.skip("set ASSISTANT_MODEL to a trained model (make test does) to run the assistant")
    tmp = tmp_path_factory.mktemp("assistant")
    action_port, rasa_port = free_port(), free_port()
    (tmp / "endpoints.yml").write_text(
        f'action_endpoint:\n  url: "http://127.0.0.1:{action_port}/webhook"\n'
        # the tracker store of `make run` (endpoints.yml)
        f'tracker_store:\n  type: bot.tracker_store.ResilientSQLTrackerStore\n  dialect: "sqlite"\n'
        f'  db: "{tmp / "tracker.db"}"\n', encoding="utf-8")
    actions = start_action_server(tmp, INDEX, action_port)
    log = open(tmp / "rasa.out", "ab")
    rasa = subprocess.Popen(
        [str(RASA), "run", "--model", MODEL, "--port", str(rasa_port), "--credentials", "credentials.yml",
         "--endpoints", str(tmp / "endpoints.yml"), "--log-file", str(tmp / "rasa.log")],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), ASSISTANT_REPLY_TIMEOUT="10",
                            ASSISTANT_TICKETS=str(tmp / "tickets.db")), stdout=log, stderr=log)
    try:
        _wait(f"http://127.0.0.1:{rasa_port}/", rasa, 240)
        yield {"url": f"http://127.0.0.1:{rasa_port}", "tmp": tmp, "actions": actions,
               "action_port": action_port, "store": Store(tmp / "assistant.db")}
    finally:
        for p in (rasa, actions):
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def say(assistant, sender: str, text: str, timeout: float = 60) -> list[dict]:
    body = json.dumps({"sender": sender, "message": text}).encode()
    req = urllib.request.Request(assistant["url"] + "/webhooks/rest/webhook", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def texts(replies: list[dict]) -> str:
    return "\n".join(r.get("text", "") for r in replies)


def test_guide_question_gets_a_cited_answer_with_payload(assistant):
    replies = say(assistant, "e2e-guide", "开个小饭店要准备啥")
    assert "根据《食品经营许可" in texts(replies)
    custom = next(r["custom"] for r in replies if "custom" in r)
    assert custom["sources"][0]["doc_id"] == "sp-shipin-jingying" and custom["answer_id"]
    assert any(r.get("buttons") for r in replies)


def test_low_confidence_answer_offers_12345(assistant):
    replies = say(assistant, "e2e-low", "我家猫最近不爱吃饭是怎么回事，要办什么手续吗")
    assert "12345" in texts(replies)


def test_greeting_and_bot_challenge(assistant):
    assert "智能助手" in texts(say(assistant, "e2e-chat", "你好"))
    assert "不是真人" in texts(say(assistant, "e2e-chat", "你是机器人吗"))


def test_bad_rating_is_stored_masked_and_offers_a_person(assistant):
    sender = "e2e-rating"
    replies = say(assistant, sender, "公积金租房怎么提取")
    answer_id = next(r["custom"]["answer_id"] for r in replies if "custom" in r)
    replies = say(assistant, sender, "差评，说得不清楚，有事打我电话13812345678")
    assert "转人工" in texts(replies)
    [row] = assistant["store"].ratings(answer_id)
    assert row["rating"] == "bad" and "gjj-tiqu-zufang" in row["doc_ids"]
    assert "13812345678" not in row["reason"] and "138****5678" in row["reason"]
    replies = say(assistant, sender, "好的")
    assert "转人工" in texts(replies)
    assert assistant["store"].latest_handoff(sender)["guides_shown"]


def test_good_rating_is_stored(assistant):
    sender = "e2e-good"
    replies = say(assistant, sender, "结婚登记要带什么材料")
    answer_id = next(r["custom"]["answer_id"] for r in replies if "custom" in r)
    say(assistant, sender, "好评，很有帮助")
    assert [r["rating"] for r in assistant["store"].ratings(answer_id)] == ["good"]


def test_handoff_summary_for_agents(assistant):
    sender = "e2e-handoff"
    say(assistant, sender, "孩子刚出生户口怎么报")
    replies = say(assistant, sender, "转人工")
    assert "12345" in texts(replies)
    summary = assistant["store"].latest_handoff(sender)
    assert "户口" in " ".join(summary["questions"]) and summary["guides_shown"]


def test_personal_data_never_stored_or_logged_in_clear(assistant):
    sender = "e2e-pii"
    say(assistant, sender, f"我身份证{PII[0]}，手机{PII[1]}，社保卡丢了怎么补办")
    say(assistant, sender, f"银行卡{PII[2]}能绑定社保卡吗")
    say(assistant, sender, f"差评 我手机{PII[1]}")
    say(assistant, sender, "转人工")
    tmp = assistant["tmp"]
    with sqlite3.connect(tmp / "tracker.db") as db:
        rows = [json.loads(data) for (data,) in db.execute("SELECT data FROM events")]
    tracker_dump = json.dumps(rows, ensure_ascii=False)  # stored ASCII-escaped: decode first
    assert "社保卡" in tracker_dump  # the conversation was stored...
    stores = {"tracker": tracker_dump, "assistant.db": (tmp / "assistant.db").read_bytes().decode("utf-8", "ignore")}
    for name in ("rasa.log", "rasa.out", "actions.log", "actions.out"):
        if (tmp / name).exists():
            stores[name] = (tmp / name).read_text(encoding="utf-8", errors="ignore")
    for name, content in stores.items():
        for secret in PII:
            assert secret not in content, f"{secret} found in clear in {name}"


def socket_turn(url: str, session_id: str, text: str, until: str, seconds: float = 60) -> list[dict]:
    """One user message over socket.io; the bot's messages until one contains `until`."""
    import asyncio

    import socketio

    replies: list[dict] = []

    async def talk() -> None:
        client = socketio.AsyncClient()
        answered = asyncio.Event()

        @client.on("bot_uttered")
        async def on_bot(data):
            replies.append(data)
            if until in (data.get("text") or ""):
                answered.set()

        await client.connect(url, socketio_path="/socket.io")
        await client.emit("session_request", {"session_id": session_id})
        await asyncio.sleep(0.5)
        await client.emit("user_uttered", {"message": text, "session_id": session_id})
        try:
            await asyncio.wait_for(answered.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass
        finally:
            await client.disconnect()

    asyncio.run(talk())
    return replies


def test_socketio_channel_answers_and_masks(assistant):
    import uuid

    session_id = f"e2e-socket-{uuid.uuid4().hex[:8]}"
    replies = socket_turn(assistant["url"], session_id, f"我手机{PII[1]}，开个小饭店要准备啥", "根据《")
    assert any("根据《食品经营许可" in (r.get("text") or "") for r in replies)
    stored = ""
    for _ in range(40):  # socket.io replies go out before the turn's events are saved
        with sqlite3.connect(assistant["tmp"] / "tracker.db") as db:
            stored = json.dumps([json.loads(d) for (d,) in db.execute(
                "SELECT data FROM events WHERE sender_id = ?", (session_id,))], ensure_ascii=False)
        if "小饭店" in stored:
            break
        time.sleep(0.25)
    assert "小饭店" in stored and PII[1] not in stored and "138****5678" in stored


@pytest.mark.parametrize("message", ["", "😀😀😀", "办" * 5000, "<script>alert('x')</script>怎么办居住证",
                                     "開辦企業要準備什麼材料", "how to apply 营业执照"])
def test_bad_input_gets_a_polite_reply(assistant, message):
    replies = say(assistant, "e2e-bad", message)
    assert replies and all("<script" not in r.get("text", "") for r in replies)


# ---------------------------------------------------------------- 一件事 forms, live

from bundle_paths import answer_text, cases, start_text  # noqa: E402

from assistant.bundles import load_bundles  # noqa: E402

BUNDLES = load_bundles()


def _custom(replies: list[dict], key: str):
    return next((r["custom"] for r in replies if key in (r.get("custom") or {})), None)


def walk_bundle(assistant, sender: str, bundle_id: str, answers: dict) -> dict:
    """Start the check, answer whatever the form asks from `answers`, return the outcome."""
    bundle = BUNDLES[bundle_id]
    replies = say(assistant, sender, start_text(bundle))
    for _ in range(15):
        outcome = _custom(replies, "bundle_outcome")
        if outcome:
            return outcome["bundle_outcome"]
        asked = _custom(replies, "slot")
        assert asked, f"no question and no outcome: {texts(replies)}"
        question = next(q for q in bundle.questions if q.slot == asked["slot"])
        replies = say(assistant, sender, answer_text(question, answers[question.slot]).text)
    raise AssertionError("the form did not end")


@pytest.mark.parametrize("bundle_id,rule,answers",
                         [(b, r, a) for b in sorted(BUNDLES) for r, a in cases(b)],
                         ids=lambda x: x if isinstance(x, str) else "")
def test_every_bundle_rule_through_the_assistant(assistant, bundle_id, rule, answers):
    outcome = walk_bundle(assistant, f"e2e-{bundle_id}-{rule}", bundle_id, answers)
    assert outcome["rule"] == rule and outcome["explanation"]
    if outcome["status"] == "eligible":  # a tailored checklist with where to go
        assert outcome["checklist"]["steps"] and outcome["checklist"]["where"]


def test_bundle_correction_interruption_and_cancel(assistant):
    sender = "e2e-bundle-flow"
    replies = say(assistant, sender, "孩子出生了，我想办出生一件事")
    assert _custom(replies, "slot")["slot"] == "parent_hukou"
    say(assistant, sender, "外地户口")
    replies = say(assistant, sender, "刚才说错了，是上海户口")
    assert "本市户籍" in texts(replies) and _custom(replies, "slot")["slot"] != "parent_permit"
    asked = _custom(replies, "slot")["slot"]
    replies = say(assistant, sender, "社保卡丢了怎么补办")
    assert "根据《" in texts(replies) and _custom(replies, "slot")["slot"] == asked
    replies = say(assistant, sender, "不办了")
    assert "已停止" in texts(replies)
    assert "智能助手" in texts(say(assistant, sender, "你好"))


def test_company_opening_starts_the_yichuangtong_check(assistant):
    replies = say(assistant, "e2e-company", "我想开公司")
    assert "开办企业" in texts(replies) and _custom(replies, "slot")["bundle"] == "kaiban-qiye"


# ---------------------------------------------------------------- voice, live

SHARED_AUDIO = ROOT.parent / "shared" / "audio" / "audio"


def test_voice_turn_through_the_gateway_to_the_assistant(assistant, tmp_path):
    clip = SHARED_AUDIO / "paddlespeech__zh.wav"
    if not clip.exists():
        pytest.skip(f"{clip} not found (../shared comes with the project)")
    port = free_port()
    log = open(tmp_path / "voice.out", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "voice", "serve", "--port", str(port), "--rasa-url", assistant["url"]],
                            cwd=ROOT, stdout=log, stderr=log)
    try:
        _wait(f"http://127.0.0.1:{port}/healthz", proc, 120)
        status, health = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200 and health["rasa"]["reachable"]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/voice?sender=e2e-voice", clip.read_bytes(),
                                     {"Content-Type": "audio/wav"})
        with urllib.request.urlopen(req, timeout=120) as r:
            body = json.loads(r.read())
        assert "跑步" in body["transcript"] and body["replies"]  # the spoken sentence reached Rasa
        assert body["timings"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)


# ---------------------------------------------------------------- conversation context

def _turn(replies: list[dict]) -> dict:
    return next(((r.get("custom") or {}).get("turn") for r in replies if (r.get("custom") or {}).get("turn")), {})


def say_meta(assistant, sender: str, text: str, metadata: dict) -> list[dict]:
    body = json.dumps({"sender": sender, "message": text, "metadata": metadata}).encode()
    req = urllib.request.Request(assistant["url"] + "/webhooks/rest/webhook", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def test_follow_up_is_answered_from_the_first_turns_guide(assistant):
    first = _turn(say(assistant, "e2e-follow", "营业执照怎么办"))
    then = _turn(say(assistant, "e2e-follow", "要多久能拿到"))
    assert first["doc_id"] in ("qy-sheli-dengji", "qy-yichuangtong")
    assert (then["mode"], then["doc_id"], then["section"]) == ("followup", first["doc_id"], "办理时限和收费")
    fee = say(assistant, "e2e-follow", "收钱不")
    assert _turn(fee)["doc_id"] == first["doc_id"] and "收费标准" in texts(fee).split("：", 1)[1][:12]


def test_switch_keeps_the_aspect_and_clarification_button_continues(assistant):
    assert _turn(say(assistant, "e2e-switch", "结婚登记要带什么材料"))["doc_id"] == "hy-jiehun"
    switched = _turn(say(assistant, "e2e-switch", "那离婚呢"))
    assert (switched["mode"], switched["doc_id"], switched["section"]) == ("switch", "hy-lihun", "申请材料")
    fresh = _turn(say(assistant, "e2e-switch", "对了，我还想开个小饭店，要办什么许可证"))
    assert (fresh["kind"], fresh["doc_id"]) == ("answer", "sp-shipin-jingying")
    ask = say(assistant, "e2e-clarify", "社保卡怎么办")
    assert _turn(ask)["kind"] == "clarify" and "还是" in texts(ask)
    button = next(b for r in ask for b in r.get("buttons") or [] if "挂失" in b["title"])
    chosen = _turn(say(assistant, "e2e-clarify", button["payload"]))
    assert (chosen["kind"], chosen["doc_id"]) == ("answer", "sbk-guashi-buhuan")
    # the same payload replayed in a new conversation (say, after a restart) still answers it
    assert _turn(say(assistant, "e2e-replay", button["payload"]))["doc_id"] == "sbk-guashi-buhuan"


def test_context_survives_an_action_server_restart(assistant):
    assert _turn(say(assistant, "e2e-restart", "我想办个居住证"))["doc_id"] == "jzz-juzhuzheng"
    assistant["actions"].terminate()
    assistant["actions"].wait(timeout=20)
    assistant["actions"] = start_action_server(assistant["tmp"], INDEX, assistant["action_port"])
    _wait(f"http://127.0.0.1:{assistant['action_port']}/ready", assistant["actions"], 90)
    then = _turn(say(assistant, "e2e-restart", "需要带什么材料"))
    assert (then["doc_id"], then["section"]) == ("jzz-juzhuzheng", "申请材料")


@pytest.mark.parametrize("first,message,kind", [
    (None, "要多久", "ask"), (None, "那个呢", "ask"), ("结婚登记怎么办", "要帶什麼材料", "answer"),
    ("结婚登记怎么办", "是这样的，我和我对象都是外地户口，在青浦上班三年多了，房子是租的，两边父母都不在上海，"
                      "单位也开不了什么证明，我们下个月想去把证领了，听说现在全国都能办，我就想问问这个"
                      "从去了到拿到证一般要多久，当天能不能拿到", "answer"),
])
def test_follow_up_bad_input(assistant, first, message, kind):
    sender = f"e2e-fbad-{abs(hash((first, message))) % 10**8}"
    if first:
        say(assistant, sender, first)
    turn = _turn(say(assistant, sender, message))
    assert turn["kind"] == kind
    if kind == "answer":
        assert turn["doc_id"] == "hy-jiehun"


def test_copilot_audience_gets_a_reply_for_the_hotline_itself(assistant):
    replies = say_meta(assistant, "e2e-agent", "我家猫最近不爱吃饭是怎么回事，要办什么手续吗", {"audience": "agent"})
    assert texts(replies) and "拨打" not in texts(replies)
    replies = say_meta(assistant, "e2e-agent", "结婚登记要带什么材料", {"audience": "agent"})
    assert texts(replies).startswith("您好，根据《结婚登记》") and "12345" not in texts(replies)


# ---------------------------------------------------------------- 12345 诉求 intake

def _ticket(replies: list[dict]) -> dict:
    return next(((r.get("custom") or {}).get("ticket") for r in replies if (r.get("custom") or {}).get("ticket")), {})


def test_complaint_is_drafted_confirmed_and_filed_with_an_encrypted_callback(assistant):
    sender = "e2e-ticket"
    drafted = say(assistant, sender, "盈浦街道XX小区门口的路灯坏了一个多月了，晚上很黑，老人差点摔倒，希望尽快修")
    draft = _ticket(drafted)
    assert draft["summary"] and draft["department"] and "XX小区" in (draft["place"] or "")
    assert "确认提交" in texts(drafted)
    with_number = say(assistant, sender, "需要回电，我的电话13912345678")
    assert "139****5678" in texts(with_number)
    filed = _ticket(say(assistant, sender, "确认提交"))
    assert filed["id"].startswith("QP") and filed["callback"] and filed["contact_masked"] == "139****5678"
    # the number is in no store or log in clear: the tracker and the 工单 store included
    for path in ("tracker.db", "tickets.db", "rasa.log", "actions.log"):
        f = assistant["tmp"] / path
        assert not f.exists() or b"13912345678" not in f.read_bytes(), path
    status = say(assistant, "e2e-ticket-status", f"帮我查下工单 {filed['id']} 办得怎么样了")
    assert filed["id"] in texts(status) and "已受理" in texts(status)


def test_cancel_and_a_question_with_a_complaint(assistant):
    assert _ticket(say(assistant, "e2e-ticket-cancel", "我要举报，小区旁边有个黑作坊晚上偷偷排污水，河都变黑了"))
    cancelled = say(assistant, "e2e-ticket-cancel", "算了不投诉了")
    assert "不提交" in texts(cancelled) and not _ticket(cancelled).get("id")
    both = say(assistant, "e2e-ticket-both", "楼下新开的饭店油烟很大，我想投诉；另外我自己也想开个小吃店，要办什么证")
    assert _ticket(both) and "《食品经营许可" in texts(both)


def test_short_complaints_as_the_issue_gives_them_are_drafted(assistant):
    for i, text in enumerate(["楼下饭店油烟很大晚上还吵", "小区门口的路灯坏了一个月"]):
        assert _ticket(say(assistant, f"e2e-short-issue-{i}", text)).get("summary"), text


def test_plain_service_questions_get_no_ticket(assistant):
    for i, q in enumerate(["开个小饭店要准备啥", "社保卡丢了怎么补", "公积金租房怎么提取", "结婚登记要带什么材料"]):
        assert not _ticket(say(assistant, f"e2e-noticket-{i}", q)), q


# ---------------------------------------------------------------- failures (last: stops the action server)

def test_action_server_down_gives_a_polite_reply_quickly(assistant):
    assistant["actions"].terminate()
    assistant["actions"].wait(timeout=20)
    started = time.time()
    replies = say(assistant, "e2e-down", "居住证在哪里办")
    assert "12345" in texts(replies)
    assert time.time() - started < 15


def test_action_server_down_socketio_caller_gets_the_polite_reply_too(assistant):
    assert assistant["actions"].poll() is not None  # stopped by the test above
    started = time.time()
    replies = socket_turn(assistant["url"], "e2e-socket-down", "居住证在哪里办", "12345", seconds=30)
    assert any("12345" in (r.get("text") or "") for r in replies), replies
    assert time.time() - started < 20


def test_missing_index_is_logged_and_reported_not_ready(tmp_path):
    port = free_port()
    proc = start_action_server(tmp_path, tmp_path / "no-index", port)
    try:
        status, body = _get(f"http://127.0.0.1:{port}/ready")
        assert status == 503 and not body["ready"] and str(tmp_path / "no-index") in body["problem"]
        assert _get(f"http://127.0.0.1:{port}/health")[0] == 200
        assert "index not ready" in (tmp_path / "actions.log").read_text(encoding="utf-8")
    finally:
        proc.terminate()
        proc.wait(timeout=20)

