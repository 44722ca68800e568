"""The production profile (scripts/prod.sh) on spare ports: PostgreSQL tracker store, Redis lock
store, two Rasa replicas with their action servers and the web server behind nginx.

Skipped, with the reason, when Debian's postgresql, redis-server or nginx are not installed
(`make test` installs them as root) or the assistant is not trained.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import free_port_block

ROOT = Path(__file__).resolve().parents[1]
MODEL = Path(os.environ.get("ASSISTANT_MODEL", ROOT / "build/models/assistant.tar.gz"))
PGBIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
MISSING = [name for name, ok in (("postgresql", PGBIN), ("redis-server", shutil.which("redis-server")),
                                 ("nginx", shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")),
                                 (f"a trained model at {MODEL}", MODEL.is_file())) if not ok]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"production profile needs {', '.join(MISSING)}")


@pytest.fixture(scope="module")
def prod():
    # under build/ (not pytest's private tmp): PostgreSQL runs as the postgres account and must reach it
    prod_dir = ROOT / "build" / f"test-prod-{uuid.uuid4().hex[:8]}"
    # servers on ports below the ephemeral range, which outgoing connections cannot take meanwhile
    base = free_port_block(10)
    names = ("PROD_PORT", "PG_PORT", "REDIS_PORT", "PROD_WEB_PORT", "PROD_VOICE_PORT", "ACTIONS_LB_PORT")
    ports = {k: str(base + i) for i, k in enumerate(names)}
    rasa0, action0 = base + 6, base + 8  # two replicas each: ports 6-7 and 8-9
    env = {**os.environ, **ports, "PROD_DIR": str(prod_dir), "REPLICAS": "2", "PROD_VOICE": "0",
           "RASA_BASE_PORT": str(rasa0), "ACTION_BASE_PORT": str(action0), "MODEL": str(MODEL),
           "HF_HUB_OFFLINE": "1",
           # its own stores: build/data's belong to `make serve` and are encrypted with its key
           "ASSISTANT_TICKETS": str(prod_dir / "tickets.db"), "ASSISTANT_STORE": str(prod_dir / "assistant.db")}
    run = subprocess.run([str(ROOT / "scripts/prod.sh"), "start"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    info = {"lb": f"http://127.0.0.1:{ports['PROD_PORT']}", "rasa": [f"http://127.0.0.1:{rasa0 + i}" for i in (0, 1)],
            "dir": prod_dir, "env": env}
    for i, base in enumerate(info["rasa"]):  # the first turns load the policies and the index
        say(base, f"warm-{i}", "营业执照怎么办")
    try:
        yield info
    finally:
        subprocess.run([str(ROOT / "scripts/prod.sh"), "stop"], env=env, cwd=ROOT, timeout=120)
        shutil.rmtree(prod_dir, ignore_errors=True)


def say(base: str, sender: str, text: str) -> tuple[int, list]:
    req = urllib.request.Request(base + "/webhooks/rest/webhook", method="POST",
                                 data=json.dumps({"sender": sender, "message": text}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, []


def events(prod, sender: str) -> list[tuple[str, str]]:
    """(type, text) of the sender's stored events, in order, straight from PostgreSQL."""
    env = {**os.environ, "PGPASSWORD": (prod["dir"] / "secrets" / "pg").read_text().strip()}
    sql = (f"SELECT type_name, coalesce(data::json->>'text', '') FROM events WHERE sender_id = '{sender}' "
           "ORDER BY id")
    out = subprocess.run([f"{PGBIN[-1]}/psql", "-h", "127.0.0.1", "-p", prod["env"]["PG_PORT"], "-U", "rasa",
                          "-d", "rasa", "-tA", "-F", "\t", "-c", sql], env=env, capture_output=True, text=True,
                         check=True).stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if line]


def test_two_replicas_share_one_conversation_through_postgresql(prod):
    sender = "share-" + uuid.uuid4().hex[:6]
    status, first = say(prod["rasa"][0], sender, "开个小饭店要准备什么")
    assert status == 200 and "食品经营许可" in first[0]["text"]
    status, follow = say(prod["rasa"][1], sender, "那要多久")  # the other replica answers the follow-up
    assert status == 200
    assert "食品经营许可" in follow[0]["text"] and ("时限" in follow[0]["text"] or "工作日" in follow[0]["text"])
    users = [text for kind, text in events(prod, sender) if kind == "user"]
    assert users == ["开个小饭店要准备什么", "那要多久"]


