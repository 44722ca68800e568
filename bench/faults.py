"""Faults injected into the running production profile under load (`make serve-prod` first).

    python -m bench.faults --fault kill-replica       # kill -9 Rasa replica 0 at --at s, restart it
    python -m bench.faults --fault stop-actions       # action server 0 stopped for --down s
    python -m bench.faults --fault stop-all-actions   # every action server stopped for --down s
    python -m bench.faults --fault restart-postgres   # PostgreSQL restarted (fast shutdown) at --at s
    python -m bench.faults --fault lock-fill          # --burst messages of one conversation at once
    python -m bench.faults --fault none               # the same load with no fault, for comparison

bench.load's closed loop (--users callers, no think time) runs for --seconds while the fault
happens. Before it, --probes conversations ask a guide question; after the fault is over each asks
"要多久", which must be answered from the first turn's guide: the history survived. One JSON line:
the load figures (turns, p95, errors, polite replies, turns missing from PostgreSQL) plus what the
fault did. It reads the profile's ports and secrets the way scripts/prod.sh does (PROD_DIR,
PROD_PORT, PG_PORT, REPLICAS), so run it with the same environment.
"""
from __future__ import annotations

import locust  # noqa: F401 - first: Locust patches the standard library with gevent

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gevent
import requests

from bench import load

ROOT = Path(__file__).resolve().parents[1]
FAULTS = ("none", "kill-replica", "stop-actions", "stop-all-actions", "restart-postgres", "lock-fill")
TITLE = re.compile(r"《([^》]+)》")


def profile() -> dict:
    prod_dir = Path(os.environ.get("PROD_DIR", ROOT / "build" / "prod"))
    password = (prod_dir / "secrets" / "pg").read_text().strip()
    return {"url": f"http://127.0.0.1:{os.environ.get('PROD_PORT', '8000')}",
            "tracker": f"postgresql://rasa:{password}@127.0.0.1:{os.environ.get('PG_PORT', '5433')}/rasa",
            "replicas": int(os.environ.get("REPLICAS", os.cpu_count() or 2))}


def prod_sh(*args: str) -> None:
    subprocess.run([str(ROOT / "scripts" / "prod.sh"), *args], cwd=ROOT, check=True, capture_output=True,
                   timeout=300)


def say(url: str, sender: str, text: str) -> tuple[int, str]:
    try:
        resp = requests.post(url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}, timeout=60)
        return resp.status_code, " ".join(r.get("text") or "" for r in resp.json())
    except (requests.RequestException, ValueError) as exc:
        return 0, type(exc).__name__


def guide_of(text: str) -> str | None:
    found = TITLE.search(text)
    return found.group(1) if found else None


def inject(fault: str, at: float, down: float, replicas: int, url: str, burst: int, out: dict) -> None:
    """Runs in a greenlet beside the load: sleeps, breaks something, repairs it."""
    gevent.sleep(at)
    started = time.perf_counter()
    try:
        break_and_repair(fault, down, replicas, url, burst, out)
    except subprocess.CalledProcessError as exc:  # reported in the run's line, not lost in a greenlet
        out["fault_error"] = (exc.stderr or b"").decode(errors="replace")[-500:] or str(exc)
    out["fault_seconds"] = round(time.perf_counter() - started, 1)


def break_and_repair(fault: str, down: float, replicas: int, url: str, burst: int, out: dict) -> None:
    if fault == "kill-replica":
        prod_sh("kill-replica", "0")
        gevent.sleep(down)
        prod_sh("restart-replica", "0")
    elif fault in ("stop-actions", "stop-all-actions"):
        stopped = range(replicas) if fault == "stop-all-actions" else [0]
        for i in stopped:
            prod_sh("stop-actions", str(i))
        gevent.sleep(down)
        for i in stopped:
            prod_sh("start-actions", str(i))
    elif fault == "restart-postgres":
        prod_sh("restart-postgres")
    elif fault == "lock-fill":
        out.update(lock_fill(url, burst))


def lock_fill(url: str, burst: int) -> dict:
    """`burst` messages of one conversation at once: how many were answered (not politely
    refused) and how many reached PostgreSQL."""
    sender = "fill-" + uuid.uuid4().hex[:8]
    questions = ["居住证怎么办", "需要什么材料", "在哪里办", "要多久", "收费吗"]
    texts = [questions[i % len(questions)] for i in range(burst)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(burst) as pool:
        results = list(pool.map(lambda t: say(url, sender, t), texts))
    took = time.perf_counter() - t0
    stored = load.stored_turns(profile()["tracker"], [sender]).get(sender, 0)
    return {"burst": burst, "burst_seconds": round(took, 1),
            "burst_answered": sum(1 for status, text in results if status == 200 and text and load.FALLBACK not in text),
            "burst_polite": sum(1 for _, text in results if load.FALLBACK in text),
            "burst_stored": stored}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    ap.add_argument("--fault", choices=FAULTS, required=True)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--at", type=float, default=20.0, help="seconds into the run")
    ap.add_argument("--down", type=float, default=10.0, help="how long a stopped part stays down")
    ap.add_argument("--burst", type=int, default=30, help="lock-fill: messages of one conversation at once")
    ap.add_argument("--probes", type=int, default=8)
    args = ap.parse_args(argv)
    prof = profile()
    url = prof["url"]
    probes = {}
    for i in range(args.probes):
        sender = f"probe-{i}-" + uuid.uuid4().hex[:6]
        status, text = say(url, sender, load.CONVERSATIONS[i % len(load.CONVERSATIONS)][0])
        probes[sender] = guide_of(text) if status == 200 else None
    fault_out: dict = {}
    if args.fault != "none":
        gevent.spawn(inject, args.fault, args.at, args.down, prof["replicas"], url, args.burst, fault_out)
    result = load.run(url, args.seconds, users=args.users, tracker=prof["tracker"], replicas=prof["replicas"])
    deadline = time.time() + 300
    while args.fault != "none" and "fault_seconds" not in fault_out and time.time() < deadline:
        gevent.sleep(1)  # a restart may outlast the load
    continued = 0
    for sender, guide in probes.items():
        status, text = say(url, sender, "要多久")
        continued += bool(guide and status == 200 and guide_of(text) == guide)
    result.update({"fault": args.fault, "at_s": args.at, "down_s": args.down, **fault_out,
                   "probes": len(probes), "probes_continued": continued})
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
