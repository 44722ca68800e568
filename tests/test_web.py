"""The three web front ends in a real browser: Playwright for Python driving Debian's chromium
(/usr/bin/chromium, never a downloaded browser) against the real assistant (Rasa + action
server), the voice gateway and the web server, all on spare ports.

Runs when ASSISTANT_MODEL names a trained model and /usr/bin/chromium exists. Screenshots of each
page are saved to tests/web_artifacts/.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium not found (apt-get install -y chromium chromium-driver)", allow_module_level=True)
if not os.environ.get("ASSISTANT_MODEL"):
    pytest.skip("set ASSISTANT_MODEL to a trained model (make test does) to run the browser tests",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -r web/requirements.txt")

from assistant.admin import Credentials  # noqa: E402
from conftest import free_port  # noqa: E402
from test_assistant_e2e import INDEX, ROOT, _wait, assistant, say  # noqa: E402,F401 - assistant is a fixture

ARTIFACTS = ROOT / "tests" / "web_artifacts"
CLIP = ROOT.parent / "shared" / "audio" / "audio" / "paddlespeech__zh.wav"
TOKEN = "test-agent-token"
PHONE = {"width": 375, "height": 740}
ADMINS = {"alice": ("alice password 1", "admin"), "bob": ("bob password 22", "admin"),
          "vera": ("viewer password 3", "viewer")}
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
         "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={CLIP}"]


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def services(assistant):
    tmp = assistant["tmp"]
    voice_port, web_port = free_port(), free_port()
    voice = subprocess.Popen([sys.executable, "-m", "voice", "serve", "--port", str(voice_port),
                              "--rasa-url", assistant["url"]], cwd=ROOT,
                             stdout=open(tmp / "voice.out", "ab"), stderr=subprocess.STDOUT)
    # 工单: the category model trained on the bundled examples (a few seconds), the store the action
    # server files into, with the session's ASSISTANT_TICKET_KEY (conftest) or else a random key
    # (ASSISTANT_DEV=1), and no delivery URL (filed 工单 stay pending)
    subprocess.run([sys.executable, "-m", "assistant.intake", "train", "--out", str(tmp / "intake")], cwd=ROOT,
                   check=True, stdout=subprocess.DEVNULL)
    credentials = Credentials(tmp / "admins.txt")  # the console's two administrators and a viewer
    for name, (password, role) in ADMINS.items():
        credentials.add(name, password, role)
    env = dict(os.environ, COPILOT_TOKEN=TOKEN, ASSISTANT_STORE=str(tmp / "assistant.db"), ASSISTANT_INDEX=str(INDEX),
               ASSISTANT_DEV="1", ASSISTANT_TICKETS=str(tmp / "tickets.db"), ASSISTANT_INTAKE_MODEL=str(tmp / "intake"),
               ASSISTANT_ADMINS=str(credentials.path),
               # this module signs in to the copilot and the console more than the default 10 times
               # per 10 minutes that one address may (the limit itself: tests/test_web_server.py)
               ASSISTANT_LIMIT_LOGIN_ADDRESS="60/600")
    env.pop("ASSISTANT_TICKET_URL", None)
    web = subprocess.Popen([sys.executable, "-m", "web", "--port", str(web_port), "--rasa-url", assistant["url"],
                            "--voice-url", f"http://127.0.0.1:{voice_port}"], cwd=ROOT, env=env,
                           stdout=open(tmp / "web.out", "ab"), stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{web_port}/healthz", web, 60)
        _wait(f"http://127.0.0.1:{voice_port}/healthz", voice, 180)
        yield {**assistant, "web": f"http://127.0.0.1:{web_port}"}
    finally:
        _stop(web)
        _stop(voice)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def phone(browser, services):
    ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="zh-CN", permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    yield page
    ctx.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def send_and_wait(page, action) -> None:
    """Do something that sends a chat turn, then wait for the reply to be rendered."""
    n = page.locator(".msg.bot").count()
    action()
    page.wait_for_function(
        "n => document.querySelectorAll('.msg.bot').length > n && document.getElementById('status').textContent === ''",
        arg=n, timeout=90_000)


def chat_log(page) -> list[dict]:
    return json.loads(page.evaluate("localStorage.getItem('qp.chat.log')") or "[]")


# ---------------------------------------------------------------- citizen chat

def test_chat_answer_with_sources_rating_and_history(phone, services):
    page = phone
    page.goto(services["web"] + "/chat")
    send_and_wait(page, lambda: (page.fill("#text", "开个小饭店要准备啥"), page.press("#text", "Enter")))
    answer = page.locator(".msg.bot").last
    assert "根据《食品经营许可" in answer.locator(".bubble").inner_text()
    answer.locator(".sources summary").click()
    assert "食品经营许可" in answer.locator(".sources li").first.inner_text()
    assert page.locator(".chips .chip").count() >= 1  # follow-up quick replies
    shot(page, "chat_answer")

    # 差评 with a reason, stored with the answer id and the doc ids shown
    answer.locator(".rate .bad").click()
    answer.locator(".rate form input").fill("没说清楚在哪办")
    answer.locator(".rate form button").click()
    page.wait_for_selector(".msg.bot .rate .done")
    bot = [m for m in chat_log(page) if m.get("custom", {}) and m["custom"].get("answer_id")][-1]
    [row] = services["store"].ratings(bot["custom"]["answer_id"])
    assert row["rating"] == "bad" and row["reason"] == "没说清楚在哪办"
    assert "sp-shipin-jingying" in row["doc_ids"]
    shot(page, "chat_rated")

    # history and sender survive a reload
    sender = page.evaluate("localStorage.getItem('qp.chat.sender')")
    page.reload()
    page.wait_for_selector(".msg.bot .sources")
    assert page.evaluate("localStorage.getItem('qp.chat.sender')") == sender
    assert page.locator(".msg.user").first.inner_text() == "开个小饭店要准备啥"
    assert page.locator(".rate .done").count() == 1  # the rating is remembered too


def test_reply_text_is_never_html(phone, services):
    page = phone
    page.goto(services["web"] + "/chat")
    send_and_wait(page, lambda: (page.fill("#text", "<img src=x onerror=alert(1)>居住证怎么办"),
                                 page.press("#text", "Enter")))
    assert page.locator("#log img").count() == 0
    assert "<img" in page.locator(".msg.user").last.inner_text()


COMPANY_ANSWERS = {"company_type": "有限责任公司", "in_qingpu": "是", "need_seal": "是", "need_invoice": "是",
                   "hire_staff": "是"}


def test_chat_company_opening_flow_ends_with_a_copyable_checklist(phone, services):
    page = phone
    page.goto(services["web"] + "/chat")
    send_and_wait(page, lambda: (page.fill("#text", "我想开公司"), page.press("#text", "Enter")))
    typed = False
    for _ in range(12):
        if page.locator(".checklist").count():
            break
        asked = next((m["custom"] for m in reversed(chat_log(page)) if (m.get("custom") or {}).get("slot")), None)
        assert asked, "no question and no checklist: " + page.locator("#log").inner_text()
        reply = COMPANY_ANSWERS[asked["slot"]]
        chip = page.locator(".chips .chip", has_text=reply)
        if chip.count() and not (asked["slot"] == "in_qingpu" and not typed):
            send_and_wait(page, lambda: chip.first.click())
        else:  # type one answer in words, as a citizen would
            typed = True
            words = "在青浦区" if asked["slot"] == "in_qingpu" else reply
            send_and_wait(page, lambda: (page.fill("#text", words), page.press("#text", "Enter")))
    card = page.locator(".checklist")
    card.wait_for()
    assert "开办企业" in card.locator("h3").inner_text()
    assert card.locator("ol li").count() >= 3  # materials and steps as lists
    card.locator("button.copy").click()
    page.wait_for_function("() => document.querySelector('.checklist .copy').textContent === '已复制'")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "需要准备的材料" in copied and "开办企业" in copied
    shot(page, "chat_checklist")


# ---------------------------------------------------------------- copilot

def _get_status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_copilot_refuses_without_token(services):
    base = services["web"]
    for path in ("/copilot", "/api/copilot/guides?q=" + urllib.parse.quote("社保卡"), "/api/copilot/handoffs"):
        assert _get_status(base + path) == 401
        assert _get_status(base + path, {"Authorization": "Bearer wrong"}) == 401
    assert _get_status(base + "/api/copilot/handoffs", {"Authorization": f"Bearer {TOKEN}"}) == 200


def test_copilot_updates_from_typed_caller_text(browser, services):
    say(services, "web-handoff-citizen", "孩子刚出生户口怎么报")
    say(services, "web-handoff-citizen", "转人工")
    # a stored summary with markup in every field (as a future writer might leave it) shows as text
    xss = "<img src=x onerror=\"document.title='pwned'\">"
    services["store"].add_handoff("web-xss", {"headline": xss, "questions": [xss], "guides_shown": [xss], "slots": {}})
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN",
                              permissions=["clipboard-read", "clipboard-write"])
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    try:
        resp = page.goto(services["web"] + "/copilot")
        assert resp.status == 401 and page.locator("input[name=token]").count() == 1
        shot(page, "copilot_login")
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("#caller")
        page.wait_for_selector(".handoff")
        assert "户口" in page.locator("#handoffs").inner_text()
        assert "<img src=x" in page.locator("#handoffs").inner_text()
        assert page.locator("#handoffs img").count() == 0 and page.title() != "pwned"

        page.fill("#caller", "我想开公司")
        page.press("#caller", "Enter")
        page.wait_for_selector(".guide")
        page.wait_for_function("() => !document.getElementById('suggest').textContent.startsWith('（')")
        guides = page.locator("#guides").inner_text()
        assert "申请材料" in guides and "办理方式和地点" in guides
        assert page.locator("#bundle .qa tr").count() == 1
        assert "待回答" in page.locator("#bundle").inner_text()

        page.fill("#caller", "有限责任公司")
        page.press("#caller", "Enter")
        page.wait_for_function("() => document.querySelectorAll('#bundle .qa tr').length >= 2")
        assert "有限责任公司" in page.locator("#bundle .qa tr").first.inner_text()
        suggestion = page.locator("#suggest").inner_text()
        assert suggestion
        page.click("#copy")
        page.wait_for_function("() => document.getElementById('copy').textContent === '已复制'")
        assert page.evaluate("navigator.clipboard.readText()") == page.evaluate(
            "document.getElementById('suggest').textContent")
        shot(page, "copilot")
    finally:
        ctx.close()


def copilot_session(browser, services):
    """A browser context signed in to the copilot at 1440 px: (context, page)."""
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(services["web"] + "/copilot")
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#caller")
    return ctx, page


def test_copilot_follows_the_call_and_speaks_as_the_hotline(browser, services):
    ctx, page = copilot_session(browser, services)
    try:
        page.fill("#caller", "营业执照怎么办")
        page.press("#caller", "Enter")
        page.wait_for_function("() => document.getElementById('suggest').textContent.includes('营业执照')"
                               " || document.getElementById('suggest').textContent.includes('企业设立登记')")
        first = page.locator("#suggest").inner_text()
        page.fill("#caller", "要多久能拿到")
        page.press("#caller", "Enter")
        page.wait_for_function(f"() => document.getElementById('suggest').textContent !== {first!r}")
        page.wait_for_function("() => document.querySelectorAll('#said li').length === 2")
        suggestion = page.locator("#suggest").inner_text()
        assert "办理时限" in suggestion and ("企业设立登记" in suggestion or "一窗通" in suggestion)
        for text in (first, suggestion):
            assert "拨打" not in text and "12345" not in text
        top_guide = page.locator(".guide").first.inner_text()
        assert "企业设立登记" in top_guide or "一窗通" in top_guide
        shot(page, "copilot_follow_up")
    finally:
        ctx.close()


def test_copilot_listens_to_a_call_with_a_running_transcript(browser, services):
    """The fake microphone plays a 5 s clip in a loop: the running transcript grows as the
    server stitches its overlapping windows, and a finished sentence is analysed."""
    ctx, page = copilot_session(browser, services)
    try:
        page.click("#listen")
        page.wait_for_function("() => document.getElementById('live').textContent.includes('跑步')", timeout=90_000)
        page.wait_for_function("() => document.querySelectorAll('#said li').length >= 1", timeout=90_000)
        assert "跑步" in page.locator("#said li").first.inner_text()
        shot(page, "copilot_listening")
        page.click("#listen")  # stop: the rest is decoded and the call forgotten
        assert page.locator("#listen").inner_text() == "开始收听通话"
        live = page.locator("#live").inner_text()
        assert live.count("我认为跑步") >= 2, live  # the clip twice or more, not cut apart
    finally:
        ctx.close()


def test_copilot_drafts_and_files_a_ticket(browser, services):
    complaint = "盈浦街道XX小区门口的路灯坏了一个多月了，晚上很黑，老人差点摔倒，希望尽快修"
    summary = "市民反映盈浦街道XX小区门口路灯损坏一个多月，夜间无照明，老人险些摔倒，请尽快修复。"
    phone = "13957204816"
    ctx, page = copilot_session(browser, services)
    try:
        assert page.locator("#tk-form").is_hidden()
        page.wait_for_function("() => document.querySelectorAll('#tk-category option').length > 5")  # ticket-meta
        page.click("#tk-make")
        page.wait_for_function("() => document.getElementById('tk-result').textContent === '请先输入来电内容。'")

        page.fill("#caller", complaint)
        page.press("#caller", "Enter")
        page.wait_for_selector("#tk-form", state="visible")  # recognised as a 诉求: the draft fills the card
        assert page.input_value("#tk-type") == "投诉" and page.input_value("#tk-category") == "城乡建设"
        assert "城乡建设" in page.inner_text("#tk-scores") and "%" in page.inner_text("#tk-scores")
        assert "盈浦街道XX小区" in page.input_value("#tk-place") and "盈浦街道" in page.input_value("#tk-department")
        drafted = page.input_value("#tk-summary")
        assert "路灯" in drafted and len(drafted) <= 100 and page.input_value("#tk-urgency") == "一般"

        # the agent rewrites the summary; the next sentence re-drafts the rest, not the summary
        page.fill("#tk-summary", summary)
        page.fill("#caller", "昨天晚上我妈妈就在那里摔了一跤，腿都受伤了")
        page.press("#caller", "Enter")
        page.wait_for_function("() => document.getElementById('tk-urgency').value === '紧急'")
        assert page.input_value("#tk-summary") == summary

        page.check("#tk-callback")
        page.fill("#tk-contact", phone)
        page.click("#tk-submit")
        page.wait_for_function("() => document.getElementById('tk-result').textContent.startsWith('已登记工单 QP')")
        result = page.inner_text("#tk-result")
        ticket_id = re.search(r"QP\d{8}-\d{6}", result).group(0)
        assert "139****4816" in result and page.input_value("#tk-contact") == "139****4816"
        shot(page, "copilot_ticket")

        tmp = services["tmp"]
        with sqlite3.connect(tmp / "tickets.db") as db:
            row = db.execute("SELECT summary, urgency, callback, contact_enc, contact_masked FROM ticket WHERE id = ?",
                             (ticket_id,)).fetchone()
        assert row[0] == summary and row[1] == "紧急" and row[2] == 1 and row[3] and row[4] == "139****4816"
        raw = b"".join(p.read_bytes() for p in tmp.iterdir() if p.name.startswith("tickets.db"))
        assert phone.encode() not in raw and b"57204816" not in raw
        assert phone.encode() not in (tmp / "web.out").read_bytes()

        page.click("#newcall")  # 新来电 clears the card
        assert page.locator("#tk-form").is_hidden() and page.inner_text("#tk-result") == ""
        assert page.input_value("#tk-summary") == "" and page.input_value("#tk-contact") == ""
    finally:
        ctx.close()


# ---------------------------------------------------------------- kiosk

@pytest.fixture
def kiosk(browser, services):
    ctx = browser.new_context(viewport={"width": 1080, "height": 1500}, locale="zh-CN")
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    yield page
    ctx.close()


def test_kiosk_push_to_talk_with_fake_microphone(kiosk, services):
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not found (../shared comes with the project)")
    page = kiosk
    page.goto(services["web"] + "/kiosk?idle=300")
    shot(page, "kiosk_welcome")
    page.locator("#talk").hover()
    page.mouse.down()
    page.wait_for_function("() => document.getElementById('talk').classList.contains('rec')")
    page.wait_for_timeout(5500)  # the fake microphone plays the clip (about 5 s)
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('answer').textContent.length > 0", timeout=120_000)
    transcript = page.locator("#transcript").inner_text()
    assert "跑步" in transcript, transcript
    assert page.evaluate("window.kioskSpoken.length") >= 1  # read aloud (speechSynthesis)
    shot(page, "kiosk_answer")


def test_kiosk_idle_reset_clears_everything(kiosk, services):
    page = kiosk
    page.goto(services["web"] + "/kiosk?idle=4")
    page.fill("#text", "社保卡丢了怎么补办")
    page.press("#text", "Enter")
    page.wait_for_function("() => document.body.dataset.state === 'answered'", timeout=90_000)
    assert page.locator("#answer").inner_text().strip()
    shot(page, "kiosk_typed_answer")
    page.wait_for_function("() => document.body.dataset.state === 'welcome'", timeout=15_000)
    assert page.locator("#welcome").is_visible() and not page.locator("#turn").is_visible()
    assert page.locator("#answer").inner_text() == "" and page.locator("#transcript").inner_text() == ""
    shot(page, "kiosk_after_idle")



# ---------------------------------------------------------------- administrators' console

def web_post(services, path: str, body: dict) -> dict:
    req = urllib.request.Request(services["web"] + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=90) as r:
        return json.loads(r.read())


def web_post_agent(services, path: str, body: dict) -> dict:
    req = urllib.request.Request(services["web"] + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=90) as r:
        return json.loads(r.read())


def chat_turn(services, sender: str, text: str) -> dict | None:
    """One chat turn through the web server; the reply's answer payload (custom), if any."""
    replies = web_post(services, "/api/chat", {"sender": sender, "message": text})["replies"]
    return next((r["custom"] for r in replies if r.get("custom", {}).get("answer_id")), None)


