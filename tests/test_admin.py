"""The console's core (assistant/admin) without the web: accounts, the 差评 workflow, the figures,
knowledge gaps and exports, on stores filled here."""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import stat
import zlib

import numpy as np
import pytest

from assistant.admin import Accounts, Admin, Credentials, LoginRefused, ReviewError, Reviews
from assistant.admin import accounts as acc
from assistant.admin import gaps
from assistant.admin.reports import Reports, to_csv
from assistant.admin.schema import day_bounds
from assistant.stores import Store

DAY1, DAY2 = dt.date(2026, 12, 1), dt.date(2026, 12, 2)
T1 = day_bounds(DAY1, DAY1)[0]  # 2026-12-01 00:00 China time
T2 = day_bounds(DAY2, DAY2)[0]
ALICE, BOB, VIEWER = Admin("alice", "admin"), Admin("bob", "admin"), Admin("vera", "viewer")


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "assistant.db")


@pytest.fixture
def accounts(store, tmp_path):
    creds = Credentials(tmp_path / "admins.txt")
    creds.add("alice", "correct horse battery", "admin")
    creds.add("vera", "viewer password 1", "viewer")
    return Accounts(store, creds)


# ---------------------------------------------------------------- accounts

def test_credentials_file_holds_salted_hashes_only(tmp_path):
    creds = Credentials(tmp_path / "admins.txt")
    creds.add("alice", "correct horse battery")
    creds.add("bob", "correct horse battery")
    text = creds.path.read_text()
    assert "correct horse" not in text
    (_, h1), (_, h2) = creds.read()["alice"], creds.read()["bob"]
    assert h1 != h2 and acc.check_password("correct horse battery", h1) and not acc.check_password("x", h1)
    assert stat.S_IMODE(os.stat(creds.path).st_mode) == 0o600
    for name, password, role in (("a", "long enough pw", "admin"), ("alice", "short", "admin"),
                                 ("alice", "long enough pw", "root"), ("bad name", "long enough pw", "admin")):
        with pytest.raises(ValueError):
            creds.add(name, password, role)


def test_login_session_and_expiry(accounts, store):
    admin, token = accounts.login("alice", "correct horse battery", now=1000.0)
    assert admin == ALICE
    assert accounts.session(token, now=1000.0 + acc.IDLE_S - 1) == ALICE
    raw = (store.path).read_bytes()
    assert token.encode() not in raw  # only its hash is stored
    assert accounts.session(token + "x", now=1001.0) is None
    # idle: a session used within the idle time lives on, up to the absolute limit
    t = 1000.0
    while t < 1000.0 + acc.ABSOLUTE_S - acc.IDLE_S:
        t += acc.IDLE_S - 60
        assert accounts.session(token, now=t) == ALICE
    assert accounts.session(token, now=1000.0 + acc.ABSOLUTE_S + 1) is None
    _, other = accounts.login("vera", "viewer password 1", now=5000.0)
    assert accounts.session(other, now=5000.0 + acc.IDLE_S + 1) is None  # unused for too long
    _, third = accounts.login("vera", "viewer password 1", now=6000.0)
    accounts.logout(third)
    assert accounts.session(third, now=6001.0) is None


def test_removed_account_loses_its_session(accounts):
    _, token = accounts.login("vera", "viewer password 1", now=100.0)
    accounts.credentials.path.write_text("".join(line + "\n" for line in accounts.credentials.path.read_text()
                                                 .splitlines() if not line.startswith("vera ")))
    assert accounts.session(token, now=101.0) is None


def test_failed_logins_lock_the_account_with_growing_waits(accounts):
    for i in range(acc.FREE_FAILURES):
        with pytest.raises(LoginRefused) as e:
            accounts.login("alice", f"wrong {i}", now=100.0)
        assert e.value.wait == 0
    with pytest.raises(LoginRefused) as e:  # locked: even the right password is refused, with the wait
        accounts.login("alice", "correct horse battery", now=100.5)
    assert e.value.wait > 0
    waits = []
    now = 200.0
    for i in range(4):
        with pytest.raises(LoginRefused):
            accounts.login("alice", "still wrong", now=now)
        with pytest.raises(LoginRefused) as e:
            accounts.login("alice", "still wrong", now=now + 0.01)
        waits.append(e.value.wait)
        now += 4000
    assert waits == sorted(waits) and waits[-1] > waits[0]
    assert accounts.login("alice", "correct horse battery", now=now)[0] == ALICE  # the wait is over
    with pytest.raises(LoginRefused) as e:  # and a success resets the count
        accounts.login("alice", "wrong again", now=now + 1)
    assert e.value.wait == 0
    with pytest.raises(LoginRefused):  # unknown names are refused the same way
        accounts.login("nobody", "correct horse battery", now=now)


