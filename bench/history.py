"""What a turn costs as its conversation grows: one user, one conversation of --turns turns (guide
questions and their follow-ups, each answered from a guide), through the REST webhook.

    python -m bench.history --url http://127.0.0.1:8000 [--turns 60]

Prints one JSON line per block of 10 turns (median and p95 of that block) and one with the slope
of a least-squares line through every turn's latency: milliseconds a turn gains per earlier turn.
Every turn reads and featurises the whole session, so the slope is the cost of history.
"""
from __future__ import annotations

import argparse
import json
import time
import urllib.request

import numpy as np

from bench.chat_latency import FOLLOW_UPS, GUIDE_QUESTIONS

BLOCK = 10


def turn(url: str, sender: str, text: str) -> float:
    body = json.dumps({"sender": sender, "message": text}).encode()
    request = urllib.request.Request(f"{url}/webhooks/rest/webhook", data=body,
                                     headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as r:
        replies = json.load(r)
    ms = (time.perf_counter() - t0) * 1000
    # a polite fallback is fast and would flatter the slope: only answers from a guide count
    if not any("根据《" in (x.get("text") or "") for x in replies):
        raise SystemExit(f"bench.history: {text!r} was not answered from a guide: {replies}")
    return ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--turns", type=int, default=60)
    args = ap.parse_args(argv)
    url, sender = args.url.rstrip("/"), f"bench-history-{time.time_ns()}"
    texts = [GUIDE_QUESTIONS[(i // 2) % len(GUIDE_QUESTIONS)] if i % 2 == 0 else FOLLOW_UPS[(i // 2) % len(FOLLOW_UPS)]
             for i in range(args.turns)]
    turn(url, f"{sender}-warm", GUIDE_QUESTIONS[0])
    lat = np.array([turn(url, sender, t) for t in texts])
    for start in range(0, len(lat), BLOCK):
        block = lat[start:start + BLOCK]
        print(json.dumps({"turns": f"{start + 1}-{start + len(block)}", "p50_ms": round(float(np.median(block)), 1),
                          "p95_ms": round(float(np.percentile(block, 95)), 1)}))
    slope = float(np.polyfit(np.arange(len(lat)), lat, 1)[0]) if len(lat) > 1 else 0.0
    print(json.dumps({"turns": len(lat), "ms_per_earlier_turn": round(slope, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
