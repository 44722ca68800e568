import multiprocessing as mp
import threading

import pytest

from assistant.stores import RatingRefused, Store, Suspicion, Turn, handoff_summary


def test_rating_round_trip_and_masking(tmp_path):
    store = Store(tmp_path / "s.db")
    store.record_answer("a1", "13812345678", "结婚登记要带什么", ["marriage"], True, "answer", at=100.0)
    result = store.rate("a1", "13812345678", "bad", reason="没说清楚，我电话13812345678", at=200.0)
    assert result == {"replaced": False, "flags": [], "doc_ids": ["marriage"]}
    [row] = store.ratings("a1")
    assert row["rating"] == "bad" and row["doc_ids"] == ["marriage"]
    assert "13812345678" not in row["reason"] and "138****5678" in row["reason"]
    assert row["sender_id"] == "138****5678"
    assert "13812345678" not in (tmp_path / "s.db").read_bytes().decode("utf-8", "replace")
    with pytest.raises(ValueError):
        store.rate("a1", "13812345678", "meh")


def test_only_an_answer_given_to_the_conversation_can_be_rated(tmp_path):
    store = Store(tmp_path / "s.db")
    store.record_answer("a1", "alice", "公积金怎么取", ["gjj-tiqu-zufang"], True, at=100.0)
    for answer_id, sender in (("forged0", "alice"), ("a1", "mallory"), ("", "alice")):
        with pytest.raises(RatingRefused):
            store.rate(answer_id, sender, "bad", at=200.0)
    assert store.ratings() == []


def test_a_second_rating_replaces_the_first_and_both_are_kept(tmp_path):
    store = Store(tmp_path / "s.db")
    store.record_answer("a1", "alice", "公积金怎么取", ["gjj-tiqu-zufang"], True, at=100.0)
    store.rate("a1", "alice", "bad", "看不懂", at=200.0)
    assert store.rate("a1", "alice", "good", at=300.0)["replaced"] is True
    [row] = store.ratings()
    assert row["rating"] == "good" and row["reason"] is None
    assert [h["rating"] for h in store.rating_history("a1")] == ["bad", "good"]


def test_suspicious_ratings_are_flagged_not_dropped(tmp_path):
    store = Store(tmp_path / "s.db", Suspicion(window_s=600, bad_per_conversation=3, bad_per_address=4, too_fast_s=2))
    store.record_answer("q0", "bob", "", ["doc"], False, at=0.0)  # an answer before any question
    assert store.rate("q0", "bob", "good", at=50.0)["flags"] == ["no_question"]
    store.record_answer("fast", "bob", "社保卡丢了", ["doc"], True, at=60.0)
    assert store.rate("fast", "bob", "good", at=60.5)["flags"] == ["too_fast"]
    # 差评 of one conversation: the third within the window flags all three
    for i in range(3):
        store.record_answer(f"b{i}", "bob", "问题", ["doc"], True, at=100.0 + i)
        flags = store.rate(f"b{i}", "bob", "bad", client_key="k1", at=110.0 + i)["flags"]
    assert flags == ["many_bad_conversation"]
    assert {r["answer_id"] for r in store.ratings(flagged=True)} >= {"b0", "b1", "b2"}
    # one address, other conversations (a kiosk): flagged only at the higher address count
    store.record_answer("c0", "carol", "问题", ["doc"], True, at=100.0)
    assert "many_bad_address" in store.rate("c0", "carol", "bad", client_key="k1", at=120.0)["flags"]
    # outside the window nothing adds up
    store.record_answer("late", "bob", "问题", ["doc"], True, at=5000.0)
    assert store.rate("late", "bob", "bad", client_key="k1", at=5010.0)["flags"] == []
    assert len(store.ratings()) == 7  # every rating kept


def test_keys_match_across_processes_and_hide_the_value(tmp_path):
    a, b = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")
    assert a.key("10.1.2.3") == b.key("10.1.2.3") != a.key("10.1.2.4")
    assert "10.1.2.3" not in a.key("10.1.2.3") and Store(tmp_path / "t.db").key("10.1.2.3") != a.key("10.1.2.3")


def _write_many(path, worker, n):
    store = Store(path)
    for i in range(n):
        store.record_answer(f"w{worker}-{i}", f"user{worker}", "问题", ["doc"], True, at=0.0)
        store.rate(f"w{worker}-{i}", f"user{worker}", "good" if i % 2 else "bad")


