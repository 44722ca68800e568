"""Multi-turn dialogue evaluation: follow-ups, topic switches, clarifying questions.

Plays every dialogue in knowledge_base/eval/dialogues/*.yml through the running assistant's
REST webhook (one sender per dialogue), or through the plain-Python core with --offline,
and prints per-role accuracy, how often it asks, and the rate of confident answers from a
wrong guide. The reply's `custom.turn` says what the assistant did (answer / unsure /
clarify / ask, the guide and section used).

    python -m bench.dialogues --url http://127.0.0.1:5005      # the running assistant
    python -m bench.dialogues --offline [--index build/indexes/kb]
    add --errors to list the turns that went wrong, --json for one JSON line only
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable

import yaml

ROOT = Path(__file__).resolve().parent.parent
DIALOGUES = ROOT / "knowledge_base" / "eval" / "dialogues"
KINDS = ("followup", "switch", "fresh", "clarify", "no_clarify")


def load(folder: Path = DIALOGUES) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("*.yml")):
        for d in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if d.get("kind") not in KINDS or not d.get("turns"):
                raise SystemExit(f"{path}: dialogue {d.get('id')}: kind must be one of {KINDS}, with turns")
            out.append(d)
    return out


def _as_list(v: Any) -> list[str]:
    return [] if v is None else [v] if isinstance(v, str) else list(v)


def roles(dialogue: dict[str, Any]) -> list[str]:
    """What each turn tests: the opening, an elliptical follow-up, a switch, a fresh question,
    a clarifying question's answer."""
    kind, out, prev = dialogue["kind"], [], None
    for i, t in enumerate(dialogue["turns"]):
        docs = set(_as_list(t["expect"].get("doc")))
        if i == 0:
            out.append("ambiguous_opening" if kind == "clarify" else "clear_opening")
        elif kind == "clarify" and i == 1:
            out.append("clarify_answer")
        elif prev is not None and docs and not docs & prev:
            out.append("switch" if kind == "switch" else "fresh")
        else:
            out.append("followup")
        prev = docs or prev
    return out


def judge(expect: dict[str, Any], turn: dict[str, Any]) -> dict[str, bool]:
    """Was the reply what the turn expects? `turn` is the reply's custom.turn (or {})."""
    kind = turn.get("kind")
    if "clarify" in expect:
        return {"ok": kind == "clarify", "asked": kind == "clarify", "wrong_confident": False,
                "options_ok": kind == "clarify" and set(expect["clarify"]) <= set(turn.get("options") or [])}
    docs, sections = _as_list(expect.get("doc")), _as_list(expect.get("section"))
    doc_ok = kind == "answer" and turn.get("doc_id") in docs
    got = turn.get("section") or ""
    section_ok = not sections or any(got == s or (s == "常见问题" and got.startswith("常见问题")) for s in sections)
    return {"ok": doc_ok and section_ok, "doc_ok": doc_ok, "asked": kind == "clarify",
            "wrong_confident": kind == "answer" and not doc_ok}


# ---------------------------------------------------------------------- players

def offline_player(index: Path) -> Callable[[str], Callable[[str], dict]]:
    from assistant.dialogue import Context, Dialogue
    from index_builder.retriever import Retriever

    dialogue = Dialogue(Retriever(index))

    def new_conversation() -> Callable[[str], dict]:
        state = {"ctx": Context()}

        def say(text: str) -> dict:
            reply = dialogue.turn(text, state["ctx"])
            state["ctx"] = reply.context
            return reply.answer.turn
        return say
    return new_conversation