def admin_session(browser, services, name: str):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN", accept_downloads=True)
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(services["web"] + "/admin")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", ADMINS[name][0])
    page.click("button[type=submit]")
    page.wait_for_selector("#cards .stat")
    return ctx, page


def store_figures(path: Path) -> dict[str, int]:
    """The overview's totals computed straight from the store (everything here is from today)."""
    with sqlite3.connect(path) as db:
        one = lambda sql: db.execute(sql).fetchone()[0] or 0  # noqa: E731
        return {"会话": one("SELECT COUNT(*) FROM (SELECT sender_key FROM answer UNION "
                          "SELECT sender_key FROM handoff WHERE sender_key IS NOT NULL)"),
                "提问": one("SELECT COUNT(*) FROM answer"), "有把握回答": one("SELECT SUM(confident) FROM answer"),
                "无把握或未能回答": one("SELECT SUM(1 - confident) FROM answer"), "转人工": one("SELECT COUNT(*) FROM handoff"),
                "好评": one("SELECT COUNT(*) FROM rating WHERE rating = 'good'"),
                "差评": one("SELECT COUNT(*) FROM rating WHERE rating = 'bad'")}


def cards(page) -> dict[str, int]:
    out = {}
    for c in page.locator("#cards .stat").all():
        out[c.locator(".label").inner_text()] = int(c.locator(".value").inner_text())
    return out


