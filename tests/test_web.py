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

from conftest import free_port  # noqa: E402
from test_assistant_e2e import INDEX, ROOT, _wait, assistant, say  # noqa: E402,F401 - assistant is a fixture

ARTIFACTS = ROOT / "tests" / "web_artifacts"
CLIP = ROOT.parent / "shared" / "audio" / "audio" / "paddlespeech__zh.wav"
TOKEN = "test-agent-token"
PHONE = {"width": 375, "height": 740}
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
    env = dict(os.environ, COPILOT_TOKEN=TOKEN, ASSISTANT_STORE=str(tmp / "assistant.db"), ASSISTANT_INDEX=str(INDEX),
               ASSISTANT_DEV="1", ASSISTANT_TICKETS=str(tmp / "tickets.db"), ASSISTANT_INTAKE_MODEL=str(tmp / "intake"))
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