def rest_player(url: str) -> Callable[[str], Callable[[str], dict]]:
    def new_conversation() -> Callable[[str], dict]:
        sender = f"bench-dialogue-{uuid.uuid4().hex[:10]}"

        def say(text: str) -> dict:
            body = json.dumps({"sender": sender, "message": text}).encode()
            req = urllib.request.Request(f"{url}/webhooks/rest/webhook", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                replies = json.loads(resp.read())
            turns = [(r.get("custom") or {}).get("turn") for r in replies]
            return next((t for t in turns if t), {"kind": "none"})
        return say
    return new_conversation


# ---------------------------------------------------------------------- evaluation

def evaluate(dialogues: list[dict], new_conversation, errors: list | None = None) -> dict[str, Any]:
    by_role: dict[str, Counter] = defaultdict(Counter)
    totals, latencies = Counter(), []
    for d in dialogues:
        say = new_conversation()
        previous_ok = True
        for t, role in zip(d["turns"], roles(d)):
            t0 = time.perf_counter()
            got = say(t["user"])
            latencies.append((time.perf_counter() - t0) * 1000)
            v = judge(t["expect"], got)
            c = by_role[role]
            c["n"] += 1
            c["ok"] += v["ok"]
            c["asked"] += v["asked"]
            c["options_ok"] += v.get("options_ok", False)
            if previous_ok:  # the turn before was answered right: what context alone does
                c["n_after_ok"] += 1
                c["ok_after_ok"] += v["ok"]
            previous_ok = v["ok"]
            totals["turns"] += 1
            totals["wrong_confident"] += v["wrong_confident"]
            if errors is not None and not v["ok"]:
                errors.append({"id": d["id"], "role": role, "user": t["user"], "expect": t["expect"],
                               "got": {k: got.get(k) for k in ("kind", "mode", "doc_id", "section", "options")}})
    report: dict[str, Any] = {"dialogues": len(dialogues), "turns": totals["turns"]}
    for role in ("clear_opening", "followup", "switch", "fresh", "ambiguous_opening", "clarify_answer"):
        c = by_role.get(role)
        if c:
            report[role] = {"n": c["n"], "accuracy": round(c["ok"] / c["n"], 3)}
            if role != "clear_opening" and role != "ambiguous_opening" and c["n_after_ok"]:
                report[role]["after_a_right_turn"] = round(c["ok_after_ok"] / c["n_after_ok"], 3)
    amb, clear = by_role.get("ambiguous_opening", Counter()), Counter()
    for role, c in by_role.items():
        if role != "ambiguous_opening":
            clear.update({"n": c["n"], "asked": c["asked"]})
    report["clarify_rate_ambiguous"] = round(amb["asked"] / amb["n"], 3) if amb["n"] else None
    report["clarify_options_complete"] = round(amb["options_ok"] / amb["n"], 3) if amb["n"] else None
    report["clarify_rate_clear"] = round(clear["asked"] / clear["n"], 3) if clear["n"] else None
    report["wrong_guide_confident_rate"] = round(totals["wrong_confident"] / max(totals["turns"], 1), 3)
    if latencies:
        latencies.sort()
        report["p50_ms"] = round(latencies[len(latencies) // 2], 1)
        report["p95_ms"] = round(latencies[int(len(latencies) * 0.95) - 1], 1)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.dialogues", description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:5005", help="Rasa server (REST webhook)")
    ap.add_argument("--offline", action="store_true", help="play through the plain-Python core, no Rasa")
    ap.add_argument("--index", type=Path, default=ROOT / "build" / "indexes" / "kb")
    ap.add_argument("--dialogues", type=Path, default=DIALOGUES)
    ap.add_argument("--kind", choices=KINDS, help="only dialogues of this kind")
    ap.add_argument("--errors", action="store_true", help="list the turns that went wrong")
    ap.add_argument("--json", action="store_true", help="one JSON line only")
    args = ap.parse_args(argv)
    dialogues = [d for d in load(args.dialogues) if not args.kind or d["kind"] == args.kind]
    player = offline_player(args.index) if args.offline else rest_player(args.url.rstrip("/"))
    errors: list | None = [] if args.errors else None
    try:
        report = evaluate(dialogues, player, errors)
    except OSError as exc:
        print(f"error: the assistant at {args.url} did not answer ({exc}); start it with `make serve` "
              "or use --offline", file=sys.stderr)
        return 2
    report["mode"] = "offline" if args.offline else "rest"
    for e in errors or []:
        print(json.dumps(e, ensure_ascii=False))
    print(json.dumps(report, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