def test_admin_console_refuses_the_agent_token_and_a_wrong_password(browser, services):
    ctx = browser.new_context(viewport={"width": 1000, "height": 700}, locale="zh-CN")
    try:
        ctx.add_cookies([{"name": "copilot_token", "value": TOKEN, "url": services["web"]}])
        page = ctx.new_page()
        resp = page.goto(services["web"] + "/admin")
        assert resp.status == 401 and page.locator("input[name=password]").is_visible()
        assert _get_status(services["web"] + "/api/admin/overview", {"Authorization": f"Bearer {TOKEN}"}) == 401
        page.fill("input[name=name]", "alice")
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        page.wait_for_selector(".err")
        assert "用户名或密码不正确" in page.locator(".err").inner_text()
        assert not any(c["name"] == "admin_session" for c in ctx.cookies())
        shot(page, "admin_login_refused")
    finally:
        ctx.close()


def test_admin_overview_equals_the_stores(browser, services):
    # scripted conversations: answers, a 好评 and a 差评, a hand-off, an unanswerable question
    good = chat_turn(services, "adm-good", "结婚登记要带什么材料")
    web_post(services, "/api/feedback", {"answer_id": good["answer_id"], "rating": "good", "sender": "adm-good"})
    bad = chat_turn(services, "adm-bad", "公积金租房怎么提取")
    web_post(services, "/api/feedback", {"answer_id": bad["answer_id"], "rating": "bad", "sender": "adm-bad",
                                         "reason": "没说要带什么"})
    chat_turn(services, "adm-handoff", "孩子刚出生户口怎么报")
    chat_turn(services, "adm-handoff", "转人工")
    unsure = chat_turn(services, "adm-unsure", "我家猫最近不爱吃饭是怎么回事，要办什么手续吗")
    assert unsure is None or not unsure["confident"]
    ctx, page = admin_session(browser, services, "alice")
    try:
        expected = store_figures(services["tmp"] / "assistant.db")
        shown = cards(page)
        assert {k: shown[k] for k in expected} == expected
        assert expected["转人工"] >= 1 and expected["差评"] >= 1 and expected["无把握或未能回答"] >= 1
        page.wait_for_function("() => ['chart-answers', 'chart-ratings'].every(id => document.getElementById(id).naturalWidth > 0)")
        titles = page.locator("#guides tbody td:first-child").all_inner_texts()
        assert any("结婚登记" in t for t in titles)
        shot(page, "admin_overview")
    finally:
        ctx.close()


