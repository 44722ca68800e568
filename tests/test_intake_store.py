"""Filed 工单: encryption at rest, ids, status history, and the outbox hand-over to a stand-in
12345 endpoint on 127.0.0.1 (down, up, 500s, several workers)."""
from __future__ import annotations

import base64
import json
import logging
import multiprocessing as mp
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from assistant.intake.outbox import NO_URL, SOURCE, Outbox, OutboxWorker, backoff_delay, enqueue
from assistant.intake.store import KEY_ENV, TicketKeyError, TicketStore, mask_contact
from assistant.intake.ticket import draft_ticket
from conftest import free_port

PHONE = "13957204816"           # the caller's contact in most tests
PHONE_PARTS = (PHONE, "1395720", "57204816", "5720 4816")
ID_CARD = "310118199001011234"
DRAFT = {"type": "投诉", "category": "城乡建设", "categories": [{"category": "城乡建设", "score": 0.912345678},
                                                              {"category": "环境保护", "score": 0.05}],
         "department": "青浦区住房和城乡建设管理委员会", "place": "盈浦街道XX小区3号楼", "time": "昨天晚上",
         "summary": f"电梯又坏了，把人关了半小时。我电话{PHONE}，身份证{ID_CARD}。", "urgency": "紧急"}
PAYLOAD_KEYS = {"id", "created_at", "type", "category", "categories", "department", "place", "time", "summary",
                "urgency", "callback", "contact", "source"}
ID_RE = re.compile(r"^QP\d{8}-\d{6}$")


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture(autouse=True)
def ticket_key(monkeypatch):
    key = new_key()
    monkeypatch.setenv(KEY_ENV, key)
    return key