# ---------------------------------------------------------------- 差评 workflow

def _bad(store: Store, answer_id: str, sender: str, question: str, at: float, doc: str = "marriage",
         confident: bool = True, text: str = "请携带身份证和户口簿。") -> None:
    store.record_answer(answer_id, sender, question, [doc], confident, "answer", at=at, text=text)
    store.rate(answer_id, sender, "bad", reason="没说清楚", at=at + 30)


def test_rectification_with_a_corrected_reply_for_the_citizen(store):
    _bad(store, "a1", "web-1", "结婚登记要带啥，我电话13812345678", T1 + 3600)
    reviews = Reviews(store)
    assert reviews.item("a1")["status"] == "待整改"
    assert "13812345678" not in reviews.item("a1")["question"]
    with pytest.raises(ReviewError, match="只读"):
        reviews.change(VIEWER, "a1", "整改中")
    with pytest.raises(ReviewError, match="只能改为"):
        reviews.change(ALICE, "a1", "复核通过", note="x")
    with pytest.raises(ReviewError, match="处理说明"):
        reviews.change(ALICE, "a1", "已整改")
    reviews.change(ALICE, "a1", "整改中", note="转指南编辑")
    item = reviews.change(BOB, "a1", "已整改", note="指南已补充户口簿要求，联系人13912345678",
                          reply="结婚登记需双方身份证、户口簿和三张合影照片。")
    assert item["status"] == "已整改" and item["reviewed_by"] == "bob" and "13912345678" not in item["note"]
    assert [(a["user"], a["from"], a["to"]) for a in item["audit"]] == [("alice", "待整改", "整改中"),
                                                                      ("bob", "整改中", "已整改")]
    assert item["next"] == ["整改中"]
    assert [n["delivered_at"] for n in item["notices"]] == [None]
    ids = iter(["n-1", "n-2", "n-3"])
    assert reviews.deliver("web-2", lambda: next(ids)) == []  # another conversation gets nothing
    [shown] = reviews.deliver("web-1", lambda: next(ids))
    assert shown["text"].startswith("结婚登记需") and shown["doc_ids"] == ["marriage"]
    assert shown["answer_id"] == "n-1" and store.answer("n-1")["kind"] == "recheck"
    assert reviews.deliver("web-1", lambda: next(ids)) == []  # shown once
    store.rate("n-1", "web-1", "good", at=T1 + 9000)  # the corrected answer can be rated again
    assert reviews.item("a1")["notices"][0]["delivered_at"] is not None


def test_appeal_is_decided_by_another_administrator(store):
    _bad(store, "a1", "web-1", "结婚登记要带啥", T1 + 3600)
    _bad(store, "a2", "web-2", "公积金怎么取", T1 + 7200, doc="fund-rent")
    reviews = Reviews(store)
    with pytest.raises(ReviewError, match="申诉类型"):
        reviews.change(ALICE, "a1", "申诉中", note="答复正确")
    reviews.change(ALICE, "a1", "申诉中", note="答复与指南一致，市民误点", appeal="误评")
    with pytest.raises(ReviewError, match="以外的管理员"):
        reviews.change(ALICE, "a1", "复核通过", note="同意")
    assert reviews.change(BOB, "a1", "复核通过", note="核实无误")["next"] == []
    reviews.change(ALICE, "a2", "申诉中", note="疑似刷差评", appeal="恶意差评")
    item = reviews.change(BOB, "a2", "驳回", note="回答确实缺少材料")
    assert item["status"] == "驳回" and item["next"] == ["整改中", "已整改"] and item["appeal"] == "恶意差评"
    listing = reviews.listing(*day_bounds(DAY1, DAY1))
    assert listing["total"] == 2 and listing["by_status"]["复核通过"] == 1 and listing["by_status"]["驳回"] == 1
    assert [i["answer_id"] for i in listing["items"]] == ["a2", "a1"]  # newest first
    assert reviews.listing(*day_bounds(DAY1, DAY1), status="驳回")["total"] == 1
    store.record_answer("g1", "web-3", "好问题", ["marriage"], True, at=T1)
    store.rate("g1", "web-3", "good", at=T1 + 10)
    with pytest.raises(ReviewError, match="没有这条差评"):
        reviews.change(ALICE, "g1", "整改中")


# ---------------------------------------------------------------- figures