def _open_rating(page, question_part: str) -> None:
    page.click("#tabs button[data-view=ratings]")
    page.locator("#ratings tbody tr", has_text=question_part).first.click()
    page.wait_for_selector("#detail dl")


def _review(page, status: str, note: str, appeal: str | None = None, reply: str | None = None) -> None:
    page.select_option(".review select[name=status]", status)
    if appeal:
        page.select_option(".review select[name=appeal]", appeal)
    page.fill(".review textarea[name=note]", note)
    if reply:
        page.check(".review input[name=recheck]")
        page.fill(".review textarea[name=reply]", reply)
    page.click(".review button[type=submit]")
    page.wait_for_function("s => document.querySelector('#detail').textContent.includes('→ ' + s)", arg=status)


def test_admin_rectifies_a_bad_rating_and_the_citizen_sees_the_update(browser, services, phone):
    sender = "web-adm-rectify"
    bad = chat_turn(services, sender, "社保卡丢了怎么补办")
    web_post(services, "/api/feedback", {"answer_id": bad["answer_id"], "rating": "bad", "sender": sender,
                                         "reason": "没说在哪里补"})
    ctx, page = admin_session(browser, services, "alice")
    try:
        _open_rating(page, "社保卡丢了怎么补办")
        detail = page.locator("#detail").inner_text()
        assert "没说在哪里补" in detail and "社保卡丢了怎么补办" in detail and "《" in detail  # reason, question, sources
        _review(page, "整改中", "已转社保指南编辑补充补卡地点")
        _review(page, "已整改", "指南已补充补卡网点", reply="社保卡遗失后可在随申办挂失，并到就近社区事务受理服务中心补办。")
        trail = page.locator("#detail .trail li").all_inner_texts()
        assert len(trail) == 2 and all("alice" in t for t in trail) and "待整改 → 整改中" in trail[0]
        assert "待市民再次打开对话时推送" in page.locator("#detail").inner_text()
        shot(page, "admin_rating_rectified")
    finally:
        ctx.close()
    # the citizen opens the chat again with the same sender id: the corrected answer, rateable
    phone.goto(services["web"] + "/chat")
    phone.evaluate(f"localStorage.setItem('qp.chat.sender', {sender!r}); localStorage.removeItem('qp.chat.log')")
    phone.reload()
    phone.wait_for_selector(".msg.bot .rate .good")
    assert "就近社区事务受理服务中心补办" in phone.locator(".msg.bot").last.inner_text()
    phone.locator(".msg.bot").last.locator(".rate .good").click()
    phone.wait_for_selector(".msg.bot .rate .done")
    shot(phone, "chat_corrected_answer")
    phone.reload()
    phone.wait_for_selector(".msg.bot .rate .done")
    assert phone.locator(".msg.bot", has_text="已核实并更新答复").count() == 1  # shown once