def test_concurrent_messages_of_one_sender_are_serialised_by_the_redis_lock(prod):
    """Six messages at once through the load balancer, so both replicas take some. (A message
    that waits longer than the channel's 20 s turn limit gets the polite reply and is not
    handled: that is why six, on warm replicas, and not sixty.)"""
    sender = "lock-" + uuid.uuid4().hex[:6]
    texts = ["居住证怎么办", "需要什么材料", "在哪里办", "要多久", "收费吗", "谢谢"]
    with ThreadPoolExecutor(len(texts)) as pool:
        results = list(pool.map(lambda t: say(prod["lb"], sender, t), texts))
    assert all(status == 200 and replies for status, replies in results), results
    kinds = [kind for kind, _ in events(prod, sender) if kind in ("user", "bot")]
    assert kinds.count("user") == len(texts)
    # each message is handled to its last reply before the next one starts: no two user turns in a row
    assert all(not (a == b == "user") for a, b in zip(kinds, kinds[1:])), kinds


def prod_sh(prod, *args: str) -> None:
    run = subprocess.run([str(ROOT / "scripts/prod.sh"), *args], env=prod["env"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def test_with_one_action_server_stopped_every_turn_is_still_answered_in_full(prod):
    """The replicas reach the action servers through nginx, which skips one that is down."""
    prod_sh(prod, "stop-actions", "0")
    try:
        for i in range(6):
            status, replies = say(prod["lb"], f"actions-down-{i}-" + uuid.uuid4().hex[:4], "营业执照怎么办")
            assert status == 200 and "根据《" in replies[0]["text"], replies
    finally:
        prod_sh(prod, "start-actions", "0")
    # the restarted one alone now: it drafts 工单 like the others (it has the 工单 key)
    prod_sh(prod, "stop-actions", "1")
    try:
        status, replies = say(prod["lb"], "actions-restarted-" + uuid.uuid4().hex[:4], "小区门口的路灯坏了一个月了，晚上很黑")
        ticket = next(((r.get("custom") or {}).get("ticket") for r in replies if (r.get("custom") or {}).get("ticket")), {})
        assert status == 200 and ticket.get("summary"), replies
    finally:
        prod_sh(prod, "start-actions", "1")


def test_a_postgresql_restart_loses_no_turn_and_no_history(prod):
    sender = "pg-" + uuid.uuid4().hex[:6]
    status, first = say(prod["lb"], sender, "开个小饭店要准备什么")
    assert status == 200 and "食品经营许可" in first[0]["text"]
    with ThreadPoolExecutor(1) as pool:
        restart = pool.submit(prod_sh, prod, "restart-postgres")
        time.sleep(0.3)  # the next turn arrives while the database is going down or starting
        status, during = say(prod["lb"], sender, "要带什么材料")
        restart.result()
    assert status == 200 and "食品经营许可" in during[0]["text"], during
    status, after = say(prod["lb"], sender, "那要多久")
    assert status == 200 and "食品经营许可" in after[0]["text"], after
    users = [text for kind, text in events(prod, sender) if kind == "user"]
    assert users == ["开个小饭店要准备什么", "要带什么材料", "那要多久"]


def test_a_killed_replica_users_get_replies_from_the_other(prod):
    pid = int((prod["dir"] / "pids" / "rasa-0.pid").read_text())
    os.kill(pid, 9)
    time.sleep(0.5)
    senders = [f"kill-{i}-" + uuid.uuid4().hex[:4] for i in range(6)]
    for s in senders:
        status, replies = say(prod["lb"], s, "营业执照怎么办")
        assert status == 200 and replies, (s, status)
    prod_sh(prod, "restart-replica", "0")
    status, replies = say(prod["rasa"][0], senders[0], "要多久")  # the restarted replica has the history
    assert status == 200 and ("时限" in replies[0]["text"] or "工作日" in replies[0]["text"]), replies


def test_with_every_replica_down_the_caller_still_gets_a_reply_naming_12345(prod):
    """Last in this module: it leaves no replica running."""
    for i in (0, 1):
        os.kill(int((prod["dir"] / "pids" / f"rasa-{i}.pid").read_text()), 9)
    time.sleep(0.5)
    status, replies = say(prod["lb"], "down-" + uuid.uuid4().hex[:6], "营业执照怎么办")
    assert status == 200 and "12345" in replies[0]["text"], replies