def _script(store: Store) -> None:
    """Two China days: day 1 at 23:50 and day 2 at 00:10 are both in one conversation (c1)."""
    store.record_answer("c1-1", "c1", "结婚登记要带什么", ["marriage"], True, at=T1 + 86400 - 600)
    store.rate("c1-1", "c1", "good", at=T1 + 86400 - 500)
    store.record_answer("c1-2", "c1", "那要多久", ["marriage"], True, at=T2 + 600)
    store.rate("c1-2", "c1", "bad", at=T2 + 700)
    store.record_answer("c2-1", "c2", "我家猫丢了怎么办", ["restaurant"], False, at=T1 + 100)
    store.add_handoff("c2", {"headline": "市民咨询：我家猫丢了怎么办"}, at=T1 + 200)
    store.record_answer("c3-1", "c3", "开饭店", ["restaurant"], True, at=T2 + 100)
    store.rate("c3-1", "c3", "bad", at=T2 + 200)
    store.add_handoff("c4", {"headline": "市民请求人工服务"}, at=T2 + 300)  # no answer before it
    store.record_answer("old", "c5", "去年的问题", ["marriage"], False, at=T1 - 10)  # before the range


def test_overview_numbers_per_day_guide_and_assessment(store):
    _script(store)
    Reviews(store).change(ALICE, "c3-1", "申诉中", note="误点", appeal="误评")
    reports = Reports(store, titles={"marriage": "结婚登记", "restaurant": "食品经营许可"}.get)
    o = reports.overview(DAY1, DAY2)
    day1, day2 = o["days"]
    assert day1 == {"day": "2026-12-01", "conversations": 2, "answers": 2, "confident": 1, "unconfident": 1,
                    "handoffs": 1, "good": 1, "bad": 0, "excluded": 0}
    assert day2 == {"day": "2026-12-02", "conversations": 3, "answers": 2, "confident": 2, "unconfident": 0,
                    "handoffs": 1, "good": 0, "bad": 2, "excluded": 0}
    assert o["totals"]["conversations"] == 4  # c1 once, c2, c3, c4
    guides = {g["doc_id"]: g for g in o["guides"]}
    assert guides["marriage"] == {"doc_id": "marriage", "title": "结婚登记", "answers": 2, "confident": 2,
                                  "good": 1, "bad": 1}
    assert guides["restaurant"]["answers"] == 2 and guides["restaurant"]["bad"] == 1
    Reviews(store).change(BOB, "c3-1", "复核通过", note="核实")
    o = reports.overview(DAY2, DAY2)
    assert o["totals"]["bad"] == 1 and o["totals"]["excluded"] == 1  # upheld appeal: out of assessment
    assert {g["doc_id"]: g["bad"] for g in o["guides"]}["restaurant"] == 0
    with pytest.raises(ValueError):
        reports.overview(DAY2, DAY1)


def test_ratings_csv_is_masked_excel_safe_and_complete(store):
    _script(store)
    store.record_answer("x", "c9", "=HYPERLINK(\"http://evil\") 身份证310101199001011234", ["marriage"], True, at=T2)
    store.rate("x", "c9", "bad", reason="+1 电话13812345678", at=T2 + 50)
    data = to_csv(Reports(store).ratings_rows(DAY1, DAY2))
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["评价时间", "评价", "问题"] and len(rows) == 1 + 4
    [evil] = [r for r in rows if "HYPERLINK" in r[2]]
    assert evil[2].startswith("'=") and evil[5].startswith("'+")
    assert "13812345678" not in data.decode("utf-8-sig") and "310101199001011234" not in data.decode("utf-8-sig")
    assert [r[1] for r in rows[1:]] == ["好评", "差评", "差评", "差评"]  # by the time of rating
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])


# ---------------------------------------------------------------- knowledge gaps