def test_admin_appeal_is_decided_by_another_administrator(browser, services):
    sender = "web-adm-appeal"
    bad = chat_turn(services, sender, "居住证怎么办")
    web_post(services, "/api/feedback", {"answer_id": bad["answer_id"], "rating": "bad", "sender": sender})
    ctx, page = admin_session(browser, services, "alice")
    try:
        _open_rating(page, "居住证怎么办")
        _review(page, "申诉中", "答复与指南一致，属误评", appeal="误评")
        assert page.locator(".review select[name=status] option").all_inner_texts() == ["复核通过", "驳回"]
        page.select_option(".review select[name=status]", "复核通过")
        page.fill(".review textarea[name=note]", "自己复核")
        page.click(".review button[type=submit]")
        page.wait_for_function("() => document.querySelector('.review .err').textContent.includes('以外的管理员')")
    finally:
        ctx.close()
    ctx, page = admin_session(browser, services, "bob")
    try:
        excluded = cards(page)["申诉成立（不计入考核）"]
        _open_rating(page, "居住证怎么办")
        _review(page, "复核通过", "核实答复无误，不计入考核")
        trail = page.locator("#detail .trail li").all_inner_texts()
        assert "alice" in trail[0] and "申诉中" in trail[0] and "bob" in trail[1] and "复核通过" in trail[1]
        assert page.locator(".review").count() == 0  # a decided appeal is final
        shot(page, "admin_appeal_upheld")
        page.click("#tabs button[data-view=overview]")
        page.wait_for_function("n => [...document.querySelectorAll('#cards .stat')].some(c => "
                               "c.textContent.includes('申诉成立') && c.querySelector('.value').textContent == String(n))",
                               arg=excluded + 1)
    finally:
        ctx.close()
    ctx, page = admin_session(browser, services, "vera")  # a viewer reads, cannot change or export
    try:
        _open_rating(page, "居住证怎么办")
        assert "只读账号" in page.locator("#detail").inner_text() and page.locator(".review").count() == 0
        page.click("#tabs button[data-view=export]")
        assert page.locator("#export-ratings").get_attribute("href") is None
    finally:
        ctx.close()


