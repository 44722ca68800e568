"""How many concurrent conversations one deployment serves at p95 < 1 s, with people's think time.

    python -m bench.sizing --url http://127.0.0.1:8000 --users 150,300,450,600 --think 10 --seconds 90

Runs bench.load's closed loop once per user count (each caller waits --think seconds, 0.5-1.5x,
before each turn, as a person reading and typing does), prints one JSON line per run, then one
line with the largest count whose p95 stayed under --p95-ms with no errors or polite replies.
"""
from __future__ import annotations

import locust  # noqa: F401 - first: Locust patches the standard library with gevent

import argparse
import json
import sys

from bench import load


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sizing", description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--users", required=True, help="comma-separated caller counts, smallest first")
    ap.add_argument("--think", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--p95-ms", type=float, default=1000.0)
    ap.add_argument("--replicas", type=int, help="recorded in the output")
    args = ap.parse_args(argv)
    if args.seconds > 120:
        print("bench.sizing: keep a run to 120 s or less", file=sys.stderr)
        return 2
    served = None
    for users in [int(u) for u in args.users.split(",")]:
        out = load.run(args.url.rstrip("/"), args.seconds, users=users, replicas=args.replicas, think=args.think)
        print(json.dumps(out, ensure_ascii=False), flush=True)
        if out["p95_ms"] < args.p95_ms and not out["errors"] and not out["polite_replies"]:
            served = users
        else:
            break  # more callers only make it worse
    print(json.dumps({"replicas": args.replicas, "think_s": args.think, "p95_limit_ms": args.p95_ms,
                      "conversations_served": served}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