class FakeEmbedder:
    """Bag of characters: questions sharing most characters are close."""
    version = "chars-1"

    def __init__(self):
        self.calls = 0

    def topic_vectors(self, texts):
        self.calls += len(texts)
        out = np.zeros((len(texts), 256), np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                out[i, zlib.crc32(ch.encode()) % 256] += 1  # stable across runs, unlike hash()
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_gap_questions_are_the_unconfident_badly_rated_and_handed_off(store):
    _script(store)
    store.record_answer("fine", "c6", "结婚登记在哪办", ["marriage"], True, at=T1 + 500)  # confident, unrated
    store.record_answer("h-1", "c7", "社区食堂怎么申请", ["restaurant"], True, at=T1 + 900)
    store.record_answer("h-2", "c7", "社区食堂在哪", ["restaurant"], True, at=T1 + 1000)
    store.add_handoff("c7", {}, at=T1 + 1100)  # only the last answer before it is the gap
    found = {q.text: q.reasons for q in gaps.gap_questions(store, *day_bounds(DAY1, DAY2))}
    assert found == {"我家猫丢了怎么办": {"unconfident": 1, "handoff": 1}, "那要多久": {"bad": 1},
                     "开饭店": {"bad": 1}, "社区食堂在哪": {"handoff": 1}}
    reviews = Reviews(store)
    reviews.change(ALICE, "c3-1", "申诉中", note="误点", appeal="误评")
    reviews.change(BOB, "c3-1", "复核通过", note="核实")
    assert "开饭店" not in {q.text for q in gaps.gap_questions(store, *day_bounds(DAY1, DAY2))}


def test_topics_group_one_subject_and_cache_vectors(store):
    asked = ["宠物狗怎么办狗证", "宠物狗证怎么办", "狗证在哪里办宠物", "办狗证宠物要什么",
             "电动车上牌照去哪", "电动车牌照怎么上", "我家楼下噪音扰民"]
    for i, q in enumerate(asked * 2):  # each asked twice, by two conversations
        store.record_answer(f"q{i}", f"s{i}", q, [], False, at=T1 + i)
    embedder = FakeEmbedder()
    result = gaps.topics(store, embedder, *day_bounds(DAY1, DAY1), threshold=0.35, sort="count")
    assert result["questions"] == 14 and result["distinct"] == 7 and result["clustered"]
    first = result["topics"][0]
    assert first["count"] == 8 and first["distinct"] == 4 and "狗证" in first["label"]
    assert {len(t["examples"]) for t in result["topics"]} == {4, 2, 1}
    assert embedder.calls == 7
    gaps.topics(store, embedder, *day_bounds(DAY1, DAY1))
    assert embedder.calls == 7  # cached in the store
    unclustered = gaps.topics(store, None, *day_bounds(DAY1, DAY1))
    assert not unclustered["clustered"] and len(unclustered["topics"]) == 7
    rows = gaps.rows(gaps.topics(store, embedder, *day_bounds(DAY1, DAY1), threshold=0.35, examples=None))
    assert len(rows) == 1 + 7 and rows[1][5] == "无把握"
    capped = gaps.topics(store, embedder, *day_bounds(DAY1, DAY1), threshold=0.35, examples=None, max_texts=3)
    rows = gaps.rows(capped)  # the export still lists every question: the older ones unclustered
    assert len(rows) == 1 + 7 and sum(r[0].startswith("（较早") for r in rows) == 4


def test_topics_with_the_retrieval_encoder(store, retriever):
    """The encoder retrieval uses puts paraphrases of one unanswered subject together."""
    dogs = ["我想给家里的狗办个证", "养狗要去哪里登记", "犬只登记怎么弄", "狗狗办证需要什么材料"]
    others = ["小区停车位被占了找谁", "医保卡丢了怎么补", "孩子打疫苗在哪里", "出国护照过期了怎么换"]
    for i, q in enumerate(dogs + others):
        store.record_answer(f"q{i}", f"s{i}", q, [], False, at=T1 + i)
    result = gaps.topics(store, retriever, *day_bounds(DAY1, DAY1), sort="count")
    first = result["topics"][0]
    assert {e["text"] for e in first["examples"]} >= set(dogs[:3]), result["topics"]
    assert not set(others) & {e["text"] for e in first["examples"]}


# ---------------------------------------------------------------- 工单 counts by day

def test_ticket_counts_and_listing_by_day(tmp_path, monkeypatch):
    from assistant.intake import store as ticket_store

    tickets = ticket_store.TicketStore(tmp_path / "t.db", key=os.urandom(32))
    draft = {"type": "投诉", "category": "市容环卫", "department": "区绿化市容局", "summary": "路灯坏了",
             "urgency": "一般"}
    for day in ("2026-12-01", "2026-12-01", "2026-12-03"):
        moment = dt.datetime.fromisoformat(day + "T09:00:00+08:00")
        monkeypatch.setattr(ticket_store, "now_china", lambda m=moment: m)
        tickets.file(draft, "web-1", "13812345678", True)
    assert tickets.counts()["total"] == 3
    c = tickets.counts("2026-12-01", "2026-12-02")
    assert c["total"] == 2 and c["by_day"] == {"2026-12-01": 2} and c["by_category"] == {"市容环卫": 2}
    listed = tickets.listing("2026-12-03", "2026-12-03")
    assert [t["id"] for t in listed] == ["QP20261203-000001"] and listed[0]["delivery"] == "pending"
    assert listed[0]["contact_masked"] == "138****5678"


def test_warming_embeds_only_new_gap_questions(store):
    embedder = FakeEmbedder()
    for i, q in enumerate(["狗证怎么办", "狗证在哪办", "噪音扰民"]):
        store.record_answer(f"w{i}", f"s{i}", q, [], False, at=T1 + i)
    assert gaps.warm(store, embedder, *day_bounds(DAY1, DAY1)) == 3
    store.record_answer("w9", "s9", "电动车上牌", [], False, at=T1 + 9)
    assert gaps.warm(store, embedder, *day_bounds(DAY1, DAY1)) == 1 and embedder.calls == 4
    gaps.topics(store, embedder, *day_bounds(DAY1, DAY1))
    assert embedder.calls == 4  # the page found every vector cached
