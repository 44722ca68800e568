"""Load test of the REST webhook with Locust: whole conversations, closed or open loop.

    python -m bench.load --url http://127.0.0.1:8000 --users 20 --seconds 60     # closed loop
    python -m bench.load --url http://127.0.0.1:8000 --rate 20 --seconds 60      # open loop
    python -m bench.load ... --tracker postgresql://rasa:PW@127.0.0.1:5433/rasa  # check stored turns
    python -m bench.load ... --tracker build/data/tracker.db                      # (SQLite)

A conversation is a guide question, its follow-up ("要多久", answered from the context), a
一件事 turn and a thank-you, each from a new sender. Closed loop: ``--users`` callers with no
think time, or with ``--think`` seconds before each turn (for sizing). Open loop: conversations
start at ``--rate`` turns a second whatever the replies' speed (Locust users paced with
constant_throughput, enough of them that a slow reply does not hold back the next start). One
JSON line per run: users or rate, turns, turns per second, p50/p95/p99 ms, errors (HTTP error
or no connection), polite replies (the channel's or the load balancer's "系统繁忙……12345"), lost
turns (no reply at all, or a sent turn missing from the stored events with ``--tracker``;
without it, the polite replies). Runs on loopback; keep ``--seconds`` at 120 or less.
"""
from __future__ import annotations

import locust  # noqa: F401 - first: Locust patches the standard library with gevent

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from urllib.parse import urlparse

import gevent
import numpy as np
from locust import HttpUser, between, constant, constant_throughput, task
from locust.env import Environment

CONVERSATIONS = [
    ["开个小饭店要准备啥", "要多久", "孩子出生了要办哪些事", "谢谢"],
    ["公积金租房怎么提取", "要带什么材料", "我想开公司，一窗通怎么弄", "好的谢谢"],
    ["居住证在哪里办", "收费吗", "家里老人走了要办什么手续", "谢谢你"],
    ["社保卡丢了怎么补", "在哪办", "孩子出生了要办哪些事", "明白了"],
]
FALLBACK = "系统暂时繁忙"


class Record:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.no_reply = 0
        self.polite = 0
        self.sent: dict[str, int] = {}


RECORD = Record()


class Caller(HttpUser):
    wait_time = constant(0)
    think_s = 0.0  # between the turns of a conversation: a person reading the reply and typing

    @task
    def conversation(self) -> None:
        script = CONVERSATIONS[hash(uuid.uuid4()) % len(CONVERSATIONS)]
        sender = "load-" + uuid.uuid4().hex[:12]
        for n, text in enumerate(script):
            if n and self.think_s:
                gevent.sleep(self.think_s * random.uniform(0.5, 1.5))  # spread: callers do not type in step
            t0 = time.perf_counter()
            try:
                with self.client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text},
                                      name="turn", catch_response=True, timeout=60) as resp:
                    took = (time.perf_counter() - t0) * 1000
                    if resp.status_code != 200:
                        RECORD.errors += 1
                        resp.failure(f"HTTP {resp.status_code}")
                        continue
                    RECORD.sent[sender] = RECORD.sent.get(sender, 0) + 1
                    replies = resp.json() if resp.text else []
                    texts = [r.get("text") or "" for r in replies]
                    if not replies:
                        RECORD.no_reply += 1
                    elif any(FALLBACK in t for t in texts):
                        RECORD.polite += 1
                    RECORD.latencies.append(took)
            except Exception:  # a refused or reset connection is an error, not a crash of the bench
                RECORD.errors += 1


def stored_turns(tracker: str, senders: list[str]) -> dict[str, int]:
    """User turns stored per sender, from PostgreSQL (URL) or an SQLite tracker file."""
    if not senders:
        return {}
    quoted = ",".join("'" + s.replace("'", "") + "'" for s in senders)
    sql = f"SELECT sender_id, count(*) FROM events WHERE type_name = 'user' AND sender_id IN ({quoted}) GROUP BY sender_id"
    if tracker.startswith("postgresql://"):
        u = urlparse(tracker)
        out = subprocess.run(["psql", "-h", u.hostname or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "rasa",
                              "-d", u.path.lstrip("/") or "rasa", "-tA", "-F", "\t", "-f", "-"], input=sql,
                             env={"PGPASSWORD": u.password or "", "PATH": "/usr/bin:/usr/local/bin:/bin"},
                             capture_output=True, text=True, check=True).stdout
        return {row.split("\t")[0]: int(row.split("\t")[1]) for row in out.splitlines() if row}
    with sqlite3.connect(tracker) as db:
        return dict(db.execute(sql).fetchall())


def run(url: str, seconds: float, users: int = 0, rate: float = 0.0, tracker: str | None = None,
        replicas: int | None = None, think: float = 0.0) -> dict:
    global RECORD
    RECORD = Record()
    Caller.think_s = think
    if rate:  # open loop: each user starts a conversation every users * turns / rate seconds
        users = max(4, int(rate * 4))
        Caller.wait_time = constant_throughput(rate / users / len(CONVERSATIONS[0]))
    else:  # the next conversation starts after a think time too
        Caller.wait_time = between(0.5 * think, 1.5 * think) if think else constant(0)
    env = Environment(user_classes=[Caller], host=url)
    runner = env.create_local_runner()
    started = time.perf_counter()
    # open loop: users start spread over one pacing period, so arrivals are even, not bursts
    # with think time, callers arrive over one think period, as they would, not all at once
    runner.start(users, spawn_rate=rate / len(CONVERSATIONS[0]) if rate else users / think if think else users)
    gevent.spawn_later(seconds, runner.quit)
    runner.greenlet.join()
    took = time.perf_counter() - started
    lat = np.asarray(RECORD.latencies or [0.0])
    missing = 0
    if tracker:
        stored = stored_turns(tracker, list(RECORD.sent))
        missing = sum(max(0, n - stored.get(s, 0)) for s, n in RECORD.sent.items())
    out = {"url": url, "mode": "open" if rate else "closed", "users": users, "rate": rate or None,
           "think_s": think or None,
           "replicas": replicas, "seconds": round(took, 1), "turns": len(RECORD.latencies),
           "turns_per_s": round(len(RECORD.latencies) / took, 1),
           "p50_ms": round(float(np.percentile(lat, 50)), 1), "p95_ms": round(float(np.percentile(lat, 95)), 1),
           "p99_ms": round(float(np.percentile(lat, 99)), 1), "errors": RECORD.errors,
           "polite_replies": RECORD.polite, "no_reply": RECORD.no_reply,
           # a turn answered politely but not handled is missing from the store: counted once
           "lost_turns": RECORD.no_reply + (missing if tracker else RECORD.polite),
           "missing_from_store": missing if tracker else None}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="Rasa's base URL or the load balancer's")
    ap.add_argument("--users", type=int, default=20, help="closed loop: callers with no think time")
    ap.add_argument("--rate", type=float, default=0.0, help="open loop: turns a second (overrides --users)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--tracker", help="postgresql://user:pw@host:port/db or an SQLite tracker file")
    ap.add_argument("--replicas", type=int, help="recorded in the output")
    ap.add_argument("--think", type=float, default=0.0,
                    help="closed loop: mean seconds between a caller's turns (0.5-1.5x, uniform)")
    args = ap.parse_args(argv)
    if args.seconds > 120:
        print("bench.load: keep a run to 120 s or less", file=sys.stderr)
        return 2
    print(json.dumps(run(args.url.rstrip("/"), args.seconds, args.users, args.rate, args.tracker, args.replicas,
                         args.think), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