def test_no_rating_lost_under_concurrent_threads_and_processes(tmp_path):
    path = tmp_path / "s.db"
    Store(path)
    threads = [threading.Thread(target=_write_many, args=(path, t, 40)) for t in range(8)]
    procs = [mp.get_context("spawn").Process(target=_write_many, args=(path, 100 + p, 40)) for p in range(4)]
    for w in threads + procs:
        w.start()
    for w in threads + procs:
        w.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    rows = Store(path).ratings()
    assert len(rows) == 12 * 40
    assert len({r["answer_id"] for r in rows}) == 12 * 40


def test_handoff_summary_is_masked_and_retrievable(tmp_path):
    store = Store(tmp_path / "s.db")
    turns = [Turn("开饭店要什么证", ["《食品经营许可》申请材料"]),
             Turn("我身份证310229199001011234，能帮我查吗", [])]
    summary = handoff_summary(turns, {"company_type": "个体户", "empty": None})
    store.add_handoff("web-1", summary)
    got = store.latest_handoff("web-1")
    assert got["guides_shown"] == ["《食品经营许可》申请材料"] and got["slots"] == {"company_type": "个体户"}
    assert "310229199001011234" not in str(got) and "310*************34" in got["headline"]
    assert store.latest_handoff("nobody") is None
    assert store.recent_handoffs()[0]["sender_id"] == "web-1"


def test_an_older_store_file_gets_the_new_columns_and_keeps_its_rows(tmp_path):
    """A file written before the answer text, top guide and hand-off keys existed opens, and
    its rows count in the console's figures (top guide backfilled)."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE answer (answer_id TEXT PRIMARY KEY, sender_key TEXT NOT NULL, sender_id TEXT NOT NULL,
                question TEXT NOT NULL, doc_ids TEXT NOT NULL, confident INTEGER NOT NULL, kind TEXT, at REAL NOT NULL);
            CREATE TABLE rating (answer_id TEXT PRIMARY KEY, sender_key TEXT NOT NULL, sender_id TEXT NOT NULL,
                client_key TEXT, rating TEXT NOT NULL, reason TEXT, doc_ids TEXT NOT NULL,
                flags TEXT NOT NULL DEFAULT '[]', first_at REAL NOT NULL, at REAL NOT NULL);
            CREATE TABLE handoff (id INTEGER PRIMARY KEY AUTOINCREMENT, sender_id TEXT NOT NULL, summary TEXT NOT NULL,
                created_at TEXT NOT NULL);
            INSERT INTO answer VALUES ('old1', 'k', 's', '结婚登记', '["marriage", "fund"]', 1, 'answer', 100.0);
            INSERT INTO rating VALUES ('old1', 'k', 's', NULL, 'bad', NULL, '["marriage"]', '[]', 110.0, 110.0);
            INSERT INTO handoff (sender_id, summary, created_at) VALUES ('s', '{}', '2026-01-01T00:00:00+00:00');
        """)
    store = Store(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT top_doc, text FROM answer").fetchone() == ("marriage", "")
        assert db.execute("SELECT top_doc FROM rating").fetchone() == ("marriage",)
    store.record_answer("new1", "alice", "公积金", ["fund"], True, at=200.0, text="根据《公积金》…")
    store.rate("new1", "alice", "good", at=300.0)
    store.add_handoff("alice", {"headline": "x"}, at=400.0)
    assert store.answer("new1")["text"] == "根据《公积金》…" and store.latest_handoff("s") is not None
    assert [r["answer_id"] for r in store.ratings()] == ["old1", "new1"]


def test_a_recorded_answer_does_not_checkpoint_the_log_each_time(tmp_path):
    # the last connection to close checkpoints the WAL into the file and deletes it: the store
    # holds one open, so an answer recorded costs one log append, not a checkpoint
    store = Store(tmp_path / "a.db")
    for i in range(30):
        store.record_answer(f"a{i}", "s1", "开个小饭店要准备啥", ["g1"], True, "answer", text="根据《食品经营许可》……")
    wal = tmp_path / "a.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    other = Store(tmp_path / "a.db")  # another process's view: every answer is there
    assert all(other.answer(f"a{i}") for i in range(30))
