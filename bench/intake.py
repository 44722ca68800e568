"""12345 诉求 intake through the running assistant, and what it costs.

Sends real citizen messages (a TSV with a `text` column, by default
../shared/eval/citizen_messages_dev.tsv) and plain service questions (the query column of
knowledge_base/eval/questions.tsv) through the REST webhook, one new conversation each, and
prints one JSON line: the share of 诉求 messages that got a 工单 draft (custom.ticket) or a
confident guide answer, the share of service questions that got a draft (should be none),
the classification latency in-process, and the median turn time of a 诉求 next to a guide
question.

    python -m bench.intake --url http://127.0.0.1:5005 [--limit 600]
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = ROOT.parent / "shared" / "eval" / "citizen_messages_dev.tsv"
QUESTIONS = ROOT / "knowledge_base" / "eval" / "questions.tsv"


def _column(path: Path, name: str, limit: int) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return [row[name] for row in csv.DictReader(f, delimiter="\t") if row.get(name)][:limit]


def _say(url: str, text: str) -> tuple[list[dict], float]:
    body = json.dumps({"sender": f"bench-intake-{uuid.uuid4().hex[:10]}", "message": text}).encode()
    req = urllib.request.Request(f"{url}/webhooks/rest/webhook", body, {"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        replies = json.loads(resp.read())
    return replies, (time.perf_counter() - t0) * 1000


def _custom(replies: list[dict], key: str) -> dict | None:
    return next(((r.get("custom") or {}).get(key) for r in replies if (r.get("custom") or {}).get(key)), None)


def _confident_answer(replies: list[dict]) -> bool:
    return any((r.get("custom") or {}).get("confident") and ((r.get("custom") or {}).get("turn") or {}).get("kind")
               == "answer" for r in replies)


def classification_ms(texts: list[str]) -> dict[str, float]:
    """In-process cost of telling a 诉求 from a question and of classifying its category."""
    from assistant.intake.kind import classify_message
    from assistant.intake.service import MODEL_DIR

    t0 = time.perf_counter()
    for t in texts:
        classify_message(t)
    kind_ms = (time.perf_counter() - t0) * 1000 / max(len(texts), 1)
    out = {"kind_ms": round(kind_ms, 3)}
    try:
        from assistant.intake.classifier import IntakeModel

        model = IntakeModel.load(MODEL_DIR)
        t0 = time.perf_counter()
        for t in texts:
            model.predict(t)
        out["category_ms"] = round((time.perf_counter() - t0) * 1000 / max(len(texts), 1), 3)
    except Exception as exc:  # no model trained yet
        out["category_ms"] = None
        out["model_problem"] = str(exc)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.intake")
    ap.add_argument("--url", default="http://127.0.0.1:5005")
    ap.add_argument("--messages", type=Path, default=MESSAGES)
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--limit", type=int, default=600)
    args = ap.parse_args(argv)
    if not args.messages.exists():
        print(f"error: {args.messages} not found (pass --messages FILE with a text column)", file=sys.stderr)
        return 2
    messages = _column(args.messages, "text", args.limit)
    questions = _column(args.questions, "query", args.limit)
    url = args.url.rstrip("/")
    drafted = answered = 0
    issue_ms: list[float] = []
    try:
        for m in messages:
            replies, ms = _say(url, m)
            issue_ms.append(ms)
            if _custom(replies, "ticket"):
                drafted += 1
            elif _confident_answer(replies):
                answered += 1
        question_drafts, question_ms = 0, []
        for q in questions:
            replies, ms = _say(url, q)
            question_ms.append(ms)
            question_drafts += _custom(replies, "ticket") is not None
    except OSError as exc:
        print(f"error: the assistant at {url} did not answer ({exc}); start it with `make serve`", file=sys.stderr)
        return 2
    print(json.dumps({
        "messages": len(messages), "ticket_draft": round(drafted / len(messages), 3),
        "draft_or_confident_answer": round((drafted + answered) / len(messages), 3),
        "service_questions": len(questions),
        "service_questions_with_draft": round(question_drafts / max(len(questions), 1), 3),
        "issue_turn_p50_ms": round(statistics.median(issue_ms), 1),
        "question_turn_p50_ms": round(statistics.median(question_ms), 1) if question_ms else None,
        **classification_ms(messages[:200]),
    }, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
