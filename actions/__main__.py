"""Terminal chat. With --url it talks to the running assistant over Rasa's REST webhook
(what `make run` opens); with --offline it answers from the index directly, no Rasa.

    python -m actions --url http://127.0.0.1:5005
    python -m actions --offline --index build/indexes/kb
"""
from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Callable

WELCOME = "您好，我是青浦\"一网通办\"智能助手。请问您想办理什么事？（Ctrl-D 退出）"


def rest_turn(url: str, sender: str) -> Callable[[str], list[dict]]:
    def turn(text: str) -> list[dict]:
        body = json.dumps({"sender": sender, "message": text}).encode()
        req = urllib.request.Request(f"{url}/webhooks/rest/webhook", body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, TimeoutError, ValueError) as exc:
            return [{"text": f"（连接助手失败：{exc}。请稍后再试，或拨打12345。）"}]
    return turn


def offline_turn(index: str) -> Callable[[str], list[dict]]:
    from index_builder.retriever import Retriever

    from assistant.dialogue import Context, Dialogue

    dialogue = Dialogue(Retriever(index))
    state = {"ctx": Context()}

    def turn(text: str) -> list[dict]:
        reply = dialogue.turn(text, state["ctx"])
        state["ctx"] = reply.context
        a = reply.answer
        return [{"text": a.text, "buttons": a.buttons, "custom": a.payload()}]
    return turn


def show(reply: dict) -> None:
    if reply.get("text"):
        print(f"助手> {reply['text']}")
    for s in (reply.get("custom") or {}).get("sources", [])[:3]:
        print(f"   来源：{s['citation']}（{s['doc_id']}）")
    if reply.get("buttons"):
        print("   可选：" + " | ".join(b["title"] for b in reply["buttons"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m actions")
    ap.add_argument("--url", default="http://127.0.0.1:5005")
    ap.add_argument("--offline", action="store_true")
    ap.add_argument("--index", default="build/indexes/kb")
    args = ap.parse_args(argv)
    if args.offline:
        from index_builder.retriever import IndexNotReady

        try:
            turn = offline_turn(args.index)
        except IndexNotReady as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    else:
        turn = rest_turn(args.url, f"terminal-{uuid.uuid4().hex[:8]}")
    print(WELCOME)
    while True:
        try:
            line = input("您> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        for reply in turn(line):
            show(reply)


if __name__ == "__main__":
    sys.exit(main())
