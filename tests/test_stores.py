import multiprocessing as mp
import threading

import pytest

from assistant.stores import Store, Turn, handoff_summary


def test_feedback_round_trip_and_masking(tmp_path):
    store = Store(tmp_path / "s.db")
    store.add_feedback("a1", "13812345678", "bad", ["marriage"], reason="没说清楚，我电话13812345678")
    [row] = store.feedback("a1")
    assert row["rating"] == "bad" and row["doc_ids"] == ["marriage"]
    assert "13812345678" not in row["reason"] and "138****5678" in row["reason"]
    assert row["sender_id"] == "138****5678"
    with pytest.raises(ValueError):
        store.add_feedback("a1", "u", "meh", [])


def _write_many(path, worker, n):
    store = Store(path)
    for i in range(n):
        store.add_feedback(f"w{worker}-{i}", f"user{worker}", "good" if i % 2 else "bad", ["doc"])


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
    rows = Store(path).feedback()
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