def file_bytes(folder) -> bytes:
    """Everything SQLite wrote: the database, its WAL and shared-memory files."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("t.db"))


class StandIn:
    """A local stand-in for the 12345 system: counts requests per Idempotency-Key."""

    def __init__(self, port: int, codes: list[int] | None = None, delay: float = 0.0, body: bytes = b"{}"):
        self.port, self.codes, self.delay, self.body = port, list(codes or []), delay, body
        self.requests: Counter[str] = Counter()  # every request
        self.accepted: Counter[str] = Counter()  # 2xx answers
        self.seen: list[tuple[dict, dict]] = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()

    def __enter__(self) -> "StandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key")
                with standin.lock:
                    standin.requests[key] += 1
                    standin.seen.append((dict(self.headers), body))
                    code = standin.codes.pop(0) if standin.codes else 200
                    if 200 <= code < 300:
                        standin.accepted[key] += 1
                if standin.gate is not None:
                    standin.gate.wait(10)
                time.sleep(standin.delay)
                self.send_response(code)
                self.send_header("Content-Length", str(len(standin.body)))
                self.end_headers()
                self.wfile.write(standin.body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- encryption and privacy


def test_contact_encrypted_at_rest_masked_view_and_decrypt(tmp_path):
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, sender_id=PHONE, contact=PHONE, callback=True)
    other = store.file(DRAFT, sender_id="web-1", contact="021-5972 4816", callback=False)
    assert ID_RE.match(t["id"]) and t["status"] == "已受理" and t["created_at"].endswith("+08:00")
    assert t["contact_masked"] == "139****4816" and other["contact_masked"] == "021****4816"
    assert "contact" not in t and t["callback"] is True
    assert t["summary"].startswith("电梯又坏了") and "139****4816" in t["summary"]
    assert t["categories"][0] == {"category": "城乡建设", "score": 0.9123}
    # no clear digits of the number (nor the ID card) anywhere in the files or the rows
    raw = file_bytes(tmp_path)
    assert len(raw) > 4096
    for secret in PHONE_PARTS + (ID_CARD, "59724816", "5972 4816"):
        assert secret.encode() not in raw, secret
    with sqlite3.connect(tmp_path / "t.db") as db:
        dump = "\n".join(db.iterdump())
        blobs = [bytes(b) for (b,) in db.execute("SELECT contact_enc FROM ticket ORDER BY id")]
    for secret in PHONE_PARTS + (ID_CARD, "59724816"):
        assert secret not in dump
    assert len(blobs[0]) == 12 + len(PHONE) + 16  # nonce + ciphertext + tag
    assert PHONE not in json.dumps(store.get(t["id"]), ensure_ascii=False)
    assert PHONE not in json.dumps(store.by_sender(PHONE), ensure_ascii=False)
    # decrypt, for the delivery payload only
    assert store.contact(t["id"]) == PHONE and store.contact(other["id"]) == "021-5972 4816"
    # same number, fresh nonce: different ciphertexts
    again = store.file(DRAFT, sender_id=PHONE, contact=PHONE, callback=True)
    with sqlite3.connect(tmp_path / "t.db") as db:
        a, b = (bytes(r[0]) for r in db.execute("SELECT contact_enc FROM ticket WHERE id IN (?, ?)",
                                                  (t["id"], again["id"])))
    assert a != b


def test_wrong_key_fails_clearly(tmp_path, monkeypatch, caplog):
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, "u1", PHONE, True)
    u = store.file(DRAFT, "u2", "13800001111", True)
    with pytest.raises(TicketKeyError, match="another ASSISTANT_TICKET_KEY"):
        TicketStore(tmp_path / "t.db", key=os.urandom(32))
    monkeypatch.delenv(KEY_ENV)
    with caplog.at_level(logging.WARNING):
        dev = TicketStore(tmp_path / "t.db", allow_ephemeral_key=True)
    assert "another key" in caplog.text
    with pytest.raises(TicketKeyError, match="cannot be decrypted"):
        dev.contact(t["id"])
    assert dev.get(t["id"])["contact_masked"] == "139****4816"  # masked views still work
    # the ticket id is bound to the ciphertext: a contact moved to another row does not decrypt
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("UPDATE ticket SET contact_enc = (SELECT contact_enc FROM ticket WHERE id = ?) WHERE id = ?",
                   (t["id"], u["id"]))
    with pytest.raises(TicketKeyError):
        store.contact(u["id"])
    assert store.contact(t["id"]) == PHONE
    with pytest.raises(KeyError):
        store.contact("QP19990101-000001")


def test_missing_or_malformed_key(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(TicketKeyError) as err:
        TicketStore(tmp_path / "t.db")
    assert "ASSISTANT_TICKET_KEY is not set" in str(err.value) and "os.urandom(32)" in str(err.value)
    for bad, why in (("not base64!!", "not valid base64"), (base64.b64encode(b"x" * 16).decode(), "16 bytes")):
        monkeypatch.setenv(KEY_ENV, bad)
        with pytest.raises(TicketKeyError, match=why):
            TicketStore(tmp_path / "t.db")
    monkeypatch.delenv(KEY_ENV)
    with caplog.at_level(logging.WARNING):
        dev = TicketStore(tmp_path / "t.db", allow_ephemeral_key=True)
    assert "random in-memory key" in caplog.text
    t = dev.file(DRAFT, "u", PHONE, True)
    assert dev.contact(t["id"]) == PHONE


def test_filing_validation_and_atomic_enqueue(tmp_path):
    store = TicketStore(tmp_path / "t.db")
    with pytest.raises(ValueError, match="联系电话"):
        store.file(DRAFT, "u", None, callback=True)
    with pytest.raises(ValueError, match="格式不正确"):
        store.file(DRAFT, "u", "call me", callback=False)
    with pytest.raises(ValueError, match="不能为空"):
        store.file({**DRAFT, "summary": "  "}, "u", None, callback=False)
    t = store.file(DRAFT, "u", None, callback=False)
    assert t["contact_masked"] is None and store.contact(t["id"]) is None
    # the ticket and its outbox row are one transaction: no outbox, no ticket (and no id used)
    with sqlite3.connect(tmp_path / "t.db") as db:
        db.execute("DROP TABLE outbox")
    with pytest.raises(sqlite3.OperationalError):
        store.file(DRAFT, "u", None, callback=False)
    assert store.counts()["total"] == 1


# ---------------------------------------------------------------- ids, history, lookups


def _file_many(path: str, key: str, tag: str, n: int) -> None:
    os.environ[KEY_ENV] = key
    store = TicketStore(path)
    for i in range(n):
        store.file({**DRAFT, "summary": f"{tag} 第{i}件"}, f"sender-{tag}", None, callback=False)


def test_ids_unique_under_concurrent_filing(tmp_path, ticket_key):
    path = str(tmp_path / "t.db")
    TicketStore(path)
    threads = [threading.Thread(target=_file_many, args=(path, ticket_key, f"t{i}", 15)) for i in range(8)]
    procs = [mp.get_context("spawn").Process(target=_file_many, args=(path, ticket_key, f"p{i}", 15)) for i in range(2)]
    for w in procs + threads:
        w.start()
    for w in threads + procs:
        w.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    with sqlite3.connect(path) as db:
        ids = [r[0] for r in db.execute("SELECT id FROM ticket")]
        queued = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert len(ids) == len(set(ids)) == 150 == queued
    assert all(ID_RE.match(i) for i in ids)
    by_day: dict[str, list[int]] = {}
    for i in ids:
        by_day.setdefault(i[2:10], []).append(int(i[-6:]))
    for seqs in by_day.values():  # per day: 1, 2, 3 … without gaps
        assert sorted(seqs) == list(range(1, len(seqs) + 1))


def test_status_history_lookups_and_counts(tmp_path):
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, sender_id="13812345678", contact=PHONE, callback=True)
    store.file({**DRAFT, "category": None, "department": "区12345热线办"}, sender_id="13899995678",
               contact=None, callback=False)
    store.set_status(t["id"], "已转办", note="转住建委，市民电话13812345678", actor="agent-007")
    done = store.set_status(t["id"], "已办结", note="已修复")
    assert done["status"] == "已办结" and done["updated_at"] >= done["created_at"]
    history = done["history"]
    assert [h["status"] for h in history] == ["已受理", "已转办", "已办结"]
    assert [h["actor"] for h in history] == ["assistant", "agent-007", "system"]
    assert history[1]["note"] == "转住建委，市民电话138****5678" and all(h["at"] for h in history)
    with pytest.raises(KeyError):
        store.set_status("QP19990101-000001", "已办结")
    with pytest.raises(ValueError):
        store.set_status(t["id"], " ")
    # two senders whose numbers mask alike ("138****5678") never see each other's tickets
    mine = store.by_sender("13812345678")
    assert [x["id"] for x in mine] == [t["id"]] and mine[0]["sender_id"] == "138****5678"
    assert len(store.by_sender("13899995678")) == 1 and store.by_sender("nobody") == []
    assert store.get("QP19990101-000001") is None
    c = store.counts()
    assert c["total"] == 2 and c["by_status"] == {"已办结": 1, "已受理": 1}
    assert c["by_category"] == {"城乡建设": 1, "未分类": 1}
    assert c["by_department"] == {"区12345热线办": 1, "青浦区住房和城乡建设管理委员会": 1}


def test_files_a_real_draft(tmp_path):
    draft = draft_ticket(f"盈浦街道XX小区3号楼电梯昨天晚上又坏了，把人关在里面半小时，请尽快处理。电话{PHONE}").to_dict()
    store = TicketStore(tmp_path / "t.db")
    t = store.file(draft, "web-7", PHONE, True)
    assert t["place"] == draft["place"] and t["urgency"] == draft["urgency"] and PHONE not in t["summary"]
    assert PHONE.encode() not in file_bytes(tmp_path)


# ---------------------------------------------------------------- outbox


def test_enqueue_is_idempotent_and_no_url_stays_pending(tmp_path, caplog):
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, "u", PHONE, True)
    outbox = Outbox(store, None)
    assert outbox.enqueue(t["id"]) is False
    with store.transaction() as db:
        assert enqueue(db, t["id"]) is False
    with pytest.raises(KeyError):
        outbox.enqueue("QP19990101-000001")
    with caplog.at_level(logging.WARNING):
        assert outbox.deliver_due() == 0
    assert "not configured" in caplog.text
    row = outbox.row(t["id"])
    assert row["state"] == NO_URL and row["attempts"] == 0
    state = outbox.state()
    assert state["status"] == NO_URL and state["pending"] == 1 and state["delivered"] == 0


def test_down_then_up_delivers_exactly_once_with_json_shape(tmp_path):
    port = free_port()
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, "u", PHONE, True)
    outbox = Outbox(store, f"http://127.0.0.1:{port}/tickets", timeout=2)
    before = time.time()
    assert outbox.deliver_due() == 0  # nothing listens yet
    row = outbox.row(t["id"])
    assert row["state"] == "pending" and row["attempts"] == 1 and "URLError" in row["last_error"]
    assert before + 4 <= row["next_attempt_at"] <= time.time() + 6 and row["lease_owner"] is None
    assert outbox.deliver_due() == 0 and outbox.row(t["id"])["attempts"] == 1  # not due yet: no attempt
    assert outbox.state()["failed_attempts"] == 1 and outbox.state()["due"] == 0
    with StandIn(port) as standin:
        assert outbox.deliver_due(now=row["next_attempt_at"] + 1) == 1
        assert outbox.deliver_due(now=row["next_attempt_at"] + 3600) == 0
        assert outbox.enqueue(t["id"]) is False and outbox.deliver_due(now=time.time() + 7200) == 0
    assert standin.requests == Counter({t["id"]: 1})
    headers, body = standin.seen[0]
    assert headers["Idempotency-Key"] == t["id"] and headers["Content-Type"].startswith("application/json")
    assert set(body) == PAYLOAD_KEYS and body == outbox.payload(t["id"])
    assert body["contact"] == PHONE and body["source"] == SOURCE and body["callback"] is True
    assert body["summary"] == t["summary"] and PHONE not in body["summary"] and body["created_at"] == t["created_at"]
    assert body["categories"][0] == {"category": "城乡建设", "score": 0.9123}
    state = outbox.state()
    assert (state["pending"], state["delivered"], state["failed_attempts"]) == (0, 1, 1)
    assert outbox.row(t["id"])["state"] == "delivered"


def test_server_errors_are_retried_with_backoff(tmp_path):
    port = free_port()
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, "u", PHONE, True)
    outbox = Outbox(store, f"http://127.0.0.1:{port}/", timeout=2)
    body = f"重复提交 电话{PHONE}".encode()
    with StandIn(port, codes=[500, 503], body=body) as standin:
        now = time.time()
        assert outbox.deliver_due(now=now) == 0
        first = outbox.row(t["id"])
        assert first["last_error"].startswith("HTTP 500") and "139****4816" in first["last_error"]
        assert PHONE not in first["last_error"]
        assert outbox.deliver_due(now=first["next_attempt_at"]) == 0
        second = outbox.row(t["id"])
        assert second["last_error"].startswith("HTTP 503") and second["failures"] == 2
        assert second["next_attempt_at"] - first["next_attempt_at"] > first["next_attempt_at"] - now
        assert outbox.deliver_due(now=second["next_attempt_at"]) == 1
    assert standin.requests[t["id"]] == 3 and standin.accepted[t["id"]] == 1
    assert outbox.state()["failed_attempts"] == 2


def test_max_attempts_keeps_the_row_and_retry_requeues(tmp_path):
    port = free_port()
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, "u", PHONE, True)
    outbox = Outbox(store, f"http://127.0.0.1:{port}/", timeout=2, max_attempts=2)
    with StandIn(port, codes=[500, 500]) as standin:
        outbox.deliver_due()
        outbox.deliver_due(now=time.time() + 60)
        assert outbox.row(t["id"])["state"] == "failed" and outbox.state()["failed"] == 1
        assert outbox.deliver_due(now=time.time() + 86400) == 0 and standin.requests[t["id"]] == 2
        assert outbox.retry(t["id"]) is True and outbox.retry(t["id"]) is False
        assert outbox.deliver_due() == 1
    assert standin.accepted[t["id"]] == 1 and outbox.state()["delivered"] == 1


def test_backoff_doubles_with_jitter_and_cap():
    assert [backoff_delay(n, rand=lambda: 0.5) for n in range(1, 6)] == [5, 10, 20, 40, 80]
    assert backoff_delay(1, rand=lambda: 0.0) == pytest.approx(4)
    assert backoff_delay(1, rand=lambda: 1.0) == pytest.approx(6)
    assert backoff_delay(8, rand=lambda: 1.0) == 600 and backoff_delay(500) <= 600
    assert len({backoff_delay(3) for _ in range(20)}) > 1


def test_lease_keeps_a_second_worker_off_the_row(tmp_path):
    port = free_port()
    store = TicketStore(tmp_path / "t.db")
    t = store.file(DRAFT, "u", PHONE, True)
    url = f"http://127.0.0.1:{port}/"
    first, second = Outbox(store, url, timeout=5), Outbox(TicketStore(tmp_path / "t.db"), url, timeout=5)
    with StandIn(port) as standin:
        standin.gate = threading.Event()
        result: list[int] = []
        runner = threading.Thread(target=lambda: result.append(first.deliver_due()))
        runner.start()
        deadline = time.time() + 5
        while not standin.requests and time.time() < deadline:
            time.sleep(0.01)
        assert standin.requests[t["id"]] == 1  # the first worker is mid-POST
        assert second.deliver_due() == 0        # leased: not sent again
        standin.gate.set()
        runner.join(5)
        assert result == [1] and second.deliver_due(now=time.time() + 3600) == 0
        # a worker that died holding the lease: the row is taken over once the lease expires
        u = store.file(DRAFT, "u", PHONE, True)
        assert first._claim(time.time()) == (u["id"], 0)
        assert second.deliver_due() == 0
        assert second.deliver_due(now=time.time() + first.lease + 1) == 1
    assert standin.accepted == Counter({t["id"]: 1, u["id"]: 1})


def _worker_process(path: str, key: str, url: str, ready, seconds: float) -> None:
    os.environ[KEY_ENV] = key
    outbox = Outbox(TicketStore(path), url, timeout=5)
    with OutboxWorker(outbox, interval=0.02):
        ready.set()
        deadline = time.time() + seconds
        while time.time() < deadline and outbox.state()["pending"]:
            time.sleep(0.05)


def test_several_workers_in_threads_and_a_process_deliver_each_ticket_once(tmp_path, ticket_key):
    port = free_port()
    path = tmp_path / "t.db"
    store = TicketStore(path)
    ids = [store.file({**DRAFT, "summary": f"第{i}件：路灯不亮"}, f"s{i}", PHONE, True)["id"] for i in range(30)]
    url = f"http://127.0.0.1:{port}/"
    with StandIn(port, delay=0.03) as standin:
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        proc = ctx.Process(target=_worker_process, args=(str(path), ticket_key, url, ready, 20.0))
        proc.start()
        assert ready.wait(20)
        workers = [OutboxWorker(Outbox(TicketStore(path), url), interval=0.02).start() for _ in range(2)]
        workers[0].wake()
        deadline = time.time() + 20
        while Outbox(store, url).state()["delivered"] < len(ids) and time.time() < deadline:
            time.sleep(0.05)
        for w in workers:
            w.stop()
        proc.join(20)
    assert proc.exitcode == 0
    assert standin.requests == Counter({i: 1 for i in ids})
    assert Outbox(store, url).state()["delivered"] == 30


def test_worker_start_stop(tmp_path):
    store = TicketStore(tmp_path / "t.db")
    worker = OutboxWorker(Outbox(store, None), interval=30).start()
    started = time.time()
    worker.stop()
    assert time.time() - started < 2 and not worker._thread.is_alive()


def test_mask_contact():
    assert mask_contact("13812345678") == "138****5678"
    assert mask_contact("+86 138-1234-5678") == "138****5678"
    assert mask_contact("021-59721234") == "021****1234"
    assert mask_contact("5972123") == "*****23"