def test_admin_gap_topic_from_unanswered_questions(browser, services):
    dogs = ["我想给家里的狗办个证", "养狗要去哪里登记", "犬只登记怎么弄", "狗狗办证需要什么材料"]
    for i, q in enumerate(dogs):
        chat_turn(services, f"adm-gap-{i}", q)
    ctx, page = admin_session(browser, services, "alice")
    try:
        page.click("#tabs button[data-view=gaps]")
        page.wait_for_selector("#gaps .topic")
        recorded = [q for (q,) in sqlite3.connect(services["tmp"] / "assistant.db").execute(
            "SELECT question FROM answer WHERE sender_id LIKE 'adm-gap-%' AND confident = 0")]
        assert len(recorded) >= 3, recorded  # answered without confidence or declined: gaps
        topics = page.locator("#gaps .topic").all()
        found = [sum(q in t.locator(".examples").inner_text() for q in recorded) for t in topics]
        topic = topics[found.index(max(found))]
        assert max(found) == len(recorded), [t.inner_text() for t in topics]  # one topic holds them all
        assert f"{len(recorded)} 次" in topic.locator(".count").inner_text()
        topic.locator("button", has_text="查看相近指南").click()
        topic.locator(".near li").first.wait_for()
        shot(page, "admin_gaps")
    finally:
        ctx.close()


