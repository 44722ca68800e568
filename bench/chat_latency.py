"""Chat-turn latency through Rasa's REST webhook: a guide question (NLU, dialogue, action
server, retrieval) next to a turn answered by a fixed response (greet), at 1 and 20
concurrent users; and a conversation's first guide question next to its elliptical
follow-up ("要多久", answered from the context in the tracker). Starts the assistant with
scripts/assistant.sh unless --url is given.

    python -m bench.chat_latency [--turns 10] [--url http://127.0.0.1:5005]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GUIDE_QUESTIONS = ["开个小饭店要准备啥", "公积金租房怎么提取", "孩子出生户口怎么报", "居住证在哪里办",
                   "社保卡丢了怎么补", "营业执照办下来要多久", "在外地住院能报销吗", "结婚登记要带什么材料"]
FIXED = ["你好", "您好", "在吗", "早上好"]
FOLLOW_UPS = ["要多久", "收费吗", "在哪办", "要带什么材料", "网上能办吗"]


async def pairs(session, url, tag, turns, first, follow):
    """Each pair is a new conversation: a guide question, then a follow-up relying on it."""
    for i in range(turns):
        sender = f"bench-{tag}-{i}-{time.time_ns()}"
        for text, out in ((GUIDE_QUESTIONS[i % len(GUIDE_QUESTIONS)], first), (FOLLOW_UPS[i % len(FOLLOW_UPS)], follow)):
            t0 = time.perf_counter()
            async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
                replies = await r.json()
            out.append((time.perf_counter() - t0) * 1000)
            assert any("根据《" in (x.get("text") or "") for x in replies), f"{text!r} got {replies}"


async def run_pairs(url: str, users: int, turns: int) -> tuple[list[float], list[float]]:
    first: list[float] = []
    follow: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(pairs(session, url, f"pair-{users}-{u}", turns, first, follow) for u in range(users)))
    return first, follow


def _pct(lat, q) -> float:
    return round(float(np.percentile(np.asarray(lat), q)), 1)


async def user(session, url, sender, messages, turns, out, expect):
    for i in range(turns):
        text = messages[i % len(messages)]
        t0 = time.perf_counter()
        async with session.post(f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
            replies = await r.json()
        out.append((time.perf_counter() - t0) * 1000)
        # a fallback ("系统繁忙") is fast and would flatter the figures: only real answers count
        assert any(expect in (x.get("text") or "") for x in replies), f"{text!r} got {replies}"


async def run(url: str, users: int, turns: int, messages: list[str], tag: str, expect: str = "") -> list[float]:
    out: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(user(session, url, f"bench-{tag}-{users}-{u}-{time.time_ns()}", messages, turns, out,
                                    expect) for u in range(users)))
    return out


def start() -> subprocess.Popen:
    env = dict(os.environ, RASA_PORT="5015", ACTION_PORT="5065")
    proc = subprocess.Popen(["scripts/assistant.sh"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(240):
        try:
            urllib.request.urlopen("http://127.0.0.1:5015/", timeout=2)
            urllib.request.urlopen("http://127.0.0.1:5065/ready", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("the assistant did not start; see build/logs/")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url")
    ap.add_argument("--turns", type=int, default=10, help="turns per user")
    args = ap.parse_args()
    proc = None if args.url else start()
    url = args.url or "http://127.0.0.1:5015"
    try:
        asyncio.run(run(url, 2, 3, GUIDE_QUESTIONS + FIXED, "warm"))  # load models, fill caches
        rows = {}
        for users in (1, 20):
            for name, messages, expect in (("fixed_response", FIXED, "智能助手"),
                                           ("guide_answer", GUIDE_QUESTIONS, "根据《")):
                t0 = time.perf_counter()
                lat = np.asarray(asyncio.run(run(url, users, args.turns, messages, name, expect)))
                wall = time.perf_counter() - t0
                rows[(users, name)] = lat
                print(json.dumps({"users": users, "turn": name, "n": len(lat),
                                  "p50_ms": round(float(np.percentile(lat, 50)), 1),
                                  "p95_ms": round(float(np.percentile(lat, 95)), 1),
                                  "turns_per_s": round(len(lat) / wall, 1)}))
            g, f = rows[(users, "guide_answer")], rows[(users, "fixed_response")]
            print(json.dumps({"users": users, "p95_ratio_guide_over_fixed":
                              round(float(np.percentile(g, 95) / np.percentile(f, 95)), 2)}))
            first, follow = asyncio.run(run_pairs(url, users, args.turns))
            print(json.dumps({"users": users, "turn": "first_guide_question", "n": len(first),
                              "p50_ms": _pct(first, 50), "p95_ms": _pct(first, 95)}))
            print(json.dumps({"users": users, "turn": "follow_up", "n": len(follow),
                              "p50_ms": _pct(follow, 50), "p95_ms": _pct(follow, 95),
                              "p50_ratio_follow_up_over_first": round(_pct(follow, 50) / _pct(first, 50), 2)}))
    finally:
        if proc:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
