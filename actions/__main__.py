"""Terminal chat over the answer composer, used by `make run` until the Rasa dialogue lands.

    python -m actions --index build/indexes/kb
"""
from __future__ import annotations

import argparse
import sys

from index_builder.retriever import IndexNotReady, Retriever

from .answers import compose


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m actions")
    ap.add_argument("--index", default="build/indexes/kb")
    args = ap.parse_args(argv)
    try:
        retriever = Retriever(args.index)
    except IndexNotReady as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("您好，我是青浦\"一网通办\"智能助手。请问您想办理什么事？（Ctrl-D 退出）")
    while True:
        try:
            line = input("您> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        answer = compose(retriever, retriever.search(line))
        print(f"助手> {answer.text}")
        for s in answer.sources[:3]:
            print(f"   来源：{s['citation']}（{s['doc_id']}，{s['score']}）")
        if answer.buttons:
            print("   您还可以问：" + " | ".join(b["title"] for b in answer.buttons))


if __name__ == "__main__":
    sys.exit(main())