def test_admin_ticket_counts_equal_the_ticket_store(browser, services):
    draft = web_post_agent(services, "/api/copilot/ticket/draft", {"text": "赵巷镇某小区门口垃圾桶满了三天没人清运，臭得不行"})
    web_post_agent(services, "/api/copilot/ticket", {"draft": {**draft["draft"], "urgency": "一般"}, "contact": "",
                                                     "callback": False, "sender": "adm-ticket"})
    with sqlite3.connect(services["tmp"] / "tickets.db") as db:
        total = db.execute("SELECT COUNT(*) FROM ticket").fetchone()[0]
        categories = dict(db.execute("SELECT COALESCE(category, '未分类'), COUNT(*) FROM ticket GROUP BY 1"))
        pending = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    ctx, page = admin_session(browser, services, "alice")
    try:
        page.click("#tabs button[data-view=tickets]")
        page.wait_for_selector("#ticket-tables .card")
        numbers = {c.locator(".label").inner_text(): int(c.locator(".value").inner_text())
                   for c in page.locator("#ticket-cards .stat").all()}
        assert total >= 1 and numbers["工单"] == total and numbers["待投递"] == pending
        by_category = page.locator("#ticket-tables .card", has_text="按类别").locator("tr").all_inner_texts()
        assert {r.split("\t")[0]: int(r.split("\t")[1]) for r in by_category} == categories
        shot(page, "admin_tickets")
    finally:
        ctx.close()


def test_admin_csv_export_rows_match_the_store(browser, services):
    ctx, page = admin_session(browser, services, "alice")
    try:
        page.click("#tabs button[data-view=export]")
        shot(page, "admin_export")
        with page.expect_download() as info:
            page.click("#export-ratings")
        data = Path(info.value.path()).read_bytes()
        assert data.startswith("\ufeff".encode())
        import csv
        import io

        rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))[1:]
        with sqlite3.connect(services["tmp"] / "assistant.db") as db:
            stored = db.execute("SELECT a.question, r.rating FROM rating r JOIN answer a USING (answer_id) "
                                "ORDER BY r.first_at").fetchall()
        assert [(r[2], r[1]) for r in rows] == [(q, "好评" if v == "good" else "差评") for q, v in stored]
    finally:
        ctx.close()
